package slotdiscovery

import (
	"bytes"
	"errors"
	"testing"
	"testing/synctest"

	"github.com/phrasemeet/discovery"
)

// TestAnnounceSizeBoundWithAProof: a record whose ID is a key is accepted
// while its entry, proof and the proof's slack included, is at most
// maxEntryPlain bytes: exactly that is accepted, a byte more refused.
func TestAnnounceSizeBoundWithAProof(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarness(t, WithSigner(discovery.Ed25519Signer(fuzzKey)))
		last := -1
		for n := 0; n < maxEntryPlain; n++ {
			rec := discovery.Record{ID: fuzzHexID, Meta: bytes.Repeat([]byte{'m'}, n)}
			err := h.d.checkRecord(rec)
			if err == nil {
				last = n
				continue
			}
			if !errors.Is(err, ErrRecordTooLarge) {
				t.Fatalf("meta of %d bytes: %v", n, err)
			}
			break
		}
		if last < 0 {
			t.Fatal("no record with a proof fits")
		}
		e := entry{kind: kindLive, time: h.d.stamp(), since: h.d.stamp(), rec: discovery.Record{ID: fuzzHexID, Meta: bytes.Repeat([]byte{'m'}, last)}}
		if err := h.d.sign(&e, h.g.SlotKey(0).PublicKey()); err != nil {
			t.Fatal(err)
		}
		plain, err := e.marshal()
		if err != nil {
			t.Fatal(err)
		}
		if len(plain)+proofSlack != maxEntryPlain {
			t.Errorf("the largest record accepted encodes to %d bytes + %d slack, want exactly %d", len(plain), proofSlack, maxEntryPlain)
		}
	})
}
