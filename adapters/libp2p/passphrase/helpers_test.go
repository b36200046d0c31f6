package passphrase_test

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
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	relayproto "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/phrasemeet/discovery/adapters/libp2p/connectivity"
)

// The helpers below are those of the libp2padapter tests that the module's
// tests need (test files cannot be shared between packages).

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

// safeBuffer collects text written from many goroutines, for tests that
// look for what must not be logged.
type safeBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *safeBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *safeBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// debugLogger logs everything, as text, into buf.
func debugLogger(buf *safeBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// loopbackTCPQUIC listens on loopback only, TCP and QUIC.
var loopbackTCPQUIC = connectivity.WithListenAddrs(
	ma.StringCast("/ip4/127.0.0.1/tcp/0"), ma.StringCast("/ip4/127.0.0.1/udp/0/quic-v1"))

// waitFor polls cond until it holds or ctx ends.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not within %v", what, timeout)
		case <-tick.C:
		}
	}
}

// servesRelay reports whether h serves circuit relay v2: go-libp2p starts
// the relay service only once the host takes itself to be public.
func servesRelay(h host.Host) bool {
	return slices.Contains(h.Mux().Protocols(), relayproto.ProtoIDv2Hop)
}

// dialThrough dials p through relay r from h until it works (p's
// reservation may not exist yet) or ctx ends, clearing h's dial backoff
// between tries.
func dialThrough(t *testing.T, ctx context.Context, h, r host.Host, p peer.ID) error {
	t.Helper()
	circuit := r.Addrs()[0].Encapsulate(ma.StringCast("/p2p/" + r.ID().String() + "/p2p-circuit/p2p/" + p.String()))
	var err error
	for ctx.Err() == nil {
		try, cancel := context.WithTimeout(ctx, 3*time.Second)
		err = h.Connect(try, peer.AddrInfo{ID: p, Addrs: []ma.Multiaddr{circuit}})
		cancel()
		if err == nil {
			return nil
		}
		if sw, ok := h.Network().(*swarm.Swarm); ok {
			sw.Backoff().Clear(p)
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	return err
}
