package slotdiscovery_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/phrasemeet/discovery"
	"github.com/phrasemeet/discovery/discoverytest"
	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/pkarrrelay"
	"github.com/phrasemeet/discovery/slotdiscovery"
)

// cheapKDF keeps tests fast; the parameters are part of the group, so
// every member of a test group uses the same.
var cheapKDF = slotdiscovery.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

// loopbackRelay serves the project's real relay, in memory and without
// rate limits, on 127.0.0.1 and returns its base URL.
func loopbackRelay(t *testing.T, opts ...pkarrrelay.Option) string {
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

// relayClient returns a pkarr client of its own for one peer.
func relayClient(t *testing.T, urls ...string) *pkarrclient.Client {
	t.Helper()
	var backends []pkarrclient.Backend
	for _, u := range urls {
		r, err := pkarrclient.NewRelay(u, pkarrclient.RelayHTTPClient(&http.Client{Timeout: 5 * time.Second}),
			pkarrclient.RelayBackoff(time.Millisecond, 10*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		backends = append(backends, r)
	}
	c, err := pkarrclient.NewClient(backends)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testGroup(t *testing.T, passphrase string) *slotdiscovery.Group {
	t.Helper()
	g, err := slotdiscovery.DeriveGroup([]byte(passphrase), slotdiscovery.WithKDF(cheapKDF))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// fastSchedule shrinks every period so a test runs in seconds; the
// proportions between them stay those of the defaults.
func fastSchedule() []slotdiscovery.Option {
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

func TestConformance(t *testing.T) {
	discoverytest.Run(t, func(t *testing.T, n int) []discovery.Discoverer {
		url := loopbackRelay(t)
		g := testGroup(t, "conformance passphrase")
		ds := make([]discovery.Discoverer, n)
		for i := range ds {
			d, err := slotdiscovery.New(relayClient(t, url), g, fastSchedule()...)
			if err != nil {
				t.Fatal(err)
			}
			ds[i] = d
		}
		return ds
	}, discoverytest.WithTimeout(15*time.Second))
}
