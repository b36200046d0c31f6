package slotdiscovery

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/phrasemeet/discovery"
	"github.com/phrasemeet/discovery/pkarrclient"
)

// utDiscoverer starts a discoverer over an in-memory backend holding
// packets, on a stopped fake clock, and waits for its first scan to end:
// the scan loop then waits for a clock that does not move, and the test
// has the discoverer to itself.
func utDiscoverer(t *testing.T, packets ...*pkarrclient.SignedPacket) (*Discoverer, *fuzzBackend) {
	t.Helper()
	client, backend := fuzzClient(t)
	backend.set(nil, packets...)
	d, err := New(client, fuzzGroup(t, fuzzPassphrase), WithClock(clockwork.NewFakeClockAt(fuzzNow)),
		WithGetBudget(1000, 1000, 1000), WithRequestBudget(1000, 1000), WithSeed(1), WithSettleWait(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(context.Background()) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		d.mu.Lock()
		done := d.scanner.took > 0 || d.scanner.scans > 0 && d.view.slots[0] != nil && !d.view.slots[0].read.IsZero()
		d.mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first scan did not end")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // the first scan's last reads
	return d, backend
}

func TestReadLevels(t *testing.T) {
	for _, c := range []struct{ l, lo, hi int }{{0, 0, 1}, {1, 1, 3}, {2, 3, 7}, {4, 15, 31}, {5, 31, 63}, {16, 65535, 131071}} {
		if lo, hi := levelRange(c.l); lo != c.lo || hi != c.hi {
			t.Errorf("levelRange(%d) = %d, %d; want %d, %d", c.l, lo, hi, c.lo, c.hi)
		}
		for i := c.lo; i < c.hi; i += max(1, (c.hi-c.lo)/7) {
			if got := levelOf(i); got != c.l {
				t.Errorf("levelOf(%d) = %d, want %d", i, got, c.l)
			}
		}
		if got := levelOf(c.hi - 1); got != c.l {
			t.Errorf("levelOf(%d) = %d, want %d", c.hi-1, got, c.l)
		}
	}
}

// TestReadSlot: a read counts a GET and folds what it found into the
// view: a packet's entries, or an empty slot when there is none. A failed
// read changes no view and returns the error; a 429 is counted and, from
// the only relay there is, pauses the budget.
func TestReadSlot(t *testing.T) {
	g := fuzzGroup(t, fuzzPassphrase)
	d, backend := utDiscoverer(t, slotPacket(t, g, 0, discovery.Record{ID: "x"}))
	ctx := context.Background()
	utReads(d)
	base := d.Stats()
	if err := d.readSlotWith(ctx, 0, d.budget.gets); err != nil {
		t.Fatal(err)
	}
	if err := d.readSlotWith(ctx, 9, d.budget.gets); err != nil {
		t.Fatalf("a read of an empty slot: %v", err)
	}
	if got := utReads(d); len(got) != 2 || got[0] != 0 || got[1] != 9 {
		t.Fatalf("read %v, want [0 9]", got)
	}
	if _, ok := d.tracker.Get("x"); !ok {
		t.Error("the entry read in slot 0 was not reported")
	}
	if s := d.Stats(); s.Gets != base.Gets+2 || s.RateLimited != base.RateLimited {
		t.Errorf("after two reads: %+v (before %+v)", s, base)
	}

	backend.set(errors.New("relay down"))
	if err := d.readBack(ctx, 0); err == nil {
		t.Fatal("a failed read succeeded")
	}
	if got := utReads(d); len(got) != 0 {
		t.Errorf("a failed read marked %v read", got)
	}
	if s := d.Stats(); s.Gets != base.Gets+3 || s.RateLimited != base.RateLimited {
		t.Errorf("after a failed read: %+v (before %+v)", s, base)
	}
	if n := d.readSlots(ctx, []int{0, 1, 2}); n != 0 {
		t.Errorf("readSlots with the relay down: %d succeeded", n)
	}

	backend.set(&pkarrclient.RateLimitError{RetryAfter: 5 * time.Second})
	if err := d.readSlotWith(ctx, 0, d.budget.gets); !errors.Is(err, pkarrclient.ErrRateLimited) {
		t.Fatalf("a read answered 429: %v", err)
	}
	if s := d.Stats(); s.RateLimited != base.RateLimited+1 {
		t.Errorf("a 429 counted %d times", s.RateLimited-base.RateLimited)
	}
	if p := d.budget.paused(d.now()); p != 5*time.Second {
		t.Errorf("a 429 from the only relay paused for %v, want 5 s", p)
	}
}

// TestReadSlots: reads run together, and the number that succeeded is
// returned.
func TestReadSlots(t *testing.T) {
	g := fuzzGroup(t, fuzzPassphrase)
	d, _ := utDiscoverer(t, slotPacket(t, g, 1, discovery.Record{ID: "x"}))
	utReads(d)
	if n := d.readSlots(context.Background(), []int{0, 1, 2, 3}); n != 4 {
		t.Errorf("readSlots: %d succeeded, want 4", n)
	}
	if got := utReads(d); len(got) != 4 {
		t.Errorf("read %v", got)
	}
	if s := d.Slot("nobody"); s != -1 {
		t.Errorf("Slot of an ID not announced: %d, want -1", s)
	}
}
