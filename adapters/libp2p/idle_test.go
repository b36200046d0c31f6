package libp2padapter_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/phrasemeet/discovery"
	libp2padapter "github.com/phrasemeet/discovery/adapters/libp2p"
)

// countingOpener opens namespaces through another Opener and keeps count
// of the discoverers it opened and of those still open.
type countingOpener struct {
	open libp2padapter.Opener

	mu     sync.Mutex
	opened map[string]int // discoverers opened, by namespace
	live   map[string]int // discoverers not closed yet, by namespace
}

func newCountingOpener(open libp2padapter.Opener) *countingOpener {
	return &countingOpener{open: open, opened: make(map[string]int), live: make(map[string]int)}
}

func (c *countingOpener) Open(ns string) (discovery.Discoverer, error) {
	d, err := c.open(ns)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.opened[ns]++
	c.live[ns]++
	return &closeCounting{Discoverer: d, c: c, ns: ns}, nil
}

// openNow returns the namespaces with a discoverer open, sorted.
func (c *countingOpener) openNow() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for ns, n := range c.live {
		if n > 0 {
			out = append(out, ns)
		}
	}
	slices.Sort(out)
	return out
}

func (c *countingOpener) openedCount(ns string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.opened[ns]
}

type closeCounting struct {
	discovery.Discoverer
	c    *countingOpener
	ns   string
	once sync.Once
}

func (d *closeCounting) Close(ctx context.Context) error {
	d.once.Do(func() {
		d.c.mu.Lock()
		d.c.live[d.ns]--
		d.c.mu.Unlock()
	})
	return d.Discoverer.Close(ctx)
}

// awaitOpen waits until exactly the namespaces in want have a discoverer
// open.
func awaitOpen(t *testing.T, ctx context.Context, c *countingOpener, what string, want ...string) {
	t.Helper()
	slices.Sort(want)
	for {
		got := c.openNow()
		if slices.Equal(got, want) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %d namespaces open %v, want %d %v", what, len(got), abbreviate(got), len(want), want)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func abbreviate(s []string) []string {
	if len(s) > 6 {
		return append(slices.Clone(s[:6]), fmt.Sprintf("... %d more", len(s)-6))
	}
	return s
}

// TestIdleNamespacesClose: pubsub topic churn opens a namespace per topic;
// once nobody uses one for the grace, the adapter closes its discoverer
// (which ends its scanning), and opens it again on the next use. A
// namespace advertised in, subscribed to, or with a FindPeers waiting
// stays open however long that lasts.
func TestIdleNamespacesClose(t *testing.T) {
	ctx := testContext(t)
	clk := clockwork.NewFakeClock()
	const grace = time.Minute
	mem := discovery.NewMemory()
	counting := newCountingOpener(libp2padapter.MemoryOpener(mem))
	ha, hb := newHost(t), newHost(t)
	a := newAdapter(t, ha, counting.Open, libp2padapter.WithClock(clk), libp2padapter.WithIdleGrace(grace), libp2padapter.WithFindWait(timeout))
	b := newAdapter(t, hb, libp2padapter.MemoryOpener(mem))

	before := runtime.NumGoroutine()
	// 100 topics, each used once: a FindPeers that waits for a first peer
	// until its caller gives up.
	topics := make([]string, 100)
	for i := range topics {
		topics[i] = fmt.Sprintf("floodsub:topic-%d", i)
		fctx, cancel := context.WithCancel(ctx)
		ch, err := a.FindPeers(fctx, topics[i])
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		collect(t, ctx, ch)
	}
	// Three namespaces in use: advertised, subscribed to, a FindPeers
	// waiting.
	advCtx, stopAdv := context.WithCancel(ctx)
	defer stopAdv()
	if _, err := a.Advertise(advCtx, "adv"); err != nil {
		t.Fatal(err)
	}
	subCtx, stopSub := context.WithCancel(ctx)
	defer stopSub()
	subscribe(t, subCtx, a, "sub")
	findCtx, stopFind := context.WithCancel(ctx)
	defer stopFind()
	waiting, err := a.FindPeers(findCtx, "find")
	if err != nil {
		t.Fatal(err)
	}
	inUse := []string{"adv", "sub", "find"}
	awaitOpen(t, ctx, counting, "after opening", append(slices.Clone(topics), inUse...)...)
	t.Logf("goroutines: %d with the 100 topics open", runtime.NumGoroutine())

	// The grace passes: the 100 idle topics close, the three in use stay.
	idle, cancel := context.WithTimeout(ctx, 5*time.Second)
	_ = clk.BlockUntilContext(idle, len(topics)) // the idle timers; not there before the fix
	cancel()
	clk.Advance(grace)
	awaitOpen(t, ctx, counting, "after the grace", inUse...)
	after := runtime.NumGoroutine()
	t.Logf("goroutines: %d before the topics, %d once they closed", before, after)

	// Long after, the three are still open while in use.
	clk.Advance(10 * grace)
	awaitOpen(t, ctx, counting, "much later, still in use", inUse...)

	// Their uses end: they close one grace later, not before.
	stopAdv()
	stopSub()
	stopFind()
	collect(t, ctx, waiting)
	wait, cancel := context.WithTimeout(ctx, 5*time.Second)
	_ = clk.BlockUntilContext(wait, len(inUse))
	cancel()
	clk.Advance(grace - time.Second)
	time.Sleep(50 * time.Millisecond) // a wrongly early close would show here
	awaitOpen(t, ctx, counting, "just before the grace", inUse...)
	clk.Advance(time.Second)
	awaitOpen(t, ctx, counting, "after their uses ended and the grace passed")

	// A closed namespace opens again on its next use, and works.
	if _, err := b.Advertise(ctx, "adv"); err != nil {
		t.Fatal(err)
	}
	ch, err := a.FindPeers(ctx, "adv")
	if err != nil {
		t.Fatal(err)
	}
	if got := collect(t, ctx, ch); len(got) != 1 || got[0].ID != hb.ID() {
		t.Fatalf("FindPeers on a reopened namespace: %v, want B", ids(got))
	}
	if n := counting.openedCount("adv"); n != 2 {
		t.Fatalf("namespace adv opened %d times, want 2 (once more after its idle close)", n)
	}
}

// TestIdleGraceRestartsOnUse: a namespace used again before its grace has
// passed stays open a whole grace from that use.
func TestIdleGraceRestartsOnUse(t *testing.T) {
	ctx := testContext(t)
	clk := clockwork.NewFakeClock()
	const grace = time.Minute
	counting := newCountingOpener(libp2padapter.MemoryOpener(discovery.NewMemory()))
	a := newAdapter(t, newHost(t), counting.Open, libp2padapter.WithClock(clk), libp2padapter.WithIdleGrace(grace), libp2padapter.WithFindWait(0))
	find := func() {
		t.Helper()
		ch, err := a.FindPeers(ctx, "ns")
		if err != nil {
			t.Fatal(err)
		}
		collect(t, ctx, ch)
	}
	find()
	wait, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_ = clk.BlockUntilContext(wait, 1)
	clk.Advance(grace - time.Second)
	find()
	_ = clk.BlockUntilContext(wait, 1)
	clk.Advance(2 * time.Second) // the first grace has passed, the second not
	time.Sleep(50 * time.Millisecond)
	awaitOpen(t, ctx, counting, "one grace after the first use, just after a second", "ns")
	clk.Advance(grace)
	awaitOpen(t, ctx, counting, "one grace after the second use")
	if n := counting.openedCount("ns"); n != 1 {
		t.Fatalf("opened %d times, want 1", n)
	}

	// A use that begins during the grace and outlasts it: the namespace
	// stays open as long as it lasts.
	find()
	_ = clk.BlockUntilContext(wait, 1)
	clk.Advance(grace / 2)
	subCtx, stopSub := context.WithCancel(ctx)
	defer stopSub()
	subscribe(t, subCtx, a, "ns")
	clk.Advance(2 * grace)
	time.Sleep(50 * time.Millisecond)
	awaitOpen(t, ctx, counting, "while a subscription that began during the grace lasts", "ns")
	stopSub()
	_ = clk.BlockUntilContext(wait, 1)
	clk.Advance(grace)
	awaitOpen(t, ctx, counting, "one grace after the subscription ended")
}

// TestIdleGraceZeroKeepsNamespaces: WithIdleGrace(0) keeps every
// namespace open until Close.
func TestIdleGraceZeroKeepsNamespaces(t *testing.T) {
	ctx := testContext(t)
	clk := clockwork.NewFakeClock()
	counting := newCountingOpener(libp2padapter.MemoryOpener(discovery.NewMemory()))
	a := newAdapter(t, newHost(t), counting.Open, libp2padapter.WithClock(clk), libp2padapter.WithIdleGrace(0), libp2padapter.WithFindWait(0))
	ch, err := a.FindPeers(ctx, "ns")
	if err != nil {
		t.Fatal(err)
	}
	collect(t, ctx, ch)
	clk.Advance(24 * time.Hour)
	time.Sleep(50 * time.Millisecond)
	awaitOpen(t, ctx, counting, "a day later with no idle close", "ns")
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	awaitOpen(t, ctx, counting, "after Close")
}
