package slotdiscovery

import (
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/zeebo/blake3"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/phrasemeet/discovery/pkarrclient"
)

// The rules of keys.go, one at a time. The known-answer vector
// (vector_internal_test.go) pins the default profile's outputs; these pin
// the steps in between and the checks on the inputs, so a change says
// which step moved.

// TestCheckPassphraseBounds: at least MinPassphraseLen characters (runes,
// not bytes) and 6 distinct ones; empty and invalid UTF-8 refused.
func TestCheckPassphraseBounds(t *testing.T) {
	for _, c := range []struct {
		name string
		p    string
		want error
	}{
		{"empty", "", ErrEmptyPassphrase},
		{"one short", "abcdefabcde", ErrWeakPassphrase},                      // 11
		{"exactly the minimum", "abcdefabcdef", nil},                         // 12, 6 distinct
		{"12 runes of 2 bytes", "ééééééabcdef", nil},                         // 12 runes, 18 bytes
		{"11 runes in 22 bytes", strings.Repeat("é", 11), ErrWeakPassphrase}, // long in bytes, short in runes
		{"5 distinct", "abcdeabcdeabcde", ErrWeakPassphrase},
		{"6 distinct", "abcdefabcdefabcdef", nil},
		{"invalid UTF-8", "abcdefghijk\xff", ErrWeakPassphrase},
	} {
		err := CheckPassphrase([]byte(c.p))
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: CheckPassphrase(%q) = %v, want %v", c.name, c.p, err, c.want)
		}
		if err != nil && c.p != "" && strings.Contains(err.Error(), c.p) {
			t.Errorf("%s: the error repeats the passphrase: %v", c.name, err)
		}
	}
}

// TestDeriveGroupParams: the smallest valid Argon2id parameters pass, one
// less of any fails; the passphrase rule and the app name are enforced.
func TestDeriveGroupParams(t *testing.T) {
	const p = "correct horse battery staple"
	for _, c := range []struct {
		name string
		kdf  KDFParams
		ok   bool
	}{
		{"smallest", KDFParams{Time: 1, MemoryKiB: 8, Threads: 1}, true},
		{"no passes", KDFParams{Time: 0, MemoryKiB: 8, Threads: 1}, false},
		{"no threads", KDFParams{Time: 1, MemoryKiB: 8, Threads: 0}, false},
		{"7 KiB for one thread", KDFParams{Time: 1, MemoryKiB: 7, Threads: 1}, false},
		{"16 KiB for two threads", KDFParams{Time: 1, MemoryKiB: 16, Threads: 2}, true},
		{"15 KiB for two threads", KDFParams{Time: 1, MemoryKiB: 15, Threads: 2}, false},
	} {
		_, err := DeriveGroup([]byte(p), WithKDF(c.kdf))
		if (err == nil) != c.ok {
			t.Errorf("%s: DeriveGroup with %+v: %v, want ok=%v", c.name, c.kdf, err, c.ok)
		}
	}
	if _, err := DeriveGroup([]byte("short"), WithKDF(fuzzKDF)); !errors.Is(err, ErrWeakPassphrase) {
		t.Errorf("a weak passphrase: %v, want ErrWeakPassphrase", err)
	}
	if _, err := DeriveGroup([]byte(p), WithKDF(fuzzKDF), WithApp("")); err == nil {
		t.Error("an empty app name was accepted")
	}
}

// TestDerivationSteps pins each step from the passphrase to the keys for a
// non-default app and cheap KDF: the salt's layout (prefix, decimal length,
// colon, name), each BLAKE3 context and its input, the slot index's
// encoding. The vector covers the default profile's values; this names
// the step that changed.
func TestDerivationSteps(t *testing.T) {
	const p = "correct horse battery staple"
	kdf := KDFParams{Time: 1, MemoryKiB: 64, Threads: 2}
	g, err := DeriveGroup([]byte(p), WithKDF(kdf), WithApp("chat-app"))
	if err != nil {
		t.Fatal(err)
	}
	root := argon2.IDKey([]byte(p), []byte("phrasemeet/slotdiscovery/v1/app=8:chat-app"), 1, 64, 2, 32)
	if string(g.key[:]) != string(root) {
		t.Fatal("the root key is not Argon2id(passphrase, \"phrasemeet/slotdiscovery/v1/app=<len>:<app>\")")
	}
	derive := func(ctx string, material ...[]byte) [32]byte {
		var out [32]byte
		h := blake3.NewDeriveKey(ctx)
		for _, m := range material {
			h.Write(m)
		}
		h.Digest().Read(out[:])
		return out
	}
	if g.entryKey != derive("phrasemeet 2026-11 slotdiscovery entry key v1", root) {
		t.Error("entry key: not BLAKE3-derive(\"... entry key v1\", root)")
	}
	if g.binding != derive("phrasemeet 2026-12 slotdiscovery entry proof binding v1", root) {
		t.Error("binding: not BLAKE3-derive(\"... entry proof binding v1\", root)")
	}
	if g.DeriveKey("mdnsdiscovery") != derive("phrasemeet 2026-11 slotdiscovery purpose key v1", root, []byte("mdnsdiscovery")) {
		t.Error("purpose key: not BLAKE3-derive(\"... purpose key v1\", root | purpose)")
	}
	ns := g.Namespace("room")
	if ns.key != derive("phrasemeet 2026-11 slotdiscovery namespace v1", root, []byte("room")) {
		t.Error("namespace: not BLAKE3-derive(\"... namespace v1\", root | name)")
	}
	for _, i := range []int{0, 1, 255, 256, 1 << 20} {
		var idx [8]byte
		binary.LittleEndian.PutUint64(idx[:], uint64(i))
		seed := derive("phrasemeet 2026-11 slotdiscovery slot seed v1", root, idx[:])
		want, err := pkarrclient.SecretKeyFromSeed(seed[:])
		if err != nil {
			t.Fatal(err)
		}
		if g.SlotKey(i).PublicKey() != want.PublicKey() {
			t.Errorf("slot %d: not the key of BLAKE3-derive(\"... slot seed v1\", root | u64le(i))", i)
		}
	}
	slot := g.SlotKey(3).PublicKey()
	k := derive("phrasemeet 2026-12 slotdiscovery slot entry key v1", g.entryKey[:], slot[:])
	e := entry{kind: kindLive, time: fuzzNow, since: fuzzNow, rec: fuzzEntries()[1].rec}
	var nonce [12]byte
	sealed, err := g.sealNonce(&e, slot, nonce)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := e.marshal()
	if err != nil {
		t.Fatal(err)
	}
	aead := mustChaCha(t, k[:])
	want := aead.Seal(nonce[:], nonce[:], plain, append([]byte("phrasemeet slotdiscovery entry v1\x00"), slot[:]...))
	if string(sealed) != string(want) {
		t.Error("sealing: not nonce | ChaCha20-Poly1305(BLAKE3-derive(\"... slot entry key v1\", entry key | slot), aad = prefix | slot)")
	}
}

// TestSlotKeys: slot keys are distinct per index, the same on every call
// and across groups derived alike, and a negative index panics rather than
// wrapping to a huge one.
func TestSlotKeys(t *testing.T) {
	g := fuzzGroup(t, fuzzPassphrase)
	seen := map[pkarrclient.PublicKey]int{}
	for i := range 64 {
		k := g.SlotKey(i).PublicKey()
		if j, dup := seen[k]; dup {
			t.Fatalf("slots %d and %d share a key", j, i)
		}
		seen[k] = i
		if g.SlotKey(i) != g.SlotKey(i) {
			t.Fatalf("slot %d's key is derived again, not kept", i)
		}
	}
	if fuzzGroup(t, fuzzPassphrase).SlotKey(5).PublicKey() != g.SlotKey(5).PublicKey() {
		t.Error("two groups from the same passphrase disagree on slot 5")
	}
	if fuzzGroup(t, fuzzOtherPassphrase).SlotKey(5).PublicKey() == g.SlotKey(5).PublicKey() {
		t.Error("two passphrases share slot 5's key")
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("SlotKey(-1) did not panic")
			}
		}()
		g.SlotKey(-1)
	}()
}

func mustChaCha(t *testing.T, key []byte) cipher.AEAD {
	t.Helper()
	aead, err := chacha20poly1305.New(key)
	if err != nil {
		t.Fatal(err)
	}
	return aead
}
