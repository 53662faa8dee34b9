package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"

	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/runtime"
	"github.com/myclerk/myclerk-bridge/node/session"
	"github.com/myclerk/myclerk-bridge/node/store"
)

// adminMain runs the hub-side administration commands: they work on the
// hub's store, next to a running hub.
func adminMain(name string, args []string, env Env) int {
	var role, bind *string
	var fs *flag.FlagSet
	c, code := configCommand(name, args, env, func(f *flag.FlagSet) {
		fs = f
		role = f.String("role", "node", "invite: node or client")
		if name == "invite" {
			bind = f.String("name", "", "invite: the one name the code enrols (an admin's name, acl.admins, needs it)")
		}
	})
	if code != 0 {
		return code
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(env.Stderr, name+": "+format+"\n", a...)
		return code
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := runtime.OpenStore(ctx, c)
	if err != nil {
		return fail(1, "%v", err)
	}
	defer st.Close()
	switch name {
	case "invite":
		r, err := identity.ParseRole(*role)
		if err != nil || r == identity.RoleHub {
			return fail(2, "-role %q: want node or client", *role)
		}
		code, err := runtime.Invite(ctx, st, r, *bind)
		if errors.Is(err, identity.ErrName) || errors.Is(err, session.ErrMatrixName) {
			return fail(2, "-name: %v", err)
		}
		if err != nil {
			return fail(1, "%v", err)
		}
		fmt.Fprintf(env.Stdout, "Pairing code for %s (valid %v, once): %s\n", invitee(r, *bind), identity.PairingLifetime, code)
		return 0
	case "revoke":
		if fs.NArg() != 1 {
			return fail(2, "usage: myclerk-bridge revoke [-config F] NODE-NAME|NODE-ID")
		}
		n, err := st.Nodes.Find(ctx, fs.Arg(0))
		if err != nil {
			return fail(1, "%v", err)
		}
		if err := st.Nodes.Revoke(ctx, n.ID, time.Now()); err != nil {
			return fail(1, "%v", err)
		}
		fmt.Fprintf(env.Stdout, "Revoked %s (%s): it can no longer open sessions; the hub ends its live sessions.\n", identity.Printable(n.Name), n.ID)
		return 0
	case "nodes":
		nodes, err := st.Nodes.List(ctx)
		if err != nil {
			return fail(1, "%v", err)
		}
		now := time.Now()
		tw := tabwriter.NewWriter(env.Stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tROLE\tNODE ID\tLAST SEEN\tUP (30 DAYS)\tCLASS\tSTATE")
		for _, n := range nodes {
			frac, err := st.Sessions.Availability(ctx, n.ID, now.Add(-store.CoreWindow), now)
			if err != nil {
				return fail(1, "%v", err)
			}
			seen, state := "never", "enrolled"
			if !n.LastSeen.IsZero() {
				seen = n.LastSeen.Format(time.RFC3339)
			}
			if n.Revoked() {
				state = "revoked"
			}
			fmt.Fprintf(tw, "%s\t%v\t%s\t%s\t%.1f %%\t%s\t%s\n", identity.Printable(n.Name), n.Role, n.ID, seen, 100*frac, store.Classify(frac), state)
		}
		if err := tw.Flush(); err != nil {
			return fail(1, "%v", err)
		}
		return 0
	case "nats-config":
		out, err := runtime.NATSConfig(ctx, c, st, zerolog.New(env.Stderr))
		if err != nil {
			return fail(1, "%v", err)
		}
		fmt.Fprint(env.Stdout, out)
		return 0
	}
	return fail(2, "unknown command")
}

// invitee says whom a pairing code is for: "a new client", or "the
// client alice (that name only)" for a bound code.
func invitee(role identity.Role, name string) string {
	if name == "" {
		return fmt.Sprintf("a new %v", role)
	}
	return fmt.Sprintf("the %v %s (that name only)", role, identity.Printable(name))
}
