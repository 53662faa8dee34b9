package hub_test

import (
	"context"
	"testing"

	"github.com/myclerk/myclerk-bridge/node/hub"
	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/ops"
	"github.com/myclerk/myclerk-bridge/wire"
)

// TestNamesResolveToOneLiveNode: a request names a member by its label;
// the hub resolves it once to a node ID, ignoring revoked nodes, in any
// case, and refuses a name two live nodes carry (which the store's unique
// index forbids; an in-memory hub can still be told both).
func TestNamesResolveToOneLiveNode(t *testing.T) {
	w := newWorld(t, hub.Config{DefaultMode: ops.ModeNone, Admins: []string{"admin"}})
	w.startNode("pi")
	admin := newClient(t, w.Connect(w.Member(identity.RoleClient, "admin")))
	guestID := w.Member(identity.RoleClient, "guest")
	guest := newClient(t, w.Connect(guestID))
	guest.do(wire.OpDeviceList, ops.Request{}) // answered: the hub serves guest's session and knows its name

	if _, code := admin.do(wire.OpACLGrant, ops.Request{Device: "pi/temp", Node: "GUEST", Mode: ops.ModeRead}); code != wire.CodeOK {
		t.Fatalf("grant by another case of the name: %v", code)
	}
	if _, code := guest.do(wire.OpDeviceInfo, ops.Request{Device: "pi/temp"}); code != wire.CodeOK {
		t.Errorf("the grant did not reach the node behind the name: %v", code)
	}
	// A second live node under the same label: the name names nobody.
	twin := w.Member(identity.RoleClient, "guest")
	w.Hub.KnowNode(twin.Cert)
	if _, code := admin.do(wire.OpACLGrant, ops.Request{Device: "pi/temp", Node: "guest", Mode: ops.ModeReadWrite}); code != wire.CodeNotFound {
		t.Errorf("grant to an ambiguous name: %v, want NOT_FOUND", code)
	}
	// Revoked, the twin drops out: the name is the first guest's again.
	w.Hub.RevokeNode(context.Background(), twin.Cert.Node)
	if _, code := admin.do(wire.OpACLGrant, ops.Request{Device: "pi/temp", Node: "guest", Mode: ops.ModeReadWrite}); code != wire.CodeOK {
		t.Errorf("grant once the twin is revoked: %v", code)
	}
	w.Hub.RevokeNode(context.Background(), guestID.Cert.Node)
	if _, code := admin.do(wire.OpRouteCreate, ops.Request{Device: "pi/temp", Node: "guest"}); code != wire.CodeNotFound {
		t.Errorf("route to a revoked node's name: %v, want NOT_FOUND", code)
	}
}
