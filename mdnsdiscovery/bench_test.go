package mdnsdiscovery_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/phrasemeet/discovery"
)

// BenchmarkMeet measures, over real mDNS on this machine, how long two
// Discoverers in one process take to find each other (both announcing at
// once), and how long after one calls Leave the other reports it Lost.
// Each iteration is a new group. Run it with a fixed count, and read the
// medians it reports:
//
//	go test -run='^$' -bench=Meet -benchtime=20x ./mdnsdiscovery/
//
// "cold" announces right after New, as a program starting up does; the
// first query of each browser went out at New, so the query a new
// registration asks for waits out RFC 6762's one second between queries,
// and zeroconf's own announcement (0.75-1 s after registering) usually
// comes first. "warm" announces after the browsers have run for 1.5 s.
func BenchmarkMeet(b *testing.B) {
	for _, c := range []struct {
		name  string
		delay time.Duration
	}{{"cold", 0}, {"warm", 1500 * time.Millisecond}} {
		b.Run(c.name, func(b *testing.B) {
			var finds, losts []time.Duration
			for range b.N {
				find, lost := meetOnce(b, c.delay)
				finds = append(finds, find)
				losts = append(losts, lost)
			}
			report(b, "find", finds)
			report(b, "lost", losts)
		})
	}
}

func meetOnce(b *testing.B, delay time.Duration) (find, lost time.Duration) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	secret := newSecret(b)
	// Default periods: nothing here depends on refreshes.
	d1 := newOrSkip(b, secret)
	defer d1.Close(context.Background())
	d2 := newOrSkip(b, secret)
	defer d2.Close(context.Background())
	ev1, err := d1.Subscribe(ctx)
	if err != nil {
		b.Fatal(err)
	}
	ev2, err := d2.Subscribe(ctx)
	if err != nil {
		b.Fatal(err)
	}
	time.Sleep(delay)
	start := time.Now()
	a1, err := d1.Announce(ctx, discovery.Record{ID: "one", Addrs: []string{"/ip4/192.0.2.1/udp/4001/quic-v1"}})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := d2.Announce(ctx, discovery.Record{ID: "two", Addrs: []string{"/ip4/192.0.2.2/udp/4001/quic-v1"}}); err != nil {
		b.Fatal(err)
	}
	wait(b, ev1, discovery.Found, "two")
	wait(b, ev2, discovery.Found, "one")
	find = time.Since(start)

	// Peers leave long after they met; leaving within a second of the
	// last query would wait out RFC 6762's spacing (see the doc above).
	time.Sleep(1500 * time.Millisecond)
	start = time.Now()
	go a1.Leave(ctx) // returns after the linger; Lost comes long before
	wait(b, ev2, discovery.Lost, "one")
	lost = time.Since(start)
	return find, lost
}

func wait(b *testing.B, ch <-chan discovery.Event, typ discovery.EventType, id string) {
	b.Helper()
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	for {
		select {
		case e := <-ch:
			if e.Type == typ && e.Peer.ID == id {
				return
			}
		case <-timer.C:
			b.Fatalf("no %v for %q within 30 s", typ, id)
		}
	}
}

func report(b *testing.B, what string, ds []time.Duration) {
	slices.Sort(ds)
	ms := func(q float64) float64 {
		return float64(ds[int(q*float64(len(ds)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(ms(0.5), what+"-median-ms")
	b.ReportMetric(ms(0.9), what+"-p90-ms")
	b.ReportMetric(0, "ns/op")
	b.Logf("%s over %d runs: min %v, median %v, p90 %v, max %v", what, len(ds), ds[0], ds[len(ds)/2], ds[int(0.9*float64(len(ds)-1))], ds[len(ds)-1])
}
