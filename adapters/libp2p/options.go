package libp2padapter

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/jonboulle/clockwork"
	ma "github.com/multiformats/go-multiaddr"
)

// TTL bounds for Advertise. The TTL returned tells callers when to call
// Advertise again; since the record lives by itself until the caller's
// context ends, a repeat only refreshes it, and the bounds merely keep
// callers from spinning (a tiny TTL) or from never checking back (a huge
// one).
const (
	// DefaultTTL is returned when the caller passes no discovery.TTL.
	DefaultTTL = 10 * time.Minute
	// MinTTL is the least TTL returned, whatever the caller asks.
	MinTTL = 10 * time.Second
	// MaxTTL is the largest TTL returned, whatever the caller asks.
	MaxTTL = 24 * time.Hour
)

// DefaultFindWait is how long FindPeers waits, by default, for a first peer
// on a namespace where none is known yet. A slot discoverer reads its slots
// within about a second of opening, so the first call after opening a
// namespace usually returns peers instead of nothing.
const DefaultFindWait = 3 * time.Second

// DefaultIdleGrace is how long, by default, a namespace nobody uses stays
// open before the adapter closes its discoverer (WithIdleGrace).
const DefaultIdleGrace = 5 * time.Minute

// leaveTimeout bounds one Leave, so Close and the end of an advertisement
// never hang on an unreachable relay.
const leaveTimeout = 5 * time.Second

// Option configures an Adapter. An invalid value makes New fail rather
// than silently picking a default.
type Option func(*config) error

type config struct {
	filter   addrFilter
	ttl      time.Duration
	findWait time.Duration
	idle     time.Duration
	clock    clockwork.Clock
	logger   *slog.Logger
}

func defaultConfig() config {
	return config{
		ttl:      DefaultTTL,
		findWait: DefaultFindWait,
		idle:     DefaultIdleGrace,
		clock:    clockwork.NewRealClock(),
		logger:   slog.New(slog.DiscardHandler),
	}
}

// WithLoopback publishes the host's loopback addresses too. By default
// they are left out, since they only reach peers on the same machine; tests
// and single-machine setups need them.
func WithLoopback() Option {
	return func(c *config) error {
		c.filter.loopback = true
		return nil
	}
}

// WithAddrFilter narrows the published addresses further: an address is
// published only if keep returns true for it and the default rules allow
// it (never an unspecified address, loopback only with WithLoopback). Use
// it to publish, say, only QUIC addresses, or to leave out private ranges.
func WithAddrFilter(keep func(ma.Multiaddr) bool) Option {
	return func(c *config) error {
		if keep == nil {
			return fmt.Errorf("%w: nil address filter", ErrInvalidOption)
		}
		c.filter.custom = keep
		return nil
	}
}

// WithTTL sets the TTL Advertise returns when the caller passes no
// discovery.TTL (default DefaultTTL). It must lie within [MinTTL, MaxTTL].
func WithTTL(d time.Duration) Option {
	return func(c *config) error {
		if d < MinTTL || d > MaxTTL {
			return fmt.Errorf("%w: TTL %v outside [%v, %v]", ErrInvalidOption, d, MinTTL, MaxTTL)
		}
		c.ttl = d
		return nil
	}
}

// WithFindWait sets how long FindPeers waits for a first peer when none is
// known yet in the namespace (default DefaultFindWait); the caller's
// context bounds the wait too. Zero makes FindPeers answer at once, empty
// or not.
func WithFindWait(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("%w: negative find wait %v", ErrInvalidOption, d)
		}
		c.findWait = d
		return nil
	}
}

// WithIdleGrace sets how long a namespace nobody uses stays open (default
// DefaultIdleGrace). A namespace is in use while this host advertises in
// it, a FindPeers on it is waiting, or a subscription from Subscriber is
// open; once none is, and the grace has passed without a new use, the
// adapter closes its discoverer, which stops its scanning. The next use
// opens it again through the Opener, with an empty cache. Zero keeps
// every namespace open until Close, as an application with a fixed set of
// namespaces may prefer.
func WithIdleGrace(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("%w: negative idle grace %v", ErrInvalidOption, d)
		}
		c.idle = d
		return nil
	}
}

// WithClock sets the clock that times the idle grace (default the real
// clock). Tests use a fake one to let the grace pass at once.
func WithClock(clk clockwork.Clock) Option {
	return func(c *config) error {
		if clk == nil {
			return fmt.Errorf("%w: nil clock", ErrInvalidOption)
		}
		c.clock = clk
		return nil
	}
}

// WithLogger sets where the adapter logs: at debug level, and one warning
// when Advertise finds no address to publish (ErrNoAddrs). It logs
// namespaces, peer IDs and addresses, never key material. The default
// discards.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrInvalidOption)
		}
		c.logger = l
		return nil
	}
}
