// Package relaysim is an in-memory model of the deployed pkarr relays, for
// simulations that run many real peers under testing/synctest.
//
// A [Relay] holds packets like a relay does and answers like one: n0's relay
// ([N0]) silently drops an older PUT and limits PUTs per client IP; pkarr's
// own relay ([PkarrRelay]) answers 409 to an older PUT and limits every
// request per IP. Each client IP gets a [pkarrclient.Backend] from
// [Relay.Backend] whose errors are exactly those the real HTTP backend
// ([pkarrclient.Relay]) returns for the same HTTP answer, so code under test
// cannot tell the difference with errors.Is and errors.As.
//
// Every request crosses a modelled network: half the round-trip time out,
// half back, optional jitter and loss. The relay applies a request when it
// arrives, so concurrent PUTs are ordered by arrival, as on a real relay.
//
// A Backend makes one exchange per call. Unlike pkarrclient.Relay it does not
// retry a lost request (the real client retries twice after a timeout or a
// 5xx) and does not remember a 429 to fail later calls fast until
// Retry-After has passed; a simulation that needs those client behaviours
// must model them above the Backend.
//
// All time comes from package time (timers and time.Now), so inside a
// synctest bubble a run takes no wall time, and no call leaves a goroutine
// behind. Randomness comes from one seeded *rand.Rand, so a run with the
// same seed draws the same delays and losses in the same order (which
// request draws first still depends on goroutine scheduling).
package relaysim

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/phrasemeet/discovery/pkarrclient"
)

// Mode selects which deployed relay software a Relay behaves like.
type Mode int

const (
	// N0 is n0's relay (iroh-dns-server at dns.iroh.link): an older PUT is
	// answered 204 and dropped; PUTs are limited per IP to a burst of 2,
	// then 1 every 4 s; GETs are not limited.
	N0 Mode = iota + 1
	// PkarrRelay is pkarr's own relay (pkarr.pubky.app, pkarr.pubky.org):
	// an older PUT is answered 409; every request, GET or PUT, is limited
	// per IP to about 2 per second with a burst of 10.
	PkarrRelay
)

// String returns the mode's name.
func (m Mode) String() string {
	switch m {
	case N0:
		return "n0"
	case PkarrRelay:
		return "pkarr-relay"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Op names a request kind. The values are those of
// pkarrclient.BackendError.Op, so a harness can match the two.
type Op string

// Request kinds.
const (
	OpPublish Op = "publish" // PUT
	OpResolve Op = "resolve" // GET
)

// DefaultRequestTimeout is how long a client waits for an answer that never
// comes (a lost request), as pkarr's and this project's relay clients do.
const DefaultRequestTimeout = 2 * time.Second

// maxRetryAfter is the cap pkarrclient's Relay puts on Retry-After; the
// simulated error carries what the real client would have made of it.
const maxRetryAfter = time.Hour

// errNoAnswer is what a lost request fails with under ErrUnavailable. It
// wraps context.DeadlineExceeded because the real Relay's error does too:
// there, the per-request timeout ends the HTTP exchange.
var errNoAnswer = fmt.Errorf("simulated loss, no answer within the request timeout: %w", context.DeadlineExceeded)

// Request describes one request as the relay saw it on arrival; see
// [WithObserver]. Requests lost on the way never arrive and are not
// reported (they are counted in [IPStats.Lost]).
type Request struct {
	IP     string                // the client's IP, as given to Relay.Backend
	Op     Op                    // OpPublish or OpResolve
	Key    pkarrclient.PublicKey // the key asked for or published
	Time   time.Time             // arrival time (virtual inside synctest)
	Status int                   // HTTP status the relay answered: 200, 204, 404, 409 or 429
	// Dropped reports a PUT that N0 answered 204 without storing it,
	// because it already held a more recent packet.
	Dropped bool
	// AnswerLost reports that the answer will not reach the client, which
	// times out (see WithAnswerLoss).
	AnswerLost bool
}

// IPStats counts one client IP's requests (or, in Stats.Total, everyone's).
type IPStats struct {
	// Gets and Puts count the requests that reached the relay, whatever the
	// answer, rate limited ones included.
	Gets, Puts int
	// Stored counts PUTs that replaced (or created) the held packet.
	Stored int
	// Dropped counts PUTs of an older packet that N0 answered 204 and
	// dropped. A re-PUT of the packet already held counts in neither.
	Dropped int
	// RateLimited, Conflicts and NotFound count 429, 409 and 404 answers.
	RateLimited, Conflicts, NotFound int
	// Lost counts requests lost on the way (never arrived, not in Gets or
	// Puts) and answers lost on the way back (arrived, counted there too).
	Lost int
}

func (s *IPStats) add(o IPStats) {
	s.Gets += o.Gets
	s.Puts += o.Puts
	s.Stored += o.Stored
	s.Dropped += o.Dropped
	s.RateLimited += o.RateLimited
	s.Conflicts += o.Conflicts
	s.NotFound += o.NotFound
	s.Lost += o.Lost
}

// Stats is a snapshot of a Relay's counters.
type Stats struct {
	// Total sums every client's counters.
	Total IPStats
	// PerIP are the counters per client IP, since the limits a relay
	// applies are per IP.
	PerIP map[string]IPStats
}

// limit is a token bucket's parameters.
type limit struct {
	perSecond float64
	burst     int
}

type config struct {
	name        string
	rtt, jitter time.Duration
	loss        float64
	answerLoss  float64
	timeout     time.Duration
	rng         *rand.Rand
	putLimit    *limit // PUTs only
	reqLimit    *limit // every request
	observer    func(Request)
}

// Option configures a Relay. Options are applied in order; an invalid value
// panics, since it is a mistake in the harness, not a runtime condition.
type Option func(*config)

// WithName sets the backend name (Backend.Name, BackendError.Backend).
// Default "sim-n0" or "sim-pkarr-relay".
func WithName(name string) Option { return func(c *config) { c.name = name } }

// WithRTT sets the round-trip time of every request, plus a jitter drawn
// uniformly from [0, jitter] per request and added to it. Half the sampled
// RTT is spent before the relay sees the request, half after. Default 0.
func WithRTT(rtt, jitter time.Duration) Option {
	if rtt < 0 || jitter < 0 {
		panic(fmt.Sprintf("relaysim: WithRTT: negative duration %v, %v", rtt, jitter))
	}
	return func(c *config) { c.rtt, c.jitter = rtt, jitter }
}

// WithLoss makes each request lost on the way to the relay with probability
// p: the relay never sees it, and the caller gets ErrUnavailable after the
// request timeout. Default 0.
func WithLoss(p float64) Option {
	checkProbability("WithLoss", p)
	return func(c *config) { c.loss = p }
}

// WithAnswerLoss makes each answer lost on the way back with probability p:
// the relay has applied the request (a PUT may be stored) but the caller
// gets ErrUnavailable after the request timeout, as when a response is
// lost in a real network. Default 0.
func WithAnswerLoss(p float64) Option {
	checkProbability("WithAnswerLoss", p)
	return func(c *config) { c.answerLoss = p }
}

func checkProbability(name string, p float64) {
	if !(p >= 0 && p <= 1) {
		panic(fmt.Sprintf("relaysim: %s: probability %v outside [0, 1]", name, p))
	}
}

// WithRequestTimeout sets how long a caller waits for an answer, counted
// from the start of the call, before failing with ErrUnavailable (default
// DefaultRequestTimeout). Zero means no timeout: a lost request then waits
// until the caller's context ends.
func WithRequestTimeout(d time.Duration) Option {
	if d < 0 {
		panic(fmt.Sprintf("relaysim: WithRequestTimeout: negative duration %v", d))
	}
	return func(c *config) { c.timeout = d }
}

// WithRand sets the source of jitter and loss. The Relay serializes its
// use, so the generator must not be used elsewhere concurrently. Default:
// a PCG with a fixed seed.
func WithRand(rng *rand.Rand) Option {
	if rng == nil {
		panic("relaysim: WithRand: nil generator")
	}
	return func(c *config) { c.rng = rng }
}

// WithPutRateLimit sets a per-IP token bucket on PUTs: burst tokens, refilled
// at perSecond. It is N0's limit (0.25 per second, burst 2); a PkarrRelay
// has none unless given one.
func WithPutRateLimit(perSecond rate.Limit, burst int) Option {
	l := newLimit("WithPutRateLimit", float64(perSecond), burst)
	return func(c *config) { c.putLimit = l }
}

// WithRequestRateLimit sets a per-IP token bucket on every request, GET or PUT.
// It is PkarrRelay's limit (2 per second, burst 10); an N0 has none unless
// given one.
func WithRequestRateLimit(perSecond rate.Limit, burst int) Option {
	l := newLimit("WithRequestRateLimit", float64(perSecond), burst)
	return func(c *config) { c.reqLimit = l }
}

func newLimit(name string, perSecond float64, burst int) *limit {
	if !(perSecond > 0) || burst < 1 {
		panic(fmt.Sprintf("relaysim: %s: want perSecond > 0 and burst >= 1, got %v, %d", name, perSecond, burst))
	}
	return &limit{perSecond: perSecond, burst: burst}
}

// WithRateLimits(false) removes both rate limits (later options may set
// them again); true keeps the mode's, as by default, so that a harness can
// pass a flag through.
func WithRateLimits(on bool) Option {
	return func(c *config) {
		if !on {
			c.putLimit, c.reqLimit = nil, nil
		}
	}
}

// WithObserver calls f for every request that reaches the relay, at its
// arrival, after the relay has answered it, so a harness can compute
// request rates per peer over time. f runs outside the Relay's lock (it may
// call Stats) on the caller's goroutine, so calls for concurrent requests
// may run concurrently and out of arrival order; Request.Time is exact.
func WithObserver(f func(Request)) Option { return func(c *config) { c.observer = f } }

// Relay is one simulated relay: the packets it holds, its per-IP rate
// limits and counters, and the network between it and its clients. It is
// safe for concurrent use.
type Relay struct {
	mode Mode
	cfg  config

	mu      sync.Mutex
	packets map[pkarrclient.PublicKey]*pkarrclient.SignedPacket
	clients map[string]*clientState
}

// clientState is what the relay keeps per client IP.
type clientState struct {
	put, req *rate.Limiter // nil when that limit is off
	stats    IPStats
}

// New returns an empty relay behaving like mode, with that mode's default
// limits, no network delay or loss, and DefaultRequestTimeout. It panics on
// an unknown mode.
func New(mode Mode, opts ...Option) *Relay {
	cfg := config{timeout: DefaultRequestTimeout}
	switch mode {
	case N0:
		cfg.name = "sim-n0"
		cfg.putLimit = &limit{perSecond: 0.25, burst: 2}
	case PkarrRelay:
		cfg.name = "sim-pkarr-relay"
		cfg.reqLimit = &limit{perSecond: 2, burst: 10}
	default:
		panic(fmt.Sprintf("relaysim: New: unknown mode %v", mode))
	}
	for _, opt := range opts {
		if opt != nil {
			opt(&cfg)
		}
	}
	if cfg.rng == nil {
		cfg.rng = rand.New(rand.NewPCG(1, 2))
	}
	return &Relay{
		mode:    mode,
		cfg:     cfg,
		packets: make(map[pkarrclient.PublicKey]*pkarrclient.SignedPacket),
		clients: make(map[string]*clientState),
	}
}

// Mode returns the relay's mode.
func (r *Relay) Mode() Mode { return r.mode }

// Name returns the relay's backend name.
func (r *Relay) Name() string { return r.cfg.name }

// Put stores p as the packet held for its key, replacing whatever was held,
// even a more recent packet, with no delay, limit or count: a harness seeds
// or rewinds the relay's state with it.
func (r *Relay) Put(p *pkarrclient.SignedPacket) {
	r.mu.Lock()
	r.packets[p.PublicKey()] = p
	r.mu.Unlock()
}

// Get returns the packet held for key, or nil, with no delay, limit or
// count.
func (r *Relay) Get(key pkarrclient.PublicKey) *pkarrclient.SignedPacket {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.packets[key]
}

// Delete forgets the packet held for key, as a relay evicting it would
// (n0's relay evicts packets over 7 days old; this model never does on its
// own).
func (r *Relay) Delete(key pkarrclient.PublicKey) {
	r.mu.Lock()
	delete(r.packets, key)
	r.mu.Unlock()
}

// Stats returns a snapshot of the counters, in total and per client IP.
func (r *Relay) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Stats{PerIP: make(map[string]IPStats, len(r.clients))}
	for ip, c := range r.clients {
		s.PerIP[ip] = c.stats
		s.Total.add(c.stats)
	}
	return s
}

// IPStats returns a snapshot of one client IP's counters (zero if it never
// sent anything).
func (r *Relay) IPStats(ip string) IPStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c := r.clients[ip]; c != nil {
		return c.stats
	}
	return IPStats{}
}

// Backend returns the relay as seen by a client at ip: requests through it
// share ip's rate limits and counters. Any string works as an IP.
func (r *Relay) Backend(ip string) pkarrclient.Backend { return &backend{relay: r, ip: ip} }

// client returns ip's state, creating it. r.mu must be held.
func (r *Relay) client(ip string) *clientState {
	c := r.clients[ip]
	if c == nil {
		c = &clientState{put: newLimiter(r.cfg.putLimit), req: newLimiter(r.cfg.reqLimit)}
		r.clients[ip] = c
	}
	return c
}

func newLimiter(l *limit) *rate.Limiter {
	if l == nil {
		return nil
	}
	return rate.NewLimiter(rate.Limit(l.perSecond), l.burst)
}

// path is one request's draw of the network: delays each way and losses.
type path struct {
	out, back         time.Duration
	lostOut, lostBack bool
}

// draw samples the network for one request. Nothing is drawn for a feature
// that is off, so a run without jitter or loss uses no randomness at all.
func (r *Relay) draw() path {
	r.mu.Lock()
	defer r.mu.Unlock()
	rtt := r.cfg.rtt
	if r.cfg.jitter > 0 {
		rtt += time.Duration(r.cfg.rng.Int64N(int64(r.cfg.jitter) + 1))
	}
	p := path{out: rtt / 2, back: rtt - rtt/2}
	p.lostOut = r.cfg.loss > 0 && r.cfg.rng.Float64() < r.cfg.loss
	p.lostBack = !p.lostOut && r.cfg.answerLoss > 0 && r.cfg.rng.Float64() < r.cfg.answerLoss
	return p
}

// answer is the relay's reply to one request.
type answer struct {
	status     int
	retryAfter time.Duration             // 429: the Retry-After, whole seconds
	packet     *pkarrclient.SignedPacket // 200
	dropped    bool                      // 204 without storing (N0, older packet)
}

// arrive handles a request reaching the relay now: p is the packet of a
// PUT, nil for a GET.
func (r *Relay) arrive(ip string, op Op, key pkarrclient.PublicKey, p *pkarrclient.SignedPacket, answerLost bool) answer {
	now := time.Now()
	r.mu.Lock()
	c := r.client(ip)
	a := r.handle(c, now, op, key, p)
	s := &c.stats
	if op == OpPublish {
		s.Puts++
	} else {
		s.Gets++
	}
	switch {
	case a.status == 429:
		s.RateLimited++
	case a.status == 409:
		s.Conflicts++
	case a.status == 404:
		s.NotFound++
	case a.dropped:
		s.Dropped++
	}
	if answerLost {
		s.Lost++
	}
	r.mu.Unlock()
	if r.cfg.observer != nil {
		r.cfg.observer(Request{IP: ip, Op: op, Key: key, Time: now, Status: a.status, Dropped: a.dropped, AnswerLost: answerLost})
	}
	return a
}

// handle decides a request's answer. r.mu must be held. As on the deployed
// relays, the rate limit comes first: a refused request changes nothing and
// does not use up a token.
func (r *Relay) handle(c *clientState, now time.Time, op Op, key pkarrclient.PublicKey, p *pkarrclient.SignedPacket) answer {
	if wait, ok := take(c.req, now); !ok {
		return answer{status: 429, retryAfter: wait}
	}
	held := r.packets[key]
	if op == OpResolve {
		if held == nil {
			return answer{status: 404}
		}
		return answer{status: 200, packet: held}
	}
	if wait, ok := take(c.put, now); !ok {
		return answer{status: 429, retryAfter: wait}
	}
	switch {
	case p.MoreRecentThan(held): // true when nothing is held
		r.packets[key] = p
		c.stats.Stored++
		return answer{status: 204}
	case p.Equal(held):
		// Both relays accept a re-PUT of the packet they hold.
		return answer{status: 204}
	case r.mode == PkarrRelay:
		return answer{status: 409}
	}
	return answer{status: 204, dropped: true}
}

// take takes a token from lim at now. When there is none it returns the
// Retry-After the relay sends: the wait for the next token in whole
// seconds, rounded up, at least one.
func take(lim *rate.Limiter, now time.Time) (time.Duration, bool) {
	if lim == nil || lim.AllowN(now, 1) {
		return 0, true
	}
	missing := 1 - lim.TokensAt(now)
	secs := math.Ceil(missing / float64(lim.Limit()))
	return min(time.Duration(max(secs, 1))*time.Second, maxRetryAfter), false
}

// backend is one client's view of a Relay.
type backend struct {
	relay *Relay
	ip    string
}

// Name implements pkarrclient.Backend.
func (b *backend) Name() string { return b.relay.cfg.name }

// Publish implements pkarrclient.Backend: a PUT of p.
func (b *backend) Publish(ctx context.Context, p *pkarrclient.SignedPacket) (pkarrclient.PublishReceipt, error) {
	if p == nil {
		return pkarrclient.PublishReceipt{}, b.fail(OpPublish, 0, fmt.Errorf("%w: nil packet", pkarrclient.ErrBadRequest))
	}
	_, err := b.exchange(ctx, OpPublish, p.PublicKey(), p)
	return pkarrclient.PublishReceipt{}, err
}

// Resolve implements pkarrclient.Backend: a GET of q.Key. Like the real
// relays it ignores q.NewerThan, and the model has no cache for q.Fresh to
// bypass.
func (b *backend) Resolve(ctx context.Context, q pkarrclient.Query) (*pkarrclient.SignedPacket, error) {
	a, err := b.exchange(ctx, OpResolve, q.Key, nil)
	if err != nil {
		return nil, err
	}
	return a.packet, nil
}

// exchange carries one request to the relay and its answer back, and maps
// the answer to the error pkarrclient.Relay would return for it.
func (b *backend) exchange(ctx context.Context, op Op, key pkarrclient.PublicKey, p *pkarrclient.SignedPacket) (answer, error) {
	if err := ctx.Err(); err != nil {
		return answer{}, b.fail(op, 0, err)
	}
	r := b.relay
	route := r.draw()
	wctx := ctx
	if r.cfg.timeout > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, r.cfg.timeout)
		defer cancel()
	}
	if route.lostOut {
		r.mu.Lock()
		r.client(b.ip).stats.Lost++
		r.mu.Unlock()
		<-wctx.Done()
		return answer{}, b.noAnswer(ctx, op)
	}
	if !sleep(wctx, route.out) {
		// Given up before arrival: the relay never sees the request.
		return answer{}, b.noAnswer(ctx, op)
	}
	a := r.arrive(b.ip, op, key, p, route.lostBack)
	if route.lostBack {
		<-wctx.Done()
		return answer{}, b.noAnswer(ctx, op)
	}
	if !sleep(wctx, route.back) {
		return answer{}, b.noAnswer(ctx, op)
	}
	switch a.status {
	case 404:
		return a, b.fail(op, a.status, pkarrclient.ErrNotFound)
	case 409:
		return a, b.fail(op, a.status, pkarrclient.ErrNotMostRecent)
	case 429:
		return a, b.fail(op, a.status, &pkarrclient.RateLimitError{RetryAfter: a.retryAfter})
	}
	return a, nil
}

// noAnswer is the error of a request whose answer did not come: the
// caller's context error if it ended (the real Relay reports that bare, as
// the caller's own doing), else the request timeout as ErrUnavailable.
func (b *backend) noAnswer(ctx context.Context, op Op) error {
	if err := ctx.Err(); err != nil {
		return b.fail(op, 0, err)
	}
	return b.fail(op, 0, fmt.Errorf("%w: %w", pkarrclient.ErrUnavailable, errNoAnswer))
}

func (b *backend) fail(op Op, status int, err error) error {
	return &pkarrclient.BackendError{Backend: b.relay.cfg.name, Op: string(op), Status: status, Err: err}
}

// sleep waits d, or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
