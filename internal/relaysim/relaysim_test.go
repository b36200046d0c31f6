package relaysim_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/time/rate"

	"github.com/phrasemeet/discovery/internal/relaysim"
	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/pkarrrelay"
)

const epoch pkarrclient.Timestamp = 1_735_689_600_000_000 // 2025-01-01

func newKey(t *testing.T) *pkarrclient.SecretKey {
	t.Helper()
	sk, err := pkarrclient.GenerateSecretKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return sk
}

func sign(t *testing.T, sk *pkarrclient.SecretKey, ts pkarrclient.Timestamp, value string) *pkarrclient.SignedPacket {
	t.Helper()
	p, err := pkarrclient.NewBuilder().TXT("_test", 300, value).Timestamp(ts).Sign(sk)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// backendError checks that err is a *BackendError with the given op and
// status, as pkarrclient.Relay returns, and returns it.
func backendError(t *testing.T, err error, op string, status int) *pkarrclient.BackendError {
	t.Helper()
	var be *pkarrclient.BackendError
	if !errors.As(err, &be) {
		t.Fatalf("error %v (%T) is not a *BackendError", err, err)
	}
	if be.Op != op || be.Status != status {
		t.Fatalf("error %v: op %q status %d, want %q %d", err, be.Op, be.Status, op, status)
	}
	return be
}

// wantRateLimit checks a 429 with the given Retry-After.
func wantRateLimit(t *testing.T, err error, op string, retryAfter time.Duration) {
	t.Helper()
	backendError(t, err, op, http.StatusTooManyRequests)
	var rl *pkarrclient.RateLimitError
	if !errors.As(err, &rl) || !errors.Is(err, pkarrclient.ErrRateLimited) {
		t.Fatalf("error %v is not a *RateLimitError matching ErrRateLimited", err)
	}
	if rl.RetryAfter != retryAfter {
		t.Fatalf("Retry-After %v, want %v", rl.RetryAfter, retryAfter)
	}
}

func TestN0DropsOlderPacketSilently(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := relaysim.New(relaysim.N0, relaysim.WithRateLimits(false), relaysim.WithRTT(100*time.Millisecond, 0))
		b := r.Backend("10.0.0.1")
		sk := newKey(t)
		older, newer := sign(t, sk, epoch, "old"), sign(t, sk, epoch+1, "new")

		// The newer PUT is sent first and arrives first; the older one,
		// sent 10 ms later, arrives later and is dropped with a 204.
		var wg sync.WaitGroup
		for i, p := range []*pkarrclient.SignedPacket{newer, older} {
			wg.Go(func() {
				time.Sleep(time.Duration(i) * 10 * time.Millisecond)
				if _, err := b.Publish(t.Context(), p); err != nil {
					t.Errorf("publish %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		if got := r.Get(sk.PublicKey()); !got.Equal(newer) {
			t.Fatalf("relay holds %v, want the newer packet", got.Timestamp())
		}
		got, err := b.Resolve(t.Context(), pkarrclient.Query{Key: sk.PublicKey()})
		if err != nil || !got.Equal(newer) {
			t.Fatalf("resolve: %v, %v; want the newer packet", got, err)
		}
		// Re-publishing the held packet is accepted and is no drop.
		if _, err := b.Publish(t.Context(), newer); err != nil {
			t.Fatal(err)
		}
		want := relaysim.IPStats{Gets: 1, Puts: 3, Stored: 1, Dropped: 1}
		if s := r.IPStats("10.0.0.1"); s != want {
			t.Fatalf("stats %+v, want %+v", s, want)
		}
	})
}

func TestN0PutLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := relaysim.New(relaysim.N0)
		b := r.Backend("10.0.0.1")
		sk := newKey(t)
		ts := epoch
		put := func() error {
			ts++
			_, err := b.Publish(t.Context(), sign(t, sk, ts, "v"))
			return err
		}
		for i := range 2 {
			if err := put(); err != nil {
				t.Fatalf("PUT %d within the burst: %v", i, err)
			}
		}
		wantRateLimit(t, put(), "publish", 4*time.Second)
		// GETs are not limited on n0's relay.
		for range 20 {
			if _, err := b.Resolve(t.Context(), pkarrclient.Query{Key: sk.PublicKey()}); err != nil {
				t.Fatal(err)
			}
		}
		// Another IP has its own bucket.
		if _, err := r.Backend("10.0.0.2").Publish(t.Context(), sign(t, sk, ts+100, "other")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(4 * time.Second)
		if err := put(); err != nil {
			t.Fatalf("PUT after 4 s: %v", err)
		}
		wantRateLimit(t, put(), "publish", 4*time.Second)
		time.Sleep(2 * time.Second)
		wantRateLimit(t, put(), "publish", 2*time.Second)
		time.Sleep(1500 * time.Millisecond) // 0.5 s to go: rounded up
		wantRateLimit(t, put(), "publish", time.Second)
		s := r.IPStats("10.0.0.1")
		if s.Puts != 7 || s.RateLimited != 4 || s.Gets != 20 {
			t.Fatalf("stats %+v, want 7 PUTs, 4 rate limited, 20 GETs", s)
		}
	})
}

func TestPkarrRelayConflict(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := relaysim.New(relaysim.PkarrRelay)
		b := r.Backend("10.0.0.1")
		sk := newKey(t)
		older, newer := sign(t, sk, epoch, "old"), sign(t, sk, epoch+1, "new")
		if _, err := b.Publish(t.Context(), newer); err != nil {
			t.Fatal(err)
		}
		_, err := b.Publish(t.Context(), older)
		backendError(t, err, "publish", http.StatusConflict)
		if !errors.Is(err, pkarrclient.ErrNotMostRecent) {
			t.Fatalf("older PUT: %v, want ErrNotMostRecent", err)
		}
		if _, err := b.Publish(t.Context(), newer); err != nil {
			t.Fatalf("re-PUT of the held packet: %v", err)
		}
		if got := r.Get(sk.PublicKey()); !got.Equal(newer) {
			t.Fatal("relay lost the newer packet")
		}
		if s := r.Stats().Total; s.Conflicts != 1 || s.Stored != 1 || s.Dropped != 0 {
			t.Fatalf("stats %+v", s)
		}
	})
}

func TestPkarrRelayRequestLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := relaysim.New(relaysim.PkarrRelay)
		b := r.Backend("10.0.0.1")
		sk := newKey(t)
		ts := epoch
		// Ten requests, GETs (404) and PUTs alternating, use up the burst.
		for i := range 10 {
			var err error
			if i%2 == 0 {
				_, err = b.Resolve(t.Context(), pkarrclient.Query{Key: newKey(t).PublicKey()})
				if !errors.Is(err, pkarrclient.ErrNotFound) {
					t.Fatalf("GET %d: %v, want ErrNotFound", i, err)
				}
				backendError(t, err, "resolve", http.StatusNotFound)
			} else {
				ts++
				if _, err = b.Publish(t.Context(), sign(t, sk, ts, "v")); err != nil {
					t.Fatalf("PUT %d: %v", i, err)
				}
			}
		}
		_, err := b.Resolve(t.Context(), pkarrclient.Query{Key: sk.PublicKey()})
		wantRateLimit(t, err, "resolve", time.Second) // 0.5 s to the next token
		_, err = b.Publish(t.Context(), sign(t, sk, ts+1, "v"))
		wantRateLimit(t, err, "publish", time.Second)
		time.Sleep(500 * time.Millisecond)
		if _, err := b.Resolve(t.Context(), pkarrclient.Query{Key: sk.PublicKey()}); err != nil {
			t.Fatalf("GET after 0.5 s: %v", err)
		}
		_, err = b.Resolve(t.Context(), pkarrclient.Query{Key: sk.PublicKey()})
		wantRateLimit(t, err, "resolve", time.Second)
		want := relaysim.IPStats{Gets: 8, Puts: 6, Stored: 5, RateLimited: 3, NotFound: 5}
		if s := r.IPStats("10.0.0.1"); s != want {
			t.Fatalf("stats %+v, want %+v", s, want)
		}
	})
}

func TestLimitOptions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := relaysim.New(relaysim.PkarrRelay, relaysim.WithRateLimits(false), relaysim.WithPutRateLimit(1, 1))
		b := r.Backend("10.0.0.1")
		sk := newKey(t)
		for range 30 { // GETs unlimited now
			b.Resolve(t.Context(), pkarrclient.Query{Key: sk.PublicKey()})
		}
		if _, err := b.Publish(t.Context(), sign(t, sk, epoch, "a")); err != nil {
			t.Fatal(err)
		}
		_, err := b.Publish(t.Context(), sign(t, sk, epoch+1, "b"))
		wantRateLimit(t, err, "publish", time.Second)
	})
}

func TestRTTInVirtualTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var arrivals []time.Time
		r := relaysim.New(relaysim.N0, relaysim.WithRTT(120*time.Millisecond, 0),
			relaysim.WithObserver(func(q relaysim.Request) { arrivals = append(arrivals, q.Time) }))
		b := r.Backend("10.0.0.1")
		sk := newKey(t)
		start := time.Now()
		if _, err := b.Publish(t.Context(), sign(t, sk, epoch, "v")); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 120*time.Millisecond {
			t.Fatalf("publish took %v, want 120ms", d)
		}
		start = time.Now()
		if _, err := b.Resolve(t.Context(), pkarrclient.Query{Key: sk.PublicKey()}); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 120*time.Millisecond {
			t.Fatalf("resolve took %v, want 120ms", d)
		}
		if len(arrivals) != 2 || arrivals[1].Sub(start) != 60*time.Millisecond {
			t.Fatalf("arrivals %v, want the GET at start+60ms", arrivals)
		}
	})
}

func TestJitterIsReproducible(t *testing.T) {
	run := func() []time.Duration {
		var ds []time.Duration
		synctest.Test(t, func(t *testing.T) {
			r := relaysim.New(relaysim.N0, relaysim.WithRTT(100*time.Millisecond, 50*time.Millisecond),
				relaysim.WithRand(rand.New(rand.NewPCG(7, 7))))
			b := r.Backend("10.0.0.1")
			key := newKey(t).PublicKey()
			for range 20 {
				start := time.Now()
				b.Resolve(t.Context(), pkarrclient.Query{Key: key})
				ds = append(ds, time.Since(start))
			}
		})
		return ds
	}
	a, b := run(), run()
	if !slices.Equal(a, b) {
		t.Fatalf("same seed, different delays:\n%v\n%v", a, b)
	}
	if slices.Min(a) < 100*time.Millisecond || slices.Max(a) > 150*time.Millisecond || slices.Min(a) == slices.Max(a) {
		t.Fatalf("delays %v, want varied values in [100ms, 150ms]", a)
	}
}

func TestLoss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sk := newKey(t)
		p := sign(t, sk, epoch, "v")
		wantUnavailable := func(err error, d, want time.Duration) {
			t.Helper()
			backendError(t, err, "publish", 0)
			if !errors.Is(err, pkarrclient.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("error %v, want ErrUnavailable wrapping context.DeadlineExceeded", err)
			}
			if d != want {
				t.Fatalf("failed after %v, want %v", d, want)
			}
		}

		r := relaysim.New(relaysim.N0, relaysim.WithLoss(1), relaysim.WithRTT(100*time.Millisecond, 0))
		start := time.Now()
		_, err := r.Backend("10.0.0.1").Publish(t.Context(), p)
		wantUnavailable(err, time.Since(start), relaysim.DefaultRequestTimeout)
		if r.Get(sk.PublicKey()) != nil {
			t.Fatal("a lost PUT was applied")
		}
		if s := r.IPStats("10.0.0.1"); s != (relaysim.IPStats{Lost: 1}) {
			t.Fatalf("stats %+v, want only Lost: 1", s)
		}

		r = relaysim.New(relaysim.N0, relaysim.WithLoss(1), relaysim.WithRequestTimeout(300*time.Millisecond))
		start = time.Now()
		_, err = r.Backend("10.0.0.1").Publish(t.Context(), p)
		wantUnavailable(err, time.Since(start), 300*time.Millisecond)

		// The caller's deadline comes first: its own error, not the relay's.
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		start = time.Now()
		_, err = r.Backend("10.0.0.1").Publish(ctx, p)
		backendError(t, err, "publish", 0)
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, pkarrclient.ErrUnavailable) {
			t.Fatalf("error %v, want the context's deadline only", err)
		}
		if d := time.Since(start); d != 100*time.Millisecond {
			t.Fatalf("failed after %v, want 100ms", d)
		}

		// A lost answer: the PUT took effect, the caller cannot know.
		r = relaysim.New(relaysim.N0, relaysim.WithAnswerLoss(1))
		start = time.Now()
		_, err = r.Backend("10.0.0.1").Publish(t.Context(), p)
		wantUnavailable(err, time.Since(start), relaysim.DefaultRequestTimeout)
		if !r.Get(sk.PublicKey()).Equal(p) {
			t.Fatal("the PUT whose answer was lost was not applied")
		}
		if s := r.IPStats("10.0.0.1"); s != (relaysim.IPStats{Puts: 1, Stored: 1, Lost: 1}) {
			t.Fatalf("stats %+v", s)
		}
	})
}

func TestContextCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := relaysim.New(relaysim.PkarrRelay, relaysim.WithRTT(10*time.Second, 0), relaysim.WithRequestTimeout(0))
		b := r.Backend("10.0.0.1")
		sk := newKey(t)
		publishCancelledAfter := func(p *pkarrclient.SignedPacket, after time.Duration) {
			t.Helper()
			ctx, cancel := context.WithCancel(t.Context())
			time.AfterFunc(after, cancel)
			start := time.Now()
			_, err := b.Publish(ctx, p)
			backendError(t, err, "publish", 0)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("error %v, want context.Canceled", err)
			}
			if d := time.Since(start); d != after {
				t.Fatalf("returned after %v, want %v", d, after)
			}
		}
		// Cancelled on the way out: the relay never sees it.
		publishCancelledAfter(sign(t, sk, epoch, "a"), time.Second)
		if r.Get(sk.PublicKey()) != nil || r.IPStats("10.0.0.1").Puts != 0 {
			t.Fatal("a request cancelled before arrival reached the relay")
		}
		// Cancelled on the way back: applied, but the caller has gone.
		p := sign(t, sk, epoch+1, "b")
		publishCancelledAfter(p, 6*time.Second)
		if !r.Get(sk.PublicKey()).Equal(p) {
			t.Fatal("a request that arrived was not applied")
		}
		// Already cancelled: no request at all.
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := b.Resolve(ctx, pkarrclient.Query{Key: sk.PublicKey()})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want context.Canceled", err)
		}
		if s := r.IPStats("10.0.0.1"); s.Gets != 0 || s.Puts != 1 {
			t.Fatalf("stats %+v", s)
		}
	})
}

// errShape is what a caller can learn from a backend error without reading
// its text.
type errShape struct {
	Is         [8]bool
	Op         string
	Status     int
	RetryAfter time.Duration
}

func shape(err error) errShape {
	var s errShape
	for i, target := range []error{
		pkarrclient.ErrNotFound, pkarrclient.ErrNotMostRecent, pkarrclient.ErrRateLimited,
		pkarrclient.ErrBadRequest, pkarrclient.ErrUnavailable, pkarrclient.ErrInvalidResponse,
		context.Canceled, context.DeadlineExceeded,
	} {
		s.Is[i] = errors.Is(err, target)
	}
	var be *pkarrclient.BackendError
	if errors.As(err, &be) {
		s.Op, s.Status = be.Op, be.Status
	}
	var rl *pkarrclient.RateLimitError
	if errors.As(err, &rl) {
		s.RetryAfter = rl.RetryAfter
	}
	return s
}

// startRealRelay serves this project's relay on 127.0.0.1 and returns a
// client-side Relay for it that does not retry.
func startRealRelay(t *testing.T, h http.Handler, opts ...pkarrclient.RelayOption) *pkarrclient.Relay {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	rl, err := pkarrclient.NewRelay(srv.URL, append([]pkarrclient.RelayOption{
		pkarrclient.RelayHTTPClient(srv.Client()), pkarrclient.RelayRetries(0),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return rl
}

func pkarrHandler(t *testing.T, opts ...pkarrrelay.Option) http.Handler {
	t.Helper()
	store := pkarrrelay.NewMemoryStore(100)
	t.Cleanup(func() { store.Close() })
	h, err := pkarrrelay.NewHandler(store, append([]pkarrrelay.Option{
		pkarrrelay.WithWriteRateLimit(rate.Inf, 0), pkarrrelay.WithReadRateLimit(rate.Inf, 0),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestErrorParityWithRealRelay runs the same requests against the real
// client and relay over HTTP (real time) and against the model, and
// compares the errors as callers see them.
func TestErrorParityWithRealRelay(t *testing.T) {
	sk := newKey(t)
	older, newer := sign(t, sk, epoch, "old"), sign(t, sk, epoch+1, "new")
	unknown := pkarrclient.Query{Key: newKey(t).PublicKey()}
	ctx := t.Context()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	type pair struct{ real, sim error }
	cases := map[string]func(t *testing.T) pair{
		"404": func(t *testing.T) pair {
			real := startRealRelay(t, pkarrHandler(t))
			sim := relaysim.New(relaysim.PkarrRelay).Backend("127.0.0.1")
			_, e1 := real.Resolve(ctx, unknown)
			_, e2 := sim.Resolve(ctx, unknown)
			return pair{e1, e2}
		},
		"409": func(t *testing.T) pair {
			real := startRealRelay(t, pkarrHandler(t))
			sim := relaysim.New(relaysim.PkarrRelay).Backend("127.0.0.1")
			var p pair
			for _, b := range []pkarrclient.Backend{real, sim} {
				if _, err := b.Publish(ctx, newer); err != nil {
					t.Fatal(err)
				}
			}
			_, p.real = real.Publish(ctx, older)
			_, p.sim = sim.Publish(ctx, older)
			return p
		},
		"429": func(t *testing.T) pair {
			real := startRealRelay(t, pkarrHandler(t, pkarrrelay.WithWriteRateLimit(0.25, 2)))
			sim := relaysim.New(relaysim.N0).Backend("127.0.0.1")
			var p pair
			for _, b := range []pkarrclient.Backend{real, sim} {
				for _, q := range []*pkarrclient.SignedPacket{older, newer} {
					if _, err := b.Publish(ctx, q); err != nil {
						t.Fatal(err)
					}
				}
			}
			third := sign(t, sk, epoch+2, "third")
			_, p.real = real.Publish(ctx, third)
			_, p.sim = sim.Publish(ctx, third)
			return p
		},
		"timeout": func(t *testing.T) pair {
			hang := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
			real := startRealRelay(t, hang, pkarrclient.RelayTimeout(50*time.Millisecond))
			sim := relaysim.New(relaysim.N0, relaysim.WithLoss(1), relaysim.WithRequestTimeout(50*time.Millisecond)).Backend("127.0.0.1")
			_, e1 := real.Resolve(ctx, unknown)
			_, e2 := sim.Resolve(ctx, unknown)
			return pair{e1, e2}
		},
		"cancelled": func(t *testing.T) pair {
			real := startRealRelay(t, pkarrHandler(t))
			sim := relaysim.New(relaysim.N0).Backend("127.0.0.1")
			_, e1 := real.Publish(cancelled, newer)
			_, e2 := sim.Publish(cancelled, newer)
			return pair{e1, e2}
		},
	}
	for name, run := range cases {
		t.Run(name, func(t *testing.T) {
			p := run(t)
			if p.real == nil {
				t.Fatal("the real relay returned no error")
			}
			t.Logf("real: %v\nsim:  %v", p.real, p.sim)
			if a, b := shape(p.real), shape(p.sim); a != b {
				t.Fatalf("real %v\n  %+v\nsim  %v\n  %+v", p.real, a, p.sim, b)
			}
		})
	}
}
