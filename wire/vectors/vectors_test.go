package vectors

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/myclerk/myclerk-bridge/wire"
	"github.com/myclerk/myclerk-bridge/wire/inspect"
)

const dir = "../../testdata/vectors"

// TestFilesUpToDate: the vectors in the repository are exactly what the
// code builds (rewrite them with `go run . frame vectors -dir testdata/vectors`).
func TestFilesUpToDate(t *testing.T) {
	files, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	again, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range Names(files) {
		if !bytes.Equal(files[name], again[name]) {
			t.Errorf("%s differs between two runs: the builder is not deterministic", name)
		}
		disk, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !bytes.Equal(disk, files[name]) {
			t.Errorf("%s is out of date: run `go run . frame vectors -dir testdata/vectors`", name)
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if _, ok := files[e.Name()]; !ok {
			t.Errorf("%s is not built by the vectors package", e.Name())
		}
	}
}

func load[T any](t *testing.T, name string) []T {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Vectors []T }
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(f.Vectors) == 0 {
		t.Fatalf("%s has no vectors", name)
	}
	return f.Vectors
}

// The checks below read the files on disk, as another implementation
// would, and run each vector through the public API of package wire.

func TestHeaderVectors(t *testing.T) {
	for _, v := range load[HeaderVector](t, "headers.json") {
		if v.Tier == 0 {
			c, _, err := wire.ParseTier0(v.Encoded)
			if err != nil || c != v.Compressed {
				t.Errorf("%s: %v", v.Name, err)
			}
			continue
		}
		var h wire.Header
		n, err := h.Decode(v.Encoded)
		if err != nil || n != len(v.Encoded) {
			t.Errorf("%s: decode %d %v", v.Name, n, err)
			continue
		}
		op, _ := inspect.ParseOp(v.Op)
		if uint8(h.Tier) != v.Tier || h.Op != op || h.Op.String() != v.OpName || h.Compressed != v.Compressed ||
			h.Fragmented != v.Fragmented || h.Encrypted != v.Encrypted || h.Sequence != *v.Sequence {
			t.Errorf("%s: fields %+v", v.Name, h)
		}
		if v.SessionID != nil && h.SessionID != *v.SessionID || v.Timestamp != nil && h.Timestamp != *v.Timestamp ||
			v.Nonce != nil && h.Nonce != *v.Nonce || v.KeyID != nil && h.KeyID != *v.KeyID ||
			v.PublicKey != nil && !bytes.Equal(h.PublicKey[:], v.PublicKey) || v.Tag != nil && !bytes.Equal(h.Tag[:], v.Tag) {
			t.Errorf("%s: fields %+v", v.Name, h)
		}
		re, _ := h.AppendTo(nil)
		if !bytes.Equal(re, v.Encoded) {
			t.Errorf("%s: re-encoded %x", v.Name, re)
		}
	}
}

func TestCRCVectors(t *testing.T) {
	for _, v := range load[CRCVector](t, "crc.json") {
		c := wire.CRC16(v.Input)
		if got := (inspect.Hex{byte(c >> 8), byte(c)}); hexOf(got) != v.CRC {
			t.Errorf("%s: crc %x, want %s", v.Name, got, v.CRC)
		}
	}
}

func hexOf(b []byte) string {
	j, _ := json.Marshal(inspect.Hex(b))
	return string(j[1 : len(j)-1])
}

func TestKeyScheduleVectors(t *testing.T) {
	for _, v := range load[handshakeVector](t, "keyschedule.json") {
		ip, err := ecdhKey(v.InitiatorPrivate)
		if err != nil {
			t.Fatal(err)
		}
		rp, err := ecdhKey(v.ResponderPrivate)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ip.PublicKey().Bytes(), v.InitiatorPublic) || !bytes.Equal(rp.PublicKey().Bytes(), v.ResponderPublic) {
			t.Fatal("public keys")
		}
		init, err := wire.ParseHandshake(v.SessionInitFrame)
		if err != nil || !bytes.Equal(init.Body, v.SessionInitPayload) || !bytes.Equal(init.Header.PublicKey[:], v.InitiatorPublic) {
			t.Fatalf("SESSION_INIT frame: %v", err)
		}
		ack, err := wire.ParseHandshake(v.SessionAckFrame)
		if err != nil || !bytes.Equal(ack.Body, v.SessionAckPayload) || !bytes.Equal(ack.Header.PublicKey[:], v.ResponderPublic) {
			t.Fatalf("SESSION_ACK frame: %v", err)
		}
		s1, _ := wire.SharedSecret(ip, [32]byte(v.ResponderPublic))
		s2, _ := wire.SharedSecret(rp, [32]byte(v.InitiatorPublic))
		if s1 != s2 || !bytes.Equal(s1[:], v.SharedSecret) {
			t.Fatal("shared secret")
		}
		sk := wire.SessionKey(s1, [8]byte(v.InitiatorNonce), [8]byte(v.ResponderNonce))
		th := wire.TranscriptHash(v.SessionInitFrame, v.SessionAckFrame)
		if !bytes.Equal(sk[:], v.SessionKey) || !bytes.Equal(th[:], v.TranscriptHash) {
			t.Fatal("session key or transcript hash")
		}
		rs := wire.ResumptionSecret(sk, th)
		if !bytes.Equal(rs[:], v.ResumptionSecret) {
			t.Fatal("resumption secret")
		}
		for _, e := range v.Epochs {
			chain := wire.EpochKey(sk, e.Epoch)
			if !bytes.Equal(chain[:], e.ChainKey) {
				t.Fatalf("epoch %d chain key", e.Epoch)
			}
			for dir, want := range map[wire.Direction]directionVector{wire.InitiatorToResponder: e.I2R, wire.ResponderToInitiator: e.R2I} {
				k := wire.DeriveDirectional(chain, th, dir)
				if !bytes.Equal(k.Key[:], want.Key) || !bytes.Equal(k.Random[:], want.Random) || !bytes.Equal(k.MACKey[:], want.MACKey) {
					t.Errorf("epoch %d %v keys", e.Epoch, dir)
				}
			}
		}
	}
}

func checkSealed(t *testing.T, file string) {
	for _, v := range load[SealedVector](t, file) {
		sec, err := v.Keys.Secrets()
		if err != nil {
			t.Fatal(err)
		}
		dir, _ := inspect.ParseDirection(v.Direction)
		now := time.Unix(int64(v.Timestamp), 0)
		var largest uint64
		if v.Largest != nil {
			largest = *v.Largest
		}
		o, err := wire.NewOpenerAt(sec, dir, v.Epoch, largest, v.Largest != nil, now)
		if err != nil {
			t.Fatal(err)
		}
		got, err := o.Open(nil, v.Frame, now)
		if err != nil {
			t.Errorf("%s: open: %v", v.Name, err)
			continue
		}
		op, _ := inspect.ParseOp(v.Op)
		if !bytes.Equal(got.Payload, v.Plaintext) || got.Counter != v.Counter || got.Epoch != v.Epoch ||
			got.Header.Op != op || got.Header.SessionID != v.SessionID || got.Header.Encrypted != v.Encrypted {
			t.Errorf("%s: opened %+v", v.Name, got)
		}
		// Sealing the same inputs gives the same bytes.
		s, _ := wire.NewSealerAt(sec, dir, v.Epoch, uint64(v.Counter), now)
		h := wire.Header{Tier: wire.Tier(v.Tier), Op: op, SessionID: v.SessionID, Encrypted: v.Encrypted, Compressed: v.Compressed}
		var fh *wire.FragmentHeader
		if v.Fragment != nil {
			h.Fragmented = true
			fh = &wire.FragmentHeader{MessageID: v.Fragment.MessageID, Index: v.Fragment.Index, Total: v.Fragment.Total}
		}
		again, err := s.Seal(nil, &h, fh, v.Plaintext, now)
		if err != nil || !bytes.Equal(again, v.Frame) {
			t.Errorf("%s: reseal differs (%v)", v.Name, err)
		}
		if !bytes.Contains(v.AssociatedData, v.Frame[:12]) && v.Tier < 5 {
			t.Errorf("%s: associated data does not start with the header", v.Name)
		}
	}
}

func TestSealedVectors(t *testing.T)   { checkSealed(t, "sealed.json") }
func TestRotationVectors(t *testing.T) { checkSealed(t, "rotation.json") }

func TestRejectVectors(t *testing.T) {
	for _, v := range load[RejectVector](t, "rejects.json") {
		if err := Reject(&v); err != nil {
			t.Errorf("%s: %v", v.Name, err)
		}
	}
}

func TestPayloadVectors(t *testing.T) {
	for _, v := range load[PayloadVector](t, "payloads.json") {
		if err := CheckPayload(&v); err != nil {
			t.Errorf("%s: %v", v.Name, err)
		}
	}
}

func TestTicketVectors(t *testing.T) {
	for _, v := range load[TicketVector](t, "tickets.json") {
		if err := CheckTicket(&v); err != nil {
			t.Errorf("%s: %v", v.Name, err)
		}
	}
}

func TestFragmentVectors(t *testing.T) {
	for _, v := range load[FragmentVector](t, "fragments.json") {
		if got := Reassemble(&v); got != v.Outcome {
			t.Errorf("%s: %s, want %s", v.Name, got, v.Outcome)
		}
	}
}

func TestCompressionVectors(t *testing.T) {
	for _, v := range load[CompressionVector](t, "compression.json") {
		if err := CheckCompression(&v); err != nil {
			t.Errorf("%s: %v", v.Name, err)
		}
	}
}

func TestContainerVectors(t *testing.T) {
	vs := load[ContainerVector](t, "containers.json")
	if len(vs) == 0 {
		t.Fatal("no container vectors")
	}
	for _, v := range vs {
		if err := CheckContainer(&v); err != nil {
			t.Errorf("%s: %v", v.Name, err)
		}
	}
}
