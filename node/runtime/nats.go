package runtime

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/myclerk/myclerk-bridge/node/config"
	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/keystore"
	"github.com/myclerk/myclerk-bridge/node/store"
	"github.com/myclerk/myclerk-bridge/node/transport"
)

// NATSUsers are the keys a family's NATS server lets in (PROFILE.md §P36,
// "Credentials"): the hub's, with the hub's subjects, and those of the
// enrolled nodes and clients that are not revoked and whose certificate
// the family root signed and has not expired, each with its own subjects.
// Each key appears once: the hub's first, and a node whose key the hub or
// an earlier enrolled node holds is left out and logged (enrolment
// refuses such keys, but a database from before may hold them), so no
// node ever takes the hub's subjects or another node's.
func NATSUsers(ctx context.Context, st *store.Store, root ed25519.PublicKey, hub *identity.Identity, log zerolog.Logger) ([]transport.NATSUser, error) {
	family := identity.FamilyOf(root).String()
	hu, err := transport.HubNATSUser(family, HubNATSNode, "hub "+hub.Cert.Name+" "+hub.Cert.Node.String(), hub.Cert.PublicKey)
	if err != nil {
		return nil, err
	}
	users := []transport.NATSUser{hu}
	owner := map[string]string{hu.Nkey: "the hub"} // who holds each key listed
	nodes, err := st.Nodes.List(ctx)
	if err != nil {
		return nil, err
	}
	// The first enrolled holder of a key keeps it.
	sort.SliceStable(nodes, func(i, j int) bool { return nodes[i].EnrolledAt.Before(nodes[j].EnrolledAt) })
	now := time.Now()
	for _, n := range nodes {
		if n.Revoked() || n.ID == hub.Cert.Node {
			continue
		}
		cert, err := identity.ParseCertificate(n.Certificate)
		if err != nil || cert.Node != n.ID || cert.Verify(root, now) != nil {
			continue // the session would refuse it too
		}
		u, err := transport.NodeNATSUser(family, HubNATSNode, natsToken(n.ID.String()), cert.Role.String()+" "+cert.Name+" "+n.ID.String(), cert.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", n.ID, err)
		}
		if first, ok := owner[u.Nkey]; ok {
			log.Warn().Stringer("node_id", n.ID).Str("name", identity.Printable(cert.Name)).Str("key_holder", first).
				Msg("Left a node out of the NATS users: its key is already another's")
			continue
		}
		owner[u.Nkey] = "node " + n.ID.String()
		users = append(users, u)
	}
	return users, nil
}

// natsToken is the subject token a node dials from (Endpoint.Dial).
func natsToken(self string) string {
	return strings.ReplaceAll(self, ".", "-")
}

// joinNATS connects to NATS at url signing in with id's key.
func joinNATS(url, name string, id *identity.Identity) (*nats.Conn, error) {
	creds, err := transport.NATSCredentials(id.Private)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(url, nats.Name(name), nats.MaxReconnects(-1), creds)
	if err != nil {
		return nil, fmt.Errorf("failed to join NATS at %s: %w", url, err)
	}
	return nc, nil
}

// NATSConfig writes the nats-server authorization block for a family's own
// NATS server, cluster or leaf node (nats.url): the hub of c's key
// directory and the enrolled nodes of st, each signing in with its
// identity key. Nodes left out (NATSUsers) are logged to log.
func NATSConfig(ctx context.Context, c *config.Config, st *store.Store, log zerolog.Logger) (string, error) {
	keys := keystore.Dir(c.KeyDir())
	root, err := keys.LoadRoot()
	if err != nil {
		return "", fmt.Errorf("the hub's family root key: %w", err)
	}
	id, err := keys.LoadIdentity()
	if err != nil {
		return "", fmt.Errorf("the hub's identity: %w", err)
	}
	users, err := NATSUsers(ctx, st, root.Public(), id, log)
	if err != nil {
		return "", err
	}
	return transport.NATSAuthorization(users), nil
}
