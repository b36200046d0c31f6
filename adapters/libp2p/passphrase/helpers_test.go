package passphrase_test

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/phrasemeet/discovery/adapters/libp2p/connectivity"
	"github.com/phrasemeet/discovery/internal/p2ptest"
)

// The helpers below are those of the libp2padapter tests that the module's
// tests need (test files cannot be shared between packages).

// timeout bounds every wait in these tests (see p2ptest.Timeout).
const timeout = p2ptest.Timeout

// The shared helpers of the libp2p packages' tests (internal/p2ptest).
// safeBuffer collects logs written from many goroutines.
type safeBuffer = p2ptest.SafeBuffer

var (
	waitFor        = p2ptest.WaitFor
	servesRelay    = p2ptest.ServesRelay
	debugLogger    = p2ptest.DebugLogger
	testContext    = p2ptest.Context
	newHost        = p2ptest.NewHost
	connectedness  = p2ptest.Connectedness
	awaitConnected = p2ptest.AwaitConnected
)

// loopbackTCPQUIC listens on loopback only, TCP and QUIC.
var loopbackTCPQUIC = connectivity.WithListenAddrs(
	ma.StringCast("/ip4/127.0.0.1/tcp/0"), ma.StringCast("/ip4/127.0.0.1/udp/0/quic-v1"))

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
