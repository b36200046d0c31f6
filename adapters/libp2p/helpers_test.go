package libp2padapter_test

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/phrasemeet/discovery"
	libp2padapter "github.com/phrasemeet/discovery/adapters/libp2p"
)

// timeout bounds every wait in these tests. It is generous: the machines
// running them are small and shared, and -race slows libp2p down a lot.
const timeout = 20 * time.Second

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// newHost starts a real libp2p host listening on loopback TCP only, and
// closes it when the test ends.
func newHost(t *testing.T, opts ...libp2p.Option) host.Host {
	t.Helper()
	h, err := libp2p.New(append([]libp2p.Option{
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.DisableRelay(),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// newQUICHost starts a real libp2p host listening on loopback QUIC only.
// Tests where both ends may dial each other at the same instant through a
// dialer other than Connector (pubsub's) use it: two simultaneous TCP dials
// between listen ports reused for dialing can merge into one connection
// that neither handshake completes, and the swarm's dial backoff that
// follows outlasts the test. QUIC keeps the two attempts apart.
func newQUICHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/udp/0/quic-v1"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// newAdapter returns an adapter for h that publishes loopback addresses
// (every host here is on loopback), closed when the test ends.
func newAdapter(t *testing.T, h host.Host, open libp2padapter.Opener, opts ...libp2padapter.Option) *libp2padapter.Adapter {
	t.Helper()
	a, err := libp2padapter.New(h, open, append([]libp2padapter.Option{libp2padapter.WithLoopback()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := a.Close(); err != nil {
			t.Errorf("closing the adapter: %v", err)
		}
	})
	return a
}

// subscribe returns the events of a's namespace ns, as a Connector would
// see them.
func subscribe(t *testing.T, ctx context.Context, a *libp2padapter.Adapter, ns string) <-chan discovery.Event {
	t.Helper()
	events, err := a.Subscriber(ns).Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return events
}

// awaitEvent returns the first event for which match is true.
func awaitEvent(t *testing.T, ctx context.Context, events <-chan discovery.Event, what string, match func(discovery.Event) bool) discovery.Event {
	t.Helper()
	for {
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatalf("waiting for %s: event stream closed", what)
			}
			if match(e) {
				return e
			}
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		}
	}
}

func isEvent(typ discovery.EventType, id peer.ID) func(discovery.Event) bool {
	return func(e discovery.Event) bool { return e.Type == typ && e.Peer.ID == id.String() }
}

// collect reads a FindPeers channel to its end.
func collect(t *testing.T, ctx context.Context, ch <-chan peer.AddrInfo) []peer.AddrInfo {
	t.Helper()
	var out []peer.AddrInfo
	for {
		select {
		case p, ok := <-ch:
			if !ok {
				return out
			}
			out = append(out, p)
		case <-ctx.Done():
			t.Fatalf("reading FindPeers: %v", ctx.Err())
		}
	}
}

func ids(infos []peer.AddrInfo) []peer.ID {
	out := make([]peer.ID, len(infos))
	for i, p := range infos {
		out[i] = p.ID
	}
	return out
}

// connectedness returns a stream of h's connectedness changes; awaiting
// one is how tests learn that a connection was made without polling.
func connectedness(t *testing.T, h host.Host) <-chan any {
	t.Helper()
	sub, err := h.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close() })
	return sub.Out()
}

// awaitConnected waits until h is connected to p, by h's event bus.
func awaitConnected(t *testing.T, ctx context.Context, h host.Host, events <-chan any, p peer.ID) {
	t.Helper()
	if h.Network().Connectedness(p) == network.Connected {
		return
	}
	for {
		select {
		case e := <-events:
			if c := e.(event.EvtPeerConnectednessChanged); c.Peer == p && c.Connectedness == network.Connected {
				return
			}
		case <-ctx.Done():
			t.Fatalf("%s never connected to %s: %v", h.ID(), p, ctx.Err())
		}
	}
}
