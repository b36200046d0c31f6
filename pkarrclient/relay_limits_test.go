package pkarrclient

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jonboulle/clockwork"
)

func TestRelayPublish428IsNotMostRecent(t *testing.T) {
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "concurrent write", http.StatusPreconditionRequired)
	})
	_, err := newTestRelay(t, srv.URL).Publish(testContext(t), txtPacket(t, newSecretKey(t), testEpoch, "v", 300))
	if !errors.Is(err, ErrNotMostRecent) {
		t.Fatalf("428: %v, want ErrNotMostRecent", err)
	}
}

// TestRelayConcurrent429sShareOneWindow sends eight resolves at once to a
// relay that refuses them all without Retry-After: they open one 1 s
// window together, not a doubled backoff each (which would shut the relay
// out for a minute).
func TestRelayConcurrent429sShareOneWindow(t *testing.T) {
	const calls = 8
	var arrived sync.WaitGroup
	arrived.Add(calls)
	srv, n := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		arrived.Done()
		arrived.Wait() // answer only once all are in flight
		http.Error(w, "slow down", http.StatusTooManyRequests)
	})
	clock := clockwork.NewFakeClock()
	r := newTestRelay(t, srv.URL, RelayClock(clock))
	key := newSecretKey(t).PublicKey()
	var wg sync.WaitGroup
	var limited atomic.Int32
	for range calls {
		wg.Go(func() {
			var rl *RateLimitError
			if _, err := r.Resolve(testContext(t), Query{Key: key}); errors.As(err, &rl) {
				limited.Add(1)
			}
		})
	}
	wg.Wait()
	if n.Load() != calls || limited.Load() != calls {
		t.Fatalf("%d requests, %d rate-limited", n.Load(), limited.Load())
	}
	if got := r.rateLimitRemaining(OpResolve); got != rateLimitBackoffMin {
		t.Fatalf("window after %d simultaneous 429s = %v, want %v", calls, got, rateLimitBackoffMin)
	}
}

// TestRelayRateLimitPerOperation: n0's relay limits PUTs only, so a 429 on
// publish must not stop resolves.
func TestRelayRateLimitPerOperation(t *testing.T) {
	sk := newSecretKey(t)
	p := txtPacket(t, sk, testEpoch, "v", 300)
	srv, n := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			w.Header().Set("Retry-After", "4")
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return
		}
		w.Write(p.RelayPayload())
	})
	r := newTestRelay(t, srv.URL, RelayClock(clockwork.NewFakeClock()))
	if _, err := r.Publish(testContext(t), p); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("publish: %v", err)
	}
	if _, err := r.Publish(testContext(t), p); !errors.Is(err, ErrRateLimited) || n.Load() != 1 {
		t.Fatalf("second publish: %v after %d requests; want a fast failure", err, n.Load())
	}
	if got, err := r.Resolve(testContext(t), Query{Key: sk.PublicKey()}); err != nil || !got.Equal(p) {
		t.Fatalf("resolve during the publish window: %v", err)
	}
}

func TestNewRelayErrorsHidePassword(t *testing.T) {
	for _, u := range []string{
		"https://user:s3cret@relay example/pkarr",
		"https://user:s3cret@relay.example/pkarr?x",
		"ftp://user:s3cret@relay.example/",
	} {
		_, err := NewRelay(u)
		if err == nil || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("NewRelay(%q): %v", u, err)
		}
	}
}
