// Package chat is the terminal chat of examples/chat, split from its main
// package so that tests can build the same application in process and swap
// its parts.
//
// The application is an fx graph of small components, each a provider
// with lifecycle hooks, in the order a message's path needs them:
//
//   - the configuration ([Config], [IO]) and the group's keys: the
//     passphrase goes through Argon2id once (*slotdiscovery.Group); the
//     room's pubsub topic is derived from the keys ([TopicName]), so it
//     names the group without revealing the passphrase;
//   - the pkarr client over the relays, with an optional relay run in this
//     process for several chats on one machine ([LocalRelay]);
//   - the discoverer, as a libp2padapter.Opener: the passphrase slot
//     rendezvous, mDNS, or both ([Slots] remembers each namespace's slot
//     discoverer, to report the slot it holds);
//   - the [HolePunches] hook, built before the host so that the host's
//     hole-punching service can report to it (the host constructor passes
//     it on with connectivity.WithHolePunchTracer);
//   - the libp2p host (closed on stop) and the libp2padapter.Adapter that
//     turns the opener into go-libp2p's discovery service;
//   - floodsub (every member forwards to every member it knows: no mesh
//     to wait for, so a line typed right after someone arrives reaches
//     them, also through another member);
//   - the [Monitor] (discovery and link status lines: each member's link
//     as direct, relayed or not connected, told once per change, and an
//     unreachable member once, with the reason, however often it is
//     redialed), the [Room] (topic, subscription, members, and its own
//     path to members reached only through a limited relay, which pubsub
//     does not use) and the line-mode [UI];
//   - a libp2padapter.Connector that announces this peer in the room's
//     namespace ("floodsub:" + topic, as pubsub.WithDiscovery would) and
//     dials every member found there, the lower peer ID first; pubsub
//     finds the room's members among those connections. It reads
//     discovery through [Farewells], which hides a member that said
//     goodbye until it is listed with a new session, so no redial goes
//     to someone who left on purpose. (Given the
//     adapter itself, pubsub's own dialer has both ends of a pair dial at
//     once, which over TCP can fail both dials for minutes.) Its redials
//     are timed by the graph's clockwork.Clock, which tests decorate with
//     a fake one.
//
// Tests replace the discoverer through fx: fx.Replace(libp2padapter.
// MemoryOpener(m)) for the in-memory rendezvous, or fx.Decorate with
// [MDNSOpener] for the LAN; fx.Replace of the host.Host for a host of
// their own (behind a connection gater, say).
package chat
