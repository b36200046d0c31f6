// Package connectivity gives a go-libp2p host what it takes to reach the
// members of a phrasemeet group behind NATs: TCP and QUIC, AutoNAT v2,
// hole punching (DCUtR), AutoRelay over static circuit relays and the
// group's own, and a circuit relay for the group's members while the
// host is publicly reachable.
//
// A [Manager] is built before the host (its [Manager.Options] are the
// host's options) and learns the group's members afterwards, from the
// discovery built on the host: [Manager.Attach] takes any [Members], such
// as a libp2padapter.Adapter.
//
//	m, err := connectivity.New(connectivity.WithCircuitRelays(relays...))
//	h, err := libp2p.New(m.Options()...)
//	a, err := libp2padapter.New(h, opener)
//	m.Attach(a)
//
// The package needs no rendezvous: it links go-libp2p (and the fx
// go-libp2p builds hosts with) and a clock only. The generic adapter
// (package libp2padapter) does not import it, and passphrase.Module wires
// the two together.
package connectivity
