package mdnsdiscovery

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/phrasemeet/discovery"
	"github.com/phrasemeet/discovery/internal/backoff"
)

// Option configures a Discoverer. An invalid value makes New fail rather
// than silently picking a default.
type Option func(*config) error

// config holds a Discoverer's settings; defaultConfig sets each default.
type config struct {
	name       string
	logger     *slog.Logger
	clock      clockwork.Clock
	ifaceNames []string // empty: every interface that is up and multicast-capable

	reannounce time.Duration // how often our record is sealed afresh and re-registered
	staleAfter time.Duration // a peer not heard from for this long is Lost (0: 3 × reannounce)
	maxSkew    time.Duration // how far a record's sealed time may stray from our clock
	linger     time.Duration // how long a tombstone stays registered after a leave

	schemes []discovery.IDScheme // IDs that are keys: their records must be signed
	signer  discovery.Signer     // signs our records whose IDs are keys
}

func defaultConfig() config {
	return config{
		name:       "mdns",
		logger:     slog.New(slog.DiscardHandler),
		clock:      clockwork.NewRealClock(),
		reannounce: 20 * time.Second,
		maxSkew:    30 * time.Second,
		// zeroconf sends a new registration's two unsolicited
		// announcements about 0.75-1 s and 1.75-2 s after it starts; the
		// tombstone stays up for both, in case the query we send at once
		// is lost.
		linger:  2 * time.Second,
		schemes: []discovery.IDScheme{discovery.Ed25519Hex{}},
	}
}

// minReannounce is the shortest re-announce period accepted. zeroconf
// probes for about 0.75-1 s before a registration announces itself, so a
// record replaced faster than that would never be announced, only
// answered.
const minReannounce = time.Second

func (c *config) apply(opts []Option) error {
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(c); err != nil {
			return err
		}
	}
	if c.staleAfter == 0 {
		c.staleAfter = 3 * c.reannounce
	}
	if c.staleAfter < 2*c.reannounce {
		return fmt.Errorf("mdnsdiscovery: stale bound %v is under twice the re-announce period %v: one lost refresh would report a live peer lost", c.staleAfter, c.reannounce)
	}
	return nil
}

// ttl is the DNS TTL of our records, in seconds: the stale bound, so
// ordinary mDNS caches forget a vanished peer when our readers do.
func (c *config) ttl() uint32 {
	return uint32((c.staleAfter + time.Second - 1) / time.Second)
}

// sweepEvery is how often peers are checked for having gone quiet: often
// enough that Lost comes within a sixth of the stale bound after it.
func (c *config) sweepEvery() time.Duration {
	return max(c.staleAfter/6, 100*time.Millisecond)
}

var errNonPositive = errors.New("must be positive")

// WithName sets the name found peers carry in Peer.Sources and the
// Discoverer's Name (default "mdns").
func WithName(name string) Option {
	return func(c *config) error {
		if name == "" {
			return errors.New("mdnsdiscovery: empty name")
		}
		c.name = name
		return nil
	}
}

// WithLogger sets where the Discoverer logs (default: nowhere). Records,
// keys and the secret never reach it; rejected LAN input is logged at
// Debug level only, so a noisy network cannot flood a log.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("mdnsdiscovery: nil logger")
		}
		c.logger = l
		return nil
	}
}

// WithClock sets the clock that stamps records, judges their age and
// drives the re-announce, browse and expiry timers. Tests use a fake
// clock. zeroconf's own timers (its probing, its query back-off) keep to
// real time.
func WithClock(clock clockwork.Clock) Option {
	return func(c *config) error {
		if clock == nil {
			return errors.New("mdnsdiscovery: nil clock")
		}
		c.clock = clock
		return nil
	}
}

// WithInterfaces restricts mDNS to the named network interfaces (default:
// every interface that is up and has the MULTICAST flag). Names are
// looked up again at every registration and browse, so an interface that
// goes down and comes back is used again; those down or without
// multicast at that moment are skipped.
func WithInterfaces(names ...string) Option {
	return func(c *config) error {
		if len(names) == 0 {
			return errors.New("mdnsdiscovery: no interface names")
		}
		for _, n := range names {
			if n == "" {
				return errors.New("mdnsdiscovery: empty interface name")
			}
		}
		c.ifaceNames = append([]string(nil), names...)
		return nil
	}
}

// WithRepublishInterval sets how often an announcement seals its record
// afresh and registers it again under a new instance name: the re-announce
// period (default 20 s, jittered by 10%, at least 1 s). Each registration
// announces itself to the LAN, which is how browsing peers learn that it
// is still alive. The slot rendezvous calls the same thing by the same
// name, so a program that runs both sets them alike.
func WithRepublishInterval(d time.Duration) Option {
	return func(c *config) error {
		if d < minReannounce {
			return fmt.Errorf("mdnsdiscovery: re-announce period %v is under %v", d, minReannounce)
		}
		c.reannounce = d
		return nil
	}
}

// WithStaleAfter sets how long a peer may go unheard before it is
// reported Lost (default three re-announce periods; at least two). It is
// also the DNS TTL of our records and the period at which browsing
// starts afresh with a new query.
func WithStaleAfter(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("mdnsdiscovery: stale bound %v: %w", d, errNonPositive)
		}
		c.staleAfter = d
		return nil
	}
}

// WithMaxClockSkew sets how far the time sealed in a record may differ
// from our clock, beyond the record's expected age, before the record is
// dropped (default 30 s). It is the tolerance for peers whose clocks are
// off, and it bounds how long a captured record can be replayed: a
// record sealed more than the stale bound plus this skew ago is never
// accepted.
func WithMaxClockSkew(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("mdnsdiscovery: clock skew %v is negative", d)
		}
		c.maxSkew = d
		return nil
	}
}

// WithLeaveLinger sets how long a leaving peer keeps its sealed tombstone
// registered so others hear it and report it Lost at once (default 2 s).
// Leave and Close wait this long, or until the context given to Leave
// ends. With 0 the tombstone is withdrawn at once, and others mostly
// notice the departure only after the stale bound.
func WithLeaveLinger(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("mdnsdiscovery: leave linger %v is negative", d)
		}
		c.linger = d
		return nil
	}
}

// jitter returns d scaled by a uniform factor in [1-f, 1+f], so peers
// that started together do not refresh and query together for ever.
func jitter(d time.Duration, f float64) time.Duration {
	return backoff.Jitter(backoff.Runtime, d, f)
}

// WithIDSchemes sets the schemes that tell which IDs are public keys
// (default: discovery.Ed25519Hex alone, IDs of 64 hex digits). A record
// whose ID one of them owns is announced only with a proof from the
// WithSigner signer, and heard only if its proof verifies under the first
// scheme, in the order given, that owns the ID. Every member of a group
// must use the same schemes. With none, no ID is a key and any member can
// announce, update or bury any ID, as before proofs existed.
func WithIDSchemes(schemes ...discovery.IDScheme) Option {
	return func(c *config) error {
		for _, s := range schemes {
			if s == nil {
				return errors.New("mdnsdiscovery: nil ID scheme")
			}
		}
		c.schemes = append([]discovery.IDScheme(nil), schemes...)
		return nil
	}
}

// WithSigner sets what signs the records of announced IDs that are keys
// (default none: announcing such an ID fails with an error wrapping
// discovery.ErrNoKey).
func WithSigner(s discovery.Signer) Option {
	return func(c *config) error {
		if s == nil {
			return errors.New("mdnsdiscovery: nil signer")
		}
		c.signer = s
		return nil
	}
}
