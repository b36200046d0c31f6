package slotsim_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/phrasemeet/discovery/internal/relaysim"
	"github.com/phrasemeet/discovery/internal/slotsim"
	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/slotdiscovery"
)

var passphrase = []byte("correct horse battery staple")

var (
	groupOnce sync.Once
	group     *slotdiscovery.Group
)

// simGroup derives the default-profile group once, with the default
// KDF: its cost is outside the bubble and shared by every run.
func simGroup(t *testing.T) *slotdiscovery.Group {
	groupOnce.Do(func() {
		g, err := slotdiscovery.DeriveGroup(passphrase)
		if err != nil {
			t.Fatal(err)
		}
		group = g
	})
	return group
}

// net is a relay and its network for one run.
type net struct {
	Mode relaysim.Mode
	RTT  time.Duration
	Loss float64
}

// traffic is what the relay saw, per client IP.
type traffic struct {
	mu  sync.Mutex
	per map[string][]relaysim.Request
}

func (tr *traffic) observe(r relaysim.Request) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.per[r.IP] = append(tr.per[r.IP], r)
}

// rates returns the highest per-IP GET and PUT rates over [from, to).
func (tr *traffic) rates(from, to time.Time) (get, put float64) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	secs := to.Sub(from).Seconds()
	for _, reqs := range tr.per {
		var g, p int
		for _, r := range reqs {
			if r.Time.Before(from) || !r.Time.Before(to) {
				continue
			}
			if r.Op == relaysim.OpPublish {
				p++
			} else {
				g++
			}
		}
		get = max(get, float64(g)/secs)
		put = max(put, float64(p)/secs)
	}
	return get, put
}

type outcome struct {
	*slotsim.Result
	Relay                relaysim.Stats
	SteadyGet, SteadyPut float64 // highest per-peer rates after the fast phase
}

func ipOf(i int) string { return fmt.Sprintf("10.%d.%d.%d", (i+1)>>16, (i+1)>>8&255, (i+1)&255) }

// simulate runs sc in a synctest bubble against the modelled relay.
func simulate(t *testing.T, sc slotsim.Scenario, n net) outcome {
	t.Helper()
	g := simGroup(t)
	var out outcome
	synctest.Test(t, func(t *testing.T) {
		tr := &traffic{per: map[string][]relaysim.Request{}}
		relay := relaysim.New(n.Mode,
			relaysim.WithRTT(n.RTT, n.RTT/5),
			relaysim.WithLoss(n.Loss),
			relaysim.WithRand(rand.New(rand.NewPCG(sc.Seed, 99))),
			relaysim.WithObserver(tr.observe))
		env := slotsim.Env{
			Backend:    func(i int) pkarrclient.Backend { return relay.Backend(ipOf(i)) },
			Seed:       relay.Put,
			Passphrase: passphrase,
			Group:      g,
		}
		t0 := time.Now()
		res, err := slotsim.Run(t.Context(), sc, env)
		if err != nil {
			t.Fatal(err)
		}
		out.Result = res
		out.Relay = relay.Stats()
		steadyFrom := t0.Add(sc.Start + 90*time.Second)
		if end := t0.Add(sc.Duration); steadyFrom.Before(end.Add(-60 * time.Second)) {
			out.SteadyGet, out.SteadyPut = tr.rates(steadyFrom, end)
		}
	})
	return out
}

// goals skips unless PHRASEMEET_SIM=1: the goal checks are the
// simulation harness, run on demand while the default profile is being
// tuned to meet them.
func goals(t *testing.T) {
	if os.Getenv("PHRASEMEET_SIM") == "" {
		t.Skip("simulation goals run with PHRASEMEET_SIM=1")
	}
}

// TestTwoPeers runs goal 1's setting (two peers starting within 1 s, 50 ms
// RTT) over 20 seeds: with the default profile every pair must discover
// each other; the can-sync profile's misses (both peers in slot 0) are
// reported, not failed, being the reference's known failure.
func TestTwoPeers(t *testing.T) {
	goals(t)
	for _, p := range []slotsim.Profile{slotsim.Default, slotsim.CanSync} {
		var times []time.Duration
		for seed := uint64(1); seed <= 20; seed++ {
			o := simulate(t, slotsim.Scenario{Name: "two", Profile: p, Peers: 2, Start: time.Second,
				Duration: 90 * time.Second, Seed: seed}, net{Mode: relaysim.N0, RTT: 50 * time.Millisecond})
			if o.Mutual != o.Pairs && p == slotsim.Default {
				t.Errorf("%s seed %d: %d of %d pairs discovered each other", p, seed, o.Mutual, o.Pairs)
			}
			times = append(times, o.MutualTimes...)
		}
		slices.Sort(times)
		t.Logf("%s: mutual discovery p50 %v, p95 %v", p, slotsim.Quantile(times, .5), slotsim.Quantile(times, .95))
	}
}

// TestTwentyPeersBudget runs twenty peers against the n0-like relay: the
// default profile keeps every live peer in a slot and earns no 429,
// inside its steady budget; the can-sync profile's cap of 8 leaves at
// least 12 of them out, which is the reference's first failure.
func TestTwentyPeersBudget(t *testing.T) {
	goals(t)
	sc := slotsim.Scenario{Name: "twenty", Peers: 20, Start: 5 * time.Second, Duration: 5 * time.Minute, Seed: 1}
	sc.Profile = slotsim.Default
	o := simulate(t, sc, net{Mode: relaysim.N0, RTT: 50 * time.Millisecond})
	if o.Evicted != 0 {
		t.Errorf("default profile: %d live peers in no slot at the end", o.Evicted)
	}
	if n := o.Relay.Total.RateLimited; n != 0 {
		t.Errorf("default profile: %d answers 429 from the n0-like relay", n)
	}
	// The buckets allow a burst above the rate; over a window of minutes
	// it shows as a few percent.
	if o.SteadyGet > 0.2*1.1 || o.SteadyPut > 1.1/60 {
		t.Errorf("default profile: steady per-peer rates %.3f GET/s and %.2f PUT/min, want at most 0.2 and 1", o.SteadyGet, o.SteadyPut*60)
	}
	t.Logf("default: %d/%d pairs, p95 %v, steady %.3f GET/s %.2f PUT/min, false Lost %d",
		o.Mutual, o.Pairs, slotsim.Quantile(o.MutualTimes, .95), o.SteadyGet, o.SteadyPut*60, len(o.FalseLost))

	sc.Profile = slotsim.CanSync
	o = simulate(t, sc, net{Mode: relaysim.N0, RTT: 50 * time.Millisecond})
	if o.Evicted < 20-slotdiscovery.CanSyncSlots {
		t.Errorf("can-sync profile: only %d of 20 peers out of the 8 slots", o.Evicted)
	}
	t.Logf("can-sync: %d/%d pairs, %d peers in no slot, steady %.3f GET/s", o.Mutual, o.Pairs, o.Evicted, o.SteadyGet)
}
