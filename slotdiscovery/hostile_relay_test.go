package slotdiscovery_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phrasemeet/discovery/internal/slottest"
	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/slotdiscovery"
)

// TestOneBadRelayChangesNothing runs three peers over relays of which one
// lies, is dead or hangs: each must still find the other two. The liar
// answers first, acknowledges every PUT and keeps only the first packet
// of each key; the honest relays answer 3-20 ms later. A peer that trusts
// the first answer carries forward only what the liar serves and erases
// the others' entries on the honest relays.
func TestOneBadRelayChangesNothing(t *testing.T) {
	honest := func(t *testing.T) string {
		return slottest.Serve(t, slottest.Delayed(slottest.RelayHandler(t), 3*time.Millisecond, 20*time.Millisecond))
	}
	cases := []struct {
		name   string
		relays func(t *testing.T) []string
	}{
		{"liar+honest", func(t *testing.T) []string { return []string{slottest.LyingRelay(t), honest(t)} }},
		{"liar+2honest", func(t *testing.T) []string { return []string{slottest.LyingRelay(t), honest(t), honest(t)} }},
		{"dead+2honest", func(t *testing.T) []string { return []string{slottest.DeadRelay(t), honest(t), honest(t)} }},
		{"hanging+2honest", func(t *testing.T) []string { return []string{slottest.HangingRelay(t), honest(t), honest(t)} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			urls := tc.relays(t)
			g := slottest.Group(t, "one bad relay "+tc.name)
			ds, cs := newPeersClients(t, g, urls, 3)
			ids := announceAll(t, ds)
			waitAllKnow(t, ds, ids, 40*time.Second)
			if !strings.HasPrefix(tc.name, "liar") {
				return
			}
			// Every peer wrote a slot the liar already held, or rewrote
			// its own: each has seen the liar go back on a PUT.
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			for i, c := range cs {
				for !slices.Contains(c.Distrusted(), urls[0]) {
					select {
					case <-ctx.Done():
						t.Fatalf("peer %d does not distrust the liar: %v", i, c.Distrusted())
					case <-time.After(50 * time.Millisecond):
					}
				}
			}
		})
	}
}

// TestLaggingRelayDoesNotMislead runs three peers over an honest relay and
// one that answers first with an old packet for every slot of the first
// five levels and refuses every write: a replica that stopped syncing.
// It never acknowledged a write, so only reads that wait a moment for the
// other relays, and take the most recent answer, see past it.
func TestLaggingRelayDoesNotMislead(t *testing.T) {
	g := slottest.Group(t, "lagging relay")
	old := pkarrclient.TimestampFromTime(time.Now().Add(-time.Hour))
	var frozen []*pkarrclient.SignedPacket
	for i := range 31 {
		p, err := pkarrclient.NewBuilder().Timestamp(old).TXT("@", 300, "an old version").Sign(g.SlotKey(i))
		if err != nil {
			t.Fatal(err)
		}
		frozen = append(frozen, p)
	}
	urls := []string{
		slottest.FrozenRelay(t, frozen...),
		slottest.Serve(t, slottest.Delayed(slottest.RelayHandler(t), 3*time.Millisecond, 20*time.Millisecond)),
	}
	ds := newPeers(t, g, urls, 3)
	waitAllKnow(t, ds, announceAll(t, ds), 40*time.Second)
}

// TestReadBackAsksTheNetwork runs one peer over a relay that acknowledges
// every PUT and keeps only the first packet of each key. The peer's first
// write lands; every rewrite after it is dropped, and the read-back must
// say so. Our own client cached each packet we published: a read-back
// answered from that cache would confirm every rewrite.
func TestReadBackAsksTheNetwork(t *testing.T) {
	g := slottest.Group(t, "read-back passphrase")
	d := newPeers(t, g, []string{slottest.LyingRelay(t)}, 1)[0]
	announceAll(t, []*slotdiscovery.Discoverer{d})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for d.Stats().Collisions == 0 {
		select {
		case <-ctx.Done():
			t.Fatalf("no rewrite was found missing on a relay that keeps only first packets: stats %+v", d.Stats())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestRateLimitPausesOnlyThatRelay runs two peers over a relay that
// answers every request with 429 and a Retry-After of an hour, and a
// relay that fails every PUT for its first two seconds: their writes fail
// on both at first. The 429 concerns its relay alone; once the other
// takes writes the peers meet through it.
func TestRateLimitPausesOnlyThatRelay(t *testing.T) {
	limited := slottest.Serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3600")
		http.Error(w, "slow down", http.StatusTooManyRequests)
	}))
	honest := slottest.RelayHandler(t)
	healthy := time.Now().Add(2 * time.Second)
	flaky := slottest.Serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && time.Now().Before(healthy) {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		honest.ServeHTTP(w, r)
	}))
	g := slottest.Group(t, "one relay rate limits")
	ds := newPeers(t, g, []string{limited, flaky}, 2)
	waitAllKnow(t, ds, announceAll(t, ds), 30*time.Second)
	for i, d := range ds {
		if d.Stats().RateLimited == 0 {
			t.Errorf("peer %d counted no 429", i)
		}
	}
}

// TestEveryRelayRateLimitedPauses runs a peer over two relays that both
// answer 429 with a Retry-After of an hour: with no relay left to ask,
// the peer pauses instead of spending its budget on requests every relay
// would refuse.
func TestEveryRelayRateLimitedPauses(t *testing.T) {
	limited := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3600")
		http.Error(w, "slow down", http.StatusTooManyRequests)
	})
	g := slottest.Group(t, "every relay rate limits")
	d := newPeers(t, g, []string{slottest.Serve(t, limited), slottest.Serve(t, limited)}, 1)[0]
	announceAll(t, []*slotdiscovery.Discoverer{d})
	time.Sleep(2 * time.Second) // the fast schedule's budget allows 800 GETs in this time
	if s := d.Stats(); s.RateLimited == 0 || s.Gets > 20 {
		t.Fatalf("after 2 s against two relays that both said 429: %+v; want a few GETs, then a pause", s)
	}
}

// TestLockedLevelsCostLittle: a passphrase holder stamped every slot of
// the first nine levels (511) a year ahead, on a relay that takes such
// packets. Two peers and a watcher that announces nothing must still meet
// soon, in the first slot below the locks, and walking past the locked
// levels must cost each a read per locked slot it met, once, not one per
// locked slot at every scan.
func TestLockedLevelsCostLittle(t *testing.T) {
	g := slottest.Group(t, "locked levels passphrase")
	locked := lockedAhead(t, g, 511)
	// Each peer's client names itself in User-Agent, so the relay can
	// count each peer's reads of each slot.
	relay := slottest.PreloadedHandler(t, locked...)
	var mu sync.Mutex
	reads := make(map[string]int) // user agent + path
	url := slottest.Serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			mu.Lock()
			reads[r.UserAgent()+r.URL.Path]++
			mu.Unlock()
		}
		relay.ServeHTTP(w, r)
	}))
	ds := make([]*slotdiscovery.Discoverer, 3)
	for i := range ds {
		c := slottest.ClientWith(t, []string{url}, pkarrclient.RelayUserAgent(fmt.Sprint("peer-", i)))
		d, err := slotdiscovery.New(c, g, slottest.FastSchedule()...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close(context.Background()) })
		ds[i] = d
	}
	peers, watcher := ds[:2], ds[2]
	ids := announceAll(t, peers)
	awaitMeet(t, peers, ids) // and each holds a confirmed slot
	for i, d := range peers {
		// 511 is the first slot of level 9, its meeting point.
		if s := d.Slot(ids[i]); s != 511 {
			t.Errorf("peer %d holds slot %d, want 511, the first below the locks", i, s)
		}
		if st := d.Stats(); st.Gets > 600 {
			t.Errorf("peer %d spent %d GETs (%d slots found locked) to meet", i, st.Gets, st.SlotsLocked)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 40*time.Second)
	defer cancel()
	for len(watcher.Peers()) < 2 {
		select {
		case <-ctx.Done():
			t.Fatalf("the watcher knows %v after 40 s, stats %+v", peerIDs(watcher.Peers()), watcher.Stats())
		case <-time.After(10 * time.Millisecond):
		}
	}
	// Level 9 has 512 slots; a scan samples a few of them besides the
	// meeting points, so a watcher that read only samples would find the
	// pair after a hundred scans or so.
	if st := watcher.Stats(); st.Gets > 600 {
		t.Errorf("the watcher spent %d GETs to find the pair", st.Gets)
	}
	// And staying costs little: in 3 s of scans (one every 200 ms), each
	// locked slot is read once, not once per scan. (Twice at most: a claim
	// and a scan may read a slot at the same moment.)
	time.Sleep(3 * time.Second)
	mu.Lock()
	defer mu.Unlock()
	for i := range ds {
		for s, p := range locked {
			if n := reads[fmt.Sprint("peer-", i)+"/"+p.PublicKey().String()]; n > 2 {
				t.Errorf("peer %d read locked slot %d %d times", i, s, n)
			}
		}
	}
}
