package inspect

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/myclerk/myclerk-bridge/wire"
)

var now = time.Unix(1_767_225_600, 0)

func keys() *KeyMaterial {
	var s wire.SessionSecrets
	for i := range s.SessionKey {
		s.SessionKey[i], s.TranscriptHash[i], s.InitiatorKey[i], s.ResponderKey[i] = byte(i), byte(2*i), byte(3*i), byte(4*i)
	}
	return FromSecrets(&s)
}

func TestEncodeDescribeRoundTrip(t *testing.T) {
	ts := uint32(now.Unix())
	tests := []Frame{
		{Tier: 1, Op: "KEEPALIVE", Sequence: ptr[uint8](3)},
		{Tier: 2, Op: "0x0201", SessionID: ptr[uint16](77), Payload: Hex("dev")},
		{Tier: 2, Op: "STREAM_DATA", Fragment: &Fragment{MessageID: 1, Index: 1, Total: 2}, Payload: Hex("xy")},
		{Tier: 3, Op: "GPIO_LINE_SET", Encrypted: true, SessionID: ptr[uint16](5), Timestamp: &ts, Counter: ptr[uint32](300), Payload: Hex("on")},
		{Tier: 3, Op: "GPIO_LINE_GET", Timestamp: &ts, Payload: Hex("clear but authenticated")},
		{Tier: 4, Op: "KEY_EXCHANGE_INIT", Encrypted: true, Timestamp: &ts, KeyID: ptr[uint32](2), Payload: Hex("k")},
		{Tier: 5, Op: "DEVICE_LOCK", Encrypted: true, Timestamp: &ts, Payload: Hex("lock")},
		{Tier: 5, Op: "DEVICE_UNLOCK", Timestamp: &ts, Fragment: &Fragment{MessageID: 9, Index: 0, Total: 3}, Payload: Hex("unlock")},
	}
	for _, fr := range tests {
		b, err := Encode(&fr, EncodeOptions{Keys: keys(), Direction: wire.ResponderToInitiator})
		if err != nil {
			t.Fatalf("%+v: %v", fr, err)
		}
		var ep uint32
		if fr.KeyID != nil {
			ep = *fr.KeyID // the receiver is in the frame's epoch
		}
		d := Describe(b, Options{Keys: keys(), Direction: wire.ResponderToInitiator, Now: now, Epoch: ep})
		if d.Error != "" || d.OpenError != "" {
			t.Fatalf("tier %d %s: %s %s", fr.Tier, fr.Op, d.Error, d.OpenError)
		}
		got := d.Payload
		if d.Opened != nil {
			got = d.Opened.Plaintext
			if fr.Counter != nil && d.Opened.Counter != *fr.Counter {
				t.Errorf("counter %d, want %d", d.Opened.Counter, *fr.Counter)
			}
		}
		if string(got) != string(fr.Payload) {
			t.Errorf("tier %d %s: payload %q", fr.Tier, fr.Op, got)
		}
		if fr.Tier >= 3 && d.Opened == nil {
			t.Errorf("tier %d not opened", fr.Tier)
		}
		// The description is itself an encoding input: re-encoding a
		// decoded plain frame gives the same bytes.
		if fr.Tier <= 2 {
			again, err := Encode(&d, EncodeOptions{})
			if err != nil || string(again) != string(b) {
				t.Errorf("re-encode tier %d: %v", fr.Tier, err)
			}
		}
		if _, err := json.Marshal(d); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDescribeReasons(t *testing.T) {
	ts := uint32(now.Unix())
	b, _ := Encode(&Frame{Tier: 3, Op: "NOP", Encrypted: true, Timestamp: &ts, Payload: Hex("p")},
		EncodeOptions{Keys: keys(), Direction: wire.InitiatorToResponder})
	tests := []struct {
		name string
		in   []byte
		opts Options
		want string
	}{
		{"wrong direction", b, Options{Keys: keys(), Direction: wire.ResponderToInitiator, Now: now}, "authentication failed"},
		{"stale", b, Options{Keys: keys(), Now: now.Add(time.Hour)}, "timestamp outside the allowed skew"},
		{"replay", b, Options{Keys: keys(), Now: now, Largest: ptr[uint64](0)}, "replayed or too old counter"},
		{"bad key", b, Options{Keys: &KeyMaterial{SessionKey: Hex{1}}, Now: now}, "session_key has 1 bytes"},
	}
	for _, tt := range tests {
		d := Describe(tt.in, tt.opts)
		if !strings.Contains(d.OpenError, tt.want) {
			t.Errorf("%s: open_error %q, want %q", tt.name, d.OpenError, tt.want)
		}
	}
	for in, want := range map[string]string{
		"":                                 "truncated frame",
		"\x00":                             "tier 0 frame outside a sealed frame",
		"\x30\x00\x00\x00":                 "unknown security tier",
		"\x48\x00\x00\x00":                 "unknown protocol version",
		"\x10\x00\x01\x00\x00\x01\xff\xff": "CRC-16",
	} {
		if d := Describe([]byte(in), Options{}); !strings.Contains(d.Error, want) {
			t.Errorf("%x: error %q, want %q", in, d.Error, want)
		}
	}
}

func TestEncodeRejects(t *testing.T) {
	for _, fr := range []Frame{
		{Tier: 6, Op: "NOP"},
		{Tier: 1},
		{Tier: 1, Op: "NOT_AN_OP"},
		{Tier: 3, Op: "NOP"}, // no keys
		{Tier: 2, Op: "NOP", Encrypted: true},
		{Tier: 4, Op: "SESSION_INIT"}, // no public key
		{Tier: 0, Fragmented: true},
	} {
		if _, err := Encode(&fr, EncodeOptions{}); err == nil {
			t.Errorf("%+v encoded", fr)
		}
	}
}

func FuzzDescribe(f *testing.F) {
	ts := uint32(now.Unix())
	for tier := uint8(1); tier <= 5; tier++ {
		b, _ := Encode(&Frame{Tier: tier, Op: "DEVICE_INFO", Encrypted: tier >= 3, Timestamp: &ts, Payload: Hex("x")},
			EncodeOptions{Keys: keys()})
		f.Add(b)
	}
	f.Add([]byte{0x04, 1, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		d := Describe(b, Options{Keys: keys(), Now: now})
		if _, err := json.Marshal(d); err != nil {
			t.Fatal(err)
		}
	})
}

// TestDescribeEpochs: a Tier 4-5 frame opens only in the receiver's epoch
// or the next, as in a session (PROFILE.md §P16), whatever epoch its Key ID
// names; and a Tier 0 first byte is "outside a sealed frame" whatever its
// other flags (§P11).
func TestDescribeEpochs(t *testing.T) {
	ts := uint32(now.Unix())
	fr := Frame{Tier: 4, Op: "DEVICE_LOCK", Encrypted: true, Timestamp: &ts, KeyID: ptr[uint32](2), Payload: Hex("k")}
	b, err := Encode(&fr, EncodeOptions{Keys: keys(), Direction: wire.ResponderToInitiator, Epoch: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		epoch uint32
		want  string
	}{{2, ""}, {1, ""}, {0, "unknown key epoch"}, {3, "unknown key epoch"}} {
		d := Describe(b, Options{Keys: keys(), Direction: wire.ResponderToInitiator, Now: now, Epoch: tc.epoch})
		if !strings.Contains(d.OpenError, tc.want) || (tc.want == "") != (d.Opened != nil) {
			t.Errorf("receiver in epoch %d: open error %q, want %q", tc.epoch, d.OpenError, tc.want)
		}
	}
	for _, first := range []byte{0x00, 0x01, 0x02, 0x04, 0x07} {
		if d := Describe([]byte{first, 1, 2}, Options{}); d.Error != wire.ErrTier0Outside.Reason {
			t.Errorf("first byte %#02x: %q, want %q", first, d.Error, wire.ErrTier0Outside.Reason)
		}
	}
}

// TestEncodeOpAsNumber: `op` may be a name, a string number or a JSON
// number.
func TestEncodeOpAsNumber(t *testing.T) {
	for _, in := range []string{`{"tier":1,"op":1,"sequence":7}`, `{"tier":1,"op":"1","sequence":7}`, `{"tier":1,"op":"0x0001","sequence":7}`, `{"tier":1,"op":"KEEPALIVE","sequence":7}`} {
		var fr Frame
		if err := json.Unmarshal([]byte(in), &fr); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		b, err := Encode(&fr, EncodeOptions{})
		if err != nil || string(b) != "\x08\x00\x01\x07" {
			t.Errorf("%s: %x %v", in, b, err)
		}
	}
	var fr Frame
	if err := json.Unmarshal([]byte(`{"tier":1,"op":true}`), &fr); err == nil {
		t.Error("op true accepted")
	}
}
