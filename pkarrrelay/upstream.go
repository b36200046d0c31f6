package pkarrrelay

import (
	"context"

	"github.com/phrasemeet/discovery/pkarrclient"
)

// Upstream is where a relay forwards what its own store cannot settle: in
// pkarr's relay, the Mainline DHT. It is optional; without one the relay is a
// plain store.
//
// The Handler calls Publish after its store accepted a PUT (as new or as an
// identical republish, which is how clients keep DHT items alive), and
// Resolve when a GET finds nothing in the store; a resolved packet is
// checked like a PUT and then cached in the store. Both run within the
// request, under its context, so they should return within a few seconds.
type Upstream interface {
	// Publish forwards a verified packet. An error matching
	// pkarrclient.ErrNotMostRecent means the upstream holds a newer
	// packet (the relay answers 409); any other error gives 502.
	Publish(ctx context.Context, p *pkarrclient.SignedPacket) error
	// Resolve looks up key. It returns an error matching
	// pkarrclient.ErrNotFound (this package's ErrNotFound does) when the
	// upstream has nothing; any other error gives 502. The relay re-checks
	// that the packet is signed by key.
	Resolve(ctx context.Context, key pkarrclient.PublicKey) (*pkarrclient.SignedPacket, error)
}
