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

// Defaults of the upstream path (see WithUpstream).
const (
	// DefaultUpstreamMaxInFlight is how many upstream calls may run at
	// once. A Mainline DHT lookup takes 0.1 to 5 s, so 32 calls sustain
	// between about 6 and 300 lookups a second while bounding the sockets,
	// memory and waiting requests a flood of distinct keys can pin down.
	DefaultUpstreamMaxInFlight = 32
	// DefaultUpstreamRate and DefaultUpstreamBurst limit how often upstream
	// calls start, across all clients: 20 per second, bursts of 40. One DHT
	// traversal sends a few dozen UDP queries, so this keeps a relay at the
	// traffic of a busy BitTorrent client, below where DHT nodes start
	// throttling or blocking an address; a cold start resolving a group's
	// members still fits in the burst.
	DefaultUpstreamRate  rate.Limit = 20
	DefaultUpstreamBurst            = 40
	// DefaultNegativeCacheTTL is how long an upstream "not found" answers
	// GETs for the same key. 30 s caps a key nobody published at two DHT
	// traversals a minute however many clients ask, while a packet
	// published elsewhere (straight to the DHT, or through another relay)
	// shows up here within 30 s: a tenth of the 300 s that clients already
	// cache positive answers for. A PUT through this relay clears the entry
	// at once.
	DefaultNegativeCacheTTL = 30 * time.Second
	// DefaultUpstreamTimeout bounds each upstream call: the slow end of a
	// DHT lookup, and half the Server's default write timeout, so a GET
	// that waited for the upstream can still be answered.
	DefaultUpstreamTimeout = 5 * time.Second
	// DefaultUpstreamCacheSize is how many keys the negative cache holds,
	// and how many keys' last refresh time is remembered (about 100 bytes
	// each). A key whose refresh time was forgotten counts its age from
	// when the store accepted its packet, which at worst costs one early
	// refresh.
	DefaultUpstreamCacheSize = 100_000
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

	upstream      pkarrclient.Backend
	upMaxInFlight int
	upRate        rate.Limit
	upBurst       int
	negativeTTL   time.Duration
	upTimeout     time.Duration
	upCacheSize   int
	pubWorkers    int
	pubQueue      int
	pubRetries    int
	pubBackoff    time.Duration
	pubTimeout    time.Duration
	// afterFlight, when set, is called at the end of every upstream
	// lookup, after its results are stored: tests wait on it.
	afterFlight func(pkarrclient.PublicKey)
	// afterPublish, likewise, after every background publish call.
	afterPublish func(pkarrclient.PublicKey, error)
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

		upMaxInFlight: DefaultUpstreamMaxInFlight,
		upRate:        DefaultUpstreamRate,
		upBurst:       DefaultUpstreamBurst,
		negativeTTL:   DefaultNegativeCacheTTL,
		upTimeout:     DefaultUpstreamTimeout,
		upCacheSize:   DefaultUpstreamCacheSize,
		pubWorkers:    DefaultPublishWorkers,
		pubQueue:      DefaultPublishQueue,
		pubRetries:    DefaultPublishRetries,
		pubBackoff:    DefaultPublishBackoff,
		pubTimeout:    DefaultPublishTimeout,
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

// WithTTLClamp sets the clamp applied to a packet's smallest record TTL for
// Cache-Control max-age (default 300 and 86400 seconds): the same range,
// under the same name, as pkarrclient.WithTTLClamp applies to its cache.
func WithTTLClamp(minTTL, maxTTL uint32) Option {
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
// relay can also front another relay. The relay behaves as pkarr's does,
// except that a PUT does not wait for the upstream:
//
//   - PUT: once its store accepted a packet (as new or as an identical
//     republish, which is how clients keep DHT items alive) the Handler
//     answers 204 and publishes the packet upstream in the background, on a
//     budget of its own: a few workers, a timeout per call, failed calls
//     tried again after a growing pause, at most one pending publish per
//     key carrying the newest packet (WithPublishQueue, WithPublishRetries,
//     WithPublishTimeout). A PUT whose publish has nowhere to wait (the
//     queue is full of other keys) is stored and not published. An
//     upstream that holds something newer (pkarrclient.ErrNotMostRecent)
//     makes the next GET for the key look upstream.
//   - The Pkarr-Dht-Stored-Nodes header of a PUT's answer says how many DHT
//     nodes stored exactly this packet the last time the relay published
//     it, so it is sent on a republish of a packet already published (how
//     a client keeps its record alive, and learns whether the last publish
//     reached the DHT) and left out when the packet's publish is still to
//     come.
//   - GET, stored packet: answered from the store at once. When the packet
//     is older than its smallest record TTL (clamped as for Cache-Control,
//     see WithTTLClamp) counted from when the relay last knew it to be
//     current, a background refresh asks the upstream for a newer one
//     (pkarrclient.Query.NewerThan); a newer, valid packet replaces it, and
//     "nothing newer" marks the key current for another TTL.
//   - GET, store miss: the Handler asks the upstream and waits. Concurrent
//     misses and refreshes for one key share a single call. A valid answer
//     is stored and served; "not found" answers 404 and is remembered for
//     the negative-cache TTL (WithNegativeCacheTTL), unless a PUT for the
//     key comes first. A failed call answers 502, one out of time 504.
//
// Answers must be signed by the key asked for and pass the future-timestamp
// check (WithFutureMargin); others are never stored.
//
// Upstream calls share a budget (WithUpstreamBudget): a miss that finds it
// spent answers 503 with Retry-After, a refresh is skipped (the stale packet
// is still served), and a publish waits for it. Lookups run detached from
// the requests waiting for them, under their own timeout
// (WithUpstreamTimeout), so a client that leaves does not cancel a lookup
// others share. Call Handler.Close (or let Server.Serve do it) to stop the
// lookups and publishes in flight; publishes still waiting then are dropped.
func WithUpstream(u pkarrclient.Backend) Option {
	return func(c *handlerConfig) error {
		if u == nil {
			return fmt.Errorf("%w: nil upstream", ErrInvalidConfig)
		}
		c.upstream = u
		return nil
	}
}

// WithUpstreamBudget limits upstream calls (lookups for misses, refreshes
// and publishes together): at most maxInFlight at once, started at perSecond
// on average with bursts of burst. Lookups that find it spent are refused;
// background publishes wait for it. perSecond rate.Inf removes the rate
// limit (burst is then ignored). The defaults are DefaultUpstreamMaxInFlight,
// DefaultUpstreamRate and DefaultUpstreamBurst. Without WithUpstream it has
// no effect.
func WithUpstreamBudget(maxInFlight int, perSecond rate.Limit, burst int) Option {
	return func(c *handlerConfig) error {
		if maxInFlight < 1 {
			return fmt.Errorf("%w: upstream budget of %d calls in flight", ErrInvalidConfig, maxInFlight)
		}
		if perSecond != rate.Inf && (perSecond <= 0 || burst < 1) {
			return fmt.Errorf("%w: upstream rate %v/s burst %d (use rate.Inf to disable)",
				ErrInvalidConfig, perSecond, burst)
		}
		c.upMaxInFlight, c.upRate, c.upBurst = maxInFlight, perSecond, burst
		return nil
	}
}

// WithNegativeCacheTTL sets how long an upstream "not found" for a key is
// remembered, answering GETs for it with 404 without asking again (default
// DefaultNegativeCacheTTL). Zero turns the negative cache off. Without
// WithUpstream it has no effect.
func WithNegativeCacheTTL(d time.Duration) Option {
	return func(c *handlerConfig) error {
		if d < 0 {
			return fmt.Errorf("%w: negative cache TTL %v", ErrInvalidConfig, d)
		}
		c.negativeTTL = d
		return nil
	}
}

// WithUpstreamTimeout bounds each upstream lookup, for misses and
// background refreshes (default DefaultUpstreamTimeout). Keep it below the
// Server's write timeout, or a GET waiting for the upstream is cut off
// before it can answer. Publishes have their own (WithPublishTimeout).
// Without WithUpstream it has no effect.
func WithUpstreamTimeout(d time.Duration) Option {
	return func(c *handlerConfig) error {
		if d <= 0 {
			return fmt.Errorf("%w: upstream timeout %v", ErrInvalidConfig, d)
		}
		c.upTimeout = d
		return nil
	}
}

// WithUpstreamCacheSize sets how many keys the negative cache holds and how
// many keys' last refresh time the Handler remembers, each (default
// DefaultUpstreamCacheSize); the least recently added are forgotten first.
// Without WithUpstream it has no effect.
func WithUpstreamCacheSize(n int) Option {
	return func(c *handlerConfig) error {
		if n < 1 {
			return fmt.Errorf("%w: upstream cache size %d", ErrInvalidConfig, n)
		}
		c.upCacheSize = n
		return nil
	}
}

// WithPublishQueue sets how many background publishes run at once
// (default DefaultPublishWorkers) and how many keys may have a publish
// pending (default DefaultPublishQueue). Without WithUpstream it has no
// effect.
func WithPublishQueue(workers, maxKeys int) Option {
	return func(c *handlerConfig) error {
		if workers < 1 || maxKeys < 1 {
			return fmt.Errorf("%w: publish queue of %d workers, %d keys", ErrInvalidConfig, workers, maxKeys)
		}
		c.pubWorkers, c.pubQueue = workers, maxKeys
		return nil
	}
}

// WithPublishRetries sets how often a failed background publish is tried
// again (default DefaultPublishRetries) and the pause before the first
// retry, which doubles for each next one (default DefaultPublishBackoff).
// A publish refused for good (the upstream holds something newer, or
// rejects the packet) is not tried again. Without WithUpstream it has no
// effect.
func WithPublishRetries(n int, first time.Duration) Option {
	return func(c *handlerConfig) error {
		if n < 0 || first <= 0 || n > 16 {
			return fmt.Errorf("%w: %d publish retries after %v", ErrInvalidConfig, n, first)
		}
		c.pubRetries, c.pubBackoff = n, first
		return nil
	}
}

// WithPublishTimeout bounds each background publish call (default
// DefaultPublishTimeout). Without WithUpstream it has no effect.
func WithPublishTimeout(d time.Duration) Option {
	return func(c *handlerConfig) error {
		if d <= 0 {
			return fmt.Errorf("%w: publish timeout %v", ErrInvalidConfig, d)
		}
		c.pubTimeout = d
		return nil
	}
}
