package slotdiscovery_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/phrasemeet/discovery/internal/slottest"
	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/pkarrrelay"
	"github.com/phrasemeet/discovery/slotdiscovery"
)

// These tests lock slots the way an attacker who knows the passphrase
// does: a packet stamped so far ahead (2^63 µs and beyond, up to 2^64-1)
// that no honest write can ever be newer. The project's relay refuses such
// a PUT, so the attacker's packet goes straight into its store, as on a
// relay without a future check (or one that took it from the DHT).

// lockWait bounds every wait for peers to meet.
const lockWait = 20 * time.Second

// Timestamps an attacker locks a slot with: beyond int64 microseconds,
// where a conversion through int64 wraps into the past.
const (
	lockAt63  = pkarrclient.Timestamp(1 << 63)
	lockAt63x = pkarrclient.Timestamp(1<<63 + 123_456_789)
	lockAtMax = pkarrclient.Timestamp(math.MaxUint64)
)

// lockRelay is the project's relay on 127.0.0.1 with its store at hand,
// counting what it answers.
type lockRelay struct {
	url     string
	store   *pkarrrelay.MemoryStore
	handler atomic.Pointer[http.Handler]
	gets    atomic.Int64
	puts    atomic.Int64
	// future counts PUTs refused as stamped too far ahead: an honest peer
	// must never write one.
	future atomic.Int64
}

// startLockRelay serves the relay without rate limits. With dropOlder it
// answers a PUT that loses to the stored packet 204 instead of 409, as
// n0's relay does: only a read-back tells the write did not take.
func startLockRelay(t *testing.T, dropOlder bool) *lockRelay {
	t.Helper()
	r := &lockRelay{}
	r.reset(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		h := *r.handler.Load()
		if req.Method != http.MethodPut {
			r.gets.Add(1)
			h.ServeHTTP(w, req)
			return
		}
		r.puts.Add(1)
		sw := &statusWriter{ResponseWriter: w, dropOlder: dropOlder}
		h.ServeHTTP(sw, req)
		if sw.status == http.StatusBadRequest && strings.Contains(sw.body.String(), "future") {
			r.future.Add(1)
		}
	}))
	t.Cleanup(srv.Close)
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Fatalf("test relay is not on loopback: %s", srv.URL)
	}
	r.url = srv.URL
	return r
}

// reset gives the relay a new, empty store, as a relay that lost its data.
func (r *lockRelay) reset(t *testing.T) {
	t.Helper()
	store := pkarrrelay.NewMemoryStore(10_000)
	t.Cleanup(func() { store.Close() })
	h, err := pkarrrelay.NewHandler(store,
		pkarrrelay.WithWriteRateLimit(rate.Inf, 0),
		pkarrrelay.WithReadRateLimit(rate.Inf, 0))
	if err != nil {
		t.Fatal(err)
	}
	var hh http.Handler = h
	r.store = store
	r.handler.Store(&hh)
}

// statusWriter notes a PUT's status and body, and with dropOlder turns a
// 409 into a silent 204.
type statusWriter struct {
	http.ResponseWriter
	dropOlder bool
	status    int
	dropped   bool
	body      strings.Builder
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	if w.dropOlder && code == http.StatusConflict {
		w.dropped = true
		w.ResponseWriter.Header().Del("Content-Length")
		w.ResponseWriter.Header().Del("Content-Type")
		w.ResponseWriter.WriteHeader(http.StatusNoContent)
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.body.Write(b)
	if w.dropped {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// lock stores, under key sk, a packet stamped ts holding b's records,
// bypassing the relay's future check.
func (r *lockRelay) lock(t *testing.T, sk *pkarrclient.SecretKey, ts pkarrclient.Timestamp, b *pkarrclient.Builder) {
	t.Helper()
	p, err := b.Timestamp(ts).Sign(sk)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.store.Put(context.Background(), p); err != nil {
		t.Fatal(err)
	}
}

// awaitMeet waits until every discoverer holds a confirmed slot and
// knows every other one's ID.
func awaitMeet(t *testing.T, ds []*slotdiscovery.Discoverer, ids []string) {
	t.Helper()
	known := make([]func() []string, len(ds))
	for i, d := range ds {
		known[i] = func() []string {
			if d.Slot(ids[i]) < 0 {
				return nil // not met until it holds a slot
			}
			return peerIDs(d.Peers())
		}
	}
	waitKnown(t, known, ids, lockWait, func(i int) string {
		return fmt.Sprintf("slot %d, %+v", ds[i].Slot(ids[i]), ds[i].Stats())
	})
}

// TestLockedSlotsAreAbandoned locks slots with timestamps beyond 2^63 µs.
// Such a slot can never be written again, so it must be judged locked and
// left: two honest peers claim elsewhere and meet, no write of theirs is
// stamped beyond their own future bound, and ReadTable shows the slot
// locked. Each lock is tried on a relay that answers a losing write 409
// and on one that drops it silently.
func TestLockedSlotsAreAbandoned(t *testing.T) {
	for _, c := range []struct {
		name  string
		locks map[int]pkarrclient.Timestamp
	}{
		{"slot0 at 2^63", map[int]pkarrclient.Timestamp{0: lockAt63}},
		{"slot0 at 2^63+x", map[int]pkarrclient.Timestamp{0: lockAt63x}},
		{"slot0 at 2^64-1", map[int]pkarrclient.Timestamp{0: lockAtMax}},
		{"levels 0 and 1", map[int]pkarrclient.Timestamp{0: lockAtMax, 1: lockAt63, 2: lockAt63x}},
	} {
		for _, dropOlder := range []bool{false, true} {
			name := c.name + "/409"
			if dropOlder {
				name = c.name + "/dropped"
			}
			t.Run(name, func(t *testing.T) {
				r := startLockRelay(t, dropOlder)
				g := slottest.Group(t, "locked slots "+name)
				for i, ts := range c.locks {
					r.lock(t, g.SlotKey(i), ts, pkarrclient.NewBuilder().TXT("_junk", 300, "locked"))
				}
				ds := newPeers(t, g, []string{r.url}, 2)
				ids := announceAll(t, ds)
				began := time.Now()
				awaitMeet(t, ds, ids)
				for i, d := range ds {
					st := d.Stats()
					t.Logf("%s met the other in %v from slot %d: %d claims, %d conflicts, %d collisions, %d GETs, %d PUTs",
						ids[i], time.Since(began).Round(time.Millisecond), d.Slot(ids[i]), st.Claims, st.Conflicts, st.Collisions, st.Gets, st.Puts)
					if s := d.Slot(ids[i]); s < 0 || c.locks[s] != 0 {
						t.Errorf("%s holds slot %d (locked: %v)", ids[i], s, c.locks)
					}
					if st := d.Stats(); st.SlotsLocked == 0 {
						t.Errorf("%s never judged a slot locked: %+v", ids[i], st)
					}
				}
				if n := r.future.Load(); n > 0 {
					t.Errorf("honest peers wrote %d packets stamped beyond the relay's future margin", n)
				}

				ctx, cancel := context.WithTimeout(context.Background(), lockWait)
				defer cancel()
				table, err := slotdiscovery.ReadTable(ctx, slottest.Client(t, r.url), g, slotdiscovery.TableMinSlots(7))
				if err != nil {
					t.Fatal(err)
				}
				live := 0
				for _, si := range table {
					ts, locked := c.locks[si.Index]
					switch {
					case locked && si.State != slotdiscovery.SlotLocked:
						t.Errorf("ReadTable: slot %d stamped %d is %s, want %s", si.Index, uint64(ts), si.State, slotdiscovery.SlotLocked)
					case locked && !si.Packet.Equal(ts.Time()):
						t.Errorf("ReadTable: slot %d packet time %v, want %v", si.Index, si.Packet, ts.Time())
					case si.State == slotdiscovery.SlotLive:
						live += len(si.Members)
					}
				}
				if live < len(ids) {
					t.Errorf("ReadTable shows %d live members, want %d: %+v", live, len(ids), table)
				}
			})
		}
	}
}

// TestLockLiftedNeverWrittenPast locks slot 0 at 2^63 µs, lets two peers
// meet elsewhere, then has the relay lose the locking packet. Slot 0 reads
// empty again, and a peer may move up into it; its write must then be
// stamped by its own clock, never one past the lock it saw before, which
// would lock the slot anew (relays with a future check refuse it, the
// others keep it for good).
func TestLockLiftedNeverWrittenPast(t *testing.T) {
	r := startLockRelay(t, false)
	g := slottest.Group(t, "lock lifted passphrase")
	r.lock(t, g.SlotKey(0), lockAt63, pkarrclient.NewBuilder().TXT("_junk", 300, "locked"))
	ds := newPeers(t, g, []string{r.url}, 2)
	ids := announceAll(t, ds)
	awaitMeet(t, ds, ids)
	r.reset(t)
	// Several republish periods and fast scans: every peer reads slot 0
	// empty and has its chance to move up.
	time.Sleep(3 * time.Second)
	awaitMeet(t, ds, ids)
	if n := r.future.Load(); n > 0 {
		for i, d := range ds {
			t.Logf("%s: slot %d, %+v", ids[i], d.Slot(ids[i]), d.Stats())
		}
		t.Errorf("%d writes stamped beyond the relay's future margin after the lock was lost", n)
	}
}
