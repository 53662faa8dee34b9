package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/myclerk/myclerk-bridge/node/config"
	"github.com/myclerk/myclerk-bridge/node/ops"
	"github.com/myclerk/myclerk-bridge/node/optable"
	"github.com/myclerk/myclerk-bridge/node/runtime"
	"github.com/myclerk/myclerk-bridge/node/session"
	"github.com/myclerk/myclerk-bridge/wire"
	"github.com/myclerk/myclerk-bridge/wire/payload"
)

// clientUsage lists the client's commands; the requests' lines come from
// the op table, with what each needs.
func clientUsage() string {
	var b strings.Builder
	b.WriteString("Usage: myclerk-bridge client [flags] COMMAND [ARGS]\n\nCommands:\n")
	fmt.Fprintf(&b, "  %-*s negotiated tier, capabilities, counters, key epochs\n", usageWidth, "status")
	for _, e := range optable.Commands() {
		b.WriteString("  " + e.Usage(usageWidth) + "\n")
	}
	b.WriteString("\nFlags:\n")
	return b.String()
}

const usageWidth = 34

type clientCmd struct {
	env  Env
	s    *session.Session
	json bool
	req  uint32
	// timeout bounds each request: a hub that never answers one is an
	// error, not a hang.
	timeout time.Duration
}

func clientMain(args []string, env Env) int {
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	data := fs.String("data", "./data", "data directory holding this client's keys (from `pair -role client`)")
	hubAddr := fs.String("hub", "tcp://127.0.0.1:7410", "the hub: tcp://, ws:// or nats://")
	tier := fs.Int("tier", 3, "tier to ask for (3-5)")
	floor := fs.Int("floor", 3, "lowest tier to accept")
	asJSON := fs.Bool("json", false, "print JSON instead of text")
	tlsCA := fs.String("tls-ca", "", "PEM file of the CA (or certificate) that signed the hub's TLS certificate, for tcps://")
	timeout := fs.Duration("timeout", 30*time.Second, "how long one request may wait for its answer")
	fs.Usage = func() { fmt.Fprint(env.Stderr, clientUsage()); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	fail := func(code int, err error) int {
		fmt.Fprintf(env.Stderr, "client: %s\n", oneLine(err))
		return code
	}
	c := config.Default()
	c.Role, c.Name, c.DataDir = "node", "client", *data
	c.Session.Tier, c.Session.Floor = *tier, *floor
	if err := c.Check(); err != nil && !strings.Contains(err.Error(), "config: hub:") {
		return fail(2, err)
	}
	ep, err := runtime.ParseEndpoint(*hubAddr)
	if err != nil {
		return fail(2, err)
	}
	if ep.TLS, err = tlsConfig(*tlsCA); err != nil {
		return fail(2, err)
	}
	id, root, err := runtime.LoadMember(c)
	if err != nil {
		return fail(1, err)
	}
	ctx, cancel := signalContext()
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 2*time.Minute)
	defer cancelT()
	s, done, err := runtime.Open(ctx, c, ep, id, root, nil, logger(env, "error"))
	if err != nil {
		return fail(1, err)
	}
	defer done()
	defer s.Close(context.Background())
	cmd := &clientCmd{env: env, s: s, json: *asJSON, timeout: *timeout}
	if err := cmd.run(ctx, fs.Args()); err != nil {
		return fail(1, err)
	}
	return 0
}

func (c *clientCmd) out(v any, text func(w io.Writer)) error {
	if c.json {
		enc := json.NewEncoder(c.env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(c.env.Stdout, 2, 4, 2, ' ', 0)
	text(tw)
	return tw.Flush()
}

// call sends a request and waits for its answer, skipping events, for at
// most c.timeout.
func (c *clientCmd) call(ctx context.Context, op wire.Op, req ops.Request) (ops.Reply, error) {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	r, err := c.wait(ctx, op, req)
	if errors.Is(err, context.DeadlineExceeded) {
		return r, fmt.Errorf("%v: no answer from the hub within %v", op, c.timeout)
	}
	return r, err
}

func (c *clientCmd) wait(ctx context.Context, op wire.Op, req ops.Request) (ops.Reply, error) {
	c.req++
	req.Req = c.req
	b, err := ops.Marshal(req)
	if err != nil {
		return ops.Reply{}, err
	}
	if err := c.s.Send(ctx, op, b); err != nil {
		return ops.Reply{}, err
	}
	for {
		m, err := c.s.Recv(ctx)
		if err != nil {
			return ops.Reply{}, err
		}
		switch m.Op {
		case wire.OpError:
			var e payload.Error
			if err := e.Unmarshal(m.Payload); err != nil {
				return ops.Reply{}, err
			}
			if e.RefSeq == req.Req {
				return ops.Reply{}, fmt.Errorf("%v: %s", e.Code, e.Message)
			}
		case op:
			var r ops.Reply
			if err := ops.Unmarshal(m.Payload, &r); err != nil {
				return ops.Reply{}, err
			}
			if r.Req == req.Req {
				return r, nil
			}
		}
	}
}

func need(args []string, n int, usage string) error {
	if len(args) < n {
		return fmt.Errorf("usage: client %s", usage)
	}
	return nil
}

func (c *clientCmd) run(ctx context.Context, args []string) error {
	switch args[0] {
	case "status":
		st := c.s.Status()
		caps := make([]string, len(st.Capabilities))
		for i, x := range st.Capabilities {
			caps[i] = x.String()
		}
		v := map[string]any{"session_id": st.SessionID, "tier": st.Tier, "requested_tier": st.RequestedTier,
			"aead": st.AEAD.String(), "capabilities": caps, "peer": st.Peer.Name, "peer_node": st.Peer.Node.String(), "remote": st.Remote,
			"send_epoch": st.SendEpoch, "send_counter": st.SendCounter, "recv_epoch": st.RecvEpoch,
			"frames_sent": st.FramesSent, "frames_received": st.FramesReceived, "rejected": st.Rejected}
		return c.out(v, func(w io.Writer) {
			fmt.Fprintf(w, "hub\t%s (%s)\nremote\t%s\nsession\t%d\ntier\t%d (asked for %d)\ncipher\t%s\ncapabilities\t%s\n",
				st.Peer.Name, st.Peer.Node, st.Remote, st.SessionID, st.Tier, st.RequestedTier, st.AEAD, strings.Join(caps, ", "))
			fmt.Fprintf(w, "key epochs\tsend %d, receive %d\ncounters\tnext send %d, frames sent %d, received %d, rejected %d\n",
				st.SendEpoch, st.RecvEpoch, st.SendCounter, st.FramesSent, st.FramesReceived, st.Rejected)
		})
	case "devices":
		r, err := c.call(ctx, wire.OpDeviceList, ops.Request{})
		if err != nil {
			return err
		}
		return c.out(r.Devices, func(w io.Writer) { devicesTable(w, r.Devices) })
	case "info", "caps":
		if err := need(args, 2, args[0]+" DEVICE"); err != nil {
			return err
		}
		op := wire.OpDeviceInfo
		if args[0] == "caps" {
			op = wire.OpDeviceCapabilities
		}
		r, err := c.call(ctx, op, ops.Request{Device: args[1]})
		if err != nil {
			return err
		}
		return c.out(r, func(w io.Writer) {
			devicesTable(w, r.Devices)
			fmt.Fprintf(w, "\nyour access\t%v\n", r.Mode)
			for _, d := range r.Devices {
				for k, v := range d.Capabilities {
					fmt.Fprintf(w, "%s\t%s\n", k, v)
				}
			}
		})
	case "lock", "unlock":
		if err := need(args, 2, args[0]+" DEVICE [SECONDS]"); err != nil {
			return err
		}
		req := ops.Request{Device: args[1]}
		op := wire.OpDeviceUnlock
		if args[0] == "lock" {
			op = wire.OpDeviceLock
			if len(args) > 2 {
				n, err := strconv.ParseUint(args[2], 10, 32)
				if err != nil {
					return fmt.Errorf("lease %q: want seconds", args[2])
				}
				req.Lease = uint32(n)
			}
		}
		r, err := c.call(ctx, op, req)
		if err != nil {
			return err
		}
		return c.out(r, func(w io.Writer) {
			fmt.Fprintf(w, "%s\t%s", args[1], r.Result)
			if r.Lease > 0 {
				fmt.Fprintf(w, " for %d s", r.Lease)
			}
			fmt.Fprintln(w)
		})
	case "subscribe":
		if err := need(args, 2, "subscribe DEVICE [COUNT]"); err != nil {
			return err
		}
		count := 1
		if len(args) > 2 {
			n, err := strconv.Atoi(args[2])
			if err != nil || n < 1 {
				return fmt.Errorf("count %q: want a positive number", args[2])
			}
			count = n
		}
		if _, err := c.call(ctx, wire.OpDeviceSubscribe, ops.Request{Device: args[1]}); err != nil {
			return err
		}
		for got := 0; got < count; {
			m, err := c.s.Recv(ctx)
			if err != nil {
				return err
			}
			if m.Op != wire.OpDeviceEvent {
				continue
			}
			var e ops.Event
			if err := ops.Unmarshal(m.Payload, &e); err != nil {
				return err
			}
			got++
			if err := c.out(e, func(w io.Writer) {
				fmt.Fprintf(w, "%s\t%s\t%s\t%v\n", time.Unix(e.Time, 0).Format(time.RFC3339), e.Device, e.Kind, e.Values)
			}); err != nil {
				return err
			}
		}
		return nil
	case "configure":
		if err := need(args, 3, "configure DEVICE KEY=VALUE..."); err != nil {
			return err
		}
		set := map[string]string{}
		for _, kv := range args[2:] {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return fmt.Errorf("setting %q: want KEY=VALUE", kv)
			}
			set[k] = v
		}
		r, err := c.call(ctx, wire.OpDeviceConfigure, ops.Request{Device: args[1], Settings: set})
		if err != nil {
			return err
		}
		return c.out(r, func(w io.Writer) { devicesTable(w, r.Devices) })
	case "acl":
		return c.acl(ctx, args[1:])
	case "routes":
		req := ops.Request{}
		if len(args) > 1 {
			req.Device = args[1]
		}
		r, err := c.call(ctx, wire.OpRouteList, req)
		if err != nil {
			return err
		}
		return c.out(r.Routes, func(w io.Writer) {
			fmt.Fprintln(w, "ID\tDEVICE\tNODE\tPRIORITY")
			for _, x := range r.Routes {
				fmt.Fprintf(w, "%d\t%s\t%s\t%d\n", x.ID, x.Device, x.Node, x.Priority)
			}
		})
	case "route":
		return c.route(ctx, args[1:])
	}
	return fmt.Errorf("unknown command %q (run `myclerk-bridge client -h`)", args[0])
}

func (c *clientCmd) acl(ctx context.Context, args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("usage: client acl get|grant|revoke DEVICE [NODE [MODE]]")
	}
	var op wire.Op
	req := ops.Request{Device: args[1]}
	switch args[0] {
	case "get":
		op = wire.OpACLGet
	case "grant":
		if len(args) < 4 {
			return fmt.Errorf("usage: client acl grant DEVICE NODE MODE")
		}
		m, err := ops.ParseMode(args[3])
		if err != nil {
			return err
		}
		op, req.Node, req.Mode = wire.OpACLGrant, args[2], m
	case "revoke":
		if len(args) < 3 {
			return fmt.Errorf("usage: client acl revoke DEVICE NODE")
		}
		op, req.Node = wire.OpACLRevoke, args[2]
	default:
		return fmt.Errorf("acl %q: want get, grant or revoke", args[0])
	}
	r, err := c.call(ctx, op, req)
	if err != nil {
		return err
	}
	return c.out(r, func(w io.Writer) {
		if op != wire.OpACLGet {
			fmt.Fprintf(w, "%s\t%s\t%v\n", args[1], req.Node, r.Mode)
			return
		}
		fmt.Fprintf(w, "your access\t%v\n", r.Mode)
		for _, e := range r.ACL {
			fmt.Fprintf(w, "%s\t%v\n", e.Node, e.Mode)
		}
	})
}

func (c *clientCmd) route(ctx context.Context, args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("usage: client route add DEVICE NODE [PRIORITY] | del ID | priority ID PRIORITY")
	}
	num := func(s, what string) (int64, error) {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s %q: want a number", what, s)
		}
		return n, nil
	}
	var op wire.Op
	var req ops.Request
	switch args[0] {
	case "add":
		if len(args) < 3 {
			return fmt.Errorf("usage: client route add DEVICE NODE [PRIORITY]")
		}
		op, req.Device, req.Node = wire.OpRouteCreate, args[1], args[2]
		if len(args) > 3 {
			p, err := num(args[3], "priority")
			if err != nil {
				return err
			}
			req.Priority = int32(p)
		}
	case "del", "priority":
		id, err := num(args[1], "route")
		if err != nil {
			return err
		}
		op, req.Route = wire.OpRouteDelete, uint64(id)
		if args[0] == "priority" {
			if len(args) < 3 {
				return fmt.Errorf("usage: client route priority ID PRIORITY")
			}
			p, err := num(args[2], "priority")
			if err != nil {
				return err
			}
			op, req.Priority = wire.OpRoutePriority, int32(p)
		}
	default:
		return fmt.Errorf("route %q: want add, del or priority", args[0])
	}
	r, err := c.call(ctx, op, req)
	if err != nil {
		return err
	}
	return c.out(r, func(w io.Writer) { fmt.Fprintf(w, "route %d\t%s\n", r.Route, r.Result) })
}

// tlsConfig trusts the certificates in caFile ("" means the system roots).
func tlsConfig(caFile string) (*tls.Config, error) {
	if caFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("-tls-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("-tls-ca: %s holds no PEM certificate", caFile)
	}
	return &tls.Config{RootCAs: pool}, nil
}

func devicesTable(w io.Writer, ds []ops.Device) {
	fmt.Fprintln(w, "DEVICE\tKIND\tNAME\tOWNER\tAVAILABLE\tLOCKED BY")
	for _, d := range ds {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%v\t%s\n", d.ID, d.Kind, d.Name, d.Owner, d.Available, d.LockedBy)
	}
}
