package slotdiscovery

import (
	"context"
	"errors"
	"sync"
	"time"

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
	Index int
	Key   pkarrclient.PublicKey
	State SlotState
	// Packet is the packet's timestamp, zero when there is none.
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
	now         func() time.Time
	staleAfter  time.Duration
	futureBound time.Duration
	minSlots    int
	schemes     []discovery.IDScheme
}

// TableClock sets the clock ages are judged by (default time.Now).
func TableClock(now func() time.Time) TableOption { return func(c *tableConfig) { c.now = now } }

// TableBounds sets the stale and future bounds (default the Discoverer's
// defaults, 150 s and 2 min).
func TableBounds(staleAfter, futureBound time.Duration) TableOption {
	return func(c *tableConfig) { c.staleAfter, c.futureBound = staleAfter, futureBound }
}

// TableMinSlots reads at least the first n slots, even where the levels
// above are not full (default 1).
func TableMinSlots(n int) TableOption { return func(c *tableConfig) { c.minSlots = n } }

// TableIDSchemes sets the schemes that tell which IDs are public keys, as
// WithIDSchemes does for a Discoverer (default discovery.Ed25519Hex):
// an entry about a key counts only if its proof verifies.
func TableIDSchemes(schemes ...discovery.IDScheme) TableOption {
	return func(c *tableConfig) { c.schemes = append([]discovery.IDScheme(nil), schemes...) }
}

// ReadTable reads the group's slots as a scan does, level by level while
// every slot of a level is full, and returns what each holds. Large
// levels are read in full here, unlike a scan's sample: it is a
// diagnostic, run once.
func ReadTable(ctx context.Context, client *pkarrclient.Client, g *Group, opts ...TableOption) ([]SlotInfo, error) {
	d := defaultConfig()
	cfg := tableConfig{now: time.Now, staleAfter: d.staleAfter, futureBound: d.futureBound, minSlots: 1, schemes: d.schemes}
	for _, o := range opts {
		o(&cfg)
	}
	if client == nil || g == nil {
		return nil, errors.New("slotdiscovery: nil client or group")
	}
	var out []SlotInfo
	largest := typicalEntry
	for l := 0; l <= maxLevel; l++ {
		lo, hi := levelRange(l)
		infos := make([]SlotInfo, hi-lo)
		var wg sync.WaitGroup
		for i := lo; i < hi; i++ {
			wg.Go(func() { infos[i-lo] = readInfo(ctx, client, g, i, &cfg) })
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

// full reports whether the slot may have turned a claimer away, as a scan
// judges it: no room for an entry as large as the largest seen.
func (si SlotInfo) full(largest int) bool { return si.size+largest > pkarrclient.MaxDNSSize }

func readInfo(ctx context.Context, client *pkarrclient.Client, g *Group, i int, cfg *tableConfig) SlotInfo {
	key := g.SlotKey(i).PublicKey()
	si := SlotInfo{Index: i, Key: key, State: SlotEmpty, size: packetOverhead}
	p, err := client.ResolveMostRecent(ctx, key, pkarrclient.NetworkOnly())
	switch {
	case errors.Is(err, pkarrclient.ErrNotFound):
		return si
	case err != nil:
		si.State, si.Err = SlotUnreadable, err
		return si
	}
	now := cfg.now()
	si.Packet = p.Timestamp().Time()
	if si.Packet.Sub(now) > cfg.futureBound {
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
