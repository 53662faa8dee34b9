package bridge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/bridgev2/simplevent"
	"maunium.net/go/mautrix/bridgev2/status"
	"maunium.net/go/mautrix/event"

	"github.com/myclerk/myclerk-bridge/node/client"
	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/ops"
	"github.com/myclerk/myclerk-bridge/node/session"
	"github.com/myclerk/myclerk-bridge/portals"
	"github.com/myclerk/myclerk-bridge/wire"
)

// ErrNotConnected is answered while a login's session to the hub is down.
var ErrNotConnected = &wire.Error{Code: wire.CodeServiceUnavailable, Reason: "your session to the hub is not connected; try again in a moment"}

// Member is one Matrix user's membership in the family: a sealed
// session to the hub (over an in-memory pipe) under the user's own
// certificate, kept open and reopened; its device list drives the portals
// and its device events become portal notices.
type Member struct {
	n     *Network
	login *bridgev2.UserLogin
	id    *identity.Identity

	mu     sync.Mutex
	cli    *client.Client
	cancel context.CancelFunc
	known  map[string]deviceView // devices this member saw at the last sync
}

type deviceView struct {
	dev  ops.Device
	mode ops.Mode
}

var _ bridgev2.NetworkAPI = (*Member)(nil)

func (l *Member) log() *zerolog.Logger { return &l.login.Log }

// Name is the member's name in the family (its Matrix ID).
func (l *Member) Name() string { return l.id.Cert.Name }

// NodeID is the member's node ID.
func (l *Member) NodeID() identity.NodeID { return l.id.Cert.Node }

// Client returns the login's client, or ErrNotConnected.
func (l *Member) Client() (*client.Client, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cli == nil {
		return nil, ErrNotConnected
	}
	return l.cli, nil
}

// WaitClient waits (up to ctx) for the session to the hub, which a new
// login opens in the background.
func (l *Member) WaitClient(ctx context.Context) (*client.Client, error) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if cli, err := l.Client(); err == nil {
			return cli, nil
		}
		select {
		case <-ctx.Done():
			return nil, ErrNotConnected
		case <-t.C:
		}
	}
}

// Connect implements bridgev2.NetworkAPI.
func (l *Member) Connect(ctx context.Context) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cancel != nil {
		return
	}
	ctx, l.cancel = context.WithCancel(l.n.ctx)
	l.n.b.Metrics.Logins.Inc()
	l.n.b.Hub.Go(func() { l.run(ctx) }) // Disconnect or the hub's end stops it
}

// Disconnect implements bridgev2.NetworkAPI.
func (l *Member) Disconnect() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cancel != nil {
		l.cancel()
		l.cancel = nil
		l.n.b.Metrics.Logins.Dec()
	}
}

// IsLoggedIn implements bridgev2.NetworkAPI.
func (l *Member) IsLoggedIn() bool { return l.id != nil }

// LogoutRemote implements bridgev2.NetworkAPI: leaving the family revokes
// the member's certificate, so its key opens nothing any more.
func (l *Member) LogoutRemote(ctx context.Context) {
	l.Disconnect()
	h := l.n.b.Hub
	if err := h.Store.Nodes.Revoke(ctx, l.id.Cert.Node, time.Now()); err != nil {
		l.log().Warn().Err(err).Msg("Failed to revoke a member who logged out")
	}
	h.Registry.RevokeNode(ctx, l.id.Cert.Node)
	l.n.mu.Lock()
	delete(l.n.logins, l.login.ID)
	l.n.mu.Unlock()
}

// IsThisUser implements bridgev2.NetworkAPI.
func (l *Member) IsThisUser(_ context.Context, u networkid.UserID) bool {
	return u == portals.Member(l.Name())
}

// GetChatInfo implements bridgev2.NetworkAPI.
func (l *Member) GetChatInfo(ctx context.Context, portal *bridgev2.Portal) (*bridgev2.ChatInfo, error) {
	v, err := l.info(ctx, string(portal.ID))
	if err != nil {
		return nil, err
	}
	return portals.ChatInfo(v.dev, l.login.ID, v.mode), nil
}

// GetUserInfo implements bridgev2.NetworkAPI.
func (l *Member) GetUserInfo(ctx context.Context, ghost *bridgev2.Ghost) (*bridgev2.UserInfo, error) {
	dev := portals.DeviceOfGhost(ghost.ID)
	if dev == "" {
		return nil, nil // not one of ours
	}
	v, err := l.info(ctx, dev)
	if err != nil {
		return nil, err
	}
	return portals.UserInfo(v.dev), nil
}

// GetCapabilities implements bridgev2.NetworkAPI.
func (l *Member) GetCapabilities(context.Context, *bridgev2.Portal) *event.RoomFeatures {
	return &event.RoomFeatures{ID: "eu.myclerk.device.v1", MaxTextLength: 4096}
}

// HandleMatrixMessage implements bridgev2.NetworkAPI: text sent to a
// device's portal configures the device ("KEY=VALUE ..."), relayed to
// the node that owns it; the device's answer comes back as a notice.
func (l *Member) HandleMatrixMessage(ctx context.Context, msg *bridgev2.MatrixMessage) (*bridgev2.MatrixMessageResponse, error) {
	dev := string(msg.Portal.ID)
	settings, err := ParseSettings(strings.Fields(msg.Content.Body))
	if err != nil {
		return nil, bridgev2.WrapErrorInStatus(err).WithSendNotice(true).WithErrorAsMessage().WithIsCertain(true)
	}
	cli, err := l.Client()
	if err != nil {
		return nil, err
	}
	r, err := cli.Call(ctx, wire.OpDeviceConfigure, ops.Request{Device: dev, Settings: settings})
	if err != nil {
		return nil, bridgev2.WrapErrorInStatus(err).WithSendNotice(true).WithErrorAsMessage().WithIsCertain(true)
	}
	for _, d := range r.Devices {
		l.queueNotice(dev, "configured", portals.Notice(ops.Event{Device: d.ID, Kind: "configured", Time: time.Now().Unix(), Values: d.Capabilities}), msg.Event.ID.String())
	}
	return &bridgev2.MatrixMessageResponse{DB: &database.Message{
		ID:        networkid.MessageID(msg.Event.ID),
		SenderID:  portals.Member(l.Name()),
		Timestamp: time.UnixMilli(msg.Event.Timestamp),
	}}, nil
}

// ParseSettings reads KEY=VALUE words.
func ParseSettings(words []string) (map[string]string, error) {
	if len(words) == 0 {
		return nil, errors.New("send KEY=VALUE pairs to configure this device, or !mc help for commands")
	}
	out := make(map[string]string, len(words))
	for _, w := range words {
		k, v, ok := strings.Cut(w, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not KEY=VALUE; send KEY=VALUE pairs to configure this device, or !mc help for commands", w)
		}
		out[k] = v
	}
	return out, nil
}

// info asks the hub about one device and this member's mode on it.
func (l *Member) info(ctx context.Context, dev string) (deviceView, error) {
	cli, err := l.Client()
	if err != nil {
		return deviceView{}, err
	}
	r, err := cli.Call(ctx, wire.OpDeviceInfo, ops.Request{Device: dev})
	if err != nil {
		return deviceView{}, err
	}
	if len(r.Devices) != 1 {
		return deviceView{}, fmt.Errorf("the hub answered %d devices for %q", len(r.Devices), dev)
	}
	return deviceView{dev: r.Devices[0], mode: r.Mode}, nil
}

// run keeps the member's session open until ctx ends.
func (l *Member) run(ctx context.Context) {
	backoff := time.Second
	for ctx.Err() == nil {
		start := time.Now()
		err := l.session(ctx)
		if ctx.Err() != nil {
			return
		}
		l.log().Warn().Err(err).Msg("The member's session to the hub ended; reconnecting")
		l.login.BridgeState.Send(status.BridgeState{StateEvent: status.StateTransientDisconnect, Error: "myclerk-session-ended", Message: errString(err)})
		if time.Since(start) > time.Minute {
			backoff = time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// session opens one session and serves it until it ends.
func (l *Member) session(ctx context.Context) error {
	h := l.n.b.Hub
	scfg, err := h.SessionConfig(l.id)
	if err != nil {
		return err
	}
	scfg.PeerRoles = []identity.Role{identity.RoleHub} // a member dials its hub, nothing else
	s, err := session.Dial(ctx, h.Attach(), scfg)
	if err != nil {
		return err
	}
	cli := client.New(s, *l.log())
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		cli.Run(runCtx)
	}()
	defer func() {
		stop()
		<-ran
	}()
	defer s.Close(context.Background())
	l.mu.Lock()
	l.cli, l.known = cli, map[string]deviceView{}
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.cli = nil
		l.mu.Unlock()
	}()
	l.login.BridgeState.Send(status.BridgeState{StateEvent: status.StateConnected})
	l.sync(ctx, cli)
	t := time.NewTicker(l.n.b.Settings.DeviceSync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-cli.Done():
			return cli.Err()
		case ev, ok := <-cli.Events():
			if !ok {
				return cli.Err()
			}
			l.event(ev)
		case <-t.C:
			l.sync(ctx, cli)
		}
	}
}

// Resync compares the devices now (after a command changed access).
func (l *Member) Resync(ctx context.Context) {
	if cli, err := l.Client(); err == nil {
		l.sync(ctx, cli)
	}
}

// sync compares the devices this member may see with the last sync: new
// ones get a portal (and a subscription, so their events reach it), a
// changed mode changes the member's power level, a device gone from the
// list (access revoked) removes the member from its portal, and
// availability changes become notices.
func (l *Member) sync(ctx context.Context, cli *client.Client) {
	r, err := cli.Call(ctx, wire.OpDeviceList, ops.Request{})
	if err != nil {
		l.log().Debug().Err(err).Msg("Device list failed")
		return
	}
	seen := map[string]bool{}
	for _, d := range r.Devices {
		seen[d.ID] = true
		v, err := l.info(ctx, d.ID)
		if err != nil {
			continue
		}
		l.mu.Lock()
		old, had := l.known[d.ID]
		l.known[d.ID] = v
		l.mu.Unlock()
		switch {
		case !had:
			l.n.availability(d.ID, v.dev.Available)
			if _, err := cli.Call(ctx, wire.OpDeviceSubscribe, ops.Request{Device: d.ID}); err != nil {
				l.log().Debug().Err(err).Str("device", d.ID).Msg("Subscribe failed")
			}
			l.resync(v)
		case old.mode != v.mode || old.dev.Name != v.dev.Name || old.dev.Available != v.dev.Available || !sameCaps(old.dev.Capabilities, v.dev.Capabilities):
			l.resync(v)
			if seq, changed := l.n.availability(d.ID, v.dev.Available); changed {
				l.queueNotice(d.ID, "availability", portals.Availability(v.dev), fmt.Sprint(seq, time.Now().UnixNano()))
			}
		}
	}
	l.mu.Lock()
	var gone []deviceView
	for id, v := range l.known {
		if !seen[id] {
			gone = append(gone, v)
			delete(l.known, id)
		}
	}
	l.mu.Unlock()
	for _, v := range gone {
		l.leave(v.dev.ID)
	}
}

func sameCaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

func (l *Member) resync(v deviceView) {
	info := portals.ChatInfo(v.dev, l.login.ID, v.mode)
	l.login.QueueRemoteEvent(&simplevent.ChatResync{
		EventMeta: simplevent.EventMeta{
			Type:         bridgev2.RemoteEventChatResync,
			PortalKey:    portals.Key(v.dev.ID),
			CreatePortal: true,
			Timestamp:    time.Now(),
		},
		ChatInfo: info,
	})
}

// leave takes the member out of a device's portal (its access ended).
func (l *Member) leave(dev string) {
	l.login.QueueRemoteEvent(&simplevent.ChatInfoChange{
		EventMeta: simplevent.EventMeta{
			Type:      bridgev2.RemoteEventChatInfoChange,
			PortalKey: portals.Key(dev),
			Timestamp: time.Now(),
		},
		ChatInfoChange: &bridgev2.ChatInfoChange{MemberChanges: portals.MemberChange(l.login.ID, ops.ModeNone)},
	})
}

func (l *Member) event(ev ops.Event) {
	l.queueNotice(ev.Device, ev.Kind, portals.Notice(ev), "")
}

// queueNotice posts content as the device's ghost in its portal. The
// message ID is a digest of the content (and of salt, for notices that
// repeat), so members who share a portal and each receive an event post
// it once.
func (l *Member) queueNotice(dev, kind string, content *event.MessageEventContent, salt string) {
	sum := sha256.Sum256([]byte(dev + "\x00" + content.Body + "\x00" + salt))
	l.n.b.Metrics.Notices.WithLabelValues(kind).Inc()
	l.login.QueueRemoteEvent(&simplevent.Message[*event.MessageEventContent]{
		EventMeta: simplevent.EventMeta{
			Type:         bridgev2.RemoteEventMessage,
			PortalKey:    portals.Key(dev),
			Sender:       bridgev2.EventSender{Sender: portals.Ghost(dev)},
			CreatePortal: true,
			Timestamp:    time.Now(),
		},
		ID:   networkid.MessageID("n-" + hex.EncodeToString(sum[:16])),
		Data: content,
		ConvertMessageFunc: func(_ context.Context, _ *bridgev2.Portal, _ bridgev2.MatrixAPI, c *event.MessageEventContent) (*bridgev2.ConvertedMessage, error) {
			return &bridgev2.ConvertedMessage{Parts: []*bridgev2.ConvertedMessagePart{{Type: event.EventMessage, Content: c}}}, nil
		},
	})
}
