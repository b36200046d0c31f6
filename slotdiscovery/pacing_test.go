package slotdiscovery

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jonboulle/clockwork"
)

// The pacing of reads against our own writes (budget.awaitToken,
// readSlots, and a claim's reads of a level: readEnough).

// TestScanReadsGoAfterOurWrites: a GET of scans and claims waiting for a
// token of the shared budget reserves nothing, so a PUT asked for later
// takes the next token, and the GET the one after.
func TestScanReadsGoAfterOurWrites(t *testing.T) {
	for _, kind := range []string{"PUT", "own GET"} {
		t.Run(kind, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				// Every request: 1/s, burst 1; each kind's own budget is ample.
				b := newBudget(clockwork.NewRealClock(), 1, 1, 1000, 1000, 1000, 1000)
				lim := b.puts
				if kind == "own GET" {
					lim = b.ownGets
				}
				t0 := time.Now()
				if err := b.take(t.Context(), b.gets); err != nil { // spends the shared token
					t.Fatal(err)
				}
				got := make(chan time.Duration, 1)
				go func() {
					if err := b.take(t.Context(), b.gets); err != nil {
						t.Error(err)
					}
					got <- time.Since(t0)
				}()
				synctest.Wait() // the scan's GET waits for the next token
				if err := b.take(t.Context(), lim); err != nil {
					t.Fatal(err)
				}
				if at := time.Since(t0); at != time.Second {
					t.Errorf("%s at %v, want 1s: the waiting GET went first", kind, at)
				}
				if at := <-got; at != 2*time.Second {
					t.Errorf("the waiting GET at %v, want 2s", at)
				}
			})
		})
	}
}

// TestAwaitTokenBurstBelowOne: a limiter whose burst can never hold a
// token is not waited on (the reservation then fails with an error).
func TestAwaitTokenBurstBelowOne(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBudget(clockwork.NewRealClock(), 1, 1, 10, 0, 1, 1)
		t0 := time.Now()
		if err := b.take(t.Context(), b.gets); err == nil {
			t.Error("a GET budget of burst 0 gave a token")
		}
		if waited := time.Since(t0); waited != 0 {
			t.Errorf("waited %v for a token that never comes", waited)
		}
	})
}

// getOrder returns the slots our GETs read, in order.
func getOrder(reqs []string) []int {
	var out []int
	for _, r := range reqs {
		if s, ok := strings.CutPrefix(r, "GET "); ok {
			i, _ := strconv.Atoi(s)
			out = append(out, i)
		}
	}
	return out
}

// TestReadSlotsInRandomOrder: paced, readSlots reads the slots given in a
// random order (fixed by the seed), all of them, one per token.
func TestReadSlotsInRandomOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newAnnHarness(t, WithGetBudget(1000, 1000, 1), WithRequestBudget(2, 1))
		idx := []int{7, 8, 9, 10, 11, 12, 13, 14}
		t0 := time.Now()
		if n := h.d.readSlots(t.Context(), idx); n != len(idx) {
			t.Fatalf("%d reads succeeded, want %d", n, len(idx))
		}
		got := getOrder(h.requests())
		if sorted := slices.Sorted(slices.Values(got)); !slices.Equal(sorted, idx) {
			t.Fatalf("read %v, want each of %v once", got, idx)
		}
		if slices.Equal(got, idx) {
			t.Errorf("read %v in the order given", got)
		}
		if took := time.Since(t0); took != 3500*time.Millisecond {
			t.Errorf("eight reads at 2/s, burst 1, took %v, want 3.5s", took)
		}
	})
}

// TestClaimReadsALevelUntilRoom: on a paced budget, a claim that finds
// levels 0-2 full reads level 3 (all empty) only until a slot with room
// comes back, and takes it; a contended claim that passed over a level
// with few places reads the next one in slot order, and takes its first.
func TestClaimReadsALevelUntilRoom(t *testing.T) {
	for _, c := range []struct {
		name    string
		refused int
		last    int // slots 0-last full, the rest of levels 0-2 empty
		want    int // the slot taken, -1 any of level 3
	}{
		{"uncontended", 0, 6, -1},
		{"contended, level 2 passed over", 1, 5, 7},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newAnnHarness(t, WithGetBudget(1000, 1000, 1), WithRequestBudget(2, 1))
				for i := 0; i <= c.last; i++ {
					h.full(i)
				}
				h.read(0, 1, 2, 3, 4, 5, 6)
				h.requests()
				a := h.ann("me")
				a.refused = c.refused
				got, err := a.claim(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				reads := getOrder(h.requests())
				if len(reads) != 1 || reads[0] != got {
					t.Fatalf("took slot %d after reading %v, want one read, of that slot", got, reads)
				}
				if c.want >= 0 && got != c.want || levelOf(got) != 3 {
					t.Errorf("took slot %d, want %d", got, c.want)
				}
			})
		})
	}
}

// TestReadEnough: a claim's reads of a level end once they show a slot
// with room, or our own entry; for a contended claim, only while at least
// half the slots it read have room.
func TestReadEnough(t *testing.T) {
	for _, c := range []struct {
		name      string
		full      []int // of level 3, read full
		empty     []int // of level 3, read empty
		mine      int   // of level 3, read holding our entry (-1: none)
		contended bool
		want      bool
	}{
		{"nothing read", nil, nil, -1, false, false},
		{"full only", []int{7, 8}, nil, -1, false, false},
		{"room", []int{7, 8}, []int{9}, -1, false, true},
		{"contended, half with room", []int{7}, []int{9}, -1, true, true},
		{"contended, most full", []int{7, 8}, []int{9}, -1, true, false},
		{"contended, our entry", []int{7, 8}, nil, 10, true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newAnnHarness(t)
				a := h.ann("me")
				for _, i := range c.full {
					h.full(i)
				}
				if c.mine >= 0 {
					h.put(c.mine, 0, h.live(c.mine, a.rec, h.d.stamp()))
				}
				read := append(slices.Clone(c.full), c.empty...)
				if c.mine >= 0 {
					read = append(read, c.mine)
				}
				h.read(read...)
				self, err := a.sealed(0)
				if err != nil {
					t.Fatal(err)
				}
				if got := a.readEnough(3, self, time.Minute, c.contended); got != c.want {
					t.Errorf("readEnough %v, want %v", got, c.want)
				}
			})
		})
	}
}
