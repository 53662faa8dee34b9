package payload

// MaxCertificate bounds a certificate member: the profile's certificates
// (PROFILE.md §P34) are at most 214 bytes, and bin8 holds 255.
const MaxCertificate = 255

// MaxName bounds a node name.
const MaxName = 64

// Auth is the payload of SESSION_AUTH (0x0013, a profile extension,
// PROFILE.md §P34): the sender's certificate and its Ed25519 signature over
// the session's transcript hash.
//
//	session-auth = {
//	    certificate: bstr .size (1..255),
//	    signature: bstr .size 64,
//	}
type Auth struct {
	Certificate []byte
	Signature   [64]byte
}

const nameAuth = "session-auth"

// Marshal returns the deterministic encoding of p.
func (p *Auth) Marshal() ([]byte, error) {
	if n := len(p.Certificate); n < 1 || n > MaxCertificate {
		return nil, encodeErr(nameAuth, "certificate of %d bytes", n)
	}
	b := appendMapLen(nil, 2)
	b = appendStr(b, keyCertificate)
	b = appendBin(b, p.Certificate)
	b = appendStr(b, keySignature)
	return appendBin(b, p.Signature[:]), nil
}

// Unmarshal decodes b into p, strictly.
func (p *Auth) Unmarshal(b []byte) error {
	var v Auth
	err := decodeMap(nameAuth, b,
		member{keyCertificate, true, binVarInto(&v.Certificate, MaxCertificate)},
		member{keySignature, true, binInto(v.Signature[:], nil)},
	)
	if err == nil {
		*p = v
	}
	return err
}

// EnrolRequest is the payload of ENROL_REQUEST (0x0014, profile, §P35): a
// new node's name, its identity public key, and the pairing-code proof
// binding both to this session.
//
//	enrol-request = {
//	    name: tstr .size (1..64),
//	    public-key: bstr .size 32,
//	    ? role: uint,
//	    proof: bstr .size 32,
//	}
type EnrolRequest struct {
	Name      string
	PublicKey [32]byte
	Role      uint8 // 0: absent (a node)
	Proof     [32]byte
}

const nameEnrolRequest = "enrol-request"

// Marshal returns the deterministic encoding of p.
func (p *EnrolRequest) Marshal() ([]byte, error) {
	if n := len(p.Name); n < 1 || n > MaxName {
		return nil, encodeErr(nameEnrolRequest, "name of %d bytes", n)
	}
	n := 3
	if p.Role != 0 {
		n++
	}
	b := appendMapLen(nil, n)
	b = appendStr(b, keyName)
	b = appendStr(b, p.Name)
	b = appendStr(b, keyPublicKey)
	b = appendBin(b, p.PublicKey[:])
	if p.Role != 0 {
		b = appendStr(b, keyRole)
		b = appendUint(b, uint64(p.Role))
	}
	b = appendStr(b, keyProof)
	return appendBin(b, p.Proof[:]), nil
}

// Unmarshal decodes b into p, strictly.
func (p *EnrolRequest) Unmarshal(b []byte) error {
	var v EnrolRequest
	err := decodeMap(nameEnrolRequest, b,
		member{keyName, true, strInto(&v.Name, MaxName)},
		member{keyPublicKey, true, binInto(v.PublicKey[:], nil)},
		member{keyRole, false, uintInto(&v.Role, 255)},
		member{keyProof, true, binInto(v.Proof[:], nil)},
	)
	if err == nil && v.Name == "" {
		err = encodeErr(nameEnrolRequest, "empty name")
	}
	if err == nil {
		*p = v
	}
	return err
}

// EnrolResponse is the payload of ENROL_RESPONSE (0x0015, profile, §P35):
// the new node's certificate, the family root key it must pin, and the
// hub's pairing-code proof over both.
//
//	enrol-response = {
//	    certificate: bstr .size (1..255),
//	    root-key: bstr .size 32,
//	    proof: bstr .size 32,
//	}
type EnrolResponse struct {
	Certificate []byte
	RootKey     [32]byte
	Proof       [32]byte
}

const nameEnrolResponse = "enrol-response"

// Marshal returns the deterministic encoding of p.
func (p *EnrolResponse) Marshal() ([]byte, error) {
	if n := len(p.Certificate); n < 1 || n > MaxCertificate {
		return nil, encodeErr(nameEnrolResponse, "certificate of %d bytes", n)
	}
	b := appendMapLen(nil, 3)
	b = appendStr(b, keyCertificate)
	b = appendBin(b, p.Certificate)
	b = appendStr(b, keyRootKey)
	b = appendBin(b, p.RootKey[:])
	b = appendStr(b, keyProof)
	return appendBin(b, p.Proof[:]), nil
}

// Unmarshal decodes b into p, strictly.
func (p *EnrolResponse) Unmarshal(b []byte) error {
	var v EnrolResponse
	err := decodeMap(nameEnrolResponse, b,
		member{keyCertificate, true, binVarInto(&v.Certificate, MaxCertificate)},
		member{keyRootKey, true, binInto(v.RootKey[:], nil)},
		member{keyProof, true, binInto(v.Proof[:], nil)},
	)
	if err == nil {
		*p = v
	}
	return err
}

// NewTicket is the payload of SESSION_TICKET (0x0009, profile, PROFILE.md
// §P18): a resumption ticket and how long it lives, in seconds.
//
//	session-ticket = {
//	    ticket: bstr .size 96,
//	    lifetime: uint,
//	}
type NewTicket struct {
	Ticket   [96]byte
	Lifetime uint32
}

const nameNewTicket = "session-ticket"

// Marshal returns the deterministic encoding of p.
func (p *NewTicket) Marshal() ([]byte, error) {
	b := appendMapLen(nil, 2)
	b = appendStr(b, keyTicket)
	b = appendBin(b, p.Ticket[:])
	b = appendStr(b, keyLifetime)
	return appendUint(b, uint64(p.Lifetime)), nil
}

// Unmarshal decodes b into p, strictly.
func (p *NewTicket) Unmarshal(b []byte) error {
	var v NewTicket
	err := decodeMap(nameNewTicket, b,
		member{keyTicket, true, binInto(v.Ticket[:], nil)},
		member{keyLifetime, true, uintInto(&v.Lifetime, 1<<32-1)},
	)
	if err == nil {
		*p = v
	}
	return err
}

// KeyExchange is the payload of KEY_EXCHANGE_INIT (0x0010) and
// KEY_EXCHANGE_RESPONSE (0x0011), the in-session re-handshake (PROFILE.md
// §P38): a fresh X25519 public key and nonce. KEY_EXCHANGE_COMPLETE
// (0x0012) carries an empty map.
//
//	key-exchange = {
//	    public-key: bstr .size 32,
//	    nonce: bstr .size 8,
//	}
type KeyExchange struct {
	PublicKey [32]byte
	Nonce     [8]byte
}

const nameKeyExchange = "key-exchange"

// Marshal returns the deterministic encoding of p.
func (p *KeyExchange) Marshal() ([]byte, error) {
	b := appendMapLen(nil, 2)
	b = appendStr(b, keyPublicKey)
	b = appendBin(b, p.PublicKey[:])
	b = appendStr(b, keyNonce)
	return appendBin(b, p.Nonce[:]), nil
}

// Unmarshal decodes b into p, strictly.
func (p *KeyExchange) Unmarshal(b []byte) error {
	var v KeyExchange
	err := decodeMap(nameKeyExchange, b,
		member{keyPublicKey, true, binInto(v.PublicKey[:], nil)},
		member{keyNonce, true, binInto(v.Nonce[:], nil)},
	)
	if err == nil {
		*p = v
	}
	return err
}
