// Package libp2padapter plugs phrasemeet discovery into go-libp2p: programs
// that share only a passphrase find each other through pkarr relays, and
// go-libp2p sees a standard discovery service.
//
// The package has two parts, each usable alone. It links go-libp2p, the
// root package and a clock, nothing else: the passphrase rendezvous (the
// key derivation, pkarr) and the fx module are in the sub-package
// [github.com/phrasemeet/discovery/adapters/libp2p/passphrase].
//
//   - [Adapter] implements go-libp2p's core/discovery.Discovery over any
//     [github.com/phrasemeet/discovery.Discoverer]. Each libp2p namespace
//     (pubsub's "floodsub:<topic>" included) gets a discoverer of its own,
//     opened on first use through an [Opener]: passphrase.SlotOpener for
//     the passphrase rendezvous, [MemoryOpener] for tests and examples. It
//     works with pubsub.WithDiscovery, backoff.NewBackoffDiscovery and
//     backoff.NewBackoffConnector.
//   - [Connector] dials the peers a discoverer finds, with per-peer
//     exponential backoff, and reports each success and failure.
//
// What a host needs to reach members behind NATs (relays, hole punching,
// the group's own relay) is the sub-package
// [github.com/phrasemeet/discovery/adapters/libp2p/connectivity]: it needs
// no rendezvous, and this package does not import it. An [Adapter] is
// what its Manager takes as the group's members (connectivity.Members).
//
// passphrase.Module wires them into an fx application (one line plus a
// passphrase.Config); passphrase.ProvideHost builds its host.
//
// # Following one record
//
// With passphrase.SlotOpener, the passphrase becomes a slotdiscovery.Group
// (Argon2id, once); each namespace becomes a sub-group
// (slotdiscovery.Group.Namespace) and a slot discoverer over it.
// [Adapter.Advertise] announces the host's record there: the peer ID as
// the record's ID, the host's multiaddrs (filtered, see [WithLoopback] and
// [WithAddrFilter]) as its Addrs, signed with the host's identity key ([PeerIDScheme]: no other member of the group can announce
// the host's peer ID). A host on loopback only, without [WithLoopback],
// has nothing to publish and Advertise fails with [ErrNoAddrs]; a host
// whose addresses may still come (a relay reservation) is advertised and
// its record follows its addresses. Other adapters in the
// namespace receive it as a Found event, keep it in a per-namespace cache,
// and hand it to libp2p as a peer.AddrInfo from FindPeers.
//
// # Where the semantics differ from go-libp2p's
//
// go-libp2p's Advertise is one-shot: the record lives for the returned TTL
// and callers must repeat the call (p2p/discovery/util.Advertise does, at
// 7/8 of the TTL). Here a record lives until the context given to Advertise
// ends, the adapter closes, or — for a repeated call — until every context
// it was advertised with has ended. Repeating the call is harmless and
// cheap, so the usual helpers work unchanged; forgetting to repeat it no
// longer makes a peer vanish.
//
// FindPeers never touches the network: each namespace's discoverer keeps a
// subscription open, and FindPeers answers from what it has reported. That
// matters because pubsub asks about once a second per topic. On a
// namespace where nobody is known yet, FindPeers keeps its channel open for
// a short while ([WithFindWait]) so that the first call, which opens the
// namespace, can return the peers its first scan finds.
//
// # Ownership
//
// The Adapter owns the discoverers its Opener returns. It closes one when
// its namespace has gone unused (no advertisement, no FindPeers waiting,
// no subscription open) for a grace ([WithIdleGrace]), so topics an
// application left stop scanning, and the rest on [Adapter.Close]; a
// closed namespace opens again on its next use. The pkarr client and group
// given to passphrase.SlotOpener stay the caller's. A [Connector] owns nothing but its goroutines: closing it
// neither closes its source nor disconnects anyone.
//
// # With go-libp2p's helpers
//
//   - pubsub.WithDiscovery(adapter): pubsub advertises "floodsub:<topic>"
//     for as long as it is subscribed and polls FindPeers; both are cheap.
//     Publishing before pubsub has opened its own stream to a peer loses
//     the message for that peer, even with pubsub.WithFloodPublish.
//   - backoff.NewBackoffDiscovery(adapter, ...): pass discovery.Limit(n)
//     to FindPeers, or a live query returns no peer at all (only later,
//     cached answers do). The adapter already caches, so the wrapper adds
//     little.
//   - backoff.NewBackoffConnector and [Connector] both dial what is found;
//     the Connector follows Found, Updated and Lost events instead of
//     polling, and lets the lower of two peer IDs dial first
//     ([ConnectYieldDelay]), since two hosts dialing each other at the same
//     instant over TCP can fail both dials.
package libp2padapter
