package connectivity_test

import (
	libp2padapter "github.com/phrasemeet/discovery/adapters/libp2p"
	"github.com/phrasemeet/discovery/adapters/libp2p/connectivity"
	"github.com/phrasemeet/discovery/internal/p2ptest"
)

// A libp2padapter.Adapter is what passphrase.Module attaches.
var _ connectivity.Members = (*libp2padapter.Adapter)(nil)

// timeout bounds every wait in these tests (see p2ptest.Timeout).
const timeout = p2ptest.Timeout

// The shared helpers of the libp2p packages' tests (internal/p2ptest).
var (
	testContext = p2ptest.Context
	newHost     = p2ptest.NewHost
	newAdapter  = p2ptest.NewAdapter
	subscribe   = p2ptest.Subscribe
	awaitEvent  = p2ptest.AwaitEvent
	waitFor     = p2ptest.WaitFor
	servesRelay = p2ptest.ServesRelay
)
