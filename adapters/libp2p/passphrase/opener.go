// Package passphrase is the passphrase rendezvous for go-libp2p: a
// [libp2padapter.Opener] over pkarr relays ([SlotOpener]) and an fx
// module that wires it, the adapter and the host's connectivity into an
// application in one line ([Module], [ProvideHost]).
//
// It is apart from [libp2padapter] so that the generic adapter, which
// takes any [discovery.Discoverer], links go-libp2p and the root package
// only: the key derivation (Argon2id, BLAKE3), the pkarr client and the
// slot discoverer come in with this package. fx comes with go-libp2p
// either way (it builds every host as an fx app), so the module and the
// opener share one package rather than splitting a dependency that is
// not there.
package passphrase

import (
	"fmt"

	"github.com/libp2p/go-libp2p/core/host"

	"github.com/phrasemeet/discovery"
	libp2padapter "github.com/phrasemeet/discovery/adapters/libp2p"
	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/slotdiscovery"
)

// SlotOpener opens each namespace as the passphrase rendezvous of its own
// sub-group, group.Namespace(ns), over client's relays. Namespaces share
// nothing on the wire: their slot keys are unrelated, so relays cannot tell
// two namespaces of one group apart from two groups. Each open namespace
// scans its slots on its own schedule and rate budget, so an application
// with many pubsub topics makes as many times the requests; opts apply to
// every namespace.
//
// Entries about peer IDs are signed with h's identity key, and entries
// about peer IDs (or Ed25519 keys in hex) without a valid signature are
// ignored: the discoverers get slotdiscovery.WithIDSchemes(
// libp2padapter.IDSchemes()...) and WithSigner(libp2padapter.HostSigner(h))
// before opts, which may replace them. So a member who knows the
// passphrase cannot hide h, or send others to its own address under h's
// ID. h must be the host whose ID the Adapter announces.
//
// The client is shared and stays the caller's; the discoverers are the
// Adapter's.
func SlotOpener(h host.Host, client *pkarrclient.Client, group *slotdiscovery.Group, opts ...slotdiscovery.Option) libp2padapter.Opener {
	return func(ns string) (discovery.Discoverer, error) {
		if h == nil || client == nil || group == nil {
			return nil, fmt.Errorf("%w: nil host, pkarr client or group", libp2padapter.ErrInvalidOption)
		}
		all := append([]slotdiscovery.Option{
			slotdiscovery.WithIDSchemes(libp2padapter.IDSchemes()...),
			slotdiscovery.WithSigner(libp2padapter.HostSigner(h)),
		}, opts...)
		return slotdiscovery.New(client, group.Namespace(ns), all...)
	}
}
