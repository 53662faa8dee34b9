// Package frameevent carries MyClerk frames in Matrix room events
// (PROFILE.md §P39): one frame per event of type EventType, as unpadded
// base64 in the content's "frame" member. Frames stay sealed by MyClerk
// (Tier 3 and up), so a homeserver never sees plaintext. The package is
// pure: it encodes and decodes event content; the bridge sends it.
package frameevent

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/myclerk/myclerk-bridge/wire"
)

// EventType is the custom room event type of a frame.
const EventType = "eu.myclerk.frame"

// MaxFrame bounds a frame in one event: its base64 (4/3 of it) plus the
// event's envelope (sender, room, signatures, hashes: a few KiB) stays far
// below Matrix's 65,536-byte limit on a whole event. Sessions over Matrix
// use it as their MaxFrame, so larger messages are fragmented by the
// profile's fragmentation (§P13).
const MaxFrame = 36 << 10

// PowerLevel is the power level needed to send frames in a bridged room;
// the bridge bot and the users the ACL allows get it, others do not.
const PowerLevel = 50

// Content is the content of a frame event.
type Content struct {
	Frame string `json:"frame"` // unpadded standard base64 of one frame
}

// Encode puts one frame into event content.
func Encode(frame []byte) (Content, error) {
	if len(frame) == 0 {
		return Content{}, fmt.Errorf("frame event: %w", wire.ErrTruncated)
	}
	if len(frame) > MaxFrame {
		return Content{}, fmt.Errorf("frame event: %d bytes, limit %d: %w", len(frame), MaxFrame, wire.ErrTooLarge)
	}
	return Content{Frame: base64.RawStdEncoding.EncodeToString(frame)}, nil
}

// maxEncoded bounds the base64 text accepted: MaxFrame bytes, padded.
const maxEncoded = (MaxFrame + 2) / 3 * 4

// Decode reads one frame from event content as raw JSON. It accepts
// padded and unpadded base64 and refuses content over the size limit
// before decoding it.
func Decode(raw json.RawMessage) ([]byte, error) {
	if len(raw) > maxEncoded+1024 {
		return nil, fmt.Errorf("frame event: content of %d bytes: %w", len(raw), wire.ErrTooLarge)
	}
	var c Content
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("frame event: %w: %v", wire.ErrMalformed, err)
	}
	return DecodeString(c.Frame)
}

// DecodeString decodes the "frame" member.
func DecodeString(s string) ([]byte, error) {
	if s == "" {
		return nil, fmt.Errorf("frame event: no frame: %w", wire.ErrTruncated)
	}
	if len(s) > maxEncoded {
		return nil, fmt.Errorf("frame event: %d characters: %w", len(s), wire.ErrTooLarge)
	}
	b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil, fmt.Errorf("frame event: %w: %v", wire.ErrMalformed, err)
	}
	switch {
	case len(b) == 0: // "=" alone
		return nil, fmt.Errorf("frame event: no frame: %w", wire.ErrTruncated)
	case len(b) > MaxFrame:
		return nil, fmt.Errorf("frame event: %d bytes: %w", len(b), wire.ErrTooLarge)
	}
	return b, nil
}

// PowerLevels returns the "events" entry a bridged room's power levels
// need so that only users at PowerLevel or above send frames.
func PowerLevels() map[string]int { return map[string]int{EventType: PowerLevel} }
