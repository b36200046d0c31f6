package connectivity_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every test closes what it starts; goleak checks that nothing the
// Manager, the adapters or the hosts started outlives the tests.
//
// The exception is go-libp2p's own: AutoRelay.Close (v0.51.0) cancels its
// background loop and stops the relay finder, but that loop can still take
// a reachability event already queued and start the finder again, on a
// context nothing cancels. The goroutines of such a finder are ignored by
// name; any other goroutine that outlives the tests still fails them.
func TestMain(m *testing.M) {
	const rf = "github.com/libp2p/go-libp2p/p2p/host/autorelay.(*relayFinder)."
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction(rf+"background"),
		goleak.IgnoreAnyFunction(rf+"cleanupDisconnectedPeers"),
		goleak.IgnoreAnyFunction(rf+"handleNewCandidates"),
		goleak.IgnoreAnyFunction(rf+"findNodes"),
	)
}
