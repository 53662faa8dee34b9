package bridge

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"sync"

	"go.mau.fi/util/configupgrade"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/networkid"

	"github.com/myclerk/myclerk-bridge/node/identity"
)

// Network is the MyClerk family as bridgev2's remote network.
type Network struct {
	b      *Bridge
	br     *bridgev2.Bridge
	frames *frames
	// Federations are the families this one federates with.
	Federations *Federations

	ctx context.Context // the bridge's lifetime, for login goroutines

	mu     sync.Mutex
	logins map[networkid.UserLoginID]*Member
	avail  map[string]availState // device -> last availability posted
}

type availState struct {
	available bool
	seq       uint64
}

// availability records a device's availability as one login saw it; it
// reports a change (with its sequence number) once, to the first login
// that sees it, so a shared portal gets one notice.
func (n *Network) availability(dev string, available bool) (uint64, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	old, ok := n.avail[dev]
	if ok && old.available == available {
		return old.seq, false
	}
	st := availState{available: available, seq: old.seq + 1}
	n.avail[dev] = st
	return st.seq, ok
}

var (
	_ bridgev2.NetworkConnector = (*Network)(nil)
	_ bridgev2.StoppableNetwork = (*Network)(nil)
)

func newNetwork(b *Bridge) *Network {
	n := &Network{b: b, ctx: context.Background(), logins: map[networkid.UserLoginID]*Member{}, avail: map[string]availState{}}
	n.frames = newFrames(b)
	n.Federations = newFederations(b)
	return n
}

// Init implements bridgev2.NetworkConnector.
func (n *Network) Init(br *bridgev2.Bridge) { n.br = br }

// Start implements bridgev2.NetworkConnector.
func (n *Network) Start(ctx context.Context) error {
	n.ctx = ctx // the bridge's lifetime: sessions close when it stops
	if err := n.Federations.start(n.ctx); err != nil {
		return fmt.Errorf("federations: %w", err)
	}
	n.b.Metrics.watchFederations(n.Federations.count)
	n.b.Metrics.watchQueue("myclerk_matrix_frame_queue", "Frames received through Matrix and not yet read by their sessions.", n.frames.depth)
	return nil
}

// Stop implements bridgev2.StoppableNetwork.
func (n *Network) Stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, l := range n.logins {
		l.Disconnect()
	}
}

// GetName implements bridgev2.NetworkConnector.
func (n *Network) GetName() bridgev2.BridgeName {
	return bridgev2.BridgeName{
		DisplayName:          "MyClerk",
		NetworkURL:           "https://github.com/myclerk/myclerk-bridge",
		NetworkID:            "myclerk",
		BeeperBridgeType:     "myclerk",
		DefaultPort:          29340,
		DefaultCommandPrefix: "!mc",
	}
}

// GetDBMetaTypes implements bridgev2.NetworkConnector.
func (n *Network) GetDBMetaTypes() database.MetaTypes {
	return database.MetaTypes{UserLogin: func() any { return &loginMeta{} }}
}

// GetCapabilities implements bridgev2.NetworkConnector.
func (n *Network) GetCapabilities() *bridgev2.NetworkGeneralCapabilities {
	return &bridgev2.NetworkGeneralCapabilities{}
}

// GetConfig implements bridgev2.NetworkConnector: the bridge reads its
// configuration itself (Settings), so there is no network section.
func (n *Network) GetConfig() (string, any, configupgrade.Upgrader) { return "", nil, nil }

// GetBridgeInfoVersion implements bridgev2.NetworkConnector.
func (n *Network) GetBridgeInfoVersion() (info, capabilities int) { return 1, 1 }

// loginMeta is what the bridge database keeps of a login: the member's
// certificate and node key. The database holds secrets therefore, as the
// hub's key directory does; keep both private.
type loginMeta struct {
	Certificate []byte `json:"certificate"`
	Seed        []byte `json:"seed"`
}

func (m *loginMeta) identity() (*identity.Identity, error) {
	if len(m.Seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("login metadata: node key of %d bytes", len(m.Seed))
	}
	cert, err := identity.ParseCertificate(m.Certificate)
	if err != nil {
		return nil, fmt.Errorf("login metadata: %w", err)
	}
	return &identity.Identity{Cert: cert, Private: ed25519.NewKeyFromSeed(m.Seed)}, nil
}

// LoadUserLogin implements bridgev2.NetworkConnector.
func (n *Network) LoadUserLogin(ctx context.Context, login *bridgev2.UserLogin) error {
	meta, ok := login.Metadata.(*loginMeta)
	if !ok {
		return fmt.Errorf("login %s has no MyClerk metadata", login.ID)
	}
	id, err := meta.identity()
	if err != nil {
		return err
	}
	l := &Member{n: n, login: login, id: id}
	login.Client = l
	n.mu.Lock()
	n.logins[login.ID] = l
	n.mu.Unlock()
	return nil
}

// loginFlowFamily joins the bridge's own family.
const loginFlowFamily = "family"

// GetLoginFlows implements bridgev2.NetworkConnector.
func (n *Network) GetLoginFlows() []bridgev2.LoginFlow {
	return []bridgev2.LoginFlow{{
		ID:          loginFlowFamily,
		Name:        "Family",
		Description: "Join this hub's family as yourself: the hub certifies you, and its access rules apply to you by your Matrix ID.",
	}}
}

// CreateLogin implements bridgev2.NetworkConnector.
func (n *Network) CreateLogin(ctx context.Context, user *bridgev2.User, flowID string) (bridgev2.LoginProcess, error) {
	if flowID != loginFlowFamily {
		return nil, fmt.Errorf("unknown login flow %q", flowID)
	}
	return &joinProcess{n: n, user: user}, nil
}

// Member returns user's membership, joining the family first when join
// is set and the user has none.
func (n *Network) Member(ctx context.Context, user *bridgev2.User, join bool) (*Member, error) {
	ul := user.GetDefaultLogin()
	if ul == nil {
		if !join {
			return nil, fmt.Errorf("%s is not a member of the family", user.MXID)
		}
		var err error
		if ul, err = n.Join(ctx, user); err != nil {
			return nil, err
		}
	}
	m, ok := ul.Client.(*Member)
	if !ok {
		return nil, fmt.Errorf("login %s is not a MyClerk membership", ul.ID)
	}
	return m, nil
}

// Members returns the memberships loaded now.
func (n *Network) Members() []*Member {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]*Member, 0, len(n.logins))
	for _, m := range n.logins {
		out = append(out, m)
	}
	return out
}

// Join makes user a member of the family (a login), or returns the login
// it has.
func (n *Network) Join(ctx context.Context, user *bridgev2.User) (*bridgev2.UserLogin, error) {
	if ul := user.GetDefaultLogin(); ul != nil {
		return ul, nil
	}
	name := user.MXID.String()
	if len(name) > 64 {
		return nil, fmt.Errorf("your Matrix ID is %d bytes long; family member names are at most 64", len(name))
	}
	id, err := n.b.Hub.IssueMember(ctx, name, identity.RoleClient)
	if err != nil {
		return nil, fmt.Errorf("the hub could not certify you: %w", err)
	}
	meta := &loginMeta{Certificate: mustMarshal(id.Cert), Seed: id.Private.Seed()}
	ul, err := user.NewLogin(ctx, &database.UserLogin{
		ID:         networkid.UserLoginID(id.Cert.Node.String()),
		RemoteName: fmt.Sprintf("%s in family %s", name, shortFamily(n.b.Hub.Root.Family())),
		Metadata:   meta,
	}, &bridgev2.NewLoginParams{DeleteOnConflict: true})
	if err != nil {
		return nil, err
	}
	n.b.Hub.Go(func() { ul.Client.Connect(ul.Log.WithContext(n.ctx)) })
	return ul, nil
}

func mustMarshal(c *identity.Certificate) []byte {
	b, err := c.Marshal()
	if err != nil {
		panic(err) // a certificate the hub just issued always marshals
	}
	return b
}

func shortFamily(f identity.FamilyID) string { return f.String()[:8] }

// joinProcess is the family login flow: no input, the hub certifies the
// user at once.
type joinProcess struct {
	n    *Network
	user *bridgev2.User
}

func (p *joinProcess) Start(ctx context.Context) (*bridgev2.LoginStep, error) {
	ul, err := p.n.Join(ctx, p.user)
	if err != nil {
		return nil, err
	}
	return &bridgev2.LoginStep{
		Type:         bridgev2.LoginStepTypeComplete,
		StepID:       "eu.myclerk.family.complete",
		Instructions: fmt.Sprintf("You are a member of family %s as %s. Devices you may use get portal rooms.", shortFamily(p.n.b.Hub.Root.Family()), p.user.MXID),
		CompleteParams: &bridgev2.LoginCompleteParams{
			UserLoginID: ul.ID,
			UserLogin:   ul,
		},
	}, nil
}

func (p *joinProcess) Cancel() {}
