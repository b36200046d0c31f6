package slotdiscovery_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/phrasemeet/discovery"
	"github.com/phrasemeet/discovery/discoverytest"
	"github.com/phrasemeet/discovery/internal/slottest"
	"github.com/phrasemeet/discovery/slotdiscovery"
)

func TestConformance(t *testing.T) {
	group := func(t *testing.T, n int, url string) []discovery.Discoverer {
		g := slottest.Group(t, "conformance passphrase")
		ds := make([]discovery.Discoverer, n)
		for i := range ds {
			d, err := slotdiscovery.New(slottest.Client(t, url), g, slottest.FastSchedule()...)
			if err != nil {
				t.Fatal(err)
			}
			ds[i] = d
		}
		return ds
	}
	discoverytest.Run(t, func(t *testing.T, n int) []discovery.Discoverer {
		return group(t, n, slottest.Relay(t))
	}, discoverytest.WithTimeout(15*time.Second),
		// LeaveHonoursContext leaves with a tombstone the relay never
		// acknowledges: the leave bound (5 s) is far above its 100 ms ctx.
		discoverytest.WithStall(func(t *testing.T, n int) ([]discovery.Discoverer, func()) {
			url, stall := slottest.Stallable(t, slottest.RelayHandler(t))
			return group(t, n, url), stall
		}))
}

// TestLeaveCutShortStillBuries: a Leave whose context ends before the
// tombstone is confirmed returns the context's error, and the tombstone
// write goes on in the background, so the other peer still sees Lost at
// once rather than when the entry ages out (a minute here, beyond the
// test's wait).
func TestLeaveCutShortStillBuries(t *testing.T) {
	// Every request takes 400 ms: a leave (read, write, read back) cannot
	// finish within a 100 ms context, and finishes well within its 5 s
	// bound.
	url := slottest.Serve(t, slottest.Delayed(slottest.RelayHandler(t), 400*time.Millisecond, 400*time.Millisecond))
	g := slottest.Group(t, "leave cut short")
	opts := append(slottest.FastSchedule(), slotdiscovery.WithStaleAfter(time.Minute))
	var ds [2]*slotdiscovery.Discoverer
	for i := range ds {
		d, err := slotdiscovery.New(slottest.Client(t, url), g, opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		ds[i] = d
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sub, err := ds[1].Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a, err := ds[0].Announce(ctx, discovery.Record{ID: "hurried", Addrs: []string{"/ip4/192.0.2.1/udp/1"}})
	if err != nil {
		t.Fatal(err)
	}
	wait := func(typ discovery.EventType) {
		t.Helper()
		timer := time.NewTimer(20 * time.Second)
		defer timer.Stop()
		for {
			select {
			case e, ok := <-sub:
				if !ok {
					t.Fatalf("the stream closed while waiting for %v", typ)
				}
				if e.Peer.ID == "hurried" && e.Type == typ {
					return
				}
			case <-timer.C:
				t.Fatalf("no %v for the peer within 20 s", typ)
			}
		}
	}
	wait(discovery.Found)
	lctx, lcancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer lcancel()
	if err := a.Leave(lctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Leave with a 100 ms context over a 400 ms relay: %v, want an error wrapping context.DeadlineExceeded", err)
	}
	start := time.Now()
	wait(discovery.Lost)
	t.Logf("Lost after %v", time.Since(start))
}
