package vectors

import (
	"errors"
	"fmt"
	"time"

	"github.com/myclerk/myclerk-bridge/wire"
	"github.com/myclerk/myclerk-bridge/wire/frag"
	"github.com/myclerk/myclerk-bridge/wire/inspect"
	"github.com/myclerk/myclerk-bridge/wire/payload"
)

// PayloadVector is one MessagePack payload: its type, its value as JSON
// for people, and its deterministic encoding. Malformed vectors have no
// value and name the expected error instead.
type PayloadVector struct {
	Name    string `json:"name"`
	Type    string `json:"type"` // session-init, session-ack, session-resume, session-resumed, error
	Value   any    `json:"value,omitempty"`
	Encoded Hex    `json:"encoded"`
	Reason  string `json:"reason,omitempty"`
	Code    string `json:"code,omitempty"`
}

// unmarshaler is the decoding half of every payload type.
type unmarshaler interface{ Unmarshal([]byte) error }

// NewPayload returns an empty payload of the named type, or nil.
func NewPayload(typ string) unmarshaler {
	switch typ {
	case "session-init":
		return &payload.SessionInit{}
	case "session-ack":
		return &payload.SessionAck{}
	case "session-resume":
		return &payload.SessionResume{}
	case "session-resumed":
		return &payload.SessionResumed{}
	case "error":
		return &payload.Error{}
	case "session-auth":
		return &payload.Auth{}
	case "enrol-request":
		return &payload.EnrolRequest{}
	case "enrol-response":
		return &payload.EnrolResponse{}
	case "session-ticket":
		return &payload.NewTicket{}
	}
	return nil
}

func payloadsFile(hs *handshakeVector) (*File, error) {
	var ticket [wire.TicketSize]byte
	t := seed("payload ticket")
	for i := range ticket {
		ticket[i] = t[i%32] ^ byte(i)
	}
	type marshaler interface {
		Marshal() ([]byte, error)
	}
	good := []struct {
		name, typ string
		v         marshaler
	}{
		{"session-init with all members", "session-init", &payload.SessionInit{Nonce: [8]byte(hs.InitiatorNonce), Timestamp: uint64(Time.Unix()),
			Capabilities: []payload.Capability{payload.CapLZ4, payload.CapZstd, payload.CapChaCha20, payload.CapFragmentation},
			DeviceID:     [16]byte(seedN("device id", 16)), HasDeviceID: true}},
		{"session-init, required members only", "session-init", &payload.SessionInit{Nonce: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}, Timestamp: 0}},
		{"session-ack", "session-ack", &payload.SessionAck{SessionID: 1, Nonce: [8]byte(hs.ResponderNonce), SelectedTier: 4,
			SelectedCapabilities: []payload.Capability{payload.CapZstd, payload.CapChaCha20, payload.CapFragmentation}}},
		{"session-ack, largest session id", "session-ack", &payload.SessionAck{SessionID: 0xffff, SelectedTier: 3}},
		{"session-resume (96-byte ticket, fresh nonce)", "session-resume", &payload.SessionResume{OldSessionID: 1, Ticket: ticket, Nonce: [8]byte(seedN("resume nonce", 8))}},
		{"session-resumed", "session-resumed", &payload.SessionResumed{SessionID: 2, Nonce: [8]byte(seedN("resumed nonce", 8)), SelectedTier: 4}},
		{"session-resume offering capabilities again (§P23)", "session-resume", &payload.SessionResume{OldSessionID: 1, Ticket: ticket, Nonce: [8]byte(seedN("resume nonce", 8)),
			Capabilities: []payload.Capability{payload.CapAES256GCM, payload.CapChaCha20, payload.CapFragmentation}}},
		{"session-resumed selecting AES-256-GCM (§P23)", "session-resumed", &payload.SessionResumed{SessionID: 2, Nonce: [8]byte(seedN("resumed nonce", 8)), SelectedTier: 4,
			SelectedCapabilities: []payload.Capability{payload.CapAES256GCM, payload.CapFragmentation}}},
		{"error FORBIDDEN with required tier", "error", &payload.Error{Code: wire.CodeForbidden, RefSeq: 0x0102, RequiredTier: 4, HasRequiredTier: true, Message: "GPIO_LINE_SET needs tier 3"}},
		{"error without optional members", "error", &payload.Error{Code: wire.CodeNotFound, RefSeq: 7}},
		{"session-init with requested-tier (profile)", "session-init", &payload.SessionInit{Nonce: [8]byte(hs.InitiatorNonce), Timestamp: uint64(Time.Unix()),
			Capabilities: []payload.Capability{payload.CapChaCha20}, RequestedTier: 4, HasRequestedTier: true}},
		{"session-auth (profile)", "session-auth", &payload.Auth{Certificate: seedN("certificate", 32), Signature: [64]byte(append(seedN("sig a", 32), seedN("sig b", 32)...))}},
		{"enrol-request (profile)", "enrol-request", &payload.EnrolRequest{Name: "grandparents-pi", PublicKey: seed("node key"), Proof: seed("proof")}},
		{"session-ticket (profile)", "session-ticket", &payload.NewTicket{Ticket: ticket, Lifetime: 7 * 24 * 3600}},
		{"enrol-response (profile)", "enrol-response", &payload.EnrolResponse{Certificate: seedN("certificate", 32), RootKey: seed("root key"), Proof: seed("proof 2")}},
	}
	var out []PayloadVector
	for _, g := range good {
		b, err := g.v.Marshal()
		if err != nil {
			return nil, fmt.Errorf("payload %s: %w", g.name, err)
		}
		out = append(out, PayloadVector{Name: g.name, Type: g.typ, Value: g.v, Encoded: b})
	}
	bad := []struct {
		name, typ, hex string
		want           *wire.Error
	}{
		{"not a map", "session-init", "93010203", wire.ErrMalformed},
		{"duplicate key", "session-ack", "84aa73657373696f6e2d696401aa73657373696f6e2d696402a56e6f6e6365c408" + "0102030405060708" + "ad73656c65637465642d7469657203", wire.ErrMalformed},
		{"nonce of 7 bytes", "session-init", "82a56e6f6e6365c407" + "01020304050607" + "a974696d657374616d7000", wire.ErrMalformed},
		{"missing timestamp", "session-init", "81a56e6f6e6365c408" + "0102030405060708", wire.ErrMalformed},
		{"nonce as str, not bin", "session-init", "82a56e6f6e6365a8" + "3132333435363738" + "a974696d657374616d7000", wire.ErrMalformed},
		{"selected-tier 6", "session-ack", "83aa73657373696f6e2d696401a56e6f6e6365c408" + "0102030405060708" + "ad73656c65637465642d7469657206", wire.ErrMalformed},
		{"session-id over 16 bits", "session-ack", "83aa73657373696f6e2d6964ce00010000a56e6f6e6365c408" + "0102030405060708" + "ad73656c65637465642d7469657203", wire.ErrMalformed},
		{"bin length claims 4 GiB", "session-init", "82a56e6f6e6365c6ffffffff", wire.ErrMalformed},
		{"map claims 4 billion entries", "error", "dfffffffff", wire.ErrMalformed},
		{"trailing byte after the map", "error", "82a4636f646510a7726566" + "2d73657100" + "c0", wire.ErrMalformed},
		{"negative code", "error", "82a4636f6465ffa7726566" + "2d73657100", wire.ErrMalformed},
		{"deeply nested unknown member", "error", "83a4636f646510a7726566" + "2d73657100a1789191919191919191919190", wire.ErrMalformed},
	}
	for _, b := range bad {
		in, err := inspect.DecodeHex(b.hex)
		if err != nil {
			return nil, err
		}
		v := PayloadVector{Name: b.name, Type: b.typ, Encoded: in, Reason: b.want.Reason, Code: b.want.Code.String()}
		if err := CheckPayload(&v); err != nil {
			return nil, fmt.Errorf("payload vector %q: %w", b.name, err)
		}
		out = append(out, v)
	}
	return &File{Name: "payloads.json", Description: "MessagePack payloads (PROFILE.md §P19, §P21): one map, CDDL member names as str keys in CDDL order, bstr as bin8, shortest integers; " +
		"decoders reject duplicate keys, wrong types and sizes, missing members, trailing bytes and lengths beyond the input, and ignore unknown keys.", Vectors: out}, nil
}

// CheckPayload decodes a payload vector and checks the outcome: a good
// vector decodes and re-encodes to the same bytes, a bad one fails with
// the stated reason.
func CheckPayload(v *PayloadVector) error {
	p := NewPayload(v.Type)
	if p == nil {
		return fmt.Errorf("unknown payload type %q", v.Type)
	}
	err := p.Unmarshal(v.Encoded)
	if v.Reason != "" {
		if err == nil {
			return fmt.Errorf("decoded, want %q", v.Reason)
		}
		if wire.ReasonOf(err) != v.Reason || wire.CodeOf(err).String() != v.Code {
			return fmt.Errorf("rejected with %q, want %q", wire.ReasonOf(err), v.Reason)
		}
		return nil
	}
	if err != nil {
		return err
	}
	re, err := p.(interface{ Marshal() ([]byte, error) }).Marshal()
	if err != nil {
		return err
	}
	if string(re) != string(v.Encoded) {
		return errors.New("re-encoding differs")
	}
	return nil
}

func seedN(label string, n int) []byte {
	s := seed(label)
	return s[:n]
}

// FragmentVector splits a message and shows each fragment as a Tier 1
// frame; reassembly cases feed fragments to a reassembler with the given
// limits and state the outcome.
type FragmentVector struct {
	Name      string  `json:"name"`
	Message   Hex     `json:"message,omitempty"`
	MaxBody   int     `json:"max_body,omitempty"`
	MessageID uint32  `json:"message_id"`
	Frames    []Hex   `json:"frames"`
	Limits    *Limits `json:"limits,omitempty"`
	Outcome   string  `json:"outcome"` // "complete" or a wire error reason
}

// Limits are reassembly limits in a vector.
type Limits struct {
	MaxFragments   int `json:"max_fragments"`
	MaxMessageSize int `json:"max_message_size"`
	MaxPending     int `json:"max_pending"`
	MaxBytes       int `json:"max_bytes"`
	TimeoutSeconds int `json:"timeout_seconds"`
}

func fragmentsFile(*handshakeVector) (*File, error) {
	msg := []byte("The MyClerk Protocol fragments a message that does not fit one frame.")
	plainFrames := func(id uint32, m []byte, maxBody int, order []int) ([]Hex, error) {
		fs, err := frag.Split(id, m, maxBody)
		if err != nil {
			return nil, err
		}
		if order == nil {
			order = make([]int, len(fs))
			for i := range order {
				order[i] = i
			}
		}
		var out []Hex
		for _, i := range order {
			h := wire.Header{Tier: wire.Tier1, Fragmented: true, Op: wire.OpStreamData}
			b, err := wire.AppendPlain(nil, &h, &fs[i].Header, fs[i].Body)
			if err != nil {
				return nil, err
			}
			out = append(out, b)
		}
		return out, nil
	}
	var out []FragmentVector
	add := func(name string, id uint32, m []byte, maxBody int, order []int, lim *Limits, mutate func([]Hex) []Hex, want string) error {
		frames, err := plainFrames(id, m, maxBody, order)
		if err != nil {
			return err
		}
		if mutate != nil {
			frames = mutate(frames)
		}
		v := FragmentVector{Name: name, Message: m, MaxBody: maxBody, MessageID: id, Frames: frames, Limits: lim}
		if v.Outcome = Reassemble(&v); v.Outcome != want {
			return fmt.Errorf("fragment vector %q: outcome %q, want %q", name, v.Outcome, want)
		}
		out = append(out, v)
		return nil
	}
	small := &Limits{MaxFragments: 8, MaxMessageSize: 64, MaxPending: 2, MaxBytes: 4096, TimeoutSeconds: 30}
	steps := []error{
		add("split into 16-byte bodies, in order", 1, msg, 16, nil, nil, nil, "complete"),
		add("out of order", 2, msg, 16, []int{4, 0, 3, 1, 2}, nil, nil, "complete"),
		add("duplicate fragment", 3, msg, 32, []int{0, 0, 1, 2}, nil, nil, wire.ErrFragment.Reason),
		add("fragment missing: never completes", 4, msg, 32, []int{0, 2}, nil, nil, "incomplete"),
		add("more fragments than max_fragments", 5, msg[:40], 4, nil, small, nil, wire.ErrReassembly.Reason),
		add("message over max_message_size", 6, msg, 32, nil, small, nil, wire.ErrReassembly.Reason),
		add("totals disagree", 7, msg, 32, nil, nil, func(f []Hex) []Hex {
			c := append(Hex(nil), f[1]...)
			c[11] = 9 // total of the second fragment
			return []Hex{f[0], c, f[2]}
		}, wire.ErrFragment.Reason),
	}
	for _, err := range steps {
		if err != nil {
			return nil, err
		}
	}
	return &File{Name: "fragments.json", Description: "Fragmentation (PROFILE.md §P13): sub-header message_id u32 ‖ index u16 ‖ total u16 after the tier header; " +
		"each fragment is a frame of its own (sealed on its own at Tiers 3-5); reassembly is bounded by count, bytes and time. " +
		"Frames are fed in the order given to a reassembler with the limits given (the profile's defaults when absent); outcome is \"complete\", \"incomplete\" or the first error.", Vectors: out}, nil
}

// Reassemble feeds a fragment vector's frames to a reassembler and returns
// the outcome: "complete" (and the message matches), "incomplete", or the
// reason of the first error.
func Reassemble(v *FragmentVector) string {
	l := frag.DefaultLimits()
	if v.Limits != nil {
		l = frag.Limits{MaxFragments: v.Limits.MaxFragments, MaxMessageSize: v.Limits.MaxMessageSize,
			MaxPending: v.Limits.MaxPending, MaxBytes: v.Limits.MaxBytes, Timeout: time.Duration(v.Limits.TimeoutSeconds) * time.Second}
	}
	r := frag.NewReassembler(l)
	for _, b := range v.Frames {
		f, err := wire.Parse(b)
		if err != nil {
			return wire.ReasonOf(err)
		}
		msg, done, err := r.Add(frag.KindOf(&f.Header), f.Fragment, f.Body, Time)
		if err != nil {
			return wire.ReasonOf(err)
		}
		if done {
			if string(msg) != string(v.Message) {
				return "reassembled message differs"
			}
			return "complete"
		}
	}
	return "incomplete"
}
