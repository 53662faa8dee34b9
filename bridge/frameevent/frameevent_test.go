package frameevent

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/myclerk/myclerk-bridge/wire"
)

func TestRoundTrip(t *testing.T) {
	for _, n := range []int{1, 2, 3, 100, MaxFrame} {
		frame := bytes.Repeat([]byte{0xa5}, n)
		c, err := Encode(frame)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(c.Frame, "=") {
			t.Errorf("%d bytes: padded base64", n)
		}
		raw, _ := json.Marshal(c)
		// A whole event of the biggest frame stays under Matrix's limit
		// with room for the envelope.
		if len(raw) > 60000 {
			t.Errorf("%d-byte frame makes %d bytes of content", n, len(raw))
		}
		got, err := Decode(raw)
		if err != nil || !bytes.Equal(got, frame) {
			t.Fatalf("%d bytes: %v", n, err)
		}
	}
	// Padding is accepted.
	if b, err := Decode(json.RawMessage(`{"frame":"CAEBAA=="}`)); err != nil || !bytes.Equal(b, []byte{8, 1, 1, 0}) {
		t.Errorf("padded: %x %v", b, err)
	}
}

func TestRejects(t *testing.T) {
	if _, err := Encode(make([]byte, MaxFrame+1)); !errors.Is(err, wire.ErrTooLarge) {
		t.Errorf("oversized frame: %v", err)
	}
	if _, err := Encode(nil); !errors.Is(err, wire.ErrTruncated) {
		t.Errorf("empty frame: %v", err)
	}
	for in, want := range map[string]error{
		`{}`:              wire.ErrTruncated,
		`{"frame":""}`:    wire.ErrTruncated,
		`{"frame":"!!!"}`: wire.ErrMalformed,
		`{"frame":5}`:     wire.ErrMalformed,
		`not json`:        wire.ErrMalformed,
		`{"frame":"` + strings.Repeat("A", maxEncoded+4) + `"}`: wire.ErrTooLarge,
	} {
		if _, err := Decode(json.RawMessage(in)); !errors.Is(err, want) {
			t.Errorf("%.40s: %v, want %v", in, err, want)
		}
	}
	if PowerLevels()[EventType] != PowerLevel {
		t.Error("power levels")
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"frame":"CAEBAA"}`))
	f.Add([]byte(`{"frame":"CAEBAA==","other":1}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		b, err := Decode(raw)
		if err != nil {
			return
		}
		c, err := Encode(b)
		if err != nil {
			t.Fatalf("decoded frame does not encode: %v", err)
		}
		again, err := DecodeString(c.Frame)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatal("round trip")
		}
	})
}
