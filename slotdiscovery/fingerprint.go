package slotdiscovery

import (
	"encoding/base32"

	"github.com/zeebo/blake3"
)

// ctxFingerprint is the BLAKE3 derive-key context of the group
// fingerprint: its own, so the fingerprint is unrelated to every key the
// group uses.
const ctxFingerprint = "phrasemeet 2026-12 slotdiscovery group fingerprint v1"

// zbase32 is z-base32's alphabet (Zooko's human-oriented base32, the one
// pkarr keys are written in): lowercase, without 0/o, l/1/i or v/2 mixed up,
// easy to read aloud.
var zbase32 = base32.NewEncoding("ybndrfg8ejkmcpqxot1uwisza345h769").WithPadding(base32.NoPadding)

// Fingerprint returns a short code for the group, such as
// "q3ne-xw8d-3kbu": three groups of four z-base32 characters, 60 bits of a
// BLAKE3 key derived from the group's key under a context of its own.
// Two people who read their fingerprints to each other learn whether
// they typed the same passphrase (and application name, and namespace):
// a typo gives another group, silently empty, and another fingerprint.
//
// It is a check against mistakes, not against an attacker who chooses a
// passphrase to match a fingerprint. It comes from the group key, not the
// passphrase, so it costs a guesser the full KDF per guess: no more than
// the slot public keys that every relay already sees. Namespaces have
// fingerprints of their own.
func (g *Group) Fingerprint() string {
	var k [8]byte
	blake3.DeriveKey(ctxFingerprint, g.key[:], k[:])
	s := zbase32.EncodeToString(k[:])[:12] // 60 of the 64 bits
	return s[0:4] + "-" + s[4:8] + "-" + s[8:12]
}
