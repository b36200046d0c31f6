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
//   - Transport: [Relay] speaks the pkarr relay HTTP API, and [Client]
//     publishes to and resolves from several [Backend]s at once, verifying
//     every answer and caching with pkarr's TTL rules.
//
// The Mainline DHT backend is the subpackage mainline (mainline.New
// returns a Backend that stores packets as BEP44 mutable items), kept
// apart so that a program that uses only relays does not link the DHT
// library; mainline/mainlinetest runs private DHT networks on 127.0.0.1
// for tests.
//
// Nothing in this package imports libp2p or a DHT library; it depends only
// on the standard library, miekg/dns, filippo.io/edwards25519, golang-lru,
// clockwork and x/time/rate.
package pkarrclient
