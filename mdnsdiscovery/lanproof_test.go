package mdnsdiscovery_test

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"testing"
	"time"

	"github.com/phrasemeet/discovery"
	"github.com/phrasemeet/discovery/mdnsdiscovery"
)

// TestSignedOnTheLAN: two members whose IDs are Ed25519 keys, each
// signing with its own, find each other over real mDNS, and a leave (a
// signed tombstone) is heard at once, well before the stale bound.
func TestSignedOnTheLAN(t *testing.T) {
	secret := newSecret(t)
	key := func(seed byte) (ed25519.PrivateKey, string) {
		priv := ed25519.NewKeyFromSeed(append(make([]byte, ed25519.SeedSize-1), seed))
		return priv, hex.EncodeToString(priv.Public().(ed25519.PublicKey))
	}
	aPriv, aID := key(1)
	bPriv, bID := key(2)
	// A stale bound far longer than the test: a Lost can only come from
	// the tombstone.
	slow := []mdnsdiscovery.Option{mdnsdiscovery.WithRepublishInterval(1500 * time.Millisecond), mdnsdiscovery.WithStaleAfter(time.Minute)}
	a := newOrSkip(t, secret, append(slow, mdnsdiscovery.WithSigner(discovery.Ed25519Signer(aPriv)))...)
	defer a.Close(context.Background())
	b := newOrSkip(t, secret, append(slow, mdnsdiscovery.WithSigner(discovery.Ed25519Signer(bPriv)))...)
	defer b.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	events, err := a.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Announce(ctx, discovery.Record{ID: aID}); err != nil {
		t.Fatal(err)
	}
	ann, err := b.Announce(ctx, discovery.Record{ID: bID, Addrs: []string{"/ip4/192.0.2.2/udp/1"}})
	if err != nil {
		t.Fatal(err)
	}
	await(t, events, 20*time.Second, "A finds B", is(discovery.Found, bID))
	ann.Leave(ctx)
	await(t, events, 10*time.Second, "A hears B leave", is(discovery.Lost, bID))
	if st := a.Stats(); st.Unproven != 0 {
		t.Errorf("A dropped %d of B's records as unproven", st.Unproven)
	}
}
