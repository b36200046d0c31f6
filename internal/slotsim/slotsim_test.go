package slotsim_test

import (
	"fmt"
	"math/rand/v2"
	"os"
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

// rates returns the highest per-IP GET and PUT rates over [from, to),
// each IP's measured from its first to its last request in the window:
// counting whole periods against the window's length would read a
// republish every 64 s as over one a minute whenever the window happens
// to hold one more than it fits.
// rates returns the highest and the mean per-peer GET and PUT rates
// between from and to, each peer's rate taken between its first and last
// request there.
func (tr *traffic) rates(from, to time.Time) (get, put, meanGet, meanPut float64) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	rate := func(ts []time.Time) float64 {
		if len(ts) < 2 {
			return 0
		}
		return float64(len(ts)-1) / ts[len(ts)-1].Sub(ts[0]).Seconds()
	}
	for _, reqs := range tr.per {
		var g, p []time.Time
		for _, r := range reqs {
			if r.Time.Before(from) || !r.Time.Before(to) {
				continue
			}
			if r.Op == relaysim.OpPublish {
				p = append(p, r.Time)
			} else {
				g = append(g, r.Time)
			}
		}
		get = max(get, rate(g))
		put = max(put, rate(p))
		meanGet += rate(g)
		meanPut += rate(p)
	}
	if n := float64(len(tr.per)); n > 0 {
		meanGet, meanPut = meanGet/n, meanPut/n
	}
	return get, put, meanGet, meanPut
}

type outcome struct {
	*slotsim.Result
	Relay                relaysim.Stats
	SteadyGet, SteadyPut float64 // highest per-peer rates after the fast phase
	MeanGet, MeanPut     float64 // the mean per-peer rates then
}

func ipOf(i int) string { return fmt.Sprintf("10.%d.%d.%d", (i+1)>>16, (i+1)>>8&255, (i+1)&255) }

// simulate runs sc in a synctest bubble against the modelled relay.
func simulate(t *testing.T, sc slotsim.Scenario, n net) outcome {
	return simulateObs(t, sc, n, nil)
}

// simulateObs is simulate, and hands obs what the relay saw per IP and
// the start of the run, for a diagnosis beyond the outcome's figures.
func simulateObs(t *testing.T, sc slotsim.Scenario, n net, obs func(*traffic, time.Time)) outcome {
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
		if n.Mode == relaysim.PkarrRelay {
			env.ReaderPace = 600 * time.Millisecond
		}
		t0 := time.Now()
		res, err := slotsim.Run(t.Context(), sc, env)
		if err != nil {
			t.Fatal(err)
		}
		out.Result = res
		out.Relay = relay.Stats()
		// Steady state: from two minutes after the last start (the fast
		// phase is one) to the end, when that leaves at least five
		// minutes; the reader that counts evictions is not a peer.
		tr.mu.Lock()
		delete(tr.per, ipOf(-1))
		tr.mu.Unlock()
		if obs != nil {
			obs(tr, t0)
		}
		steadyFrom := t0.Add(sc.Start + 2*time.Minute)
		if end := t0.Add(sc.Duration); steadyFrom.Before(end.Add(-5 * time.Minute)) {
			out.SteadyGet, out.SteadyPut, out.MeanGet, out.MeanPut = tr.rates(steadyFrom, end)
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
