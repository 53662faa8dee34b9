package wire

import (
	"bytes"
	"crypto/ecdh"
	"encoding/hex"
	"testing"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// RFC 8439 §2.8.2, run through an epoch: the §4 nonce builder must produce
// the RFC's nonce from Timestamp‖Random‖Counter, and the epoch's AEAD the
// RFC's ciphertext and tag.
func TestRFC8439AEAD(t *testing.T) {
	var k DirectionalKeys
	copy(k.Key[:], unhex(t, "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"))
	copy(k.Random[:], unhex(t, "40414243"))
	e := epochFromKeys(ChaCha20Poly1305, k, [KeySize]byte{}, 0, t0)
	var buf [12]byte
	nonce := e.nonce(&buf, 0x07000000, 0x44454647)
	if want := unhex(t, "070000004041424344454647"); !bytes.Equal(nonce, want) {
		t.Fatalf("nonce %x, want %x", nonce, want)
	}
	pt := []byte("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.")
	ad := unhex(t, "50515253c0c1c2c3c4c5c6c7")
	want := unhex(t, "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116"+
		"1ae10b594f09e26a7e902ecbd0600691")
	got := e.aead.Seal(nil, nonce, pt, ad)
	if !bytes.Equal(got, want) {
		t.Fatalf("ciphertext+tag\n got %x\nwant %x", got, want)
	}
	back, err := e.aead.Open(nil, nonce, got, ad)
	if err != nil || !bytes.Equal(back, pt) {
		t.Fatalf("open: %v", err)
	}
}

// The GCM specification's test case 16 (AES-256, 96-bit IV, with
// associated data; McGrew and Viega, "The Galois/Counter Mode of
// Operation", also in NIST's CAVP vectors), run through an AES-256-GCM
// epoch: the §4 nonce builder makes the case's IV, the epoch's AEAD its
// ciphertext and tag.
func TestGCMSpecAES256(t *testing.T) {
	var k DirectionalKeys
	copy(k.Key[:], unhex(t, "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308"))
	copy(k.Random[:], unhex(t, "facedbad"))
	e := epochFromKeys(AES256GCM, k, [KeySize]byte{}, 0, t0)
	var buf [NonceSize]byte
	nonce := e.nonce(&buf, 0xcafebabe, 0xdecaf888)
	if want := unhex(t, "cafebabefacedbaddecaf888"); !bytes.Equal(nonce, want) {
		t.Fatalf("nonce %x, want %x", nonce, want)
	}
	pt := unhex(t, "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39")
	ad := unhex(t, "feedfacedeadbeeffeedfacedeadbeefabaddad2")
	want := unhex(t, "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"+
		"76fc6ece0f4e1768cddf8853bb2d551b")
	got := e.aead.Seal(nil, nonce, pt, ad)
	if !bytes.Equal(got, want) {
		t.Fatalf("ciphertext+tag\n got %x\nwant %x", got, want)
	}
	back, err := e.aead.Open(nil, nonce, got, ad)
	if err != nil || !bytes.Equal(back, pt) {
		t.Fatalf("open: %v", err)
	}
}

// RFC 7748 §5.2 (the X25519 function) and §6.1 (Diffie-Hellman), through
// SharedSecret.
func TestRFC7748X25519(t *testing.T) {
	tests := []struct{ scalar, u, out string }{
		{"a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
			"e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
			"c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"},
		{"4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
			"e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
			"95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957"},
		// §6.1: Alice's private key with Bob's public key, and the reverse.
		{"77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
			"de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
			"4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"},
		{"5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
			"8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
			"4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"},
	}
	for i, tt := range tests {
		priv, err := ecdh.X25519().NewPrivateKey(unhex(t, tt.scalar))
		if err != nil {
			t.Fatal(err)
		}
		var u [PublicKeySize]byte
		copy(u[:], unhex(t, tt.u))
		got, err := SharedSecret(priv, u)
		if err != nil || hex.EncodeToString(got[:]) != tt.out {
			t.Errorf("vector %d: %x, %v", i, got, err)
		}
	}
	// §6.1 public keys from the private keys.
	alice, _ := ecdh.X25519().NewPrivateKey(unhex(t, tests[2].scalar))
	if hex.EncodeToString(alice.PublicKey().Bytes()) != tests[3].u {
		t.Error("Alice's public key")
	}
	// A low-order point gives the all-zero secret: rejected.
	if _, err := SharedSecret(alice, [PublicKeySize]byte{}); err != ErrBadKey {
		t.Errorf("low-order point: %v", err)
	}
}

// RFC 5869 Appendix A.1-A.3 (SHA-256), through the schedule's HKDF.
func TestRFC5869HKDF(t *testing.T) {
	tests := []struct{ ikm, salt, info, prk, okm string }{
		{"0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "000102030405060708090a0b0c", "f0f1f2f3f4f5f6f7f8f9",
			"077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
			"3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"},
		{"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f",
			"606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
			"b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
			"06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
			"b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87"},
		{"0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "", "",
			"19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
			"8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"},
	}
	for i, tt := range tests {
		prk := hkdfExtract(unhex(t, tt.salt), unhex(t, tt.ikm))
		if hex.EncodeToString(prk) != tt.prk {
			t.Errorf("A.%d PRK %x", i+1, prk)
		}
		okm := hkdfExpand(prk, unhex(t, tt.info), len(tt.okm)/2)
		if hex.EncodeToString(okm) != tt.okm {
			t.Errorf("A.%d OKM %x", i+1, okm)
		}
	}
	// hkdfKey is Extract then Expand to 32 bytes.
	k := hkdfKey(unhex(t, tests[0].ikm), unhex(t, tests[0].salt), unhex(t, tests[0].info))
	if hex.EncodeToString(k[:]) != tests[0].okm[:64] {
		t.Errorf("hkdfKey %x", k)
	}
}

// The key schedule follows the profile's formulas (§P5, §P16): checked
// here against the primitive definitions, and pinned by the vectors.
func TestKeySchedule(t *testing.T) {
	var shared [KeySize]byte
	copy(shared[:], unhex(t, "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"))
	nI := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
	nR := [8]byte{9, 10, 11, 12, 13, 14, 15, 16}
	sk := SessionKey(shared, nI, nR)
	want := hkdfExpand(hkdfExtract(append(nI[:], nR[:]...), shared[:]), []byte("myclerk-session-v0"), 32)
	if !bytes.Equal(sk[:], want) {
		t.Fatal("session key is not §5.1")
	}
	r1 := RotateKey(sk, 1)
	want = hkdfExpand(hkdfExtract([]byte("rotate"), sk[:]), []byte{0, 0, 0, 1}, 32)
	if !bytes.Equal(r1[:], want) || EpochKey(sk, 1) != r1 || EpochKey(sk, 2) != RotateKey(r1, 2) || EpochKey(sk, 0) != sk {
		t.Fatal("rotation is not §5.2")
	}
	th := TranscriptHash([]byte("init"), []byte("ack"))
	a := DeriveDirectional(sk, th, InitiatorToResponder)
	b := DeriveDirectional(sk, th, ResponderToInitiator)
	if a.Key == b.Key || a.Random == b.Random || a.MACKey == b.MACKey || a.Key == a.MACKey {
		t.Fatal("directions share key material")
	}
	th2 := TranscriptHash([]byte("init"), []byte("acK"))
	if DeriveDirectional(sk, th2, InitiatorToResponder).Key == a.Key {
		t.Fatal("directional keys ignore the transcript")
	}
	if ResumptionSecret(sk, th) == a.Key || ResumptionSecret(sk, th) == sk {
		t.Fatal("resumption secret equals a traffic key")
	}
	if ResumedSessionKey(shared, ResumptionSecret(sk, th), nI, nR) == sk {
		t.Fatal("resumed session key equals the original")
	}
}

func TestGenerateKeyUsesCallerRandomness(t *testing.T) {
	r := bytes.NewReader(unhex(t, "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))
	k, err := GenerateKey(r)
	if err != nil {
		t.Fatal(err)
	}
	// RFC 7748 §6.1: Alice's public key.
	if hex.EncodeToString(k.PublicKey().Bytes()) != "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a" {
		t.Fatal("GenerateKey ignored the reader")
	}
	if _, err := GenerateKey(bytes.NewReader([]byte{1, 2, 3})); err == nil {
		t.Fatal("short randomness accepted")
	}
}
