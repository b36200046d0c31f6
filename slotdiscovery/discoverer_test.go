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

// TestLeaveCutShortStillBuries: a Leave or Close whose context ends before
// the others are told returns the context's error, and the telling goes on
// in the background, so the other peer still sees Lost soon: the default
// profile's tombstone (without it the entry would age out only after a
// minute, beyond the test's wait) and can-sync's slot clearing (without it
// can-sync, which has no ageing, would list the peer for ever).
func TestLeaveCutShortStillBuries(t *testing.T) {
	type leaver struct {
		d discovery.Discoverer
		a discovery.Announcement
	}
	profiles := []struct {
		name string
		open func(t *testing.T, url string) discovery.Discoverer
		id   string
	}{
		{"default", func(t *testing.T, url string) discovery.Discoverer {
			d, err := slotdiscovery.New(slottest.Client(t, url), slottest.Group(t, "leave cut short"),
				append(slottest.FastSchedule(), slotdiscovery.WithStaleAfter(time.Minute))...)
			if err != nil {
				t.Fatal(err)
			}
			return d
		}, "hurried"},
		{"can-sync", func(t *testing.T, url string) discovery.Discoverer {
			d, err := slotdiscovery.NewCanSync(slottest.Client(t, url), []byte("leave cut short"), csFastSchedule()...)
			if err != nil {
				t.Fatal(err)
			}
			return d
		}, csID("hurried")},
	}
	ends := []struct {
		name string
		end  func(ctx context.Context, l leaver) error
	}{
		{"Leave", func(ctx context.Context, l leaver) error { return l.a.Leave(ctx) }},
		{"Close", func(ctx context.Context, l leaver) error { return l.d.Close(ctx) }},
	}
	for _, p := range profiles {
		for _, e := range ends {
			t.Run(p.name+"/"+e.name, func(t *testing.T) {
				// Every request takes 400 ms: a leave (read, write, read
				// back) cannot finish within a 100 ms context, and
				// finishes well within its 5 s bound.
				url := slottest.Serve(t, slottest.Delayed(slottest.RelayHandler(t), 400*time.Millisecond, 400*time.Millisecond))
				var ds [2]discovery.Discoverer
				for i := range ds {
					ds[i] = p.open(t, url)
					t.Cleanup(func() { ds[i].Close(context.Background()) })
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				sub, err := ds[1].Subscribe(ctx)
				if err != nil {
					t.Fatal(err)
				}
				a, err := ds[0].Announce(ctx, discovery.Record{ID: p.id})
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
							if e.Peer.ID == p.id && e.Type == typ {
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
				if err := e.end(lctx, leaver{ds[0], a}); !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("%s with a 100 ms context over a 400 ms relay: %v, want an error wrapping context.DeadlineExceeded", e.name, err)
				}
				start := time.Now()
				wait(discovery.Lost)
				t.Logf("Lost after %v", time.Since(start))
			})
		}
	}
}

// TestLeaveTimeoutBoundsClose: WithLeaveTimeout is the bound on telling the
// others, so a Close that waits for it (context.Background) returns soon
// after it even when the relay stopped answering (the default, 5 s, would
// keep it longer than the 3 s this allows); zero is refused.
func TestLeaveTimeoutBoundsClose(t *testing.T) {
	url, stall := slottest.Stallable(t, slottest.RelayHandler(t))
	g := slottest.Group(t, "leave timeout")
	if _, err := slotdiscovery.New(slottest.Client(t, url), g, slotdiscovery.WithLeaveTimeout(0)); err == nil {
		t.Error("WithLeaveTimeout(0) accepted")
	}
	d, err := slotdiscovery.New(slottest.Client(t, url), g,
		append(slottest.FastSchedule(), slotdiscovery.WithLeaveTimeout(100*time.Millisecond))...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := d.Announce(ctx, discovery.Record{ID: "bounded"}); err != nil {
		t.Fatal(err)
	}
	for d.Slot("bounded") < 0 {
		select {
		case <-ctx.Done():
			t.Fatal("no slot claimed within a minute")
		case <-time.After(10 * time.Millisecond):
		}
	}
	stall()
	done := make(chan error, 1)
	go func() { done <- d.Close(context.Background()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Close with a 100 ms leave timeout had not returned 3 s later")
	}
}
