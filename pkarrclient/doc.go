// Package pkarrclient implements pkarr (Public-Key Addressable Resource Records):
// DNS records signed with an Ed25519 key and published under that key on HTTP
// relays and on the BitTorrent Mainline DHT.
//
// The package has three layers, each usable on its own:
//
//   - Keys and encodings: [PublicKey], [SecretKey] and the z-base32 text form
//     used by pkarr ([EncodeZBase32], [DecodeZBase32], [ParsePublicKey]).
//   - Signed packets: [SignedPacket] is the pkarr wire format, byte-compatible
//     with pkarr 7 and iroh. Build one with [NewBuilder]; decode untrusted bytes
//     with [ParseSignedPacket] or [ParseRelayPayload], which always verify the
//     signature before returning anything.
//   - Transport: [Relay] speaks the pkarr relay HTTP API, [DHT] stores and
//     finds packets as BEP44 mutable items on the Mainline DHT (as a passive
//     client or a full node), and [Client] publishes to and resolves from
//     several [Backend]s at once, verifying every answer and caching with
//     pkarr's TTL rules.
//
// The subpackage dhttest runs private DHT networks on 127.0.0.1 for tests.
//
// Nothing in this package imports libp2p; it depends only on the standard
// library, miekg/dns, filippo.io/edwards25519, golang-lru, clockwork,
// x/time/rate and anacrolix/dht.
package pkarrclient
