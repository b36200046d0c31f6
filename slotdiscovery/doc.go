// Package slotdiscovery is the passphrase rendezvous: programs that share
// nothing but a passphrase find each other through pkarr relays (or the
// Mainline DHT) by writing signed records under keys only they can
// derive, and reading each other's.
//
// Two profiles implement [github.com/phrasemeet/discovery.Discoverer].
//
// # The default profile
//
// [DeriveGroup] runs Argon2id once per passphrase ([DefaultKDF], RFC 9106's
// second recommendation, the application name in the salt), then derives
// everything else with BLAKE3 in derive-key mode: the Ed25519 seed of each
// slot, the key that seals entries, and sub-groups ([Group.Namespace]).
// Relays see random-looking keys and ciphertext; a guess at the passphrase
// costs an attacker the Argon2id run.
//
// A slot is one pkarr packet holding several sealed entries (TXT records
// at the apex), one per peer: its ID, addresses and metadata, the signed
// time it was written and the time it came to the slot. Slots are
// numbered without end and grouped in levels of 1, 2, 4, 8, ... slots; a
// peer claims a slot in the lowest level that has room for its entry, so
// a small group lives in slot 0 and a large one spreads over as many
// levels as it needs. There is no cap on the number of peers, and no
// live peer is ever pushed out to make room. A group that forms (peers
// that start together, before any has stood in its slot for a minute)
// spreads its first claims over levels 0-2 instead, each claimer after a
// random wait of up to half a second, since a slot takes one writer at a
// time ([WithJoinSpread]); a claimer such a slot turns away as full picks
// again among those levels, at once, rather than walking them from the
// top, where every claimer turned away would race for the same place. A
// member moves up at a republish when a shallower level has room, as any
// peer does.
//
// Relays offer no compare-and-swap, and n0's relay answers 204 to a write
// it drops, so a write is a read, a merge and a write, confirmed by
// reading the slot back after a random delay (150-800 ms; the losers of
// one race write again at their read-backs, and a narrower spread had
// them race each other again). A writer never cuts
// a live entry it has just read: when its own does not fit, it moves on
// to another slot. Each peer rewrites its entry about once a minute;
// readers judge liveness by the entry's signed time (never by DNS TTL),
// and report a peer Lost when a read of its slot shows its entry too old
// or shows its tombstone, which a leaving peer writes. Times further
// ahead than a bound are ignored: a slot whose packet is stamped so (a
// year ahead, or anywhere up to 2^64-1 µs, compared as a timestamp, never
// wrapped) can never be written again, so it is judged locked and
// abandoned, and nobody holding the passphrase can keep the group in it
// or pin entries there. No write of ours is stamped beyond the bound.
//
// Every member can write every slot, so an entry about an ID that is a
// public key (64 hex digits, an Ed25519 key such as an iroh endpoint ID,
// by default; libp2p peer IDs too where the libp2p adapter opens the
// slots; see [WithIDSchemes]) is signed with that key ([WithSigner]), the
// signature bound to the group and the slot, and readers ignore one whose
// signature does not verify. A member can then no longer hide another
// behind a forged tombstone, or send others to its own address under the
// other's ID. It can still drop the other's entry when it rewrites their
// shared slot (the owner writes it back at its next republish), and
// under an ID that is not a key it can still write anything: see
// [github.com/phrasemeet/discovery.IDScheme] for the rule and its limits.
//
// Scans read a level whole (large levels are sampled) and go deeper while
// every slot read in a level is full, or while a known peer lives deeper.
// In a group too large to re-read within the budget, a peer reports the
// members of the levels it reads whole and of a few deeper slots it
// follows, and no others: it knows part of the group, every part knows
// the shallow levels, and what it reports it can keep judging.
// Right after joining, a peer scans fast: levels 0-2 whole, its own slot
// first, and full slots it read recently skipped, since a full slot can
// take no newcomer. In a forming group it reads level 0 alone until the
// group's writes have landed: its claim's wait and a few round trips
// after it began, or one read-back delay more when its read-back found
// another peer beside it or a lost race; a claimer that found no one and
// wrote late in its wait, likely in a small group, reads its write back
// by then. It then reads the join levels at once, each slot once
// after the others' writes instead of once before them and again, on a
// spent budget, after; every pair is found by at least the peer that
// wrote last, which dials the other. A claim that reads its way (walking
// full slots) keeps the scans at level 0; one that waits seconds for a
// PUT lets them read on, and so does one that lost a write and waits for
// the read before the next, unless the join levels were read mostly full
// (a large group, whose claims need the budget the scans would spend). A discoverer's first scan, made before any
// announcement, reads level 0 alone too: a peer that subscribes and then
// announces (FindPeers, then Advertise) keeps its burst for its claim. Every
// request of every kind takes from one budget of 1.9 a second with a
// burst of 10 ([WithRequestBudget]), under pkarr-relay's single bucket,
// and PUTs from their own of one per 4.3 s after a burst of 2, under
// n0's; in steady state a peer keeps to 0.2 GETs per second and fewer
// than one PUT per minute. On that budget our own writes and the reads
// around them go first: a scan's read waits for a token without holding
// one, and a claim walking a level reads it only until it finds room. A peer that went deep while the
// levels above were full moves up when they have room again.
//
// # The can-sync profile
//
// [NewCanSync] reproduces can-sync's rendezvous on the wire: eight slots
// keyed by BLAKE3 of the passphrase, the endpoint ID in clear text, the
// same schedule and claim rule. It lets Go programs meet a can-sync group,
// and it is the baseline the simulation (internal/slotsim) and
// BENCHMARKS.md compare against. Its wire has no room for a proof, so in
// it any member can still hide or replace any other.
package slotdiscovery
