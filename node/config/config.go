// Package config reads a node's YAML configuration (config.example.yaml
// documents every key). Unknown keys and bad values are errors that name
// the key, so a typo never passes silently.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/ops"
	"github.com/myclerk/myclerk-bridge/node/optable"
	"github.com/myclerk/myclerk-bridge/wire"
)

// Config is one node's configuration.
type Config struct {
	Role     string   `yaml:"role"`
	Name     string   `yaml:"name"`
	DataDir  string   `yaml:"data_dir"`
	LogLevel string   `yaml:"log_level"`
	Listen   Listen   `yaml:"listen"`
	NATS     NATS     `yaml:"nats"`
	Hub      HubAddr  `yaml:"hub"`
	Session  Session  `yaml:"session"`
	ACL      ACL      `yaml:"acl"`
	Database Database `yaml:"database"`
	Devices  Devices  `yaml:"devices"`
	// Matrix is the appservice bridge's section, read by package bridge
	// (a hub without it runs no bridge).
	Matrix yaml.Node `yaml:"matrix"`
}

// MatrixEnabled reports whether the configuration has a matrix section.
func (c *Config) MatrixEnabled() bool {
	return c.Matrix.Kind != 0 && !(c.Matrix.Kind == yaml.ScalarNode && c.Matrix.Tag == "!!null")
}

// Listen is where a hub accepts nodes.
type Listen struct {
	TCP       string `yaml:"tcp"`
	WebSocket string `yaml:"websocket"`
	NATS      string `yaml:"nats"` // embedded NATS server address, when nats.url is empty
	// Metrics serves /metrics (Prometheus) and /health over HTTP.
	Metrics string `yaml:"metrics"`
	// TLSCert and TLSKey, both set, wrap the TCP listener in TLS 1.3.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
}

// NATS joins an existing NATS server or cluster.
type NATS struct {
	URL string `yaml:"url"`
}

// HubAddr is how a node reaches its hub.
type HubAddr struct {
	TCP       string `yaml:"tcp"`
	WebSocket string `yaml:"websocket"`
	NATS      bool   `yaml:"nats"` // reach the hub through nats.url
}

// Session tunes sessions.
type Session struct {
	Tier      int            `yaml:"tier"`
	Floor     int            `yaml:"floor"`
	MinTier   map[string]int `yaml:"min_tier"`
	Keepalive time.Duration  `yaml:"keepalive"`
	DeadAfter time.Duration  `yaml:"dead_after"`
	Tickets   bool           `yaml:"tickets"`
	// AEAD is "auto" (offer AES-256-GCM too where this CPU has AES
	// hardware) or "chacha20-poly1305" (never offer it).
	AEAD string `yaml:"aead"`
}

// AllowAES reports whether sessions may offer AES-256-GCM.
func (s *Session) AllowAES() bool { return s.AEAD != "chacha20-poly1305" }

// ACL sets the hub's access defaults.
type ACL struct {
	DefaultMode string   `yaml:"default_mode"`
	Admins      []string `yaml:"admins"`
}

// Database is the hub's state store.
type Database struct {
	Type string `yaml:"type"`
	URI  string `yaml:"uri"`
}

// Devices are what a node announces.
type Devices struct {
	Sensors []Sensor `yaml:"sensors"`
	Serial  []Serial `yaml:"serial"`
}

// Sensor is a simulated sensor.
type Sensor struct {
	ID       string        `yaml:"id"`
	Name     string        `yaml:"name"`
	Base     float64       `yaml:"base"`
	Interval time.Duration `yaml:"interval"`
}

// Serial is a serial port of this machine.
type Serial struct {
	ID   string `yaml:"id"`
	Path string `yaml:"path"`
	Baud int    `yaml:"baud"`
}

// Default is the configuration a hub runs on when it has no file: all on
// 127.0.0.1, the embedded database and the embedded NATS server.
func Default() *Config {
	return &Config{
		Role: "hub", Name: "hub", DataDir: "./data", LogLevel: "info",
		Listen:   Listen{TCP: "127.0.0.1:7410", WebSocket: "127.0.0.1:7411", NATS: "127.0.0.1:7412", Metrics: "127.0.0.1:7419"},
		Session:  Session{Tier: 3, Floor: 3, Keepalive: 30 * time.Second, DeadAfter: 90 * time.Second, Tickets: true, AEAD: "auto"},
		ACL:      ACL{DefaultMode: "read-write"},
		Database: Database{Type: "sqlite"},
	}
}

// Parse reads YAML over the defaults and checks it.
func Parse(b []byte) (*Config, error) {
	c := Default()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) { // an empty file means all defaults
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := c.Check(); err != nil {
		return nil, err
	}
	return c, nil
}

// Load reads a configuration file.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

func keyErr(key, format string, args ...any) error {
	return fmt.Errorf("config: %s: "+format, append([]any{key}, args...)...)
}

func checkAddr(key, addr string) error {
	if addr == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return keyErr(key, "%q is not host:port", addr)
	}
	return nil
}

// Check validates values; every error names its key.
func (c *Config) Check() error {
	if _, err := identity.ParseRole(c.Role); err != nil || c.Role == "client" {
		return keyErr("role", "%q: want hub or node", c.Role)
	}
	if err := identity.CheckName(c.Name, identity.RoleNode); err != nil {
		return keyErr("name", "%v", err)
	}
	if c.DataDir == "" {
		return keyErr("data_dir", "must not be empty")
	}
	switch c.LogLevel {
	case "trace", "debug", "info", "warn", "error":
	default:
		return keyErr("log_level", "%q: want trace, debug, info, warn or error", c.LogLevel)
	}
	for key, a := range map[string]string{"listen.tcp": c.Listen.TCP, "listen.websocket": c.Listen.WebSocket,
		"listen.nats": c.Listen.NATS, "listen.metrics": c.Listen.Metrics, "hub.tcp": c.Hub.TCP, "hub.websocket": c.Hub.WebSocket} {
		if err := checkAddr(key, a); err != nil {
			return err
		}
	}
	if (c.Listen.TLSCert == "") != (c.Listen.TLSKey == "") {
		return keyErr("listen.tls_cert", "tls_cert and tls_key go together")
	}
	if c.NATS.URL != "" && !strings.Contains(c.NATS.URL, "://") {
		return keyErr("nats.url", "%q: want nats://host:port", c.NATS.URL)
	}
	if c.Role == "node" && c.Hub.TCP == "" && c.Hub.WebSocket == "" && !c.Hub.NATS {
		return keyErr("hub", "a node needs hub.tcp, hub.websocket or hub.nats")
	}
	if c.Hub.NATS && c.NATS.URL == "" {
		return keyErr("hub.nats", "needs nats.url")
	}
	s := &c.Session
	if s.Tier < 3 || s.Tier > 5 {
		return keyErr("session.tier", "%d: want 3, 4 or 5", s.Tier)
	}
	if s.Floor < 3 || s.Floor > s.Tier {
		return keyErr("session.floor", "%d: want 3 to session.tier (%d)", s.Floor, s.Tier)
	}
	for name, t := range s.MinTier {
		op, ok := wire.OpByName(name)
		if !ok {
			return keyErr("session.min_tier."+name, "unknown operation")
		}
		if t > 5 || wire.Tier(t) < optable.MinTier(op) {
			return keyErr("session.min_tier."+name, "%d: the profile needs at least %d; minimums may only be raised", t, optable.MinTier(op))
		}
	}
	if s.AEAD != "auto" && s.AEAD != "chacha20-poly1305" {
		return keyErr("session.aead", "%q: want auto or chacha20-poly1305", s.AEAD)
	}
	if s.Keepalive < time.Second || s.DeadAfter <= s.Keepalive {
		return keyErr("session.keepalive", "%v with dead_after %v: want keepalive ≥ 1s and dead_after above it", s.Keepalive, s.DeadAfter)
	}
	if c.MatrixEnabled() && c.Role != "hub" {
		return keyErr("matrix", "only a hub runs the Matrix bridge")
	}
	if _, err := ops.ParseMode(c.ACL.DefaultMode); err != nil {
		return keyErr("acl.default_mode", "%v", err)
	}
	switch c.Database.Type {
	case "sqlite":
	case "postgres":
		if c.Database.URI == "" {
			return keyErr("database.uri", "postgres needs a URI such as postgres://user@host/db?sslmode=disable")
		}
	default:
		return keyErr("database.type", "%q: want sqlite or postgres", c.Database.Type)
	}
	ids := map[string]bool{}
	for i, d := range c.Devices.Sensors {
		key := fmt.Sprintf("devices.sensors[%d]", i)
		if d.ID == "" || ids[d.ID] || strings.Contains(d.ID, "/") {
			return keyErr(key+".id", "%q: want a unique id without '/'", d.ID)
		}
		ids[d.ID] = true
		if d.Interval != 0 && (d.Interval < time.Second || d.Interval > time.Hour) {
			return keyErr(key+".interval", "%v: want 1s to 1h", d.Interval)
		}
	}
	for i, d := range c.Devices.Serial {
		key := fmt.Sprintf("devices.serial[%d]", i)
		if d.ID == "" || ids[d.ID] || strings.Contains(d.ID, "/") {
			return keyErr(key+".id", "%q: want a unique id without '/'", d.ID)
		}
		ids[d.ID] = true
		if d.Path == "" {
			return keyErr(key+".path", "must not be empty")
		}
		if d.Baud != 0 && (d.Baud < 50 || d.Baud > 4_000_000) {
			return keyErr(key+".baud", "%d: want 50 to 4000000", d.Baud)
		}
	}
	return nil
}

// KeyDir is where the node's keys live.
func (c *Config) KeyDir() string { return filepath.Join(c.DataDir, "keys") }

// DatabaseURI is the store's DSN: the configured one, or the embedded
// database's file in the data directory.
func (c *Config) DatabaseURI() string {
	if c.Database.URI != "" {
		return c.Database.URI
	}
	return filepath.Join(c.DataDir, "myclerk.db")
}
