package ticket

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/myclerk/myclerk-bridge/wire"
)

// FuzzOpen feeds Open arbitrary tickets of up to 200 bytes. It must never
// panic, must fail only with wire.ErrTicket, and whatever opens must be
// exactly what Seal gives for the same key, nonce and contents.
func FuzzOpen(f *testing.F) {
	good := mustSeal(f, testKey, testC)
	f.Add(good[:])
	f.Add(good[:64])
	f.Add(sealRaw(testKey, Contents{IssuedAt: 10, ExpiresAt: 5}))
	kr := ring(Key{ID: 7, Secret: [32]byte{7}}, testKey)
	now := at(issued + 60)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 200 {
			return
		}
		c, err := Open(kr, data, now)
		if err != nil {
			if !errors.Is(err, wire.ErrTicket) {
				t.Fatalf("error %v does not wrap ErrTicket", err)
			}
			if c != (Contents{}) {
				t.Fatalf("contents returned with error %v", err)
			}
			return
		}
		k, _ := kr.Lookup(uint32(data[0])<<24 | uint32(data[1])<<16 | uint32(data[2])<<8 | uint32(data[3]))
		var nonce [NonceSize]byte
		copy(nonce[:], data[KeyIDSize:])
		again, err := Seal(k, nonce, c)
		if err != nil || string(again[:]) != string(data) {
			t.Fatalf("opened %x but Seal gives %x (%v)", data, again, err)
		}
	})
}

// TestSeedCorpus keeps the committed corpus meaningful: at FuzzOpen's
// clock, the file named valid opens and all others are rejected.
func TestSeedCorpus(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzOpen", "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus (%v)", err)
	}
	kr := ring(testKey)
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		body, ok := strings.CutPrefix(strings.TrimSpace(string(raw)), "go test fuzz v1\n[]byte(")
		if !ok || !strings.HasSuffix(body, ")") {
			t.Fatalf("%s: not a go test fuzz v1 []byte file", file)
		}
		data, err := strconv.Unquote(strings.TrimSuffix(body, ")"))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		_, err = Open(kr, []byte(data), at(issued+60))
		if valid := filepath.Base(file) == "valid"; valid != (err == nil) {
			t.Errorf("%s: Open: %v", file, err)
		}
	}
}
