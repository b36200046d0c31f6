package libp2padapter

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/phrasemeet/discovery"
	"github.com/phrasemeet/discovery/internal/backoff"
)

// ConnectEventType says how a dial ended.
type ConnectEventType uint8

// The connect event types.
const (
	// Connected: the dial succeeded.
	Connected ConnectEventType = iota + 1
	// Failed: the dial failed; another is scheduled unless the peer was
	// lost meanwhile.
	Failed
)

// String returns "connected" or "failed".
func (t ConnectEventType) String() string {
	switch t {
	case Connected:
		return "connected"
	case Failed:
		return "failed"
	}
	return fmt.Sprintf("ConnectEventType(%d)", uint8(t))
}

// ConnectEvent reports one dial a Connector made.
type ConnectEvent struct {
	// Type says how the dial ended.
	Type ConnectEventType
	// Peer is the peer as dialed.
	Peer peer.AddrInfo
	// Attempt counts the dials to this peer since its last success or
	// address change, this one included: 1 for a first try.
	Attempt int
	// Err is why the dial failed (Failed only).
	Err error
	// RetryIn is when the next dial is due (Failed only); zero when none
	// will be made because the peer was lost.
	RetryIn time.Duration
	// Time is when the dial ended, by the connector's clock.
	Time time.Time
}

// Defaults of a Connector.
const (
	DefaultConnectBackoffBase = time.Second
	DefaultConnectBackoffMax  = 5 * time.Minute
	DefaultConnectJitter      = 0.2
	DefaultConnectTimeout     = 30 * time.Second
	DefaultConnectYield       = 500 * time.Millisecond
)

// ConnectorOption configures a Connector. An invalid value makes
// NewConnector fail.
type ConnectorOption func(*connectorConfig) error

type connectorConfig struct {
	clock     clockwork.Clock
	base, max time.Duration
	jitter    float64
	seed      uint64
	seeded    bool
	timeout   time.Duration
	yield     time.Duration
	redial    bool
	notify    func(ConnectEvent)
	logger    *slog.Logger
}

// ConnectClock sets the clock that times retries and stamps events
// (default the real clock). Tests use a fake one to step through the
// backoff.
func ConnectClock(c clockwork.Clock) ConnectorOption {
	return func(cfg *connectorConfig) error {
		if c == nil {
			return fmt.Errorf("%w: nil clock", ErrInvalidOption)
		}
		cfg.clock = c
		return nil
	}
}

// ConnectBackoff sets the delay before retrying a failed peer: base after
// the first failure, doubling with each further one up to max (default
// DefaultConnectBackoffBase and DefaultConnectBackoffMax).
func ConnectBackoff(base, max time.Duration) ConnectorOption {
	return func(cfg *connectorConfig) error {
		if base <= 0 || max < base {
			return fmt.Errorf("%w: backoff from %v to %v", ErrInvalidOption, base, max)
		}
		cfg.base, cfg.max = base, max
		return nil
	}
}

// ConnectJitter scales each retry delay by a random factor in [1-f, 1+f]
// (still capped at the backoff's max), so peers that failed together do not
// retry together (default DefaultConnectJitter). f must be in [0, 1); zero
// makes delays exact.
func ConnectJitter(f float64) ConnectorOption {
	return func(cfg *connectorConfig) error {
		if !(f >= 0 && f < 1) {
			return fmt.Errorf("%w: jitter %v outside [0, 1)", ErrInvalidOption, f)
		}
		cfg.jitter = f
		return nil
	}
}

// ConnectSeed fixes the seed of the jitter, so a run replays exactly. By
// default the seed is random.
func ConnectSeed(seed uint64) ConnectorOption {
	return func(cfg *connectorConfig) error {
		cfg.seed, cfg.seeded = seed, true
		return nil
	}
}

// ConnectTimeout bounds one dial (default DefaultConnectTimeout).
func ConnectTimeout(d time.Duration) ConnectorOption {
	return func(cfg *connectorConfig) error {
		if d <= 0 {
			return fmt.Errorf("%w: dial timeout %v", ErrInvalidOption, d)
		}
		cfg.timeout = d
		return nil
	}
}

// ConnectYieldDelay sets how long the connector waits before first dialing a
// peer whose ID sorts below its own host's (default DefaultConnectYield);
// if that peer has connected by then, there is nothing to dial. Two peers
// usually find each other at the same moment, and dialing each other at
// once can fail both dials (over TCP with reused ports, the two attempts
// merge into one connection on which both ends act as the client) and put
// both into libp2p's dial backoff. With the yield, the lower ID dials and
// the higher one only steps in if that did not work. The two dials only
// collide while both are in flight, so a yield longer than one round trip
// between the peers avoids it; the default covers most internet paths and
// costs a peer that the other side has not found yet no more than half a
// second. Zero dials at once.
func ConnectYieldDelay(d time.Duration) ConnectorOption {
	return func(cfg *connectorConfig) error {
		if d < 0 {
			return fmt.Errorf("%w: negative yield %v", ErrInvalidOption, d)
		}
		cfg.yield = d
		return nil
	}
}

// ConnectRedial sets whether a peer still known to the source is dialed
// again when its last connection closes (default true): a chat whose
// members' connections drop in a network blip reconnects once the network
// is back, without waiting for their records to change. The redial waits
// the backoff's base (plus the yield, for a peer whose ID sorts below
// ours, since both ends notice at once) and backs off like any other.
// Turn it off when a connection manager trims connections on purpose, so
// the two do not fight.
func ConnectRedial(on bool) ConnectorOption {
	return func(cfg *connectorConfig) error {
		cfg.redial = on
		return nil
	}
}

// ConnectNotify sets a function told of every dial's outcome. It is called
// from the connector's own goroutine, one event at a time and in order, so
// it needs no locking; it should return quickly, since the connector
// starts no dial while it runs.
func ConnectNotify(f func(ConnectEvent)) ConnectorOption {
	return func(cfg *connectorConfig) error {
		if f == nil {
			return fmt.Errorf("%w: nil notify function", ErrInvalidOption)
		}
		cfg.notify = f
		return nil
	}
}

// ConnectLogger sets where the connector logs, at debug level: peer IDs,
// addresses and dial errors. The default discards.
func ConnectLogger(l *slog.Logger) ConnectorOption {
	return func(cfg *connectorConfig) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrInvalidOption)
		}
		cfg.logger = l
		return nil
	}
}

// Connector dials the peers a discoverer finds. On Found, and on Updated
// with new addresses, it dials the peer unless already connected (a peer
// within its ConnectYieldDelay is dialed when the yield ends, at its newest
// addresses); a failed peer is retried with exponential backoff and
// jitter until it connects or is Lost; a peer whose last connection
// closes is dialed again while it is known (ConnectRedial). It never
// dials its own host, and it never disconnects anyone.
type Connector struct {
	host host.Host
	src  Subscriber
	cfg  connectorConfig
	rnd  *rand.Rand // used by the run goroutine only

	mu      sync.Mutex
	started bool
	closed  bool
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	results chan dialResult
	retries chan retry
	gen     uint64 // numbers scheduled dials; used by the run goroutine only
}

// NewConnector returns a Connector that dials for h the peers src reports.
// src is a discovery.Discoverer, or an Adapter's namespace
// (Adapter.Subscriber). Nothing runs until Start.
func NewConnector(h host.Host, src Subscriber, opts ...ConnectorOption) (*Connector, error) {
	if h == nil || src == nil {
		return nil, fmt.Errorf("%w: nil host or source", ErrInvalidOption)
	}
	cfg := connectorConfig{
		clock:   clockwork.NewRealClock(),
		base:    DefaultConnectBackoffBase,
		max:     DefaultConnectBackoffMax,
		jitter:  DefaultConnectJitter,
		timeout: DefaultConnectTimeout,
		yield:   DefaultConnectYield,
		redial:  true,
		notify:  func(ConnectEvent) {},
		logger:  slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if !cfg.seeded {
		cfg.seed = rand.Uint64()
	}
	return &Connector{
		host:    h,
		src:     src,
		cfg:     cfg,
		rnd:     rand.New(rand.NewPCG(cfg.seed, cfg.seed^0x5851f42d4c957f2d)),
		results: make(chan dialResult),
		retries: make(chan retry),
	}, nil
}

// Start subscribes to the source and starts dialing. ctx is the
// connector's lifetime, not a deadline for starting: when it ends, dials in
// flight are cancelled and the connector stops. Start returns at once; it
// fails if called twice or after Close.
func (c *Connector) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return ErrClosed
	case c.started:
		return ErrStarted
	}
	cctx, cancel := context.WithCancel(ctx)
	var conns event.Subscription
	if c.cfg.redial {
		// Before the source: a connection made and lost in between is
		// then seen.
		var err error
		if conns, err = c.host.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged)); err != nil {
			cancel()
			return fmt.Errorf("libp2padapter: connector: %w", err)
		}
	}
	events, err := c.src.Subscribe(cctx)
	if err != nil {
		cancel()
		if conns != nil {
			conns.Close()
		}
		return fmt.Errorf("libp2padapter: connector: %w", err)
	}
	c.started, c.ctx, c.cancel = true, cctx, cancel
	c.wg.Add(1)
	go c.run(events, conns)
	return nil
}

// Close stops the connector, cancels dials in flight and waits for its
// goroutines. It is idempotent.
func (c *Connector) Close() error {
	c.mu.Lock()
	c.closed = true
	if c.cancel != nil {
		c.cancel()
	}
	c.mu.Unlock()
	c.wg.Wait()
	return nil
}

// target is one peer the connector tries to reach.
type target struct {
	info     peer.AddrInfo
	attempts int // dials since the last success or address change
	dialing  bool
	timer    clockwork.Timer // pending retry, or nil
	gen      uint64          // identifies the pending retry
	yielding bool            // timer is the first dial's yield
}

type dialResult struct {
	info    peer.AddrInfo
	attempt int
	err     error
}

type retry struct {
	id  peer.ID
	gen uint64
}

// run owns every target; dials and retry timers report back to it.
func (c *Connector) run(events <-chan discovery.Event, conns event.Subscription) {
	defer c.wg.Done()
	// When the source ends (its discoverer closed) there is nothing left
	// to do: stop dials in flight too.
	defer c.cancel()
	var disconnects <-chan any // nil, and never ready, without redial
	if conns != nil {
		defer conns.Close()
		disconnects = conns.Out()
	}
	self := c.host.ID()
	targets := make(map[peer.ID]*target)
	defer func() {
		for _, t := range targets {
			if t.timer != nil {
				t.timer.Stop()
			}
		}
	}()
	for {
		select {
		case e, ok := <-events:
			if !ok {
				return
			}
			c.handle(e, self, targets)
		case r := <-c.results:
			t := targets[r.info.ID]
			if t != nil {
				t.dialing = false
			}
			if r.err == nil {
				if t != nil {
					t.attempts = 0
				}
				c.report(ConnectEvent{Type: Connected, Peer: r.info, Attempt: r.attempt})
				continue
			}
			if c.ctx.Err() != nil {
				return
			}
			ev := ConnectEvent{Type: Failed, Peer: r.info, Err: r.err, Attempt: r.attempt}
			if t != nil {
				ev.RetryIn = c.delay(t.attempts)
				c.schedule(t, ev.RetryIn)
			}
			c.report(ev)
		case ev, ok := <-disconnects:
			if !ok {
				disconnects = nil
				continue
			}
			ch := ev.(event.EvtPeerConnectednessChanged)
			t := targets[ch.Peer]
			if ch.Connectedness != network.NotConnected || t == nil || t.dialing || t.timer != nil {
				continue
			}
			d := c.delay(0)
			if c.cfg.yield > 0 && ch.Peer < self {
				d += c.cfg.yield
			}
			c.cfg.logger.Debug("connection closed, redialing", "peer", ch.Peer.String(), "in", d)
			c.schedule(t, d)
		case r := <-c.retries:
			if t := targets[r.id]; t != nil && t.gen == r.gen && t.timer != nil {
				t.timer, t.yielding = nil, false
				c.dial(t)
			}
		case <-c.ctx.Done():
			return
		}
	}
}

// handle applies one discovery event to the targets.
func (c *Connector) handle(e discovery.Event, self peer.ID, targets map[peer.ID]*target) {
	if e.Type == discovery.Lost {
		id, ok := decodeID(e.Peer.ID)
		if !ok {
			return // never a target: addrInfo refuses the same IDs
		}
		if t := targets[id]; t != nil {
			if t.timer != nil {
				t.timer.Stop()
			}
			delete(targets, id)
			c.cfg.logger.Debug("peer lost, no more dials", "peer", id.String())
		}
		return
	}
	info, ok := addrInfo(e.Peer.Record)
	if !ok || info.ID == self {
		return
	}
	t := targets[info.ID]
	if t == nil {
		t = &target{info: info}
		targets[info.ID] = t
		if c.cfg.yield > 0 && info.ID < self {
			c.schedule(t, c.cfg.yield)
			t.yielding = true
			return
		}
	} else {
		if sameAddrs(t.info.Addrs, info.Addrs) {
			return // nothing new: let a pending retry or dial run its course
		}
		if t.yielding {
			// Not dialed yet: the yield's dial will use the new addresses.
			// Dialing now would race the other side's dial, which the
			// yield is there to avoid; peers often update their record
			// right after announcing it.
			t.info = info
			return
		}
		// New addresses deserve a prompt try, whatever failed before.
		t.info, t.attempts = info, 0
		if t.timer != nil {
			t.timer.Stop()
			t.timer = nil
		}
	}
	if !t.dialing && t.timer == nil {
		c.dial(t)
	}
}

// schedule makes the run goroutine dial t after d.
func (c *Connector) schedule(t *target, d time.Duration) {
	c.gen++
	t.gen = c.gen
	id, gen := t.info.ID, c.gen
	t.timer = c.cfg.clock.AfterFunc(d, func() {
		select {
		case c.retries <- retry{id: id, gen: gen}:
		case <-c.ctx.Done():
		}
	})
}

func sameAddrs(a, b []ma.Multiaddr) bool {
	return slices.EqualFunc(a, b, func(x, y ma.Multiaddr) bool { return x.Equal(y) })
}

// dial starts one dial to t, unless the host is connected already.
func (c *Connector) dial(t *target) {
	if c.host.Network().Connectedness(t.info.ID) == network.Connected {
		t.attempts = 0
		return
	}
	t.dialing = true
	t.attempts++
	info, attempt := peer.AddrInfo{ID: t.info.ID, Addrs: slices.Clone(t.info.Addrs)}, t.attempts
	c.cfg.logger.Debug("dialing", "peer", info.ID, "addrs", info.Addrs, "attempt", t.attempts)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		ctx, cancel := context.WithTimeout(c.ctx, c.cfg.timeout)
		err := c.host.Connect(ctx, info)
		cancel()
		select {
		case c.results <- dialResult{info: info, attempt: attempt, err: err}:
		case <-c.ctx.Done():
		}
	}()
}

// delay is the wait before the next dial after attempts failures.
func (c *Connector) delay(attempts int) time.Duration {
	return backoffDelay(c.cfg.base, c.cfg.max, c.cfg.jitter, attempts, c.rnd.Float64())
}

// backoffDelay doubles base per failure after the first, caps it at max,
// then scales it by a factor in [1-jitter, 1+jitter] chosen by u in [0, 1),
// capped again.
func backoffDelay(base, max time.Duration, jitter float64, attempts int, u float64) time.Duration {
	return backoff.Delay(unitDraw(u), base, max, attempts-1, jitter)
}

// unitDraw is a backoff.Source that answers with a uniform value in
// [0, 1) drawn beforehand, scaled to the range asked for: the connector
// draws one Float64 per delay from its seeded source.
type unitDraw float64

func (u unitDraw) Int64N(n int64) int64 {
	x := float64(u) * float64(n)
	switch {
	case !(x > 0):
		return 0
	case x >= float64(n):
		return n - 1
	}
	return int64(x)
}

func (c *Connector) report(e ConnectEvent) {
	e.Time = c.cfg.clock.Now()
	if e.Type == Failed {
		c.cfg.logger.Debug("dial failed", "peer", e.Peer.ID, "attempt", e.Attempt, "retry_in", e.RetryIn, "err", e.Err)
	} else {
		c.cfg.logger.Debug("connected", "peer", e.Peer.ID)
	}
	c.cfg.notify(e)
}
