package compress

import (
	"bytes"
	"errors"
	"testing"

	"github.com/myclerk/myclerk-bridge/wire"
)

// fuzzCap is the cap the fuzz targets decompress with.
const fuzzCap = 64 << 10

func FuzzDecompressLZ4(f *testing.F) {
	f.Add(append([]byte{0x80, 0x80, 0x04}, 0x1f, 0x00)) // length at the cap, tiny block
	f.Add([]byte{0x81, 0x80, 0x04, 0x00})               // length one over the cap
	fuzzDecompress(f, LZ4)
}

func FuzzDecompressZstd(f *testing.F) {
	f.Add(zstdRLEFrame(fuzzCap, 1)) // no content size, at the cap
	f.Add(zstdRLEFrame(fuzzCap, 2)) // no content size, over the cap
	f.Add(zstdRLEFrame(1<<20, 1))   // window over the cap
	fuzzDecompress(f, Zstd)
}

// fuzzDecompress decompresses arbitrary input with a small cap: it must
// fail with a wire error or produce at most the cap, and what it produces
// must round-trip.
func fuzzDecompress(f *testing.F, alg Algorithm) {
	for _, in := range [][]byte{nil, {'x'}, text(1000), random(300, 1), make([]byte, fuzzCap), make([]byte, fuzzCap+1)} {
		f.Add(mustCompress(f, alg, in))
	}
	f.Add([]byte{})
	f.Add(random(64, 9))
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := New(alg, fuzzCap)
		if err != nil {
			t.Fatal(err)
		}
		out, err := c.Decompress(nil, in)
		if err != nil {
			if !errors.Is(err, wire.ErrDecompress) && !errors.Is(err, wire.ErrDecompressLimit) {
				t.Fatalf("error %v wraps neither wire error", err)
			}
			if len(out) != 0 {
				t.Fatalf("%d bytes returned with error %v", len(out), err)
			}
			return
		}
		if len(out) > fuzzCap {
			t.Fatalf("%d bytes decompressed, over the cap of %d", len(out), fuzzCap)
		}
		z, err := c.Compress(nil, out)
		if err != nil {
			t.Fatalf("Compress(%d bytes): %v", len(out), err)
		}
		back, err := c.Decompress(nil, z)
		if err != nil || !bytes.Equal(back, out) {
			t.Fatalf("round trip of %d bytes: %d bytes, %v", len(out), len(back), err)
		}
	})
}
