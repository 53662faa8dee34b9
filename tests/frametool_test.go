// Package tests holds end-to-end tests: the myclerk-bridge binary driven
// as a user would drive it, and sessions between nodes over real
// transports and servers started on 127.0.0.1.
package tests

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "myclerk-tests")
	if err != nil {
		panic(err)
	}
	binPath = filepath.Join(dir, "myclerk-bridge")
	build := exec.Command("go", "build", "-tags", "goolm", "-o", binPath, "..")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		os.RemoveAll(dir)
		panic("building the binPath: " + err.Error())
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

func run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return runWith(t, "", stdin, args...)
}

// runWith runs the binary in dir ("" for here) with stdin to completion.
func runWith(t testing.TB, dir, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errb.String(), code}
}

func TestFrameVectorsMatchRepository(t *testing.T) {
	dir := t.TempDir()
	if r := run(t, "", "frame", "vectors", "-dir", dir); r.code != 0 {
		t.Fatalf("frame vectors: %d %s", r.code, r.stderr)
	}
	want, _ := filepath.Glob("../testdata/vectors/*.json")
	if len(want) < 10 {
		t.Fatalf("only %d vector files in the repository", len(want))
	}
	for _, w := range want {
		a, _ := os.ReadFile(w)
		b, err := os.ReadFile(filepath.Join(dir, filepath.Base(w)))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s: the binPath writes different vectors (%v)", filepath.Base(w), err)
		}
	}
}

// sealed vectors as a user would feed them to the tool.
type sealed struct {
	Name      string          `json:"name"`
	Keys      json.RawMessage `json:"keys"`
	Direction string          `json:"direction"`
	Epoch     uint32          `json:"epoch"`
	Counter   uint32          `json:"counter"`
	Largest   *uint64         `json:"largest_accepted"`
	Timestamp uint32          `json:"timestamp"`
	Plaintext string          `json:"plaintext"`
	Frame     string          `json:"frame"`
}

func loadSealed(t *testing.T) []sealed {
	b, err := os.ReadFile("../testdata/vectors/sealed.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Vectors []sealed }
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return f.Vectors
}

func TestDecodeOpensSealedVectors(t *testing.T) {
	for _, v := range loadSealed(t) {
		args := []string{"frame", "decode", "-keys", string(v.Keys), "-direction", v.Direction,
			"-now", jsonNum(v.Timestamp)}
		if v.Largest != nil {
			args = append(args, "-largest", jsonNum(*v.Largest))
		}
		r := run(t, v.Frame+"\n", append(args, "-epoch", jsonNum(v.Epoch))...) // the frame on stdin
		if r.code != 0 {
			t.Errorf("%s: exit %d: %s", v.Name, r.code, r.stderr)
			continue
		}
		var d struct {
			Opened struct {
				Counter   uint32 `json:"counter"`
				Plaintext string `json:"plaintext"`
			} `json:"opened"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
			t.Fatalf("%s: output is not JSON: %v", v.Name, err)
		}
		if d.Opened.Plaintext != v.Plaintext || d.Opened.Counter != v.Counter {
			t.Errorf("%s: opened %+v", v.Name, d.Opened)
		}
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	v := loadSealed(t)[0]
	in := `{"tier":3,"op":"GPIO_LINE_SET","encrypted":true,"session_id":1,"timestamp":` + jsonNum(v.Timestamp) + `,"counter":77,"payload":"6f6e"}`
	r := run(t, "", "frame", "encode", "-keys", string(v.Keys), "-direction", "r2i", in)
	if r.code != 0 {
		t.Fatalf("encode: %d %s", r.code, r.stderr)
	}
	frame := strings.TrimSpace(r.stdout)
	r = run(t, "", "frame", "decode", "-keys", string(v.Keys), "-direction", "r2i", "-now", jsonNum(v.Timestamp), frame)
	if r.code != 0 || !strings.Contains(r.stdout, `"plaintext": "6f6e"`) || !strings.Contains(r.stdout, `"counter": 77`) {
		t.Fatalf("decode: %d %s %s", r.code, r.stdout, r.stderr)
	}
	// base64 in, as Matrix events carry frames.
	r = run(t, "", "frame", "encode", "-base64", `{"tier":1,"op":"KEEPALIVE","sequence":7,"payload":""}`)
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	r = run(t, "", "frame", "decode", "-in", "base64", strings.TrimSpace(r.stdout))
	if r.code != 0 || !strings.Contains(r.stdout, `"op_name": "KEEPALIVE"`) {
		t.Fatalf("base64 decode: %s %s", r.stdout, r.stderr)
	}
}

// withAEAD returns key material with its "aead" member set to name.
func withAEAD(t *testing.T, keys json.RawMessage, name string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(keys, &m); err != nil {
		t.Fatal(err)
	}
	m["aead"] = name
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Bad input: one line on stderr, a non-zero status, never a panic.
func TestBadInput(t *testing.T) {
	v := loadSealed(t)[0]
	tests := []struct {
		name  string
		stdin string
		args  []string
		code  int
		want  string
	}{
		{"not hex or base64", "", []string{"frame", "decode", "zz%%"}, 1, "neither hex nor base64"},
		{"empty stdin", "", []string{"frame", "decode"}, 1, "no frame given"},
		{"unknown tier", "", []string{"frame", "decode", "30000000"}, 1, "unknown security tier"},
		{"truncated", "", []string{"frame", "decode", "1800"}, 1, "truncated frame"},
		{"tier 0 alone", "", []string{"frame", "decode", "00"}, 1, "tier 0 frame outside a sealed frame"},
		{"forged tag", "", []string{"frame", "decode", "-keys", string(v.Keys), "-now", jsonNum(v.Timestamp), flipLast(v.Frame)}, 1, "authentication failed"},
		{"stale", "", []string{"frame", "decode", "-keys", string(v.Keys), "-now", jsonNum(v.Timestamp + 3600), v.Frame}, 1, "timestamp outside the allowed skew"},
		{"bad key material", "", []string{"frame", "decode", "-keys", `{"session_key":"00"}`, v.Frame}, 1, "session_key has 1 bytes"},
		{"unknown AEAD", "", []string{"frame", "decode", "-keys", withAEAD(t, v.Keys, "rot13"), v.Frame}, 1, `unknown AEAD "rot13"`},
		{"ChaCha20 frame opened as AES-256-GCM", "", []string{"frame", "decode", "-keys", withAEAD(t, v.Keys, "aes-256-gcm"), "-now", jsonNum(v.Timestamp), v.Frame}, 1, "authentication failed"},
		{"missing key file", "", []string{"frame", "decode", "-keys", "/nonexistent/keys.json", v.Frame}, 1, "key material"},
		{"bad direction", "", []string{"frame", "decode", "-direction", "sideways", v.Frame}, 1, "direction"},
		{"huge epoch", "", []string{"frame", "decode", "-epoch", "4000000000", v.Frame}, 1, "over the limit"},
		{"unknown flag", "", []string{"frame", "decode", "-bogus"}, 2, "flag provided but not defined"},
		{"two frames", "", []string{"frame", "decode", "08", "09"}, 2, "want one argument"},
		{"encode bad JSON", "{", []string{"frame", "encode"}, 1, "frame JSON"},
		{"encode unknown field", "", []string{"frame", "encode", `{"tier":1,"op":"NOP","bogus":1}`}, 1, "unknown field"},
		{"encode sealed without keys", "", []string{"frame", "encode", `{"tier":3,"op":"NOP","payload":""}`}, 1, "key material is required"},
		{"encode E at tier 2", "", []string{"frame", "encode", `{"tier":2,"op":"NOP","encrypted":true,"payload":""}`}, 1, "E flag set below tier 3"},
		{"unknown subcommand", "", []string{"frame", "munge"}, 1, "unknown subcommand"},
		{"unknown command", "", []string{"fly"}, 2, "unknown command"},
	}
	for _, tt := range tests {
		r := run(t, tt.stdin, tt.args...)
		if r.code != tt.code {
			t.Errorf("%s: exit %d, want %d (%s)", tt.name, r.code, tt.code, r.stderr)
		}
		if !strings.Contains(r.stderr, tt.want) {
			t.Errorf("%s: stderr %q, want %q", tt.name, r.stderr, tt.want)
		}
		if strings.Contains(r.stderr, "panic") || strings.Contains(r.stderr, "goroutine") {
			t.Errorf("%s: panicked: %s", tt.name, r.stderr)
		}
		if tt.code == 1 && strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("%s: more than one line on stderr: %q", tt.name, r.stderr)
		}
	}
}

func jsonNum[T ~uint32 | ~uint64](n T) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func flipLast(h string) string {
	last := h[len(h)-1]
	if last == '0' {
		return h[:len(h)-1] + "1"
	}
	return h[:len(h)-1] + "0"
}
