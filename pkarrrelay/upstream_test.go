package pkarrrelay

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phrasemeet/discovery/pkarrclient"
)

// The upstream tests chain two real relays: relay A with relay B as its
// upstream, reached through pkarrclient.Relay, the same Backend seam the
// DHT plugs into.

// chain starts relay B and relay A fronting it. bGets counts the GETs that
// reach B.
func chain(t *testing.T, opts ...Option) (a, b *testRelay, bStore Store, bGets *atomic.Int32) {
	t.Helper()
	bStore = NewMemoryStore(100)
	b = newRelay(t, bStore)
	bGets = new(atomic.Int32)
	// Counting in front of B's handler: a fresh server, so no request is
	// in flight while the handler is chosen.
	b.srv.Close()
	b.srv = httptest.NewServer(countGets(b.h, bGets))
	t.Cleanup(b.srv.Close)
	b.client, b.base = b.srv.Client(), b.srv.URL
	up, err := pkarrclient.NewRelay(b.base, pkarrclient.RelayRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	a = newRelay(t, NewMemoryStore(100), append([]Option{WithUpstream(up)}, opts...)...)
	return a, b, bStore, bGets
}

// chainWatched is chain with A's background publishes reported on the
// returned watch.
func chainWatched(t *testing.T, opts ...Option) (a, b *testRelay, watch publishWatch) {
	t.Helper()
	watch = make(publishWatch, 100)
	a, b, _, _ = chain(t, append([]Option{watch.option()}, opts...)...)
	return a, b, watch
}

func TestUpstreamResolvesMissesAndCaches(t *testing.T) {
	a, b, bStore, bGets := chain(t)
	sk := newSecretKey(t)
	p := sign(t, sk, tsAt(0), 900, "from upstream")
	wantStatus(t, b.putPacket(p), http.StatusNoContent)
	for range 2 {
		resp, body := a.get(sk.PublicKey(), nil)
		wantStatus(t, resp, http.StatusOK)
		wantHeader(t, resp, "Cache-Control", "public, max-age=900")
		if !bytes.Equal(body, p.RelayPayload()) {
			t.Fatal("wrong body")
		}
	}
	if n := bGets.Load(); n != 1 {
		t.Errorf("upstream asked %d times; the answer should have been cached", n)
	}
	if a.h.store.Len() != 1 || bStore.Len() != 1 {
		t.Errorf("stores hold %d and %d packets", a.h.store.Len(), bStore.Len())
	}

	resp, _ := a.get(newSecretKey(t).PublicKey(), nil)
	wantStatus(t, resp, http.StatusNotFound)
	// A malformed key never reaches the upstream.
	before := bGets.Load()
	resp, _ = a.do(http.MethodGet, a.base+"/"+invalidPointKey(t), nil, nil)
	wantStatus(t, resp, http.StatusBadRequest)
	if bGets.Load() != before {
		t.Error("upstream asked about an invalid key")
	}
}

func countGets(h http.Handler, n *atomic.Int32) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			n.Add(1)
		}
		h.ServeHTTP(w, r)
	})
}

func TestUpstreamPublish(t *testing.T) {
	a, b, published := chainWatched(t)
	sk := newSecretKey(t)
	p := sign(t, sk, tsAt(0), 300, "x")

	// The PUT answers once A stored it; the publish follows.
	resp := a.putPacket(p)
	wantStatus(t, resp, http.StatusNoContent)
	if v := resp.Header.Values(HeaderDHTStoredNodes); len(v) != 0 {
		t.Errorf("%s = %q before the packet was published", HeaderDHTStoredNodes, v)
	}
	if err := published.wait(t, sk.PublicKey()); err != nil {
		t.Fatalf("publish: %v", err)
	}
	resp, body := b.get(sk.PublicKey(), nil)
	wantStatus(t, resp, http.StatusOK)
	if !bytes.Equal(body, p.RelayPayload()) {
		t.Fatal("upstream does not hold the packet PUT on the front relay")
	}
	// A republish learns what became of the last publish: a relay
	// upstream stores on no DHT node, and the header says so.
	resp = a.putPacket(p)
	wantStatus(t, resp, http.StatusNoContent)
	wantHeader(t, resp, HeaderDHTStoredNodes, "0")
	if err := published.wait(t, sk.PublicKey()); err != nil {
		t.Fatalf("republish: %v", err)
	}
	wantStatus(t, a.putPacket(sign(t, sk, tsAt(-time.Hour), 300, "x")), http.StatusConflict) // never forwarded

	// The upstream holds something newer: A keeps what it was given (a PUT
	// does not wait to hear), its publish meets the conflict, and the
	// next GETs find the newer packet upstream.
	other := newSecretKey(t)
	newer := sign(t, other, tsAt(time.Minute), 300, "newer")
	wantStatus(t, b.putPacket(newer), http.StatusNoContent)
	wantStatus(t, a.putPacket(sign(t, other, tsAt(0), 300, "older")), http.StatusNoContent)
	if err := published.wait(t, other.PublicKey()); !errors.Is(err, pkarrclient.ErrNotMostRecent) {
		t.Fatalf("publish of an older packet: %v, want ErrNotMostRecent", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, body := a.get(other.PublicKey(), nil)
		wantStatus(t, resp, http.StatusOK)
		if bytes.Equal(body, newer.RelayPayload()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("A kept serving its older packet after the upstream said it holds a newer one")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestUpstreamDown(t *testing.T) {
	logs := &logCapture{}
	a, b, published := chainWatched(t, WithLogger(slog.New(logs)), WithPublishRetries(0, time.Second))
	b.srv.Close()
	sk := newSecretKey(t)
	p := sign(t, sk, tsAt(0), 300, "x")

	// Stored and answered; the publish fails afterwards, and the relay
	// itself keeps and serves the packet.
	resp, body := a.do(http.MethodPut, a.keyURL(sk.PublicKey()), bytes.NewReader(p.RelayPayload()), nil)
	wantStatus(t, resp, http.StatusNoContent)
	if err := published.wait(t, sk.PublicKey()); err == nil {
		t.Fatal("a publish to a dead upstream succeeded")
	}
	if bytes.Contains(body, []byte("127.0.0.1")) {
		t.Errorf("upstream error details leaked to the client: %q", body)
	}
	resp, _ = a.get(sk.PublicKey(), nil)
	wantStatus(t, resp, http.StatusOK)

	resp, _ = a.get(newSecretKey(t).PublicKey(), nil)
	wantStatus(t, resp, http.StatusBadGateway)
	if logs.count(slog.LevelWarn) < 2 {
		t.Errorf("upstream failures not logged: %s", logs.text())
	}
}

func TestUpstreamFarFutureNotCached(t *testing.T) {
	a, _, bStore, _ := chain(t)
	sk := newSecretKey(t)
	// Relay B's handler would refuse this PUT; a packet can still reach
	// an upstream's store some other way (another relay, the DHT).
	if _, err := bStore.Put(context.Background(), sign(t, sk, tsAt(time.Hour), 300, "x")); err != nil {
		t.Fatal(err)
	}
	resp, _ := a.get(sk.PublicKey(), nil)
	wantStatus(t, resp, http.StatusNotFound)
	if a.h.store.Len() != 0 {
		t.Error("a far-future upstream answer was cached")
	}
}

// lyingBackend answers every resolve with one packet, whatever the key, and
// reports a DHT node count on publish: what a broken upstream could do.
type lyingBackend struct {
	packet *pkarrclient.SignedPacket
	nodes  int

	mu   sync.Mutex
	gate chan struct{} // when set, publishes wait for it to close
}

// holdPublishes makes later publishes wait until the test ends.
func (l *lyingBackend) holdPublishes(t *testing.T) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gate = make(chan struct{})
	t.Cleanup(func() { close(l.gate) })
}

func (l *lyingBackend) Name() string { return "liar" }

func (l *lyingBackend) Publish(ctx context.Context, _ *pkarrclient.SignedPacket) (pkarrclient.PublishReceipt, error) {
	l.mu.Lock()
	gate := l.gate
	l.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return pkarrclient.PublishReceipt{}, ctx.Err()
		}
	}
	return pkarrclient.PublishReceipt{DHTNodes: l.nodes}, nil
}

func (l *lyingBackend) Resolve(context.Context, pkarrclient.Query) (*pkarrclient.SignedPacket, error) {
	return l.packet, nil
}

func TestUpstreamWrongKeyAndNodeCount(t *testing.T) {
	sk, other := newSecretKey(t), newSecretKey(t)
	liar := &lyingBackend{packet: sign(t, other, tsAt(0), 300, "x"), nodes: 7}
	logs := &logCapture{}
	published := make(publishWatch, 10)
	r := newRelay(t, NewMemoryStore(10), WithUpstream(liar), WithLogger(slog.New(logs)), published.option())
	resp, _ := r.get(sk.PublicKey(), nil)
	wantStatus(t, resp, http.StatusBadGateway)
	if r.h.store.Len() != 0 || logs.count(slog.LevelWarn) == 0 {
		t.Errorf("wrong-key answer: store %d, warnings %d", r.h.store.Len(), logs.count(slog.LevelWarn))
	}
	p := sign(t, sk, tsAt(0), 300, "x")
	wantStatus(t, r.putPacket(p), http.StatusNoContent)
	published.wait(t, sk.PublicKey())
	resp = r.putPacket(p)
	wantStatus(t, resp, http.StatusNoContent)
	wantHeader(t, resp, HeaderDHTStoredNodes, "7")
	// Another packet for the key, not published yet (the upstream holds
	// its publish): the count was for the last one.
	liar.holdPublishes(t)
	resp = r.putPacket(sign(t, sk, tsAt(time.Second), 300, "y"))
	wantStatus(t, resp, http.StatusNoContent)
	if v := resp.Header.Values(HeaderDHTStoredNodes); len(v) != 0 {
		t.Errorf("%s = %q for a packet not yet published", HeaderDHTStoredNodes, v)
	}
}
