package bridge

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myclerk/myclerk-bridge/bridge/frameevent"
	"github.com/myclerk/myclerk-bridge/bridge/matrixconn"
	"github.com/myclerk/myclerk-bridge/node/client"
	"github.com/myclerk/myclerk-bridge/node/hub"
	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/ops"
	"github.com/myclerk/myclerk-bridge/node/session"
	"github.com/myclerk/myclerk-bridge/node/store"
	"github.com/myclerk/myclerk-bridge/portals"
	"github.com/myclerk/myclerk-bridge/wire"
)

// FederationStateType is the state event each bridge bot sets in a
// federation room (state key: the bot's user ID): its family's root key,
// which the other family trusts only after a person confirms the code.
var FederationStateType = event.Type{Type: "eu.myclerk.federation", Class: event.StateEventType}

type federationState struct {
	Family  string `json:"family"`
	RootKey string `json:"root_key"` // unpadded standard base64
	Hub     string `json:"hub"`
	// Started is when the bridge last started (Unix seconds): an answering
	// bridge sets it again on every start, so the dialing one opens a new
	// session at once instead of waiting for its keepalive to give up.
	Started int64 `json:"started,omitempty"`
}

// Federation errors, with the profile's codes.
var (
	ErrUntrusted = &wire.Error{Code: wire.CodeFederationUntrusted, Reason: "the families have not confirmed their code yet"}
	ErrFedDenied = &wire.Error{Code: wire.CodeFederationDenied, Reason: "the federation was revoked"}
	errNoLink    = errors.New("no session with that family yet: wait for the bridges to connect (the code appears in your management room)")
)

var labelRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// Federations connects this family with others through Matrix rooms
// (PROFILE.md §P40). The family that accepted an invitation dials; the
// inviting family's hub answers and serves the session like a member's,
// but grants it only what its ACL names for the other family's hub, and
// nothing before a person here confirmed the code.
type Federations struct {
	b *Bridge

	mu    sync.Mutex
	links map[string]*fedLink // by label
	rooms map[id.RoomID]string
}

// fedLink is one federation's live state.
type fedLink struct {
	rec     *store.Federation
	trusted atomic.Bool
	cancel  context.CancelFunc
	kick    chan struct{} // dial again now

	mu   sync.Mutex
	s    *session.Session
	cli  *client.Client // dialer side: requests to the other family
	code string
	subs map[string]map[id.RoomID]bool // dialer side: device -> rooms that get its events
}

func newFederations(b *Bridge) *Federations {
	return &Federations{b: b, links: map[string]*fedLink{}, rooms: map[id.RoomID]string{}}
}

// count is the number of federations in state (waiting, confirmed,
// revoked), for the metrics.
func (f *Federations) count(state string) float64 {
	n := 0
	for _, rec := range f.List() {
		st := "waiting"
		switch {
		case !rec.RevokedAt.IsZero():
			st = "revoked"
		case rec.Trusted():
			st = "confirmed"
		}
		if st == state {
			n++
		}
	}
	return float64(n)
}

// start loads the federations and dials those this family accepted.
func (f *Federations) start(ctx context.Context) error {
	recs, err := f.b.Hub.Store.Federations.List(ctx)
	if err != nil {
		return err
	}
	for _, rec := range recs {
		l := f.add(rec)
		switch {
		case !rec.RevokedAt.IsZero():
		case rec.Dialer:
			f.dial(ctx, l)
		default:
			f.b.Hub.Go(func() { f.announce(ctx, l) })
		}
	}
	return nil
}

// announce sets this side's federation state in l's room again, with the
// start time: the dialing bridge then opens a new session.
func (f *Federations) announce(ctx context.Context, l *fedLink) {
	st := f.ownState()
	st.Started = time.Now().Unix()
	bot := f.b.Matrix.Bot
	if _, err := bot.SendStateEvent(ctx, id.RoomID(l.rec.RoomID), FederationStateType, bot.UserID.String(), st); err != nil {
		f.b.log.Warn().Err(err).Str("federation", l.rec.Label).Msg("Failed to announce this bridge's start in the federation room")
	}
}

// handleState sees the other bridge's federation state event: when the
// answering bridge announces a start, the dialing side dials again now.
func (f *Federations) handleState(_ context.Context, evt *event.Event) {
	l := f.byRoom(evt.RoomID)
	if l == nil || !l.rec.Dialer || evt.Sender.String() != l.rec.PeerBot || evt.GetStateKey() != l.rec.PeerBot {
		return
	}
	l.mu.Lock()
	s := l.s
	l.mu.Unlock()
	if s != nil {
		s.Close(context.Background())
	}
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

func (f *Federations) add(rec *store.Federation) *fedLink {
	l := &fedLink{rec: rec, kick: make(chan struct{}, 1)}
	l.trusted.Store(rec.Trusted())
	f.mu.Lock()
	f.links[rec.Label], f.rooms[id.RoomID(rec.RoomID)] = l, rec.Label
	f.mu.Unlock()
	return l
}

func (f *Federations) byRoom(room id.RoomID) *fedLink {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.links[f.rooms[room]]
}

func (f *Federations) link(label string) (*fedLink, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.links[label]
	if l == nil {
		return nil, fmt.Errorf("no federation is called %q", label)
	}
	return l, nil
}

// List returns the federations.
func (f *Federations) List() []*store.Federation {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*store.Federation, 0, len(f.links))
	for _, l := range f.links {
		l.mu.Lock()
		rec := *l.rec
		l.mu.Unlock()
		out = append(out, &rec)
	}
	return out
}

func (f *Federations) ownState() federationState {
	h := f.b.Hub
	return federationState{Family: h.Root.Family().String(), RootKey: base64.RawStdEncoding.EncodeToString(h.Root.Public()), Hub: h.Identity.Cert.Name}
}

// Invite opens a federation room with another family's bridge bot.
func (f *Federations) Invite(ctx context.Context, admin id.UserID, label string, peerBot id.UserID) (id.RoomID, error) {
	if !labelRe.MatchString(label) {
		return "", fmt.Errorf("%q: a label is 1-32 lowercase letters, digits or '-'", label)
	}
	if _, err := f.link(label); err == nil {
		return "", fmt.Errorf("a federation is already called %q", label)
	}
	if _, _, err := peerBot.Parse(); err != nil {
		return "", fmt.Errorf("%q is not a Matrix user ID like @myclerkbot:their.server", peerBot)
	}
	bot := f.b.Matrix.Bot
	// The other bot joins without an invitation: bridges refuse bot
	// invitations from users their permissions do not know, and the other
	// family's bot is such a user. Nobody else may send frames (power
	// levels) or take part from a third server (server ACL); the frames are
	// sealed anyway, and the room is not in any directory.
	resp, err := bot.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Visibility: "private",
		Preset:     "public_chat",
		Name:       fmt.Sprintf("MyClerk federation: %s and %s", f.b.Hub.Config().Name, label),
		Topic:      "Sealed MyClerk frames between two families' bridges. Do not post here.",
		InitialState: []*event.Event{
			{Type: FederationStateType, StateKey: ptr(bot.UserID.String()), Content: event.Content{Raw: stateMap(f.ownState())}},
			{Type: event.StateServerACL, StateKey: ptr(""), Content: event.Content{Raw: map[string]any{
				"allow": []string{aclHost(f.b.Settings.Homeserver.Domain), aclHost(peerBot.Homeserver())}, "deny": []string{}, "allow_ip_literals": true}}},
		},
		PowerLevelOverride: &event.PowerLevelsEventContent{
			Users:  map[id.UserID]int{bot.UserID: 100, peerBot: frameevent.PowerLevel},
			Events: map[string]int{FederationStateType.Type: frameevent.PowerLevel, frameevent.EventType: frameevent.PowerLevel},
		},
	})
	if err != nil {
		return "", fmt.Errorf("failed to create the federation room: %w", err)
	}
	rec := &store.Federation{Label: label, RoomID: resp.RoomID.String(), PeerBot: peerBot.String(), Admin: admin.String(), CreatedAt: time.Now()}
	if err := f.b.Hub.Store.Federations.Add(ctx, rec); err != nil {
		return "", err
	}
	f.add(rec)
	return resp.RoomID, nil
}

// Accept joins a federation room another family's bridge invited this
// one to, and dials its hub.
func (f *Federations) Accept(ctx context.Context, admin id.UserID, label string, room id.RoomID) error {
	if !labelRe.MatchString(label) {
		return fmt.Errorf("%q: a label is 1-32 lowercase letters, digits or '-'", label)
	}
	if _, err := f.link(label); err == nil {
		return fmt.Errorf("a federation is already called %q", label)
	}
	bot := f.b.Matrix.Bot
	if _, err := bot.JoinRoomByID(ctx, room); err != nil {
		return fmt.Errorf("failed to join %s (is it the room the other family's admin named?): %w", room, err)
	}
	peerBot, root, err := f.peerState(ctx, room, "")
	if err != nil {
		return err
	}
	if _, err := bot.SendStateEvent(ctx, room, FederationStateType, bot.UserID.String(), f.ownState()); err != nil {
		return fmt.Errorf("failed to introduce this family in %s: %w", room, err)
	}
	rec := &store.Federation{Label: label, RoomID: room.String(), PeerBot: peerBot.String(), Dialer: true, Admin: admin.String(), CreatedAt: time.Now(), RootKey: root}
	st := f.b.Hub.Store.Federations
	if err := st.Add(ctx, rec); err != nil {
		return err
	}
	if err := st.SetPeer(ctx, label, root, nil); err != nil {
		return err
	}
	f.dial(f.b.Network.ctx, f.add(rec))
	return nil
}

// peerState reads the other bot's federation state event in room (of
// peer, or of any other bot when peer is empty).
func (f *Federations) peerState(ctx context.Context, room id.RoomID, peer id.UserID) (id.UserID, ed25519.PublicKey, error) {
	state, err := f.b.Matrix.Bot.State(ctx, room)
	if err != nil {
		return "", nil, fmt.Errorf("failed to read the federation room %s: %w", room, err)
	}
	for key, evt := range state[FederationStateType] {
		if key == f.b.Matrix.Bot.UserID.String() || peer != "" && key != peer.String() {
			continue
		}
		var st federationState
		if err := json.Unmarshal(evt.Content.VeryRaw, &st); err != nil {
			continue
		}
		k, err := base64.RawStdEncoding.DecodeString(st.RootKey)
		if err != nil || len(k) != ed25519.PublicKeySize || identity.FamilyOf(k).String() != st.Family {
			return "", nil, fmt.Errorf("the federation room %s announces a malformed root key", room)
		}
		return id.UserID(key), ed25519.PublicKey(k), nil
	}
	return "", nil, fmt.Errorf("the room %s has no other family's federation state: is it a MyClerk federation room?", room)
}

// sessionConfig is a Tier 4 configuration that accepts l's family.
func (f *Federations) sessionConfig(l *fedLink) (*session.Config, error) {
	h := f.b.Hub
	cfg, err := h.SessionConfig(h.Identity)
	if err != nil {
		return nil, err
	}
	cfg.Tier, cfg.Floor = max(cfg.Tier, wire.Tier4), max(cfg.Floor, wire.Tier4)
	cfg.MaxFrame = frameevent.MaxFrame
	cfg.PeerRoles = []identity.Role{identity.RoleHub} // both ends are their families' hubs (§P40)
	cfg.Foreign = func(fam identity.FamilyID) (ed25519.PublicKey, bool) {
		l.mu.Lock()
		defer l.mu.Unlock()
		if !l.rec.RevokedAt.IsZero() || l.rec.Family() != fam {
			return nil, false
		}
		return l.rec.RootKey, true
	}
	return cfg, nil
}

// dial keeps a dialer's session to the other family open until ctx ends
// or the federation is revoked.
func (f *Federations) dial(ctx context.Context, l *fedLink) {
	ctx, l.cancel = context.WithCancel(ctx)
	log := f.b.log.With().Str("federation", l.rec.Label).Logger()
	f.b.Hub.Go(func() {
		backoff := time.Second
		for ctx.Err() == nil {
			err := f.dialOnce(ctx, l)
			if ctx.Err() != nil {
				return
			}
			log.Warn().Err(err).Msg("The federation session ended; dialing again")
			select {
			case <-ctx.Done():
				return
			case <-l.kick:
				backoff = time.Second
				continue
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, time.Minute)
		}
	})
}

func (f *Federations) dialOnce(ctx context.Context, l *fedLink) error {
	room, peer := id.RoomID(l.rec.RoomID), id.UserID(l.rec.PeerBot)
	conn := f.b.Network.frames.open(room, peer)
	defer f.b.Network.frames.close(conn)
	cfg, err := f.sessionConfig(l)
	if err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	s, err := session.Dial(dctx, conn, cfg)
	cancel()
	if err != nil {
		return err
	}
	defer s.Close(context.Background())
	if err := f.established(ctx, l, s); err != nil {
		return err
	}
	cli := client.New(s, f.b.log)
	l.mu.Lock()
	l.cli = cli
	var devices []string
	for d := range l.subs {
		devices = append(devices, d)
	}
	l.mu.Unlock()
	// The keepalive and the event forwarder end with this session.
	kctx, kstop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		s.Keepalive(kctx, f.b.Hub.Config().Session.Keepalive, f.b.Hub.Config().Session.DeadAfter)
	}()
	go func() {
		defer wg.Done()
		f.events(kctx, l, cli, devices)
	}()
	err = cli.Run(ctx)
	kstop()
	s.Close(context.Background()) // ends cli's events, so the forwarder returns
	wg.Wait()
	l.mu.Lock()
	l.cli, l.s = nil, nil
	l.mu.Unlock()
	return err
}

// Subscribe sends device's events from l's family to room as notices,
// for as long as this bridge runs.
func (f *Federations) Subscribe(ctx context.Context, label, device string, room id.RoomID) error {
	cli, err := f.Client(label)
	if err != nil {
		return err
	}
	if _, err := cli.Call(ctx, wire.OpDeviceSubscribe, ops.Request{Device: device}); err != nil {
		return err
	}
	l, _ := f.link(label)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.subs == nil {
		l.subs = map[string]map[id.RoomID]bool{}
	}
	if l.subs[device] == nil {
		l.subs[device] = map[id.RoomID]bool{}
	}
	l.subs[device][room] = true
	return nil
}

// events subscribes again to devices (a new session) and posts the other
// family's device events to the rooms that asked for them.
func (f *Federations) events(ctx context.Context, l *fedLink, cli *client.Client, devices []string) {
	if l.trusted.Load() {
		for _, d := range devices {
			if _, err := cli.Call(ctx, wire.OpDeviceSubscribe, ops.Request{Device: d}); err != nil {
				f.b.log.Debug().Err(err).Str("device", d).Msg("Failed to subscribe again to a federated device")
			}
		}
	}
	for ev := range cli.Events() {
		l.mu.Lock()
		var rooms []id.RoomID
		for r := range l.subs[ev.Device] {
			rooms = append(rooms, r)
		}
		l.mu.Unlock()
		ev.Device = l.rec.Label + ":" + ev.Device
		content := portals.Notice(ev)
		for _, r := range rooms {
			if _, err := f.b.Matrix.Bot.SendMessageEvent(ctx, r, event.EventMessage, content); err != nil {
				f.b.log.Debug().Err(err).Msg("Failed to post a federated device's event")
			}
		}
		f.b.Metrics.Notices.WithLabelValues("federated-" + ev.Kind).Inc()
	}
}

// accept answers a federation session in l's room (the inviting side):
// the hub serves it, gated until a person here confirmed the code.
func (f *Federations) accept(ctx context.Context, l *fedLink, conn *matrixconn.Conn) {
	log := f.b.log.With().Str("federation", l.rec.Label).Logger()
	if !l.rec.RevokedAt.IsZero() {
		return
	}
	if !l.trusted.Load() {
		// Learn (again) the root key the other bot announces; a pinned
		// key never changes.
		if _, root, err := f.peerState(ctx, conn.Room(), id.UserID(l.rec.PeerBot)); err != nil {
			log.Warn().Err(err).Msg("Cannot answer a federation session")
			return
		} else if err := f.setRoot(ctx, l, root); err != nil {
			log.Warn().Err(err).Msg("Cannot answer a federation session")
			return
		}
	}
	cfg, err := f.sessionConfig(l)
	if err != nil {
		return
	}
	actx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	s, err := (&session.Responder{Config: cfg}).Accept(actx, conn)
	cancel()
	if err != nil {
		log.Info().Err(err).Msg("Refused a federation session")
		return
	}
	defer s.Close(context.Background())
	if err := f.established(ctx, l, s); err != nil {
		log.Warn().Err(err).Msg("Refused a federation session")
		return
	}
	kctx, kstop := context.WithCancel(ctx)
	kdone := make(chan struct{})
	go func() {
		defer close(kdone)
		s.Keepalive(kctx, f.b.Hub.Config().Session.Keepalive, f.b.Hub.Config().Session.DeadAfter)
	}()
	defer func() {
		kstop()
		<-kdone
	}()
	err = f.b.Hub.Registry.ServeGated(ctx, s, func() error {
		switch {
		case !l.revokedAt().IsZero():
			return ErrFedDenied
		case !l.trusted.Load():
			return ErrUntrusted
		}
		return nil
	})
	log.Info().Err(err).Msg("The federation session ended")
	l.mu.Lock()
	l.s = nil
	l.mu.Unlock()
}

func (l *fedLink) revokedAt() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rec.RevokedAt
}

func (f *Federations) setRoot(ctx context.Context, l *fedLink, root ed25519.PublicKey) error {
	l.mu.Lock()
	cert := l.rec.PeerCert
	l.mu.Unlock()
	if err := f.b.Hub.Store.Federations.SetPeer(ctx, l.rec.Label, root, cert); err != nil {
		return err
	}
	l.mu.Lock()
	l.rec.RootKey = root
	l.mu.Unlock()
	return nil
}

// established checks a new session's peer (the other family's hub, at
// Tier 4 or above), records it, and tells the admin the code to compare
// while the federation is not confirmed.
func (f *Federations) established(ctx context.Context, l *fedLink, s *session.Session) error {
	peer := s.Peer()
	l.mu.Lock()
	family, root := l.rec.Family(), l.rec.RootKey
	l.mu.Unlock()
	if peer == nil || peer.Family != family || peer.Role != identity.RoleHub {
		return errors.New("the federation peer is not the other family's hub")
	}
	if s.Tier() < wire.Tier4 {
		return fmt.Errorf("federation session at tier %d: federation needs Tier 4", s.Tier())
	}
	cert, err := peer.Marshal()
	if err != nil {
		return err
	}
	code := identity.FederationCode(s.HandshakeHash(), f.b.Hub.Root.Public(), root)
	l.mu.Lock()
	l.s, l.code, l.rec.PeerCert = s, code, cert
	l.mu.Unlock()
	if err := f.b.Hub.Store.Federations.SetPeer(ctx, l.rec.Label, root, cert); err != nil {
		return err
	}
	f.b.Hub.Registry.KnowNode(peer)
	if !l.trusted.Load() {
		f.notify(ctx, l, fmt.Sprintf("Federation %q: the bridges are connected. Compare this code with the other family's admin (by phone or in person): %s. If it matches, send: federation verify %s %s",
			l.rec.Label, code, l.rec.Label, code))
	}
	return nil
}

// notify tells the federation's admin, in their management room.
func (f *Federations) notify(ctx context.Context, l *fedLink, text string) {
	user, err := f.b.Bridge.GetUserByMXID(ctx, id.UserID(l.rec.Admin))
	if err != nil || user.ManagementRoom == "" {
		f.b.log.Warn().Str("federation", l.rec.Label).Msg("The federation's admin has no management room: " + text)
		return
	}
	content := &event.MessageEventContent{MsgType: event.MsgNotice, Body: text}
	if _, err := f.b.Matrix.Bot.SendMessageEvent(ctx, user.ManagementRoom, event.EventMessage, content); err != nil {
		f.b.log.Warn().Err(err).Msg("Failed to tell the federation's admin")
	}
}

// Verify pins the other family's root key when code is the code of the
// live session.
func (f *Federations) Verify(ctx context.Context, label, code string) error {
	l, err := f.link(label)
	if err != nil {
		return err
	}
	l.mu.Lock()
	want, live := l.code, l.s != nil
	l.mu.Unlock()
	if !live || want == "" {
		return errNoLink
	}
	if normalizeCode(code) != normalizeCode(want) {
		return errors.New("the code does not match this session's: do not confirm; check that you are talking to the right family, or wait for a new code")
	}
	if _, err := f.b.Hub.Store.Federations.Pin(ctx, label, time.Now()); err != nil {
		return err
	}
	l.mu.Lock()
	l.rec.PinnedAt = time.Now()
	l.mu.Unlock()
	l.trusted.Store(true)
	return nil
}

func normalizeCode(s string) string {
	out := make([]byte, 0, 6)
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			out = append(out, s[i])
		}
	}
	return string(out)
}

// Revoke ends a federation for good: the session ends and the other
// family's key opens nothing here any more.
func (f *Federations) Revoke(ctx context.Context, label string) error {
	l, err := f.link(label)
	if err != nil {
		return err
	}
	now := time.Now()
	if err := f.b.Hub.Store.Federations.Revoke(ctx, label, now); err != nil {
		return err
	}
	l.trusted.Store(false)
	l.mu.Lock()
	l.rec.RevokedAt = now
	s, cancel := l.s, l.cancel
	l.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	if s != nil {
		s.Revoke(ctx)
	}
	return nil
}

// PeerName is the name the hub's ACL knows the other family's hub by.
func (f *Federations) PeerName(label string) (string, error) {
	l, err := f.link(label)
	if err != nil {
		return "", err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.rec.PeerCert) == 0 {
		return "", errNoLink
	}
	c, err := identity.ParseCertificate(l.rec.PeerCert)
	if err != nil {
		return "", err
	}
	return hub.PeerName(c, f.b.Hub.Root.Family()), nil
}

// Client returns the session to the other family's hub, for requests
// (the dialing side, once confirmed here).
func (f *Federations) Client(label string) (*client.Client, error) {
	l, err := f.link(label)
	if err != nil {
		return nil, err
	}
	switch {
	case !l.revokedAt().IsZero():
		return nil, ErrFedDenied
	case !l.trusted.Load():
		return nil, ErrUntrusted
	case !l.rec.Dialer:
		return nil, fmt.Errorf("this family invited %q: it serves them; to use their devices, accept an invitation from them", label)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cli == nil {
		return nil, errNoLink
	}
	return l.cli, nil
}

// aclHost is a server name as server ACLs match it: without its port.
func aclHost(server string) string {
	if host, _, err := net.SplitHostPort(server); err == nil {
		return host
	}
	return server
}

func ptr[T any](v T) *T { return &v }

func stateMap(s federationState) map[string]any {
	return map[string]any{"family": s.Family, "root_key": s.RootKey, "hub": s.Hub}
}
