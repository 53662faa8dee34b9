package payload

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/myclerk/myclerk-bridge/wire"
)

// checkRoundTrip is the property every fuzz target checks: decoding
// arbitrary bytes never panics and fails only with a wire error; whatever
// decodes re-encodes, decodes to an equal value, and re-encodes to the same
// bytes (the encoding is a fixed point).
func checkRoundTrip(t *testing.T, p codec, data []byte) {
	if err := p.Unmarshal(data); err != nil {
		if !errors.Is(err, wire.ErrMalformed) && !errors.Is(err, wire.ErrTooLarge) {
			t.Fatalf("error %v wraps no wire sentinel", err)
		}
		return
	}
	b, err := p.Marshal()
	if err != nil {
		t.Fatalf("decoded %+v does not encode: %v", p, err)
	}
	q := newOf(p)
	if err := q.Unmarshal(b); err != nil {
		t.Fatalf("re-encoding %x of %+v does not decode: %v", b, p, err)
	}
	if !reflect.DeepEqual(p, q) {
		t.Fatalf("round trip changed %+v to %+v", p, q)
	}
	b2, err := q.Marshal()
	if err != nil || !bytes.Equal(b, b2) {
		t.Fatalf("encoding is not a fixed point: %x then %x (%v)", b, b2, err)
	}
}

// addSeeds adds the encodings of ps to the fuzzer's seeds, on top of the
// corpus in testdata/fuzz.
func addSeeds(f *testing.F, ps ...codec) {
	for _, p := range ps {
		b, err := p.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func FuzzSessionInit(f *testing.F) {
	addSeeds(f, &exampleInit, &SessionInit{})
	f.Fuzz(func(t *testing.T, data []byte) { checkRoundTrip(t, new(SessionInit), data) })
}

func FuzzSessionAck(f *testing.F) {
	addSeeds(f, &exampleAck, &SessionAck{})
	f.Fuzz(func(t *testing.T, data []byte) { checkRoundTrip(t, new(SessionAck), data) })
}

func FuzzSessionResume(f *testing.F) {
	withCaps := exampleResume
	withCaps.Capabilities = []Capability{CapAES256GCM, CapChaCha20, CapFragmentation}
	addSeeds(f, &exampleResume, &withCaps)
	f.Fuzz(func(t *testing.T, data []byte) { checkRoundTrip(t, new(SessionResume), data) })
}

func FuzzSessionResumed(f *testing.F) {
	withCaps := exampleResumed
	withCaps.SelectedCapabilities = []Capability{CapAES256GCM}
	addSeeds(f, &exampleResumed, &withCaps)
	f.Fuzz(func(t *testing.T, data []byte) { checkRoundTrip(t, new(SessionResumed), data) })
}

func FuzzError(f *testing.F) {
	addSeeds(f, &exampleError, &Error{})
	f.Fuzz(func(t *testing.T, data []byte) { checkRoundTrip(t, new(Error), data) })
}

// TestSeedCorpus keeps the committed corpus meaningful: the files named
// valid-* decode and all others are rejected.
func TestSeedCorpus(t *testing.T) {
	targets := map[string]func() codec{
		"FuzzSessionInit":    func() codec { return new(SessionInit) },
		"FuzzSessionAck":     func() codec { return new(SessionAck) },
		"FuzzSessionResume":  func() codec { return new(SessionResume) },
		"FuzzSessionResumed": func() codec { return new(SessionResumed) },
		"FuzzError":          func() codec { return new(Error) },
	}
	for target, newP := range targets {
		files, err := filepath.Glob(filepath.Join("testdata", "fuzz", target, "*"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: no corpus (%v)", target, err)
		}
		for _, file := range files {
			data := readCorpusFile(t, file)
			err := newP().Unmarshal(data)
			if valid := strings.HasPrefix(filepath.Base(file), "valid"); valid != (err == nil) {
				t.Errorf("%s: Unmarshal: %v", file, err)
			}
		}
	}
}

// readCorpusFile reads a one-value []byte corpus file in the format of
// go test fuzz v1.
func readCorpusFile(t *testing.T, file string) []byte {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(lines) != 2 || lines[0] != "go test fuzz v1" ||
		!strings.HasPrefix(lines[1], "[]byte(") || !strings.HasSuffix(lines[1], ")") {
		t.Fatalf("%s: not a go test fuzz v1 []byte file", file)
	}
	s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return []byte(s)
}
