package libp2padapter_test

import (
	"context"
	"testing"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/phrasemeet/discovery"
	"github.com/phrasemeet/discovery/internal/p2ptest"
)

// timeout bounds every wait in these tests (see p2ptest.Timeout).
const timeout = p2ptest.Timeout

// The shared helpers of the libp2p packages' tests (internal/p2ptest).
// safeBuffer collects logs written from many goroutines.
type safeBuffer = p2ptest.SafeBuffer

var (
	debugLogger    = p2ptest.DebugLogger
	testContext    = p2ptest.Context
	newHost        = p2ptest.NewHost
	newAdapter     = p2ptest.NewAdapter
	subscribe      = p2ptest.Subscribe
	awaitEvent     = p2ptest.AwaitEvent
	connectedness  = p2ptest.Connectedness
	awaitConnected = p2ptest.AwaitConnected
)

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
