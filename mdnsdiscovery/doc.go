// Package mdnsdiscovery finds the members of a phrasemeet group on the
// local network over mDNS and DNS-SD, with the zeroconf stack go-libp2p
// uses (github.com/libp2p/zeroconf/v2). Its [Discoverer] implements
// [github.com/phrasemeet/discovery.Discoverer], so it runs alone or beside
// the passphrase rendezvous under discovery.Combine.
//
// # From the secret to the LAN
//
// [New] takes the group's 32-byte secret, which a program gets from
// (*slotdiscovery.Group).DeriveKey("mdnsdiscovery") after the passphrase
// went through Argon2id; this package never sees a passphrase. Two values
// are derived from the secret with BLAKE3 in derive-key mode, each under
// its own context string:
//
//   - the DNS-SD service type, "_pm-" and 12 base32 characters, then
//     "._udp" (15 characters, the most RFC 6763 §7.2 allows a service
//     name). Different secrets give different types, so groups never see
//     each other's records at all. A LAN observer learns only that some
//     group meets here; testing a passphrase guess against the name costs
//     the Argon2id run.
//   - the XChaCha20-Poly1305 key that seals records.
//
// # Records
//
// Each announced peer registers a service instance whose TXT record holds
// its discovery.Record (ID, addresses, metadata) sealed under the group
// key, base64-encoded and cut into strings of at most 255 bytes. The
// instance and host names are random and change with every registration,
// so they say nothing about the peer. Inside the seal are a version
// number and the sealing time: readers keep, per ID, the newest version
// they have seen, ignore older ones (so a replayed record never undoes an
// update or a leave), and drop records sealed further from their clock
// than the stale bound plus a skew allowance (so a captured record can be
// replayed only briefly). Anything that does not parse or open is
// dropped and counted in [Stats]; nothing from the LAN is trusted before
// it opens.
//
// Every member holds the secret, so every member can seal a record under
// any ID. Where the ID is a public key (64 hex digits, an Ed25519 key, by
// default; libp2p peer IDs too with the libp2p adapter's schemes; see
// [WithIDSchemes]), the record carries that key's signature, bound to the
// group ([WithSigner] makes it), and readers drop a record whose
// signature does not verify, counting it in [Stats]: no member can bury
// another with a forged tombstone, or redirect others with a newer
// version of its own. Under an ID that is not a key, a member still can:
// see [github.com/phrasemeet/discovery.IDScheme].
//
// A record is limited to what fits one packet of IPv6's minimum MTU with
// the rest of zeroconf's answer: about 600 bytes encoded
// ([ErrRecordTooLarge]).
//
// # Liveness
//
// An announcement seals its record afresh every re-announce period
// (default 20 s) and registers it under a new instance name, withdrawing
// the previous one. zeroconf announces every registration to the LAN, and
// its browser delivers every instance name it has not delivered before,
// so each refresh reaches every browsing peer. Browsing restarts every
// stale period with a fresh query that every live registration answers.
// A peer not heard from for the stale bound (default three re-announce
// periods) is reported Lost.
//
// Leaving (Leave, the announcement's context ending, or Close) replaces
// the record with a sealed tombstone, a newer version that readers turn
// into Lost at once, and restarts browsing so the tombstone is answered
// to everyone immediately; the tombstone stays registered for a short
// linger, then is withdrawn. zeroconf's goodbye packets (TTL 0) go out
// too, but its browser does not pass them on, and a goodbye carries no
// proof of who sent it: the sealed tombstone is what makes a leave
// prompt, and no stranger on the LAN can forge one.
//
// Updates register the new version at once, and a browse restart makes
// others hear it at once too. A Discoverer restarts browsing at most
// once a second (RFC 6762 §5.2), so these take up to a second, or the
// 0.75-1 s zeroconf's probing takes before a registration announces
// itself.
//
// # Interfaces
//
// By default every interface that is up and multicast-capable is used
// ([WithInterfaces] narrows that). New fails with [ErrNoInterface] when
// none can join the mDNS group, as in a network namespace with only
// loopback (`ip link set lo multicast on` makes loopback usable there).
package mdnsdiscovery
