package wire

import "encoding/binary"

// FragmentHeader is the fragment sub-header (PROFILE.md §P13). It follows
// the tier header when the F flag is set, is covered by the frame's CRC,
// tag and HMAC, and is never encrypted.
//
//	message-id u32 | index u16 | total u16   (big-endian, 8 bytes)
type FragmentHeader struct {
	MessageID uint32
	Index     uint16
	Total     uint16
}

// Validate checks the sub-header on its own: 2 <= Total <= MaxFragments and
// Index < Total.
func (f FragmentHeader) Validate() error {
	if f.Total < 2 || f.Total > MaxFragments || f.Index >= f.Total {
		return ErrFragment
	}
	return nil
}

// AppendTo appends the 8-byte encoding of f to dst.
func (f FragmentHeader) AppendTo(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, f.MessageID)
	dst = binary.BigEndian.AppendUint16(dst, f.Index)
	return binary.BigEndian.AppendUint16(dst, f.Total)
}

// DecodeFragmentHeader reads and validates a sub-header from the start of b.
func DecodeFragmentHeader(b []byte) (FragmentHeader, error) {
	if len(b) < FragmentHeaderSize {
		return FragmentHeader{}, ErrTruncated
	}
	f := FragmentHeader{
		MessageID: binary.BigEndian.Uint32(b),
		Index:     binary.BigEndian.Uint16(b[4:]),
		Total:     binary.BigEndian.Uint16(b[6:]),
	}
	return f, f.Validate()
}
