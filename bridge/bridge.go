// Package bridge runs the hub as a Matrix appservice on mautrix-go's
// bridgev2: the family is the remote network, a Matrix user's login is a
// family member certified by the hub, every device gets a portal room
// with a ghost user, chat commands act on the family, and MyClerk frames
// travel in eu.myclerk.frame room events, so nodes and other families'
// bridges reach the hub through Matrix.
//
// The bridge lives in the hub's process: it opens its users' sessions to
// the hub over in-memory pipes (runtime.Hub.Attach), the same sealed
// sessions any node opens over TCP, so the hub's ACLs, locks and
// subscriptions apply to Matrix users exactly as to nodes.
package bridge

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/commands"
	"maunium.net/go/mautrix/bridgev2/matrix"

	"github.com/myclerk/myclerk-bridge/node/runtime"
)

// Bridge is a running appservice bridge.
type Bridge struct {
	Settings *Settings
	Hub      *runtime.Hub
	Bridge   *bridgev2.Bridge
	Matrix   *matrix.Connector
	Network  *Network
	Metrics  *Metrics

	log zerolog.Logger
	db  *dbutil.Database
}

// Commands is what the chat commands package registers: it is called
// with the bridge before the bridge starts.
type Commands func(b *Bridge, proc *commands.Processor)

// Start runs the bridge beside hub h until ctx ends. register adds the
// chat commands (package commands); nil leaves bridgev2's own.
func Start(ctx context.Context, s *Settings, h *runtime.Hub, register Commands, log zerolog.Logger) (*Bridge, error) {
	log = log.With().Str("component", "bridge").Logger()
	db, err := dbutil.NewFromConfig("myclerk-bridge", s.Database, dbutil.ZeroLogger(log.With().Str("db_section", "main").Logger()))
	if err != nil {
		return nil, fmt.Errorf("bridge database: %w", err)
	}
	b := &Bridge{Settings: s, Hub: h, log: log, db: db, Metrics: newMetrics(h.Metrics())}
	b.Network = newNetwork(b)
	b.Matrix = matrix.NewConnector(&s.Config)
	b.Matrix.IgnoreUnsupportedServer = s.AcceptOldServers
	b.Bridge = bridgev2.NewBridge("", db, log, &s.Bridge, b.Matrix, b.Network, commands.NewProcessor)
	if register != nil {
		register(b, b.Bridge.Commands.(*commands.Processor))
	}
	// The frame event and the transaction log hook into the appservice
	// before its listener starts.
	b.Matrix.AS.Middleware = append(b.Matrix.AS.Middleware, b.idempotentTransactions)
	b.Matrix.EventProcessor.On(FrameEventType, b.Network.frames.handle)
	b.Matrix.EventProcessor.On(FederationStateType, b.Network.Federations.handleState)

	startCtx := log.WithContext(ctx)
	if err := b.Bridge.StartConnectors(startCtx); err != nil {
		b.Bridge.Stop()
		var exit matrix.ExitError
		if errors.As(err, &exit) {
			return nil, fmt.Errorf("the Matrix connection failed to start (mautrix exit code %v): see the log above", exit)
		}
		return nil, fmt.Errorf("the bridge failed to start: %w", err)
	}
	if err := b.Bridge.StartLogins(startCtx); err != nil {
		b.Bridge.Stop()
		return nil, fmt.Errorf("the bridge failed to start its logins: %w", err)
	}
	b.Bridge.PostStart(startCtx)
	// Everything the bridge runs is in the hub's group: the hub's Wait
	// waits for it before the store closes.
	h.Go(func() { b.prune(ctx) })
	h.AddHealthCheck("matrix", func(ctx context.Context) error {
		_, err := b.Matrix.Bot.Whoami(ctx)
		return err
	})
	h.Go(func() {
		<-ctx.Done()
		b.Bridge.Stop() // the appservice, the logins (members) and the network
	})
	log.Info().Str("bot", b.Matrix.Bot.UserID.String()).Str("listen", s.AppService.Address).Msg("The Matrix bridge is running")
	return b, nil
}

// txnHorizon is how long applied transactions and events are remembered:
// far longer than homeservers retry.
const txnHorizon = 7 * 24 * time.Hour

func (b *Bridge) prune(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if err := b.Hub.Store.Matrix.Prune(ctx, time.Now().Add(-txnHorizon)); err != nil && ctx.Err() == nil {
			b.log.Warn().Err(err).Msg("Failed to prune the transaction log")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
