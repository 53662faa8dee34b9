package ticket

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/myclerk/myclerk-bridge/wire"
)

var (
	testKey   = Key{ID: 0x01020304, Secret: [32]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32}}
	testNonce = [NonceSize]byte{0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab}
	issued    = uint32(1767225600) // 2026-01-01T00:00:00Z
	day       = uint32(24 * 60 * 60)
	testC     = Contents{
		ResumptionSecret: [32]byte{0xf0, 0xf1, 0xf2, 31: 0xff},
		DeviceID:         [16]byte{0xd0, 15: 0xdf},
		IssuedAt:         issued,
		ExpiresAt:        issued + day,
		TicketNonce:      [8]byte{1, 2, 3, 4, 5, 6, 7, 8},
	}
)

func at(unix uint32) time.Time { return time.Unix(int64(unix), 0) }

func ring(keys ...Key) *Keyring {
	var kr Keyring
	for _, k := range keys {
		kr.Add(k)
	}
	return &kr
}

func mustSeal(t testing.TB, k Key, c Contents) [wire.TicketSize]byte {
	t.Helper()
	tk, err := Seal(k, testNonce, c)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func TestRoundTrip(t *testing.T) {
	tk := mustSeal(t, testKey, testC)
	if !bytes.Equal(tk[:4], []byte{1, 2, 3, 4}) || !bytes.Equal(tk[4:16], testNonce[:]) {
		t.Fatalf("header %x", tk[:16])
	}
	if bytes.Contains(tk[:], testC.ResumptionSecret[:4]) || bytes.Contains(tk[:], testC.DeviceID[:2]) {
		t.Fatalf("plaintext visible in %x", tk)
	}
	for _, now := range []uint32{issued, issued + day - 1, issued - 5*60} {
		c, err := Open(ring(testKey), tk[:], at(now))
		if err != nil {
			t.Fatalf("now %d: %v", now, err)
		}
		if c != testC {
			t.Fatalf("opened %+v, want %+v", c, testC)
		}
	}
	// The longest lifetime is allowed.
	long := testC
	long.ExpiresAt = issued + uint32(wire.TicketLifetime/time.Second)
	tk = mustSeal(t, testKey, long)
	if c, err := Open(ring(testKey), tk[:], at(long.ExpiresAt-1)); err != nil || c != long {
		t.Fatalf("7-day ticket: %+v, %v", c, err)
	}
}

// TestGolden pins the ticket layout with a known answer computed
// independently (Python's cryptography AESGCM): key-id ‖ nonce ‖
// AES-256-GCM(secret ‖ device-id ‖ issued-at ‖ expires-at ‖ ticket-nonce),
// additional data the key-id.
func TestGolden(t *testing.T) {
	const want = "01020304" + "a0a1a2a3a4a5a6a7a8a9aaab" +
		"4920cf66fdb55a047f0ea26bf185208457d7b01958686084275bd5fd524ed8ca" +
		"e1d199c8efd2b0342d76c099a6364ef870e3c9c4a5ccf45549e680f4c7300060" +
		"dff9fe7942042161ac1c60124f7249b9"
	tk := mustSeal(t, testKey, testC)
	if got := hex.EncodeToString(tk[:]); got != want {
		t.Fatalf("ticket drifted:\n got %s\nwant %s", got, want)
	}
}

func TestSealRejects(t *testing.T) {
	tests := []struct {
		name            string
		issued, expires uint32
		want            string
	}{
		{"expires at issue", issued, issued, "not after issued-at"},
		{"expires before issue", issued, issued - 1, "not after issued-at"},
		{"lifetime over 7 days", issued, issued + 7*day + 1, "over the limit"},
	}
	for _, tt := range tests {
		c := testC
		c.IssuedAt, c.ExpiresAt = tt.issued, tt.expires
		tk, err := Seal(testKey, testNonce, c)
		if !errors.Is(err, wire.ErrTicket) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err %v, want ErrTicket containing %q", tt.name, err, tt.want)
		}
		if tk != [wire.TicketSize]byte{} {
			t.Errorf("%s: ticket returned on error", tt.name)
		}
	}
}

// sealRaw seals contents without Seal's checks, to reach Open's.
func sealRaw(k Key, c Contents) []byte {
	t := make([]byte, headerSize, wire.TicketSize)
	t[0], t[1], t[2], t[3] = byte(k.ID>>24), byte(k.ID>>16), byte(k.ID>>8), byte(k.ID)
	copy(t[KeyIDSize:], testNonce[:])
	var pt [plaintextSize]byte
	marshal(&pt, &c)
	return newAEAD(&k).Seal(t, testNonce[:], pt[:], t[:KeyIDSize])
}

func TestOpenRejects(t *testing.T) {
	good := mustSeal(t, testKey, testC)
	tamper := func(i int) []byte {
		b := bytes.Clone(good[:])
		b[i] ^= 0x01
		return b
	}
	with := func(issued, expires uint32) []byte {
		c := testC
		c.IssuedAt, c.ExpiresAt = issued, expires
		return sealRaw(testKey, c)
	}
	otherKey := testKey
	otherKey.Secret[0] ^= 1
	skew := uint32(wire.TimestampSkew / time.Second)
	tests := []struct {
		name string
		kr   *Keyring
		t    []byte
		now  time.Time
		want string
	}{
		{"empty", ring(testKey), nil, at(issued), "0 bytes, want 96"},
		{"draft 64-byte ticket", ring(testKey), good[:64], at(issued), "64 bytes, want 96"},
		{"one byte long", ring(testKey), append(good[:], 0), at(issued), "97 bytes, want 96"},
		{"one byte short", ring(testKey), good[:95], at(issued), "95 bytes, want 96"},
		{"unknown key id", ring(Key{ID: 9}), good[:], at(issued), "unknown key id 16909060"},
		{"nil keyring", nil, good[:], at(issued), "unknown key id"},
		{"empty keyring", ring(), good[:], at(issued), "unknown key id"},
		{"tampered key-id byte (AD)", ring(testKey, Key{ID: 0x01020305, Secret: testKey.Secret}), tamper(3), at(issued), "authentication failed"},
		{"tampered nonce", ring(testKey), tamper(4), at(issued), "authentication failed"},
		{"tampered ciphertext", ring(testKey), tamper(40), at(issued), "authentication failed"},
		{"tampered tag", ring(testKey), tamper(95), at(issued), "authentication failed"},
		{"same id, other secret", ring(otherKey), good[:], at(issued), "authentication failed"},
		{"expires at issue", ring(testKey), with(issued, issued), at(issued), "not after issued-at"},
		{"expires before issue", ring(testKey), with(issued, issued-10), at(issued), "not after issued-at"},
		{"lifetime over 7 days", ring(testKey), with(issued, issued+7*day+1), at(issued), "over the limit"},
		{"expired exactly", ring(testKey), good[:], at(issued + day), "expired at"},
		{"expired long ago", ring(testKey), good[:], at(issued + 30*day), "expired at"},
		{"issued in the future", ring(testKey), good[:], at(issued - skew - 1), "in the future"},
		{"now before 1970", ring(testKey), good[:], time.Unix(-1e9, 0), "in the future"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Open(tt.kr, tt.t, tt.now)
			if !errors.Is(err, wire.ErrTicket) || wire.CodeOf(err) != wire.CodeInvalidSession {
				t.Fatalf("err %v, want ErrTicket", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %q, want it to contain %q", err, tt.want)
			}
			if c != (Contents{}) {
				t.Fatalf("contents returned on error: %+v", c)
			}
			if strings.Contains(err.Error(), hex.EncodeToString(testKey.Secret[:4])) {
				t.Fatalf("error leaks the key: %v", err)
			}
		})
	}
	// At the edge of the skew the ticket still opens.
	if _, err := Open(ring(testKey), good[:], at(issued-skew)); err != nil {
		t.Fatalf("issued exactly TimestampSkew ahead: %v", err)
	}
}

func TestKeyRotation(t *testing.T) {
	k := func(id uint32) Key { return Key{ID: id, Secret: [32]byte{byte(id), 0xee}} }
	var kr Keyring
	kr.Add(k(1))
	old := mustSeal(t, current(t, &kr), testC)
	kr.Add(k(2))
	if current(t, &kr).ID != 2 {
		t.Fatalf("current key %d, want 2", current(t, &kr).ID)
	}
	fresh := mustSeal(t, current(t, &kr), testC)
	for id := uint32(3); id <= MaxKeys; id++ {
		kr.Add(k(id))
		if _, err := Open(&kr, old[:], at(issued)); err != nil {
			t.Fatalf("old key still held (%d keys): %v", kr.Len(), err)
		}
	}
	if kr.Len() != MaxKeys {
		t.Fatalf("%d keys, want %d", kr.Len(), MaxKeys)
	}
	kr.Add(k(MaxKeys + 1)) // drops key 1
	if kr.Len() != MaxKeys {
		t.Fatalf("%d keys, want %d", kr.Len(), MaxKeys)
	}
	if _, err := Open(&kr, old[:], at(issued)); !errors.Is(err, wire.ErrTicket) {
		t.Fatalf("ticket under a dropped key: %v", err)
	}
	if _, err := Open(&kr, fresh[:], at(issued)); err != nil {
		t.Fatalf("ticket under key 2: %v", err)
	}
	if !kr.Remove(2) || kr.Remove(2) {
		t.Fatal("Remove(2) twice")
	}
	if _, err := Open(&kr, fresh[:], at(issued)); !errors.Is(err, wire.ErrTicket) {
		t.Fatalf("ticket under a removed key: %v", err)
	}
	// Re-adding an ID replaces its key.
	kr.Add(Key{ID: 3, Secret: [32]byte{0x33}})
	if kr.Len() != MaxKeys-1 || current(t, &kr).Secret[0] != 0x33 {
		t.Fatalf("re-added key 3: %d keys, current %d", kr.Len(), current(t, &kr).ID)
	}
	if kr, ok := kr.Lookup(3); !ok || kr.Secret[0] != 0x33 {
		t.Fatal("Lookup(3) found the replaced key")
	}
}

func TestCurrentEmpty(t *testing.T) {
	if k, ok := new(Keyring).Current(); ok || k != (Key{}) {
		t.Fatal("an empty keyring has a current key")
	}
}

func current(t *testing.T, kr *Keyring) Key {
	t.Helper()
	k, ok := kr.Current()
	if !ok {
		t.Fatal("no current key")
	}
	return k
}

func BenchmarkSeal(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Seal(testKey, testNonce, testC); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	tk := mustSeal(b, testKey, testC)
	kr := ring(testKey)
	now := at(issued)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Open(kr, tk[:], now); err != nil {
			b.Fatal(err)
		}
	}
}
