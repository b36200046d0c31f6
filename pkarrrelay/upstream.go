package pkarrrelay

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/jonboulle/clockwork"
	"github.com/phrasemeet/discovery/pkarrclient"
	"golang.org/x/time/rate"
)

// The upstream path, in the order a request meets it:
//
//   - A GET that hits the store answers from it at once. When the held
//     packet is older than its clamped TTL, a background lookup asks the
//     upstream for anything newer (a refresh).
//   - A GET that misses the store consults the negative cache, then joins
//     the lookup already running for the key or starts one, and waits for it.
//   - A PUT that stored its packet hands it to the publisher (publisher.go)
//     and answers; the publish runs in the background.
//   - Every lookup and every publish needs a unit of the upstream budget: a
//     slot among maxInFlight and a token of the rate limiter. Without one, a
//     miss answers 503 and a refresh is skipped; a publish waits for one.
//   - Lookups run in goroutines the Handler owns, under a context that ends
//     at Close and a timeout of their own, never under one request's context:
//     a lookup shared by a hundred requests must not fail because the first
//     of them went away. Publishes likewise, under the publisher's.

// Upstream operations and results, the labels of MetricUpstreamCalls.
const (
	opResolve = "resolve" // a GET missed the store
	opRefresh = "refresh" // a GET found a stale packet
	opPublish = "publish" // a PUT was stored

	resultHit      = "hit"                // resolve/refresh: the upstream had a (newer) packet
	resultMiss     = "miss"               // resolve/refresh: it had none (or none newer)
	resultError    = "error"              // any operation: the call failed
	resultShared   = "shared"             // resolve/refresh: joined a lookup already running
	resultNegative = "negative_cache_hit" // resolve: answered 404 from the negative cache
	resultBudget   = "budget_exhausted"   // any operation: no budget, no call
	resultOK       = "ok"                 // publish: accepted
	resultConflict = "conflict"           // publish: the upstream holds a newer packet
	resultDropped  = "dropped"            // publish: the queue had no room for the key
)

// upstreamState is a Handler's bookkeeping for its upstream.
type upstreamState struct {
	backend pkarrclient.Backend
	timeout time.Duration
	negTTL  time.Duration
	slots   chan struct{} // one element per call in flight
	limiter *rate.Limiter // nil when the rate is unlimited
	perSec  rate.Limit

	// ctx ends at Close; every background lookup runs under it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // lookups' goroutines; Add only under mu while !closed

	mu      sync.Mutex
	closed  bool
	flights map[pkarrclient.PublicKey]*flight
	// negative maps keys the upstream did not know to when that answer
	// expires.
	negative *simplelru.LRU[pkarrclient.PublicKey, time.Time]
	// checked maps keys to when the version held in the store was last
	// known to be current: stored by a PUT, fetched or confirmed upstream.
	checked *simplelru.LRU[pkarrclient.PublicKey, checkMark]
	// published maps keys to the last packet published upstream and the
	// DHT nodes that stored it.
	published *simplelru.LRU[pkarrclient.PublicKey, publishedMark]

	// pub publishes what PUTs stored; set by NewHandler once the metrics
	// it reports to exist.
	pub *publisher
}

// publishedMark records a successful publish: the packet's signature
// identifies it.
type publishedMark struct {
	sig   [pkarrclient.SignatureSize]byte
	nodes int
}

// checkMark says that at time at, the packet stamped ts was the newest the
// relay could know of. A mark for another timestamp than the stored
// packet's says nothing about it.
type checkMark struct {
	ts pkarrclient.Timestamp
	at time.Time
}

// flight is one upstream lookup, shared by every request for its key while
// it runs.
type flight struct {
	done      chan struct{}
	newerThan pkarrclient.Timestamp // zero for a miss's lookup

	// Set before done closes.
	outcome flightOutcome
	rec     Record // the packet found, when outcome is flightFound

	// superseded is set, under the state's mu, when a PUT stored the key
	// during the lookup: a "not found" is then no longer worth remembering.
	superseded bool
}

type flightOutcome int

const (
	flightFound flightOutcome = iota + 1
	flightNotFound
	flightFailed
	flightTimedOut
)

// refusal says why beginFlight started no lookup.
type refusal int

const (
	refusedNone refusal = iota
	refusedClosed
	refusedNegative
	refusedBudget
)

func newUpstreamState(cfg *handlerConfig) *upstreamState {
	negative, err := simplelru.NewLRU[pkarrclient.PublicKey, time.Time](cfg.upCacheSize, nil)
	if err != nil { // only for a non-positive size, which the option refuses
		panic("pkarrrelay: " + err.Error())
	}
	checked, err := simplelru.NewLRU[pkarrclient.PublicKey, checkMark](cfg.upCacheSize, nil)
	if err != nil {
		panic("pkarrrelay: " + err.Error())
	}
	published, err := simplelru.NewLRU[pkarrclient.PublicKey, publishedMark](cfg.upCacheSize, nil)
	if err != nil {
		panic("pkarrrelay: " + err.Error())
	}
	u := &upstreamState{
		backend:   cfg.upstream,
		timeout:   cfg.upTimeout,
		negTTL:    cfg.negativeTTL,
		slots:     make(chan struct{}, cfg.upMaxInFlight),
		perSec:    cfg.upRate,
		flights:   make(map[pkarrclient.PublicKey]*flight),
		negative:  negative,
		checked:   checked,
		published: published,
	}
	if cfg.upRate != rate.Inf {
		u.limiter = rate.NewLimiter(cfg.upRate, cfg.upBurst)
	}
	u.ctx, u.cancel = context.WithCancel(context.Background())
	return u
}

// acquireLocked takes one unit of the budget at now without waiting, if
// the rate limiter holds at least need tokens. When it cannot, it returns
// false and how long until the limiter would hold them (zero when all
// slots are busy: no one can say when one frees up). The caller holds mu
// and, on success, must call release.
func (u *upstreamState) acquireLocked(now time.Time, need float64) (bool, time.Duration) {
	if u.closed {
		return false, 0
	}
	select {
	case u.slots <- struct{}{}:
	default:
		return false, 0
	}
	if u.limiter != nil && (u.limiter.TokensAt(now) < need || !u.limiter.AllowN(now, 1)) {
		<-u.slots
		missing := need - u.limiter.TokensAt(now)
		return false, time.Duration(math.Ceil(missing / float64(u.perSec) * float64(time.Second)))
	}
	return true, 0
}

// publishNeed is how many tokens a background publish leaves the limiter
// before it takes one: the last token of the burst is kept for lookups,
// which answer a client waiting on a GET, so a queue of publishes slows
// down rather than shutting lookups out (with a burst of one, publishes
// and lookups share the one token).
func (u *upstreamState) publishNeed() float64 {
	if u.limiter == nil {
		return 1
	}
	return float64(min(2, u.limiter.Burst()))
}

func (u *upstreamState) release() { <-u.slots }

// acquireWait takes one unit of the budget for a background publish,
// waiting until one is free or ctx ends. It takes a token only when the
// limiter holds one more for lookups (publishNeed), never by reserving the
// next one ahead: publish workers that reserved their next token the
// moment the last publish ended kept the limiter below one token for as
// long as a queue of publishes lasted, and every GET miss was refused.
func (u *upstreamState) acquireWait(ctx context.Context, clock clockwork.Clock) (func(), error) {
	need := u.publishNeed()
	for {
		if u.limiter != nil {
			if missing := need - u.limiter.TokensAt(clock.Now()); missing > 0 {
				wait := time.Duration(math.Ceil(missing / float64(u.perSec) * float64(time.Second)))
				select {
				case <-clock.After(wait):
					continue
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
		}
		select {
		case u.slots <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		u.mu.Lock()
		closed := u.closed
		ok := !closed && (u.limiter == nil || u.limiter.TokensAt(clock.Now()) >= need && u.limiter.AllowN(clock.Now(), 1))
		u.mu.Unlock()
		if ok {
			return u.release, nil
		}
		<-u.slots
		if closed {
			return nil, errUpstreamClosed
		}
		// A lookup took the token while we waited for the slot.
	}
}

// errUpstreamClosed: the Handler was closed while a publish waited.
var errUpstreamClosed = errors.New("pkarrrelay: upstream closed")

// inFlight returns the number of upstream calls running.
func (u *upstreamState) inFlight() int { return len(u.slots) }

// Close stops the Handler's background work: it cancels the upstream
// lookups (started by GET misses and stale-packet refreshes) and publishes
// in flight, drops the publishes still waiting, and waits until their
// goroutines have returned, so nothing the Handler started outlives Close.
// The upstream's Resolve and Publish must honour their context for this to
// be quick.
//
// A closed Handler still serves: GETs answer from the store (without
// refreshing), a GET that misses answers 503, and a PUT is stored but not
// published upstream. Close does not close the Store, which belongs to the
// caller. Without an upstream, Close does nothing. It always returns nil,
// and calls after the first do nothing.
//
// Server.Serve closes its Handler when its context ends, after the requests
// in flight are done.
func (h *Handler) Close() error {
	u := h.up
	if u == nil {
		return nil
	}
	u.mu.Lock()
	u.closed = true
	u.mu.Unlock()
	if n := u.pub.close(); n > 0 {
		h.cfg.logger.LogAttrs(context.Background(), slog.LevelInfo, "pkarr relay: closed with publishes pending; their packets stay stored",
			slog.Int("dropped", n))
	}
	u.cancel()
	// No Add can follow: Add happens only under mu while !closed.
	u.wg.Wait()
	return nil
}

// clampTTL applies the TTL bounds, as for Cache-Control max-age.
func (h *Handler) clampTTL(ttl uint32) uint32 {
	return min(max(ttl, h.cfg.minTTL), h.cfg.maxTTL)
}

// stale reports whether rec, the packet held for key, is older than its
// clamped TTL at now. Its age counts from the last time the relay knew it to
// be current; when the relay has forgotten (the mark was evicted, or the
// process restarted), from when the store last accepted it.
func (h *Handler) stale(key pkarrclient.PublicKey, rec *Record, now time.Time) bool {
	last := rec.Stored
	u := h.up
	u.mu.Lock()
	if m, ok := u.checked.Peek(key); ok && m.ts == rec.Timestamp {
		last = m.at
	}
	u.mu.Unlock()
	return now.Sub(last) > time.Duration(h.clampTTL(rec.TTL))*time.Second
}

// beginFlight returns the lookup running for key, or starts one. joined
// reports an existing lookup; for a miss (newerThan zero) the negative cache
// is consulted first. When no lookup runs and none may start, f is nil and
// why says why; wait is the budget's estimate of when to retry.
func (h *Handler) beginFlight(key pkarrclient.PublicKey, newerThan pkarrclient.Timestamp) (f *flight, joined bool, why refusal, wait time.Duration) {
	u := h.up
	now := h.cfg.clock.Now()
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return nil, false, refusedClosed, 0
	}
	if f := u.flights[key]; f != nil {
		return f, true, refusedNone, 0
	}
	if newerThan == 0 {
		if exp, ok := u.negative.Peek(key); ok {
			if now.Before(exp) {
				return nil, false, refusedNegative, 0
			}
			u.negative.Remove(key)
		}
	}
	ok, wait := u.acquireLocked(now, 1)
	if !ok {
		return nil, false, refusedBudget, wait
	}
	f = &flight{done: make(chan struct{}), newerThan: newerThan}
	u.flights[key] = f
	u.wg.Add(1)
	go h.fly(key, f)
	return f, false, refusedNone, 0
}

// fly runs one lookup to its end and settles what it learned.
func (h *Handler) fly(key pkarrclient.PublicKey, f *flight) {
	u := h.up
	defer u.wg.Done()
	op := opResolve
	if f.newerThan != 0 {
		op = opRefresh
	}
	ctx, cancel := context.WithTimeout(u.ctx, u.timeout)
	p, err := u.backend.Resolve(ctx, pkarrclient.Query{Key: key, NewerThan: f.newerThan})
	cancel()

	var mark *checkMark
	result := resultError
	switch {
	case errors.Is(err, pkarrclient.ErrNotFound):
		f.outcome, result = flightNotFound, resultMiss
	case err != nil:
		f.outcome = flightFailed
		if errors.Is(err, context.DeadlineExceeded) {
			f.outcome = flightTimedOut
		}
		h.upstreamFailed(op, key, "pkarr relay: upstream resolve failed", err)
	case p == nil || p.PublicKey() != key:
		f.outcome = flightFailed
		h.upstreamFailed(op, key, "pkarr relay: upstream answered with a packet for another key", nil)
	case h.tooFarAhead(p.Timestamp()):
		// Caching it would block honest writes exactly as a PUT would.
		f.outcome, result = flightNotFound, resultMiss
		h.cfg.logger.LogAttrs(u.ctx, slog.LevelDebug, "pkarr relay: upstream packet too far in the future, ignored",
			slog.String("key", key.String()), slog.String("op", op))
	default:
		f.outcome = flightFound
		var stored bool
		mark, stored = h.keep(key, p, f)
		result = resultHit
		if op == opRefresh && !stored {
			result = resultMiss // nothing newer than what the store holds
		}
	}
	h.countUpstream(op, result)

	now := h.cfg.clock.Now()
	u.mu.Lock()
	delete(u.flights, key)
	switch {
	case mark != nil:
		u.checked.Add(key, *mark)
		u.negative.Remove(key)
	case f.outcome == flightNotFound && op == opRefresh:
		// Nothing newer than the held packet: it is current as of now.
		u.checked.Add(key, checkMark{ts: f.newerThan, at: now})
	case f.outcome == flightNotFound && u.negTTL > 0 && !f.superseded:
		u.negative.Add(key, now.Add(u.negTTL))
	}
	u.release()
	u.mu.Unlock()
	close(f.done)
	if h.cfg.afterFlight != nil {
		h.cfg.afterFlight(key)
	}
}

// keep stores a packet the upstream found and sets f.rec to what the key
// now has. It returns the check mark to record (nil when the store failed)
// and whether the packet replaced the held one.
func (h *Handler) keep(key pkarrclient.PublicKey, p *pkarrclient.SignedPacket, f *flight) (*checkMark, bool) {
	u := h.up
	// A context of its own: the lookup may have used up most of its time.
	ctx, cancel := context.WithTimeout(u.ctx, u.timeout)
	defer cancel()
	now := h.cfg.clock.Now()
	f.rec = newRecord(p, now)
	outcome, err := h.store.Put(ctx, p)
	switch {
	case err != nil:
		h.cfg.logger.LogAttrs(ctx, slog.LevelWarn, "pkarr relay: caching upstream packet failed",
			slog.String("key", key.String()), slog.Any("err", err))
		return nil, false // still served to the requests waiting for it
	case outcome == PutNotMostRecent:
		// A PUT raced the lookup and won, or the upstream ignored the
		// NewerThan hint; serve what the store holds.
		if rec, err := h.store.Get(ctx, key); err == nil {
			f.rec = rec
		}
	}
	return &checkMark{ts: f.rec.Timestamp, at: now}, outcome == PutStored
}

// upstreamFailed counts and logs a failed upstream call. A call cut short
// by Close is expected and logged at debug only.
func (h *Handler) upstreamFailed(op string, key pkarrclient.PublicKey, msg string, err error) {
	h.metrics.upstreamErr.WithLabelValues(op).Inc()
	level := slog.LevelWarn
	if h.up.ctx.Err() != nil {
		level = slog.LevelDebug
	}
	attrs := []slog.Attr{slog.String("key", key.String()), slog.String("op", op)}
	if err != nil {
		attrs = append(attrs, slog.Any("err", err))
	}
	h.cfg.logger.LogAttrs(context.Background(), level, msg, attrs...)
}

func (h *Handler) countUpstream(op, result string) {
	h.metrics.upstreamCalls.WithLabelValues(op, result).Inc()
}

// resolve answers a GET that missed the store from the upstream, waiting
// for the lookup (its own or one it shares). It returns a non-zero status
// when it already answered.
func (h *Handler) resolve(ctx context.Context, w http.ResponseWriter, key pkarrclient.PublicKey) (Record, int) {
	f, joined, why, wait := h.beginFlight(key, 0)
	switch why {
	case refusedClosed:
		return Record{}, fail(w, http.StatusServiceUnavailable, "relay shutting down")
	case refusedNegative:
		h.countUpstream(opResolve, resultNegative)
		return Record{}, fail(w, http.StatusNotFound, "not found")
	case refusedBudget:
		h.countUpstream(opResolve, resultBudget)
		w.Header().Set("Retry-After", strconv.FormatInt(retryAfterSeconds(wait), 10))
		return Record{}, fail(w, http.StatusServiceUnavailable, "upstream busy")
	}
	if joined {
		h.countUpstream(opResolve, resultShared)
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		// The client left or the server is shutting down; the lookup goes
		// on and caches its answer for the next request.
		return Record{}, fail(w, http.StatusServiceUnavailable, "request ended before the upstream answered")
	}
	switch f.outcome {
	case flightFound:
		return f.rec, 0
	case flightNotFound:
		// A PUT may have stored the key meanwhile, and a joined refresh's
		// "nothing newer" means the key was held when it started.
		if rec, err := h.store.Get(ctx, key); err == nil {
			return rec, 0
		}
		return Record{}, fail(w, http.StatusNotFound, "not found")
	case flightTimedOut:
		return Record{}, fail(w, http.StatusGatewayTimeout, "upstream timed out")
	}
	return Record{}, fail(w, http.StatusBadGateway, "upstream failed")
}

// refreshIfStale starts a background refresh of rec, the packet held for
// key, when it is older than its TTL. It never waits.
func (h *Handler) refreshIfStale(ctx context.Context, key pkarrclient.PublicKey, rec *Record) {
	if !h.stale(key, rec, h.cfg.clock.Now()) {
		return
	}
	// A zero timestamp would mean "no hint"; one microsecond after the
	// epoch will not be on any real packet.
	_, joined, why, _ := h.beginFlight(key, max(rec.Timestamp, 1))
	switch {
	case why == refusedBudget:
		h.countUpstream(opRefresh, resultBudget)
		h.cfg.logger.LogAttrs(ctx, slog.LevelDebug, "pkarr relay: upstream budget exhausted, stale packet served without refresh",
			slog.String("key", key.String()))
	case joined:
		h.countUpstream(opRefresh, resultShared)
	}
}

// noteStored records that a PUT stored (or confirmed) p: the key is no
// longer absent, and the packet is current as of now.
func (h *Handler) noteStored(p *pkarrclient.SignedPacket) {
	u := h.up
	key := p.PublicKey()
	now := h.cfg.clock.Now()
	u.mu.Lock()
	u.negative.Remove(key)
	u.checked.Add(key, checkMark{ts: p.Timestamp(), at: now})
	if f := u.flights[key]; f != nil {
		f.superseded = true
	}
	u.mu.Unlock()
}

// publish hands a stored packet to the publisher and sets the
// Pkarr-Dht-Stored-Nodes header when the relay already published exactly
// this packet (a republish). It never waits for the upstream.
func (h *Handler) publish(ctx context.Context, w http.ResponseWriter, p *pkarrclient.SignedPacket) {
	u := h.up
	key := p.PublicKey()
	switch u.pub.enqueue(p) {
	case dropped:
		h.countUpstream(opPublish, resultDropped)
		h.cfg.logger.LogAttrs(ctx, slog.LevelDebug, "pkarr relay: publish queue full, packet stored but not published",
			slog.String("key", key.String()))
	case refused:
		h.cfg.logger.LogAttrs(ctx, slog.LevelDebug, "pkarr relay: handler closed, packet stored but not published",
			slog.String("key", key.String()))
	}
	u.mu.Lock()
	m, ok := u.published.Peek(key)
	u.mu.Unlock()
	if ok && string(m.sig[:]) == string(p.Signature()) {
		w.Header().Set(HeaderDHTStoredNodes, strconv.Itoa(m.nodes))
	}
}

// publishDone is the publisher's report of one call.
func (h *Handler) publishDone(p *pkarrclient.SignedPacket, attempt int, receipt pkarrclient.PublishReceipt, err error, final bool) {
	u := h.up
	key := p.PublicKey()
	switch {
	case err == nil:
		h.countUpstream(opPublish, resultOK)
		var m publishedMark
		copy(m.sig[:], p.Signature())
		m.nodes = receipt.DHTNodes
		u.mu.Lock()
		u.published.Add(key, m)
		u.mu.Unlock()
	case errors.Is(err, pkarrclient.ErrNotMostRecent):
		h.countUpstream(opPublish, resultConflict)
		// The upstream holds something newer: make the next GET look.
		u.mu.Lock()
		u.checked.Add(key, checkMark{ts: p.Timestamp()})
		u.mu.Unlock()
	default:
		h.countUpstream(opPublish, resultError)
		h.metrics.upstreamErr.WithLabelValues(opPublish).Inc()
		level := slog.LevelWarn
		if !final || u.pub.ctx.Err() != nil {
			level = slog.LevelDebug // a retry follows, or the handler is closing
		}
		h.cfg.logger.LogAttrs(context.Background(), level, "pkarr relay: upstream publish failed",
			slog.String("key", key.String()), slog.Int("attempt", attempt), slog.Bool("retrying", !final), slog.Any("err", err))
	}
	if h.cfg.afterPublish != nil {
		h.cfg.afterPublish(key, err)
	}
}
