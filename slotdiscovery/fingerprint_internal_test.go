package slotdiscovery

import (
	"encoding/hex"
	"testing"
)

// TestFingerprintFromGroupKey: the fingerprint is a function of the group
// key alone (the vector's root key gives the known answer without the
// passphrase or the KDF), so nothing cheaper than the KDF links it to a
// passphrase. The value was checked with another BLAKE3 implementation
// (lukechampine.com/blake3) and z-base32 written out by hand.
func TestFingerprintFromGroupKey(t *testing.T) {
	root, err := hex.DecodeString("7d0691092eb996d64458d034e9f25867a7e1c32eecd4ad33e70271e3856c4f8d")
	if err != nil {
		t.Fatal(err)
	}
	g, err := newGroup(root)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := g.Fingerprint(), "kx6i-kdfj-6r4c"; got != want {
		t.Fatalf("Fingerprint() of the vector's root key = %q, want %q", got, want)
	}
}
