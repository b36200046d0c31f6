package slotdiscovery

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jonboulle/clockwork"
	"golang.org/x/time/rate"
)

// The budget every request shares (budget.go: take and its all limiter).

// TestBudgetAllKindsShareTheRequestBudget: with generous budgets per kind,
// requests of every kind (GETs, the reads around writes, PUTs) started at
// once are let through no faster than the shared budget, 1.9/s with a
// burst of 10: in any window of length w at most 10 + 1.9 w of them; and
// no slower, the last at (n-10)/1.9 s.
func TestBudgetAllKindsShareTheRequestBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const reqRate, burst, n = 1.9, 10, 48
		b := newBudget(clockwork.NewRealClock(), reqRate, burst, 1000, 1000, 1000, 1000)
		t0 := time.Now()
		kinds := []*rate.Limiter{b.gets, b.ownGets, b.puts}
		var mu sync.Mutex
		var at []time.Duration
		var wg sync.WaitGroup
		for k := range n {
			wg.Go(func() {
				if err := b.take(t.Context(), kinds[k%len(kinds)]); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				at = append(at, time.Since(t0))
				mu.Unlock()
			})
		}
		wg.Wait()
		slices.Sort(at)
		if len(at) != n {
			t.Fatalf("%d of %d takes returned", len(at), n)
		}
		for i := range at {
			for j := i; j < len(at); j++ {
				w := (at[j] - at[i]).Seconds()
				if got, most := j-i+1, burst+reqRate*w+1e-6; float64(got) > most {
					t.Fatalf("%d requests within %.3f s (at %v to %v), want at most %.2f", got, w, at[i], at[j], most)
				}
			}
		}
		last := time.Duration(float64(n-burst) / reqRate * float64(time.Second))
		if d := at[n-1] - last; d < -time.Millisecond || d > time.Millisecond {
			t.Errorf("the last request at %v, want %v", at[n-1], last)
		}
	})
}

// TestBudgetCancelledTakeReturnsBothTokens: a take that waits for the
// shared budget and is cancelled gives back both its tokens: the next
// take, once the shared budget refills, goes at once, though its kind's
// own budget (burst 2, one token per 100 s) had only two.
func TestBudgetCancelledTakeReturnsBothTokens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBudget(clockwork.NewRealClock(), 1, 1, 1000, 1000, 0.01, 2)
		if err := b.take(t.Context(), b.puts); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		go func() { errc <- b.take(ctx, b.puts) }()
		synctest.Wait() // waiting a second for the shared token
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled take: %v, want context.Canceled", err)
		}
		time.Sleep(time.Second)
		t0 := time.Now()
		if waited, err := b.takeWaited(t.Context(), b.puts); err != nil || waited {
			t.Errorf("a second after the cancelled take: waited=%v (%v) err=%v, want the tokens at once", waited, time.Since(t0), err)
		}
	})
}

// TestBudgetSharedBurstBelowOne: a shared budget that can never give a
// token is an error, and the kind's token goes back.
func TestBudgetSharedBurstBelowOne(t *testing.T) {
	clock := clockwork.NewFakeClockAt(utStart)
	b := newBudget(clock, 1, 0, 1, 1, 1, 1)
	if err := b.take(t.Context(), b.gets); err == nil {
		t.Fatal("a take with a shared burst of 0 succeeded")
	}
	if tok := b.gets.TokensAt(utStart); tok != 1 {
		t.Errorf("the GET budget holds %v tokens after the failed take, want 1", tok)
	}
}
