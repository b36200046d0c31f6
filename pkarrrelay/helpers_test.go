package pkarrrelay

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/phrasemeet/discovery/pkarrclient"
	"golang.org/x/time/rate"
)

// TestMain fails the run if goroutines outlive the tests: every server,
// store flusher and connection the tests start must be stopped by them.
func TestMain(m *testing.M) {
	before := len(leakCandidates())
	code := m.Run()
	if code == 0 {
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
		deadline := time.Now().Add(10 * time.Second)
		leaked := leakCandidates()
		for len(leaked) > before && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			leaked = leakCandidates()
		}
		if len(leaked) > before {
			fmt.Fprintf(os.Stderr, "goroutine leak: %d goroutines before the tests, %d after:\n\n%s\n",
				before, len(leaked), strings.Join(leaked, "\n\n"))
			code = 1
		}
	}
	os.Exit(code)
}

// leakCandidates returns the stacks of all goroutines except the caller's
// and those the runtime or the test framework own (the signal loop that
// fuzzing starts, for one).
func leakCandidates() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for i, g := range strings.Split(string(buf), "\n\n") {
		if i == 0 || strings.Contains(g, "os/signal.signal_recv") || strings.Contains(g, "testing.(*F)") ||
			strings.Contains(g, "testing.runFuzz") {
			continue
		}
		out = append(out, g)
	}
	return out
}

// epoch is the fake clock's start: a fixed instant on a whole second.
var epoch = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func newSecretKey(t testing.TB) *pkarrclient.SecretKey {
	t.Helper()
	sk, err := pkarrclient.GenerateSecretKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return sk
}

// sign builds a packet with one TXT record.
func sign(t testing.TB, sk *pkarrclient.SecretKey, ts pkarrclient.Timestamp, ttl uint32, value string) *pkarrclient.SignedPacket {
	t.Helper()
	p, err := pkarrclient.NewBuilder().TXT("_test", ttl, value).Timestamp(ts).Sign(sk)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// tsAt returns the timestamp of the fake clock's start plus d.
func tsAt(d time.Duration) pkarrclient.Timestamp {
	return pkarrclient.TimestampFromTime(epoch.Add(d))
}

// rawPayload signs arbitrary DNS bytes, bypassing the builder, so tests can
// hand the relay hostile DNS under a valid signature.
func rawPayload(sk *pkarrclient.SecretKey, ts pkarrclient.Timestamp, dnsMsg []byte) []byte {
	out := sk.Sign(pkarrclient.SignableBytes(ts, dnsMsg))
	out = binary.BigEndian.AppendUint64(out, uint64(ts))
	return append(out, dnsMsg...)
}

// testRelay is a Handler on a real loopback HTTP server.
type testRelay struct {
	t      testing.TB
	h      *Handler
	srv    *httptest.Server
	clock  *clockwork.FakeClock
	client *http.Client
	base   string // server URL plus base path, no trailing slash
}

// newRelay starts a relay with a fake clock at epoch and no rate limits;
// opts come after those defaults and can override them.
func newRelay(t testing.TB, store Store, opts ...Option) *testRelay {
	t.Helper()
	clock := clockwork.NewFakeClockAt(epoch)
	all := append([]Option{
		WithClock(clock),
		WithWriteRateLimit(rate.Inf, 0),
		WithReadRateLimit(rate.Inf, 0),
	}, opts...)
	h, err := NewHandler(store, all...)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	// Cleanups run last-in first-out: the handler's background lookups
	// stop before the server does.
	t.Cleanup(func() { h.Close() })
	base := srv.URL
	if h.BasePath() != "/" {
		base += h.BasePath()
	}
	return &testRelay{t: t, h: h, srv: srv, clock: clock, client: srv.Client(), base: base}
}

func (r *testRelay) keyURL(key pkarrclient.PublicKey) string { return r.base + "/" + key.String() }

// do sends a request and returns the response with its body read.
func (r *testRelay) do(method, url string, body io.Reader, header http.Header) (*http.Response, []byte) {
	r.t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		r.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := r.client.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		r.t.Fatal(err)
	}
	return resp, b
}

func (r *testRelay) put(key pkarrclient.PublicKey, payload []byte) *http.Response {
	r.t.Helper()
	resp, _ := r.do(http.MethodPut, r.keyURL(key), bytes.NewReader(payload), nil)
	return resp
}

func (r *testRelay) putPacket(p *pkarrclient.SignedPacket) *http.Response {
	r.t.Helper()
	return r.put(p.PublicKey(), p.RelayPayload())
}

func (r *testRelay) get(key pkarrclient.PublicKey, header http.Header) (*http.Response, []byte) {
	r.t.Helper()
	return r.do(http.MethodGet, r.keyURL(key), nil, header)
}

func wantStatus(t testing.TB, resp *http.Response, want int) {
	t.Helper()
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, want)
	}
}

func wantHeader(t testing.TB, resp *http.Response, name, want string) {
	t.Helper()
	if got := resp.Header.Get(name); got != want {
		t.Errorf("%s %s: header %s = %q, want %q", resp.Request.Method, resp.Request.URL.Path, name, got, want)
	}
}

// storeKinds builds each Store implementation, for tests that must hold
// for all of them.
var storeKinds = []struct {
	name string
	open func(t testing.TB, capacity int) Store
}{
	{"memory", func(t testing.TB, capacity int) Store {
		s := NewMemoryStore(capacity)
		t.Cleanup(func() { s.Close() })
		return s
	}},
	{"bolt", func(t testing.TB, capacity int) Store {
		return openBolt(t, filepath.Join(t.TempDir(), "relay.db"), BoltMaxPackets(capacity))
	}},
}

func openBolt(t testing.TB, path string, opts ...BoltOption) *BoltStore {
	t.Helper()
	// Short batches keep the tests quick; a long flush interval makes
	// recency writes happen only where a test causes them.
	all := append([]BoltOption{BoltBatchDelay(2 * time.Millisecond), BoltRecencyFlushInterval(time.Hour)}, opts...)
	s, err := OpenBoltStore(path, all...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// funcStore lets a test replace single Store methods.
type funcStore struct {
	Store
	put func(ctx context.Context, p *pkarrclient.SignedPacket) (PutOutcome, error)
	get func(ctx context.Context, key pkarrclient.PublicKey) (Record, error)
}

func (s *funcStore) Put(ctx context.Context, p *pkarrclient.SignedPacket) (PutOutcome, error) {
	if s.put != nil {
		return s.put(ctx, p)
	}
	return s.Store.Put(ctx, p)
}

func (s *funcStore) Get(ctx context.Context, key pkarrclient.PublicKey) (Record, error) {
	if s.get != nil {
		return s.get(ctx, key)
	}
	return s.Store.Get(ctx, key)
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
