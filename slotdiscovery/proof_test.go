package slotdiscovery

// Tests of the rule that an entry about a key is signed by that key
// (issue 12, item 3): a member who knows the passphrase writes, into B's
// slot on a real relay on 127.0.0.1, a tombstone or a live entry with
// its own address under B's ID, stamped 110 s ahead (inside the readers'
// 2-minute future bound), and keeps rewriting it. A must keep seeing B,
// with B's own address.

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/phrasemeet/discovery"
	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/pkarrrelay"
)

// proofWait bounds every wait for something a discoverer does.
const proofWait = 20 * time.Second

// proofRelay serves the project's relay, in memory and without rate
// limits, on 127.0.0.1. (internal/slottest does the same, but imports
// this package, so an in-package test cannot use it.)
func proofRelay(t *testing.T) string {
	t.Helper()
	store := pkarrrelay.NewMemoryStore(1000)
	t.Cleanup(func() { store.Close() })
	h, err := pkarrrelay.NewHandler(store,
		pkarrrelay.WithWriteRateLimit(rate.Inf, 0), pkarrrelay.WithReadRateLimit(rate.Inf, 0))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Fatalf("test relay is not on loopback: %s", srv.URL)
	}
	return srv.URL
}

func proofClient(t *testing.T, url string) *pkarrclient.Client {
	t.Helper()
	c, err := pkarrclient.NewRelayClient([]string{url},
		pkarrclient.RelayHTTPClient(&http.Client{Timeout: 5 * time.Second}),
		pkarrclient.RelayBackoff(time.Millisecond, 10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// proofSchedule is slottest.FastSchedule: every period shrunk, the future
// bound left at its default of 2 minutes.
func proofSchedule() []Option {
	return []Option{
		WithScanInterval(200 * time.Millisecond),
		WithFastScan(50*time.Millisecond, time.Second),
		WithRepublishInterval(500 * time.Millisecond),
		WithStaleAfter(2 * time.Second),
		WithVerifyDelay(5*time.Millisecond, 30*time.Millisecond),
		WithGetBudget(200, 400, 50), WithRequestBudget(1000, 1000),
		WithPutBudget(100, 20),
	}
}

// proofKey is a fixed Ed25519 key and its ID, 64 lowercase hex digits as
// an iroh endpoint ID.
func proofKey(seed byte) (ed25519.PrivateKey, string) {
	priv := ed25519.NewKeyFromSeed(append(make([]byte, ed25519.SeedSize-1), seed))
	return priv, hex.EncodeToString(priv.Public().(ed25519.PublicKey))
}

func newProofDiscoverer(t *testing.T, url string, g *Group, opts ...Option) *Discoverer {
	t.Helper()
	d, err := New(proofClient(t, url), g, append(proofSchedule(), opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(context.Background()) })
	return d
}

// awaitPeer waits until d knows id with exactly addrs.
func awaitPeer(t *testing.T, d *Discoverer, id string, addrs ...string) {
	t.Helper()
	deadline := time.Now().Add(proofWait)
	for time.Now().Before(deadline) {
		for _, p := range d.Peers() {
			if p.ID == id && strings.Join(p.Addrs, " ") == strings.Join(addrs, " ") {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never saw %s at %q; it knows %+v", d.Name(), id, addrs, d.Peers())
}

// forge is the attacker: a member who knows the passphrase (so the group
// key and every slot key) and writes into slot a packet holding what the
// slot holds now plus e, sealed as any member can seal. Its own earlier
// forgeries (stamped far ahead) make way for e; the victim's genuine
// entries stay, so the attack is the forgery alone: a member who also
// drops the victim's entry is a nuisance the victim repairs at its next
// write, and not what this rule is about. The packet is stamped after
// the slot's, so the relay takes it.
func forge(ctx context.Context, c *pkarrclient.Client, g *Group, slot int, e entry) error {
	sk := g.SlotKey(slot)
	now := time.Now()
	ts := pkarrclient.TimestampFromTime(now)
	var keep []sealedEntry
	p, err := c.Resolve(ctx, sk.PublicKey(), pkarrclient.NetworkOnly())
	switch {
	case err == nil:
		entries, _ := g.openSlot(p)
		for _, o := range entries {
			if o.time.Before(now.Add(time.Minute)) {
				keep = append(keep, o)
			}
		}
		ts = max(ts, p.Timestamp()+1)
	case !errors.Is(err, pkarrclient.ErrNotFound):
		return err
	}
	s, err := g.seal(&e, sk.PublicKey())
	if err != nil {
		return err
	}
	q, err := buildSlot(sk, ts, append(keep, sealedEntry{entry: e, sealed: s}))
	if err != nil {
		return err
	}
	_, err = c.Publish(ctx, q)
	return err
}

// attack runs forge every interval until ctx ends, each time building the
// forged entry afresh with make, and returns how many writes landed.
func attack(ctx context.Context, c *pkarrclient.Client, g *Group, slot func() int, interval time.Duration, forged func() entry) int {
	n := 0
	for ctx.Err() == nil {
		if s := slot(); s >= 0 && forge(ctx, c, g, s, forged()) == nil {
			n++
		}
		select {
		case <-ctx.Done():
		case <-time.After(interval):
		}
	}
	return n
}

// watchB records every event about id that contradicts "id is alive at
// addrs": a Lost, or a record with other addresses.
type watchB struct {
	mu  sync.Mutex
	bad []discovery.Event
}

func (w *watchB) run(ch <-chan discovery.Event, id string, addrs []string) {
	for e := range ch {
		if e.Peer.ID != id {
			continue
		}
		if e.Type == discovery.Lost || strings.Join(e.Peer.Addrs, " ") != strings.Join(addrs, " ") {
			w.mu.Lock()
			w.bad = append(w.bad, e)
			w.mu.Unlock()
		}
	}
}

func (w *watchB) events() []discovery.Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]discovery.Event(nil), w.bad...)
}

// runHideAttack announces B, lets A find it, then has an attacker rewrite
// B's slot with forged entries for a while, and checks that A
// saw nothing but B alive at B's address throughout and at the end.
func runHideAttack(t *testing.T, forged func(now time.Time, bID string) entry) {
	url := proofRelay(t)
	g := fuzzGroup(t, "a member can hide another member")
	bPriv, bID := proofKey(1)
	bAddrs := []string{"192.0.2.2:4433"}

	a := newProofDiscoverer(t, url, g)
	b := newProofDiscoverer(t, url, g, proofSigner(bPriv)...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*proofWait)
	defer cancel()
	events, err := a.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Announce(ctx, discovery.Record{ID: bID, Addrs: bAddrs}); err != nil {
		t.Fatal(err)
	}
	awaitPeer(t, a, bID, bAddrs...)
	var w watchB
	done := make(chan struct{})
	go func() { defer close(done); w.run(events, bID, bAddrs) }()

	// The attacker rewrites B's slot every 100 ms for 3 s: many of A's
	// reads (every 50-200 ms) find the forgery, stamped 110 s ahead.
	actx, stop := context.WithTimeout(ctx, 3*time.Second)
	defer stop()
	n := attack(actx, proofClient(t, url), g, func() int { return b.Slot(bID) }, 100*time.Millisecond,
		func() entry { return forged(time.Now(), bID) })
	if n == 0 {
		t.Fatal("the attacker wrote nothing")
	}
	// A keeps B with B's own address, and still does after B's next
	// writes.
	awaitPeer(t, a, bID, bAddrs...)
	time.Sleep(time.Second)
	awaitPeer(t, a, bID, bAddrs...)
	cancel()
	<-done
	if bad := w.events(); len(bad) > 0 {
		t.Errorf("after %d forged writes A saw %d events contradicting B alive at %q; first: %s %+v",
			n, len(bad), bAddrs, bad[0].Type, bad[0].Peer.Record)
	}
	t.Logf("%d forged writes; A's stats: %+v", n, a.Stats())
}

// TestForgedTombstoneDoesNotHide: a tombstone under B's ID, stamped 110 s
// ahead, rewritten every 100 ms, must not make A lose B.
func TestForgedTombstoneDoesNotHide(t *testing.T) {
	runHideAttack(t, func(now time.Time, bID string) entry {
		at := time.UnixMicro(now.Add(110 * time.Second).UnixMicro())
		return entry{kind: kindTombstone, time: at, since: at, rec: discovery.Record{ID: bID}}
	})
}

// TestForgedLiveEntryDoesNotRedirect: a live entry under B's ID carrying
// the attacker's address, stamped 110 s ahead, must not redirect A.
func TestForgedLiveEntryDoesNotRedirect(t *testing.T) {
	runHideAttack(t, func(now time.Time, bID string) entry {
		at := time.UnixMicro(now.Add(110 * time.Second).UnixMicro())
		return entry{kind: kindLive, time: at, since: at,
			rec: discovery.Record{ID: bID, Addrs: []string{"203.0.113.66:4433"}}}
	})
}

// proofSigner is the option that signs for priv's ID.
func proofSigner(priv ed25519.PrivateKey) []Option {
	return []Option{WithSigner(discovery.Ed25519Signer(priv))}
}

// TestAnnounceNeedsKey: announcing an ID that is a key fails at once,
// with ErrNoKey, unless the signer holds that key; a signer whose proofs
// do not verify under the ID is refused with ErrBadProof; IDs that are
// not keys need no signer.
func TestAnnounceNeedsKey(t *testing.T) {
	g := fuzzGroup(t, fuzzPassphrase)
	bPriv, bID := proofKey(1)
	cPriv, _ := proofKey(2)
	ctx := context.Background()
	open := func(opts ...Option) *Discoverer {
		c, _ := fuzzClient(t)
		d, err := New(c, g, append(proofSchedule(), opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close(context.Background()) })
		return d
	}
	for name, tc := range map[string]struct {
		opts []Option
		id   string
		want error
	}{
		"no signer":                {nil, bID, discovery.ErrNoKey},
		"no signer, uppercase":     {nil, strings.ToUpper(bID), discovery.ErrNoKey},
		"another key":              {proofSigner(cPriv), bID, discovery.ErrNoKey},
		"a signer that lies":       {[]Option{WithSigner(lyingSigner{cPriv})}, bID, discovery.ErrBadProof},
		"a key, signed":            {proofSigner(bPriv), bID, nil},
		"a key, uppercase, signed": {proofSigner(bPriv), strings.ToUpper(bID), nil},
		"not a key":                {nil, "peer-b", nil},
		"63 hex digits":            {nil, bID[:63], nil},
		"no schemes":               {[]Option{WithIDSchemes()}, bID, nil},
	} {
		t.Run(name, func(t *testing.T) {
			d := open(tc.opts...)
			ann, err := d.Announce(ctx, discovery.Record{ID: tc.id, Addrs: []string{"192.0.2.1:1"}})
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Announce: %v, want %v", err, tc.want)
			}
			if err != nil {
				if errors.Is(err, discovery.ErrInvalidRecord) {
					t.Errorf("a missing key reads as an invalid record (the adapter would trim addresses for it): %v", err)
				}
				if !strings.Contains(err.Error(), tc.id) {
					t.Errorf("the error does not name the ID: %v", err)
				}
				return
			}
			if err := ann.Update(ctx, discovery.Record{ID: tc.id, Addrs: []string{"192.0.2.1:2"}}); err != nil {
				t.Fatalf("Update: %v", err)
			}
			ann.Leave(ctx)
		})
	}
}

// lyingSigner signs every ID with one key, claiming keys it does not hold.
type lyingSigner struct{ priv ed25519.PrivateKey }

func (s lyingSigner) Sign(_ string, msg []byte) ([]byte, error) {
	return ed25519.Sign(s.priv, msg), nil
}

// TestAnnounceProofCountsInSize: the proof counts toward the entry's size,
// so a record that fits without one may not fit with one.
func TestAnnounceProofCountsInSize(t *testing.T) {
	g := fuzzGroup(t, fuzzPassphrase)
	bPriv, bID := proofKey(1)
	c, _ := fuzzClient(t)
	d, err := New(c, g, append(proofSchedule(), proofSigner(bPriv)...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	// 18 header bytes, 33 for the packed ID, 1 count, 1 meta length and
	// 1 proof length: meta fills the rest of maxEntryPlain.
	rec := discovery.Record{ID: bID, Meta: make([]byte, maxEntryPlain-18-33-1-2-1)}
	if b, err := (&entry{kind: kindLive, rec: rec}).marshal(); err != nil || len(b) != maxEntryPlain {
		t.Fatalf("the unsigned entry is %d bytes (%v), want %d", len(b), err, maxEntryPlain)
	}
	if _, err := d.Announce(context.Background(), rec); !errors.Is(err, ErrRecordTooLarge) {
		t.Fatalf("a record filling an entry without its proof: %v, want ErrRecordTooLarge", err)
	}
	// Signed, it fills the entry exactly: it would seal, but a signature
	// a few bytes longer (DER ECDSA) would not, so it is refused too.
	rec.Meta = rec.Meta[:len(rec.Meta)-ed25519.SignatureSize]
	if _, err := d.Announce(context.Background(), rec); !errors.Is(err, ErrRecordTooLarge) {
		t.Fatalf("a record filling an entry with its proof: %v, want ErrRecordTooLarge (no slack)", err)
	}
	rec.Meta = rec.Meta[:len(rec.Meta)-proofSlack]
	ann, err := d.Announce(context.Background(), rec)
	if err != nil {
		t.Fatalf("a record leaving room for the proof: %v", err)
	}
	ann.Leave(context.Background())
}

// TestEntryProofRules: what a reader accepts of an entry about a key,
// checked on the entry as it opens from a sealed slot record.
func TestEntryProofRules(t *testing.T) {
	g := fuzzGroup(t, fuzzPassphrase)
	other := fuzzGroup(t, fuzzOtherPassphrase)
	bPriv, bID := proofKey(1)
	cPriv, cID := proofKey(2)
	c, _ := fuzzClient(t)
	d, err := New(c, g, append(proofSchedule(), proofSigner(bPriv)...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	slot := g.SlotKey(3).PublicKey()
	t0 := time.UnixMicro(time.Now().UnixMicro())
	signed := func(id string, priv ed25519.PrivateKey, grp *Group, for_ pkarrclient.PublicKey, e entry) entry {
		e.rec.ID = id
		e.proof = nil
		e.proof = ed25519.Sign(priv, grp.proofMessage(for_, e.marshalBody()))
		return e
	}
	base := entry{kind: kindLive, time: t0, since: t0.Add(-time.Minute), rec: discovery.Record{Addrs: []string{"192.0.2.2:4433"}, Meta: []byte("m")}}
	tomb := entry{kind: kindTombstone, time: t0, since: t0.Add(-time.Minute)}
	tamper := func(f func(*entry)) entry {
		e := signed(bID, bPriv, g, slot, base)
		f(&e)
		return e
	}
	cases := []struct {
		name string
		e    entry
		want bool
	}{
		{"signed by the ID's key", signed(bID, bPriv, g, slot, base), true},
		{"a tombstone signed by the ID's key", signed(bID, bPriv, g, slot, tomb), true},
		{"the uppercase ID, signed by its key", signed(strings.ToUpper(bID), bPriv, g, slot, base), true},
		{"another member's own entry", signed(cID, cPriv, g, slot, base), true},
		{"a name, no proof", entry{kind: kindLive, time: t0, since: t0, rec: discovery.Record{ID: "peer-b"}}, true},
		{"no proof", entry{kind: kindLive, time: t0, since: t0, rec: discovery.Record{ID: bID}}, false},
		{"a tombstone without proof", entry{kind: kindTombstone, time: t0, since: t0, rec: discovery.Record{ID: bID}}, false},
		{"signed by another key", signed(bID, cPriv, g, slot, base), false},
		{"a tombstone signed by another key", signed(bID, cPriv, g, slot, tomb), false},
		{"a proof for another group", signed(bID, bPriv, other, slot, base), false},
		{"a proof for another slot", signed(bID, bPriv, g, g.SlotKey(4).PublicKey(), base), false},
		{"time changed", tamper(func(e *entry) { e.time = e.time.Add(110 * time.Second) }), false},
		{"since changed", tamper(func(e *entry) { e.since = e.since.Add(-time.Hour) }), false},
		{"address changed", tamper(func(e *entry) { e.rec.Addrs = []string{"203.0.113.66:4433"} }), false},
		{"meta changed", tamper(func(e *entry) { e.rec.Meta = []byte("M") }), false},
		{"made a tombstone", tamper(func(e *entry) { e.kind, e.rec.Addrs, e.rec.Meta = kindTombstone, nil, nil }), false},
		{"proof flipped", tamper(func(e *entry) { e.proof[5] ^= 1 }), false},
		{"proof cut", tamper(func(e *entry) { e.proof = e.proof[:63] }), false},
		{"empty proof", tamper(func(e *entry) { e.proof = []byte{} }), false},
		{"a zero proof", tamper(func(e *entry) { e.proof = make([]byte, 64) }), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := g.seal(&tc.e, slot)
			if err != nil {
				t.Fatal(err)
			}
			read, err := g.open(s, slot)
			if err != nil {
				t.Fatal(err)
			}
			d.mu.Lock()
			before := d.stats.UnprovenEntries
			kept := d.provenLocked([]sealedEntry{{entry: read, sealed: s}}, slot)
			counted := d.stats.UnprovenEntries - before
			d.mu.Unlock()
			if got := len(kept) == 1; got != tc.want || counted != map[bool]int{true: 0, false: 1}[tc.want] {
				t.Fatalf("kept=%v (counted %d unproven), want kept=%v", got, counted, tc.want)
			}
			// ReadTable applies the same rule.
			_, bad := provenEntries(g, d.cfg.schemes, []sealedEntry{{entry: read, sealed: s}}, slot)
			if (bad == 0) != tc.want {
				t.Fatalf("ReadTable's rule: %d unproven, want kept=%v", bad, tc.want)
			}
			// A second look, from the cache, gives the same answer.
			d.mu.Lock()
			again := len(d.provenLocked([]sealedEntry{{entry: read, sealed: s}}, slot)) == 1
			d.mu.Unlock()
			if again != tc.want {
				t.Fatalf("second look: kept=%v", again)
			}
		})
	}
}

// TestReplayDoesNotRollBack: B's own older entry, signed and genuine,
// replayed byte for byte into B's slot after B changed its address, does
// not take A back to the old address; the same entry re-sealed into
// another slot does not even count, since its proof names B's slot.
func TestReplayDoesNotRollBack(t *testing.T) {
	url := proofRelay(t)
	g := fuzzGroup(t, "replaying an old signed entry")
	bPriv, bID := proofKey(1)
	a := newProofDiscoverer(t, url, g)
	b := newProofDiscoverer(t, url, g, proofSigner(bPriv)...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*proofWait)
	defer cancel()
	ann, err := b.Announce(ctx, discovery.Record{ID: bID, Addrs: []string{"192.0.2.2:1"}})
	if err != nil {
		t.Fatal(err)
	}
	awaitPeer(t, a, bID, "192.0.2.2:1")
	// The attacker keeps a copy of B's entry as it is now.
	attacker := proofClient(t, url)
	var old sealedEntry
	var oldSlot int
	for old.sealed == nil {
		oldSlot = b.Slot(bID)
		if oldSlot < 0 {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		p, err := attacker.Resolve(ctx, g.SlotKey(oldSlot).PublicKey(), pkarrclient.NetworkOnly())
		if err != nil {
			t.Fatal(err)
		}
		entries, _ := g.openSlot(p)
		for _, e := range entries {
			if e.rec.ID == bID {
				old = e
			}
		}
	}
	if err := ann.Update(ctx, discovery.Record{ID: bID, Addrs: []string{"192.0.2.2:2"}}); err != nil {
		t.Fatal(err)
	}
	awaitPeer(t, a, bID, "192.0.2.2:2")
	events, err := a.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var w watchB
	done := make(chan struct{})
	go func() { defer close(done); w.run(events, bID, []string{"192.0.2.2:2"}) }()

	// Replayed into B's slot, byte for byte, B's newer entries dropped;
	// and re-sealed, unchanged, into the next slot. A write that races
	// with B's (409) is simply tried again next round.
	replay := func(slot int, e sealedEntry) bool {
		sk := g.SlotKey(slot)
		ts := pkarrclient.TimestampFromTime(time.Now())
		var keep []sealedEntry
		if p, err := attacker.Resolve(ctx, sk.PublicKey(), pkarrclient.NetworkOnly()); err == nil {
			entries, _ := g.openSlot(p)
			for _, o := range entries {
				if o.rec.ID != bID {
					keep = append(keep, o)
				}
			}
			ts = max(ts, p.Timestamp()+1)
		}
		q, err := buildSlot(sk, ts, append(keep, e))
		if err != nil {
			t.Fatal(err)
		}
		_, err = attacker.Publish(ctx, q)
		if err != nil && !errors.Is(err, pkarrclient.ErrNotMostRecent) {
			t.Fatal(err)
		}
		return err == nil
	}
	moved := old
	if moved.sealed, err = g.seal(&moved.entry, g.SlotKey(oldSlot+1).PublicKey()); err != nil {
		t.Fatal(err)
	}
	replayed, movedIn := 0, false
	for range 10 {
		if replay(b.Slot(bID), old) {
			replayed++
		}
		movedIn = replay(oldSlot+1, moved) || movedIn
		time.Sleep(100 * time.Millisecond)
	}
	if replayed == 0 || !movedIn {
		t.Fatalf("the attacker's writes did not land: %d replays, moved %v", replayed, movedIn)
	}
	awaitPeer(t, a, bID, "192.0.2.2:2")
	cancel()
	<-done
	if bad := w.events(); len(bad) > 0 {
		t.Errorf("A saw %d events contradicting B at its new address; first: %s %+v", len(bad), bad[0].Type, bad[0].Peer.Record)
	}
	// The copy in the next slot is B's genuine entry, but its proof names
	// B's slot: it does not count there. (A may not read that slot: its
	// scans stop at the first level with room. ReadTable reads it.)
	infos, err := ReadTable(context.Background(), attacker, g, TableMinSlots(oldSlot+2))
	if err != nil {
		t.Fatal(err)
	}
	si := infos[oldSlot+1]
	if si.Unproven != 1 || len(si.Members) != 0 {
		t.Errorf("slot %d holds B's entry moved from slot %d: %d unproven, members %+v; want 1 unproven, none", oldSlot+1, oldSlot, si.Unproven, si.Members)
	}
}

// TestOwnTombstoneIsHonoured: B's own tombstone is signed and counts, so
// A sees B leave at once rather than when its entry ages out.
func TestOwnTombstoneIsHonoured(t *testing.T) {
	url := proofRelay(t)
	g := fuzzGroup(t, "a signed tombstone counts")
	bPriv, bID := proofKey(1)
	// A judges staleness only after a minute: a Lost sooner is B's
	// tombstone.
	a := newProofDiscoverer(t, url, g, WithStaleAfter(time.Minute))
	b := newProofDiscoverer(t, url, g, proofSigner(bPriv)...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*proofWait)
	defer cancel()
	events, err := a.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ann, err := b.Announce(ctx, discovery.Record{ID: bID, Addrs: []string{"192.0.2.2:1"}})
	if err != nil {
		t.Fatal(err)
	}
	awaitPeer(t, a, bID, "192.0.2.2:1")
	for b.Slot(bID) < 0 {
		time.Sleep(10 * time.Millisecond)
	}
	if err := ann.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case e := <-events:
			if e.Type == discovery.Lost && e.Peer.ID == bID {
				if n := a.Stats().UnprovenEntries; n != 0 {
					t.Errorf("A counted %d of B's entries unproven", n)
				}
				return
			}
		case <-ctx.Done():
			t.Fatalf("A never saw B leave; stats %+v", a.Stats())
		}
	}
}
