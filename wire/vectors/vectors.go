// Package vectors builds the MyClerk wire profile's test vectors
// (testdata/vectors/*.json) from fixed inputs, so that they are the same
// on every run, and checks vector files through the public API of package
// wire. `myclerk-bridge frame vectors` writes them; the tests check that the
// files in the repository are what this package builds and that each vector
// holds. The package is pure: it returns bytes and never touches files.
package vectors

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/myclerk/myclerk-bridge/wire/inspect"
)

// Hex is a byte string written as hex.
type Hex = inspect.Hex

// Time is the clock of every vector: 2026-01-01T00:00:00Z.
var Time = time.Unix(1_767_225_600, 0).UTC()

// seed returns 32 deterministic bytes named by label, so every fixed input
// can be traced to its name: SHA-256("myclerk-vectors " + label).
func seed(label string) [32]byte { return sha256.Sum256([]byte("myclerk-vectors " + label)) }

// reader is a deterministic io.Reader over seed(label), seed(label+"+"), ...
type reader struct {
	label string
	buf   []byte
}

func (r *reader) Read(p []byte) (int, error) {
	for len(r.buf) < len(p) {
		s := seed(r.label)
		r.buf = append(r.buf, s[:]...)
		r.label += "+"
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// File is one vector file.
type File struct {
	Name        string `json:"-"`
	Description string `json:"description"`
	Vectors     any    `json:"vectors"`
}

func (f *File) marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(f); err != nil {
		return nil, fmt.Errorf("vectors %s: %w", f.Name, err)
	}
	return buf.Bytes(), nil
}

// Files returns every vector file by name, encoded.
func Files() (map[string][]byte, error) {
	hs, err := handshake()
	if err != nil {
		return nil, err
	}
	builders := []func(*handshakeVector) (*File, error){
		headersFile, crcFile, keyScheduleFile, sealedFile, rotationFile, rejectsFile,
		payloadsFile, ticketsFile, fragmentsFile, compressionFile, containersFile,
	}
	out := map[string][]byte{}
	for _, b := range builders {
		f, err := b(hs)
		if err != nil {
			return nil, err
		}
		data, err := f.marshal()
		if err != nil {
			return nil, err
		}
		out[f.Name] = data
	}
	return out, nil
}

// Names returns the file names Files produces, sorted.
func Names(files map[string][]byte) []string {
	var n []string
	for k := range files {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}
