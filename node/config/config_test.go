package config

import (
	"os"
	"strings"
	"testing"
)

func TestExampleIsValid(t *testing.T) {
	c, err := Load("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Role != "hub" || c.Name != "nas" || len(c.Devices.Sensors) != 1 {
		t.Errorf("%+v", c)
	}
}

func TestEmptyMeansDefaults(t *testing.T) {
	c, err := Parse(nil)
	if err != nil || c.Role != "hub" || c.Listen.TCP == "" || c.Database.Type != "sqlite" {
		t.Fatalf("%+v %v", c, err)
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	tests := map[string]string{
		"rol: hub":                                  "field rol not found",
		"role: client":                              "role",
		"name: 'a/b'":                               "name",
		"log_level: loud":                           "log_level",
		"listen: {tcp: nowhere}":                    "listen.tcp",
		"nats: {url: localhost}":                    "nats.url",
		"role: node\nname: pi":                      "hub",
		"hub: {nats: true}":                         "hub.nats",
		"session: {tier: 6}":                        "session.tier",
		"session: {floor: 2}":                       "session.floor",
		"session: {tier: 3, floor: 4}":              "session.floor",
		"session: {aead: aes-128-ctr}":              "session.aead",
		"session: {min_tier: {DEVICE_LOCK: 2}}":     "session.min_tier.DEVICE_LOCK",
		"session: {min_tier: {FLY: 4}}":             "session.min_tier.FLY",
		"session: {keepalive: 10s, dead_after: 5s}": "session.keepalive",
		"acl: {default_mode: sometimes}":            "acl.default_mode",
		"database: {type: mysql}":                   "database.type",
		"database: {type: postgres}":                "database.uri",
		"devices: {sensors: [{id: a}, {id: a}]}":    "devices.sensors[1].id",
		"devices: {serial: [{id: s}]}":              "devices.serial[0].path",
		"session: {tier: three}":                    "cannot unmarshal",
	}
	for in, want := range tests {
		if _, err := Parse([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error naming %q", in, err, want)
		}
	}
	if _, err := Load("/nonexistent/config.yaml"); err == nil {
		t.Error("missing file accepted")
	}
	dir := t.TempDir()
	os.WriteFile(dir+"/c.yaml", []byte("role: hub\nname: x\nsession: {min_tier: {DEVICE_LOCK: 4}}\n"), 0o600)
	if c, err := Load(dir + "/c.yaml"); err != nil || c.Session.MinTier["DEVICE_LOCK"] != 4 {
		t.Errorf("%+v %v", c, err)
	}
}
