package libp2padapter

import (
	"context"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/libp2p/go-libp2p"

	"github.com/phrasemeet/discovery"
)

// TestStaleIdleTimerDoesNothing: an idle timer that fired just as a use
// began and ended (its reap waiting for the lock meanwhile) belongs to an
// idle period that use interrupted; it must not close the namespace a
// grace early. Reached by calling reap as that timer would.
func TestStaleIdleTimerDoesNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	clk := clockwork.NewFakeClock()
	a, err := New(h, MemoryOpener(discovery.NewMemory()), WithClock(clk), WithIdleGrace(time.Minute), WithFindWait(0))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	find := func() {
		t.Helper()
		ch, err := a.FindPeers(ctx, "ns")
		if err != nil {
			t.Fatal(err)
		}
		for range ch {
		}
	}
	find()
	a.mu.Lock()
	s := a.spaces["ns"]
	stale := s.idleGen
	a.mu.Unlock()
	find() // a use during the grace: a new idle period begins
	a.reap(s, stale)
	a.mu.Lock()
	open := a.spaces["ns"] == s
	current := s.idleGen
	a.mu.Unlock()
	if !open {
		t.Fatal("a timer from an interrupted idle period closed the namespace")
	}
	a.reap(s, current)
	a.mu.Lock()
	open = a.spaces["ns"] != nil
	a.mu.Unlock()
	if open {
		t.Fatal("the current idle period's timer left the namespace open")
	}
}
