// Package slottest holds what tests of the slot rendezvous and of the
// packages above it share: the project's real relay on 127.0.0.1, a pkarr
// client per test peer, a cheap KDF and a fast schedule. It is imported by
// tests only.
package slottest

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/pkarrrelay"
	"github.com/phrasemeet/discovery/slotdiscovery"
)

// CheapKDF keeps tests fast; the parameters are part of the group, so
// every member of a test group must use the same.
var CheapKDF = slotdiscovery.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

// Relay serves the project's real relay, in memory and without rate limits
// unless opts set them, on 127.0.0.1, and returns its base URL. It stops
// when the test ends.
func Relay(t testing.TB, opts ...pkarrrelay.Option) string {
	t.Helper()
	return Serve(t, RelayHandler(t, opts...))
}

// RelayHandler is the handler Relay serves, for tests that wrap it (see
// Delayed).
func RelayHandler(t testing.TB, opts ...pkarrrelay.Option) http.Handler {
	t.Helper()
	store := pkarrrelay.NewMemoryStore(10_000)
	t.Cleanup(func() { store.Close() })
	return relayHandler(t, store, opts)
}

func relayHandler(t testing.TB, store pkarrrelay.Store, opts []pkarrrelay.Option) http.Handler {
	t.Helper()
	h, err := pkarrrelay.NewHandler(store, append([]pkarrrelay.Option{
		pkarrrelay.WithWriteRateLimit(rate.Inf, 0),
		pkarrrelay.WithReadRateLimit(rate.Inf, 0),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// Serve serves h on 127.0.0.1 until the test ends and returns its base URL.
func Serve(t testing.TB, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Fatalf("test relay is not on loopback: %s", srv.URL)
	}
	return srv.URL
}

// Delayed answers every request through h after a delay drawn uniformly
// from [lo, hi]: a relay further away than another.
func Delayed(h http.Handler, lo, hi time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := lo
		if hi > lo {
			d += rand.N(hi - lo)
		}
		select {
		case <-time.After(d):
			h.ServeHTTP(w, r)
		case <-r.Context().Done():
		}
	})
}

// LyingRelay serves the project's relay over a store that keeps only the
// first packet of each key and acknowledges every later PUT as stored: a
// relay that answers quickly and lies. Its GETs serve validly signed
// packets, only old ones. It holds the given packets from the start, as
// the first of their keys.
func LyingRelay(t testing.TB, packets ...*pkarrclient.SignedPacket) string {
	t.Helper()
	store := &firstOnlyStore{MemoryStore: preload(t, packets)}
	return Serve(t, relayHandler(t, store, nil))
}

type firstOnlyStore struct{ *pkarrrelay.MemoryStore }

func (s *firstOnlyStore) Put(ctx context.Context, p *pkarrclient.SignedPacket) (pkarrrelay.PutOutcome, error) {
	if _, err := s.Get(ctx, p.PublicKey()); err == nil {
		return pkarrrelay.PutStored, nil
	}
	return s.MemoryStore.Put(ctx, p)
}

// PreloadedRelay is Relay holding the given packets from the start, stored
// without the checks a PUT goes through: what another relay, or an
// attacker writing to a relay without those checks, may hold.
func PreloadedRelay(t testing.TB, packets ...*pkarrclient.SignedPacket) string {
	t.Helper()
	return Serve(t, PreloadedHandler(t, packets...))
}

// PreloadedHandler is the handler PreloadedRelay serves.
func PreloadedHandler(t testing.TB, packets ...*pkarrclient.SignedPacket) http.Handler {
	t.Helper()
	return relayHandler(t, preload(t, packets), nil)
}

func preload(t testing.TB, packets []*pkarrclient.SignedPacket) *pkarrrelay.MemoryStore {
	t.Helper()
	mem := pkarrrelay.NewMemoryStore(10_000)
	t.Cleanup(func() { mem.Close() })
	for _, p := range packets {
		if _, err := mem.Put(context.Background(), p); err != nil {
			t.Fatal(err)
		}
	}
	return mem
}

// FrozenRelay serves the given packets and refuses every PUT with a
// storage error: a relay that lags behind the others for good, such as a
// replica that stopped syncing or a relay whose disk is full.
func FrozenRelay(t testing.TB, packets ...*pkarrclient.SignedPacket) string {
	t.Helper()
	return Serve(t, relayHandler(t, frozenStore{preload(t, packets)}, nil))
}

type frozenStore struct{ *pkarrrelay.MemoryStore }

func (frozenStore) Put(context.Context, *pkarrclient.SignedPacket) (pkarrrelay.PutOutcome, error) {
	return 0, errors.New("frozen")
}

// HangingRelay accepts every request and never answers it: a relay behind
// a black hole.
func HangingRelay(t testing.TB) string {
	t.Helper()
	stop := make(chan struct{})
	url := Serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	// Registered after Serve, so it runs first: the server's Close waits
	// for handlers to return.
	t.Cleanup(func() { close(stop) })
	return url
}

// Stallable serves h until stall is called, and from then on holds every
// request unanswered, as HangingRelay does, until the test ends: a relay
// that drops off the network after peers have met through it.
func Stallable(t testing.TB, h http.Handler) (url string, stall func()) {
	t.Helper()
	var stalled atomic.Bool
	stop := make(chan struct{})
	url = Serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !stalled.Load() {
			h.ServeHTTP(w, r)
			return
		}
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	// After Serve, so it runs first (see HangingRelay).
	t.Cleanup(func() { close(stop) })
	return url, func() { stalled.Store(true) }
}

// DeadRelay returns the URL of a port on 127.0.0.1 that nothing listens
// on: every request is refused at once.
func DeadRelay(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String()
	l.Close()
	return url
}

// Client returns a pkarr client of its own for one test peer, over the
// relays at urls, with short timeouts and retry delays.
func Client(t testing.TB, urls ...string) *pkarrclient.Client {
	t.Helper()
	return ClientWith(t, urls)
}

// ClientWith is Client with more relay options, applied after Client's.
func ClientWith(t testing.TB, urls []string, opts ...pkarrclient.RelayOption) *pkarrclient.Client {
	t.Helper()
	c, err := pkarrclient.NewRelayClient(urls, append([]pkarrclient.RelayOption{
		pkarrclient.RelayHTTPClient(&http.Client{Timeout: 5 * time.Second}),
		pkarrclient.RelayBackoff(time.Millisecond, 10*time.Millisecond),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Group derives a test group from passphrase with CheapKDF.
func Group(t testing.TB, passphrase string) *slotdiscovery.Group {
	t.Helper()
	g, err := slotdiscovery.DeriveGroup([]byte(passphrase), slotdiscovery.WithKDF(CheapKDF))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// FastSchedule shrinks every period of the default profile so a test runs
// in seconds; the proportions between them stay those of the defaults.
func FastSchedule() []slotdiscovery.Option {
	return []slotdiscovery.Option{
		slotdiscovery.WithScanInterval(200 * time.Millisecond),
		slotdiscovery.WithFastScan(50*time.Millisecond, time.Second),
		slotdiscovery.WithRepublishInterval(500 * time.Millisecond),
		slotdiscovery.WithStaleAfter(2 * time.Second),
		slotdiscovery.WithVerifyDelay(5*time.Millisecond, 30*time.Millisecond),
		slotdiscovery.WithGetBudget(200, 400, 50),
		slotdiscovery.WithPutBudget(100, 20),
		slotdiscovery.WithRequestBudget(500, 70),
	}
}
