package slotdiscovery

import (
	"bytes"
	"errors"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// TestSealNeverReusesANonce: every seal draws a fresh nonce, so the same
// entry sealed again, for the same slot, never repeats the nonce (which
// under one key would give away the XOR of the two plaintexts and the
// Poly1305 key). Each sealing still opens to the entry.
func TestSealNeverReusesANonce(t *testing.T) {
	g := fuzzGroup(t, fuzzPassphrase)
	slot := g.SlotKey(2).PublicKey()
	e := fuzzEntries()[1]
	const n = 200
	nonces := map[string]bool{}
	for i := range n {
		sealed, err := g.seal(&e, slot)
		if err != nil {
			t.Fatal(err)
		}
		nonce := string(sealed[:chacha20poly1305.NonceSize])
		if nonces[nonce] {
			t.Fatalf("seal %d reused the nonce %x", i, nonce)
		}
		nonces[nonce] = true
		if nonce == string(make([]byte, chacha20poly1305.NonceSize)) {
			t.Fatalf("seal %d used the all-zero nonce", i)
		}
		got, err := g.open(sealed, slot)
		if err != nil || !entriesEqual(got, e) {
			t.Fatalf("seal %d opens as %+v, %v", i, got, err)
		}
	}
}

// TestSealLayout: the sealed bytes are the nonce, then the ciphertext with
// its tag; the nonce is the one given, and another nonce in front of the
// same ciphertext does not open.
func TestSealLayout(t *testing.T) {
	g := fuzzGroup(t, fuzzPassphrase)
	slot := g.SlotKey(0).PublicKey()
	e := fuzzEntries()[0]
	plain, err := e.marshal()
	if err != nil {
		t.Fatal(err)
	}
	nonce := [chacha20poly1305.NonceSize]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	sealed, err := g.sealNonce(&e, slot, nonce)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sealed[:len(nonce)], nonce[:]) {
		t.Fatalf("sealed starts %x, want the nonce %x", sealed[:len(nonce)], nonce)
	}
	if len(sealed) != len(plain)+sealOverhead {
		t.Fatalf("sealed is %d bytes, want %d plaintext + %d", len(sealed), len(plain), sealOverhead)
	}
	other := bytes.Clone(sealed)
	other[0] ^= 1
	if _, err := g.open(other, slot); !errors.Is(err, errEntry) {
		t.Fatalf("a changed nonce opened: %v", err)
	}
	// One byte short of a nonce and a tag is refused before decryption;
	// exactly that much is an empty ciphertext, which fails to open.
	for _, n := range []int{0, sealOverhead - 1, sealOverhead} {
		if _, err := g.open(sealed[:n], slot); !errors.Is(err, errEntry) {
			t.Errorf("%d sealed bytes: %v, want errEntry", n, err)
		}
	}
	// The entry is bound to its slot and its group.
	if _, err := g.open(sealed, g.SlotKey(1).PublicKey()); !errors.Is(err, errEntry) {
		t.Errorf("opened in another slot: %v", err)
	}
	if _, err := fuzzGroup(t, fuzzOtherPassphrase).open(sealed, slot); !errors.Is(err, errEntry) {
		t.Errorf("opened by another group: %v", err)
	}
}
