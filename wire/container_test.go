package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

func TestContainer(t *testing.T) {
	frames := [][]byte{{0x58, 1, 2}, bytes.Repeat([]byte{0xab}, 300), {0x40}}
	var c []byte
	for _, f := range frames {
		var err error
		if c, err = AppendContainerFrame(c, f); err != nil {
			t.Fatal(err)
		}
	}
	if c[0] != ContainerMarker || len(c) != ContainerOverhead(3)+3+300+1 {
		t.Fatalf("container of %d bytes: %x…", len(c), c[:8])
	}
	if got := hex.EncodeToString(c[:9]); got != "0000000003580102"+"00" {
		t.Errorf("container starts %s", got)
	}
	if n, err := CheckContainer(c); n != 3 || err != nil {
		t.Fatalf("CheckContainer: %d %v", n, err)
	}
	rest := c[1:]
	for i, want := range frames {
		var f []byte
		var err error
		if f, rest, err = NextContainerFrame(rest); err != nil || !bytes.Equal(f, want) {
			t.Fatalf("frame %d: %x %v", i, f, err)
		}
		if cap(f) != len(f) {
			t.Errorf("frame %d: capacity %d reaches past it (%d bytes)", i, cap(f), len(f))
		}
	}
	if len(rest) != 0 {
		t.Errorf("%d bytes left", len(rest))
	}
	if _, err := AppendContainerFrame(nil, nil); !errors.Is(err, ErrTooLarge) {
		t.Errorf("empty frame appended: %v", err)
	}
}

func TestContainerRejects(t *testing.T) {
	for _, tc := range []struct {
		name, hex string
		want      error
	}{
		{"empty message", "", ErrMalformed},
		{"a frame, not a container", "4000000001ff", ErrMalformed},
		{"marker alone", "00", ErrTruncated},
		{"length cut short", "000000", ErrTruncated},
		{"zero length", "0000000000", ErrTruncated},
		{"length past the end", "000000000340", ErrTruncated},
		{"length over MaxFrameSize", "000010000140", ErrTooLarge},
		{"trailing bytes after a frame", "00000000014040", ErrTruncated},
	} {
		b, _ := hex.DecodeString(tc.hex)
		if n, err := CheckContainer(b); !errors.Is(err, tc.want) || n != 0 {
			t.Errorf("%s: %d frames, %v; want %v", tc.name, n, err, tc.want)
		}
	}
}
