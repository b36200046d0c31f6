package pkarrrelay

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// ErrInvalidConfig reports an option value that cannot work. Constructors
// return it wrapped, with the offending value in the message.
var ErrInvalidConfig = errors.New("pkarrrelay: invalid configuration")

// Defaults of the Handler.
const (
	// DefaultFutureMargin is how far ahead of the relay's clock a packet's
	// timestamp may be. Five minutes absorbs ordinary clock skew; pkarr
	// itself has no limit, and one packet stamped years ahead would block
	// every later honest write for its key.
	DefaultFutureMargin = 5 * time.Minute
	// DefaultMinTTL and DefaultMaxTTL clamp Cache-Control max-age, as
	// pkarr clients clamp TTLs.
	DefaultMinTTL = 300
	DefaultMaxTTL = 86400
	// DefaultWriteRate and DefaultWriteBurst limit PUTs per client address
	// as pkarr-relay limits its requests: 2 per second, bursts of 10.
	DefaultWriteRate  rate.Limit = 2
	DefaultWriteBurst            = 10
	// DefaultReadRate and DefaultReadBurst limit GETs and HEADs per client
	// address. Reads are five times as generous as writes because they cost
	// no signature check and no fsync, a client joining a group resolves
	// every member at once, and many users can share one NAT address.
	DefaultReadRate  rate.Limit = 10
	DefaultReadBurst            = 50
	// DefaultLimiterTableSize is how many client addresses each rate limiter
	// remembers. The least recently seen is forgotten first, which bounds
	// memory at a few megabytes whatever the number of clients.
	DefaultLimiterTableSize = 100_000
)

// Option configures NewHandler.
type Option func(*handlerConfig) error

type handlerConfig struct {
	basePath       string
	clock          clockwork.Clock
	futureMargin   time.Duration
	minTTL, maxTTL uint32
	write, read    limitConfig
	tableSize      int
	trusted        []netip.Prefix
	logger         *slog.Logger
	registerer     prometheus.Registerer
	version        string
	upstream       pkarrclient.Backend
}

type limitConfig struct {
	rate  rate.Limit
	burst int
}

func (l limitConfig) enabled() bool { return l.rate != rate.Inf }

func defaultHandlerConfig() handlerConfig {
	return handlerConfig{
		basePath:     "/",
		clock:        clockwork.NewRealClock(),
		futureMargin: DefaultFutureMargin,
		minTTL:       DefaultMinTTL,
		maxTTL:       DefaultMaxTTL,
		write:        limitConfig{DefaultWriteRate, DefaultWriteBurst},
		read:         limitConfig{DefaultReadRate, DefaultReadBurst},
		tableSize:    DefaultLimiterTableSize,
		logger:       slog.New(slog.DiscardHandler),
		version:      "dev",
	}
}

// WithBasePath mounts the API under p, so keys live at p/<z-base-32 key>
// and the index page at p. The default is "/". A trailing slash is ignored.
func WithBasePath(p string) Option {
	return func(c *handlerConfig) error {
		if !strings.HasPrefix(p, "/") || strings.Contains(p, "//") {
			return fmt.Errorf("%w: base path %q must start with a single /", ErrInvalidConfig, p)
		}
		if p != "/" {
			p = strings.TrimSuffix(p, "/")
		}
		c.basePath = p
		return nil
	}
}

// WithClock sets the clock used for the future-timestamp check, rate
// limiting and uptime. Tests pass a clockwork.FakeClock.
func WithClock(clock clockwork.Clock) Option {
	return func(c *handlerConfig) error {
		if clock == nil {
			return fmt.Errorf("%w: nil clock", ErrInvalidConfig)
		}
		c.clock = clock
		return nil
	}
}

// WithFutureMargin sets how far ahead of the relay's clock a PUT packet's
// timestamp may be (default DefaultFutureMargin). Later timestamps get 400.
func WithFutureMargin(d time.Duration) Option {
	return func(c *handlerConfig) error {
		if d < 0 {
			return fmt.Errorf("%w: negative future margin %v", ErrInvalidConfig, d)
		}
		c.futureMargin = d
		return nil
	}
}

// WithTTLBounds sets the clamp applied to a packet's smallest record TTL for
// Cache-Control max-age (default 300 and 86400 seconds).
func WithTTLBounds(minTTL, maxTTL uint32) Option {
	return func(c *handlerConfig) error {
		if minTTL > maxTTL {
			return fmt.Errorf("%w: TTL bounds %d > %d", ErrInvalidConfig, minTTL, maxTTL)
		}
		c.minTTL, c.maxTTL = minTTL, maxTTL
		return nil
	}
}

// WithWriteRateLimit sets each client address's PUT budget: r requests per
// second on average, at most burst at once. rate.Inf disables the limit.
func WithWriteRateLimit(r rate.Limit, burst int) Option {
	return func(c *handlerConfig) error {
		l, err := newLimitConfig("write", r, burst)
		c.write = l
		return err
	}
}

// WithReadRateLimit sets each client address's GET and HEAD budget, like
// WithWriteRateLimit. rate.Inf disables the limit.
func WithReadRateLimit(r rate.Limit, burst int) Option {
	return func(c *handlerConfig) error {
		l, err := newLimitConfig("read", r, burst)
		c.read = l
		return err
	}
}

func newLimitConfig(kind string, r rate.Limit, burst int) (limitConfig, error) {
	if r == rate.Inf {
		return limitConfig{rate: rate.Inf}, nil
	}
	if r <= 0 || burst < 1 {
		return limitConfig{}, fmt.Errorf("%w: %s rate limit %v/s burst %d (use rate.Inf to disable)",
			ErrInvalidConfig, kind, r, burst)
	}
	return limitConfig{rate: r, burst: burst}, nil
}

// WithLimiterTableSize sets how many client addresses each rate limiter
// tracks (default DefaultLimiterTableSize).
func WithLimiterTableSize(n int) Option {
	return func(c *handlerConfig) error {
		if n < 1 {
			return fmt.Errorf("%w: limiter table size %d", ErrInvalidConfig, n)
		}
		c.tableSize = n
		return nil
	}
}

// WithTrustedProxies names the reverse proxies whose X-Forwarded-For header
// is believed. When the TCP peer is in one of the prefixes, the client
// address is the rightmost X-Forwarded-For entry that is not itself a
// trusted proxy; from any other peer the header is ignored, because anyone
// can write it. Without this option the peer address is always used.
func WithTrustedProxies(prefixes ...netip.Prefix) Option {
	return func(c *handlerConfig) error {
		for _, p := range prefixes {
			if !p.IsValid() {
				return fmt.Errorf("%w: invalid trusted proxy prefix %v", ErrInvalidConfig, p)
			}
			// Peers are compared as plain IPv4, so an IPv4-mapped prefix
			// (::ffff:10.0.0.0/104) is stored as the IPv4 one it means.
			if p.Addr().Is4In6() && p.Bits() >= 96 {
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			c.trusted = append(c.trusted, p.Masked())
		}
		return nil
	}
}

// WithLogger sets the structured logger: one debug line per request,
// warnings for store and upstream failures. Bodies are never logged. The
// default discards everything.
func WithLogger(l *slog.Logger) Option {
	return func(c *handlerConfig) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrInvalidConfig)
		}
		c.logger = l
		return nil
	}
}

// WithRegisterer registers the handler's Prometheus metrics on reg. Without
// it the handler uses a private registry. If reg is also a
// prometheus.Gatherer (a *prometheus.Registry is), a Server built on the
// handler serves it at /metrics.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(c *handlerConfig) error {
		if reg == nil {
			return fmt.Errorf("%w: nil registerer", ErrInvalidConfig)
		}
		c.registerer = reg
		return nil
	}
}

// WithVersion sets the version shown on the index page (default "dev").
func WithVersion(v string) Option {
	return func(c *handlerConfig) error {
		c.version = v
		return nil
	}
}

// WithUpstream connects the relay to a further source and sink of packets:
// in pkarr's relay, the Mainline DHT; any pkarrclient.Backend works, so a
// relay can also front another relay.
//
// The Handler publishes to the upstream after its store accepted a PUT (as
// new or as an identical republish, which is how clients keep DHT items
// alive) and reports the receipt's DHTNodes in the Pkarr-Dht-Stored-Nodes
// header; an upstream error matching pkarrclient.ErrNotMostRecent answers
// 409, any other 502 (the packet stays stored). A GET that misses the store
// asks the upstream; its answer must be signed by the key in the path and
// pass the future-timestamp check, and is then cached in the store. Both
// calls run within the request, under its context, so the upstream should
// answer within a few seconds.
func WithUpstream(u pkarrclient.Backend) Option {
	return func(c *handlerConfig) error {
		if u == nil {
			return fmt.Errorf("%w: nil upstream", ErrInvalidConfig)
		}
		c.upstream = u
		return nil
	}
}
