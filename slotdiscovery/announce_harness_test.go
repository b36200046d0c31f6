package slotdiscovery

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/phrasemeet/discovery"
	"github.com/phrasemeet/discovery/internal/relaysim"
	"github.com/phrasemeet/discovery/pkarrclient"
)

// The harness for the announcement and claim rules: a Discoverer over one
// simulated relay (internal/relaysim), run inside a testing/synctest
// bubble so every wait is virtual and the clock moves only when the test
// sleeps. Its scan loop is stopped at once: the test drives reads, claims
// and writes itself and sees their requests in order, with no scan in
// between to change the views.

// annHarness is one peer under test and its relay.
type annHarness struct {
	t     *testing.T
	d     *Discoverer
	g     *Group
	relay *relaysim.Relay
	// afterPut, when set, runs after each of our PUTs has landed, with the
	// packet: a racing writer.
	afterPut func(p *pkarrclient.SignedPacket)
	// dropPuts makes the relay answer our PUTs without storing them, as
	// n0's relay does with a packet it holds a newer one than.
	dropPuts atomic.Bool
	// failReads makes every read fail, as an unreachable relay (logged as
	// "GET! i").
	failReads atomic.Bool
	// limitReads makes every read answered 429 (logged as "GET429 i").
	limitReads atomic.Bool
	// failPuts makes that many of our next PUTs fail (logged as "PUT! i").
	failPuts atomic.Int32
	// readDelay, in nanoseconds, delays the answer to each of our reads:
	// a round trip, in the bubble's virtual time.
	readDelay atomic.Int64

	keys map[pkarrclient.PublicKey]int // slot index by key, for the request log

	mu   sync.Mutex
	reqs []string // "GET 3", "PUT 3": our requests in arrival order
}

// harnessBackend is the relay as our peer sees it, with the harness's
// hooks.
type harnessBackend struct {
	pkarrclient.Backend
	h *annHarness
}

func (b harnessBackend) Publish(ctx context.Context, p *pkarrclient.SignedPacket) (pkarrclient.PublishReceipt, error) {
	if b.h.failPuts.Add(-1) >= 0 {
		b.h.note("PUT!", p.PublicKey())
		return pkarrclient.PublishReceipt{}, errors.New("harness: relay unreachable")
	}
	b.h.failPuts.Store(0)
	if b.h.dropPuts.Load() {
		b.h.note("PUT", p.PublicKey())
		return pkarrclient.PublishReceipt{}, nil
	}
	r, err := b.Backend.Publish(ctx, p)
	if err == nil && b.h.afterPut != nil {
		b.h.afterPut(p)
	}
	return r, err
}

// newAnnHarness starts a peer of the fuzz group (cheap KDF) over a fresh
// relay. Call it inside synctest.Test. Scans every scan (fresh claims trust
// reads up to twice that), reads back after exactly verify.
func (b harnessBackend) Resolve(ctx context.Context, q pkarrclient.Query) (*pkarrclient.SignedPacket, error) {
	if d := time.Duration(b.h.readDelay.Load()); d > 0 {
		time.Sleep(d)
	}
	if b.h.limitReads.Load() {
		b.h.note("GET429", q.Key)
		return nil, &pkarrclient.RateLimitError{RetryAfter: time.Second}
	}
	if b.h.failReads.Load() {
		b.h.note("GET!", q.Key)
		return nil, errors.New("harness: relay unreachable")
	}
	return b.Backend.Resolve(ctx, q)
}

func newAnnHarness(t *testing.T, opts ...Option) *annHarness {
	t.Helper()
	return newAnnHarnessMode(t, relaysim.N0, opts...)
}

// newAnnHarnessMode is newAnnHarness over a relay of the given mode.
func newAnnHarnessMode(t *testing.T, mode relaysim.Mode, opts ...Option) *annHarness {
	t.Helper()
	h := &annHarness{t: t, g: fuzzGroup(t, fuzzPassphrase)}
	keys := map[pkarrclient.PublicKey]int{}
	for i := range 64 {
		keys[h.g.SlotKey(i).PublicKey()] = i
	}
	h.relay = relaysim.New(mode, relaysim.WithRateLimits(false), relaysim.WithObserver(func(r relaysim.Request) {
		if r.IP != "me" {
			return
		}
		op := "GET"
		if r.Op == relaysim.OpPublish {
			op = "PUT"
		}
		h.mu.Lock()
		h.reqs = append(h.reqs, op+" "+strconv.Itoa(keys[r.Key]))
		h.mu.Unlock()
	}))
	h.keys = keys
	client, err := pkarrclient.NewClient([]pkarrclient.Backend{harnessBackend{h.relay.Backend("me"), h}}, pkarrclient.WithCacheSize(0))
	if err != nil {
		t.Fatal(err)
	}
	base := []Option{
		WithClock(clockwork.NewRealClock()), WithSeed(1), WithSettleWait(0),
		WithGetBudget(1000, 1000, 1000), WithPutBudget(1000, 1000), WithRequestBudget(1000, 1000),
		WithVerifyDelay(time.Second, time.Second),
		// Claims take the lowest level with room, as in a settled group:
		// the tests of a forming group's spread turn it back on.
		WithJoinSpread(0, 0),
	}
	h.d, err = New(client, h.g, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	// No scans: the test reads what it wants read. The scan loop may have
	// read some slots before it stopped: forget them.
	h.d.cancel()
	h.d.wg.Wait()
	d := h.d
	d.stats = Stats{}
	d.room = room{}
	d.view = newView(d.cfg.staleAfter, d.cfg.futureBound, d.cfg.name, d.tracker, &d.stats)
	h.requests()
	t.Cleanup(func() { h.d.Close(context.Background()) })
	return h
}

func (h *annHarness) note(op string, key pkarrclient.PublicKey) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reqs = append(h.reqs, op+" "+strconv.Itoa(h.keys[key]))
}

// requests returns our requests since the last call.
func (h *annHarness) requests() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.reqs
	h.reqs = nil
	return out
}

// ann returns an announcement of id that is not running: the test calls
// its methods.
func (h *annHarness) ann(id string) *announcement {
	ctx, cancel := context.WithCancel(h.t.Context())
	h.t.Cleanup(cancel)
	return &announcement{d: h.d, rec: discovery.Record{ID: id, Addrs: []string{"/ip4/192.0.2.9/udp/4001/quic-v1"}},
		slot: -1, held: -1, since: h.d.stamp(), ctx: ctx, cancel: cancel}
}

// live returns a live entry of rec stamped now, sealed for slot i.
func (h *annHarness) live(i int, rec discovery.Record, since time.Time) sealedEntry {
	h.t.Helper()
	e := entry{kind: kindLive, time: h.d.stamp(), since: since, rec: rec}
	s, err := h.g.seal(&e, h.g.SlotKey(i).PublicKey())
	if err != nil {
		h.t.Fatal(err)
	}
	return sealedEntry{entry: e, sealed: s}
}

// put stores, as another writer would, slot i's packet holding entries,
// stamped now (or ts if not zero).
func (h *annHarness) put(i int, ts pkarrclient.Timestamp, entries ...sealedEntry) *pkarrclient.SignedPacket {
	h.t.Helper()
	if ts == 0 {
		ts = pkarrclient.TimestampFromTime(time.Now())
	}
	p, err := buildSlot(h.g.SlotKey(i), ts, entries)
	if err != nil {
		h.t.Fatal(err)
	}
	h.relay.Put(p)
	return p
}

// full stores two large entries of strangers in slot i, leaving 36 bytes:
// no room for any other.
func (h *annHarness) full(i int) {
	huge := func(id string) discovery.Record {
		return discovery.Record{ID: id, Meta: bytes.Repeat([]byte{'m'}, 380)}
	}
	h.put(i, 0, h.live(i, huge(strconv.Itoa(i)+"-a"), h.d.stamp()), h.live(i, huge(strconv.Itoa(i)+"-b"), h.d.stamp()))
}

// read reads the slots, as a scan would, and fails the test on an error.
func (h *annHarness) read(idx ...int) {
	h.t.Helper()
	for _, i := range idx {
		if err := h.d.readSlotWith(h.t.Context(), i, h.d.budget.gets); err != nil {
			h.t.Fatalf("reading slot %d: %v", i, err)
		}
	}
}

// held returns what the relay holds in slot i: entry kind and time by ID.
func (h *annHarness) held(i int) map[string]entry {
	h.t.Helper()
	p := h.relay.Get(h.g.SlotKey(i).PublicKey())
	out := map[string]entry{}
	if p == nil {
		return out
	}
	entries, bad := h.g.openSlot(p)
	if bad != 0 {
		h.t.Fatalf("slot %d holds %d entries that do not open", i, bad)
	}
	for _, e := range entries {
		out[e.rec.ID] = e.entry
	}
	return out
}
