// Package slotsim runs groups of real slot-rendezvous peers (both
// profiles, the code users run) against relays and measures what the
// issue's goals ask: time to mutual discovery, lost claims and evicted
// peers, Lost after a crash or a leave, per-peer request rates, 429s.
//
// A Scenario runs in whatever time the caller's clock gives: under
// testing/synctest (slotsim_test.go) the relay is internal/relaysim and a
// thousand peers run minutes of virtual time in seconds; over HTTP it is
// the real pkarrrelay server on loopback, in real time, to check that
// the model and the real thing agree for small groups.
package slotsim

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"golang.org/x/time/rate"
	"log/slog"
	"math/bits"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/phrasemeet/discovery"
	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/slotdiscovery"
)

// Profile names a slot rendezvous profile.
type Profile string

// The profiles.
const (
	Default Profile = "default"
	CanSync Profile = "can-sync"
)

// Scenario is one run.
type Scenario struct {
	// Name labels the run in tables and figures.
	Name string
	// Profile is the rendezvous every peer runs.
	Profile Profile
	// Peers is how many peers take part.
	Peers int
	// Start spreads the peers' start times uniformly over [0, Start).
	Start time.Duration
	// Duration is how long the run lasts from the first start.
	Duration time.Duration
	// Skew gives each peer a clock offset uniform in [-Skew, Skew].
	Skew time.Duration
	// Crash and Leave name peers (by index) that crash (go silent, no
	// tombstone) or leave gracefully at the given time after the start.
	Crash, Leave []int
	// EndAt is when those peers crash or leave, after the start.
	EndAt time.Duration
	// Attack stamps packets a year ahead on the first slots before anyone
	// starts (all 8 for can-sync, levels 0-2 for the default profile).
	Attack bool
	// Checkpoint, when set, records each peer's known set at that time.
	Checkpoint time.Duration
	// Seed makes the run repeatable: the same seed, the same run.
	Seed uint64
	// Options are extra slotdiscovery options for every peer.
	Options []slotdiscovery.Option
	// Logger, when set, receives the debug log of peer LogPeer (every
	// peer when LogPeer is negative).
	Logger  *slog.Logger
	LogPeer int
}

// Env is what a run needs from its surroundings.
type Env struct {
	// Backend returns peer i's view of the relays (its own IP).
	Backend func(i int) pkarrclient.Backend
	// Seed writes a packet straight into the relays (for the attack).
	Seed func(p *pkarrclient.SignedPacket)
	// Passphrase of the group.
	Passphrase []byte
	// Group is the derived default-profile group (derived once: the KDF is
	// the same for everyone).
	Group *slotdiscovery.Group
	// ReaderPace, when set, spaces the final reader's requests (the one
	// that counts peers in no slot), so a relay that limits every request
	// does not refuse the deep read that count needs.
	ReaderPace time.Duration
}

// Result holds what a run measured.
type Result struct {
	// Scenario, Profile and Peers repeat the scenario's, so a result
	// read alone says what it measured.
	Scenario string
	Profile  Profile
	Peers    int
	// Pairs is the number of unordered pairs of peers that stayed live to
	// the end; Mutual how many of them discovered each other.
	Pairs, Mutual int
	// MutualTimes are, per mutually discovered pair, the time from the
	// later start until both had found the other.
	MutualTimes []time.Duration
	// MeshTimes are, per pair of which at least one found the other, the
	// time from the later start until the first of them did: the finder
	// dials, so the pair is connected without the other's read, and a
	// full mesh of connections is Meshed == Pairs.
	MeshTimes []time.Duration
	Meshed    int
	// FoundTimes are, per ordered pair, the time from the later start
	// until the first found the second.
	FoundTimes []time.Duration
	// Evicted counts live peers whose entry was missing from every slot
	// in the final relay state (the reference's cap shows here).
	Evicted int
	// EvictedPeers are their indexes.
	EvictedPeers []int
	// LostClaims counts read-backs that did not find our entry.
	LostClaims int
	// CrashLost and LeaveLost are, per crashed or leaving peer, the time
	// until every live peer that knew it reported it Lost (-1: never).
	CrashLost, LeaveLost []time.Duration
	// Known is, per live peer at Checkpoint, how many live peers it knew;
	// Connected whether the undirected "knows" graph was connected then,
	// and StronglyConnected whether every peer could reach every other
	// along "knows" edges.
	Known                        []int
	Connected, StronglyConnected bool
	// Events counts Found, Updated and Lost events received.
	Found, Updated, LostEvents int
	// FalseLost counts Lost events about peers that were live, reported by
	// peers that were live themselves (not crashed or left), with the
	// time of each since the run began.
	FalseLost []time.Duration
	// FalseLostPeers are the indexes of the peers falsely reported Lost,
	// and Stats every default-profile peer's counters, for diagnosis.
	FalseLostPeers []int
	Stats          []slotdiscovery.Stats
}

type lostAt struct {
	id string
	at time.Time
}

type peer struct {
	i       int
	id      string
	key     ed25519.PrivateKey // id's: the default profile signs entries about keys
	start   time.Time
	d       discovery.Discoverer
	ann     discovery.Announcement
	crashed *crashable
	off     time.Duration // clock skew
	seed    uint64

	mu      sync.Mutex
	found   map[string]time.Time // first Found of each other peer
	known   map[string]bool      // live now, by events
	lost    map[string]time.Time // last Lost of each other peer
	lostLog []lostAt
	evs     [3]int
}

// crashable is a Backend that a crash cuts off: from then on every
// request fails, so the peer's tombstone never leaves it.
type crashable struct {
	pkarrclient.Backend
	mu   sync.Mutex
	dead bool
}

var errCrashed = fmt.Errorf("%w: simulated crash", pkarrclient.ErrUnavailable)

func (c *crashable) down() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.dead }

func (c *crashable) Publish(ctx context.Context, p *pkarrclient.SignedPacket) (pkarrclient.PublishReceipt, error) {
	if c.down() {
		return pkarrclient.PublishReceipt{}, &pkarrclient.BackendError{Backend: c.Name(), Op: "publish", Err: errCrashed}
	}
	return c.Backend.Publish(ctx, p)
}

func (c *crashable) Resolve(ctx context.Context, q pkarrclient.Query) (*pkarrclient.SignedPacket, error) {
	if c.down() {
		return nil, &pkarrclient.BackendError{Backend: c.Name(), Op: "resolve", Err: errCrashed}
	}
	return c.Backend.Resolve(ctx, q)
}

// paced serializes a Backend's requests, one per every.
type paced struct {
	pkarrclient.Backend
	every time.Duration
	mu    sync.Mutex
	next  time.Time
}

func (p *paced) wait(ctx context.Context) {
	p.mu.Lock()
	at := time.Now()
	if p.next.After(at) {
		at = p.next
	}
	p.next = at.Add(p.every)
	p.mu.Unlock()
	sleepUntil(ctx, at)
}

func (p *paced) Resolve(ctx context.Context, q pkarrclient.Query) (*pkarrclient.SignedPacket, error) {
	p.wait(ctx)
	return p.Backend.Resolve(ctx, q)
}

// persistent retries a Backend's failed reads (not "not found"): the
// reader that counts peers in no slot crosses the same lossy network as
// the peers, and a read lost on the way must not count a slot's members
// as evicted.
type persistent struct {
	pkarrclient.Backend
}

func (p persistent) Resolve(ctx context.Context, q pkarrclient.Query) (*pkarrclient.SignedPacket, error) {
	for try := 0; ; try++ {
		sp, err := p.Backend.Resolve(ctx, q)
		if err == nil || errors.Is(err, pkarrclient.ErrNotFound) || try == 9 || ctx.Err() != nil {
			return sp, err
		}
		sleepUntil(ctx, time.Now().Add(time.Second))
	}
}

// skewed is a clock offset from the real one (the bubble's, under
// synctest): timers run at the same rate, Now is off by a constant.
type skewed struct {
	clockwork.Clock
	off time.Duration
}

func (s skewed) Now() time.Time                  { return s.Clock.Now().Add(s.off) }
func (s skewed) Since(t time.Time) time.Duration { return s.Now().Sub(t) }
func (s skewed) Until(t time.Time) time.Duration { return t.Sub(s.Now()) }

// Run runs sc in env and returns what it measured. It returns when the
// scenario's Duration has passed on the time package's clock.
func Run(ctx context.Context, sc Scenario, env Env) (*Result, error) {
	rng := rand.New(rand.NewPCG(sc.Seed, sc.Seed+1))
	t0 := time.Now()
	if sc.Attack {
		if err := attack(sc, env, t0); err != nil {
			return nil, err
		}
	}
	peers := make([]*peer, sc.Peers)
	for i := range peers {
		// IDs are Ed25519 public keys, as can-sync's endpoint IDs are (its
		// profile refuses anything else).
		var seed [32]byte
		for j := range seed {
			seed[j] = byte(rng.UintN(256))
		}
		sk, err := pkarrclient.SecretKeyFromSeed(seed[:])
		if err != nil {
			return nil, err
		}
		id := sk.PublicKey()
		var off time.Duration
		if sc.Skew > 0 {
			off = time.Duration(rng.Int64N(int64(2*sc.Skew))) - sc.Skew
		}
		var at time.Duration
		if sc.Start > 0 {
			at = time.Duration(rng.Int64N(int64(sc.Start)))
		}
		peers[i] = &peer{i: i, id: hex.EncodeToString(id[:]), key: ed25519.NewKeyFromSeed(seed[:]), start: t0.Add(at),
			found: map[string]time.Time{}, known: map[string]bool{}, lost: map[string]time.Time{}}
		peers[i].crashed = &crashable{Backend: env.Backend(i)}
		peers[i].off, peers[i].seed = off, rng.Uint64()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Start everyone at their time: a peer's discoverer, its subscription
	// and its announcement all begin then, as in a program that starts.
	var wg, starters sync.WaitGroup
	errs := make([]error, len(peers))
	for _, p := range peers {
		starters.Go(func() {
			sleepUntil(ctx, p.start)
			if errs[p.i] = p.open(sc, env); errs[p.i] != nil {
				return
			}
			ch, err := p.d.Subscribe(ctx)
			if errs[p.i] = err; err != nil {
				return
			}
			wg.Go(func() { p.listen(ch) })
			a, err := p.d.Announce(ctx, discovery.Record{ID: p.id, Addrs: addrsFor(sc, p.i)})
			p.ann, errs[p.i] = a, err
		})
	}
	starters.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, p := range peers {
			if p.d != nil {
				_ = p.d.Close(context.Background())
			}
		}
		cancel()
		wg.Wait()
		return nil, err
	}
	res := &Result{Scenario: sc.Name, Profile: sc.Profile, Peers: sc.Peers}
	gone := map[int]bool{}
	var endAt time.Time
	if len(sc.Crash)+len(sc.Leave) > 0 {
		sleepUntil(ctx, t0.Add(sc.EndAt))
		endAt = time.Now()
		for _, i := range sc.Crash {
			peers[i].crashed.mu.Lock()
			peers[i].crashed.dead = true
			peers[i].crashed.mu.Unlock()
			gone[i] = true
		}
		for _, i := range sc.Leave {
			if peers[i].ann != nil {
				_ = peers[i].ann.Leave(ctx)
			}
			gone[i] = true
		}
	}
	if sc.Checkpoint > 0 {
		sleepUntil(ctx, t0.Add(sc.Checkpoint))
		checkpoint(res, peers, gone)
	}
	sleepUntil(ctx, t0.Add(sc.Duration))
	evicted, err := evictions(ctx, sc, env, peers, gone)
	if err != nil {
		return nil, err
	}
	res.Evicted, res.EvictedPeers = len(evicted), evicted
	for _, p := range peers {
		if d, ok := p.d.(*slotdiscovery.Discoverer); ok {
			st := d.Stats()
			res.LostClaims += st.LostClaims
			res.Stats = append(res.Stats, st)
		}
	}
	for _, p := range peers {
		p.crashed.mu.Lock()
		p.crashed.dead = true // Close must not write: the run is over
		p.crashed.mu.Unlock()
		_ = p.d.Close(context.Background())
	}
	cancel()
	wg.Wait()
	measure(res, sc, peers, gone, t0, endAt)
	return res, nil
}

func addrsFor(sc Scenario, i int) []string {
	if sc.Profile == CanSync {
		return nil // its wire carries the ID alone
	}
	// Two addresses of the usual libp2p shape, so entries are sized as in
	// real use.
	return []string{
		fmt.Sprintf("/ip4/198.51.%d.%d/udp/4001/quic-v1", i/250, i%250+1),
		fmt.Sprintf("/ip6/2001:db8::%x/udp/4001/quic-v1", i+1),
	}
}

func (p *peer) open(sc Scenario, env Env) error {
	client, err := pkarrclient.NewClient([]pkarrclient.Backend{p.crashed})
	if err != nil {
		return err
	}
	opts := append([]slotdiscovery.Option{
		slotdiscovery.WithClock(skewed{Clock: clockwork.NewRealClock(), off: p.off}),
		slotdiscovery.WithSeed(p.seed),
	}, sc.Options...)
	if sc.Logger != nil && (sc.LogPeer == p.i || sc.LogPeer < 0) {
		opts = append(opts, slotdiscovery.WithLogger(sc.Logger.With("peer", p.i)))
	}
	switch sc.Profile {
	case CanSync:
		p.d, err = slotdiscovery.NewCanSync(client, env.Passphrase, opts...)
	default:
		opts = append([]slotdiscovery.Option{slotdiscovery.WithSigner(discovery.Ed25519Signer(p.key))}, opts...)
		p.d, err = slotdiscovery.New(client, env.Group, opts...)
	}
	return err
}

func (p *peer) listen(ch <-chan discovery.Event) {
	for e := range ch {
		now := time.Now()
		p.mu.Lock()
		p.evs[e.Type-1]++
		switch e.Type {
		case discovery.Found:
			if _, ok := p.found[e.Peer.ID]; !ok {
				p.found[e.Peer.ID] = now
			}
			p.known[e.Peer.ID] = true
		case discovery.Lost:
			delete(p.known, e.Peer.ID)
			p.lost[e.Peer.ID] = now
			p.lostLog = append(p.lostLog, lostAt{e.Peer.ID, now})
		}
		p.mu.Unlock()
	}
}

func sleepUntil(ctx context.Context, t time.Time) {
	d := time.Until(t)
	if d <= 0 {
		return
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
}

// attack stamps packets a year ahead on the first slots, as a passphrase
// holder trying to lock the group out would.
func attack(sc Scenario, env Env, t0 time.Time) error {
	ts := pkarrclient.TimestampFromTime(t0.AddDate(1, 0, 0))
	n := 7
	if sc.Profile == CanSync {
		n = slotdiscovery.CanSyncSlots
	}
	for i := range n {
		var sk *pkarrclient.SecretKey
		b := pkarrclient.NewBuilder().Timestamp(ts)
		if sc.Profile == CanSync {
			sk = slotdiscovery.CanSyncSlotKey(env.Passphrase, i)
			b.TXT("_can_sync", 300, hex.EncodeToString(make([]byte, 32)))
		} else {
			sk = env.Group.SlotKey(i)
			b.TXT("@", 300, "locked")
		}
		p, err := b.Sign(sk)
		if err != nil {
			return err
		}
		env.Seed(p)
	}
	return nil
}

// evictions counts live peers missing from every slot at the end, read
// with a fresh client (a reader that never joined).
func evictions(ctx context.Context, sc Scenario, env Env, peers []*peer, gone map[int]bool) ([]int, error) {
	var reader pkarrclient.Backend = persistent{env.Backend(-1)}
	if env.ReaderPace > 0 {
		reader = &paced{Backend: reader, every: env.ReaderPace}
	}
	client, err := pkarrclient.NewClient([]pkarrclient.Backend{reader})
	if err != nil {
		return nil, err
	}
	present := map[string]bool{}
	if sc.Profile == CanSync {
		for i := range slotdiscovery.CanSyncSlots {
			p, err := client.Resolve(ctx, slotdiscovery.CanSyncSlotKey(env.Passphrase, i).PublicKey(), pkarrclient.NetworkOnly())
			if err != nil {
				continue
			}
			for _, v := range p.TXT(slotdiscovery.CanSyncRecordName) {
				present[v] = true
			}
		}
	} else {
		// Read far deeper than any scan would, so a peer stranded below
		// where scans stop still counts as present: this counts peers in
		// no slot at all.
		deep := 1<<(bits.Len(uint(len(peers)))+1) - 1
		infos, err := slotdiscovery.ReadTable(ctx, client, env.Group, slotdiscovery.TableClock(clockwork.NewRealClock()),
			slotdiscovery.TableMinSlots(deep), slotdiscovery.TableBudget(rate.Inf, 64))
		if err != nil && !errors.Is(err, context.Canceled) {
			return nil, err
		}
		for _, si := range infos {
			for _, m := range si.Members {
				if !m.Left && !m.Stale {
					present[m.Record.ID] = true
				}
			}
		}
	}
	var out []int
	for _, p := range peers {
		if !gone[p.i] && !present[p.id] {
			out = append(out, p.i)
		}
	}
	return out, nil
}

func checkpoint(res *Result, peers []*peer, gone map[int]bool) {
	idx := map[string]int{}
	for _, p := range peers {
		idx[p.id] = p.i
	}
	adj := make([][]int, len(peers))
	for _, p := range peers {
		if gone[p.i] {
			continue
		}
		p.mu.Lock()
		n := 0
		for id := range p.known {
			j, ok := idx[id]
			if !ok || gone[j] {
				continue
			}
			n++
			adj[p.i] = append(adj[p.i], j)
		}
		p.mu.Unlock()
		res.Known = append(res.Known, n)
	}
	live := 0
	first := -1
	for i := range peers {
		if !gone[i] {
			live++
			if first < 0 {
				first = i
			}
		}
	}
	if first < 0 {
		return
	}
	und := make([][]int, len(peers))
	rev := make([][]int, len(peers))
	for i, js := range adj {
		for _, j := range js {
			und[i] = append(und[i], j)
			und[j] = append(und[j], i)
			rev[j] = append(rev[j], i)
		}
	}
	res.Connected = reach(und, first) == live
	res.StronglyConnected = reach(adj, first) == live && reach(rev, first) == live
}

func reach(adj [][]int, from int) int {
	seen := map[int]bool{from: true}
	stack := []int{from}
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, j := range adj[i] {
			if !seen[j] {
				seen[j] = true
				stack = append(stack, j)
			}
		}
	}
	return len(seen)
}

func measure(res *Result, sc Scenario, peers []*peer, gone map[int]bool, t0, endAt time.Time) {
	for _, p := range peers {
		res.Found += p.evs[0]
		res.Updated += p.evs[1]
		res.LostEvents += p.evs[2]
	}
	for a := range peers {
		for b := a + 1; b < len(peers); b++ {
			pa, pb := peers[a], peers[b]
			if gone[a] || gone[b] {
				continue
			}
			res.Pairs++
			later := pa.start
			if pb.start.After(later) {
				later = pb.start
			}
			ta, oka := pa.found[pb.id]
			tb, okb := pb.found[pa.id]
			if oka {
				res.FoundTimes = append(res.FoundTimes, ta.Sub(later))
			}
			if okb {
				res.FoundTimes = append(res.FoundTimes, tb.Sub(later))
			}
			if oka || okb {
				first := ta
				if !oka || okb && tb.Before(ta) {
					first = tb
				}
				res.Meshed++
				res.MeshTimes = append(res.MeshTimes, first.Sub(later))
			}
			if oka && okb {
				res.Mutual++
				both := ta
				if tb.After(both) {
					both = tb
				}
				res.MutualTimes = append(res.MutualTimes, both.Sub(later))
			}
		}
	}
	goneLost := func(i int) time.Duration {
		var last time.Time
		for _, p := range peers {
			if gone[p.i] {
				continue
			}
			if _, knew := p.found[peers[i].id]; !knew {
				continue
			}
			t, ok := p.lost[peers[i].id]
			if !ok || t.Before(endAt) {
				return -1
			}
			if t.After(last) {
				last = t
			}
		}
		if last.IsZero() {
			return -1
		}
		return last.Sub(endAt)
	}
	byID := map[string]*peer{}
	for _, p := range peers {
		byID[p.id] = p
	}
	for _, p := range peers {
		for _, l := range p.lostLog {
			if l.at.After(t0.Add(sc.Duration)) {
				continue // the run is over and peers are closing
			}
			if gone[p.i] && !l.at.Before(endAt) {
				// A crashed peer still runs, cut off from the relays, and
				// rightly forgets everyone it can no longer read: no false
				// Lost, but what a partition looks like from inside.
				continue
			}
			if q := byID[l.id]; q != nil && (!gone[q.i] || l.at.Before(endAt)) {
				res.FalseLost = append(res.FalseLost, l.at.Sub(t0))
				res.FalseLostPeers = append(res.FalseLostPeers, q.i)
			}
		}
	}
	sortD(res.FalseLost)
	for _, i := range sc.Crash {
		res.CrashLost = append(res.CrashLost, goneLost(i))
	}
	for _, i := range sc.Leave {
		res.LeaveLost = append(res.LeaveLost, goneLost(i))
	}
	sortD(res.MutualTimes)
	sortD(res.MeshTimes)
	sortD(res.FoundTimes)
}

func sortD(ds []time.Duration) { sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] }) }

// Quantile returns the q-quantile of sorted ds (nearest rank), or -1 when
// ds is empty.
func Quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return -1
	}
	k := int(q*float64(len(ds))+0.999999) - 1
	return ds[min(max(k, 0), len(ds)-1)]
}
