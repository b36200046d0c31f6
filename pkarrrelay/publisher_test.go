package pkarrrelay

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/phrasemeet/discovery/pkarrclient"
)

// The background publish, against the fake DHT on a fake clock: a PUT
// never waits for it, one key costs at most one call at a time however
// many PUTs it gets, the keys waiting are capped, failed calls are tried
// again after growing pauses, and Close stops it all.

// TestPutDoesNotWaitForThePublish: with every publish held, PUTs are still
// answered, and the packets reach the DHT once it lets them through.
func TestPutDoesNotWaitForThePublish(t *testing.T) {
	r := newDHTRelay(t, NewMemoryStore(10))
	r.dht.holdPublishes()
	sk := newSecretKey(t)
	p := sign(t, sk, tsAt(0), 300, "x")
	wantStatus(t, r.putPacket(p), http.StatusNoContent)
	if r.dht.holding(sk.PublicKey()) != nil {
		t.Fatal("the DHT holds the packet while its publish is held")
	}
	resp, body := r.get(sk.PublicKey(), nil)
	wantBody(t, resp, body, p)
	r.dht.releasePublishes()
	if err := r.published.wait(t, sk.PublicKey()); err != nil {
		t.Fatal(err)
	}
	if got := r.dht.holding(sk.PublicKey()); got == nil || !got.Equal(p) {
		t.Fatal("the DHT does not hold the packet after its publish")
	}
	wantUpstreamCount(t, r.h, opPublish, resultOK, 1)
}

// TestPublishCoalescesPerKey: while one publish of a key runs, fifty newer
// versions and as many republishes arrive; the DHT then gets exactly one
// more call for the key, with the newest version.
func TestPublishCoalescesPerKey(t *testing.T) {
	r := newDHTRelay(t, NewMemoryStore(10))
	r.dht.holdPublishes()
	sk := newSecretKey(t)
	first := sign(t, sk, tsAt(0), 300, "v0")
	wantStatus(t, r.putPacket(first), http.StatusNoContent)
	waitFor(t, "the first publish to start", func() bool { return r.h.up.pub.running(sk.PublicKey()) })
	var last *pkarrclient.SignedPacket
	for i := 1; i <= 50; i++ {
		last = sign(t, sk, tsAt(time.Duration(i)*time.Millisecond), 300, "v")
		wantStatus(t, r.putPacket(last), http.StatusNoContent)
		wantStatus(t, r.putPacket(last), http.StatusNoContent) // a republish
	}
	if n := r.h.up.pub.pending(); n != 1 {
		t.Errorf("%d keys pending, want 1", n)
	}
	r.dht.releasePublishes()
	r.published.wait(t, sk.PublicKey())
	r.published.wait(t, sk.PublicKey())
	waitFor(t, "the queue to empty", func() bool { return r.h.up.pub.pending() == 0 })
	if n := r.dht.publishesOf(sk.PublicKey()); n != 2 {
		t.Errorf("the DHT got %d publish calls for the key, want 2 (the first, then the newest)", n)
	}
	if got := r.dht.holding(sk.PublicKey()); got == nil || !got.Equal(last) {
		t.Error("the DHT does not hold the newest version")
	}
	// An older packet than the one waiting does not replace it.
	pb := r.h.up.pub
	r.dht.holdPublishes()
	newest := sign(t, sk, tsAt(time.Second), 300, "newest")
	wantStatus(t, r.putPacket(newest), http.StatusNoContent)
	waitFor(t, "its publish to start", func() bool { return pb.running(sk.PublicKey()) })
	if pb.enqueue(last) != coalesced || pb.enqueue(first) != coalesced {
		t.Error("older packets were not folded into the key's job")
	}
	r.dht.releasePublishes()
	r.published.wait(t, sk.PublicKey())
	waitFor(t, "the queue to empty", func() bool { return pb.pending() == 0 })
	if got := r.dht.holding(sk.PublicKey()); got == nil || !got.Equal(newest) {
		t.Error("an older packet replaced the newest in the DHT")
	}
	if n := r.dht.publishesOf(sk.PublicKey()); n != 3 {
		t.Errorf("the DHT got %d publish calls for the key, want 3: older packets are not published after a newer one", n)
	}
}

// TestPublishQueueBounded: a flood of PUTs for distinct keys while the
// upstream hangs holds one publish per worker and the queue's worth of
// keys; the rest are stored, not published, and counted. No goroutine is
// spent per PUT.
func TestPublishQueueBounded(t *testing.T) {
	r := newDHTRelay(t, NewMemoryStore(100), WithPublishQueue(2, 5))
	r.dht.holdPublishes()
	before := runtime.NumGoroutine()
	var keys []pkarrclient.PublicKey
	for range 40 {
		sk := newSecretKey(t)
		keys = append(keys, sk.PublicKey())
		wantStatus(t, r.putPacket(sign(t, sk, tsAt(0), 300, "x")), http.StatusNoContent)
	}
	if n := r.h.up.pub.pending(); n != 5 {
		t.Errorf("%d keys pending, want the queue's 5", n)
	}
	wantUpstreamCount(t, r.h, opPublish, resultDropped, 35)
	if after := runtime.NumGoroutine(); after > before+5 {
		t.Errorf("%d goroutines after 40 PUTs against a hung upstream, %d before", after, before)
	}
	if r.h.store.Len() != 40 {
		t.Errorf("the store holds %d of the 40 packets", r.h.store.Len())
	}
	r.dht.releasePublishes()
	waitFor(t, "the queue to empty", func() bool { return r.h.up.pub.pending() == 0 })
	published := 0
	for _, k := range keys {
		published += r.dht.publishesOf(k)
	}
	if published != 5 {
		t.Errorf("%d publishes reached the DHT, want 5", published)
	}
}

// TestPublishRetries: a failed publish is tried again after 5 s, then 10 s
// (on the relay's clock), and not before; a refusal for good (the DHT
// holds a newer packet) is not tried again; the last failure is logged.
func TestPublishRetries(t *testing.T) {
	logs := &logCapture{}
	r := newDHTRelay(t, NewMemoryStore(10), WithPublishRetries(2, 5*time.Second), WithLogger(slog.New(logs)))
	sk := newSecretKey(t)
	p := sign(t, sk, tsAt(0), 300, "x")
	r.dht.mu.Lock()
	r.dht.pubFail = 3
	r.dht.mu.Unlock()
	wantStatus(t, r.putPacket(p), http.StatusNoContent)
	if err := r.published.wait(t, sk.PublicKey()); !errors.Is(err, pkarrclient.ErrUnavailable) {
		t.Fatalf("first call: %v", err)
	}
	// The pause runs on the relay's clock: nothing happens until it moves.
	waitTimer(t, r)
	r.clock.Advance(5*time.Second - time.Millisecond)
	time.Sleep(50 * time.Millisecond)
	if n := r.dht.publishesOf(sk.PublicKey()); n != 1 {
		t.Fatalf("%d calls before the first pause ended, want 1", n)
	}
	r.clock.Advance(time.Millisecond)
	if err := r.published.wait(t, sk.PublicKey()); err == nil {
		t.Fatal("second call succeeded; the DHT was set to fail it")
	}
	waitTimer(t, r)
	r.clock.Advance(10*time.Second - time.Millisecond) // the pause doubles
	time.Sleep(50 * time.Millisecond)
	if n := r.dht.publishesOf(sk.PublicKey()); n != 2 {
		t.Fatalf("%d calls before the second pause ended, want 2", n)
	}
	r.clock.Advance(time.Millisecond)
	if err := r.published.wait(t, sk.PublicKey()); err == nil {
		t.Fatal("third call succeeded; the DHT was set to fail it")
	}
	// Retries spent: the job ends, and the failure is a warning.
	waitFor(t, "the job to end", func() bool { return r.h.up.pub.pending() == 0 })
	r.clock.Advance(time.Hour)
	if n := r.dht.publishesOf(sk.PublicKey()); n != 3 {
		t.Errorf("%d calls, want 3 (one and two retries)", n)
	}
	if !strings.Contains(logs.text(), "upstream publish failed") || logs.count(slog.LevelWarn) == 0 {
		t.Errorf("the given-up publish was not logged as a warning: %s", logs.text())
	}

	// The DHT holds a newer packet: one call, no retry.
	other := newSecretKey(t)
	r.dht.set(sign(t, other, tsAt(time.Minute), 300, "newer"))
	wantStatus(t, r.putPacket(sign(t, other, tsAt(0), 300, "older")), http.StatusNoContent)
	if err := r.published.wait(t, other.PublicKey()); !errors.Is(err, pkarrclient.ErrNotMostRecent) {
		t.Fatalf("publish of an older packet: %v", err)
	}
	waitFor(t, "the job to end", func() bool { return r.h.up.pub.pending() == 0 })
	r.clock.Advance(time.Hour)
	if n := r.dht.publishesOf(other.PublicKey()); n != 1 {
		t.Errorf("%d calls for a packet the DHT holds a newer one of, want 1", n)
	}
}

// TestCloseStopsPublishes: Close cancels the publish in flight, drops the
// one waiting, and returns with no publish goroutine left.
func TestCloseStopsPublishes(t *testing.T) {
	r := newDHTRelay(t, NewMemoryStore(10), WithPublishQueue(1, 10), WithPublishTimeout(time.Hour))
	r.dht.holdPublishes()
	a, b := newSecretKey(t), newSecretKey(t)
	wantStatus(t, r.putPacket(sign(t, a, tsAt(0), 300, "a")), http.StatusNoContent)
	wantStatus(t, r.putPacket(sign(t, b, tsAt(0), 300, "b")), http.StatusNoContent)
	waitFor(t, "a's publish to start", func() bool { return r.h.up.pub.running(a.PublicKey()) })

	closed := make(chan error, 1)
	go func() { closed <- r.h.Close() }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not cancel the publish in flight")
	}
	if stacks := strings.Join(leakCandidates(), "\n"); strings.Contains(stacks, "(*publisher).work") {
		t.Errorf("a publish worker survived Close:\n%s", stacks)
	}
	if n := r.dht.publishesOf(b.PublicKey()); n != 0 {
		t.Errorf("the waiting publish ran after Close")
	}
	// A PUT to the closed handler is stored, not published.
	c := newSecretKey(t)
	wantStatus(t, r.putPacket(sign(t, c, tsAt(0), 300, "c")), http.StatusNoContent)
	if r.h.up.pub.pending() != 0 {
		t.Error("a closed publisher took a job")
	}
}

// running reports whether a publish of key is in flight.
func (pb *publisher) running(key pkarrclient.PublicKey) bool {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	j := pb.jobs[key]
	return j != nil && j.running
}

// waitTimer waits until something waits on the relay's fake clock: the
// publisher's pause before a retry.
func waitTimer(t *testing.T, r *dhtRelay) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.clock.BlockUntilContext(ctx, 1); err != nil {
		t.Fatal("no retry was scheduled")
	}
}

// TestPublishesLeaveLookupsTheirShare: background publishes wait for the
// upstream budget without reserving tokens ahead, so while a queue of
// publishes drains, GET misses still get their share of it. Reservations
// that took each next token as soon as the last publish ended kept the
// limiter below one token, and every lookup was refused with 503 until
// the whole queue had drained (found in review).
func TestPublishesLeaveLookupsTheirShare(t *testing.T) {
	r := newDHTRelay(t, NewMemoryStore(1000), WithUpstreamBudget(32, 1, 4))
	for range 40 {
		wantStatus(t, r.putPacket(sign(t, newSecretKey(t), tsAt(0), 300, "x")), http.StatusNoContent)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	served := 0
	for range 20 {
		if err := r.clock.BlockUntilContext(ctx, DefaultPublishWorkers); err != nil {
			t.Fatal(err)
		}
		if resp, _ := r.get(newSecretKey(t).PublicKey(), nil); resp.StatusCode != http.StatusServiceUnavailable {
			served++
		}
		r.clock.Advance(time.Second)
	}
	if served == 0 {
		t.Fatalf("20 s at 1 upstream call/s with publishes queued: every GET miss was refused (%v publishes done)",
			upstreamCount(t, r.h, opPublish, resultOK))
	}
	t.Logf("GET misses served %d of 20 while publishes drained", served)
}
