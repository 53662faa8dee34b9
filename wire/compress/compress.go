// Package compress compresses and decompresses MyClerk payloads with the
// one algorithm a session selected (PROFILE.md §P14, review #14).
//
// Wire formats (normative for the profile):
//
//   - LZ4: uvarint(uncompressed length) followed by one LZ4 block.
//   - Zstd: one standard zstd frame (RFC 8878).
//
// The uvarint is encoding/binary's unsigned varint in its shortest form; the
// LZ4 block is the block format of the LZ4 reference implementation, never
// empty (an empty payload is the single byte 0x00) and decodes to exactly
// the stated length. The zstd frame is a single frame: no dictionary, no
// skippable frame and nothing after it.
//
// Decompression never produces more than the Codec's cap. An LZ4 length
// above the cap is rejected before anything is allocated. A zstd frame is
// rejected before decoding when its header states a content size above the
// cap or a window above the cap (or above 64 KiB, if that is larger), or
// when its raw and RLE blocks alone exceed the cap; without a content size
// it is stopped once its output passes the cap. Either way the error wraps
// wire.ErrDecompressLimit (TOO_LARGE); input that is not a valid payload
// wraps wire.ErrDecompress (BAD_REQUEST).
//
// Compression leaks the payload's content through its length: senders must
// never compress a payload that mixes secrets with data an attacker chooses.
package compress

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"strconv"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"

	"github.com/myclerk/myclerk-bridge/wire"
)

// Algorithm is a compression algorithm. Its values are the draft's
// capability values (§7.1).
type Algorithm uint8

// The algorithms a session may select.
const (
	LZ4  Algorithm = 0 // capability compression-lz4
	Zstd Algorithm = 1 // capability compression-zstd
)

// String returns "lz4" or "zstd".
func (a Algorithm) String() string {
	switch a {
	case LZ4:
		return "lz4"
	case Zstd:
		return "zstd"
	}
	return "Algorithm(" + strconv.Itoa(int(a)) + ")"
}

const (
	// maxLZ4Ratio bounds what one byte of an LZ4 block can expand to: a
	// sequence of n bytes yields fewer than 255n. A length above it cannot
	// be right, so it is refused without allocating.
	maxLZ4Ratio = 255

	// zstdWindow is the least window and memory limit the zstd decoder is
	// given, whatever the cap: every frame has a window of at least 1 KiB
	// and encoders state windows larger than small contents (klauspost's
	// up to twice the size). The cap itself is enforced here.
	zstdWindow = 64 << 10

	// zstdMaxBlock is the most one zstd block produces (RFC 8878 §3.1.1.2.4).
	zstdMaxBlock = 128 << 10

	// zstdLevel is a modest level: about the reference library's level 3.
	zstdLevel = zstd.SpeedDefault

	// zstdEncoderWindow bounds the encoder's window and so the history it
	// keeps once it has compressed a payload of more than one block.
	zstdEncoderWindow = 1 << 20
)

// A Codec compresses and decompresses with one algorithm and a cap on the
// decompressed size; New makes one. It belongs to one session: it keeps
// encoder and decoder state between calls (about 1.3 MiB for zstd once it
// has compressed, 136 KiB for LZ4) and is not safe for concurrent use. It
// starts no goroutines and holds nothing that needs closing.
type Codec struct {
	alg     Algorithm
	maxSize int
	lz4     *lz4.Compressor
	enc     *zstd.Encoder
	dec     *zstd.Decoder
}

// New returns a Codec for alg whose Decompress never produces more than
// maxSize bytes and whose Compress refuses more than maxSize bytes. Callers
// pass wire.MaxDecompressedSize.
func New(alg Algorithm, maxSize int) (*Codec, error) {
	if maxSize <= 0 {
		return nil, fmt.Errorf("compress: cap %d is not positive", maxSize)
	}
	c := &Codec{alg: alg, maxSize: maxSize}
	switch alg {
	case LZ4:
		c.lz4 = new(lz4.Compressor)
	case Zstd:
		var err error
		c.enc, err = zstd.NewWriter(nil,
			zstd.WithEncoderConcurrency(1),
			zstd.WithEncoderLevel(zstdLevel),
			zstd.WithWindowSize(zstdEncoderWindow),
			zstd.WithLowerEncoderMem(true),
			zstd.WithZeroFrames(true))
		if err != nil {
			return nil, fmt.Errorf("compress: zstd encoder: %v", err)
		}
		limit := uint64(max(maxSize, zstdWindow))
		c.dec, err = zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxMemory(limit),
			zstd.WithDecoderMaxWindow(limit))
		if err != nil {
			return nil, fmt.Errorf("compress: zstd decoder: %v", err)
		}
	default:
		return nil, fmt.Errorf("compress: unknown algorithm %d", uint8(alg))
	}
	return c, nil
}

// Algorithm returns the Codec's algorithm.
func (c *Codec) Algorithm() Algorithm { return c.alg }

// Compress appends the compressed form of src to dst and returns the
// extended slice. A src longer than the cap is refused with an error that
// wraps wire.ErrDecompressLimit: no peer with the same cap could take it.
func (c *Codec) Compress(dst, src []byte) ([]byte, error) {
	if len(src) > c.maxSize {
		return dst, fmt.Errorf("%s: %d-byte payload over the cap of %d: %w", c.alg, len(src), c.maxSize, wire.ErrDecompressLimit)
	}
	if c.alg == Zstd {
		return c.enc.EncodeAll(src, dst), nil
	}
	n := len(dst)
	dst = binary.AppendUvarint(dst, uint64(len(src)))
	bound := lz4.CompressBlockBound(len(src))
	dst = grow(dst, bound)
	// With room for CompressBlockBound bytes the block is always written:
	// incompressible input becomes one run of literals.
	k, err := c.lz4.CompressBlock(src, dst[len(dst):len(dst)+bound])
	if err != nil || k == 0 {
		return dst[:n], fmt.Errorf("lz4: compressing %d bytes: %v", len(src), err)
	}
	return dst[:len(dst)+k], nil
}

// Decompress appends the payload that src holds to dst and returns the
// extended slice. It never appends more than the cap. Input that would
// decompress to more fails with an error wrapping wire.ErrDecompressLimit;
// other invalid input fails with one wrapping wire.ErrDecompress. On error
// dst is returned with its length unchanged.
func (c *Codec) Decompress(dst, src []byte) ([]byte, error) {
	if c.alg == Zstd {
		return c.decompressZstd(dst, src)
	}
	return c.decompressLZ4(dst, src)
}

func (c *Codec) decompressLZ4(dst, src []byte) ([]byte, error) {
	n, k := binary.Uvarint(src)
	if k <= 0 || k != uvarintLen(n) {
		return dst, fmt.Errorf("lz4: malformed length prefix: %w", wire.ErrDecompress)
	}
	if n > uint64(c.maxSize) {
		return dst, fmt.Errorf("lz4: length %d over the cap of %d: %w", n, c.maxSize, wire.ErrDecompressLimit)
	}
	block := src[k:]
	if len(block) == 0 || n >= maxLZ4Ratio*uint64(len(block)) {
		return dst, fmt.Errorf("lz4: %d-byte block cannot hold %d bytes: %w", len(block), n, wire.ErrDecompress)
	}
	if n == 0 {
		// The one block that decodes to nothing is a token of no literals
		// and no match. The library is not asked: its amd64 decoder
		// faults on a nil destination.
		if len(block) != 1 || block[0] != 0 {
			return dst, fmt.Errorf("lz4: block does not decode to 0 bytes: %w", wire.ErrDecompress)
		}
		return dst, nil
	}
	out := grow(dst, int(n))[:len(dst)+int(n)]
	if m, err := lz4.UncompressBlock(block, out[len(dst):]); err != nil || m != int(n) {
		return dst, fmt.Errorf("lz4: block does not decode to %d bytes: %w", n, wire.ErrDecompress)
	}
	return out, nil
}

// grow returns b with room for n more bytes. Unlike slices.Grow, it
// allocates exactly that room, and only once even under the race detector.
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	g := make([]byte, len(b), len(b)+n)
	copy(g, b)
	return g
}

// uvarintLen is the length of v's shortest uvarint encoding.
func uvarintLen(v uint64) int { return (bits.Len64(v|1) + 6) / 7 }

func (c *Codec) decompressZstd(dst, src []byte) ([]byte, error) {
	var h zstd.Header
	blocks, err := h.DecodeAndStrip(src)
	if err != nil || h.Skippable {
		return dst, fmt.Errorf("zstd: no frame header: %w", wire.ErrDecompress)
	}
	if h.HasFCS && h.FrameContentSize > uint64(c.maxSize) {
		return dst, fmt.Errorf("zstd: content size %d over the cap of %d: %w", h.FrameContentSize, c.maxSize, wire.ErrDecompressLimit)
	}
	window := max(h.WindowSize, zstd.MinWindowSize)
	if h.SingleSegment {
		window = max(h.FrameContentSize, zstd.MinWindowSize)
	}
	limit := uint64(max(c.maxSize, zstdWindow)) // what the decoder was given
	if window > limit {
		return dst, fmt.Errorf("zstd: window %d over the limit of %d: %w", window, limit, wire.ErrDecompressLimit)
	}
	exact, bound, ok := scanBlocks(blocks, h.HasCheckSum, min(window, zstdMaxBlock))
	switch {
	case !ok:
		return dst, fmt.Errorf("zstd: not exactly one frame: %w", wire.ErrDecompress)
	case exact > uint64(c.maxSize):
		return dst, fmt.Errorf("zstd: raw and RLE blocks of %d bytes over the cap of %d: %w", exact, c.maxSize, wire.ErrDecompressLimit)
	case h.HasFCS && h.FrameContentSize > bound:
		return dst, fmt.Errorf("zstd: blocks cannot hold the content size %d: %w", h.FrameContentSize, wire.ErrDecompress)
	}
	buf := dst
	if !h.HasFCS {
		// Room for all the frame can produce, or for what the decoder
		// produces before it stops: growing by appending would allocate
		// several times as much. (With a content size, the decoder
		// allocates it.)
		buf = grow(dst, int(min(bound, limit+zstdMaxBlock)))
	}
	out, err := c.dec.DecodeAll(src, buf)
	switch {
	case errors.Is(err, zstd.ErrDecoderSizeExceeded):
		return dst, fmt.Errorf("zstd: output over the cap of %d: %w", c.maxSize, wire.ErrDecompressLimit)
	case err != nil:
		return dst, fmt.Errorf("zstd: %w (%v)", wire.ErrDecompress, err)
	case len(out)-len(dst) > c.maxSize:
		return dst, fmt.Errorf("zstd: %d-byte output over the cap of %d: %w", len(out)-len(dst), c.maxSize, wire.ErrDecompressLimit)
	}
	return out, nil
}

// scanBlocks walks the blocks that follow a zstd frame header, reading only
// their headers. ok reports whether the last block, then the checksum if
// the frame has one, end b exactly. exact is the output of the raw and RLE
// blocks; bound adds blockMax, the most a block may produce, for each
// compressed block.
func scanBlocks(b []byte, checksum bool, blockMax uint64) (exact, bound uint64, ok bool) {
	for {
		if len(b) < 3 {
			return 0, 0, false
		}
		bh := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16
		size := int(bh >> 3)
		switch bh >> 1 & 3 {
		case 0: // raw
			exact += uint64(size)
		case 1: // RLE: one byte, repeated size times
			exact += uint64(size)
			size = 1
		default: // compressed, or reserved (the decoder refuses it)
			bound += blockMax
		}
		if len(b)-3 < size {
			return 0, 0, false
		}
		b = b[3+size:]
		if bh&1 != 0 {
			break
		}
	}
	if checksum && len(b) != 4 || !checksum && len(b) != 0 {
		return 0, 0, false
	}
	return exact, exact + bound, true
}
