package vectors

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/myclerk/myclerk-bridge/wire"
)

// ContainerVector is a NATS message that carries several frames (PROFILE.md
// §P36): the frames it splits into, or the reason it must be dropped.
type ContainerVector struct {
	Name      string `json:"name"`
	Container Hex    `json:"container"`
	Frames    []Hex  `json:"frames,omitempty"`
	Reason    string `json:"reason,omitempty"`
}

func containersFile(*handshakeVector) (*File, error) {
	ka, err := wire.AppendPlain(nil, &wire.Header{Tier: wire.Tier1, Op: wire.OpKeepalive, Sequence: 7}, nil, nil)
	if err != nil {
		return nil, err
	}
	data, err := wire.AppendPlain(nil, &wire.Header{Tier: wire.Tier2, Op: wire.OpStreamData, SessionID: 3}, nil, []byte("21.5C"))
	if err != nil {
		return nil, err
	}
	big := bytes.Repeat([]byte{0x5a}, 300)
	big[0] = 0x19 // Tier 3 flags: only the length matters here
	var out []ContainerVector
	add := func(v ContainerVector) error {
		if err := CheckContainer(&v); err != nil {
			return fmt.Errorf("container vector %q: %w", v.Name, err)
		}
		out = append(out, v)
		return nil
	}
	for _, c := range []struct {
		name   string
		frames [][]byte
	}{
		{"one frame", [][]byte{ka}},
		{"two frames", [][]byte{ka, data}},
		{"three frames, one of 300 bytes", [][]byte{data, big, ka}},
	} {
		var b []byte
		for _, f := range c.frames {
			if b, err = wire.AppendContainerFrame(b, f); err != nil {
				return nil, err
			}
		}
		v := ContainerVector{Name: c.name, Container: b}
		for _, f := range c.frames {
			v.Frames = append(v.Frames, f)
		}
		if err := add(v); err != nil {
			return nil, err
		}
	}
	for _, c := range []struct {
		name string
		b    []byte
		err  *wire.Error
	}{
		{"marker alone", []byte{0}, wire.ErrTruncated},
		{"zero length", []byte{0, 0, 0, 0, 0}, wire.ErrTruncated},
		{"length past the end", append([]byte{0, 0, 0, 0, 9}, ka...), wire.ErrTruncated},
		{"trailing byte", append(append([]byte{0, 0, 0, 0, byte(len(ka))}, ka...), 0x40), wire.ErrTruncated},
		{"length over MaxFrameSize", []byte{0, 0, 0x10, 0, 1, 0x40}, wire.ErrTooLarge},
		{"no marker: a single frame", ka, wire.ErrMalformed},
	} {
		if err := add(ContainerVector{Name: c.name, Container: c.b, Reason: c.err.Reason}); err != nil {
			return nil, err
		}
	}
	return &File{Name: "containers.json", Description: "Frame containers on NATS (PROFILE.md §P36): 0x00 ‖ (u32 big-endian length ‖ frame)*, " +
		"lengths 1 to MaxFrameSize, filling the message exactly; a receiver splits them into `frames` or drops the whole message (`reason`).", Vectors: out}, nil
}

// CheckContainer splits a vector's container and checks the outcome.
func CheckContainer(v *ContainerVector) error {
	n, err := wire.CheckContainer(v.Container)
	if v.Reason != "" {
		if err == nil || wire.ReasonOf(err) != v.Reason {
			return fmt.Errorf("got %d frames, %v; want %q", n, err, v.Reason)
		}
		return nil
	}
	if err != nil {
		return err
	}
	if n != len(v.Frames) {
		return fmt.Errorf("%d frames, want %d", n, len(v.Frames))
	}
	rest := v.Container[1:]
	for i, want := range v.Frames {
		var f []byte
		if f, rest, err = wire.NextContainerFrame(rest); err != nil {
			return fmt.Errorf("frame %d: %w", i, err)
		}
		if !bytes.Equal(f, want) {
			return fmt.Errorf("frame %d is %x, want %x", i, f, []byte(want))
		}
	}
	if len(rest) != 0 {
		return errors.New("bytes after the last frame")
	}
	return nil
}
