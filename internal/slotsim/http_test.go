package slotsim_test

// Model against the real thing: the same small scenarios run (a) over
// real HTTP, in real time, against the project's pkarrrelay server on
// loopback and (b) in the synctest model (relaysim) through simulate, and
// their outcomes are compared. The model earns its keep only if the two
// agree where it matters: which pairs find each other, how fast, and what
// the relay answered.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	stdnet "net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/time/rate"

	"github.com/phrasemeet/discovery/internal/netdelay"
	"github.com/phrasemeet/discovery/internal/relaysim"
	"github.com/phrasemeet/discovery/internal/slotsim"
	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/pkarrrelay"
	"github.com/phrasemeet/discovery/slotdiscovery"
)

// httpRTT is the round-trip time both sides see: simulate gives the model
// net{RTT: httpRTT} (plus a jitter of up to a fifth of it), and
// rttTransport adds the same to every HTTP exchange on loopback.
const httpRTT = 50 * time.Millisecond

// limit is a per-IP token bucket.
type limit struct {
	perSecond float64
	burst     int
}

// modelLimit measures relaysim.PkarrRelay's per-IP request limit on a model
// relay in a bubble: the GETs answered at once are the burst, those
// answered over the following 20 s, one second at a time, give the refill
// rate. relaysim keeps the numbers unexported; measuring them configures
// the real relay with exactly the model's, with no copy to drift.
func modelLimit(t *testing.T) limit {
	t.Helper()
	var l limit
	synctest.Test(t, func(t *testing.T) {
		b := relaysim.New(relaysim.PkarrRelay).Backend("probe")
		key := slotdiscovery.CanSyncSlotKey(passphrase, 0).PublicKey()
		drain := func() int {
			for n := 0; n < 100_000; n++ {
				_, err := b.Resolve(t.Context(), pkarrclient.Query{Key: key})
				if rl := (*pkarrclient.RateLimitError)(nil); errors.As(err, &rl) {
					return n
				}
			}
			t.Fatal("relaysim.PkarrRelay answered 100000 GETs without a 429: no request limit to copy")
			return 0
		}
		l.burst = drain()
		const window = 20
		got := 0
		for range window {
			time.Sleep(time.Second)
			got += drain()
		}
		l.perSecond = float64(got) / window
	})
	if l.burst < 1 || l.perSecond <= 0 {
		t.Fatalf("measured relaysim.PkarrRelay limit %+v", l)
	}
	return l
}

// loopbackTransport is an HTTP transport that can only reach loopback: no
// proxy from the environment, and a dialer that refuses any other address.
func loopbackTransport() *http.Transport {
	d := &stdnet.Dialer{Timeout: 5 * time.Second, Control: func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil || !ap.Addr().IsLoopback() {
			return fmt.Errorf("refusing to dial %s: this test talks to loopback only", address)
		}
		return nil
	}}
	return &http.Transport{
		Proxy:               nil,
		DialContext:         d.DialContext,
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     30 * time.Second,
	}
}

// relayLog counts, from the relay's own per-request debug log, what it
// answered to whom: the client address is the one its rate limiter used,
// so the counts show that X-Forwarded-For reached it.
type relayLog struct {
	mu   sync.Mutex
	per  map[string]relaysim.IPStats
	odd  []string // answers the model never gives, and warnings
	seen int
}

func (l *relayLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *relayLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *relayLog) WithGroup(string) slog.Handler            { return l }

func (l *relayLog) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r.Message != "pkarr relay request" {
		if r.Level >= slog.LevelWarn {
			l.odd = append(l.odd, r.Message)
		}
		return nil
	}
	var method, client string
	var status int
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "method":
			method = a.Value.String()
		case "client":
			client = a.Value.String()
		case "status":
			status = int(a.Value.Int64())
		}
		return true
	})
	l.seen++
	s := l.per[client]
	switch method {
	case http.MethodPut:
		s.Puts++
	case http.MethodGet:
		s.Gets++
	}
	switch {
	case status == http.StatusNotFound:
		s.NotFound++
	case status == http.StatusConflict:
		s.Conflicts++
	case status == http.StatusTooManyRequests:
		s.RateLimited++
	case method == http.MethodGet && status == http.StatusOK, method == http.MethodPut && status == http.StatusNoContent:
	default:
		l.odd = append(l.odd, fmt.Sprintf("%s answered %d", method, status))
	}
	l.per[client] = s
	return nil
}

// sample is one run's outcome on either side, in the model's terms.
type sample struct {
	*slotsim.Result
	Relay relaysim.Stats
	// Refused counts calls the HTTP client failed itself with a
	// RateLimitError, without asking the relay: pkarrclient.Relay remembers
	// a 429 until its Retry-After has passed. The model has no such memory
	// (every call reaches relaysim), so it is always 0 there.
	Refused int
}

// refusals wraps a peer's Backend to count the calls its Relay refused
// on its own after a 429 (a RateLimitError with no HTTP status).
type refusals struct {
	pkarrclient.Backend
	n *atomic.Int64
}

func (r refusals) Publish(ctx context.Context, p *pkarrclient.SignedPacket) (pkarrclient.PublishReceipt, error) {
	rc, err := r.Backend.Publish(ctx, p)
	r.note(err)
	return rc, err
}

func (r refusals) Resolve(ctx context.Context, q pkarrclient.Query) (*pkarrclient.SignedPacket, error) {
	p, err := r.Backend.Resolve(ctx, q)
	r.note(err)
	return p, err
}

func (r refusals) note(err error) {
	var rl *pkarrclient.RateLimitError
	var be *pkarrclient.BackendError
	if errors.As(err, &rl) && errors.As(err, &be) && be.Status == 0 {
		r.n.Add(1)
	}
}

// runHTTP runs sc against a fresh pkarrrelay server on 127.0.0.1 whose
// per-IP limits are lim on reads and on writes, each peer behind its own
// rttTransport. It returns when sc.Duration has passed in real time.
func runHTTP(ctx context.Context, sc slotsim.Scenario, g *slotdiscovery.Group, lim limit) (sample, error) {
	store := pkarrrelay.NewMemoryStore(0)
	defer store.Close()
	log := &relayLog{per: map[string]relaysim.IPStats{}}
	h, err := pkarrrelay.NewHandler(store,
		pkarrrelay.WithTrustedProxies(netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128")),
		pkarrrelay.WithWriteRateLimit(rate.Limit(lim.perSecond), lim.burst),
		pkarrrelay.WithReadRateLimit(rate.Limit(lim.perSecond), lim.burst),
		pkarrrelay.WithLogger(slog.New(log)))
	if err != nil {
		return sample{}, err
	}
	srv, err := pkarrrelay.NewServer(h, pkarrrelay.ServerMetrics("", nil))
	if err != nil {
		return sample{}, err
	}
	sctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	ln, err := srv.Listen(sctx, "127.0.0.1:0")
	if err != nil {
		return sample{}, err
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx, ln) }()
	url := srv.URL()

	var mu sync.Mutex
	var transports []*http.Transport
	var refused atomic.Int64
	backend := func(i int) pkarrclient.Backend {
		tr := loopbackTransport()
		mu.Lock()
		transports = append(transports, tr)
		mu.Unlock()
		r, err := pkarrclient.NewRelay(url, pkarrclient.RelayHTTPClient(&http.Client{Transport: &netdelay.Transport{RTT: httpRTT, ForwardedFor: ipOf(i), Base: tr}}))
		if err != nil {
			panic(err) // the URL is the server's own, the client non-nil
		}
		return refusals{Backend: r, n: &refused}
	}
	var seedErr error
	env := slotsim.Env{
		Backend: backend,
		Seed: func(p *pkarrclient.SignedPacket) {
			if _, err := store.Put(ctx, p); err != nil && seedErr == nil {
				seedErr = err
			}
		},
		Passphrase: passphrase,
		Group:      g,
	}
	res, runErr := slotsim.Run(ctx, sc, env)
	mu.Lock()
	for _, tr := range transports {
		tr.CloseIdleConnections()
	}
	mu.Unlock()
	stop()
	if err := errors.Join(runErr, seedErr, <-served); err != nil {
		return sample{}, err
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if log.seen == 0 {
		return sample{}, errors.New("the relay logged no request (did its debug log line change?)")
	}
	if len(log.odd) > 0 {
		return sample{}, fmt.Errorf("the relay answered outside the model: %s", strings.Join(log.odd, "; "))
	}
	// Every request must have been limited under its peer's IP (ipOf(-1)
	// is the final reader's), not under the proxy's 127.0.0.1.
	peers := map[string]bool{}
	for i := -1; i < sc.Peers; i++ {
		peers[ipOf(i)] = true
	}
	out := sample{Result: res, Relay: relaysim.Stats{PerIP: log.per}, Refused: int(refused.Load())}
	for ip, s := range log.per {
		if !peers[ip] {
			return sample{}, fmt.Errorf("the relay limited %d requests under %q, not a peer's IP: X-Forwarded-For was not applied", s.Gets+s.Puts, ip)
		}
		out.Relay.Total.Gets += s.Gets
		out.Relay.Total.Puts += s.Puts
		out.Relay.Total.NotFound += s.NotFound
		out.Relay.Total.Conflicts += s.Conflicts
		out.Relay.Total.RateLimited += s.RateLimited
	}
	return out, nil
}

// countingHandler counts log records, to show that Scenario.Logger reaches
// the logged peer over HTTP too.
type countingHandler struct{ n atomic.Int64 }

func (c *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (c *countingHandler) Handle(context.Context, slog.Record) error {
	c.n.Add(1)
	return nil
}
func (c *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *countingHandler) WithGroup(string) slog.Handler      { return c }

// TestHTTPTwoPeersDefault runs two default-profile peers starting within
// 1 s against the real relay over loopback HTTP, in real time: they must
// discover each other, well within 30 s (the run lasts 10 s; the model
// puts the slowest of 20 seeds at 1 to 4 s).
func TestHTTPTwoPeersDefault(t *testing.T) {
	lim := modelLimit(t)
	logs := &countingHandler{}
	sc := slotsim.Scenario{Name: "http-two", Profile: slotsim.Default, Peers: 2, Start: time.Second,
		Duration: 10 * time.Second, Seed: 1, Logger: slog.New(logs), LogPeer: 0}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	o, err := runHTTP(ctx, sc, simGroup(t), lim)
	if err != nil {
		t.Fatal(err)
	}
	if o.Pairs != 1 || o.Mutual != 1 {
		t.Fatalf("%d of %d pairs discovered each other over HTTP", o.Mutual, o.Pairs)
	}
	if got := o.MutualTimes[0]; got > 30*time.Second {
		t.Errorf("mutual discovery over HTTP took %v, want at most 30 s", got)
	}
	if logs.n.Load() == 0 {
		t.Error("Scenario.Logger received nothing from peer 0 over HTTP")
	}
	peers, _ := split(o.Relay)
	t.Logf("limit %.3g/s burst %d; mutual after %v; found after %v; %d collisions, %d lost claims; %s; peer 0 logged %d lines",
		lim.perSecond, lim.burst, o.MutualTimes[0].Round(time.Millisecond), roundAll(o.FoundTimes), collisions(o.Result), o.LostClaims,
		requests(peers, 1, 2), logs.n.Load())
}

// comparison is one scenario of the model-against-HTTP comparison.
type comparison struct {
	name     string
	profile  slotsim.Profile
	peers    int
	start    time.Duration
	duration time.Duration
}

func (c comparison) scenario(seed uint64) slotsim.Scenario {
	return slotsim.Scenario{Name: c.name, Profile: c.profile, Peers: c.peers, Start: c.start,
		Duration: c.duration, Seed: seed}
}

// TestHTTPAgreesWithModel runs each scenario over 20 seeds in the model and
// over the first 3 of the same seeds (PHRASEMEET_HTTP_SEEDS to change)
// against the real relay over HTTP (all HTTP runs at once, in real time,
// about a minute), logs both distributions and checks that they agree
// loosely: every pair the model discovers with certainty is discovered over
// HTTP, the median mutual time is within 3x + 2 s of the model's either
// way, and the real relay answers the peers no 429 where the model answers
// none.
func TestHTTPAgreesWithModel(t *testing.T) {
	if os.Getenv("PHRASEMEET_SIM") == "" {
		t.Skip("the model-against-HTTP comparison takes about a minute of real time (12 HTTP runs of up to 50 s, run together); set PHRASEMEET_SIM=1")
	}
	const modelSeeds = 20
	httpSeeds := 3
	if v := os.Getenv("PHRASEMEET_HTTP_SEEDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > modelSeeds {
			t.Fatalf("PHRASEMEET_HTTP_SEEDS=%q: want 1 to %d", v, modelSeeds)
		}
		httpSeeds = n
	}
	cases := []comparison{
		{"two", slotsim.Default, 2, time.Second, 40 * time.Second},
		{"two", slotsim.CanSync, 2, time.Second, 50 * time.Second},
		{"six", slotsim.Default, 6, 3 * time.Second, 40 * time.Second},
		{"six", slotsim.CanSync, 6, 3 * time.Second, 50 * time.Second},
	}
	lim := modelLimit(t)
	g := simGroup(t)
	t.Logf("per-IP limit on both sides (measured from relaysim.PkarrRelay): %.3g requests/s, burst %d; the real relay has one such bucket for GETs and another for PUTs", lim.perSecond, lim.burst)

	model := make([][]sample, len(cases))
	for k, c := range cases {
		for seed := uint64(1); seed <= modelSeeds; seed++ {
			o := simulate(t, c.scenario(seed), net{Mode: relaysim.PkarrRelay, RTT: httpRTT})
			model[k] = append(model[k], sample{Result: o.Result, Relay: o.Relay})
		}
	}

	// The HTTP runs are independent (a relay each) and mostly asleep, so
	// they run together: the whole comparison takes one run's time.
	wire := make([][]sample, len(cases))
	errs := make([][]error, len(cases))
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	began := time.Now()
	for k, c := range cases {
		wire[k] = make([]sample, httpSeeds)
		errs[k] = make([]error, httpSeeds)
		for s := range httpSeeds {
			wg.Go(func() { wire[k][s], errs[k][s] = runHTTP(ctx, c.scenario(uint64(s+1)), g, lim) })
		}
	}
	wg.Wait()
	t.Logf("%d HTTP runs took %v together", len(cases)*httpSeeds, time.Since(began).Round(time.Second))

	for k, c := range cases {
		t.Run(c.name+"/"+string(c.profile), func(t *testing.T) {
			if err := errors.Join(errs[k]...); err != nil {
				t.Fatal(err)
			}
			m, h := summarize(model[k]), summarize(wire[k])
			t.Logf("model, %2d seeds: %s", len(model[k]), m.String(c.peers))
			t.Logf("HTTP,  %2d seeds: %s", len(wire[k]), h.String(c.peers))
			for s, o := range wire[k] {
				mo := model[k][s]
				t.Logf("  seed %d: model %d/%d pairs %v, %d collisions; HTTP %d/%d pairs %v, %d collisions",
					s+1, mo.Mutual, mo.Pairs, roundAll(mo.MutualTimes), collisions(mo.Result),
					o.Mutual, o.Pairs, roundAll(o.MutualTimes), collisions(o.Result))
			}
			if m.mutual == m.pairs {
				for s, o := range wire[k] {
					if o.Mutual != o.Pairs {
						t.Errorf("seed %d: %d of %d pairs discovered each other over HTTP; the model discovers every pair of all %d seeds",
							s+1, o.Mutual, o.Pairs, len(model[k]))
					}
				}
			}
			if mp, hp := slotsim.Quantile(m.times, .5), slotsim.Quantile(h.times, .5); mp >= 0 && hp >= 0 {
				if hp > 3*mp+2*time.Second || mp > 3*hp+2*time.Second {
					t.Errorf("median mutual time: HTTP %v, model %v: not within 3x + 2 s of each other", hp, mp)
				}
			} else if mp >= 0 && m.mutual*2 >= m.pairs {
				t.Errorf("the model discovers %d of %d pairs, HTTP none", m.mutual, m.pairs)
			}
			if m.relay.RateLimited == 0 && h.relay.RateLimited > 0 {
				t.Errorf("the real relay answered the peers %d 429s, the model none", h.relay.RateLimited)
			}
		})
	}
}

// summary pools the runs of one side.
type summary struct {
	runs, pairs, mutual int
	times               []time.Duration // mutual times, sorted
	lostClaims, refused int
	collisions, evicted int
	// relay counts the peers' requests; reader those of the reader that
	// reads the slots once the run is over (ipOf(-1)), kept apart because
	// it reads up to 15 slots at once, beyond the burst of 10.
	relay, reader relaysim.IPStats
}

// split separates the peers' traffic from the final reader's.
func split(st relaysim.Stats) (peers, reader relaysim.IPStats) {
	for ip, s := range st.PerIP {
		dst := &peers
		if ip == ipOf(-1) {
			dst = &reader
		}
		dst.Gets += s.Gets
		dst.Puts += s.Puts
		dst.NotFound += s.NotFound
		dst.Conflicts += s.Conflicts
		dst.RateLimited += s.RateLimited
	}
	return peers, reader
}

func collisions(r *slotsim.Result) int {
	n := 0
	for _, st := range r.Stats {
		n += st.Collisions
	}
	return n
}

func summarize(ss []sample) summary {
	var s summary
	for _, o := range ss {
		s.runs++
		s.pairs += o.Pairs
		s.mutual += o.Mutual
		s.times = append(s.times, o.MutualTimes...)
		s.lostClaims += o.LostClaims
		s.refused += o.Refused
		s.collisions += collisions(o.Result)
		s.evicted += o.Evicted
		p, r := split(o.Relay)
		s.relay.Gets += p.Gets
		s.relay.Puts += p.Puts
		s.relay.NotFound += p.NotFound
		s.relay.Conflicts += p.Conflicts
		s.relay.RateLimited += p.RateLimited
		s.reader.Gets += r.Gets
		s.reader.RateLimited += r.RateLimited
	}
	slices.Sort(s.times)
	return s
}

func (s summary) String(peers int) string {
	q := func(p float64) time.Duration { return slotsim.Quantile(s.times, p).Round(10 * time.Millisecond) }
	frac := 0.0
	if s.pairs > 0 {
		frac = float64(s.mutual) / float64(s.pairs)
	}
	runs := float64(s.runs)
	return fmt.Sprintf("mutual %d/%d pairs (%.0f%%), time p10 %v p50 %v p90 %v max %v; "+
		"per run: %.2f collisions, %.2f lost claims, %.2f evicted; %s; client refused %d calls after a 429; final reader: %d GETs, %d answered 429",
		s.mutual, s.pairs, 100*frac, q(.1), q(.5), q(.9), q(1),
		float64(s.collisions)/runs, float64(s.lostClaims)/runs, float64(s.evicted)/runs,
		requests(s.relay, s.runs, peers), s.refused, s.reader.Gets, s.reader.RateLimited)
}

// requests renders relay counters per run and per peer.
func requests(r relaysim.IPStats, runs, peers int) string {
	per := float64(runs * peers)
	return fmt.Sprintf("peers sent %.1f GET + %.1f PUT per peer-run, relay answered 404 %d, 409 %d, 429 %d",
		float64(r.Gets)/per, float64(r.Puts)/per, r.NotFound, r.Conflicts, r.RateLimited)
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
