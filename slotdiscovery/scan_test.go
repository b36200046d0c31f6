package slotdiscovery

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/phrasemeet/discovery/pkarrclient"
)

// utScanner is a scanner with the default schedule, its fast phase over
// at utStart.
func utScanner() *scanner {
	cfg := defaultConfig()
	s := newScanner(&cfg, utStart)
	return &s
}

// utFill makes slot i of v hold entries leaving less room than a typical
// entry needs: full.
func utFill(v *view, i int, read time.Time) {
	sv := v.slot(i)
	sv.read = read
	sv.entries["big-a"] = utLive("big-a", 0, 400)
	sv.entries["big-b"] = utLive("big-b", 0, 400)
}

func TestScanNewScanner(t *testing.T) {
	cfg := defaultConfig()
	s := newScanner(&cfg, utAt(60))
	if s.every != cfg.scan || s.fastEvery != cfg.fastScan || s.fastPhase != cfg.fastPhase ||
		s.republish != cfg.republish || s.getRate != cfg.getRate || !s.fastUntil.Equal(utAt(60)) || s.scans != 0 {
		t.Errorf("newScanner: %+v", s)
	}
}

// TestScanProbeEveryThirdScan: the probe one level further runs on the
// third scan, the sixth, and so on.
func TestScanProbeEveryThirdScan(t *testing.T) {
	s := utScanner()
	var got []bool
	for range 7 {
		got = append(got, s.begin())
	}
	if want := []bool{false, false, true, false, false, true, false}; !slices.Equal(got, want) {
		t.Errorf("probes %v, want %v", got, want)
	}
	if s.scans != 7 {
		t.Errorf("%d scans counted, want 7", s.scans)
	}
}

// TestScanFast: scans run fast during the fast phase, and while an
// announcement claims, for at most claimingFast fast phases.
func TestScanFast(t *testing.T) {
	s := utScanner()
	s.fastUntil = utAt(60)
	phase := s.fastPhase
	for _, c := range []struct {
		name     string
		now      time.Time
		claiming []time.Time
		want     bool
	}{
		{"in the fast phase", utAt(59), nil, true},
		{"at its end", utAt(60), nil, false},
		{"holding a slot", utAt(60), []time.Time{{}}, false},
		{"claiming", utAt(100), []time.Time{{}, utAt(90)}, true},
		{"claiming just under the bound", utAt(90).Add(claimingFast*phase - time.Nanosecond), []time.Time{utAt(90)}, true},
		{"claiming for the bound", utAt(90).Add(claimingFast * phase), []time.Time{utAt(90)}, false},
	} {
		if got := s.fast(c.now, c.claiming); got != c.want {
			t.Errorf("%s: fast %v, want %v", c.name, got, c.want)
		}
	}
}

// TestScanPickWholeLevels: levels 0 to 4 are read whole, in order.
func TestScanPickWholeLevels(t *testing.T) {
	s := utScanner()
	v, _, _ := utView()
	rnd := newLockedRand(1)
	for l := 0; l <= 4; l++ {
		lo, hi := levelRange(l)
		var want []int
		for i := lo; i < hi; i++ {
			want = append(want, i)
		}
		if got := s.pick(l, rnd, v, []int{lo}, utStart); !slices.Equal(got, want) {
			t.Errorf("level %d: %v, want %v", l, got, want)
		}
	}
}

// TestScanPickSampled: a sampled level reads sampleSize random slots, its
// meeting points, the followed slots in it and our own slots in it,
// sorted, each once.
func TestScanPickSampled(t *testing.T) {
	s := utScanner()
	now := utStart
	// utPick picks level l with followed and own slots, on a seed whose
	// sample misses the level's first two and last two slots, so that
	// only the followed and own slots bring those in. The level's first
	// two slots are locked, so its meeting points are the next two.
	utPick := func(l int, followed, own []int) (got, want []int) {
		v, _, _ := utView()
		lo, hi := levelRange(l)
		for _, i := range []int{lo, lo + 1} {
			v.slot(i).locked = true
			v.slot(i).lockedUntil = now.Add(time.Hour)
		}
		for _, i := range followed {
			v.followed[i] = true
		}
		seed := uint64(0)
		for ; ; seed++ {
			sample := newLockedRand(seed).perm(hi - lo)[:sampleSize]
			if !slices.ContainsFunc(sample, func(j int) bool { return j < 2 || j >= hi-lo-2 }) {
				break
			}
		}
		got = s.pick(l, newLockedRand(seed), v, own, now)
		set := map[int]bool{lo + 2: true, lo + 3: true}
		for _, j := range newLockedRand(seed).perm(hi - lo)[:sampleSize] {
			set[lo+j] = true
		}
		for _, i := range append(slices.Clone(followed), own...) {
			if i >= lo && i < hi {
				set[i] = true
			}
		}
		for i := range set {
			want = append(want, i)
		}
		slices.Sort(want)
		return got, want
	}
	// Level 6 is slots 63 to 126, level 7 slots 127 to 254.
	for _, c := range []struct {
		name          string
		followed, own []int
	}{
		{"followed at the level's edges", []int{62, 63, 126, 127}, nil},
		{"own at the level's edges", nil, []int{30, 62, 63, 126, 127, 200}},
	} {
		got, want := utPick(6, c.followed, c.own)
		if !slices.Equal(got, want) || !slices.Contains(got, 63) || !slices.Contains(got, 126) {
			t.Errorf("%s: %v, want %v", c.name, got, want)
		}
		if len(got) != sampleSize+meetingSlots+2 {
			t.Errorf("%s: %d slots, want %d", c.name, len(got), sampleSize+meetingSlots+2)
		}
	}
	// Level 5 (32 slots) is sampled too.
	v, _, _ := utView()
	if got := s.pick(5, newLockedRand(7), v, nil, now); len(got) > sampleSize+meetingSlots || len(got) < sampleSize {
		t.Errorf("level 5: %v, want a sample", got)
	}
}

// TestScanMeeting: a sampled level's meeting points are its first slots
// whose lock is not known to hold, at most n, within the level.
func TestScanMeeting(t *testing.T) {
	s := utScanner()
	v, _, _ := utView()
	now := utAt(100)
	lock := func(i int, until time.Time) {
		v.slot(i).locked = true
		v.slot(i).lockedUntil = until
	}
	lock(31, now.Add(time.Second)) // holds
	lock(32, now)                  // ends now: no longer holds
	lock(33, now.Add(time.Second))
	if got := s.meeting(v, 5, 2, now); !slices.Equal(got, []int{32, 34}) {
		t.Errorf("meeting(5, 2): %v, want [32 34]", got)
	}
	if got := s.meeting(v, 5, 1, now); !slices.Equal(got, []int{32}) {
		t.Errorf("meeting(5, 1): %v, want [32]", got)
	}
	if got := s.meeting(v, 1, 5, now); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("meeting(1, 5): %v, want the level's two slots", got)
	}
	lock(1, now.Add(time.Second))
	lock(2, now.Add(time.Second))
	if got := s.meeting(v, 1, 5, now); len(got) != 0 {
		t.Errorf("meeting of a level all locked: %v", got)
	}
}

// TestScanDeepest: the deepest level with a live peer we know, or a slot
// we hold.
func TestScanDeepest(t *testing.T) {
	s := utScanner()
	v, _, _ := utView()
	if got := s.deepest(v, nil); got != 0 {
		t.Errorf("nothing known: %d", got)
	}
	v.peers["a"] = &peerView{live: true, slot: 7}       // level 3
	v.peers["gone"] = &peerView{live: false, slot: 500} // level 8, but gone
	if got := s.deepest(v, []int{-1, 2}); got != 3 {
		t.Errorf("a live peer in level 3, ours in 1: %d, want 3", got)
	}
	if got := s.deepest(v, []int{40}); got != 5 {
		t.Errorf("ours in level 5: %d, want 5", got)
	}
}

// TestScanDeeper: a scan goes on when every slot it read of a level may
// have turned a claimer away, or when someone is known deeper.
func TestScanDeeper(t *testing.T) {
	s := utScanner()
	v, _, _ := utView()
	var r room
	utFill(v, 1, utStart)
	utFill(v, 2, utStart)
	if !s.deeper(1, []int{1, 2}, v, &r, nil) {
		t.Error("level 1 full: not deeper")
	}
	if s.deeper(2, []int{3, 4, 5, 6}, v, &r, nil) {
		t.Error("level 2 empty: deeper")
	}
	utFill(v, 3, utStart)
	utFill(v, 4, utStart)
	utFill(v, 5, utStart)
	if s.deeper(2, []int{3, 4, 5, 6}, v, &r, nil) {
		t.Error("level 2 with its last slot free: deeper")
	}
	if s.deeper(2, []int{6, 3, 4, 5}, v, &r, nil) {
		t.Error("level 2 with its first slot read free: deeper")
	}
	if s.deeper(2, nil, v, &r, nil) {
		t.Error("no slot read: deeper")
	}
	if !s.deeper(2, []int{3, 4, 5, 6}, v, &r, []int{7}) {
		t.Error("ours in level 3: not deeper from level 2")
	}
	if s.deeper(3, []int{7}, v, &r, []int{7}) {
		t.Error("ours in level 3: deeper from level 3")
	}
	v.peers["p"] = &peerView{live: true, slot: 20} // level 4
	if !s.deeper(3, []int{7}, v, &r, nil) {
		t.Error("a peer in level 4: not deeper from level 3")
	}
}

// TestScanProbeSlots: a probe reads the level's meeting point, and one
// slot at random besides, not the same one twice.
func TestScanProbeSlots(t *testing.T) {
	s := utScanner()
	v, _, _ := utView()
	for seed := range uint64(40) {
		l := 3 // slots 7 to 14
		got := s.probeSlots(l, newLockedRand(seed), v, utStart)
		r := 7 + newLockedRand(seed).intN(8)
		want := []int{7, r}
		if r == 7 {
			want = []int{7}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("seed %d: %v, want %v", seed, got, want)
		}
	}
	v.slot(7).locked = true
	v.slot(7).lockedUntil = utAt(1)
	if got := s.probeSlots(3, newLockedRand(0), v, utStart); got[0] != 8 {
		t.Errorf("with slot 7 locked: %v, want 8 first", got)
	}
}

// TestScanWorthReading: a slot whose lock holds is not read; in the fast
// phase neither is a full slot read within the last steady period.
func TestScanWorthReading(t *testing.T) {
	s := utScanner()
	v, _, _ := utView()
	var r room
	now := utAt(100) // the entries, written at utStart, still fresh
	v.slot(1).locked = true
	v.slot(1).lockedUntil = now.Add(time.Second) // lock holds
	v.slot(2).locked = true
	v.slot(2).lockedUntil = now // lock ended
	utFill(v, 3, now.Add(-s.every+time.Nanosecond))
	utFill(v, 4, now.Add(-s.every)) // a steady period ago
	v.slot(5).read = now            // read now, with room
	utFill(v, 6, time.Time{})       // full, never read
	idx := []int{0, 1, 2, 3, 4, 5, 6}
	if got, want := s.worthReading(idx, true, now, v, &r), []int{0, 2, 4, 5, 6}; !slices.Equal(got, want) {
		t.Errorf("fast: %v, want %v", got, want)
	}
	if got, want := s.worthReading(idx, false, now, v, &r), []int{0, 2, 3, 4, 5, 6}; !slices.Equal(got, want) {
		t.Errorf("steady: %v, want %v", got, want)
	}
	if got := s.worthReading(idx, false, now, v, &r); &got[0] == &idx[0] {
		t.Error("worthReading wrote into its argument")
	}
}

// TestScanRate: the steady scan rate is 90% of the GET budget less two
// reads per announcement per republish, never under a quarter of it.
func TestScanRate(t *testing.T) {
	s := utScanner()
	s.getRate, s.republish = 2, 10*time.Second
	for _, c := range []struct {
		anns int
		want float64
	}{
		{0, 1.8},
		{1, 1.6},
		{5, 0.8},
		{6, 0.6},
		{7, 0.5},
		{8, 0.5},
	} {
		if got := s.scanRate(c.anns); got < c.want-1e-9 || got > c.want+1e-9 {
			t.Errorf("%d announcements: %v, want %v", c.anns, got, c.want)
		}
	}
}

// TestScanPeriod: the period is the steady one within 25%, or the fast one
// within 20%, drawn after the steady one (so a seed gives the same run).
func TestScanPeriod(t *testing.T) {
	s := utScanner()
	s.every, s.fastEvery = 100*time.Second, 10*time.Second
	for seed := range uint64(20) {
		rnd, ref := newLockedRand(seed), newLockedRand(seed)
		if got, want := s.period(false, rnd), ref.jitter(100*time.Second, 0.25); got != want {
			t.Errorf("seed %d steady: %v, want %v", seed, got, want)
		}
		ref.jitter(100*time.Second, 0.25)
		if got, want := s.period(true, rnd), ref.jitter(10*time.Second, 0.2); got != want || got < 8*time.Second || got > 12*time.Second {
			t.Errorf("seed %d fast: %v, want %v", seed, got, want)
		}
	}
}

// utReads returns the slots d has read since the last call, and forgets
// those reads (so that worthReading does not skip a full slot just read).
func utReads(d *Discoverer) []int {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []int
	for i, sv := range d.view.slots {
		if !sv.read.IsZero() {
			out = append(out, i)
			sv.read = time.Time{}
		}
	}
	slices.Sort(out)
	return out
}

// TestScanStopsAtTheFirstLevelWithRoom: with levels 0 and 1 full, a scan
// reads levels 0 to 2 and stops there; every third scan probes level 3 too
// (its first slot and one at random).
func TestScanStopsAtTheFirstLevelWithRoom(t *testing.T) {
	g := fuzzGroup(t, fuzzPassphrase)
	var packets []*pkarrclient.SignedPacket
	for i := range 3 {
		packets = append(packets, slotPacket(t, g, i, big(fmt.Sprint("big-", i, "a")), big(fmt.Sprint("big-", i, "b"))))
	}
	d := deepTest(t, packets...)
	utReads(d)
	d.mu.Lock()
	d.scanner.scans = 0
	d.mu.Unlock()
	ctx := context.Background()
	levels := []int{0, 1, 2, 3, 4, 5, 6}
	for n := 1; n <= 2; n++ {
		d.scan(ctx)
		if got := utReads(d); !slices.Equal(got, levels) {
			t.Fatalf("scan %d read %v, want %v", n, got, levels)
		}
	}
	d.scan(ctx)
	got := utReads(d)
	if !slices.Equal(got[:len(levels)], levels) || len(got) < len(levels)+1 || len(got) > len(levels)+2 || got[len(levels)] != 7 {
		t.Fatalf("the probing scan read %v, want %v, slot 7 and at most one more of level 3", got, levels)
	}
	for _, i := range got[len(levels):] {
		if levelOf(i) != 3 {
			t.Fatalf("the probing scan read slot %d, of level %d", i, levelOf(i))
		}
	}
	d.mu.Lock()
	took := d.scanner.scans
	d.mu.Unlock()
	if took != 3 {
		t.Errorf("%d scans counted, want 3", took)
	}
}

// TestScanGoesWhereAPeerIs: a known live peer deeper than the first level
// with room takes the scan down to its level, and no further.
func TestScanGoesWhereAPeerIs(t *testing.T) {
	d := deepTest(t)
	utReads(d)
	d.mu.Lock()
	d.scanner.scans = 0
	d.view.peers["deep"] = &peerView{time: fuzzNow, live: true, slot: 8} // level 3
	d.mu.Unlock()
	d.scan(context.Background())
	got := utReads(d)
	if want := 15; len(got) != want || got[len(got)-1] != 14 {
		t.Fatalf("the scan read %v, want levels 0 to 3 (slots 0 to 14)", got)
	}
}

// TestScanLoopPace: after the fast phase the scan loop sets the GET budget
// to the steady rate left after our announcements' reads, with the steady
// burst.
func TestScanLoopPace(t *testing.T) {
	client, backend := fuzzClient(t)
	backend.set(nil)
	clock := clockwork.NewFakeClockAt(fuzzNow)
	d, err := New(client, fuzzGroup(t, fuzzPassphrase), WithClock(clock),
		WithGetBudget(0.5, 1000, 8), WithRequestBudget(1000, 1000), WithSeed(1), WithSettleWait(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(context.Background()) })
	pace := func() (rate float64, burst int) {
		return float64(d.budget.gets.Limit()), d.budget.gets.Burst()
	}
	if r, b := pace(); r != 1000 || b != 8 {
		t.Fatalf("at the start: %v/s burst %d, want the fast 1000/s burst 8", r, b)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		// Each turn lets the loop's timer fire; the scans read nothing.
		clock.Advance(10 * time.Second)
		if r, b := pace(); r == 0.45 && b == steadyBurst {
			break
		}
		if time.Now().After(deadline) {
			r, b := pace()
			t.Fatalf("after the fast phase: %v/s burst %d, want 0.45/s burst %d", r, b, steadyBurst)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestScanDownToTheLastLevel: a peer known in the last level takes the
// scan down to it, and a probing scan goes no further.
func TestScanDownToTheLastLevel(t *testing.T) {
	d := deepTest(t)
	utReads(d)
	lo, hi := levelRange(maxLevel)
	d.mu.Lock()
	d.scanner.scans = 2 // the next scan probes
	d.view.peers["deepest"] = &peerView{time: fuzzNow, live: true, slot: lo}
	d.mu.Unlock()
	d.scan(context.Background())
	got := utReads(d)
	if !slices.Contains(got, lo) {
		t.Errorf("the scan did not read the last level's first slot %d", lo)
	}
	for _, i := range got {
		if i >= hi {
			t.Errorf("the scan read slot %d, beyond the last level", i)
		}
	}
}

// TestScanLoopPeriodFromTheScanStart: the scan period runs from a scan's
// start, so a scan the budget stretched past the period is followed by the
// next at once, not by a full period of idling.
func TestScanLoopPeriodFromTheScanStart(t *testing.T) {
	client, backend := fuzzClient(t)
	backend.set(nil)
	clock := clockwork.NewFakeClockAt(fuzzNow)
	// One GET per 100 s: the first scan takes the token, the second waits
	// 88 s for the next, far longer than a period. Spreading off: a fast
	// scan would read the join levels whole, and the first scan would wait
	// for their tokens instead of ending after slot 0.
	d, err := New(client, fuzzGroup(t, fuzzPassphrase), WithClock(clock),
		WithGetBudget(0.01, 0.01, 1), WithSeed(1), WithSettleWait(0), WithJoinSpread(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(context.Background()) })
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	scans := func() int {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.scanner.scans
	}
	if err := clock.BlockUntilContext(ctx, 1); err != nil { // the period after the first scan
		t.Fatal(err)
	}
	clock.Advance(12 * time.Second)
	if err := clock.BlockUntilContext(ctx, 1); err != nil { // the second scan's wait for a GET
		t.Fatal(err)
	}
	if n := scans(); n != 2 {
		t.Fatalf("%d scans begun, want 2", n)
	}
	clock.Advance(88 * time.Second)
	for scans() < 3 {
		if ctx.Err() != nil {
			t.Fatalf("the scan after one that took 88 s (periods of about 15 s) did not begin at once: %d scans", scans())
		}
		time.Sleep(time.Millisecond)
	}
}

// TestScanWorthReadingDropsEntriesSeenNewerElsewhere: a full slot read
// recently is read again in the fast phase when one of its entries is a
// peer we have since seen newer in another slot (it lost a race there and
// went on): that entry holds no place, a newcomer may have taken its
// room, and skipping the slot would hide that newcomer for a steady
// period (the twenty-peer simulation's 17 s tail).
func TestScanWorthReadingDropsEntriesSeenNewerElsewhere(t *testing.T) {
	s := utScanner()
	v, _, _ := utView()
	var r room
	now := utAt(10)
	utFill(v, 3, now.Add(-time.Second))
	if got := s.worthReading([]int{3}, true, now, v, &r); len(got) != 0 {
		t.Fatalf("a full slot read a second ago: %v, want it skipped", got)
	}
	v.peers["big-b"] = &peerView{time: utStart.Add(time.Second), live: true, slot: 5}
	if got := s.worthReading([]int{3}, true, now, v, &r); !slices.Equal(got, []int{3}) {
		t.Errorf("with big-b seen newer in slot 5: %v, want slot 3 read again", got)
	}
	// The view of the slot stays as read: big-b may yet be back there (a
	// move up turned away keeps a peer where it was).
	if _, ok := v.slot(3).entries["big-b"]; !ok {
		t.Error("big-b was dropped from the view of slot 3")
	}
}
