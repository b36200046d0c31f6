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

// TestAnnounceSizeBoundWithoutAProof: a record whose ID is not a key needs
// no room for a proof: an entry of exactly maxEntryPlain bytes is
// accepted, a byte more refused.
func TestAnnounceSizeBoundWithoutAProof(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarness(t)
		e := fuzzMaxEntry()
		e.rec.ID = "plain-id"
		e.proof = nil
		for {
			plain, err := e.marshal()
			if err == nil && len(plain) == maxEntryPlain {
				break
			}
			if err != nil {
				e.rec.Meta = e.rec.Meta[:len(e.rec.Meta)-1]
			} else {
				e.rec.Meta = append(e.rec.Meta, 'x')
			}
		}
		if err := h.d.checkRecord(e.rec); err != nil {
			t.Errorf("a record of exactly %d bytes without a proof: %v", maxEntryPlain, err)
		}
		e.rec.Meta = append(e.rec.Meta, 'x')
		if err := h.d.checkRecord(e.rec); !errors.Is(err, ErrRecordTooLarge) {
			t.Errorf("a record of %d bytes: %v, want ErrRecordTooLarge", maxEntryPlain+1, err)
		}
	})
}

// TestStatsCountRequests: every read is counted, and every read a relay
// answered 429.
func TestStatsCountRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarness(t)
		h.read(0, 1, 2)
		if s := h.d.Stats(); s.Gets != 3 || s.RateLimited != 0 {
			t.Errorf("stats %+v after 3 reads, want 3 GETs", s)
		}
		h.limitReads.Store(true)
		if err := h.d.readSlotWith(t.Context(), 0, h.d.budget.gets); err == nil {
			t.Fatal("a read answered 429 succeeded")
		}
		if s := h.d.Stats(); s.Gets != 4 || s.RateLimited != 1 {
			t.Errorf("stats %+v after a 429, want 4 GETs, 1 rate-limited", s)
		}
	})
}
