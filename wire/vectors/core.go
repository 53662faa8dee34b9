package vectors

import (
	"crypto/ecdh"
	"fmt"

	"github.com/myclerk/myclerk-bridge/wire"
	"github.com/myclerk/myclerk-bridge/wire/inspect"
	"github.com/myclerk/myclerk-bridge/wire/payload"
)

// HeaderVector is one tier header with every field and its encoding.
type HeaderVector struct {
	Name       string  `json:"name"`
	Tier       uint8   `json:"tier"`
	Flags      string  `json:"flags"`
	Compressed bool    `json:"compressed"`
	Fragmented bool    `json:"fragmented"`
	Encrypted  bool    `json:"encrypted"`
	Op         string  `json:"op,omitempty"`
	OpName     string  `json:"op_name,omitempty"`
	Sequence   *uint8  `json:"sequence,omitempty"`
	SessionID  *uint16 `json:"session_id,omitempty"`
	Timestamp  *uint32 `json:"timestamp,omitempty"`
	Nonce      *uint16 `json:"nonce,omitempty"`
	KeyID      *uint32 `json:"key_id,omitempty"`
	PublicKey  Hex     `json:"public_key,omitempty"`
	Tag        Hex     `json:"tag,omitempty"`
	Encoded    Hex     `json:"encoded"`
}

func ptr[T any](v T) *T { return &v }

func headerVector(name string, h wire.Header) (HeaderVector, error) {
	b, err := h.AppendTo(nil)
	if err != nil {
		return HeaderVector{}, fmt.Errorf("header %s: %w", name, err)
	}
	v := HeaderVector{Name: name, Tier: uint8(h.Tier), Flags: fmt.Sprintf("0x%02x", h.Flags()),
		Compressed: h.Compressed, Fragmented: h.Fragmented, Encrypted: h.Encrypted, Encoded: b}
	if h.Tier == wire.Tier0 {
		return v, nil
	}
	v.Op, v.OpName, v.Sequence = fmt.Sprintf("0x%04x", uint16(h.Op)), h.Op.String(), ptr(h.Sequence)
	if h.Tier >= wire.Tier2 {
		v.SessionID = ptr(h.SessionID)
	}
	if h.Tier >= wire.Tier3 {
		v.Timestamp, v.Nonce = ptr(h.Timestamp), ptr(h.Nonce)
	}
	if h.Tier >= wire.Tier4 {
		v.KeyID, v.PublicKey = ptr(h.KeyID), Hex(h.PublicKey[:])
	}
	if h.Tier == wire.Tier5 {
		v.Tag = Hex(h.Tag[:])
	}
	return v, nil
}

func headersFile(*handshakeVector) (*File, error) {
	pk, tag := seed("header public key"), seed("header tag")
	ts := uint32(Time.Unix())
	hs := []struct {
		name string
		h    wire.Header
	}{
		{"tier0 tunnel plaintext, compressed", wire.Header{Tier: wire.Tier0, Compressed: true}},
		{"tier1 keepalive", wire.Header{Tier: wire.Tier1, Op: wire.OpKeepalive, Sequence: 0x2a}},
		{"tier1 fragmented stream data", wire.Header{Tier: wire.Tier1, Fragmented: true, Op: wire.OpStreamData, Sequence: 0xff}},
		{"tier2 gpio get", wire.Header{Tier: wire.Tier2, Op: wire.OpGPIOLineGet, Sequence: 1, SessionID: 0x1234}},
		{"tier2 compressed", wire.Header{Tier: wire.Tier2, Compressed: true, Op: wire.OpDeviceList, SessionID: 0xffff}},
		{"tier3 encrypted", wire.Header{Tier: wire.Tier3, Encrypted: true, Op: wire.OpGPIOLineSet, Sequence: 0x34, SessionID: 7, Timestamp: ts, Nonce: 0x0012}},
		{"tier3 authenticate-only", wire.Header{Tier: wire.Tier3, Op: wire.OpDeviceLock, SessionID: 7, Timestamp: ts}},
		{"tier4 all flags", wire.Header{Tier: wire.Tier4, Compressed: true, Fragmented: true, Encrypted: true, Op: wire.OpKeyExchangeInit, Sequence: 9, SessionID: 0x0102, Timestamp: ts, Nonce: 0xabcd, KeyID: 3, PublicKey: pk}},
		{"tier5 encrypted", wire.Header{Tier: wire.Tier5, Encrypted: true, Op: wire.OpSessionRevoke, SessionID: 0x0102, Timestamp: ts, KeyID: 0xffffffff, PublicKey: pk, Tag: [16]byte(tag[:16])}},
	}
	var out []HeaderVector
	for _, x := range hs {
		v, err := headerVector(x.name, x.h)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return &File{Name: "headers.json", Description: "Tier headers (PROFILE.md §P1, §P3): the fields and their encoding. A Tier 0 header appears only as the plaintext of a TUNNEL frame.", Vectors: out}, nil
}

// CRCVector is a CRC-16/CCITT-FALSE input and value, or a whole Tier 2 frame.
type CRCVector struct {
	Name  string         `json:"name"`
	Input Hex            `json:"input"`
	CRC   string         `json:"crc"`
	Frame *inspect.Frame `json:"frame,omitempty"`
}

func crcFile(*handshakeVector) (*File, error) {
	var out []CRCVector
	for _, in := range []string{"123456789", "", "MyClerk"} {
		out = append(out, CRCVector{Name: fmt.Sprintf("ascii %q", in), Input: Hex(in), CRC: fmt.Sprintf("%04x", wire.CRC16([]byte(in)))})
	}
	h := wire.Header{Tier: wire.Tier2, Op: wire.OpGPIOLineGet, Sequence: 5, SessionID: 0x0042}
	b, err := wire.AppendPlain(nil, &h, nil, []byte{0x81, 0xa4, 'l', 'i', 'n', 'e', 0x11})
	if err != nil {
		return nil, err
	}
	d := inspect.Describe(b, inspect.Options{})
	out = append(out, CRCVector{Name: "tier2 frame: CRC over header and payload", Input: b[:len(b)-2], CRC: fmt.Sprintf("%04x", wire.CRC16(b[:len(b)-2])), Frame: &d})
	return &File{Name: "crc.json", Description: "CRC-16/CCITT-FALSE (poly 0x1021, init 0xffff, no reflection, no final xor), the Tier 2 trailer, big-endian, over header, fragment sub-header and payload (PROFILE.md §P10).", Vectors: out}, nil
}

// handshakeVector is one complete handshake and its key schedule.
type handshakeVector struct {
	Name string `json:"name"`

	InitiatorPrivate Hex `json:"initiator_ephemeral_private"`
	InitiatorPublic  Hex `json:"initiator_ephemeral_public"`
	InitiatorNonce   Hex `json:"initiator_nonce"`
	ResponderPrivate Hex `json:"responder_ephemeral_private"`
	ResponderPublic  Hex `json:"responder_ephemeral_public"`
	ResponderNonce   Hex `json:"responder_nonce"`

	SessionInitPayload Hex `json:"session_init_payload"`
	SessionInitFrame   Hex `json:"session_init_frame"`
	SessionAckPayload  Hex `json:"session_ack_payload"`
	SessionAckFrame    Hex `json:"session_ack_frame"`

	SharedSecret   Hex `json:"shared_secret"`
	SessionKey     Hex `json:"session_key"`
	TranscriptHash Hex `json:"transcript_hash"`

	Epochs []epochVector `json:"epochs"`

	ResumptionSecret Hex `json:"resumption_secret"`

	secrets wire.SessionSecrets
}

type epochVector struct {
	Epoch    uint32          `json:"epoch"`
	ChainKey Hex             `json:"chain_key"`
	I2R      directionVector `json:"i2r"`
	R2I      directionVector `json:"r2i"`
}

type directionVector struct {
	Key    Hex `json:"key"`
	Random Hex `json:"random"`
	MACKey Hex `json:"mac_key"`
}

func handshake() (*handshakeVector, error) {
	ip, err := wire.GenerateKey(&reader{label: "initiator ephemeral"})
	if err != nil {
		return nil, err
	}
	rp, err := wire.GenerateKey(&reader{label: "responder ephemeral"})
	if err != nil {
		return nil, err
	}
	var nI, nR [8]byte
	s1, s2 := seed("initiator nonce"), seed("responder nonce")
	copy(nI[:], s1[:])
	copy(nR[:], s2[:])
	dev := seed("device id")

	init := payload.SessionInit{Nonce: nI, Timestamp: uint64(Time.Unix()),
		Capabilities: []payload.Capability{payload.CapLZ4, payload.CapZstd, payload.CapChaCha20, payload.CapFragmentation},
		DeviceID:     [16]byte(dev[:16]), HasDeviceID: true}
	initP, err := init.Marshal()
	if err != nil {
		return nil, err
	}
	ih := wire.Header{Tier: wire.Tier4, Op: wire.OpSessionInit, Timestamp: uint32(Time.Unix()), PublicKey: [32]byte(ip.PublicKey().Bytes())}
	initF, err := wire.AppendHandshake(nil, &ih, initP)
	if err != nil {
		return nil, err
	}
	ack := payload.SessionAck{SessionID: 1, Nonce: nR, SelectedTier: 4,
		SelectedCapabilities: []payload.Capability{payload.CapZstd, payload.CapChaCha20, payload.CapFragmentation}}
	ackP, err := ack.Marshal()
	if err != nil {
		return nil, err
	}
	ah := wire.Header{Tier: wire.Tier4, Op: wire.OpSessionAck, SessionID: 1, Timestamp: uint32(Time.Unix()), PublicKey: [32]byte(rp.PublicKey().Bytes())}
	ackF, err := wire.AppendHandshake(nil, &ah, ackP)
	if err != nil {
		return nil, err
	}

	shared, err := wire.SharedSecret(ip, ah.PublicKey)
	if err != nil {
		return nil, err
	}
	sk := wire.SessionKey(shared, nI, nR)
	th := wire.TranscriptHash(initF, ackF)
	v := &handshakeVector{
		Name:             "X25519 handshake, SESSION_INIT and SESSION_ACK as Tier 4 handshake frames",
		InitiatorPrivate: priv(ip), InitiatorPublic: ip.PublicKey().Bytes(), InitiatorNonce: nI[:],
		ResponderPrivate: priv(rp), ResponderPublic: rp.PublicKey().Bytes(), ResponderNonce: nR[:],
		SessionInitPayload: initP, SessionInitFrame: initF, SessionAckPayload: ackP, SessionAckFrame: ackF,
		SharedSecret: shared[:], SessionKey: sk[:], TranscriptHash: th[:],
		ResumptionSecret: ptrBytes(wire.ResumptionSecret(sk, th)),
		secrets:          wire.SessionSecrets{SessionKey: sk, TranscriptHash: th, InitiatorKey: ih.PublicKey, ResponderKey: ah.PublicKey},
	}
	for e := uint32(0); e <= 3; e++ {
		chain := wire.EpochKey(sk, e)
		v.Epochs = append(v.Epochs, epochVector{Epoch: e, ChainKey: chain[:],
			I2R: dirVector(wire.DeriveDirectional(chain, th, wire.InitiatorToResponder)),
			R2I: dirVector(wire.DeriveDirectional(chain, th, wire.ResponderToInitiator))})
	}
	return v, nil
}

func priv(k *ecdh.PrivateKey) Hex { return k.Bytes() }

func ptrBytes(b [32]byte) Hex { return b[:] }

func dirVector(k wire.DirectionalKeys) directionVector {
	return directionVector{Key: k.Key[:], Random: k.Random[:], MACKey: k.MACKey[:]}
}

func keyScheduleFile(hs *handshakeVector) (*File, error) {
	return &File{Name: "keyschedule.json", Description: "Handshake and key schedule (PROFILE.md §P5, §P6, §P16, §P18, §P24): " +
		"shared = X25519(initiator private, responder public); session_key = HKDF-SHA256(shared, salt = initiator_nonce ‖ responder_nonce, info = \"myclerk-session-v0\"); " +
		"transcript_hash = SHA-256(session_init_frame ‖ session_ack_frame); chain key of epoch n+1 = HKDF-SHA256(chain n, salt = \"rotate\", info = uint32be(n+1)); " +
		"per direction d in {i2r, r2i}: key = HKDF-Expand(chain, \"myclerk-v0 key \" ‖ d ‖ transcript_hash, 32), random = HKDF-Expand(chain, \"myclerk-v0 random \" ‖ d ‖ transcript_hash, 4), " +
		"mac_key = HKDF-Expand(chain, \"myclerk-v0 mac \" ‖ d ‖ transcript_hash, 32); resumption_secret = HKDF-Expand(session_key, \"myclerk-v0 resumption\" ‖ transcript_hash, 32). " +
		"Private keys are the X25519 scalars as given to RFC 7748 (clamped by the function).",
		Vectors: []*handshakeVector{hs}}, nil
}

func ecdhKey(b []byte) (*ecdh.PrivateKey, error) { return ecdh.X25519().NewPrivateKey(b) }
