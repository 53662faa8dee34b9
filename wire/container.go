package wire

import "fmt"

// Frame containers (PROFILE.md §P36): on a message transport that both
// ends have agreed on, one message may carry several frames as
//
//	ContainerMarker ‖ (length ‖ frame)*
//
// each length the 4-byte big-endian prefix of a stream transport (§P12).
// No frame on a transport begins with the marker: it is the flags byte of
// a Tier 0 frame, which travels only inside a sealed TUNNEL frame (§P11).
// So a message is a container or a single frame by its first byte alone.

// ContainerMarker is the first byte of a container.
const ContainerMarker byte = 0x00

// ContainerOverhead is what a container adds: the marker once, and a
// length prefix per frame.
func ContainerOverhead(frames int) int { return 1 + frames*LengthPrefixSize }

// AppendContainerFrame appends frame to the container c, writing the
// marker first when c is empty.
func AppendContainerFrame(c, frame []byte) ([]byte, error) {
	if len(c) == 0 {
		c = append(c, ContainerMarker)
	}
	c, err := AppendLengthPrefix(c, len(frame))
	if err != nil {
		return c, err
	}
	return append(c, frame...), nil
}

// CheckContainer checks a whole container, marker included: one or more
// length-prefixed frames, each 1 to MaxFrameSize bytes, that end exactly
// where the container does. It returns how many frames it holds. It looks
// at the lengths only; each frame is checked when it is opened.
func CheckContainer(c []byte) (int, error) {
	if len(c) == 0 || c[0] != ContainerMarker {
		return 0, fmt.Errorf("container: no marker: %w", ErrMalformed)
	}
	n := 0
	for b := c[1:]; len(b) > 0; n++ {
		var err error
		if _, b, err = NextContainerFrame(b); err != nil {
			return 0, fmt.Errorf("container frame %d: %w", n, err)
		}
	}
	if n == 0 {
		return 0, fmt.Errorf("container: no frame: %w", ErrTruncated)
	}
	return n, nil
}

// NextContainerFrame splits the first frame off b, a container after its
// marker (or what is left of it). The frame's capacity ends where the frame
// does, so that whoever owns it may write into it without touching rest.
func NextContainerFrame(b []byte) (frame, rest []byte, err error) {
	n, err := ParseLengthPrefix(b)
	if err != nil {
		return nil, b, err
	}
	end := LengthPrefixSize + n
	if len(b) < end {
		return nil, b, ErrTruncated
	}
	return b[LengthPrefixSize:end:end], b[end:], nil
}
