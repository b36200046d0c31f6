package chat

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/jonboulle/clockwork"
	"go.uber.org/fx"

	libp2padapter "github.com/phrasemeet/discovery/adapters/libp2p"
)

// stopTimeout bounds stopping: the goodbye, the leaves (each bounded by
// the adapter), the host's close.
const stopTimeout = 20 * time.Second

// startTimeout bounds starting: probing or serving the local relay,
// joining the room. The KDF runs before, while the graph is built.
const startTimeout = 30 * time.Second

// Options returns the chat as fx options, one module per component (see
// the package documentation). Tests add fx.Replace or fx.Decorate to swap
// a component, fx.Populate to reach one.
func Options(cfg Config, io IO) fx.Option {
	if err := cfg.check(); err != nil {
		return fx.Error(err)
	}
	// A copy of our own, wiped by the keys provider after the KDF.
	cfg.Passphrase = slices.Clone(cfg.Passphrase)
	return fx.Options(
		fx.NopLogger,
		fx.StopTimeout(stopTimeout),
		fx.Module("config", fx.Supply(cfg, io), fx.Provide(newConsole, newClock)),
		fx.Module("keys", fx.Provide(newGroup)),
		// Before the host: its hole-punching tracer reports here.
		fx.Module("links", fx.Provide(newHolePunches)),
		fx.Module("pkarr", fx.Provide(newLocalRelay, newClient)),
		discoveryModule(cfg),
		fx.Module("host", fx.Provide(newHost)),
		fx.Module("adapter", fx.Provide(newAdapter)),
		fx.Module("pubsub", fx.Provide(newPubSub)),
		fx.Module("room", fx.Provide(newRoom, newMonitor, newFarewells)),
		fx.Module("ui", fx.Provide(newUI), fx.Invoke(func(*UI) {})),
		// Last, so it starts once the room listens and stops first.
		fx.Module("connect", fx.Provide(newConnector), fx.Invoke(func(*libp2padapter.Connector) {})),
	)
}

// newClock is the clock that times the connector's redials: the real one,
// unless a test decorates it with a fake.
func newClock() clockwork.Clock { return clockwork.NewRealClock() }

// Run runs a chat until the user quits (/quit, the input's end) or ctx
// ends (a signal), then stops it: goodbye to the room, leave the
// rendezvous, close the host. extra options go after the chat's own.
func Run(ctx context.Context, cfg Config, io IO, extra ...fx.Option) error {
	app := fx.New(Options(cfg, io), fx.Options(extra...))
	if err := app.Err(); err != nil {
		return err
	}
	startCtx, cancelStart := context.WithTimeout(ctx, startTimeout)
	err := app.Start(startCtx)
	cancelStart()
	if err != nil {
		return err
	}
	select {
	case <-app.Wait():
	case <-ctx.Done():
	}
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
	defer cancel()
	if err := app.Stop(stopCtx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
