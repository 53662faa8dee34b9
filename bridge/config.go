package bridge

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.mau.fi/util/dbutil"
	"gopkg.in/yaml.v3"
	"maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/bridgev2/bridgeconfig"

	"github.com/myclerk/myclerk-bridge/node/config"
	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/store"
)

//go:embed defaults.yaml
var defaultsYAML []byte

// Settings is the matrix section of the configuration: mautrix-go
// bridgev2's layout (homeserver, appservice, bridge, encryption, ...) plus
// the keys below. The database and logging come from the top-level
// configuration, so one file and one database serve the hub and the bridge.
type Settings struct {
	bridgeconfig.Config `yaml:",inline"`

	// Registration is the appservice registration file: `myclerk-bridge
	// register` writes it, the homeserver reads it, and the bridge takes
	// its tokens from it when appservice.as_token is empty (the default:
	// secrets live in one file, not two).
	Registration string `yaml:"registration"`
	// DeviceSync is how often a login compares the devices it may see
	// with its portals (new devices get portals, vanished ones notices).
	DeviceSync time.Duration `yaml:"device_sync"`
	// AcceptOldServers lets the bridge start on a homeserver that
	// advertises only old spec versions (Dendrite says v1.2).
	AcceptOldServers bool `yaml:"accept_old_servers"`
}

type dbutilConfig = dbutil.Config

func keyErr(key, format string, args ...any) error {
	return fmt.Errorf("config: matrix.%s: "+format, append([]any{key}, args...)...)
}

// LoadSettings reads c's matrix section over the defaults and checks it.
// root derives the secrets the section leaves out (the encryption pickle
// key); needTokens says whether the appservice tokens must be known (not
// when making the registration).
func LoadSettings(c *config.Config, root *identity.Root, needTokens bool) (*Settings, error) {
	s := &Settings{DeviceSync: 5 * time.Second}
	if err := yaml.Unmarshal(defaultsYAML, s); err != nil {
		return nil, fmt.Errorf("bridge defaults: %w", err)
	}
	if c.MatrixEnabled() {
		var b bytes.Buffer
		enc := yaml.NewEncoder(&b)
		if err := enc.Encode(&c.Matrix); err != nil {
			return nil, fmt.Errorf("config: matrix: %w", err)
		}
		// Reject the keys the top level owns before decoding over them.
		var probe map[string]yaml.Node
		if err := yaml.Unmarshal(b.Bytes(), &probe); err != nil {
			return nil, fmt.Errorf("config: matrix: %w", err)
		}
		for _, k := range []string{"database", "logging", "network", "env_config_prefix"} {
			if _, ok := probe[k]; ok {
				return nil, keyErr(k, "not read here: the top-level keys (database, log_level) configure the bridge too")
			}
		}
		dec := yaml.NewDecoder(&b)
		dec.KnownFields(true)
		if err := dec.Decode(s); err != nil {
			return nil, fmt.Errorf("config: matrix: %w", err)
		}
	}
	if s.Registration == "" {
		s.Registration = filepath.Join(c.DataDir, "registration.yaml")
	}
	s.Database = databaseFor(c)
	if s.Encryption.PickleKey == "" && root != nil {
		s.Encryption.PickleKey = derivedSecret(root, "myclerk bridge pickle key")
	}
	if err := s.check(root != nil); err != nil {
		return nil, err
	}
	if needTokens && (s.AppService.ASToken == "" || s.AppService.HSToken == "") {
		reg, err := appservice.LoadRegistration(s.Registration)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, keyErr("appservice.as_token", "not set and %s does not exist: run `myclerk-bridge register` first", s.Registration)
		} else if err != nil {
			return nil, keyErr("registration", "%v", err)
		}
		if reg.AppToken == "" || reg.ServerToken == "" {
			return nil, keyErr("registration", "%s has no as_token or hs_token", s.Registration)
		}
		s.AppService.ASToken, s.AppService.HSToken = reg.AppToken, reg.ServerToken
	}
	return s, nil
}

// databaseFor puts the bridge's tables beside the hub's: in the same
// PostgreSQL database, or in matrix.db beside myclerk.db, through the same
// pure-Go SQLite driver.
func databaseFor(c *config.Config) dbutilConfig {
	var d dbutilConfig
	d.MaxOpenConns, d.MaxIdleConns = 5, 1
	if c.Database.Type == store.DriverPostgres {
		d.Type, d.URI = "postgres", c.DatabaseURI()
		return d
	}
	d.Type = store.DriverSQLite
	d.URI = "file:" + filepath.Join(c.DataDir, "matrix.db") +
		"?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_txlock=immediate"
	return d
}

// derivedSecret is a stable secret for the bridge, derived from the
// family root key so that it needs no file of its own.
func derivedSecret(root *identity.Root, label string) string {
	k, err := hkdf.Key(sha256.New, root.Private.Seed(), nil, label, 32)
	if err != nil {
		panic(err) // only for lengths HKDF cannot give
	}
	return base64.RawStdEncoding.EncodeToString(k)
}

// check validates s; withSecrets also wants the derived secrets (not
// known when only the registration is made).
func (s *Settings) check(withSecrets bool) error {
	hs := &s.Homeserver
	if u, err := url.Parse(hs.Address); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return keyErr("homeserver.address", "%q: want the homeserver's client-server URL, like http://127.0.0.1:8008", hs.Address)
	}
	if hs.Domain == "" || strings.ContainsAny(hs.Domain, "/@ ") {
		return keyErr("homeserver.domain", "%q: want the server name in user IDs, like example.com", hs.Domain)
	}
	if !bridgeconfig.AllowedHomeserverSoftware[hs.Software] {
		return keyErr("homeserver.software", "%q: want standard", hs.Software)
	}
	as := &s.AppService
	if u, err := url.Parse(as.Address); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return keyErr("appservice.address", "%q: want the URL the homeserver reaches the bridge at, like http://127.0.0.1:29340", as.Address)
	}
	if as.Hostname == "" || as.Port == 0 {
		return keyErr("appservice.port", "the bridge needs appservice.hostname and appservice.port to listen on")
	}
	if as.ID == "" {
		return keyErr("appservice.id", "must not be empty")
	}
	if as.Bot.Username == "" {
		return keyErr("appservice.bot.username", "must not be empty")
	}
	if !strings.Contains(as.UsernameTemplate, "{{.}}") {
		return keyErr("appservice.username_template", "%q must contain {{.}}", as.UsernameTemplate)
	}
	if len(s.Bridge.Permissions) == 0 {
		return keyErr("bridge.permissions", "nobody may use the bridge: give your server or user a level, like \"example.com\": user and \"@you:example.com\": admin")
	}
	if s.Bridge.CommandPrefix == "" {
		return keyErr("bridge.command_prefix", "must not be empty")
	}
	if s.DeviceSync < 100*time.Millisecond || s.DeviceSync > time.Hour {
		return keyErr("device_sync", "%v: want 100ms to 1h", s.DeviceSync)
	}
	if withSecrets && s.Encryption.Allow && s.Encryption.PickleKey == "" {
		return keyErr("encryption.pickle_key", "must not be empty when encryption is allowed")
	}
	return nil
}

// WriteRegistration writes the appservice registration for s, keeping
// the tokens of an existing one (so a homeserver that has it need not be
// told again). It reports whether it made a new file.
func WriteRegistration(s *Settings) (bool, error) {
	asTok, hsTok := s.AppService.ASToken, s.AppService.HSToken
	reg := s.GenerateRegistration() // it sets fresh tokens in s too
	s.AppService.ASToken, s.AppService.HSToken = asTok, hsTok
	old, err := appservice.LoadRegistration(s.Registration)
	created := true
	switch {
	case err == nil:
		reg.AppToken, reg.ServerToken, reg.SenderLocalpart = old.AppToken, old.ServerToken, old.SenderLocalpart
		created = false
	case !errors.Is(err, fs.ErrNotExist):
		return false, fmt.Errorf("%s: %w", s.Registration, err)
	}
	if s.AppService.ASToken != "" && s.AppService.HSToken != "" {
		reg.AppToken, reg.ServerToken = s.AppService.ASToken, s.AppService.HSToken
	}
	if err := os.MkdirAll(filepath.Dir(s.Registration), 0o700); err != nil {
		return false, err
	}
	b, err := yaml.Marshal(reg)
	if err != nil {
		return false, err
	}
	if err := os.WriteFile(s.Registration, b, 0o600); err != nil {
		return false, err
	}
	return created, nil
}
