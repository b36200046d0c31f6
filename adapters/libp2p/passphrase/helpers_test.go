package passphrase_test

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	relayproto "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/phrasemeet/discovery/adapters/libp2p/connectivity"
	"github.com/phrasemeet/discovery/internal/p2ptest"
)

// The helpers below are those of the libp2padapter tests that the module's
// tests need (test files cannot be shared between packages).

// timeout bounds every wait in these tests (see p2ptest.Timeout).
const timeout = p2ptest.Timeout

// The shared helpers of the libp2p packages' tests (internal/p2ptest).
var (
	testContext    = p2ptest.Context
	newHost        = p2ptest.NewHost
	connectedness  = p2ptest.Connectedness
	awaitConnected = p2ptest.AwaitConnected
)

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
