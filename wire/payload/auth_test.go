package payload

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/myclerk/myclerk-bridge/wire"
)

type roundTripper interface {
	Marshal() ([]byte, error)
	Unmarshal([]byte) error
}

func TestProfilePayloadsRoundTrip(t *testing.T) {
	tests := []struct{ in, out roundTripper }{
		{&Auth{Certificate: []byte("cert"), Signature: [64]byte{1, 2}}, &Auth{}},
		{&EnrolRequest{Name: "pi", PublicKey: [32]byte{3}, Role: 3, Proof: [32]byte{4}}, &EnrolRequest{}},
		{&EnrolRequest{Name: "nas", PublicKey: [32]byte{3}, Proof: [32]byte{4}}, &EnrolRequest{}},
		{&EnrolResponse{Certificate: bytes.Repeat([]byte{7}, MaxCertificate), RootKey: [32]byte{5}, Proof: [32]byte{6}}, &EnrolResponse{}},
		{&SessionInit{Nonce: [8]byte{1}, Timestamp: 9, RequestedTier: 5, HasRequestedTier: true}, &SessionInit{}},
		{&NewTicket{Ticket: [96]byte{1, 2, 3}, Lifetime: 604800}, &NewTicket{}},
		{&KeyExchange{PublicKey: [32]byte{9}, Nonce: [8]byte{8}}, &KeyExchange{}},
	}
	for _, tt := range tests {
		b, err := tt.in.Marshal()
		if err != nil {
			t.Fatalf("%T: %v", tt.in, err)
		}
		if err := tt.out.Unmarshal(b); err != nil {
			t.Fatalf("%T: %v", tt.in, err)
		}
		if !reflect.DeepEqual(tt.in, tt.out) {
			t.Errorf("%T: round trip %+v != %+v", tt.in, tt.out, tt.in)
		}
	}
}

func TestProfilePayloadsReject(t *testing.T) {
	if _, err := (&Auth{}).Marshal(); err == nil {
		t.Error("auth without certificate encoded")
	}
	if _, err := (&EnrolRequest{}).Marshal(); err == nil {
		t.Error("enrol request without name encoded")
	}
	if _, err := (&SessionInit{RequestedTier: 6, HasRequestedTier: true}).Marshal(); err == nil {
		t.Error("requested tier 6 encoded")
	}
	good, _ := (&Auth{Certificate: []byte("c"), Signature: [64]byte{1}}).Marshal()
	for name, in := range map[string][]byte{
		"short signature": bytes.Replace(good, append([]byte{0xc4, 64}, make([]byte, 0)...), []byte{0xc4, 63}, 1)[:len(good)-1],
		"empty":           {0x80},
		"not a map":       {0x90},
	} {
		if err := new(Auth).Unmarshal(in); !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	emptyName := mp(4, s("name"), s(""), s("public-key"), bn(32), s("proof"), bn(32), s("role"), []byte{2})
	if err := new(EnrolRequest).Unmarshal(emptyName); !errors.Is(err, wire.ErrMalformed) {
		t.Errorf("empty name: %v", err)
	}
}

func FuzzAuth(f *testing.F) {
	good, _ := (&Auth{Certificate: []byte("cert"), Signature: [64]byte{1}}).Marshal()
	f.Add(good)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzRoundTrip(t, b, &Auth{}, &Auth{}) })
}

func FuzzEnrol(f *testing.F) {
	req, _ := (&EnrolRequest{Name: "pi", PublicKey: [32]byte{3}, Role: 3, Proof: [32]byte{4}}).Marshal()
	resp, _ := (&EnrolResponse{Certificate: []byte("c"), RootKey: [32]byte{5}, Proof: [32]byte{6}}).Marshal()
	f.Add(req)
	f.Add(resp)
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzRoundTrip(t, b, &EnrolRequest{}, &EnrolRequest{})
		fuzzRoundTrip(t, b, &EnrolResponse{}, &EnrolResponse{})
		fuzzRoundTrip(t, b, &KeyExchange{}, &KeyExchange{})
	})
}

func fuzzRoundTrip(t *testing.T, b []byte, a, c roundTripper) {
	if a.Unmarshal(b) != nil {
		return
	}
	enc, err := a.Marshal()
	if err != nil {
		t.Fatalf("decoded %T does not encode: %v", a, err)
	}
	if err := c.Unmarshal(enc); err != nil || !reflect.DeepEqual(a, c) {
		t.Fatalf("%T round trip: %v", a, err)
	}
}

func TestCheck(t *testing.T) {
	good, _ := (&SessionInit{Nonce: [8]byte{1}, Capabilities: []Capability{1, 2}}).Marshal()
	if err := Check(good, 16); err != nil {
		t.Fatal(err)
	}
	for name, in := range map[string][]byte{
		"array over the entry limit": {0x93, 1, 2, 3},
		"map32 beyond the input":     {0xdf, 0, 0, 0, 9, 0xa1, 'k', 1},
		"bin beyond the input":       {0xc6, 0xff, 0xff, 0xff, 0xff},
		"trailing byte":              {0x01, 0x02},
		"empty":                      {},
		"reserved code 0xc1":         {0xc1},
	} {
		if err := Check(in, 2); !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
