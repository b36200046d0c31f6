package slotdiscovery

import (
	"context"
	"errors"
	"fmt"
	"github.com/jonboulle/clockwork"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/phrasemeet/discovery"
	"github.com/phrasemeet/discovery/pkarrclient"
)

// SlotState says what a slot holds, as one read found it.
type SlotState string

// The slot states.
const (
	// SlotEmpty: no packet, or no entry that opens with the group key
	// and counts (see SlotInfo.Unproven).
	SlotEmpty SlotState = "empty"
	// SlotLive: at least one live entry younger than the stale bound.
	SlotLive SlotState = "live"
	// SlotStale: entries, but every one has aged out or is a tombstone.
	SlotStale SlotState = "stale"
	// SlotLocked: the packet is stamped beyond the future bound, so no
	// one can write the slot until that time; it is abandoned.
	SlotLocked SlotState = "locked"
	// SlotUnreadable: no backend answered.
	SlotUnreadable SlotState = "unreadable"
)

// Member is one entry of a slot, decrypted.
type Member struct {
	// Record is what the peer announced: its ID, addresses and metadata.
	Record discovery.Record
	// Time is the entry's signed time; Since when the peer first claimed.
	Time, Since time.Time
	// Left is set for a tombstone: the peer announced its leaving.
	Left bool
	// Stale is set when Time is older than the stale bound.
	Stale bool
}

// SlotInfo is one slot of a table.
type SlotInfo struct {
	// Index is the slot's number, counted across levels from 0.
	Index int
	// Key is the slot's public key: where relays and the DHT hold it,
	// so a slot can be looked at with any pkarr tool.
	Key pkarrclient.PublicKey
	// State is what the read found, and says which fields below mean
	// anything (an unreadable slot has no Packet).
	State SlotState
	// Packet is the packet's timestamp, zero when there is none; exact at
	// any value (a slot locked at 2^63 µs or beyond is dated after the
	// year 294246, never wrapped into the past).
	Packet time.Time
	// Members are the entries that open with the group key.
	Members []Member
	// Foreign counts TXT records that do not open: another group's or junk.
	Foreign int
	// Unproven counts entries that open but are about a public key and
	// carry no valid proof by it (see TableIDSchemes): forgeries, or
	// entries of a member configured with other schemes. They are not
	// among Members and count for nothing, as a scan ignores them.
	Unproven int
	// Err is the read error of an unreadable slot.
	Err error

	size    int // wire bytes of the fresh entries, for the level walk
	largest int // the largest fresh entry's wire bytes
}

// TableOption adjusts ReadTable.
type TableOption func(*tableConfig)

type tableConfig struct {
	clock       clockwork.Clock
	staleAfter  time.Duration
	futureBound time.Duration
	minSlots    int
	maxSlots    int
	rate        rate.Limit
	burst       int
	schemes     []discovery.IDScheme
}

// ErrTableTruncated is returned, with the table read so far, when the
// levels read were all full but reading the next would pass the
// TableMaxSlots bound.
var ErrTableTruncated = errors.New("slotdiscovery: table cut at the slot bound; deeper levels not read")

// TableClock sets the clock ages are judged by (default the real clock).
func TableClock(clock clockwork.Clock) TableOption { return func(c *tableConfig) { c.clock = clock } }

// TableStaleAfter sets the age past which an entry reads as stale (default
// the Discoverer's, 150 s, as [WithStaleAfter]).
func TableStaleAfter(d time.Duration) TableOption {
	return func(c *tableConfig) { c.staleAfter = d }
}

// TableFutureMargin sets how far ahead of the clock a signed time may be
// before the slot reads as locked (default the Discoverer's, 2 min, as
// [WithFutureMargin]).
func TableFutureMargin(d time.Duration) TableOption {
	return func(c *tableConfig) { c.futureBound = d }
}

// TableMinSlots reads at least the first n slots, even where the levels
// above are not full (default 7, levels 0-2: a group that formed together
// spreads over them; see WithJoinSpread).
func TableMinSlots(n int) TableOption { return func(c *tableConfig) { c.minSlots = n } }

// TableMaxSlots stops the walk before a level that would take the table
// past n slots (default 255, levels 0 to 7, where a group of a thousand
// lives): a group pushed deeper, by its size or by slots locked ahead of
// time, is not worth a flood of reads to a diagnostic. ReadTable then
// returns ErrTableTruncated with the levels it read. TableMinSlots wins
// over it: the slots asked for are read.
func TableMaxSlots(n int) TableOption { return func(c *tableConfig) { c.maxSlots = n } }

// TableBudget bounds the reads: at most perSecond GETs per second after a
// burst, and at most burst in flight (default the Discoverer's fast-phase
// budget, 1.2/s with a burst of 8, within what deployed relays allow one
// IP). rate.Inf removes the rate bound, for a relay of your own.
func TableBudget(perSecond rate.Limit, burst int) TableOption {
	return func(c *tableConfig) { c.rate, c.burst = perSecond, burst }
}

// TableIDSchemes sets the schemes that tell which IDs are public keys, as
// WithIDSchemes does for a Discoverer (default discovery.Ed25519Hex):
// an entry about a key counts only if its proof verifies.
func TableIDSchemes(schemes ...discovery.IDScheme) TableOption {
	return func(c *tableConfig) { c.schemes = append([]discovery.IDScheme(nil), schemes...) }
}

// ReadTable reads the group's slots as a scan does, the levels a forming
// group spreads over whole, then level by level while every slot of a
// level is full, and returns what each holds. Large
// levels are read in full here, unlike a scan's sample: it is a
// diagnostic, run once.
func ReadTable(ctx context.Context, client *pkarrclient.Client, g *Group, opts ...TableOption) ([]SlotInfo, error) {
	d := defaultConfig()
	_, joinSlots := levelRange(d.joinLevels - 1)
	cfg := tableConfig{clock: clockwork.NewRealClock(), staleAfter: d.staleAfter, futureBound: d.futureBound, minSlots: joinSlots,
		maxSlots: defaultTableMaxSlots, rate: rate.Limit(d.fastGetRate), burst: d.getBurst, schemes: d.schemes}
	for _, o := range opts {
		o(&cfg)
	}
	switch {
	case client == nil || g == nil:
		return nil, errors.New("slotdiscovery: nil client or group")
	case cfg.burst < 1 || cfg.rate <= 0:
		return nil, fmt.Errorf("slotdiscovery: TableBudget %v/s burst %d: %w", float64(cfg.rate), cfg.burst, errNonPositive)
	case cfg.maxSlots < 1:
		return nil, fmt.Errorf("slotdiscovery: TableMaxSlots %d: %w", cfg.maxSlots, errNonPositive)
	}
	lim := rate.NewLimiter(cfg.rate, cfg.burst)
	sem := make(chan struct{}, cfg.burst)
	var out []SlotInfo
	largest := typicalEntry
	for l := 0; l <= maxLevel; l++ {
		lo, hi := levelRange(l)
		if hi > cfg.maxSlots && lo >= cfg.minSlots {
			return out, ErrTableTruncated
		}
		infos := make([]SlotInfo, hi-lo)
		var wg sync.WaitGroup
		for i := lo; i < hi; i++ {
			wg.Go(func() {
				select {
				case sem <- struct{}{}:
				case <-ctx.Done():
					infos[i-lo] = SlotInfo{Index: i, Key: g.SlotKey(i).PublicKey(), State: SlotUnreadable, Err: ctx.Err()}
					return
				}
				defer func() { <-sem }()
				if err := lim.Wait(ctx); err != nil {
					infos[i-lo] = SlotInfo{Index: i, Key: g.SlotKey(i).PublicKey(), State: SlotUnreadable, Err: err}
					return
				}
				infos[i-lo] = readInfo(ctx, client, g, i, &cfg)
			})
		}
		wg.Wait()
		out = append(out, infos...)
		if err := ctx.Err(); err != nil {
			return out, err
		}
		for _, si := range infos {
			largest = max(largest, si.largest)
		}
		all := true
		for _, si := range infos {
			all = all && (si.State == SlotLocked || si.full(largest))
		}
		deeper := hi < cfg.minSlots || all
		if !deeper {
			break
		}
	}
	return out, nil
}

// emptyByMajority reports whether a failed read says the slot is empty:
// more than half the backends answered that they hold no packet. One
// relay's 404 while the others are down is not evidence enough for a
// diagnostic that people read to learn why peers do not meet.
func emptyByMajority(err error) bool {
	var re *pkarrclient.ResolveError
	if !errors.As(err, &re) {
		return errors.Is(err, pkarrclient.ErrNotFound)
	}
	n := 0
	for _, o := range re.Outcomes {
		if errors.Is(o.Err, pkarrclient.ErrNotFound) {
			n++
		}
	}
	return 2*n > len(re.Outcomes)
}

// full reports whether the slot may have turned a claimer away, as a scan
// judges it: no room for an entry as large as the largest seen.
func (si SlotInfo) full(largest int) bool { return si.size+largest > pkarrclient.MaxDNSSize }

// defaultTableMaxSlots is TableMaxSlots' default: levels 0 to 7.
const defaultTableMaxSlots = 255

func readInfo(ctx context.Context, client *pkarrclient.Client, g *Group, i int, cfg *tableConfig) SlotInfo {
	key := g.SlotKey(i).PublicKey()
	si := SlotInfo{Index: i, Key: key, State: SlotEmpty, size: packetOverhead}
	p, err := client.ResolveMostRecent(ctx, key, pkarrclient.NetworkOnly())
	if err != nil {
		si.State, si.Err = SlotUnreadable, err
		if emptyByMajority(err) {
			si.State, si.Err = SlotEmpty, nil
		}
		return si
	}
	now := cfg.clock.Now()
	si.Packet = p.Timestamp().Time()
	if p.Timestamp().After(now.Add(cfg.futureBound)) {
		si.State = SlotLocked
		return si
	}
	entries, bad := g.openSlot(p)
	si.Foreign = bad
	entries, si.Unproven = provenEntries(g, cfg.schemes, entries, key)
	for _, e := range entries {
		m := Member{Record: e.rec, Time: e.time, Since: e.since, Left: e.kind == kindTombstone}
		m.Stale = now.Sub(e.time) > cfg.staleAfter || e.time.Sub(now) > cfg.futureBound
		si.Members = append(si.Members, m)
		if !m.Stale {
			si.size += e.wireSize()
			si.largest = max(si.largest, e.wireSize())
			if !m.Left {
				si.State = SlotLive
			}
		}
	}
	if si.State == SlotEmpty && len(entries) > 0 {
		si.State = SlotStale
	}
	return si
}
