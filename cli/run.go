package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/myclerk/myclerk-bridge/bridge"
	"github.com/myclerk/myclerk-bridge/commands"
	"github.com/myclerk/myclerk-bridge/node/config"
	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/runtime"
	"github.com/myclerk/myclerk-bridge/node/session"
)

// loadConfig reads -config, or the defaults when the flag names no file
// and ./config.yaml does not exist.
func loadConfig(path string, explicit bool) (*config.Config, error) {
	if !explicit {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return config.Default(), nil
		}
	}
	return config.Load(path)
}

func logger(env Env, level string) zerolog.Logger {
	l, err := zerolog.ParseLevel(level)
	if err != nil {
		l = zerolog.InfoLevel
	}
	return zerolog.New(env.Stderr).Level(l).With().Timestamp().Logger()
}

// signalContext ends on SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

type configFlag struct {
	path     string
	explicit bool
}

func (c *configFlag) register(fs *flag.FlagSet) {
	fs.Func("config", "configuration file (default ./config.yaml when it exists, else built-in defaults)", func(s string) error {
		c.path, c.explicit = s, true
		return nil
	})
}

func (c *configFlag) load() (*config.Config, error) {
	p := c.path
	if p == "" {
		p = "config.yaml"
	}
	return loadConfig(p, c.explicit)
}

// configCommand parses a subcommand's flags (define adds its own to the
// -config flag) and loads its configuration. A non-zero code is the exit
// status: 2 for bad flags, 1 for a configuration that does not load (said
// on stderr as "name: error").
func configCommand(name string, args []string, env Env, define func(*flag.FlagSet)) (*config.Config, int) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	var cf configFlag
	cf.register(fs)
	if define != nil {
		define(fs)
	}
	if err := fs.Parse(args); err != nil {
		return nil, 2
	}
	c, err := cf.load()
	if err != nil {
		fmt.Fprintf(env.Stderr, "%s: %v\n", name, err)
		return nil, 1
	}
	return c, 0
}

func hubMain(args []string, env Env) int {
	var invite *string
	c, code := configCommand("hub", args, env, func(fs *flag.FlagSet) {
		invite = fs.String("invite", "", "print pairing codes after starting: a comma-separated list of node or client, each with :NAME for a code for that name only (an admin's needs it)")
	})
	if code != 0 {
		return code
	}
	if c.Role != "hub" {
		fmt.Fprintf(env.Stderr, "hub: the configuration's role is %q; run `myclerk-bridge node` for a node\n", c.Role)
		return 1
	}
	ctx, cancel := signalContext()
	defer cancel()
	log := logger(env, c.LogLevel)
	h, err := runtime.StartHub(ctx, c, log)
	if err != nil {
		fmt.Fprintf(env.Stderr, "hub: %v\n", err)
		return 1
	}
	// However hubMain returns, the hub (and the bridge in its group) has
	// stopped and its store is closed before the process exits.
	stopped := false
	defer func() {
		if !stopped {
			cancel()
			h.Wait()
		}
	}()
	fmt.Fprintf(env.Stdout, "MyClerk hub %q of family %s is running.\n", c.Name, h.Root.Family())
	for t, a := range h.Addrs {
		fmt.Fprintf(env.Stdout, "  %-9s %s\n", t, a)
	}
	if c.MatrixEnabled() {
		s, err := bridge.LoadSettings(c, h.Root, true)
		if err != nil {
			fmt.Fprintf(env.Stderr, "hub: %v\n", err)
			return 1
		}
		b, err := bridge.Start(ctx, s, h, commands.Register, log)
		if err != nil {
			fmt.Fprintf(env.Stderr, "hub: %v\n", err)
			return 1
		}
		fmt.Fprintf(env.Stdout, "  %-9s %s as %s (appservice at %s)\n", "matrix", s.Homeserver.Address, b.Matrix.Bot.UserID, s.AppService.Address)
	} else {
		fmt.Fprintln(env.Stdout, "  matrix    not configured: add a matrix section to the configuration to run the bridge (README: Meet your family in Element)")
	}
	if *invite != "" {
		for _, item := range strings.Split(*invite, ",") {
			r, name, _ := strings.Cut(strings.TrimSpace(item), ":")
			role, err := identity.ParseRole(r)
			if err != nil || role == identity.RoleHub {
				fmt.Fprintf(env.Stderr, "hub: -invite %q: want node or client, each with an optional :NAME (or a comma-separated list)\n", item)
				return 2
			}
			code, err := runtime.Invite(ctx, h.Store, role, name)
			if errors.Is(err, identity.ErrName) || errors.Is(err, session.ErrMatrixName) {
				fmt.Fprintf(env.Stderr, "hub: -invite: %v\n", err)
				return 2
			}
			if err != nil {
				fmt.Fprintf(env.Stderr, "hub: %v\n", err)
				return 1
			}
			fmt.Fprintf(env.Stdout, "Pairing code for %s (valid %v, once): %s\n", invitee(role, name), identity.PairingLifetime, code)
		}
		fmt.Fprintf(env.Stdout, "On the new machine: myclerk-bridge pair -hub %s -code CODE -name NAME -role node|client\n", firstAddr(h.Addrs))
	}
	<-ctx.Done()
	fmt.Fprintln(env.Stdout, "Stopping.")
	stopped = true
	if err := h.Wait(); err != nil { // sessions end, then the store is checkpointed and closed
		fmt.Fprintf(env.Stderr, "hub: %v\n", err)
		return 1
	}
	log.Info().Msg("The hub stopped")
	return 0
}

func firstAddr(a map[string]string) string {
	for _, k := range []string{"tcp", "websocket"} {
		if a[k] != "" {
			return a[k]
		}
	}
	return "tcp://HUB:7410"
}

func nodeMain(args []string, env Env) int {
	c, code := configCommand("node", args, env, nil)
	if code != 0 {
		return code
	}
	if c.Role != "node" {
		fmt.Fprintf(env.Stderr, "node: the configuration's role is %q; set role: node (see config.example.yaml)\n", c.Role)
		return 1
	}
	ctx, cancel := signalContext()
	defer cancel()
	if err := runtime.RunNode(ctx, c, logger(env, c.LogLevel)); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(env.Stderr, "node: %v\n", err)
		return 1
	}
	return 0
}

func pairMain(args []string, env Env) int {
	var hubAddr, code, name, role, dataDir, tlsCA *string
	var force *bool
	c, status := configCommand("pair", args, env, func(fs *flag.FlagSet) {
		hubAddr = fs.String("hub", "", "the hub: tcp://host:7410 or ws://host:7411/myclerk")
		code = fs.String("code", "", "the pairing code the hub printed")
		name = fs.String("name", "", "this node's name in the family (default: the configuration's name)")
		role = fs.String("role", "node", "node or client")
		dataDir = fs.String("data", "", "data directory for the keys (default: the configuration's data_dir)")
		tlsCA = fs.String("tls-ca", "", "PEM file of the CA that signed the hub's TLS certificate, for tcps://")
		force = fs.Bool("force", false, "replace the node keys the data directory holds (never a hub's)")
	})
	if status != 0 {
		return status
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(env.Stderr, "pair: "+format+"\n", a...)
		return code
	}
	if *name != "" {
		c.Name = *name
	}
	if *dataDir != "" {
		c.DataDir = *dataDir
	}
	if err := c.Check(); err != nil {
		return fail(1, "%v", err)
	}
	ep, err := runtime.ParseEndpoint(*hubAddr)
	if err != nil {
		return fail(2, "-hub: %v", err)
	}
	if ep.TLS, err = tlsConfig(*tlsCA); err != nil {
		return fail(2, "%v", err)
	}
	pc, err := identity.ParsePairingCode(*code)
	if err != nil {
		return fail(2, "-code: %v", err)
	}
	r, err := identity.ParseRole(*role)
	if err != nil || r == identity.RoleHub {
		return fail(2, "-role %q: want node or client", *role)
	}
	ctx, cancel := signalContext()
	defer cancel()
	id, err := runtime.Pair(ctx, c, ep, pc, r, *force, logger(env, "warn"))
	if err != nil {
		return fail(1, "%v", err)
	}
	fmt.Fprintf(env.Stdout, "Paired %q (%v, node %s) with family %s; keys in %s\n", id.Cert.Name, id.Cert.Role, id.Cert.Node, id.Cert.Family, c.KeyDir())
	return 0
}

func registerMain(args []string, env Env) int {
	c, code := configCommand("register", args, env, nil)
	if code != 0 {
		return code
	}
	if !c.MatrixEnabled() {
		fmt.Fprintln(env.Stderr, "register: the configuration has no matrix section (see config.example.yaml)")
		return 1
	}
	s, err := bridge.LoadSettings(c, nil, false)
	if err != nil {
		fmt.Fprintf(env.Stderr, "register: %v\n", err)
		return 1
	}
	created, err := bridge.WriteRegistration(s)
	if err != nil {
		fmt.Fprintf(env.Stderr, "register: %v\n", err)
		return 1
	}
	verb := "Updated"
	if created {
		verb = "Wrote"
	}
	fmt.Fprintf(env.Stdout, "%s %s (it holds the appservice tokens; keep it private).\n", verb, s.Registration)
	fmt.Fprintf(env.Stdout, "Give it to the homeserver %s (Synapse: app_service_config_files), restart the homeserver, then start the hub.\n", s.Homeserver.Domain)
	return 0
}
