package pkarrclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
)

// Client defaults, as in pkarr's Rust client where it has one.
const (
	defaultCacheSize         = 1000
	defaultMinTTL            = 300
	defaultMaxTTL            = 86400
	defaultMostRecentTimeout = 5 * time.Second
)

// Client publishes to and resolves from several [Backend]s at once. No
// single relay is trusted: every answer is verified, one backend's junk
// never hides another's valid packet, and a cache of the newest packet seen
// per key stops a backend from rolling a caller back to an older version.
//
// A Client is safe for concurrent use and holds no goroutines between
// calls; there is nothing to close.
type Client struct {
	backends          []Backend
	cache             *packetCache // nil when disabled
	minTTL, maxTTL    uint32
	policy            SuccessPolicy
	clock             clockwork.Clock
	mostRecentTimeout time.Duration
	distrust          time.Duration
	acks              *ackLog
	log               *slog.Logger
}

// clientConfig collects ClientOptions before NewClient builds the Client.
type clientConfig struct {
	cacheSize         int
	minTTL, maxTTL    uint32
	policy            SuccessPolicy
	clock             clockwork.Clock
	mostRecentTimeout time.Duration
	distrust          time.Duration
	log               *slog.Logger
}

// ClientOption configures a Client. An invalid value makes NewClient fail
// rather than silently picking a default.
type ClientOption func(*clientConfig) error

// WithCacheSize bounds the number of keys whose newest packet the Client
// remembers (default 1000, least recently used evicted first). Zero disables
// the cache, and with it rollback protection across calls.
func WithCacheSize(n int) ClientOption {
	return func(c *clientConfig) error {
		if n < 0 {
			return fmt.Errorf("pkarr: WithCacheSize: negative size %d", n)
		}
		c.cacheSize = n
		return nil
	}
}

// WithTTLClamp bounds, in seconds, how long a cached packet is answered
// without asking the network: the smallest record TTL in the packet,
// clamped to [min, max] (default 300 to 86400, as pkarr). The lower bound
// keeps a record with a tiny TTL from sending every resolve to relays that
// rate-limit per IP.
func WithTTLClamp(min, max uint32) ClientOption {
	return func(c *clientConfig) error {
		if min > max {
			return fmt.Errorf("pkarr: WithTTLClamp: min %d > max %d", min, max)
		}
		c.minTTL, c.maxTTL = min, max
		return nil
	}
}

// WithSuccessPolicy decides when a Publish counts as done, given how many
// backends accepted the packet out of how many were asked (default
// [AtLeastOne]).
func WithSuccessPolicy(p SuccessPolicy) ClientOption {
	return func(c *clientConfig) error {
		if p == nil {
			return errors.New("pkarr: WithSuccessPolicy: nil policy")
		}
		c.policy = p
		return nil
	}
}

// WithClock sets the clock that ages cached packets, so tests can expire
// them without sleeping. Default: the real clock. Network timeouts always
// run on the real clock.
func WithClock(clock clockwork.Clock) ClientOption {
	return func(c *clientConfig) error {
		if clock == nil {
			return errors.New("pkarr: WithClock: nil clock")
		}
		c.clock = clock
		return nil
	}
}

// WithMostRecentTimeout bounds how long ResolveMostRecent waits for slow
// backends before settling for the answers it has (default 5 s); the
// caller's context can cut it shorter. Zero removes the bound, leaving the
// context and the backends' own timeouts.
func WithMostRecentTimeout(d time.Duration) ClientOption {
	return func(c *clientConfig) error {
		if d < 0 {
			return fmt.Errorf("pkarr: WithMostRecentTimeout: negative duration %v", d)
		}
		c.mostRecentTimeout = d
		return nil
	}
}

// WithDistrustTTL sets how long a backend stays distrusted after it served a
// packet older than one it had accepted from this Client (default 10
// min). A relay keeps the newest packet per key, so going back means it
// lied about the PUT, lost the packet, or sits behind a stale cache; while
// distrusted, its answers still count towards the most recent packet, but
// never end a resolve's wait for the others (see Resolve). A backend that
// implements MayServeOlder, such as the DHT, is never distrusted. Zero
// turns the check off.
func WithDistrustTTL(d time.Duration) ClientOption {
	return func(c *clientConfig) error {
		if d < 0 {
			return fmt.Errorf("pkarr: WithDistrustTTL: negative duration %v", d)
		}
		c.distrust = d
		return nil
	}
}

// WithLogger receives a debug line per backend outcome. By default nothing
// is logged.
func WithLogger(l *slog.Logger) ClientOption {
	return func(c *clientConfig) error {
		if l == nil {
			return errors.New("pkarr: WithLogger: nil logger")
		}
		c.log = l
		return nil
	}
}

// SuccessPolicy reports whether a publish accepted by accepted of total
// backends is good enough. Pass [AtLeastOne], [Majority], [All] or your own
// function to [WithSuccessPolicy].
type SuccessPolicy func(accepted, total int) bool

// AtLeastOne is satisfied when any backend accepted the packet: one copy
// somewhere makes the record resolvable. It is the default.
func AtLeastOne(accepted, total int) bool { return accepted >= 1 }

// Majority is satisfied when more than half the backends accepted, as
// pkarr's Rust client requires of its relays.
func Majority(accepted, total int) bool { return accepted*2 > total }

// All is satisfied only when every backend accepted.
func All(accepted, total int) bool { return total > 0 && accepted == total }

// NewClient returns a Client over backends, asked in parallel for every
// call and reported in this order. It fails with ErrNoBackends when there
// are none.
func NewClient(backends []Backend, opts ...ClientOption) (*Client, error) {
	if len(backends) == 0 {
		return nil, ErrNoBackends
	}
	for i, b := range backends {
		if b == nil {
			return nil, fmt.Errorf("pkarr: NewClient: backend %d is nil", i)
		}
	}
	cfg := clientConfig{
		cacheSize:         defaultCacheSize,
		minTTL:            defaultMinTTL,
		maxTTL:            defaultMaxTTL,
		policy:            AtLeastOne,
		mostRecentTimeout: defaultMostRecentTimeout,
		distrust:          defaultDistrust,
	}
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.clock == nil {
		cfg.clock = clockwork.NewRealClock()
	}
	if cfg.log == nil {
		cfg.log = slog.New(slog.DiscardHandler)
	}
	return &Client{
		backends:          slices.Clone(backends),
		cache:             newPacketCache(cfg.cacheSize),
		minTTL:            cfg.minTTL,
		maxTTL:            cfg.maxTTL,
		policy:            cfg.policy,
		clock:             cfg.clock,
		mostRecentTimeout: cfg.mostRecentTimeout,
		distrust:          cfg.distrust,
		acks:              newAckLog(backends, max(cfg.cacheSize, defaultCacheSize)),
		log:               cfg.log,
	}, nil
}

// Backends returns the Client's backends, in the order outcomes are
// reported. The slice is a copy.
func (c *Client) Backends() []Backend { return slices.Clone(c.backends) }

// Distrusted returns the names of the backends distrusted now: each served
// a packet older than one it had accepted from this Client (see
// WithDistrustTTL).
func (c *Client) Distrusted() []string {
	now := c.clock.Now()
	var out []string
	for i, b := range c.backends {
		if c.acks.distrusted(i, now) {
			out = append(out, b.Name())
		}
	}
	return out
}

// Outcome is what one backend did with one call, so callers can show which
// relays accepted a record, or find out why a resolve failed.
type Outcome struct {
	// Backend is the backend's Name.
	Backend string
	// Err is nil on success; otherwise usually a *BackendError wrapping
	// one of the package's sentinels, or a context error for a backend
	// cancelled because another answered first.
	Err error
	// Duration is how long the backend took, on the real clock.
	Duration time.Duration
	// Receipt is the backend's publish receipt (publish only).
	Receipt PublishReceipt
	// Packet is the verified packet the backend returned (resolve only);
	// nil when it returned none or an invalid one.
	Packet *SignedPacket
	// Distrusted is set when the backend was distrusted as it answered
	// (resolve only): it had served a packet older than one it accepted
	// from this Client, now or within the WithDistrustTTL period.
	Distrusted bool
}

// PublishResult reports a Publish backend by backend.
type PublishResult struct {
	// Outcomes has one entry per backend, in the Client's backend order.
	Outcomes []Outcome
	// Accepted is the number of backends that accepted the packet.
	Accepted int
}

// Publish sends p to every backend concurrently and waits for all of them,
// each bounded by its own timeouts and by ctx.
//
// When the success policy is met the packet is cached (unless the cache
// already holds a newer one) and the error is nil. Otherwise Publish
// returns the result and a *[PublishError], which matches every backend's
// error with errors.Is: errors.Is(err, ErrNotMostRecent) tells that some
// backend holds a newer packet. The result is returned in both cases,
// because a partial success still tells where the record now lives.
func (c *Client) Publish(ctx context.Context, p *SignedPacket) (*PublishResult, error) {
	if p == nil {
		return nil, fmt.Errorf("%w: nil packet", ErrBadRequest)
	}
	outcomes := make([]Outcome, len(c.backends))
	var wg sync.WaitGroup
	for i, b := range c.backends {
		wg.Go(func() {
			start := time.Now()
			receipt, err := b.Publish(ctx, p)
			if err != nil {
				receipt = PublishReceipt{}
			}
			outcomes[i] = Outcome{Backend: b.Name(), Err: err, Duration: time.Since(start), Receipt: receipt}
		})
	}
	wg.Wait()
	res := &PublishResult{Outcomes: outcomes}
	for i, o := range outcomes {
		c.logOutcome(ctx, OpPublish, p.PublicKey(), o)
		if o.Err == nil {
			res.Accepted++
			c.acks.accepted(p.PublicKey(), i, p.Timestamp())
		}
	}
	if !c.policy(res.Accepted, len(outcomes)) {
		return res, &PublishError{Outcomes: slices.Clone(outcomes), Accepted: res.Accepted}
	}
	c.cache.put(p, c.clock.Now())
	return res, nil
}

// resolveConfig collects ResolveOptions.
type resolveConfig struct {
	networkOnly bool
	uncached    bool
	settle      time.Duration
	onOutcome   func(Outcome)
}

// ResolveOption adjusts one Resolve or ResolveMostRecent call.
type ResolveOption func(*resolveConfig)

// NetworkOnly makes the call ask the backends even when the cache holds a
// packet that has not expired, and asks them to bypass intermediate HTTP
// caches (Query.Fresh), for callers who know the record just changed. The
// answer still updates the cache, and still never rolls back past a newer
// cached packet. Without a network answer the call fails: it does not fall
// back to an expired cached packet.
func NetworkOnly() ResolveOption {
	return func(c *resolveConfig) { c.networkOnly = true }
}

// Uncached makes the call ignore the cache altogether: it asks the
// backends (as NetworkOnly), and returns what they answered even when the
// cache holds a newer packet, for a caller checking what the network holds
// rather than what is newest, such as the read-back that confirms a
// publish: the cache learned our own packet from Publish, and answering
// from it would confirm a write no backend kept. The answer still updates
// the cache.
func Uncached() ResolveOption {
	return func(c *resolveConfig) { c.networkOnly, c.uncached = true, true }
}

// SettleWait makes Resolve wait, after the first valid answer of a trusted
// backend, up to d for the other backends, and return the most recent
// packet among the answers in by then, instead of the first. It costs at
// most d when a backend hangs, nothing when all answer; it is for callers
// that write back what they read, or that one fast relay serving an old
// packet must not mislead. ResolveMostRecent waits for every backend
// anyway.
func SettleWait(d time.Duration) ResolveOption {
	return func(c *resolveConfig) { c.settle = max(d, 0) }
}

// ReportOutcomes calls f once per backend as each finishes, including those
// cancelled because another backend answered first, so a caller can report
// what every relay said. The calls are made one at a time, from the
// resolving goroutine, before Resolve returns; f needs no locking but must
// not block. A resolve answered from the cache asks no backend and calls f
// not at all.
func ReportOutcomes(f func(Outcome)) ResolveOption {
	return func(c *resolveConfig) { c.onOutcome = f }
}

// Resolve returns a verified packet for key, asking the network only when
// it must.
//
// A cached packet younger than its TTL (clamped, see WithTTLClamp) is
// returned at once, unless NetworkOnly is given. Otherwise every backend is
// asked concurrently and the first valid packet ends the wait (or, with
// SettleWait, starts a short window for the others): the other requests are
// cancelled, Resolve waits for them to return, and the newest valid packet
// among the answers in by then (usually just the first) is the network's
// answer. An invalid, forged or wrong-key answer never wins; it only
// becomes that backend's outcome error. A distrusted backend (one that
// served a packet older than one it accepted from this Client, see
// WithDistrustTTL) never ends the wait: its packet counts only if it is the
// most recent once the others have answered. If the cache holds a packet more recent than the network's answer,
// the cached packet is returned instead, so a backend replaying an old but
// validly signed packet cannot roll the caller back. The newest packet seen
// is cached.
//
// When no backend returns a valid packet, Resolve returns the cached packet
// for key even if it has expired (stale beats nothing: relays evict, and
// the packet is still signed by the key), unless NetworkOnly is given. With
// nothing cached it returns a *[ResolveError] carrying every outcome;
// errors.Is(err, ErrNotFound) holds when at least one backend said it has
// no packet for the key.
func (c *Client) Resolve(ctx context.Context, key PublicKey, opts ...ResolveOption) (*SignedPacket, error) {
	return c.resolve(ctx, key, false, opts)
}

// ResolveMostRecent asks every backend and waits for all of them (at most
// the WithMostRecentTimeout bound, and ctx), then returns the most recent
// valid packet among their answers and the cache. It costs a request to
// every backend every time, even when the cache is fresh; use it before
// publishing an update, or when Resolve's first answer is not enough.
// Failures are reported as in Resolve.
func (c *Client) ResolveMostRecent(ctx context.Context, key PublicKey, opts ...ResolveOption) (*SignedPacket, error) {
	return c.resolve(ctx, key, true, opts)
}

// resolved is one backend's answer, tagged with its position.
type resolved struct {
	index   int
	outcome Outcome
}

func (c *Client) resolve(ctx context.Context, key PublicKey, mostRecent bool, opts []ResolveOption) (*SignedPacket, error) {
	var o resolveConfig
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	// Uncached implies networkOnly: the cache neither answers first nor
	// gives a NewerThan hint.
	entry, cached := c.cache.get(key)
	if cached && !o.networkOnly && !mostRecent &&
		!entry.packet.Expired(entry.stored, c.clock.Now(), c.minTTL, c.maxTTL) {
		return entry.packet, nil
	}
	q := Query{Key: key, Fresh: o.networkOnly, MostRecent: mostRecent}
	if cached && !o.networkOnly && entry.packet.Timestamp() > 0 {
		// One below the cached timestamp: an equal timestamp with larger
		// DNS bytes is still more recent, and re-finding the same packet
		// confirms it.
		q.NewerThan = entry.packet.Timestamp() - 1
	}

	var cancel context.CancelFunc
	if mostRecent && c.mostRecentTimeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, c.mostRecentTimeout)
	} else {
		ctx, cancel = context.WithCancel(ctx)
	}
	defer cancel()

	answers := make(chan resolved, len(c.backends)) // never blocks a sender
	for i, b := range c.backends {
		go func() {
			start := time.Now()
			p, err := b.Resolve(ctx, q)
			p, err = checkAnswer(b.Name(), key, p, err)
			answers <- resolved{index: i, outcome: Outcome{
				Backend: b.Name(), Err: err, Duration: time.Since(start), Packet: p,
			}}
		}()
	}
	outcomes := make([]Outcome, len(c.backends))
	var best *SignedPacket
	// settled fires o.settle after the first trusted answer; nil (never)
	// until then. Network timeouts run on the real clock.
	var settled <-chan time.Time
	settling := false
	for pending := len(c.backends); pending > 0; {
		var a resolved
		select {
		case a = <-answers:
			pending--
		case <-settled:
			cancel()
			settled = nil
			continue
		}
		now := c.clock.Now()
		if p := a.outcome.Packet; p != nil && c.acks.served(key, a.index, p.Timestamp(), now, c.distrust) {
			c.log.WarnContext(ctx, "pkarr backend served a packet older than one it accepted; distrusting it",
				"backend", a.outcome.Backend, "key", key.String(), "for", c.distrust)
		}
		a.outcome.Distrusted = c.acks.distrusted(a.index, now)
		outcomes[a.index] = a.outcome
		c.logOutcome(ctx, OpResolve, key, a.outcome)
		if o.onOutcome != nil {
			o.onOutcome(a.outcome)
		}
		p := a.outcome.Packet
		if p == nil {
			continue
		}
		if p.MoreRecentThan(best) {
			best = p
		}
		// A distrusted backend's packet counts, but never ends the wait:
		// the packets it serves are signed, so they cannot be forged,
		// only old, and the most recent answer still wins.
		switch {
		case mostRecent || a.outcome.Distrusted || settling:
		case o.settle > 0:
			settling = true
			t := time.NewTimer(o.settle)
			defer t.Stop()
			settled = t.C
		default:
			cancel()
		}
	}

	if best != nil {
		c.cache.put(best, c.clock.Now())
		if o.uncached {
			return best, nil
		}
		// Read the cache again: it may have learned of a newer packet
		// while we waited, from this call or a concurrent one.
		if e, ok := c.cache.get(key); ok && e.packet.MoreRecentThan(best) {
			return e.packet, nil
		}
		return best, nil
	}
	if !o.networkOnly {
		if e, ok := c.cache.get(key); ok {
			return e.packet, nil
		}
	}
	return nil, &ResolveError{Key: key, Outcomes: outcomes}
}

// checkAnswer enforces the Backend contract on a resolve answer: a packet
// only with a nil error, and only for the key asked.
func checkAnswer(name string, key PublicKey, p *SignedPacket, err error) (*SignedPacket, error) {
	switch {
	case err != nil:
		return nil, err
	case p == nil:
		return nil, &BackendError{Backend: name, Op: OpResolve,
			Err: fmt.Errorf("%w: backend returned neither a packet nor an error", ErrInvalidResponse)}
	case p.PublicKey() != key:
		return nil, &BackendError{Backend: name, Op: OpResolve,
			Err: fmt.Errorf("%w: %w", ErrInvalidResponse, ErrKeyMismatch)}
	}
	return p, nil
}

func (c *Client) logOutcome(ctx context.Context, op string, key PublicKey, o Outcome) {
	if !c.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	attrs := []any{"op", op, "key", key.String(), "backend", o.Backend, "duration", o.Duration}
	if o.Packet != nil {
		attrs = append(attrs, "timestamp", o.Packet.Timestamp().String())
	}
	if o.Err != nil {
		attrs = append(attrs, "err", o.Err.Error())
	}
	c.log.DebugContext(ctx, "pkarr backend outcome", attrs...)
}
