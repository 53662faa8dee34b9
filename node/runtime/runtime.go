// Package runtime starts a hub or a node from its configuration: keys from
// the key directory (a hub makes its family on first start), the
// listeners, the embedded NATS server, sessions, and the hub or agent that
// serves them.
package runtime

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/myclerk/myclerk-bridge/node/agent"
	"github.com/myclerk/myclerk-bridge/node/config"
	"github.com/myclerk/myclerk-bridge/node/hub"
	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/keystore"
	"github.com/myclerk/myclerk-bridge/node/metrics"
	"github.com/myclerk/myclerk-bridge/node/ops"
	"github.com/myclerk/myclerk-bridge/node/ratelog"
	"github.com/myclerk/myclerk-bridge/node/session"
	"github.com/myclerk/myclerk-bridge/node/store"
	"github.com/myclerk/myclerk-bridge/node/transport"
	"github.com/myclerk/myclerk-bridge/wire"
	"github.com/myclerk/myclerk-bridge/wire/ticket"
)

// HubNATSNode is the node token under which a hub accepts on NATS.
const HubNATSNode = "hub"

// SessionConfig builds the session configuration of a node.
func SessionConfig(c *config.Config, id *identity.Identity, root ed25519.PublicKey, log zerolog.Logger) (*session.Config, error) {
	pol := &session.Policy{}
	for name, t := range c.Session.MinTier {
		op, _ := wire.OpByName(name)
		if err := pol.RaiseOp(op, wire.Tier(t)); err != nil {
			return nil, err
		}
	}
	return &session.Config{Identity: id, Root: root, Tier: wire.Tier(c.Session.Tier), Floor: wire.Tier(c.Session.Floor),
		Capabilities: session.Capabilities(c.Session.AllowAES() && session.HardwareAES()),
		Policy:       pol, Rand: rand.Reader, Log: log, RejectLog: ratelog.New(rejectLines, time.Minute, time.Now)}, nil
}

// rejectLines is how many log lines per minute each reason of a refused
// frame or session writes (PROFILE.md §P41); the metrics count them all.
const rejectLines = 10

// Hub is a running hub.
type Hub struct {
	Root     *identity.Root
	Identity *identity.Identity
	Store    *store.Store
	Registry *hub.Hub
	Addrs    map[string]string // transport -> listening address (or NATS URL)

	cfg   *config.Config
	log   zerolog.Logger
	nats  *transport.EmbeddedNATS // nil when nats.url names another server
	nc    *nats.Conn
	serve func(transport.Conn)
	reg   *prometheus.Registry
	sm    *metrics.Metrics

	// serve runs under the admission caps (§P41); serveTrusted serves an
	// in-process peer (Attach), no stranger, and the bridge opens many at
	// once, so it skips them.
	serveTrusted func(transport.Conn)

	checkMu sync.Mutex
	checks  map[string]func(context.Context) error

	// The hub's lifetime: ctx ends it, and every goroutine it (or the
	// bridge beside it) starts runs in group, which Wait waits for
	// before it closes the store.
	ctx      context.Context
	cancel   context.CancelFunc
	groupMu  sync.Mutex
	stopping bool // Wait began: nothing joins group any more
	group    sync.WaitGroup
	waitOnce sync.Once
	waitErr  error
}

// Go runs f in a goroutine of the hub's group (Wait waits for it); it
// reports false, running nothing, once the hub is stopping. f must
// return soon after the hub's context ends.
func (h *Hub) Go(f func()) bool {
	if !h.join() {
		return false
	}
	go func() {
		defer h.group.Done()
		f()
	}()
	return true
}

// run runs f in the calling goroutine, counted in the hub's group; false
// (f not run) once the hub is stopping.
func (h *Hub) run(f func()) bool {
	if !h.join() {
		return false
	}
	defer h.group.Done()
	f()
	return true
}

func (h *Hub) join() bool {
	h.groupMu.Lock()
	defer h.groupMu.Unlock()
	if h.stopping {
		return false
	}
	h.group.Add(1)
	return true
}

// Wait blocks until the hub's context has ended and every goroutine of
// the hub and of the bridge beside it (listeners, sessions, keepalives,
// watchers, HTTP servers, members, federation links) has returned; then
// it stops the registry's relay timers, leaves NATS, and closes the store
// last. On SQLite the store is checkpointed first, so the database file
// alone is a complete backup (README: Stopping and backups). Every call
// returns the store's close error.
func (h *Hub) Wait() error {
	h.waitOnce.Do(func() {
		<-h.ctx.Done()
		h.cancel()
		h.groupMu.Lock()
		h.stopping = true
		h.groupMu.Unlock()
		h.group.Wait()
		h.Registry.Close()
		if h.nc != nil {
			h.nc.Close()
		}
		if h.nats != nil {
			h.nats.Shutdown()
		}
		h.waitErr = h.Store.Close()
	})
	return h.waitErr
}

// AddHealthCheck adds a named check to /health (the bridge adds its
// homeserver connection); a failing check makes /health answer 503.
func (h *Hub) AddHealthCheck(name string, check func(context.Context) error) {
	h.checkMu.Lock()
	defer h.checkMu.Unlock()
	if h.checks == nil {
		h.checks = map[string]func(context.Context) error{}
	}
	h.checks[name] = check
}

func (h *Hub) failedCheck(ctx context.Context) string {
	h.checkMu.Lock()
	defer h.checkMu.Unlock()
	for name, check := range h.checks {
		if err := check(ctx); err != nil {
			return name
		}
	}
	return ""
}

// Attach joins an in-process peer to the hub: it returns one end of an
// in-memory pipe whose other end the hub serves like any listener's
// connection (handshake, authentication, registry). The Matrix bridge
// opens its users' sessions this way.
func (h *Hub) Attach() transport.Conn {
	a, b := transport.Pipe()
	if !h.Go(func() { h.serveTrusted(b) }) {
		b.Close() // stopping: the peer's handshake fails
	}
	return a
}

// Serve serves one connection made elsewhere (a Matrix room's, by the
// bridge) like a listener's, until its session ends; Wait waits for it.
func (h *Hub) Serve(conn transport.Conn) {
	if !h.run(func() { h.serve(conn) }) {
		conn.Close()
	}
}

// IssueMember makes a family member without a pairing code (the hub holds
// the root key): a fresh node key, a certificate for name and role, and
// the node recorded in the store so the registry and ACLs know it. The
// name follows the enrolment rules (PROFILE.md §P35): identity.ErrName
// for an invalid one, identity.ErrNameTaken for one a live node holds.
func (h *Hub) IssueMember(ctx context.Context, name string, role identity.Role) (*identity.Identity, error) {
	if err := identity.CheckName(name, role); err != nil {
		return nil, err
	}
	if err := h.nameFree(ctx, name); err != nil {
		return nil, err
	}
	priv, nodeID, err := identity.NewNodeKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	cert, err := h.Root.Issue(nodeID, role, name, priv.Public().(ed25519.PublicKey), time.Now(), session.CertLifetime)
	if err != nil {
		return nil, err
	}
	if err := h.record(ctx, cert); err != nil {
		return nil, err
	}
	return &identity.Identity{Cert: cert, Private: priv}, nil
}

// nameFree refuses a name a node that is not revoked holds, or the hub's
// own (the hub is not in the nodes table), in any ASCII case.
func (h *Hub) nameFree(ctx context.Context, name string) error {
	if strings.EqualFold(name, h.Identity.Cert.Name) {
		return fmt.Errorf("\"%s\" is the hub's name: %w", identity.Printable(name), identity.ErrNameTaken)
	}
	taken, err := h.Store.Nodes.NameTaken(ctx, name)
	if err != nil {
		return err
	}
	if taken {
		return fmt.Errorf("\"%s\": %w", identity.Printable(name), identity.ErrNameTaken)
	}
	return nil
}

// keyFree refuses a public key that the hub or a node that is not
// revoked holds (PROFILE.md §P35): an enrolment proves nothing about its
// key, and NATS lets each key in with its owner's subjects (§P36), so a
// second holder would take the hub's or a node's permissions.
func (h *Hub) keyFree(ctx context.Context, pub ed25519.PublicKey) error {
	if pub.Equal(h.Identity.Cert.PublicKey) {
		return fmt.Errorf("%w: it is the hub's", session.ErrKeyEnrolled)
	}
	nodes, err := h.Store.Nodes.List(ctx)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		if n.Revoked() {
			continue
		}
		if c, err := identity.ParseCertificate(n.Certificate); err == nil && c.PublicKey.Equal(pub) {
			return fmt.Errorf("%w: node %s (\"%s\") holds it", session.ErrKeyEnrolled, n.ID, identity.Printable(n.Name))
		}
	}
	return nil
}

// adminNamed returns the entry of acl.admins that name is in any ASCII
// case, or "": an admin's name enrols only with a code bound to it
// (PROFILE.md §P35), and a namesake in another case would keep the admin
// from enrolling.
func (h *Hub) adminNamed(name string) string {
	if i := slices.IndexFunc(h.cfg.ACL.Admins, func(a string) bool { return strings.EqualFold(a, name) }); i >= 0 {
		return h.cfg.ACL.Admins[i]
	}
	return ""
}

// record stores a newly certified node, in one transaction with the
// hand-over of the devices of revoked nodes of its name, and tells the
// registry. Enrolment answers only after it succeeded.
func (h *Hub) record(ctx context.Context, cert *identity.Certificate) error {
	if err := h.nameFree(ctx, cert.Name); err != nil {
		return err
	}
	if err := h.keyFree(ctx, cert.PublicKey); err != nil {
		return err
	}
	b, err := cert.Marshal()
	if err != nil {
		return err
	}
	handed, err := h.Store.Nodes.Enrol(ctx, &store.Node{ID: cert.Node, Name: cert.Name, Role: cert.Role, Certificate: b, EnrolledAt: time.Now()})
	if err != nil {
		return err
	}
	h.Registry.KnowNode(cert)
	if len(handed) > 0 {
		h.Registry.HandOver(cert.Node, handed)
		h.log.Warn().Str("name", cert.Name).Stringer("node_id", cert.Node).Strs("devices", handed).
			Msg("Handed the devices of a revoked node to the new node of its name")
	}
	return nil
}

// SessionConfig is the session configuration of the hub's own peers
// (for Attach).
func (h *Hub) SessionConfig(id *identity.Identity) (*session.Config, error) {
	c, err := SessionConfig(h.cfg, id, h.Root.Public(), h.log)
	if err != nil {
		return nil, err
	}
	c.Metrics = h.sm
	return c, nil
}

// Metrics is the registry /metrics serves (nil without listen.metrics),
// for the bridge to add its own.
func (h *Hub) Metrics() *prometheus.Registry { return h.reg }

// Config is the configuration the hub runs on.
func (h *Hub) Config() *config.Config { return h.cfg }

// OpenStore opens the configured state store (the embedded SQLite file in
// the data directory by default).
func OpenStore(ctx context.Context, c *config.Config) (*store.Store, error) {
	if c.Database.Type == store.DriverSQLite {
		if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("data_dir: %w", err)
		}
	}
	st, err := store.Open(ctx, c.Database.Type, c.DatabaseURI())
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	return st, nil
}

// LoadOrCreateFamily returns the hub's root key and identity, making the
// family on first start.
func LoadOrCreateFamily(c *config.Config, log zerolog.Logger) (*identity.Root, *identity.Identity, error) {
	keys := keystore.Dir(c.KeyDir())
	root, err := keys.LoadRoot()
	if errors.Is(err, keystore.ErrNotFound) {
		if root, err = identity.NewRoot(rand.Reader); err != nil {
			return nil, nil, err
		}
		if err := keys.SaveRoot(root); err != nil {
			return nil, nil, err
		}
		log.Info().Stringer("family_id", root.Family()).Str("key_dir", string(keys)).Msg("Created a new family")
	} else if err != nil {
		return nil, nil, err
	}
	id, err := keys.LoadIdentity()
	if errors.Is(err, keystore.ErrNotFound) || (err == nil && id.Cert.Verify(root.Public(), time.Now().Add(30*24*time.Hour)) != nil) {
		// First start, or the certificate ends within 30 days: issue one.
		priv, nodeID, err := identity.NewNodeKey(rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		c, err := root.Issue(nodeID, identity.RoleHub, c.Name, priv.Public().(ed25519.PublicKey), time.Now(), session.CertLifetime)
		if err != nil {
			return nil, nil, err
		}
		id = &identity.Identity{Cert: c, Private: priv}
		if err := keys.SaveIdentity(id); err != nil {
			return nil, nil, err
		}
	} else if err != nil {
		return nil, nil, err
	}
	return root, id, nil
}

// StartHub starts a hub's listeners; it serves until ctx is done. Call
// Wait after ctx ended: it returns once everything the hub started has
// stopped and the store is closed. When StartHub fails it has stopped
// what it started.
func StartHub(ctx context.Context, c *config.Config, log zerolog.Logger) (_ *Hub, err error) {
	root, id, err := LoadOrCreateFamily(c, log)
	if err != nil {
		return nil, err
	}
	st, err := OpenStore(ctx, c)
	if err != nil {
		return nil, err
	}
	var reg *prometheus.Registry
	var sm *metrics.Metrics
	if c.Listen.Metrics != "" {
		reg = prometheus.NewRegistry()
		if sm, err = metrics.New(reg); err != nil {
			st.Close()
			return nil, err
		}
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	ctx, cancel := context.WithCancel(ctx)
	mode, _ := ops.ParseMode(c.ACL.DefaultMode)
	h := &Hub{Root: root, Identity: id, Store: st, cfg: c, log: log, Addrs: map[string]string{}, ctx: ctx, cancel: cancel, reg: reg, sm: sm,
		Registry: hub.New(hub.Config{DefaultMode: mode, Admins: c.ACL.Admins, Store: st, Log: log, Family: root.Family(), Metrics: sm})}
	defer func() {
		if err != nil {
			cancel()
			h.Wait()
		}
	}()
	if err := st.Family.Put(ctx, &store.Family{RootKey: root.Public(), ID: root.Family(), CreatedAt: time.Now()}); err != nil {
		return nil, fmt.Errorf("the database at %s belongs to another family than the keys in %s: %w", c.DatabaseURI(), c.KeyDir(), err)
	}
	if _, err := st.Sessions.DisconnectAll(ctx, time.Now()); err != nil {
		return nil, err
	}
	if err := h.Registry.Load(ctx); err != nil {
		return nil, err
	}
	scfg, err := SessionConfig(c, id, root.Public(), log)
	if err != nil {
		return nil, err
	}
	if c.Listen.Metrics != "" {
		if err = h.serveMetrics(ctx, c.Listen.Metrics); err != nil {
			return nil, err
		}
		scfg.Metrics = sm
	}
	scfg.Revoked = func(n identity.NodeID) bool {
		revoked, err := st.Nodes.IsRevoked(ctx, n)
		if err != nil {
			log.Error().Err(err).Msg("Failed to check a revocation; refusing the node")
			return true // fail closed
		}
		return revoked
	}
	enroller := &session.Enroller{Root: root, Codes: st.Codes, NameFree: h.nameFree, KeyFree: h.keyFree, Enrolled: h.record, Admin: h.adminNamed}
	r := &session.Responder{Config: scfg, Enrol: enroller.Handle}
	if c.Session.Tickets {
		if r.Tickets, err = ticketIssuer(ctx, st); err != nil {
			return nil, err
		}
	}
	trusted := *r
	// NATS has admission of its own (PROFILE.md §P41 rule 4): its source,
	// the dialer's reply subject, is whatever the dialer claims, so it
	// gets a cap for the transport and none per source, and an insider
	// who fills it leaves the other transports' handshakes alone.
	natsR := *r
	natsR.Admission = session.NewAdmission(session.MaxNATSHandshakes, session.MaxNATSHandshakes)
	r.Admission = session.NewAdmission(session.MaxHandshakes, session.MaxHandshakesPerSource)
	refusals := ratelog.New(rejectLines, time.Minute, time.Now)
	serveConn := func(r *session.Responder, conn transport.Conn) {
		s, err := r.Accept(ctx, conn)
		if err != nil && session.IsEnrolled(err) {
			return
		}
		if err != nil {
			if ok, n := refusals.Allow(wire.ReasonOf(err)); ok {
				ev := log.Info().Err(err).Str("remote", conn.RemoteAddr())
				if n > 0 {
					ev = ev.Int("suppressed", n)
				}
				ev.Msg("Refused a session")
			}
			return
		}
		peer := s.Peer()
		if peer == nil { // a resumed session whose node the store does not know
			s.Close(ctx)
			return
		}
		logID, err := st.Sessions.Connected(ctx, peer.Node, time.Now())
		if err != nil {
			log.Warn().Err(err).Msg("Failed to record a session")
		}
		st.Nodes.Seen(ctx, peer.Node, time.Now())
		kctx, kstop := context.WithCancel(ctx)
		kdone := make(chan struct{})
		go func() {
			defer close(kdone)
			s.Keepalive(kctx, c.Session.Keepalive, c.Session.DeadAfter)
		}()
		err = h.Registry.Serve(ctx, s)
		kstop()
		<-kdone
		cctx, ccancel := context.WithTimeout(context.Background(), time.Second)
		s.Close(cctx) // the peer hears SESSION_CLOSE when the hub stops
		ccancel()
		st.Sessions.Disconnected(context.Background(), logID, time.Now())
		st.Nodes.Seen(context.Background(), peer.Node, time.Now())
		log.Debug().Err(err).Str("remote", conn.RemoteAddr()).Msg("A session ended")
	}
	h.serve = func(conn transport.Conn) { serveConn(r, conn) }
	h.serveTrusted = func(conn transport.Conn) { serveConn(&trusted, conn) }
	serveNATS := func(conn transport.Conn) { serveConn(&natsR, conn) }
	h.Go(func() { h.watchRevocations(ctx) })
	h.Go(func() { h.housekeep(ctx) })
	if c.Listen.TCP != "" {
		ln, err := net.Listen("tcp", c.Listen.TCP)
		if err != nil {
			return nil, fmt.Errorf("failed to listen on %s (listen.tcp): %w", c.Listen.TCP, err)
		}
		h.Addrs["tcp"] = "tcp://" + ln.Addr().String()
		if c.Listen.TLSCert != "" {
			cert, err := tls.LoadX509KeyPair(c.Listen.TLSCert, c.Listen.TLSKey)
			if err != nil {
				ln.Close()
				return nil, fmt.Errorf("listen.tls_cert: %w", err)
			}
			ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13})
			h.Addrs["tcp"] = "tcps://" + ln.Addr().String()
		}
		h.Go(func() { <-ctx.Done(); ln.Close() })
		h.Go(func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				if !h.Go(func() { h.serve(transport.NewStream(conn)) }) {
					conn.Close()
				}
			}
		})
	}
	if c.Listen.WebSocket != "" {
		ln, err := net.Listen("tcp", c.Listen.WebSocket)
		if err != nil {
			return nil, fmt.Errorf("failed to listen on %s (listen.websocket): %w", c.Listen.WebSocket, err)
		}
		h.Addrs["websocket"] = "ws://" + ln.Addr().String() + "/myclerk"
		mux := http.NewServeMux()
		mux.Handle("/myclerk", transport.WebSocketHandler(h.Serve)) // each counted in the group
		h.serveHTTP(ctx, ln, mux)
	}
	natsURL := c.NATS.URL
	if natsURL == "" && c.Listen.NATS != "" {
		auth := &transport.NATSAuth{Load: func(ctx context.Context) ([]transport.NATSUser, error) {
			return NATSUsers(ctx, st, root.Public(), id, log)
		}}
		e, err := transport.StartEmbeddedNATS(ctx, c.Listen.NATS, auth)
		if err != nil {
			return nil, fmt.Errorf("listen.nats: %w", err)
		}
		h.nats = e // shut down by Wait
		natsURL = e.URL()
	}
	if natsURL != "" {
		nc, err := joinNATS(natsURL, "myclerk hub "+c.Name, id)
		if err != nil {
			return nil, err
		}
		h.nc = nc // closed by Wait
		l, err := transport.ListenNATS(nc, root.Family().String(), HubNATSNode)
		if err != nil {
			return nil, err
		}
		l.PeerToken = transport.NodeIDToken // nodes dial from their ID (Endpoint.Dial)
		h.Addrs["nats"] = natsURL
		h.Go(func() {
			for {
				conn, err := l.Accept(ctx)
				if err != nil {
					return
				}
				if !h.Go(func() { serveNATS(conn) }) {
					conn.Close()
				}
			}
		})
	}
	log.Info().Stringer("family_id", root.Family()).Interface("listening", h.Addrs).Msg("The hub is running")
	return h, nil
}

// serveMetrics serves /metrics and /health on addr.
func (h *Hub) serveMetrics(ctx context.Context, addr string) error {
	reg := h.reg
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("failed to listen on %s (listen.metrics): %w", addr, err)
	}
	h.Addrs["metrics"] = "http://" + ln.Addr().String() + "/metrics"
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if err := h.Store.Ping(r.Context()); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, `{"status":"unhealthy","reason":"database"}`+"\n")
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if name := h.failedCheck(ctx); name != "" {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, `{"status":"unhealthy","reason":%q}`+"\n", name)
			return
		}
		// Nothing a stranger could use (the family ID names the NATS
		// subjects): the status, or the failing check's name.
		fmt.Fprintf(w, `{"status":"ok"}`+"\n")
	})
	h.serveHTTP(ctx, ln, mux)
	return nil
}

// serveHTTP serves mux on ln in the hub's group until ctx ends.
func (h *Hub) serveHTTP(ctx context.Context, ln net.Listener, mux http.Handler) {
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	h.Go(func() { srv.Serve(ln) })
	h.Go(func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			srv.Close()
		}
	})
}

// revocationPoll is how often a hub looks for nodes revoked by
// `myclerk-bridge revoke` (another process, the same store).
const revocationPoll = 2 * time.Second

// watchRevocations ends the live sessions of revoked nodes with
// SESSION_REVOKE, and closes their connections to the embedded NATS
// server, which refuses their keys from then on.
func (h *Hub) watchRevocations(ctx context.Context) {
	t := time.NewTicker(revocationPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ids, err := h.Store.Nodes.Revoked(ctx)
		if err != nil {
			continue
		}
		for _, id := range ids {
			if n := h.Registry.RevokeNode(ctx, id); n > 0 {
				h.log.Warn().Stringer("node_id", id).Int("sessions", n).Msg("Ended the sessions of a revoked node")
			}
		}
		if h.nats != nil {
			n, err := h.nats.Reauthorize(ctx)
			if err != nil {
				h.log.Warn().Err(err).Msg("Failed to check the NATS credentials; trying again later")
			} else if n > 0 {
				h.log.Warn().Int("connections", n).Msg("Closed NATS connections of revoked nodes")
			}
		}
	}
}

// housekeepEvery is how often the hub forgets what no longer matters.
const housekeepEvery = time.Hour

// housekeep runs Housekeep at start and then every housekeepEvery.
func (h *Hub) housekeep(ctx context.Context) {
	t := time.NewTicker(housekeepEvery)
	defer t.Stop()
	for {
		if err := h.Housekeep(ctx, time.Now()); err != nil && ctx.Err() == nil {
			h.log.Warn().Err(err).Msg("Housekeeping failed; trying again later")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Housekeep keeps the store from growing without bound: it forgets the
// nonces of used tickets that have expired (a ticket past its expiry is
// refused anyway) and the sessions that ended before the availability
// window (store.CoreWindow) began.
func (h *Hub) Housekeep(ctx context.Context, now time.Time) error {
	tickets, err := h.Store.UsedTickets.PurgeExpired(ctx, now)
	if err != nil {
		return err
	}
	sessions, err := h.Store.Sessions.Prune(ctx, now.Add(-store.CoreWindow))
	if err != nil {
		return err
	}
	if tickets+sessions > 0 {
		h.log.Debug().Int64("used_tickets", tickets).Int64("sessions", sessions).Msg("Forgot expired tickets and old sessions")
	}
	return nil
}

// ticketIssuer loads the ticket keys from the store (making the first one
// when there is none), so tickets survive a restart, and records used
// tickets there.
func ticketIssuer(ctx context.Context, st *store.Store) (*session.Tickets, error) {
	keys, err := st.TicketKeys.ListActive(ctx)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		var secret [32]byte
		if _, err := rand.Read(secret[:]); err != nil {
			return nil, err
		}
		k := &store.TicketKey{Key: ticket.Key{ID: uint32(time.Now().Unix()), Secret: secret}, CreatedAt: time.Now()}
		if err := st.TicketKeys.Add(ctx, k); err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	var kr ticket.Keyring
	for i := len(keys) - 1; i >= 0; i-- { // oldest first: the newest ends up current
		kr.Add(keys[i].Key)
	}
	return &session.Tickets{Keys: &kr,
		Used: func(ctx context.Context, nonce [8]byte, expires time.Time) (bool, error) {
			return st.UsedTickets.MarkUsed(ctx, nonce, expires)
		},
		Lookup: func(ctx context.Context, id identity.NodeID) (*identity.Certificate, error) {
			n, err := st.Nodes.Get(ctx, id)
			if err != nil {
				return nil, err
			}
			return identity.ParseCertificate(n.Certificate)
		}}, nil
}

// Invite makes a pairing code for a new node or client; it works while
// the hub runs in another process, since codes live in the store. A name
// other than "" binds the code to it: the code enrols that name alone,
// and an admin's name (acl.admins) enrols only with such a code
// (PROFILE.md §P35). A Matrix user ID cannot be bound: the bridge issues
// those members itself.
func Invite(ctx context.Context, st *store.Store, role identity.Role, name string) (identity.PairingCode, error) {
	if name != "" {
		if err := identity.CheckName(name, role); err != nil {
			return "", fmt.Errorf("pairing code: %w", err)
		}
		if strings.HasPrefix(name, "@") {
			return "", fmt.Errorf("pairing code for \"%s\": %w; the bridge makes that member when the person writes to it", identity.Printable(name), session.ErrMatrixName)
		}
	}
	code, err := identity.NewPairingCode(rand.Reader)
	if err != nil {
		return "", err
	}
	if err := st.Codes.Add(ctx, code, role, name, time.Now()); err != nil {
		return "", err
	}
	return code, nil
}

// Endpoint is where to reach a hub: tcp://host:port, tcps://host:port
// (TLS), ws://host:port/path or nats://host:port.
type Endpoint struct {
	Scheme, Addr string
	URL          string
	// TLS configures tcps:// (nil: the system's roots).
	TLS *tls.Config
}

// ParseEndpoint reads a hub address.
func ParseEndpoint(s string) (Endpoint, error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return Endpoint{}, fmt.Errorf("hub address %q: want tcp://host:port, ws://host:port/myclerk or nats://host:port", s)
	}
	switch u.Scheme {
	case "tcp", "tcps", "ws", "wss", "nats":
		return Endpoint{Scheme: u.Scheme, Addr: u.Host, URL: s}, nil
	}
	return Endpoint{}, fmt.Errorf("hub address %q: unknown scheme %q (tcp, tcps, ws, wss or nats)", s, u.Scheme)
}

// Dial opens a connection to a hub as id (nil before enrolment, which
// NATS does not offer): on NATS, id's key signs in and its node ID names
// this end.
func (e Endpoint) Dial(ctx context.Context, family identity.FamilyID, id *identity.Identity) (transport.Conn, func(), error) {
	switch e.Scheme {
	case "tcp":
		c, err := (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, "tcp", e.Addr)
		if err != nil {
			return nil, nil, fmt.Errorf("failed to reach the hub at %s: %w", e.URL, err)
		}
		return transport.NewStream(c), func() {}, nil
	case "tcps":
		cfg := e.TLS
		if cfg == nil {
			cfg = &tls.Config{}
		}
		cfg = cfg.Clone()
		cfg.MinVersion = tls.VersionTLS13
		c, err := (&tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: cfg}).DialContext(ctx, "tcp", e.Addr)
		if err != nil {
			return nil, nil, fmt.Errorf("failed to reach the hub at %s: %w", e.URL, err)
		}
		return transport.NewStream(c), func() {}, nil
	case "ws", "wss":
		c, err := transport.DialWebSocket(ctx, e.URL)
		if err != nil {
			return nil, nil, err
		}
		return c, func() {}, nil
	}
	if id == nil {
		return nil, nil, errors.New("nats: only an enrolled node signs in to NATS; pair over tcp://, tcps:// or ws://")
	}
	self := natsToken(id.Cert.Node.String())
	nc, err := joinNATS(e.URL, "myclerk "+self, id)
	if err != nil {
		return nil, nil, err
	}
	c, err := transport.DialNATS(nc, family.String(), self, HubNATSNode)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return c, nc.Close, nil
}

// Pairing refuses a key directory that is not free for a new identity.
var (
	ErrHubKeys   = errors.New("it holds a family root key: it is a hub's; pair into another data directory")
	ErrKeysExist = errors.New("it already holds a node's keys; pair -force replaces them")
)

// CheckPairTarget refuses to pair into dir when it holds a family root key
// (a hub's keys, even with force) or, unless force, a node's keys.
func CheckPairTarget(dir string, force bool) error {
	exists := func(name string) bool {
		_, err := os.Lstat(filepath.Join(dir, name))
		return !errors.Is(err, fs.ErrNotExist) // unreadable counts as there
	}
	if exists(keystore.RootKeyFile) {
		return fmt.Errorf("key directory %s: %w", dir, ErrHubKeys)
	}
	if force {
		return nil
	}
	for _, name := range []string{keystore.NodeKeyFile, keystore.NodeCertFile, keystore.RootPubFile} {
		if exists(name) {
			return fmt.Errorf("key directory %s: %w", dir, ErrKeysExist)
		}
	}
	return nil
}

// Pair enrols this node with the hub at ep using a pairing code and
// stores its keys in c's key directory. It refuses, before it uses the
// code, a key directory CheckPairTarget refuses.
func Pair(ctx context.Context, c *config.Config, ep Endpoint, code identity.PairingCode, role identity.Role, force bool, log zerolog.Logger) (*identity.Identity, error) {
	if ep.Scheme == "nats" {
		return nil, errors.New("pair over tcp://, tcps:// or ws://: on NATS the family is not known before pairing")
	}
	if err := CheckPairTarget(c.KeyDir(), force); err != nil {
		return nil, err
	}
	conn, done, err := ep.Dial(ctx, identity.FamilyID{}, nil)
	if err != nil {
		return nil, err
	}
	defer done()
	scfg, err := SessionConfig(c, nil, nil, log)
	if err != nil {
		return nil, err
	}
	id, root, err := session.Enrol(ctx, conn, *scfg, code, c.Name, role)
	if err != nil {
		return nil, fmt.Errorf("failed to pair with %s: %w", ep.URL, err)
	}
	keys := keystore.Dir(c.KeyDir())
	if err := keys.SaveRootPublic(root); err != nil {
		return nil, err
	}
	if err := keys.SaveIdentity(id); err != nil {
		return nil, err
	}
	return id, nil
}

// LoadMember reads a paired node's identity and pinned root key.
func LoadMember(c *config.Config) (*identity.Identity, ed25519.PublicKey, error) {
	keys := keystore.Dir(c.KeyDir())
	id, err := keys.LoadIdentity()
	if errors.Is(err, keystore.ErrNotFound) {
		return nil, nil, fmt.Errorf("this node is not paired yet: run `myclerk-bridge pair` with a code from the hub (%w)", err)
	}
	if err != nil {
		return nil, nil, err
	}
	root, err := keys.LoadRootPublic()
	if err != nil {
		return nil, nil, err
	}
	return id, root, nil
}

// Open opens (or resumes, with t) a session to the hub; a peer that is
// not the family's hub is refused.
func Open(ctx context.Context, c *config.Config, ep Endpoint, id *identity.Identity, root ed25519.PublicKey, t *session.Ticket, log zerolog.Logger) (*session.Session, func(), error) {
	conn, done, err := ep.Dial(ctx, identity.FamilyOf(root), id)
	if err != nil {
		return nil, nil, err
	}
	scfg, err := SessionConfig(c, id, root, log)
	if err != nil {
		done()
		return nil, nil, err
	}
	scfg.PeerRoles = []identity.Role{identity.RoleHub} // the other end must be the family's hub
	var s *session.Session
	if t != nil {
		s, err = session.Resume(ctx, conn, scfg, *t)
	} else {
		s, err = session.Dial(ctx, conn, scfg)
	}
	if err != nil {
		done()
		return nil, nil, err
	}
	return s, done, nil
}

// HubEndpoint picks the configured way to reach the hub.
func HubEndpoint(c *config.Config) (Endpoint, error) {
	switch {
	case c.Hub.TCP != "":
		return ParseEndpoint("tcp://" + c.Hub.TCP)
	case c.Hub.WebSocket != "":
		return ParseEndpoint(c.Hub.WebSocket)
	case c.Hub.NATS:
		return ParseEndpoint(c.NATS.URL)
	}
	return Endpoint{}, errors.New("config: hub: no way to reach the hub")
}

// RunNode serves a node's devices to its hub until ctx is done,
// reconnecting (with a resumption ticket when it has one) when the
// session ends.
func RunNode(ctx context.Context, c *config.Config, log zerolog.Logger) error {
	id, root, err := LoadMember(c)
	if err != nil {
		return err
	}
	ep, err := HubEndpoint(c)
	if err != nil {
		return err
	}
	var devices []agent.Device
	for _, s := range c.Devices.Sensors {
		iv := s.Interval
		if iv == 0 {
			iv = 30 * time.Second
		}
		devices = append(devices, agent.NewSimSensor(s.ID, s.Name, s.Base, iv))
	}
	for _, p := range c.Devices.Serial {
		baud := p.Baud
		if baud == 0 {
			baud = 115200
		}
		d, err := agent.NewSerialPort(p.ID, p.Path, baud)
		if err != nil {
			return fmt.Errorf("config: devices.serial %s: %w", p.ID, err)
		}
		devices = append(devices, d)
	}
	a := &agent.Agent{Devices: devices, Log: log}
	agent.Reconnect(ctx, log, func(ctx context.Context, t *session.Ticket) (*session.Session, func(), error) {
		return Open(ctx, c, ep, id, root, t, log)
	}, func(ctx context.Context, s *session.Session) error {
		// The session's keepalive ends with the session: nothing the
		// node starts outlives RunNode.
		kctx, kstop := context.WithCancel(ctx)
		kdone := make(chan struct{})
		go func() {
			defer close(kdone)
			s.Keepalive(kctx, c.Session.Keepalive, c.Session.DeadAfter)
		}()
		err := a.Serve(ctx, s)
		kstop()
		<-kdone
		return err
	})
	return ctx.Err()
}
