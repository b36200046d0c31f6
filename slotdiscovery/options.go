package slotdiscovery

import (
	"errors"
	"fmt"
	"golang.org/x/time/rate"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/phrasemeet/discovery"
	"github.com/phrasemeet/discovery/internal/backoff"
)

// Option configures a Discoverer of either profile. An invalid value makes
// the constructor fail rather than silently picking a default.
type Option func(*config) error

// config holds what both profiles share, and the default profile's
// schedule. Each field's default is set in defaultConfig.
type config struct {
	clock  clockwork.Clock
	logger *slog.Logger
	seed   uint64
	seeded bool
	name   string

	republish   time.Duration // how often our own entry is rewritten
	scan        time.Duration // steady scan period (before jitter)
	staleAfter  time.Duration // an entry older than this, by its signed time, is gone
	futureBound time.Duration // a time further ahead than this is ignored
	fastPhase   time.Duration // how long after joining scans run fast
	fastScan    time.Duration // scan period during the fast phase
	verifyMin   time.Duration // read-back delay after a write: lower bound
	verifyMax   time.Duration // and upper bound

	reqRate              float64 // requests of every kind per second
	reqBurst             int
	getRate, fastGetRate float64 // GETs per second, steady and fast
	getBurst             int
	joinLevels           int           // how many levels a forming group spreads over (0: none)
	joinWait             time.Duration // bound of the random wait before a forming group's claim writes
	putRate              float64       // PUTs per second
	putBurst             int
	leaveTimeout         time.Duration
	readSettle           time.Duration // how long a read waits for more relays after the first answer

	schemes []discovery.IDScheme // IDs that are keys: their entries must be signed
	signer  discovery.Signer     // signs our own entries whose IDs are keys
}

func defaultConfig() config {
	return config{
		clock:       clockwork.NewRealClock(),
		logger:      slog.New(slog.DiscardHandler),
		republish:   70 * time.Second,
		scan:        15 * time.Second,
		staleAfter:  150 * time.Second,
		futureBound: 2 * time.Minute,
		fastPhase:   60 * time.Second,
		fastScan:    time.Second,
		verifyMin:   150 * time.Millisecond,
		verifyMax:   800 * time.Millisecond,
		// pkarr-relay limits every request of an IP to about 2 a second
		// with a burst of 10: the sum of every kind stays under it.
		reqRate:     1.9,
		reqBurst:    10,
		getRate:     0.2,
		fastGetRate: 1.9,
		getBurst:    8,
		joinLevels:  3,
		joinWait:    500 * time.Millisecond,
		// n0's relay allows one PUT per 4 s per IP after a burst of two;
		// a little under it, so jitter on the way never makes two PUTs
		// arrive closer than the relay's refill.
		putRate:      0.23,
		putBurst:     2,
		leaveTimeout: 5 * time.Second,
		readSettle:   300 * time.Millisecond,
		schemes:      []discovery.IDScheme{discovery.Ed25519Hex{}},
	}
}

func (c *config) apply(opts []Option) error {
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(c); err != nil {
			return err
		}
	}
	if !c.seeded {
		c.seed = rand.Uint64()
	}
	if c.verifyMax < c.verifyMin {
		return fmt.Errorf("slotdiscovery: read-back delay range [%v, %v] is empty", c.verifyMin, c.verifyMax)
	}
	return nil
}

var (
	errNonPositive = errors.New("must be positive")
	errOutOfRange  = errors.New("out of range")
)

func positive(what string, d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("slotdiscovery: %s %v: %w", what, d, errNonPositive)
	}
	return nil
}

// WithClock sets the clock that drives every timer and stamps every entry.
// Tests use a fake clock; the simulation harness uses a skewed one.
func WithClock(c clockwork.Clock) Option {
	return func(cfg *config) error {
		if c == nil {
			return errors.New("slotdiscovery: nil clock")
		}
		cfg.clock = c
		return nil
	}
}

// WithLogger sets where the discoverer logs. The passphrase and keys never
// reach it. The default discards.
func WithLogger(l *slog.Logger) Option {
	return func(cfg *config) error {
		if l == nil {
			return errors.New("slotdiscovery: nil logger")
		}
		cfg.logger = l
		return nil
	}
}

// WithSeed fixes the seed of the jitter and slot choices, so a simulation
// replays exactly. By default the seed is random.
func WithSeed(seed uint64) Option {
	return func(cfg *config) error {
		cfg.seed, cfg.seeded = seed, true
		return nil
	}
}

// WithName sets the name found peers carry in Peer.Sources (default
// "slots" for the default profile, "can-sync" for the can-sync profile).
func WithName(name string) Option {
	return func(cfg *config) error {
		if name == "" {
			return errors.New("slotdiscovery: empty name")
		}
		cfg.name = name
		return nil
	}
}

// WithRepublishInterval sets how often a peer rewrites its own entry
// (default 70 s, jittered by 8%: under one PUT a minute even with the
// retries after a race). Entries are judged stale after
// WithStaleAfter, so keep this well under it.
func WithRepublishInterval(d time.Duration) Option {
	return func(cfg *config) error {
		cfg.republish = d
		return positive("republish interval", d)
	}
}

// WithScanInterval sets the steady-state scan period before jitter
// (default 15 s). The GET budget can stretch it: a scan never makes the
// peer exceed its steady GET rate.
func WithScanInterval(d time.Duration) Option {
	return func(cfg *config) error {
		cfg.scan = d
		return positive("scan interval", d)
	}
}

// WithFastScan sets the scan period right after joining and how long that
// phase lasts (default every 1 s for 60 s), so a newcomer meets the
// group in seconds rather than one steady period.
func WithFastScan(period, phase time.Duration) Option {
	return func(cfg *config) error {
		cfg.fastScan, cfg.fastPhase = period, phase
		if err := positive("fast scan period", period); err != nil {
			return err
		}
		if phase < 0 {
			return fmt.Errorf("slotdiscovery: fast phase %v: %w", phase, errNonPositive)
		}
		return nil
	}
}

// WithStaleAfter sets how old an entry's signed time may be before the
// entry counts as gone and its peer as Lost (default 150 s: a crashed
// peer is reported within three republish periods).
func WithStaleAfter(d time.Duration) Option {
	return func(cfg *config) error {
		cfg.staleAfter = d
		return positive("stale bound", d)
	}
}

// WithFutureMargin sets how far ahead of our clock a signed time may be
// before it is ignored (default 2 min), so a passphrase holder stamping
// records far in the future locks nothing.
func WithFutureMargin(d time.Duration) Option {
	return func(cfg *config) error {
		cfg.futureBound = d
		return positive("future bound", d)
	}
}

// WithVerifyDelay sets the range of the random wait between writing a
// slot and reading it back (default 150 ms to 800 ms). Random, so two
// peers that wrote together do not read back together and write together
// again: the losers of one race write again at their read-backs, and with
// a narrower range twenty peers starting together often had two of them
// lose twice and wait seconds for the PUT budget (see the package doc).
// The wait is also at least twice the round trip our last write took: a
// racing writer that read the slot before our write landed needs
// about one round trip of its own to land its write, and a read-back sent
// before then would confirm a slot we are about to lose.
func WithVerifyDelay(min, max time.Duration) Option {
	return func(cfg *config) error {
		cfg.verifyMin, cfg.verifyMax = min, max
		return positive("read-back delay", min)
	}
}

// WithLeaveTimeout bounds how long a leaving announcement keeps trying to
// tell the others (default 5 s): the tombstone's read, write and read-back,
// or can-sync's slot clearing. It runs whether or not the Leave or Close
// that started it waits, so it is also how long a closed Discoverer may
// still send requests. Two or three relay round trips and a read-back
// delay fit in the default.
func WithLeaveTimeout(d time.Duration) Option {
	return func(cfg *config) error {
		cfg.leaveTimeout = d
		return positive("leave timeout", d)
	}
}

// WithRequestBudget sets the budget every request takes from, whatever
// its kind, on top of the GET and PUT budgets (default 1.9/s, burst 10:
// under pkarr-relay's limit of about 2 requests a second per IP with a
// burst of 10, which counts reads and writes together).
func WithRequestBudget(perSecond rate.Limit, burst int) Option {
	return func(cfg *config) error {
		if perSecond <= 0 || burst < 1 {
			return fmt.Errorf("slotdiscovery: request budget %v/s burst %d: %w", perSecond, burst, errNonPositive)
		}
		cfg.reqRate, cfg.reqBurst = float64(perSecond), burst
		return nil
	}
}

// maxJoinLevels bounds the levels a forming group spreads over to those
// scans read whole (levels 0-4).
const maxJoinLevels = 5

// WithJoinSpread sets how a group that forms (peers that start together,
// before any has held a slot for a fast phase) spreads its first claims:
// over the first levels slots (default 3: slots 0-6, room for about 28
// peers), each claimer waiting a random time up to wait before its write
// (default 500 ms). One slot takes one writer at a time; peers that all
// raced for the first slot with room would each lose a write per peer
// ahead of them, and the PUT budget makes every write after the second
// wait seconds. The wait also times the forming group's first full scan
// (see the package doc). levels 0 turns spreading off: claims take the
// lowest level with room from the start.
func WithJoinSpread(levels int, wait time.Duration) Option {
	return func(cfg *config) error {
		if levels < 0 || levels > maxJoinLevels || wait < 0 {
			return fmt.Errorf("slotdiscovery: join spread over %d levels, wait %v (levels 0 to %d, the wait not negative): %w", levels, wait, maxJoinLevels, errOutOfRange)
		}
		cfg.joinLevels, cfg.joinWait = levels, wait
		return nil
	}
}

// WithGetBudget sets the GET rates per second, steady and during the fast
// phase, and the burst that lets one scan read its slots in parallel
// (default 0.2/s steady, 1.9/s fast, burst 8). The request budget (see
// WithRequestBudget) bounds the fast rate with the reads around our own
// writes and the writes together.
func WithGetBudget(steady, fast rate.Limit, burst int) Option {
	return func(cfg *config) error {
		if steady <= 0 || fast <= 0 || burst < 1 {
			return fmt.Errorf("slotdiscovery: GET budget %v/%v/s burst %d: %w", steady, fast, burst, errNonPositive)
		}
		cfg.getRate, cfg.fastGetRate, cfg.getBurst = float64(steady), float64(fast), burst
		return nil
	}
}

// WithPutBudget sets the PUT rate per second and burst (default 0.23/s
// burst 2: a little under the n0 relay's per-IP limit of 0.25/s after a
// burst of 2, so jitter on the way never earns a 429).
func WithPutBudget(perSecond rate.Limit, burst int) Option {
	return func(cfg *config) error {
		if perSecond <= 0 || burst < 1 {
			return fmt.Errorf("slotdiscovery: PUT budget %v/s burst %d: %w", perSecond, burst, errNonPositive)
		}
		cfg.putRate, cfg.putBurst = float64(perSecond), burst
		return nil
	}
}

// WithSettleWait sets how long a slot read waits, after the first relay's
// answer, for the other relays before it takes the most recent packet
// among their answers (default 300 ms; zero takes the first answer). A
// peer writes back what it read, so trusting the first answer lets one
// fast relay that serves old packets keep a group apart. The wait costs
// nothing when every relay answers, and at most this bound when one hangs.
func WithSettleWait(d time.Duration) Option {
	return func(cfg *config) error {
		if d < 0 {
			return fmt.Errorf("slotdiscovery: settle wait %v: negative", d)
		}
		cfg.readSettle = d
		return nil
	}
}

// WithIDSchemes sets the schemes that tell which IDs are public keys
// (default: discovery.Ed25519Hex alone, IDs of 64 hex digits). An entry
// whose ID one of them owns is written only with a proof from the
// [WithSigner] signer, and read only if its proof verifies under the
// first scheme, in the order given, that owns the ID; entries of other
// IDs need no proof. Every member of a group must use the same schemes,
// or each ignores the entries the others could not sign. With no scheme
// at all, no ID is a key and any member can write under any ID, as before
// proofs existed. The can-sync profile ignores this option: its wire
// cannot carry a proof.
func WithIDSchemes(schemes ...discovery.IDScheme) Option {
	return func(cfg *config) error {
		for _, s := range schemes {
			if s == nil {
				return errors.New("slotdiscovery: nil ID scheme")
			}
		}
		cfg.schemes = append([]discovery.IDScheme(nil), schemes...)
		return nil
	}
}

// WithSigner sets what signs the entries of announced IDs that are keys
// (default none: announcing such an ID fails with an error wrapping
// discovery.ErrNoKey). For an ID of 64 hex digits, use
// discovery.Ed25519Signer with the key's private half. The can-sync
// profile ignores this option.
func WithSigner(s discovery.Signer) Option {
	return func(cfg *config) error {
		if s == nil {
			return errors.New("slotdiscovery: nil signer")
		}
		cfg.signer = s
		return nil
	}
}

// lockedRand is a seeded source shared by a discoverer's goroutines.
type lockedRand struct {
	mu sync.Mutex
	r  *rand.Rand
}

func newLockedRand(seed uint64) *lockedRand {
	return &lockedRand{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Int64N draws from the seeded source under the lock, which makes l a
// backoff.Source.
func (l *lockedRand) Int64N(n int64) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Int64N(n)
}

// between returns a uniform duration in [lo, hi].
func (l *lockedRand) between(lo, hi time.Duration) time.Duration {
	return backoff.Between(l, lo, hi)
}

// jitter returns d scaled by a uniform factor in [1-f, 1+f].
func (l *lockedRand) jitter(d time.Duration, f float64) time.Duration {
	return backoff.Jitter(l, d, f)
}

func (l *lockedRand) intN(n int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.IntN(n)
}

func (l *lockedRand) perm(n int) []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Perm(n)
}
