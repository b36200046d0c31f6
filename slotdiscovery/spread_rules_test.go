package slotdiscovery

import (
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/phrasemeet/discovery"
	"github.com/phrasemeet/discovery/pkarrclient"
)

// The rules of a forming group's spread (announce.go: spreadPool, claim,
// run, readBackDelay), on the announcement harness with spreading turned
// back on (the harness turns it off). Slots by level: 0 | 1 2 | 3 4 5 6 |
// 7 ... 14.

// spreadRec is a stranger's record for the spread tests.
func spreadRec(id string) discovery.Record {
	return discovery.Record{ID: id, Addrs: []string{"/ip4/192.0.2.7/udp/4001/quic-v1"}}
}

// lockView marks slot i of the peer's view locked until until, as a read
// of a packet stamped beyond the future bound would, and sets when it was
// read (zero: never).
func lockView(h *annHarness, i int, read, until time.Time) {
	h.d.mu.Lock()
	defer h.d.mu.Unlock()
	sv := h.d.view.slot(i)
	sv.read, sv.locked, sv.lockedUntil = read, true, until
	clear(sv.entries)
}

// pool calls spreadPool for a's entry over levels, trusting reads up to
// fresh old.
func pool(t *testing.T, a *announcement, fresh time.Duration, levels int) []int {
	t.Helper()
	self, err := a.sealed(0)
	if err != nil {
		t.Fatal(err)
	}
	p := a.spreadPool(self, fresh, levels)
	slices.Sort(p)
	return p
}

// TestSpreadPoolSlots: the pool is the join levels' slots that are unread,
// read longer than fresh ago (full or not), or read with room for us;
// not a full slot read within fresh (exactly fresh ago counts as within),
// not one whose lock holds however long ago it was read, not one read
// locked, and nothing below the join levels.
func TestSpreadPoolSlots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const scan = 10 * time.Second
		const fresh = 2 * scan
		h := newAnnHarness(t, WithScanInterval(scan), WithJoinSpread(3, 0))
		a := h.ann("me")
		t0 := time.Now()
		h.full(3) // full, read stale: in
		h.full(5) // lock holds, read stale: out
		h.read(3, 5)
		time.Sleep(time.Microsecond)
		h.full(0) // full, read exactly fresh ago: out
		h.read(0)
		time.Sleep(fresh)
		h.put(1, 0, h.live(1, spreadRec("p1"), h.d.stamp())) // a peer, room for us: in
		h.full(2)                                            // full, never read: in
		// 4: empty, read now: in; 6: read locked, its lock over: out;
		// 7, level 3, empty: out.
		h.read(1, 4, 6, 7)
		now := time.Now()
		lockView(h, 5, t0, now.Add(time.Hour))
		lockView(h, 6, now, now.Add(-time.Second))
		got := pool(t, a, fresh, 3)
		if want := []int{1, 2, 3, 4}; !slices.Equal(got, want) {
			t.Errorf("pool %v, want %v", got, want)
		}
		// A lock that holds keeps the slot out whatever its read says.
		lockView(h, 4, now, now.Add(time.Hour))
		if got := pool(t, a, fresh, 3); slices.Contains(got, 4) {
			t.Errorf("pool %v holds slot 4, whose lock holds", got)
		}
		lockView(h, 4, time.Time{}, now.Add(time.Hour))
		if got := pool(t, a, fresh, 3); slices.Contains(got, 4) {
			t.Errorf("pool %v holds slot 4, never read, whose lock holds", got)
		}
		// Levels bound the pool: one level is slot 0 alone (full: none),
		// four take level 3 in (slot 4 now locked).
		if got := pool(t, a, fresh, 1); len(got) != 0 {
			t.Errorf("one level: pool %v, want none", got)
		}
		if got := pool(t, a, fresh, 4); len(got) != 3+8 || !slices.Contains(got, 7) || !slices.Contains(got, 14) {
			t.Errorf("four levels: pool %v, want slots 1 2 3 and level 3's eight", got)
		}
		if got := pool(t, a, fresh, 0); len(got) != 0 {
			t.Errorf("no join levels: pool %v, want none", got)
		}
	})
}

// TestSpreadPoolSettled: a live entry of another peer, in a join level's
// slot read within fresh, that has stood there a fast phase settles the
// group: no pool. One a microsecond younger does not; neither does our
// own entry, a tombstone, nor an entry below the join levels.
func TestSpreadPoolSettled(t *testing.T) {
	const phase = 60 * time.Second // the default fast phase
	tomb := func(h *annHarness, i int, id string, since time.Time) sealedEntry {
		e := entry{kind: kindTombstone, time: h.d.stamp(), since: since, rec: discovery.Record{ID: id}}
		s, err := h.g.seal(&e, h.g.SlotKey(i).PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		return sealedEntry{entry: e, sealed: s}
	}
	for _, c := range []struct {
		name    string
		slot    int
		entry   func(h *annHarness, a *announcement) sealedEntry
		settled bool
	}{
		{"another's, a fast phase old", 2, func(h *annHarness, a *announcement) sealedEntry {
			return h.live(2, spreadRec("old"), h.d.stamp().Add(-phase))
		}, true},
		{"another's, a microsecond under a fast phase", 2, func(h *annHarness, a *announcement) sealedEntry {
			return h.live(2, spreadRec("young"), h.d.stamp().Add(-phase+time.Microsecond))
		}, false},
		{"our own, an hour old", 2, func(h *annHarness, a *announcement) sealedEntry {
			return h.live(2, a.rec, h.d.stamp().Add(-time.Hour))
		}, false},
		{"a tombstone, an hour old", 2, func(h *annHarness, a *announcement) sealedEntry {
			return tomb(h, 2, "gone", h.d.stamp().Add(-time.Hour))
		}, false},
		{"another's, an hour old, in level 3", 7, func(h *annHarness, a *announcement) sealedEntry {
			return h.live(7, spreadRec("deep"), h.d.stamp().Add(-time.Hour))
		}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newAnnHarness(t, WithJoinSpread(3, 0))
				time.Sleep(2 * time.Hour) // so that an hour ago is after the epoch of the bubble's clock
				a := h.ann("me")
				h.put(c.slot, 0, c.entry(h, a))
				h.read(0, 1, 2, 3, 4, 5, 6, 7)
				got := pool(t, a, time.Minute, 3)
				if c.settled {
					if len(got) != 0 {
						t.Errorf("pool %v, want none: settled", got)
					}
					return
				}
				if want := []int{0, 1, 2, 3, 4, 5, 6}; !slices.Equal(got, want) {
					t.Errorf("pool %v, want %v", got, want)
				}
			})
		})
	}
}

// TestClaimSpreadsAFormingGroup: in a forming group an uncontended claim
// picks uniformly among the pool's slots (here 1 to 6: slot 0 was read
// full), reads nothing, and marks the claim spread.
func TestClaimSpreadsAFormingGroup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarness(t, WithJoinSpread(3, 0))
		h.full(0)
		h.read(0)
		h.requests()
		a := h.ann("me")
		counts := map[int]int{}
		const n = 600
		for k := range n {
			s, err := a.claim(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			counts[s]++
			h.d.mu.Lock()
			spread := a.spread
			a.spread = false
			h.d.mu.Unlock()
			if !spread {
				t.Fatalf("claim %d (slot %d) in a forming group is not marked spread", k, s)
			}
		}
		if r := h.requests(); len(r) != 0 {
			t.Errorf("spread claims made requests %v", r)
		}
		for s, c := range counts {
			if s < 1 || s > 6 {
				t.Errorf("claims took slot %d %d times, out of the pool 1-6", s, c)
			}
		}
		// Uniform: 100 each on average; a binomial of 600 at 1/6 stays
		// within 60-140 but once in millions (and the seed is fixed).
		for s := 1; s <= 6; s++ {
			if c := counts[s]; c < 60 || c > 140 {
				t.Errorf("%d claims took slot %d %d times, want about %d", n, s, c, n/6)
			}
		}
	})
}

// TestClaimDoesNotSpreadWhenContendedOrSettled: a claim turned away
// respreadTries times, a settled group's newcomer, and a peer with
// spreading off take the lowest level with room, and the claim is not
// marked spread.
func TestClaimDoesNotSpreadWhenContendedOrSettled(t *testing.T) {
	check := func(t *testing.T, a *announcement, want ...int) {
		t.Helper()
		for k := range 20 {
			s, err := a.claim(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			a.d.mu.Lock()
			spread := a.spread
			a.d.mu.Unlock()
			if !slices.Contains(want, s) || spread {
				t.Fatalf("claim %d took slot %d (spread %v), want one of %v, not spread", k, s, spread, want)
			}
		}
	}
	t.Run("contended", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newAnnHarness(t, WithJoinSpread(3, 0))
			a := h.ann("me")
			a.refused = respreadTries
			check(t, a, 0)
		})
	})
	t.Run("settled, room in slot 0", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newAnnHarness(t, WithJoinSpread(3, 0))
			time.Sleep(time.Hour)
			h.put(0, 0, h.live(0, spreadRec("old"), h.d.stamp().Add(-time.Minute)))
			h.read(0)
			check(t, h.ann("me"), 0)
		})
	})
	t.Run("settled, slot 0 full", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newAnnHarness(t, WithJoinSpread(3, 0))
			time.Sleep(time.Hour)
			huge := func(id string) discovery.Record {
				return discovery.Record{ID: id, Meta: make([]byte, 380)}
			}
			old := h.d.stamp().Add(-time.Minute)
			h.put(0, 0, h.live(0, huge("old-a"), old), h.live(0, huge("old-b"), old))
			h.read(0)
			check(t, h.ann("me"), 1, 2)
		})
	})
	t.Run("spreading off", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newAnnHarness(t, WithJoinSpread(0, time.Second))
			check(t, h.ann("me"), 0)
		})
	})
}

// putNote is one of our PUTs as the run made it: where, when, and the
// claim's state then.
type putNote struct {
	slot     int
	at       time.Time
	spread   bool
	respread bool
	refused  int
	unjudged bool
}

// notePuts records each of our PUTs that lands, with the state of
// announcement id's claim at that moment.
func notePuts(h *annHarness, id string) func() []putNote {
	var mu sync.Mutex
	var notes []putNote
	h.afterPut = func(p *pkarrclient.SignedPacket) {
		n := putNote{slot: h.keys[p.PublicKey()], at: time.Now()}
		h.d.mu.Lock()
		if a := h.d.anns[id]; a != nil {
			n.spread, n.respread, n.refused, n.unjudged = a.spread, a.respread, a.refused, a.unjudged
		}
		h.d.mu.Unlock()
		mu.Lock()
		notes = append(notes, n)
		mu.Unlock()
	}
	return func() []putNote {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(notes)
	}
}

// TestRunWaitsBeforeASpreadWrite: a spread claim's first write comes a
// random time within the join wait after the claim (the relay answers at
// once and the claim reads nothing, so the PUT's time tells); the waits
// of peers of different seeds spread over the range. Once held, the
// claim is no longer spread.
func TestRunWaitsBeforeASpreadWrite(t *testing.T) {
	const wait = 500 * time.Millisecond
	var waits []time.Duration
	for seed := range uint64(20) {
		synctest.Test(t, func(t *testing.T) {
			h := newAnnHarness(t, WithSeed(seed), WithJoinSpread(3, wait))
			puts := notePuts(h, "me")
			t0 := time.Now()
			a := announceIn(t, h, spreadRec("me"))
			p := puts()
			if len(p) != 1 || !p[0].spread {
				t.Fatalf("seed %d: PUTs %+v, want one, of a spread claim", seed, p)
			}
			w := p[0].at.Sub(t0)
			if w < 0 || w > wait {
				t.Errorf("seed %d: the first write came %v after the claim, want within [0, %v]", seed, w, wait)
			}
			waits = append(waits, w)
			h.d.mu.Lock()
			spread := a.spread
			h.d.mu.Unlock()
			if spread || h.d.Slot("me") != p[0].slot {
				t.Errorf("seed %d: holding slot %d (wrote %d), still marked spread: %v", seed, h.d.Slot("me"), p[0].slot, spread)
			}
		})
	}
	lo, hi := slices.Min(waits), slices.Max(waits)
	if lo > wait/4 || hi < 3*wait/4 {
		t.Errorf("20 peers' waits span %v to %v, want them spread over [0, %v]", lo, hi, wait)
	}
}

// TestRunDoesNotWaitUnlessSpread: a claim that is not spread writes at
// once: a settled group's newcomer, and a claim after a full slot turned
// a spread one away (it is contended). A join wait of 0 means no wait
// even for a spread claim.
func TestRunDoesNotWaitUnlessSpread(t *testing.T) {
	t.Run("settled", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newAnnHarness(t, WithJoinSpread(3, 500*time.Millisecond))
			time.Sleep(time.Hour)
			h.put(0, 0, h.live(0, spreadRec("old"), h.d.stamp().Add(-time.Minute)))
			h.read(0)
			puts := notePuts(h, "me")
			t0 := time.Now()
			announceIn(t, h, spreadRec("me"))
			if p := puts(); len(p) != 1 || p[0].slot != 0 || p[0].spread || !p[0].at.Equal(t0) {
				t.Errorf("PUTs %+v, want one into slot 0 at once (%v), not spread", p, t0)
			}
		})
	})
	t.Run("after full slots", func(t *testing.T) {
		// Every slot of levels 0-2 is full with young entries: the first
		// claim spreads into one and is turned away, the next spread again
		// without waiting until respreadTries refusals, and the last,
		// contended, goes to level 3.
		for seed := range uint64(10) {
			synctest.Test(t, func(t *testing.T) {
				// The refusal and the contended claim's reads come at one
				// moment (the relay answers at once): the write must too.
				p, refused := claimPastFull(t, seed, 7)
				if len(p) != 1 || levelOf(p[0].slot) != 3 || p[0].spread || p[0].refused != respreadTries || !p[0].at.Equal(refused) {
					t.Errorf("seed %d: PUTs %+v, want one into level 3 at once (%v, when the last full slot refused us), not spread, %d refusals", seed, p, refused, respreadTries)
				}
			})
		}
	})
	t.Run("respread after a full slot", func(t *testing.T) {
		// Slots 0-5 are full with young entries, slot 6 empty: a claim a
		// full slot turned away spreads again at once (the group it joins
		// has written already), and its scans need not wait for it.
		respread := 0
		for seed := range uint64(12) {
			synctest.Test(t, func(t *testing.T) {
				p, refused := claimPastFull(t, seed, 6)
				if len(p) == 1 && p[0].refused == respreadTries {
					// Turned away as often as a claim spreads: it walks.
					if levelOf(p[0].slot) != 3 || p[0].spread {
						t.Errorf("seed %d: PUTs %+v, want the walk's into level 3", seed, p)
					}
					return
				}
				if len(p) != 1 || p[0].slot != 6 || !p[0].spread {
					t.Fatalf("seed %d: PUTs %+v, want one into slot 6, spread", seed, p)
				}
				if p[0].refused == 0 {
					return // the first pick was slot 6
				}
				respread++
				if !p[0].respread || p[0].unjudged || !p[0].at.Equal(refused) {
					t.Errorf("seed %d: PUTs %+v, want a respread claim, not holding the scans, written at once (%v, when the last full slot refused us)", seed, p, refused)
				}
			})
		}
		if respread < 3 {
			t.Errorf("%d of 12 seeds' first picks were turned away, want several: the case is not exercised", respread)
		}
	})
	t.Run("join wait 0", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newAnnHarness(t, WithJoinSpread(3, 0))
			puts := notePuts(h, "me")
			t0 := time.Now()
			announceIn(t, h, spreadRec("me"))
			if p := puts(); len(p) != 1 || !p[0].spread || !p[0].at.Equal(t0) {
				t.Errorf("PUTs %+v, want one of a spread claim at once (%v)", p, t0)
			}
		})
	})
}

// TestRunLockedSlotIsNoRefusal: a slot found locked when the write reads
// it does not make the claim contended: with slots 0 to 5 locked and
// slot 6 free, the claims go on spreading until they reach slot 6. (Were
// the lock a refusal, the contended claim would pass level 2, one slot of
// four with room, over for slot 7.) A full slot is one: see
// TestRunDoesNotWaitUnlessSpread.
func TestRunLockedSlotIsNoRefusal(t *testing.T) {
	for seed := range uint64(5) {
		synctest.Test(t, func(t *testing.T) {
			h := newAnnHarness(t, WithSeed(seed), WithJoinSpread(3, 0))
			ahead := pkarrclient.TimestampFromTime(time.Now().Add(time.Hour))
			for i := range 6 {
				h.put(i, ahead)
			}
			puts := notePuts(h, "me")
			announceIn(t, h, spreadRec("me"))
			p := puts()
			if len(p) != 1 || p[0].slot != 6 || !p[0].spread || p[0].refused != 0 {
				t.Errorf("seed %d: PUTs %+v, want one into slot 6, spread, no refusal", seed, p)
			}
			if got := h.d.Slot("me"); got != 6 {
				t.Errorf("seed %d: in slot %d, want 6", seed, got)
			}
		})
	}
}

// TestReadBackDelay: the wait before a read-back is drawn within the
// verify range while twice the last write's round trip is under it; at
// least twice the round trip otherwise, exactly that once it passes the
// range's top.
func TestReadBackDelay(t *testing.T) {
	cfg := defaultConfig()
	d := &Discoverer{cfg: cfg, rnd: newLockedRand(1)}
	for _, c := range []struct {
		rtt, lo, hi time.Duration
	}{
		{0, 150 * time.Millisecond, 800 * time.Millisecond},
		{50 * time.Millisecond, 150 * time.Millisecond, 800 * time.Millisecond},
		{75 * time.Millisecond, 150 * time.Millisecond, 800 * time.Millisecond},
		{100 * time.Millisecond, 200 * time.Millisecond, 800 * time.Millisecond},
		{250 * time.Millisecond, 500 * time.Millisecond, 800 * time.Millisecond},
		{400 * time.Millisecond, 800 * time.Millisecond, 800 * time.Millisecond},
		{500 * time.Millisecond, time.Second, time.Second},
		{time.Second, 2 * time.Second, 2 * time.Second},
	} {
		d.rtt = c.rtt
		var got []time.Duration
		for range 200 {
			got = append(got, d.readBackDelay())
		}
		lo, hi := slices.Min(got), slices.Max(got)
		if lo < c.lo || hi > c.hi {
			t.Errorf("rtt %v: delays %v to %v, want within [%v, %v]", c.rtt, lo, hi, c.lo, c.hi)
		}
		// A real range is drawn over, not pinned to an end.
		if span := c.hi - c.lo; span > 0 && (lo > c.lo+span/10 || hi < c.hi-span/10) {
			t.Errorf("rtt %v: 200 delays span only %v to %v of [%v, %v]", c.rtt, lo, hi, c.lo, c.hi)
		}
	}
}

// TestPublishReadsBackAfterTwiceTheRoundTrip: a write whose round trip
// took 1 s is read back 2 s after it returned, though the verify range is
// 150-500 ms: publish takes 3 s in all, and notes the round trip.
func TestPublishReadsBackAfterTwiceTheRoundTrip(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarness(t, WithVerifyDelay(150*time.Millisecond, 500*time.Millisecond))
		h.afterPut = func(*pkarrclient.SignedPacket) { time.Sleep(time.Second) }
		a := h.ann("me")
		t0 := time.Now()
		if !a.publish(t.Context(), 3) {
			t.Fatal("publish into an empty slot failed")
		}
		if took := time.Since(t0); took != 3*time.Second {
			t.Errorf("publish took %v, want 3 s: a write of 1 s, a read-back 2 s after", took)
		}
		h.d.mu.Lock()
		rtt := h.d.rtt
		h.d.mu.Unlock()
		if rtt != time.Second {
			t.Errorf("round trip noted %v, want 1 s", rtt)
		}
		if r, want := h.requests(), []string{"GET 3", "PUT 3", "GET 3"}; !slices.Equal(r, want) {
			t.Errorf("requests %v, want %v", r, want)
		}
	})
}

// TestSpreadOptionsReachTheDiscoverer: WithRequestBudget sets the budget
// every request takes from, WithJoinSpread the claim's and the scanner's
// join levels and the wait; the defaults are 1.9/s burst 10, 3 levels,
// 500 ms.
func TestSpreadOptionsReachTheDiscoverer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarness(t, WithRequestBudget(3, 7), WithJoinSpread(2, 300*time.Millisecond))
		d := h.d
		if d.budget.all.Limit() != 3 || d.budget.all.Burst() != 7 {
			t.Errorf("request budget %v/s burst %d, want 3/s burst 7", d.budget.all.Limit(), d.budget.all.Burst())
		}
		if d.cfg.joinLevels != 2 || d.scanner.joinLevels != 2 || d.cfg.joinWait != 300*time.Millisecond {
			t.Errorf("join spread: %d levels (scanner %d), wait %v; want 2, 2, 300ms", d.cfg.joinLevels, d.scanner.joinLevels, d.cfg.joinWait)
		}
		got := pool(t, h.ann("me"), time.Minute, d.cfg.joinLevels)
		if !slices.Equal(got, []int{0, 1, 2}) {
			t.Errorf("pool over 2 levels %v, want [0 1 2]", got)
		}
	})
	client, _ := fuzzClient(t)
	d, err := New(client, fuzzGroup(t, fuzzPassphrase), WithSettleWait(0))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(t.Context())
	if d.budget.all.Limit() != 1.9 || d.budget.all.Burst() != 10 || d.scanner.joinLevels != 3 || d.cfg.joinWait != 500*time.Millisecond {
		t.Errorf("defaults: request budget %v/s burst %d, join levels %d, wait %v", d.budget.all.Limit(), d.budget.all.Burst(), d.scanner.joinLevels, d.cfg.joinWait)
	}
}

// claimPastFull announces a peer of a forming group (seed fixed) whose
// slots 0 to n-1 are full with young entries, and returns its PUTs and
// the last read of those slots: when the last of them turned it away.
func claimPastFull(t *testing.T, seed uint64, n int) ([]putNote, time.Time) {
	h := newAnnHarness(t, WithSeed(seed), WithJoinSpread(3, 500*time.Millisecond))
	for i := range n {
		h.full(i)
	}
	puts := notePuts(h, "me")
	announceIn(t, h, spreadRec("me"))
	h.d.mu.Lock()
	var last time.Time
	for i := range n {
		if r := h.d.view.slot(i).read; r.After(last) {
			last = r
		}
	}
	h.d.mu.Unlock()
	return puts(), last
}
