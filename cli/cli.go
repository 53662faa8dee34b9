// Package cli holds the subcommands of the myclerk-bridge binary. main.go
// only hands it the process's arguments and streams.
package cli

import (
	"fmt"
	"io"
	"runtime/debug"
	"strings"
)

// Env is what a subcommand may touch of the process.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

const usage = `myclerk-bridge: the MyClerk Protocol node and Matrix bridge

Usage:
  myclerk-bridge [hub] [-config F] [-invite node|client[:NAME],...]
                                                run the family hub (no arguments: on
                                                built-in defaults, 127.0.0.1, ./data), and
                                                the Matrix bridge when the config has a
                                                matrix section
  myclerk-bridge register [-config F]           write the appservice registration for the
                                                homeserver (matrix.registration)
  myclerk-bridge node [-config F]               run a plain node that announces its devices
  myclerk-bridge pair -hub ADDR -code CODE -name NAME [-role node|client] [-data DIR] [-force]
                                                join a family with a pairing code
  myclerk-bridge client [flags] COMMAND         talk to the hub (devices, locks, ACLs, status)
  myclerk-bridge invite [-config F] [-role node|client] [-name NAME]
                                                a pairing code for the running hub (with
                                                -name for that name only: an admin's needs it)
  myclerk-bridge revoke [-config F] NAME        revoke a node; its sessions end
  myclerk-bridge nodes [-config F]              enrolled nodes, last seen, Core/Bonus
  myclerk-bridge nats-config [-config F]        the authorization block for a family's own
                                                NATS server (nats.url): hub and nodes by key
  myclerk-bridge frame decode [flags] [FRAME]   describe a frame (hex or base64) as JSON
  myclerk-bridge frame encode [flags] [JSON]    build a frame from its JSON description
  myclerk-bridge frame vectors [-dir DIR]       write the test vectors
  myclerk-bridge ops [-json | -markdown]        every operation: tier, access, lock, who serves it
  myclerk-bridge health [-url URL]              ask a running hub's /health (exit 0 when healthy)
  myclerk-bridge version                        print the version

Run "myclerk-bridge frame decode -h" for the flags of a subcommand.
`

// Main runs the subcommand named by args and returns the exit status.
func Main(args []string, env Env) (code int) {
	defer func() {
		// A bug must still end in one line and a non-zero status.
		if r := recover(); r != nil {
			fmt.Fprintf(env.Stderr, "myclerk-bridge: internal error: %v\n", r)
			code = 70
		}
	}()
	if len(args) == 0 || strings.HasPrefix(args[0], "-") && args[0] != "-h" && args[0] != "-help" && args[0] != "--help" {
		return hubMain(args, env)
	}
	switch args[0] {
	case "hub":
		return hubMain(args[1:], env)
	case "node":
		return nodeMain(args[1:], env)
	case "register":
		return registerMain(args[1:], env)
	case "health":
		return healthMain(args[1:], env)
	case "pair":
		return pairMain(args[1:], env)
	case "client":
		return clientMain(args[1:], env)
	case "invite", "revoke", "nodes", "nats-config":
		return adminMain(args[0], args[1:], env)
	case "frame":
		return frameMain(args[1:], env)
	case "ops":
		return opsMain(args[1:], env)
	case "version":
		fmt.Fprintln(env.Stdout, version())
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(env.Stdout, usage)
		return 0
	}
	fmt.Fprintf(env.Stderr, "myclerk-bridge: unknown command %q\n%s", args[0], usage)
	return 2
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return "myclerk-bridge " + bi.Main.Version
	}
	return "myclerk-bridge (devel)"
}
