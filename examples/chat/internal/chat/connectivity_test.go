package chat_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	relayproto "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	"go.uber.org/fx"

	"github.com/phrasemeet/discovery"
	libp2padapter "github.com/phrasemeet/discovery/adapters/libp2p"
	"github.com/phrasemeet/discovery/adapters/libp2p/connectivity"
)

// The chat's host is built with a connectivity.Manager and the room
// as its members: a chat taken to be public serves the room's relay
// (unless NoGroupRelay) and admits the room's members to it; a chat on a
// private address knows at once that it is private.
func TestRoomRelay(t *testing.T) {
	m := discovery.NewMemory()
	swap := fx.Replace(libp2padapter.MemoryOpener(m))
	var aliceConn, bobConn, carolConn *connectivity.Manager
	pub := testConfig("alice")
	pub.Reachability = connectivity.ReachabilityPublic
	alice := start(t, pub, swap, fx.Populate(&aliceConn))
	bob := start(t, testConfig("bob"), swap, fx.Populate(&bobConn))
	quiet := testConfig("carol")
	quiet.Reachability = connectivity.ReachabilityPublic
	quiet.NoGroupRelay = true
	carol := start(t, quiet, swap, fx.Populate(&carolConn))
	meet(t, alice, bob, carol)

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	hop := func(r *running) bool { return slices.Contains(r.host.Mux().Protocols(), relayproto.ProtoIDv2Hop) }
	for !hop(alice) || !aliceConn.AllowReserve(bob.host.ID(), nil) || bobConn.CurrentReachability() != network.ReachabilityPrivate {
		select {
		case <-ctx.Done():
			t.Fatalf("alice serves a relay: %v, admits bob: %v; bob's reachability: %v",
				hop(alice), aliceConn.AllowReserve(bob.host.ID(), nil), bobConn.CurrentReachability())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if hop(carol) {
		t.Error("carol serves a relay despite NoGroupRelay")
	}
	if got := carolConn.CurrentReachability(); got != network.ReachabilityPublic {
		t.Errorf("carol's reachability: %v, want public", got)
	}
}
