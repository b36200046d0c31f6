// Package p2ptest holds the helpers the libp2p adapter's packages test
// with: real hosts on loopback, adapters over them, and waits on their
// events. It is for tests only.
package p2ptest

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	relayproto "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"

	"github.com/phrasemeet/discovery"
	libp2padapter "github.com/phrasemeet/discovery/adapters/libp2p"
)

// Timeout bounds every wait in these tests. It is generous: the machines
// running them are small and shared, and -race slows libp2p down a lot.
const Timeout = 20 * time.Second

// Context returns a context that ends after Timeout or with the test.
func Context(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), Timeout)
	t.Cleanup(cancel)
	return ctx
}

// NewHost starts a real libp2p host listening on loopback TCP only, with
// no relay, and closes it when the test ends; opts come after those.
func NewHost(t testing.TB, opts ...libp2p.Option) host.Host {
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

// NewAdapter returns an adapter for h that publishes loopback addresses
// (every host here is on loopback), closed when the test ends.
func NewAdapter(t testing.TB, h host.Host, open libp2padapter.Opener, opts ...libp2padapter.Option) *libp2padapter.Adapter {
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

// Subscribe returns the events of a's namespace ns, as a Connector would
// see them.
func Subscribe(t testing.TB, ctx context.Context, a *libp2padapter.Adapter, ns string) <-chan discovery.Event {
	t.Helper()
	events, err := a.Subscriber(ns).Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return events
}

// AwaitEvent returns the first event for which match is true.
func AwaitEvent(t testing.TB, ctx context.Context, events <-chan discovery.Event, what string, match func(discovery.Event) bool) discovery.Event {
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

// Connectedness returns a stream of h's connectedness changes; awaiting
// one is how tests learn that a connection was made without polling.
func Connectedness(t testing.TB, h host.Host) <-chan any {
	t.Helper()
	sub, err := h.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close() })
	return sub.Out()
}

// AwaitConnected waits until h is connected to p, by h's event bus
// (events from Connectedness).
func AwaitConnected(t testing.TB, ctx context.Context, h host.Host, events <-chan any, p peer.ID) {
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

// WaitFor polls cond until it holds, or fails the test when ctx ends.
func WaitFor(t testing.TB, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not within %v", what, Timeout)
		case <-tick.C:
		}
	}
}

// ServesRelay reports whether h serves circuit relay v2: go-libp2p starts
// the relay service only once the host takes itself to be public.
func ServesRelay(h host.Host) bool {
	return slices.Contains(h.Mux().Protocols(), relayproto.ProtoIDv2Hop)
}

// SafeBuffer collects text written from many goroutines, for tests that
// look for what must not be logged.
type SafeBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *SafeBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *SafeBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// DebugLogger logs everything, as text, into buf.
func DebugLogger(buf *SafeBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
