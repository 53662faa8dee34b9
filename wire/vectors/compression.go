package vectors

import (
	"bytes"
	"fmt"

	"github.com/myclerk/myclerk-bridge/wire"
	"github.com/myclerk/myclerk-bridge/wire/compress"
)

// CompressionVector is a compressed payload and what it must decompress
// to with the given cap, or the reason it must be refused. Encoders may
// produce other bytes; decoders must accept these.
type CompressionVector struct {
	Name         string `json:"name"`
	Algorithm    string `json:"algorithm"` // "lz4" or "zstd"
	Compressed   Hex    `json:"compressed"`
	Cap          int    `json:"cap"`
	Decompressed Hex    `json:"decompressed,omitempty"`
	Reason       string `json:"reason,omitempty"`
}

func compressionFile(*handshakeVector) (*File, error) {
	text := bytes.Repeat([]byte("myclerk family sensor reading 21.5C; "), 20)
	var out []CompressionVector
	for _, alg := range []compress.Algorithm{compress.LZ4, compress.Zstd} {
		big, err := compress.New(alg, 1<<20)
		if err != nil {
			return nil, err
		}
		add := func(name string, plain []byte, capSize int, reason string) error {
			c, err := big.Compress(nil, plain)
			if err != nil {
				return err
			}
			v := CompressionVector{Name: name, Algorithm: alg.String(), Compressed: c, Cap: capSize, Reason: reason}
			if reason == "" {
				v.Decompressed = plain
			}
			if err := CheckCompression(&v); err != nil {
				return fmt.Errorf("compression vector %s %q: %w", alg, name, err)
			}
			out = append(out, v)
			return nil
		}
		if err := add("repetitive text", text, wire.MaxDecompressedSize, ""); err != nil {
			return nil, err
		}
		if err := add("empty payload", nil, wire.MaxDecompressedSize, ""); err != nil {
			return nil, err
		}
		if err := add("exactly at the cap", text[:256], 256, ""); err != nil {
			return nil, err
		}
		if err := add("bomb: 1 MiB of zeros against a 64 KiB cap", make([]byte, 1<<20), 64<<10, wire.ErrDecompressLimit.Reason); err != nil {
			return nil, err
		}
		garbage := CompressionVector{Name: "garbage", Algorithm: alg.String(), Compressed: []byte{0x05, 0xff, 0xff, 0xff, 0xff, 0x00, 0x13},
			Cap: wire.MaxDecompressedSize, Reason: wire.ErrDecompress.Reason}
		if alg == compress.Zstd {
			garbage.Compressed = []byte{0x28, 0xb5, 0x2f, 0xfd, 0xff, 0xff, 0xff, 0xff, 0x00, 0x13}
		}
		if err := CheckCompression(&garbage); err != nil {
			return nil, fmt.Errorf("compression vector %s garbage: %w", alg, err)
		}
		out = append(out, garbage)
	}
	lz4Len := CompressionVector{Name: "lz4 length prefix above the cap: refused before allocating", Algorithm: "lz4",
		Compressed: []byte{0x80, 0x80, 0x80, 0x80, 0x08, 0x00}, Cap: wire.MaxDecompressedSize, Reason: wire.ErrDecompressLimit.Reason}
	if err := CheckCompression(&lz4Len); err != nil {
		return nil, fmt.Errorf("compression vector lz4 length: %w", err)
	}
	out = append(out, lz4Len)
	return &File{Name: "compression.json", Description: "Compression (PROFILE.md §P14): lz4 = uvarint(uncompressed length) ‖ one LZ4 block; zstd = one zstd frame (RFC 8878). " +
		"Decompressing more than `cap` bytes is refused; C=1 means the session's one algorithm.", Vectors: out}, nil
}

// CheckCompression decompresses a vector with its cap and checks the outcome.
func CheckCompression(v *CompressionVector) error {
	alg := compress.LZ4
	switch v.Algorithm {
	case "lz4":
	case "zstd":
		alg = compress.Zstd
	default:
		return fmt.Errorf("unknown algorithm %q", v.Algorithm)
	}
	c, err := compress.New(alg, v.Cap)
	if err != nil {
		return err
	}
	got, err := c.Decompress(nil, v.Compressed)
	if v.Reason != "" {
		if err == nil || wire.ReasonOf(err) != v.Reason {
			return fmt.Errorf("decompressed or wrong error (%v), want %q", err, v.Reason)
		}
		return nil
	}
	if err != nil {
		return err
	}
	if !bytes.Equal(got, v.Decompressed) {
		return fmt.Errorf("decompressed bytes differ")
	}
	return nil
}
