// Package slottest holds what tests of the slot rendezvous and of the
// packages above it share: the project's real relay on 127.0.0.1, a pkarr
// client per test peer, a cheap KDF and a fast schedule. It is imported by
// tests only.
package slottest

import (
	"net/http"
	"net/http/httptest"
	"strings"
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
	store := pkarrrelay.NewMemoryStore(10_000)
	t.Cleanup(func() { store.Close() })
	h, err := pkarrrelay.NewHandler(store, append([]pkarrrelay.Option{
		pkarrrelay.WithWriteRateLimit(rate.Inf, 0),
		pkarrrelay.WithReadRateLimit(rate.Inf, 0),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Fatalf("test relay is not on loopback: %s", srv.URL)
	}
	return srv.URL
}

// Client returns a pkarr client of its own for one test peer, over the
// relays at urls, with short timeouts and retry delays.
func Client(t testing.TB, urls ...string) *pkarrclient.Client {
	t.Helper()
	c, err := pkarrclient.NewRelayClient(urls,
		pkarrclient.RelayHTTPClient(&http.Client{Timeout: 5 * time.Second}),
		pkarrclient.RelayBackoff(time.Millisecond, 10*time.Millisecond))
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
	}
}
