package bridge

import (
	"crypto/rand"
	"os"
	"strings"
	"testing"

	"maunium.net/go/mautrix/appservice"

	"github.com/myclerk/myclerk-bridge/node/config"
	"github.com/myclerk/myclerk-bridge/node/identity"
)

// TestExampleMatrixSection uncomments the matrix section of
// config.example.yaml as its text tells a user to, and loads it: the
// documentation stays a working configuration.
func TestExampleMatrixSection(t *testing.T) {
	b, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	i := strings.Index(text, "\n# matrix:\n")
	if i < 0 {
		t.Fatal("config.example.yaml has no commented matrix section")
	}
	var out []string
	for _, l := range strings.Split(text[i+1:], "\n") {
		if l == "" {
			continue
		}
		if !strings.HasPrefix(l, "# ") {
			t.Fatalf("line %q of the matrix section does not start with \"# \"", l)
		}
		out = append(out, strings.TrimPrefix(l, "# "))
	}
	c, err := config.Parse([]byte(text[:i+1] + strings.Join(out, "\n") + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !c.MatrixEnabled() {
		t.Fatal("the uncommented section is not read as a matrix section")
	}
	root, err := identity.NewRoot(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := LoadSettings(c, root, false)
	if err != nil {
		t.Fatal(err)
	}
	if s.Homeserver.Domain != "example.com" || s.Bridge.Permissions["@you:example.com"] == nil || s.Encryption.PickleKey == "" {
		t.Errorf("settings: %+v", s.Homeserver)
	}
}

// TestRegistrationExample checks that registration.yaml.example is a
// registration the appservice library reads, with the namespaces
// WriteRegistration makes.
func TestRegistrationExample(t *testing.T) {
	reg, err := appservice.LoadRegistration("../registration.yaml.example")
	if err != nil {
		t.Fatal(err)
	}
	if reg.ID != "myclerk" || len(reg.Namespaces.UserIDs) != 2 || !reg.Namespaces.UserIDs[1].Exclusive {
		t.Errorf("registration example: %+v", reg)
	}
	// Its keys are the ones the library reads (and register writes).
	if !reg.EphemeralEvents || !reg.SoruEphemeralEvents {
		t.Errorf("registration example: ephemeral events %v, %v", reg.EphemeralEvents, reg.SoruEphemeralEvents)
	}
}
