package pkarrclient_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"golang.org/x/time/rate"

	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/pkarrrelay"
)

// These tests run the client against the project's real relay server
// (pkarrrelay) on 127.0.0.1.

const integrationEpoch pkarrclient.Timestamp = 1_735_689_600_000_000 // 2025-01-01

type testRelay struct {
	srv      *httptest.Server
	relay    *pkarrclient.Relay
	requests atomic.Int64
}

// startRelay serves a pkarrrelay handler with an in-memory store on
// 127.0.0.1, mounted at basePath, and returns a client-side Relay for it.
func startRelay(t *testing.T, basePath string, handlerOpts []pkarrrelay.Option, relayOpts ...pkarrclient.RelayOption) *testRelay {
	t.Helper()
	store := pkarrrelay.NewMemoryStore(100)
	t.Cleanup(func() { store.Close() })
	opts := []pkarrrelay.Option{
		pkarrrelay.WithBasePath(basePath),
		pkarrrelay.WithWriteRateLimit(rate.Inf, 0),
		pkarrrelay.WithReadRateLimit(rate.Inf, 0),
	}
	h, err := pkarrrelay.NewHandler(store, append(opts, handlerOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	tr := &testRelay{}
	tr.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tr.requests.Add(1)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(tr.srv.Close)
	if !strings.HasPrefix(tr.srv.URL, "http://127.0.0.1:") && !strings.HasPrefix(tr.srv.URL, "http://[::1]:") {
		t.Fatalf("test relay is not on loopback: %s", tr.srv.URL)
	}
	base := tr.srv.URL + strings.TrimSuffix(basePath, "/")
	tr.relay, err = pkarrclient.NewRelay(base, append([]pkarrclient.RelayOption{
		pkarrclient.RelayHTTPClient(tr.srv.Client()),
		pkarrclient.RelayBackoff(time.Millisecond, 4*time.Millisecond),
	}, relayOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func sign(t *testing.T, sk *pkarrclient.SecretKey, ts pkarrclient.Timestamp, value string) *pkarrclient.SignedPacket {
	t.Helper()
	p, err := pkarrclient.NewBuilder().TXT("_test", 300, value).Timestamp(ts).Sign(sk)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestIntegrationPublishResolve(t *testing.T) {
	a := startRelay(t, "/pkarr", nil)
	b := startRelay(t, "/", nil)
	c, err := pkarrclient.NewClient([]pkarrclient.Backend{a.relay, b.relay}, pkarrclient.WithSuccessPolicy(pkarrclient.All))
	if err != nil {
		t.Fatal(err)
	}
	sk, _ := pkarrclient.GenerateSecretKey(nil)
	ctx := ctxFor(t)

	v1 := sign(t, sk, integrationEpoch, "v1")
	res, err := c.Publish(ctx, v1)
	if err != nil || res.Accepted != 2 {
		t.Fatalf("publish: %+v, %v", res, err)
	}
	// Read back from the relays themselves, not the Client's cache.
	for _, r := range []*testRelay{a, b} {
		got, err := r.relay.Resolve(ctx, pkarrclient.Query{Key: sk.PublicKey(), Fresh: true})
		if err != nil || !got.Equal(v1) {
			t.Fatalf("%s: %v, %v", r.relay.Name(), got, err)
		}
	}
	got, err := c.ResolveMostRecent(ctx, sk.PublicKey(), pkarrclient.NetworkOnly())
	if err != nil || !got.Equal(v1) {
		t.Fatalf("ResolveMostRecent: %v, %v", got, err)
	}

	// An older packet is refused with 409 by both relays.
	v0 := sign(t, sk, integrationEpoch-1, "v0")
	res, err = c.Publish(ctx, v0)
	var pe *pkarrclient.PublishError
	if !errors.As(err, &pe) || !errors.Is(err, pkarrclient.ErrNotMostRecent) || res.Accepted != 0 {
		t.Fatalf("publishing an older packet: %+v, %v", res, err)
	}
	var be *pkarrclient.BackendError
	if !errors.As(res.Outcomes[0].Err, &be) || be.Status != http.StatusConflict || be.Backend != a.relay.Name() {
		t.Fatalf("outcome %+v", res.Outcomes[0])
	}

	// A newer one on one relay only: ResolveMostRecent finds it.
	v2 := sign(t, sk, integrationEpoch+1, "v2")
	if _, err := b.relay.Publish(ctx, v2); err != nil {
		t.Fatal(err)
	}
	got, err = c.ResolveMostRecent(ctx, sk.PublicKey())
	if err != nil || !got.Equal(v2) {
		t.Fatalf("ResolveMostRecent: %v, %v; want v2", got, err)
	}
}

func TestIntegrationNotFoundAndBadRequest(t *testing.T) {
	a := startRelay(t, "/", nil)
	c, err := pkarrclient.NewClient([]pkarrclient.Backend{a.relay})
	if err != nil {
		t.Fatal(err)
	}
	sk, _ := pkarrclient.GenerateSecretKey(nil)
	ctx := ctxFor(t)
	_, err = c.Resolve(ctx, sk.PublicKey())
	var re *pkarrclient.ResolveError
	if !errors.As(err, &re) || !errors.Is(err, pkarrclient.ErrNotFound) {
		t.Fatalf("err = %v, want a ResolveError matching ErrNotFound", err)
	}

	// The relay refuses a packet stamped far in the future with 400; the
	// client passes on its message and does not retry.
	future := sign(t, sk, pkarrclient.TimestampFromTime(time.Now().Add(24*time.Hour)), "future")
	before := a.requests.Load()
	_, err = a.relay.Publish(ctx, future)
	var be *pkarrclient.BackendError
	if !errors.Is(err, pkarrclient.ErrBadRequest) || !errors.As(err, &be) || be.Status != http.StatusBadRequest {
		t.Fatalf("err = %v, want ErrBadRequest", err)
	}
	if !strings.Contains(err.Error(), "relay says") {
		t.Errorf("error %q does not carry the relay's message", err)
	}
	if n := a.requests.Load() - before; n != 1 {
		t.Errorf("%d requests, want 1 (no retry)", n)
	}
}

// The real relay's rate limiter and the client's rate-limit memory, both on
// one fake clock.
func TestIntegrationRateLimit(t *testing.T) {
	clock := clockwork.NewFakeClockAt(time.Now())
	a := startRelay(t, "/", []pkarrrelay.Option{
		pkarrrelay.WithClock(clock),
		pkarrrelay.WithWriteRateLimit(1, 1), // one PUT per second
	}, pkarrclient.RelayClock(clock))
	sk, _ := pkarrclient.GenerateSecretKey(nil)
	ctx := ctxFor(t)

	if _, err := a.relay.Publish(ctx, sign(t, sk, integrationEpoch, "1")); err != nil {
		t.Fatal(err)
	}
	_, err := a.relay.Publish(ctx, sign(t, sk, integrationEpoch+1, "2"))
	var rl *pkarrclient.RateLimitError
	if !errors.As(err, &rl) || rl.RetryAfter != time.Second {
		t.Fatalf("err = %v, want a RateLimitError with the relay's Retry-After: 1", err)
	}
	// Within the second: no request reaches the relay.
	before := a.requests.Load()
	_, err = a.relay.Publish(ctx, sign(t, sk, integrationEpoch+2, "3"))
	if !errors.As(err, &rl) {
		t.Fatalf("err = %v", err)
	}
	if a.requests.Load() != before {
		t.Fatal("a rate-limited call reached the relay")
	}
	clock.Advance(time.Second)
	if _, err := a.relay.Publish(ctx, sign(t, sk, integrationEpoch+3, "4")); err != nil {
		t.Fatalf("after the wait: %v", err)
	}
}
