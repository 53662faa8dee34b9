package bridge

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
	"maunium.net/go/mautrix/appservice"

	"github.com/myclerk/myclerk-bridge/node/config"
	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/store"
)

// matrixSection is a valid minimal matrix section; tokens adds
// appservice.as_token and hs_token.
func matrixSection(tokens bool) map[string]any {
	m := map[string]any{
		"homeserver": map[string]any{"address": "http://127.0.0.1:8008", "domain": "example.com"},
		"appservice": map[string]any{},
		"bridge":     map[string]any{"permissions": map[string]any{"example.com": "user"}},
	}
	if tokens {
		m["appservice"] = map[string]any{"as_token": "as-tok", "hs_token": "hs-tok"}
	}
	return m
}

func sub(m map[string]any, key string) map[string]any { return m[key].(map[string]any) }

// parseConfig makes a *config.Config through config.Parse from top-level
// keys (data_dir is added) and a matrix section (nil: none).
func parseConfig(t *testing.T, dir string, top map[string]any, matrix map[string]any) *config.Config {
	t.Helper()
	doc := map[string]any{"data_dir": dir}
	for k, v := range top {
		doc[k] = v
	}
	if matrix != nil {
		doc["matrix"] = matrix
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.Parse(b)
	if err != nil {
		t.Fatalf("config.Parse:\n%s\n%v", b, err)
	}
	return c
}

func newRoot(t *testing.T) *identity.Root {
	t.Helper()
	r, err := identity.NewRoot(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestLoadSettingsDefaults(t *testing.T) {
	const pgURI = "postgres://myclerk@db.example/myclerk?sslmode=disable"
	tests := []struct {
		name     string
		top      map[string]any
		wantType string
		wantURI  func(dir string, c *config.Config) string
	}{
		{"sqlite", nil, store.DriverSQLite, func(dir string, _ *config.Config) string {
			return "file:" + filepath.Join(dir, "matrix.db") + "?"
		}},
		{"postgres", map[string]any{"database": map[string]any{"type": "postgres", "uri": pgURI}}, "postgres",
			func(_ string, c *config.Config) string { return c.DatabaseURI() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			c := parseConfig(t, dir, tt.top, matrixSection(true))
			s, err := LoadSettings(c, newRoot(t), true)
			if err != nil {
				t.Fatalf("LoadSettings: %v", err)
			}
			for _, ck := range []struct {
				what      string
				got, want any
			}{
				{"bridge.command_prefix", s.Bridge.CommandPrefix, "!mc"},
				{"appservice.bot.username", s.AppService.Bot.Username, "myclerkbot"},
				{"appservice.id", s.AppService.ID, "myclerk"},
				{"appservice.username_template", s.AppService.UsernameTemplate, "myclerk_{{.}}"},
				{"homeserver.address", s.Homeserver.Address, "http://127.0.0.1:8008"},
				{"homeserver.domain", s.Homeserver.Domain, "example.com"},
				{"homeserver.software", string(s.Homeserver.Software), "standard"},
				{"device_sync", s.DeviceSync, 5 * time.Second},
				{"registration", s.Registration, filepath.Join(dir, "registration.yaml")},
				{"appservice.as_token", s.AppService.ASToken, "as-tok"},
				{"appservice.hs_token", s.AppService.HSToken, "hs-tok"},
				{"database.type", s.Database.Type, tt.wantType},
				{"permissions", len(s.Bridge.Permissions), 1},
			} {
				if ck.got != ck.want {
					t.Errorf("%s = %#v, want %#v", ck.what, ck.got, ck.want)
				}
			}
			wantURI := tt.wantURI(dir, c)
			if tt.wantType == store.DriverSQLite {
				if !strings.HasPrefix(s.Database.URI, wantURI) {
					t.Errorf("database URI = %q, want prefix %q", s.Database.URI, wantURI)
				}
			} else if s.Database.URI != wantURI || wantURI != pgURI {
				t.Errorf("database URI = %q, want the top level's %q", s.Database.URI, pgURI)
			}
			if s.Encryption.PickleKey == "" {
				t.Error("no pickle key derived from the root")
			}
		})
	}
}

func TestLoadSettingsErrors(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(m map[string]any)
		wantIn []string // substrings of the error
	}{
		{"missing homeserver address", func(m map[string]any) { delete(sub(m, "homeserver"), "address") },
			[]string{"matrix.homeserver.address"}},
		{"bad homeserver scheme", func(m map[string]any) { sub(m, "homeserver")["address"] = "ftp://127.0.0.1:8008" },
			[]string{"matrix.homeserver.address", "ftp://"}},
		{"homeserver address without host", func(m map[string]any) { sub(m, "homeserver")["address"] = "http://" },
			[]string{"matrix.homeserver.address"}},
		{"empty domain", func(m map[string]any) { sub(m, "homeserver")["domain"] = "" },
			[]string{"matrix.homeserver.domain"}},
		{"domain with a slash", func(m map[string]any) { sub(m, "homeserver")["domain"] = "example.com/x" },
			[]string{"matrix.homeserver.domain"}},
		{"no permissions", func(m map[string]any) { delete(sub(m, "bridge"), "permissions") },
			[]string{"matrix.bridge.permissions"}},
		{"username_template without {{.}}", func(m map[string]any) { sub(m, "appservice")["username_template"] = "myclerk_x" },
			[]string{"matrix.appservice.username_template"}},
		{"empty command prefix", func(m map[string]any) { sub(m, "bridge")["command_prefix"] = "" },
			[]string{"matrix.bridge.command_prefix"}},
		{"device_sync 1ms", func(m map[string]any) { m["device_sync"] = "1ms" },
			[]string{"matrix.device_sync", "1ms"}},
		{"device_sync 2h", func(m map[string]any) { m["device_sync"] = "2h" },
			[]string{"matrix.device_sync"}},
		{"unknown key", func(m map[string]any) { m["bogus"] = true },
			[]string{"config: matrix", "bogus"}},
		{"unknown nested key", func(m map[string]any) { sub(m, "homeserver")["adress"] = "x" },
			[]string{"config: matrix", "adress"}},
		{"matrix.database set", func(m map[string]any) { m["database"] = map[string]any{"type": "sqlite3-fk-wal"} },
			[]string{"matrix.database"}},
		{"matrix.logging set", func(m map[string]any) { m["logging"] = map[string]any{"min_level": "debug"} },
			[]string{"matrix.logging"}},
		{"matrix.network set", func(m map[string]any) { m["network"] = map[string]any{} },
			[]string{"matrix.network"}},
		{"bad appservice address", func(m map[string]any) { sub(m, "appservice")["address"] = "127.0.0.1:29340" },
			[]string{"matrix.appservice.address"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := matrixSection(true)
			tt.edit(m)
			c := parseConfig(t, t.TempDir(), nil, m)
			s, err := LoadSettings(c, newRoot(t), true)
			if err == nil {
				t.Fatalf("LoadSettings succeeded (%+v), want an error naming %q", s.Homeserver, tt.wantIn)
			}
			for _, w := range tt.wantIn {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadSettingsNoMatrixSection(t *testing.T) {
	c := parseConfig(t, t.TempDir(), nil, nil)
	if _, err := LoadSettings(c, nil, false); err == nil || !strings.Contains(err.Error(), "matrix.homeserver.address") {
		t.Fatalf("LoadSettings without a matrix section: %v, want an error naming matrix.homeserver.address", err)
	}
}

func TestLoadSettingsTokens(t *testing.T) {
	tests := []struct {
		name       string
		tokens     bool
		needTokens bool
		wantIn     []string // empty: success
	}{
		{"given, needed", true, true, nil},
		{"missing, not needed", false, false, nil},
		{"missing, needed, no registration", false, true,
			[]string{"matrix.appservice.as_token", "registration.yaml", "run `myclerk-bridge register`"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := parseConfig(t, t.TempDir(), nil, matrixSection(tt.tokens))
			_, err := LoadSettings(c, newRoot(t), tt.needTokens)
			if len(tt.wantIn) == 0 {
				if err != nil {
					t.Fatalf("LoadSettings: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("LoadSettings succeeded, want an error")
			}
			for _, w := range tt.wantIn {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadSettingsRegistrationWithoutTokens(t *testing.T) {
	dir := t.TempDir()
	c := parseConfig(t, dir, nil, matrixSection(false))
	if err := os.WriteFile(filepath.Join(dir, "registration.yaml"), []byte("id: myclerk\nurl: http://127.0.0.1:29340\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadSettings(c, nil, true)
	if err == nil || !strings.Contains(err.Error(), "matrix.registration") || !strings.Contains(err.Error(), "no as_token or hs_token") {
		t.Fatalf("LoadSettings with a token-less registration: %v, want an error naming matrix.registration", err)
	}
}

func loadRegistration(t *testing.T, path string) *appservice.Registration {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("%s has mode %v, want 0600", path, perm)
	}
	reg, err := appservice.LoadRegistration(path)
	if err != nil {
		t.Fatal(err)
	}
	if reg.AppToken == "" || reg.ServerToken == "" {
		t.Fatalf("%s has no tokens: %+v", path, reg)
	}
	return reg
}

func TestWriteRegistration(t *testing.T) {
	dir := t.TempDir()
	m := matrixSection(false)
	regPath := filepath.Join(dir, "sub", "registration.yaml") // WriteRegistration makes the folder
	m["registration"] = regPath
	c := parseConfig(t, dir, nil, m)
	root := newRoot(t)

	s, err := LoadSettings(c, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	created, err := WriteRegistration(s)
	if err != nil || !created {
		t.Fatalf("first WriteRegistration = %v, %v; want true, nil", created, err)
	}
	first := loadRegistration(t, regPath)
	if first.ID != "myclerk" || first.URL != "http://127.0.0.1:29340" {
		t.Errorf("registration id/url = %q/%q", first.ID, first.URL)
	}

	s, err = LoadSettings(c, root, true)
	if err != nil {
		t.Fatalf("LoadSettings after register: %v", err)
	}
	if s.AppService.ASToken != first.AppToken || s.AppService.HSToken != first.ServerToken {
		t.Errorf("LoadSettings tokens = %q/%q, want the registration's %q/%q",
			s.AppService.ASToken, s.AppService.HSToken, first.AppToken, first.ServerToken)
	}

	// `myclerk-bridge register` again: the homeserver keeps working.
	s, err = LoadSettings(c, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	created, err = WriteRegistration(s)
	if err != nil || created {
		t.Fatalf("second WriteRegistration = %v, %v; want false, nil", created, err)
	}
	second := loadRegistration(t, regPath)
	if second.AppToken != first.AppToken || second.ServerToken != first.ServerToken {
		t.Errorf("second WriteRegistration changed the tokens: as %q -> %q, hs %q -> %q",
			first.AppToken, second.AppToken, first.ServerToken, second.ServerToken)
	}
	if second.SenderLocalpart != first.SenderLocalpart {
		t.Errorf("sender_localpart changed: %q -> %q", first.SenderLocalpart, second.SenderLocalpart)
	}
}

func TestWriteRegistrationConfiguredTokens(t *testing.T) {
	dir := t.TempDir()
	c := parseConfig(t, dir, nil, matrixSection(true))
	s, err := LoadSettings(c, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WriteRegistration(s); err != nil {
		t.Fatal(err)
	}
	reg := loadRegistration(t, s.Registration)
	if reg.AppToken != "as-tok" || reg.ServerToken != "hs-tok" {
		t.Errorf("registration tokens = %q/%q, want the configured as-tok/hs-tok", reg.AppToken, reg.ServerToken)
	}
	if s.AppService.ASToken != "as-tok" || s.AppService.HSToken != "hs-tok" {
		t.Errorf("WriteRegistration changed the settings' tokens to %q/%q", s.AppService.ASToken, s.AppService.HSToken)
	}
}

func TestPickleKey(t *testing.T) {
	c := parseConfig(t, t.TempDir(), nil, matrixSection(true))
	rootA, rootB := newRoot(t), newRoot(t)
	key := func(root *identity.Root) string {
		t.Helper()
		s, err := LoadSettings(c, root, true)
		if err != nil {
			t.Fatal(err)
		}
		return s.Encryption.PickleKey
	}
	a1, a2, b, none := key(rootA), key(rootA), key(rootB), key(nil)
	tests := []struct {
		name string
		ok   bool
	}{
		{"derived", a1 != "" && b != ""},
		{"same root, same key", a1 == a2},
		{"other root, other key", a1 != b},
		{"nil root, no key", none == ""},
		{"key is 32 bytes of base64", len(a1) == 43},
		{"derivedSecret is the key", a1 == derivedSecret(rootA, "myclerk bridge pickle key")},
		{"other label, other secret", derivedSecret(rootA, "other") != a1},
	}
	for _, tt := range tests {
		if !tt.ok {
			t.Errorf("%s: failed (a1=%q a2=%q b=%q nil=%q)", tt.name, a1, a2, b, none)
		}
	}

	// A configured pickle key wins over the derived one.
	m := matrixSection(true)
	m["encryption"] = map[string]any{"pickle_key": "configured"}
	s, err := LoadSettings(parseConfig(t, t.TempDir(), nil, m), rootA, true)
	if err != nil {
		t.Fatal(err)
	}
	if s.Encryption.PickleKey != "configured" {
		t.Errorf("pickle key = %q, want the configured one", s.Encryption.PickleKey)
	}
}
