package slotdiscovery

import (
	"errors"
	"golang.org/x/time/rate"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/phrasemeet/discovery"
	"github.com/phrasemeet/discovery/internal/relaysim"
	"github.com/phrasemeet/discovery/pkarrclient"
)

// The write rules of an announcement (announce.go: publish, bury, end,
// run), against a simulated relay in a synctest bubble: what is read,
// written and read back, in which order, and when a write counts.

func countOf(reqs []string, r string) int {
	n := 0
	for _, x := range reqs {
		if x == r {
			n++
		}
	}
	return n
}

// TestPublishReadsWritesReadsBack: a write into a slot with room reads the
// slot, writes it with every entry there carried forward, and reads it
// back once; the write counts when the read-back shows our entry.
func TestPublishReadsWritesReadsBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarness(t)
		a := h.ann("me")
		other := h.live(3, discovery.Record{ID: "other"}, h.d.stamp())
		h.put(3, 0, other)
		time.Sleep(time.Second)
		if !a.publish(t.Context(), 3) {
			t.Fatal("publish into a slot with room failed")
		}
		if r, want := h.requests(), []string{"GET 3", "PUT 3", "GET 3"}; !slices.Equal(r, want) {
			t.Errorf("requests %v, want %v", r, want)
		}
		held := h.held(3)
		if e, ok := held["me"]; !ok || e.kind != kindLive || !e.time.Equal(a.written) {
			t.Errorf("slot 3 holds %+v for us, want our live entry of %v", e, a.written)
		}
		if _, ok := held["other"]; !ok {
			t.Error("our write dropped the other peer's entry")
		}
		if s := h.d.Stats(); s.Collisions != 0 || s.Puts != 1 {
			t.Errorf("stats %+v, want 1 PUT and no collision", s)
		}
	})
}

// TestPublishRefusesAFullSlotBeforeWriting: a slot with no room for us
// is given up after the read, with no PUT.
func TestPublishRefusesAFullSlotBeforeWriting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarness(t)
		h.full(3)
		if h.ann("me").publish(t.Context(), 3) {
			t.Fatal("publish into a full slot succeeded")
		}
		if r := h.requests(); !slices.Equal(r, []string{"GET 3"}) {
			t.Errorf("requests %v, want the read alone", r)
		}
	})
}

// TestReadBackRejectsAnOlderVersionOfOurEntry: a relay that answers our
// write but keeps the packet it had (n0's relay drops an older packet
// silently) still shows an older version of our entry. That read-back
// does not confirm the write: publish tries four times, counts four
// collisions and gives up.
func TestReadBackRejectsAnOlderVersionOfOurEntry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarness(t)
		a := h.ann("me")
		h.put(3, 0, h.live(3, a.rec, a.since))
		time.Sleep(time.Second)
		h.dropPuts.Store(true)
		if a.publish(t.Context(), 3) {
			t.Fatal("publish confirmed by a read-back of our older entry")
		}
		r := h.requests()
		if countOf(r, "PUT 3") != 4 {
			t.Errorf("requests %v, want 4 PUTs", r)
		}
		// Read, write, read back; then each read-back is the next write's read.
		if want := []string{"GET 3", "PUT 3", "GET 3", "PUT 3", "GET 3", "PUT 3", "GET 3", "PUT 3", "GET 3"}; !slices.Equal(r, want) {
			t.Errorf("requests %v, want %v", r, want)
		}
		if s := h.d.Stats(); s.Collisions != 4 {
			t.Errorf("%d collisions, want 4", s.Collisions)
		}
		// The same version of our entry confirms (the write of the
		// second we read back).
		h.dropPuts.Store(false)
		if !a.publish(t.Context(), 3) {
			t.Error("a kept write was not confirmed")
		}
	})
}

// racer makes every PUT into slot i followed by another writer's, one
// timestamp later, that carries what the slot held before our write: a
// peer that read just before we wrote. It stops after n races (n < 0:
// never).
func racer(h *annHarness, i int, before []sealedEntry, n int) {
	h.afterPut = func(p *pkarrclient.SignedPacket) {
		if p.PublicKey() != h.g.SlotKey(i).PublicKey() || n == 0 {
			return
		}
		n--
		q, err := buildSlot(h.g.SlotKey(i), p.Timestamp()+1, before)
		if err != nil {
			h.t.Error(err)
			return
		}
		h.relay.Put(q)
	}
}

// TestBuryWritesOnceWhenKept: the tombstone is written like an entry:
// read, write (carrying the other entries forward), read back; once the
// read-back shows it, no more.
func TestBuryWritesOnceWhenKept(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarness(t)
		a := h.ann("me")
		h.put(3, 0, h.live(3, discovery.Record{ID: "other"}, h.d.stamp()), h.live(3, a.rec, a.since))
		time.Sleep(time.Second)
		began := time.Now()
		tt := a.bury(t.Context(), 3, "me", a.since)
		if r, want := h.requests(), []string{"GET 3", "PUT 3", "GET 3"}; !slices.Equal(r, want) {
			t.Errorf("requests %v, want %v", r, want)
		}
		// The read-back waits the read-back delay (1 s here), as a
		// write's does, so the relays have taken the tombstone.
		if took := time.Since(began); took != time.Second {
			t.Errorf("bury took %v, want the 1 s read-back delay", took)
		}
		held := h.held(3)
		if e := held["me"]; e.kind != kindTombstone || !e.time.Equal(tt) || !e.since.Equal(a.since) {
			t.Errorf("slot 3 holds %+v for us, want a tombstone of %v since %v", e, tt, a.since)
		}
		if e, ok := held["other"]; !ok || e.kind != kindLive {
			t.Error("the tombstone's write dropped the other peer's entry")
		}
		if !tt.Equal(began) {
			t.Errorf("tombstone stamped %v, want when bury began (%v)", tt, began)
		}
	})
}

// TestBuryRetriesARacedTombstone: a writer that read the slot just before
// our tombstone landed writes our live entry back; bury writes the same
// tombstone again, up to three times in all.
func TestBuryRetriesARacedTombstone(t *testing.T) {
	for _, c := range []struct {
		races, puts int
	}{{0, 1}, {1, 2}, {2, 3}, {-1, 3}} {
		name := strings.Repeat("race ", max(c.races, 0)) + "then kept"
		if c.races < 0 {
			name = "always raced"
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newAnnHarness(t)
				a := h.ann("me")
				before := []sealedEntry{h.live(3, a.rec, a.since)}
				h.put(3, 0, before...)
				time.Sleep(time.Second)
				racer(h, 3, before, c.races)
				tt := a.bury(t.Context(), 3, "me", a.since)
				r := h.requests()
				if countOf(r, "PUT 3") != c.puts || countOf(r, "GET 3") != 2*c.puts {
					t.Errorf("%d races: requests %v, want %d rounds of read, write, read back", c.races, r, c.puts)
				}
				e := h.held(3)["me"]
				switch {
				case c.races >= 0 && c.races < 3 && (e.kind != kindTombstone || !e.time.Equal(tt)):
					t.Errorf("slot holds %+v for us, want the tombstone of %v", e, tt)
				case c.races < 0 && e.kind != kindLive:
					t.Errorf("racer always last, yet the slot holds %+v", e)
				}
			})
		})
	}
}

// TestEndBuriesThenForgets: an announcement that held a slot leaves a
// tombstone there, and its ID is remembered as left at the tombstone's
// time; one that never held a slot writes nothing and is left now.
func TestEndBuriesThenForgets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarness(t)
		a := h.ann("me")
		a.done, a.endDone = make(chan struct{}), make(chan struct{})
		close(a.done)
		a.slot = 4
		h.d.mu.Lock()
		h.d.anns["me"] = a
		h.d.mu.Unlock()
		time.Sleep(time.Second)
		a.end()
		if r := h.requests(); countOf(r, "PUT 4") != 1 {
			t.Errorf("requests %v, want one PUT of slot 4", r)
		}
		e := h.held(4)["me"]
		h.d.mu.Lock()
		left, gone := h.d.view.left["me"], h.d.anns["me"] == nil
		h.d.mu.Unlock()
		if e.kind != kindTombstone || !left.Equal(e.time) || !gone {
			t.Errorf("tombstone %+v, left at %v, gone %v; want a tombstone, left at its time, gone", e, left, gone)
		}

		b := h.ann("never")
		b.done, b.endDone = make(chan struct{}), make(chan struct{})
		close(b.done)
		time.Sleep(time.Second)
		b.end()
		if r := h.requests(); len(r) != 0 {
			t.Errorf("an announcement that held no slot made requests %v", r)
		}
		h.d.mu.Lock()
		left = h.d.view.left["never"]
		h.d.mu.Unlock()
		if !left.Equal(time.Now()) {
			t.Errorf("left at %v, want now (%v)", left, time.Now())
		}
	})
}

// TestBuryWaitsForAPutToken: the tombstone's write spends a PUT token like
// any other write; with the budget spent it waits for the next one.
func TestBuryWaitsForAPutToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const every = 100 * time.Second
		h := newAnnHarness(t, WithPutBudget(rate.Every(every), 1))
		a := h.ann("me")
		h.put(3, 0, h.live(3, a.rec, a.since))
		if err := h.d.budget.take(t.Context(), h.d.budget.puts); err != nil {
			t.Fatal(err)
		}
		began := time.Now()
		a.bury(t.Context(), 3, "me", a.since)
		if took := time.Since(began); took < every {
			t.Errorf("bury took %v with the PUT budget spent, want at least %v", took, every)
		}
		if e := h.held(3)["me"]; e.kind != kindTombstone {
			t.Errorf("slot holds %+v for us, want the tombstone", e)
		}
	})
}

// TestPublishRetriesAFailedWrite: a write the relay did not take is tried
// again after a pause, from a new read, and confirmed as usual.
func TestPublishRetriesAFailedWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarness(t)
		a := h.ann("me")
		h.failPuts.Store(1)
		began := time.Now()
		if !a.publish(t.Context(), 3) {
			t.Fatal("publish gave up after one failed write")
		}
		if r, want := h.requests(), []string{"GET 3", "PUT! 3", "GET 3", "PUT 3", "GET 3"}; !slices.Equal(r, want) {
			t.Errorf("requests %v, want %v", r, want)
		}
		// A pause of 1-2 s (the read-back delay range with its top
		// doubled), drawn at random, before the retry, and the read-back's
		// 1 s after it.
		if took := time.Since(began); took <= 2*time.Second || took > 3*time.Second {
			t.Errorf("publish took %v, want more than 2 s and at most 3 s", took)
		}
	})
}

// TestWriteCountsAConflict: a write that a relay refuses as older than what
// it holds (pkarr's relay answers 409: someone wrote after our read) is
// counted, and the slot is read again before the next try.
func TestWriteCountsAConflict(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarnessMode(t, relaysim.PkarrRelay)
		a := h.ann("me")
		h.read(3)
		// Another writer, after our read, stamps the slot far ahead of
		// what our write will carry.
		h.put(3, pkarrclient.TimestampFromTime(time.Now().Add(time.Minute)), h.live(3, discovery.Record{ID: "other"}, h.d.stamp()))
		e := entry{kind: kindLive, time: h.d.stamp(), since: a.since, rec: a.rec}
		if err := a.write(t.Context(), 3, e); !errors.Is(err, pkarrclient.ErrNotMostRecent) {
			t.Fatalf("write over a newer packet: %v, want ErrNotMostRecent", err)
		}
		h.d.mu.Lock()
		read := h.d.view.slot(3).read
		h.d.mu.Unlock()
		if s := h.d.Stats(); s.Conflicts != 1 || s.Puts != 1 {
			t.Errorf("stats %+v, want one PUT, one conflict", s)
		}
		if !read.IsZero() {
			t.Errorf("the slot still counts as read at %v after a conflict", read)
		}
	})
}
