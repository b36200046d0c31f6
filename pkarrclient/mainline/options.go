package mainline

import (
	"context"
	"errors"
	"fmt"
	"golang.org/x/time/rate"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/jonboulle/clockwork"
)

// DHT defaults.
const (
	// defaultDHTTimeout bounds one publish or resolve: a public-network
	// lookup usually settles within 2-5 s, and a caller who wants longer
	// passes a context with a later deadline and raises the option.
	defaultDHTTimeout = 10 * time.Second
	// defaultDHTAlpha is how many queries a lookup keeps in flight. It is
	// high (BEP5 suggests 3) because answering on the first valid value is
	// the point: a dead node then occupies one slot of fifteen, not one of
	// three. anacrolix's getput uses 15 too.
	defaultDHTAlpha = 15
	// dhtK is the number of closest nodes an item is stored on (BEP5's K).
	dhtK = 8
	// defaultDHTSendRate matches anacrolix's package-wide limiter, but each
	// DHT gets its own: a shared one silently drops replies of every
	// server in the process once any of them is busy.
	defaultDHTSendRate  = 250
	defaultDHTSendBurst = 25
	// defaultDHTSourceRate and defaultDHTSourceBurst are a serving node's
	// answer budget per source: a lookup asks a node once or twice, so a
	// client doing a few lookups a second stays well inside it, while a
	// dozen flooding sources are needed to use up the node's whole send
	// budget. (libtorrent blocks a source above 5 queries a second.)
	defaultDHTSourceRate  = 20
	defaultDHTSourceBurst = 40
	// bootstrapLookupTimeout bounds the DNS lookups of the routers.
	bootstrapLookupTimeout = 5 * time.Second
)

// Defaults of a serving node, exported so commands can show them.
const (
	// DefaultStoreCapacity bounds a serving node's item store so that
	// strangers cannot fill its memory (BEP44 items are at most ~1.2 kB).
	DefaultStoreCapacity = 100_000
	// DefaultRefreshInterval is how often a serving node refreshes its
	// routing table (and any node saves its snapshot file).
	DefaultRefreshInterval = 15 * time.Minute
	// DefaultSourceLimit is a serving node's answer budget per source,
	// in queries per second (burst twice that); see WithSourceRateLimit.
	DefaultSourceLimit = defaultDHTSourceRate
)

// DefaultBootstrap returns the routers a new DHT node asks first: the
// long-running BitTorrent ones and pkarr's own. The slice is new on every
// call; callers may modify it.
func DefaultBootstrap() []string {
	return []string{
		"router.bittorrent.com:6881",
		"dht.transmissionbt.com:6881",
		"dht.libtorrent.org:25401",
		"relay.pkarr.org:6881",
	}
}

// HostResolver looks up the addresses of a host name. *net.Resolver
// satisfies it; tests pass one that fails on any call to prove that nothing
// asks DNS.
type HostResolver interface {
	// LookupNetIP resolves a bootstrap host name, as
	// [net.Resolver.LookupNetIP] does.
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

type dhtConfig struct {
	conn          net.PacketConn
	listen        string
	bootstrap     []string
	resolver      HostResolver
	serve         bool
	storeCapacity int
	nodesFile     string
	resendDelay   time.Duration
	timeout       time.Duration
	alpha         int
	sendRate      float64
	sendBurst     int
	sourceRate    float64
	sourceBurst   int
	refresh       time.Duration
	clock         clockwork.Clock
	logger        *slog.Logger
}

// Option configures a [DHT].
type Option func(*dhtConfig) error

// WithListen sets the UDP address the node listens on (default ":0", every
// interface, a random port). Ignored when [WithConn] is given.
func WithListen(addr string) Option {
	return func(c *dhtConfig) error {
		c.listen = addr
		return nil
	}
}

// WithConn makes the node use conn instead of opening its own socket. The
// DHT takes ownership: Close closes it. Tests wrap a loopback socket to
// watch every datagram.
func WithConn(conn net.PacketConn) Option {
	return func(c *dhtConfig) error {
		if conn == nil {
			return errors.New("pkarr: WithConn: nil conn")
		}
		c.conn = conn
		return nil
	}
}

// WithBootstrap replaces the routers asked when the routing table is empty
// (default [DefaultBootstrap]). Each is "host:port"; numeric addresses
// need no DNS. Passing none leaves the node with only its snapshot file
// and nodes that contact it, which suits the first node of a private
// network.
func WithBootstrap(addrs ...string) Option {
	return func(c *dhtConfig) error {
		for _, a := range addrs {
			if _, _, err := net.SplitHostPort(a); err != nil {
				return fmt.Errorf("pkarr: bootstrap address %q: %w", a, err)
			}
		}
		c.bootstrap = append([]string(nil), addrs...)
		return nil
	}
}

// WithResolver sets how bootstrap host names are looked up (default
// net.DefaultResolver).
func WithResolver(r HostResolver) Option {
	return func(c *dhtConfig) error {
		if r == nil {
			return errors.New("pkarr: WithResolver: nil resolver")
		}
		c.resolver = r
		return nil
	}
}

// WithServing makes the node a full DHT node: it answers queries, stores up to
// capacity BEP44 items for others (0 means DefaultStoreCapacity; the
// least recently used go first) and refreshes its routing table. Without
// it the node is passive. Only run a serving node where other nodes can
// reach it; behind NAT it only adds unanswered traffic.
//
// Mutable puts follow BEP44 as libtorrent, bittorrent-dht and mainline
// read it, not as anacrolix does: v up to 1000 raw bytes (205 above), salt
// up to 64 bytes (207), a valid signature (206), a cas that must equal the
// stored item's seq (301), and a seq not lower than the stored one (302;
// an equal seq only with the same value, which renews the item). Items
// expire two hours after their last put. An absent cas and a cas of 0
// are the same to the library's decoder, so "cas 0" is taken as none.
// Each source of queries has its own answer budget ([WithSourceRateLimit]).
func WithServing(capacity int) Option {
	return func(c *dhtConfig) error {
		if capacity < 0 {
			return fmt.Errorf("pkarr: WithServing: negative capacity %d", capacity)
		}
		c.serve = true
		if capacity > 0 {
			c.storeCapacity = capacity
		}
		return nil
	}
}

// WithNodesFile keeps a snapshot of the routing table in path: read at
// start so a restart does not cold-bootstrap from the routers, written
// atomically after bootstrapping, periodically and at Close. A missing or
// empty file is not an error. A snapshot of ours that fails its check is
// logged and ignored, and replaced at the next save. Any other file,
// including the headerless format of earlier versions, makes New fail
// with a *[SnapshotError] (errors.Is ErrSnapshotUnrecognized) and is never
// written to: it may be a file named by mistake.
func WithNodesFile(path string) Option {
	return func(c *dhtConfig) error {
		c.nodesFile = path
		return nil
	}
}

// WithResendDelay sets how long a query waits for its answer before the
// node is given up on (the library's default is 2 s). Loopback test
// networks use about 100 ms.
func WithResendDelay(d time.Duration) Option {
	return func(c *dhtConfig) error {
		if d <= 0 {
			return fmt.Errorf("pkarr: WithResendDelay: %v is not positive", d)
		}
		c.resendDelay = d
		return nil
	}
}

// WithTimeout bounds each Publish and Resolve (default 10 s). A most-recent
// resolve that reaches it returns the newest packet found so far.
func WithTimeout(d time.Duration) Option {
	return func(c *dhtConfig) error {
		if d <= 0 {
			return fmt.Errorf("pkarr: WithTimeout: %v is not positive", d)
		}
		c.timeout = d
		return nil
	}
}

// WithMaxInFlight sets how many queries one lookup keeps in flight
// (default 15).
func WithMaxInFlight(n int) Option {
	return func(c *dhtConfig) error {
		if n < 1 {
			return fmt.Errorf("pkarr: WithMaxInFlight: %d is below 1", n)
		}
		c.alpha = n
		return nil
	}
}

// WithSendBudget sets this node's own limit on outgoing datagrams (default
// 250 per second, burst 25). A rate of 0 or rate.Inf means unlimited.
// A budget, not a rate limit: our own queries wait for it.
func WithSendBudget(r rate.Limit, burst int) Option {
	return func(c *dhtConfig) error {
		perSecond := float64(r)
		if r == rate.Inf {
			perSecond = 0
		}
		if perSecond < 0 || burst < 0 {
			return fmt.Errorf("pkarr: WithSendBudget: negative limit")
		}
		if perSecond > 0 && burst < 1 {
			// A limiter with no burst refuses every datagram.
			return fmt.Errorf("pkarr: WithSendBudget: burst must be at least 1 with a rate")
		}
		c.sendRate, c.sendBurst = perSecond, burst
		return nil
	}
}

// WithSourceRateLimit sets a serving node's answer budget per source of
// queries (default 20 per second, burst 40): queries beyond it are dropped
// unanswered, so one source flooding the node uses up its own budget and
// not the node's. A source is an IPv4 address or an IPv6 /64. A rate of 0
// or rate.Inf means unlimited (a private network whose nodes share one address,
// as tests on 127.0.0.1 do). Passive nodes answer nothing and ignore it.
func WithSourceRateLimit(r rate.Limit, burst int) Option {
	return func(c *dhtConfig) error {
		perSecond := float64(r)
		if r == rate.Inf {
			perSecond = 0
		}
		if perSecond < 0 || burst < 0 {
			return fmt.Errorf("pkarr: WithSourceRateLimit: negative limit")
		}
		if perSecond > 0 && burst < 1 {
			return fmt.Errorf("pkarr: WithSourceRateLimit: burst must be at least 1 with a rate")
		}
		c.sourceRate, c.sourceBurst = perSecond, burst
		return nil
	}
}

// WithRefreshInterval sets how often a serving node refreshes its routing
// table and the snapshot file is saved (default 15 minutes; 0 turns the
// periodic work off).
func WithRefreshInterval(d time.Duration) Option {
	return func(c *dhtConfig) error {
		if d < 0 {
			return fmt.Errorf("pkarr: WithRefreshInterval: negative %v", d)
		}
		c.refresh = d
		return nil
	}
}

// WithClock sets the clock that drives the periodic refresh (default the
// real clock).
func WithClock(clock clockwork.Clock) Option {
	return func(c *dhtConfig) error {
		if clock == nil {
			return errors.New("pkarr: WithClock: nil clock")
		}
		c.clock = clock
		return nil
	}
}

// WithLogger sets where the node logs (default: nowhere). The library's own
// warnings and errors are forwarded to it.
func WithLogger(l *slog.Logger) Option {
	return func(c *dhtConfig) error {
		c.logger = l
		return nil
	}
}
