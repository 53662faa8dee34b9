package compress

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/myclerk/myclerk-bridge/wire"
)

var algorithms = []Algorithm{LZ4, Zstd}

// random returns n deterministic pseudo-random bytes.
func random(n int, seed byte) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

// text returns n bytes of repetitive, compressible text.
func text(n int) []byte {
	return []byte(strings.Repeat("myclerk family sensor reading 21.5C; ", n/37+1)[:n])
}

func newCodec(t testing.TB, alg Algorithm, maxSize int) *Codec {
	t.Helper()
	c, err := New(alg, maxSize)
	if err != nil {
		t.Fatalf("New(%v, %d): %v", alg, maxSize, err)
	}
	return c
}

func mustCompress(t testing.TB, alg Algorithm, src []byte) []byte {
	t.Helper()
	out, err := newCodec(t, alg, max(len(src), 1)).Compress(nil, src)
	if err != nil {
		t.Fatalf("%v: Compress(%d bytes): %v", alg, len(src), err)
	}
	return out
}

// wantErr checks that err wraps target and carries target's code.
func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error %v, want %v", err, target)
	}
	if got, want := wire.CodeOf(err), wire.CodeOf(target); got != want {
		t.Fatalf("CodeOf(%v) = %v, want %v", err, got, want)
	}
}

// allocated returns the bytes f allocates.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestAlgorithm(t *testing.T) {
	for _, tt := range []struct {
		a    Algorithm
		want string
	}{{LZ4, "lz4"}, {Zstd, "zstd"}, {7, "Algorithm(7)"}} {
		if got := tt.a.String(); got != tt.want {
			t.Errorf("Algorithm(%d).String() = %q, want %q", uint8(tt.a), got, tt.want)
		}
	}
	for _, alg := range algorithms {
		if got := newCodec(t, alg, 1).Algorithm(); got != alg {
			t.Errorf("Algorithm() = %v, want %v", got, alg)
		}
	}
}

func TestNewRejects(t *testing.T) {
	for _, tt := range []struct {
		alg     Algorithm
		maxSize int
	}{{LZ4, 0}, {Zstd, 0}, {LZ4, -1}, {Zstd, math.MinInt}, {2, 1 << 20}, {255, 1 << 20}} {
		if c, err := New(tt.alg, tt.maxSize); err == nil {
			t.Errorf("New(%v, %d) = %v, want an error", tt.alg, tt.maxSize, c)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	inputs := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"1 byte", []byte{'x'}},
		{"text", text(1000)},
		{"64 KiB of zeros", make([]byte, 64<<10)},
		{"1 MiB random", random(1<<20, 1)},
	}
	for _, alg := range algorithms {
		// One Codec for every input, as in a session.
		c := newCodec(t, alg, wire.MaxDecompressedSize)
		for _, in := range inputs {
			t.Run(fmt.Sprintf("%v/%s", alg, in.name), func(t *testing.T) {
				prefix := []byte("prefix")
				z, err := c.Compress(prefix, in.data)
				if err != nil {
					t.Fatalf("Compress: %v", err)
				}
				if !bytes.HasPrefix(z, prefix) {
					t.Fatalf("Compress did not append to dst")
				}
				z = z[len(prefix):]
				got, err := c.Decompress(prefix, z)
				if err != nil {
					t.Fatalf("Decompress: %v", err)
				}
				if !bytes.HasPrefix(got, prefix) || !bytes.Equal(got[len(prefix):], in.data) {
					t.Fatalf("round trip of %d bytes gave %d bytes that differ", len(in.data), len(got)-len(prefix))
				}
				t.Logf("%d -> %d bytes", len(in.data), len(z))
			})
		}
	}
}

// TestFormat pins the LZ4 layout and that zstd output is a single frame.
func TestFormat(t *testing.T) {
	if got, want := mustCompress(t, LZ4, nil), []byte{0x00, 0x00}; !bytes.Equal(got, want) {
		t.Errorf("lz4 empty payload = %x, want %x", got, want)
	}
	if got, want := mustCompress(t, LZ4, []byte("abc")), []byte{0x03, 0x30, 'a', 'b', 'c'}; !bytes.Equal(got, want) {
		t.Errorf("lz4 \"abc\" = %x, want %x", got, want)
	}
	z := mustCompress(t, LZ4, random(300, 2)) // incompressible: literals only
	if n, k := binary.Uvarint(z); n != 300 || k != 2 || z[2] != 0xf0 {
		t.Errorf("lz4 of 300 random bytes starts %x", z[:4])
	}
	for _, n := range []int{0, 1, 1000, 1 << 20} {
		z := mustCompress(t, Zstd, text(n))
		if !bytes.HasPrefix(z, []byte{0x28, 0xb5, 0x2f, 0xfd}) {
			t.Errorf("zstd of %d bytes does not start with the frame magic: %x", n, z[:4])
		}
	}
}

// zstdRLEFrame returns a zstd frame with no content size, the given window
// (a power of two) and the given number of RLE blocks of zeros, each of the
// largest size the window allows: four bytes a block.
func zstdRLEFrame(window, blocks int) []byte {
	f := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, byte(bits.Len(uint(window))-1-10) << 3}
	for i := range blocks {
		bh := uint32(min(window, 128<<10))<<3 | 1<<1
		if i == blocks-1 {
			bh |= 1
		}
		f = append(f, byte(bh), byte(bh>>8), byte(bh>>16), 0)
	}
	return f
}

// withoutContentSize rewrites a zstd frame's header to leave out the
// content size, so that only decoding tells how much it produces.
func withoutContentSize(t testing.TB, frame []byte) []byte {
	t.Helper()
	var h zstd.Header
	blocks, err := h.DecodeAndStrip(frame)
	if err != nil || h.SingleSegment || h.WindowSize&(h.WindowSize-1) != 0 {
		t.Fatalf("cannot rewrite header %+v (%v)", h, err)
	}
	fhd := byte(0)
	if h.HasCheckSum {
		fhd |= 1 << 2
	}
	wd := byte(bits.Len64(h.WindowSize)-1-10) << 3
	return append([]byte{0x28, 0xb5, 0x2f, 0xfd, fhd, wd}, blocks...)
}

func TestBomb(t *testing.T) {
	const capSize = 1 << 20
	bombs := []struct {
		name string
		alg  Algorithm
		z    []byte
	}{
		{"lz4 64 MiB of zeros", LZ4, mustCompress(t, LZ4, make([]byte, 64<<20))},
		{"zstd 64 MiB of zeros", Zstd, mustCompress(t, Zstd, make([]byte, 64<<20))},
		{"zstd 64 MiB of zeros, no content size", Zstd, withoutContentSize(t, mustCompress(t, Zstd, make([]byte, 64<<20)))},
		{"zstd 64 MiB of RLE blocks, no content size", Zstd, zstdRLEFrame(1<<20, 512)},
	}
	for _, b := range bombs {
		t.Run(b.name, func(t *testing.T) {
			c := newCodec(t, b.alg, capSize)
			// Warm the Codec up, as a session's would be.
			if _, err := c.Decompress(nil, mustCompress(t, b.alg, text(1000))); err != nil {
				t.Fatal(err)
			}
			var out []byte
			var err error
			n := uint64(math.MaxUint64)
			for range 3 { // the least: under -race, sync.Pool drops some buffers
				n = min(n, allocated(func() { out, err = c.Decompress(nil, b.z) }))
			}
			wantErr(t, err, wire.ErrDecompressLimit)
			if len(out) != 0 {
				t.Errorf("returned %d bytes with the error", len(out))
			}
			t.Logf("%d-byte bomb: %d bytes allocated (%v)", len(b.z), n, err)
			if n > 2*capSize {
				t.Errorf("allocated %d bytes, more than twice the %d-byte cap", n, capSize)
			}
		})
	}
}

func TestCap(t *testing.T) {
	for _, alg := range algorithms {
		for _, capSize := range []int{1, 255, 1000, 1024, 1025, 64 << 10, 200 << 10} {
			for _, kind := range []string{"text", "random"} {
				payload := func(n int) []byte {
					if kind == "text" {
						return text(n)
					}
					return random(n, 3)
				}
				t.Run(fmt.Sprintf("%v/%d/%s", alg, capSize, kind), func(t *testing.T) {
					c := newCodec(t, alg, capSize)
					at, over := payload(capSize), payload(capSize+1)
					z, err := c.Compress(nil, at)
					if err != nil {
						t.Fatalf("Compress at the cap: %v", err)
					}
					got, err := c.Decompress(nil, z)
					if err != nil || !bytes.Equal(got, at) {
						t.Fatalf("Decompress at the cap: %d bytes, %v", len(got), err)
					}
					_, err = c.Compress(nil, over)
					wantErr(t, err, wire.ErrDecompressLimit)
					_, err = c.Decompress(nil, mustCompress(t, alg, over))
					wantErr(t, err, wire.ErrDecompressLimit)
				})
			}
		}
	}
}

func TestLZ4Rejects(t *testing.T) {
	const capSize = wire.MaxDecompressedSize
	valid := mustCompress(t, LZ4, text(1000))
	block := valid[2:] // uvarint(1000) is two bytes
	uv := func(n uint64, b []byte) []byte { return append(binary.AppendUvarint(nil, n), b...) }
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, wire.ErrDecompress},
		{"length only", []byte{0x00}, wire.ErrDecompress},
		{"length over the cap", uv(capSize+1, block), wire.ErrDecompressLimit},
		{"length 2^64-1", uv(math.MaxUint64, block), wire.ErrDecompressLimit},
		{"uvarint overflowing 64 bits", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00}, wire.ErrDecompress},
		{"uvarint of 11 bytes", append(bytes.Repeat([]byte{0x80}, 10), 0x00, 0x00), wire.ErrDecompress},
		{"truncated uvarint", []byte{0x80}, wire.ErrDecompress},
		{"uvarint not in shortest form", append([]byte{0xe8, 0x87, 0x00}, block...), wire.ErrDecompress},
		{"empty payload, non-minimal length", []byte{0x80, 0x00, 0x00}, wire.ErrDecompress},
		{"empty payload, two tokens", []byte{0x00, 0x00, 0x00}, wire.ErrDecompress},
		{"empty payload, literals", []byte("\x00000000000000000000"), wire.ErrDecompress},
		{"length one short", uv(999, block), wire.ErrDecompress},
		{"length one long", uv(1001, block), wire.ErrDecompress},
		{"length beyond what the block can hold", uv(capSize, block), wire.ErrDecompress},
		{"truncated block", valid[:len(valid)-1], wire.ErrDecompress},
		{"block cut in half", valid[:len(valid)/2], wire.ErrDecompress},
		{"trailing byte", append(bytes.Clone(valid), 0x00), wire.ErrDecompress},
		{"offset before the start", uv(8, []byte{0x04, 0x00, 0x10, 0x00}), wire.ErrDecompress},
		{"zero offset", uv(8, []byte{0x14, 'a', 0x00, 0x00, 0x00}), wire.ErrDecompress},
	}
	for i := range 8 {
		tests = append(tests, struct {
			name string
			in   []byte
			want error
		}{fmt.Sprintf("garbage %d", i), random(1+i*97, byte(10+i)), nil})
	}
	c := newCodec(t, LZ4, capSize)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A nil dst once crashed the library's decoder (fuzz corpus
			// crash-nil-destination).
			if _, err := c.Decompress(nil, tt.in); err == nil {
				t.Fatalf("accepted %x into a nil dst", tt.in)
			}
			prefix := []byte("keep")
			out, err := c.Decompress(prefix, tt.in)
			if err == nil {
				t.Fatalf("accepted %x as %d bytes", tt.in, len(out)-len(prefix))
			}
			if string(out) != "keep" {
				t.Errorf("dst changed to %q on error", out)
			}
			want := tt.want
			if want == nil { // garbage: either error will do
				want = wire.ErrDecompress
				if errors.Is(err, wire.ErrDecompressLimit) {
					want = wire.ErrDecompressLimit
				}
			}
			wantErr(t, err, want)
		})
	}
}

// TestLZ4LengthBeforeAllocation checks that a forged length is refused
// without allocating the buffer it asks for.
func TestLZ4LengthBeforeAllocation(t *testing.T) {
	c := newCodec(t, LZ4, wire.MaxDecompressedSize)
	for _, in := range [][]byte{
		binary.AppendUvarint(nil, wire.MaxDecompressedSize+1),                   // over the cap
		append(binary.AppendUvarint(nil, wire.MaxDecompressedSize), 0x1f, 0x00), // at the cap, tiny block
		binary.AppendUvarint(nil, math.MaxUint64),
	} {
		var err error
		if n := allocated(func() { _, err = c.Decompress(nil, in) }); n > 4<<10 {
			t.Errorf("%x: allocated %d bytes (%v)", in, n, err)
		}
		if err == nil {
			t.Errorf("%x: accepted", in)
		}
	}
}

func TestZstdRejects(t *testing.T) {
	const capSize = 1 << 20
	valid := mustCompress(t, Zstd, text(1000))
	flipped := bytes.Clone(valid)
	flipped[len(flipped)-1] ^= 1 // the content checksum
	header := func(b ...byte) []byte { return append([]byte{0x28, 0xb5, 0x2f, 0xfd}, b...) }
	// A frame whose header states a 2 GiB content size (FCS field of 4 bytes).
	bigFCS := header(0x80, 0x50, 0x00, 0x00, 0x00, 0x80, 0x01, 0x00, 0x00)
	// A frame whose header states a 2 GiB window.
	bigWindow := header(0x00, 0xa8, 0x01, 0x00, 0x00)
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, wire.ErrDecompress},
		{"magic only", header(), wire.ErrDecompress},
		{"bad magic", append([]byte{0x28, 0xb5, 0x2f, 0xfe}, valid[4:]...), wire.ErrDecompress},
		{"reserved header bit", header(0x08, 0x50, 0x01, 0x00, 0x00), wire.ErrDecompress},
		{"truncated frame", valid[:len(valid)-1], wire.ErrDecompress},
		{"frame cut in half", valid[:len(valid)/2], wire.ErrDecompress},
		{"header only", valid[:6], wire.ErrDecompress},
		{"checksum mismatch", flipped, wire.ErrDecompress},
		{"trailing byte", append(bytes.Clone(valid), 0x00), wire.ErrDecompress},
		{"two frames", append(bytes.Clone(valid), valid...), wire.ErrDecompress},
		{"skippable frame", []byte{0x50, 0x2a, 0x4d, 0x18, 0x00, 0x00, 0x00, 0x00}, wire.ErrDecompress},
		{"skippable frame then a frame", append([]byte{0x50, 0x2a, 0x4d, 0x18, 0x00, 0x00, 0x00, 0x00}, valid...), wire.ErrDecompress},
		{"unknown dictionary", header(0x01, 0x50, 0x07, 0x01, 0x00, 0x00), wire.ErrDecompress},
		{"reserved block type", header(0x00, 0x50, 0x07, 0x00, 0x00), wire.ErrDecompress},
		{"content size over the cap", bigFCS, wire.ErrDecompressLimit},
		{"window over the cap", bigWindow, wire.ErrDecompressLimit},
		{"RLE blocks past the cap", zstdRLEFrame(1<<20, 9), wire.ErrDecompressLimit},
		{"content size disagrees", header(0x20, 0x05, 0x01, 0x00, 0x00), wire.ErrDecompress},
		{"content size beyond the blocks", header(0x40, 0x50, 0xe8, 0x02, 0x01, 0x00, 0x00), wire.ErrDecompress},
	}
	for i := range 8 {
		tests = append(tests, struct {
			name string
			in   []byte
			want error
		}{fmt.Sprintf("garbage %d", i), random(1+i*97, byte(20+i)), wire.ErrDecompress})
	}
	c := newCodec(t, Zstd, capSize)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("keep")
			out, err := c.Decompress(prefix, tt.in)
			if err == nil {
				t.Fatalf("accepted %x as %d bytes", tt.in, len(out)-len(prefix))
			}
			if string(out) != "keep" {
				t.Errorf("dst changed to %q on error", out)
			}
			wantErr(t, err, tt.want)
		})
	}
	// Every proper prefix of a frame is refused.
	for n := range len(valid) {
		if _, err := c.Decompress(nil, valid[:n]); !errors.Is(err, wire.ErrDecompress) {
			t.Errorf("frame truncated to %d bytes: %v", n, err)
		}
	}
	// The RLE frame below the cap is valid: the bomb test relies on it.
	if out, err := c.Decompress(nil, zstdRLEFrame(1<<20, 8)); err != nil || len(out) != capSize {
		t.Errorf("8 RLE blocks: %d bytes, %v", len(out), err)
	}
}

// TestSmallAllocations checks that a small payload costs little memory to
// decompress, in particular a zstd frame without a content size.
func TestSmallAllocations(t *testing.T) {
	for _, alg := range algorithms {
		c := newCodec(t, alg, wire.MaxDecompressedSize)
		for _, n := range []int{10, 200, 1000} {
			z := mustCompress(t, alg, text(n))
			if _, err := c.Decompress(nil, z); err != nil { // warm up
				t.Fatal(err)
			}
			// The least of several runs: under the race detector, sync.Pool
			// drops some of the library's buffers.
			var err error
			a := uint64(math.MaxUint64)
			for range 10 {
				a = min(a, allocated(func() { _, err = c.Decompress(nil, z) }))
			}
			if err != nil || a > 4<<10 {
				t.Errorf("%v: %d bytes from %d: %d bytes allocated (%v)", alg, n, len(z), a, err)
			}
		}
	}
}

// TestNoGoroutines checks that a Codec in use starts no goroutines.
func TestNoGoroutines(t *testing.T) {
	// Look for goroutines running the compression libraries, rather than
	// counting all goroutines: other tests' goroutines come and go.
	libraryGoroutines := func() int {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		return strings.Count(stacks, "klauspost/compress") + strings.Count(stacks, "pierrec/lz4")
	}
	before := libraryGoroutines()
	for _, alg := range algorithms {
		c := newCodec(t, alg, wire.MaxDecompressedSize)
		for _, in := range [][]byte{nil, text(100), make([]byte, 1<<20), random(1<<20, 4)} {
			z, err := c.Compress(nil, in)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Decompress(nil, z); err != nil {
				t.Fatal(err)
			}
		}
		c.Decompress(nil, random(1000, 5))
		c.Decompress(nil, zstdRLEFrame(1<<20, 100))
		if after := libraryGoroutines(); after != before {
			t.Errorf("%v: %d stack frames in the compression libraries, %d before", alg, after, before)
		}
	}
}

// records returns n bytes of JSON-like sensor records with deterministic
// pseudo-random values: compressible, but not trivially.
func records(n int) []byte {
	r := rand.New(rand.NewChaCha8([32]byte{'r'}))
	b := make([]byte, 0, n+64)
	for len(b) < n {
		b = fmt.Appendf(b, `{"sensor":"room-%d","t":%d,"v":%.2f},`, r.IntN(50), 1700000000+r.IntN(1e6), r.Float64()*30)
	}
	return b[:n]
}

func benchInputs() []struct {
	name string
	data []byte
} {
	return []struct {
		name string
		data []byte
	}{{"1KiB", records(1 << 10)}, {"64KiB", records(64 << 10)}}
}

func BenchmarkCompress(b *testing.B) {
	for _, alg := range algorithms {
		for _, in := range benchInputs() {
			b.Run(alg.String()+"/"+in.name, func(b *testing.B) {
				c := newCodec(b, alg, wire.MaxDecompressedSize)
				dst := make([]byte, 0, 2*len(in.data))
				b.SetBytes(int64(len(in.data)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := c.Compress(dst[:0], in.data); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkDecompress(b *testing.B) {
	for _, alg := range algorithms {
		for _, in := range benchInputs() {
			b.Run(alg.String()+"/"+in.name, func(b *testing.B) {
				c := newCodec(b, alg, wire.MaxDecompressedSize)
				z := mustCompress(b, alg, in.data)
				dst := make([]byte, 0, len(in.data))
				b.SetBytes(int64(len(in.data)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := c.Decompress(dst[:0], z); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(z))/float64(len(in.data)), "ratio")
			})
		}
	}
}
