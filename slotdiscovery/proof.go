package slotdiscovery

import (
	"fmt"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/zeebo/blake3"

	"github.com/phrasemeet/discovery"
	"github.com/phrasemeet/discovery/pkarrclient"
)

// Proofs: an entry about an ID that is a public key carries that key's
// signature (see entry), made here when we write and checked here when we
// read. The rule itself, and what it leaves open, is documented in
// package discovery (IDScheme).

// proofSlack is room kept, when Announce checks that a record fits, for
// signatures whose length varies from one signing to the next (DER-encoded
// ECDSA signatures differ by a few bytes), so a record accepted once never
// fails to seal later.
const proofSlack = 8

// provenCacheSize bounds the proofs a Discoverer remembers as verified.
// Writers carry entries forward byte for byte, so each version of each
// peer's entry is read many times and verified once.
const provenCacheSize = 4096

// provenKey names one sealed entry in one slot, for the cache.
type provenKey [32]byte

func newProvenCache() *lru.Cache[provenKey, struct{}] {
	c, err := lru.New[provenKey, struct{}](provenCacheSize)
	if err != nil {
		panic("slotdiscovery: " + err.Error()) // only for a size below one
	}
	return c
}

// sign sets e's proof for slot: a signature by the key e's ID names, when
// a scheme owns the ID; none otherwise.
func (d *Discoverer) sign(e *entry, slot pkarrclient.PublicKey) error {
	e.proof = nil
	proof, err := discovery.Prove(d.cfg.schemes, d.cfg.signer, e.rec.ID, d.group.proofMessage(slot, e.marshalBody()))
	if err != nil {
		return fmt.Errorf("slotdiscovery: signing the entry of %q: %w", e.rec.ID, err)
	}
	e.proof = proof
	return nil
}

// checkRecord is what Announce and Update check before anything runs: the
// record's ID is not a key we cannot sign for (ErrNoKey, or ErrBadProof
// when the signer's proof does not verify, a key that is not the ID's),
// and its entry, proof included, fits (ErrRecordTooLarge).
func (d *Discoverer) checkRecord(rec discovery.Record) error {
	now := d.stamp()
	e := entry{kind: kindLive, time: now, since: now, rec: rec}
	slot := d.group.SlotKey(0).PublicKey()
	if err := d.sign(&e, slot); err != nil {
		return fmt.Errorf("slotdiscovery: cannot announce %q: %w", rec.ID, err)
	}
	body := e.marshalBody()
	if err := discovery.CheckProof(d.cfg.schemes, rec.ID, d.group.proofMessage(slot, body), e.proof); err != nil {
		return fmt.Errorf("slotdiscovery: cannot announce %q: the signer's proof does not verify: %w", rec.ID, err)
	}
	plain, err := e.marshal()
	if err != nil {
		return err
	}
	if len(e.proof) > 0 && len(plain)+proofSlack > maxEntryPlain {
		return fmt.Errorf("%w: %d bytes encoded with the proof, at most %d", ErrRecordTooLarge, len(plain), maxEntryPlain-proofSlack)
	}
	return nil
}

// provenLocked returns the entries of a read of slot that the rule lets
// count, and counts those it does not: an entry whose ID a scheme owns
// counts only if its proof verifies. Everything after this (what a read
// shows, what a write carries forward, what a read-back confirms) sees
// only entries that passed.
func (d *Discoverer) provenLocked(entries []sealedEntry, slot pkarrclient.PublicKey) []sealedEntry {
	out := entries[:0]
	for _, e := range entries {
		if d.proven(e, slot) {
			out = append(out, e)
			continue
		}
		d.stats.UnprovenEntries++
	}
	return out
}

// proven applies the rule to one entry read from slot, remembering the
// entries that passed.
func (d *Discoverer) proven(e sealedEntry, slot pkarrclient.PublicKey) bool {
	if discovery.SchemeFor(d.cfg.schemes, e.rec.ID) == nil {
		return true
	}
	h := blake3.New()
	h.Write(slot[:])
	h.Write(e.sealed)
	var k provenKey
	h.Sum(k[:0])
	if d.provenCache.Contains(k) {
		return true
	}
	err := discovery.CheckProof(d.cfg.schemes, e.rec.ID, d.group.proofMessage(slot, e.signed), e.proof)
	if err != nil {
		d.cfg.logger.Debug("entry without a valid proof ignored", "id", e.rec.ID, "err", err)
		return false
	}
	d.provenCache.Add(k, struct{}{})
	return true
}

// provenEntries is the rule for ReadTable, which has no Discoverer: the
// entries that count, and how many did not.
func provenEntries(g *Group, schemes []discovery.IDScheme, entries []sealedEntry, slot pkarrclient.PublicKey) ([]sealedEntry, int) {
	var out []sealedEntry
	bad := 0
	for _, e := range entries {
		if discovery.CheckProof(schemes, e.rec.ID, g.proofMessage(slot, e.signed), e.proof) != nil {
			bad++
			continue
		}
		out = append(out, e)
	}
	return out, bad
}
