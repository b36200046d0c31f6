package chat

import (
	"context"
	"fmt"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	ma "github.com/multiformats/go-multiaddr"
	"go.uber.org/fx"

	libp2padapter "github.com/phrasemeet/discovery/adapters/libp2p"
	"github.com/phrasemeet/discovery/adapters/libp2p/connectivity"
)

// newHost starts the libp2p host, with what it takes to reach members
// behind NATs (connectivity.Manager: relays, hole punching, the
// room's own relay), and provides that Connectivity too. Its hole
// punching reports to punches, for /peers. libp2p.New
// returns a host that already listens, so there is nothing to start;
// stopping closes it, after every component that uses it has stopped (fx
// stops in reverse order of construction).
func newHost(lc fx.Lifecycle, cfg Config, punches *HolePunches) (host.Host, *connectivity.Manager, error) {
	copts := []connectivity.Option{
		connectivity.WithHolePunchTracer(punches),
		connectivity.WithGroupRelay(!cfg.NoGroupRelay),
		connectivity.WithReachability(cfg.Reachability),
		connectivity.WithCircuitRelays(cfg.CircuitRelays...),
		connectivity.WithPublicCIDRs(cfg.PublicCIDRs...),
	}
	if len(cfg.Listen) > 0 {
		listen := make([]ma.Multiaddr, 0, len(cfg.Listen))
		for _, s := range cfg.Listen {
			m, err := ma.NewMultiaddr(s)
			if err != nil {
				return nil, nil, fmt.Errorf("listen address %q: %w", s, err)
			}
			listen = append(listen, m)
		}
		copts = append(copts, connectivity.WithListenAddrs(listen...))
	}
	conn, err := connectivity.New(copts...)
	if err != nil {
		return nil, nil, err
	}
	h, err := libp2p.New(append(conn.Options(), libp2p.UserAgent("phrasemeet-chat"))...)
	if err != nil {
		return nil, nil, fmt.Errorf("starting the libp2p host: %w", err)
	}
	lc.Append(fx.StopHook(h.Close))
	return h, conn, nil
}

// newAdapter turns the opener into go-libp2p's discovery service for the
// host, and makes the members it finds the ones the host's relay admits
// and its AutoRelay picks relays from. Stopping it leaves every namespace,
// so the others see this peer go at their next read rather than when its
// entry ages out.
func newAdapter(lc fx.Lifecycle, h host.Host, open libp2padapter.Opener, cfg Config, con *Console, conn *connectivity.Manager) (*libp2padapter.Adapter, error) {
	var opts []libp2padapter.Option
	if cfg.Loopback {
		opts = append(opts, libp2padapter.WithLoopback())
	}
	a, err := libp2padapter.New(h, open, opts...)
	if err != nil {
		return nil, err
	}
	conn.Attach(a)
	lc.Append(fx.StopHook(func() error {
		// Leaving writes a tombstone, within the rendezvous' own request
		// budget: it can take a few seconds, which deserve a word.
		con.Statusf("leaving the rendezvous…")
		start := time.Now()
		err := a.Close()
		con.Statusf("left the rendezvous in %s", roundDuration(time.Since(start)))
		return err
	}))
	return a, nil
}

// newPubSub starts floodsub on the host: every member forwards each
// message it has not seen to every member it knows on the topic. A room
// is small, so flooding costs little, and it delivers what gossipsub
// loses: gossipsub forwards only to its mesh, which takes in a newcomer
// at the next heartbeat (a second later), and never sends it what came
// before. Seen in the namespace lab: ann, behind NAT, saw bob's hello
// forwarded by carol and typed a line; carol had bob on the topic but not
// yet in her mesh, and bob never got it. With flooding it arrives: carol
// knew bob's subscription before she forwarded his hello, so before any
// line sent in answer to it. gossipsub peers and floodsub peers talk to
// each other, so older chats still meet this one.
//
// pubsub is not given the adapter (pubsub.WithDiscovery): its own dialer,
// a BackoffConnector polled once a second, has both ends of a new pair
// dial each other at about the same moment, and over TCP with reused
// ports two such dials merge into one connection neither handshake
// completes; libp2p then backs off dialing that peer for longer than a
// conversation lasts. newConnector's libp2padapter.Connector dials
// instead, the lower peer ID first; pubsub finds the room's members among
// the connections it makes.
func newPubSub(lc fx.Lifecycle, h host.Host) (*pubsub.PubSub, error) {
	// pubsub lives as long as this context; stopping cancels it.
	ctx, cancel := context.WithCancel(context.Background())
	ps, err := pubsub.NewFloodSub(ctx, h)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("starting pubsub: %w", err)
	}
	lc.Append(fx.StopHook(cancel))
	return ps, nil
}

// connectBackoff is the Connector's retry delay after a failed dial,
// doubling up to connectBackoffMax: short, since a member that could not
// be reached once (its dial backoff in libp2p, a moment of loss) usually
// can be a second later, and a chat room is small.
const (
	connectBackoff    = 500 * time.Millisecond
	connectBackoffMax = 30 * time.Second
)

// newConnector announces this peer in the room's namespace and dials every
// member found there; the Monitor hears of every dial, and reports a
// member it cannot reach once, with the reason, rather than each failed
// redial. The namespace is the one pubsub.WithDiscovery would use for the
// room's topic ("floodsub:" + topic), so any go-libp2p program with the
// same passphrase and application name that finds its pubsub peers
// through the adapter meets the chat. It reads discovery through
// Farewells, so a member that said goodbye is not redialed. The clock
// times its retries (tests step through them with a fake one).
func newConnector(lc fx.Lifecycle, h host.Host, a *libp2padapter.Adapter, room *Room, mon *Monitor, fw *Farewells, clock clockwork.Clock) (*libp2padapter.Connector, error) {
	ns := pubsubNamespace(room.Topic())
	c, err := libp2padapter.NewConnector(h, fw.Subscriber(a.Subscriber(ns)),
		libp2padapter.ConnectClock(clock),
		libp2padapter.ConnectBackoff(connectBackoff, connectBackoffMax),
		libp2padapter.ConnectNotify(mon.dialed))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			// The record lives until cancel, the adapter's own leave on
			// stop, or the adapter's close.
			if _, err := a.Advertise(ctx, ns); err != nil {
				cancel()
				return fmt.Errorf("announcing in the room: %w", err)
			}
			if err := c.Start(ctx); err != nil {
				cancel()
				return fmt.Errorf("starting to connect: %w", err)
			}
			return nil
		},
		OnStop: func(context.Context) error {
			cancel()
			return c.Close()
		},
	})
	return c, nil
}
