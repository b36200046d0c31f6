package pkarrclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

// testEpoch is a fixed packet timestamp (2025-01-01T00:00:00Z) so tests do
// not depend on the wall clock.
const testEpoch Timestamp = 1_735_689_600_000_000

// testTimeout bounds anything that waits on real time in these tests. It is
// generous on purpose: it only catches hangs, it never measures speed.
const testTimeout = 30 * time.Second

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func newSecretKey(t testing.TB) *SecretKey {
	t.Helper()
	sk, err := GenerateSecretKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return sk
}

// txtPacket signs a packet with one TXT record "_test" of the given TTL.
func txtPacket(t testing.TB, sk *SecretKey, ts Timestamp, value string, ttl uint32) *SignedPacket {
	t.Helper()
	p, err := NewBuilder().TXT("_test", ttl, value).Timestamp(ts).Sign(sk)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func txtOf(p *SignedPacket) string {
	if p == nil {
		return "<nil>"
	}
	return strings.Join(p.TXT("_test"), ",")
}

// loopbackHTTPClient returns an HTTP client that refuses to dial anything but
// a loopback address and ignores proxy settings, so no test can reach a
// public relay even by mistake.
func loopbackHTTPClient(t testing.TB, wrap func(http.RoundTripper) http.RoundTripper) *http.Client {
	t.Helper()
	var d net.Dialer
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			ip, err := netip.ParseAddr(host)
			if err != nil || !ip.IsLoopback() {
				t.Errorf("test tried to dial non-loopback address %s", addr)
				return nil, fmt.Errorf("test: refusing to dial %s", addr)
			}
			return d.DialContext(ctx, network, addr)
		},
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
	}
	t.Cleanup(tr.CloseIdleConnections)
	var rt http.RoundTripper = tr
	if wrap != nil {
		rt = wrap(tr)
	}
	return &http.Client{Transport: rt}
}

// newTestRelay returns a Relay for url using a loopback-only HTTP client and
// millisecond backoff; opts come last and may override either.
func newTestRelay(t testing.TB, url string, opts ...RelayOption) *Relay {
	t.Helper()
	base := []RelayOption{
		RelayHTTPClient(loopbackHTTPClient(t, nil)),
		RelayBackoff(time.Millisecond, 4*time.Millisecond),
	}
	r, err := NewRelay(url, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// countingServer serves h on 127.0.0.1 and counts the requests it received.
func countingServer(t testing.TB, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// backendError asserts that err is a *BackendError for relay r and op, with
// the given status, and returns it.
func backendError(t *testing.T, err error, r *Relay, op string, status int) *BackendError {
	t.Helper()
	var be *BackendError
	if !errors.As(err, &be) {
		t.Fatalf("error %v (%T) is not a *BackendError", err, err)
	}
	if be.Backend != r.Name() || be.Op != op || be.Status != status {
		t.Fatalf("BackendError{%q, %q, %d}, want {%q, %q, %d}", be.Backend, be.Op, be.Status, r.Name(), op, status)
	}
	return be
}

func TestDefaultRelays(t *testing.T) {
	a := DefaultRelays()
	if len(a) != 3 {
		t.Fatalf("DefaultRelays() = %v", a)
	}
	for _, u := range a {
		if _, err := NewRelay(u); err != nil {
			t.Errorf("NewRelay(%q): %v", u, err)
		}
	}
	a[0] = "mutated"
	if DefaultRelays()[0] == "mutated" {
		t.Fatal("DefaultRelays returns a shared slice")
	}
}

func TestNewRelayURL(t *testing.T) {
	for _, tc := range []struct{ in, url, name string }{
		{"https://dns.iroh.link/pkarr", "https://dns.iroh.link/pkarr", "https://dns.iroh.link/pkarr"},
		{"https://dns.iroh.link/pkarr/", "https://dns.iroh.link/pkarr", "https://dns.iroh.link/pkarr"},
		{"http://127.0.0.1:8080//", "http://127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"HTTPS://relay.example", "https://relay.example", "https://relay.example"},
		{"https://user:secret@relay.example/p", "https://user:secret@relay.example/p", "https://user:xxxxx@relay.example/p"},
	} {
		r, err := NewRelay(tc.in)
		if err != nil {
			t.Errorf("NewRelay(%q): %v", tc.in, err)
			continue
		}
		if r.URL() != tc.url || r.Name() != tc.name || r.String() != tc.name {
			t.Errorf("NewRelay(%q): URL %q Name %q, want %q %q", tc.in, r.URL(), r.Name(), tc.url, tc.name)
		}
	}
	for _, in := range []string{"", "relay.example", "ftp://relay.example", "https://", "https://relay.example/?x=1",
		"https://relay.example/p#frag", "https://relay.example/p?", "://bad", "http://[::1"} {
		if _, err := NewRelay(in); err == nil {
			t.Errorf("NewRelay(%q) succeeded", in)
		}
	}
}

func TestRelayOptionsValidate(t *testing.T) {
	for name, opt := range map[string]RelayOption{
		"nil client":      RelayHTTPClient(nil),
		"negative timout": RelayTimeout(-1),
		"negative retry":  RelayRetries(-1),
		"zero backoff":    RelayBackoff(0, time.Second),
		"max < base":      RelayBackoff(time.Second, time.Millisecond),
		"nil clock":       RelayClock(nil),
		"negative wait":   RelayMaxRetryAfterWait(-time.Second),
	} {
		if _, err := NewRelay("http://127.0.0.1:1", opt); err == nil {
			t.Errorf("%s: NewRelay succeeded", name)
		}
	}
	if _, err := NewRelay("http://127.0.0.1:1", nil, RelayTimeout(0), RelayRetries(0), RelayUserAgent("")); err != nil {
		t.Errorf("valid options: %v", err)
	}
}

func TestRelayPublishRequest(t *testing.T) {
	sk := newSecretKey(t)
	p := txtPacket(t, sk, testEpoch, "hello", 300)
	var got struct {
		method, path, ctype, ua string
		body                    []byte
	}
	srv, n := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		got.method, got.path = r.Method, r.URL.Path
		got.ctype, got.ua = r.Header.Get("Content-Type"), r.Header.Get("User-Agent")
		got.body, _ = io.ReadAll(r.Body)
		w.Header().Set(headerDHTStoredNodes, "7")
		w.WriteHeader(http.StatusNoContent)
	})
	r := newTestRelay(t, srv.URL+"/pkarr/", RelayUserAgent("test-agent/1"))
	receipt, err := r.Publish(testContext(t), p)
	if err != nil {
		t.Fatal(err)
	}
	if receipt.DHTNodes != 7 {
		t.Errorf("DHTNodes = %d, want 7", receipt.DHTNodes)
	}
	if n.Load() != 1 || got.method != http.MethodPut || got.path != "/pkarr/"+sk.PublicKey().String() {
		t.Errorf("%d requests, last %s %s", n.Load(), got.method, got.path)
	}
	if got.ctype != RelayContentType || got.ua != "test-agent/1" {
		t.Errorf("Content-Type %q, User-Agent %q", got.ctype, got.ua)
	}
	if !bytes.Equal(got.body, p.RelayPayload()) {
		t.Errorf("body is not the relay payload")
	}
}

func TestRelayPublishStatus(t *testing.T) {
	sk := newSecretKey(t)
	p := txtPacket(t, sk, testEpoch, "v", 300)
	for _, tc := range []struct {
		status   int
		header   string // Pkarr-Dht-Stored-Nodes
		body     string
		want     error // nil: success
		requests int64
		nodes    int
		inError  string
	}{
		{status: 204, requests: 1},
		{status: 200, header: "12", requests: 1, nodes: 12},
		{status: 201, header: "not-a-number", requests: 1},
		{status: 204, header: "-4", requests: 1},
		{status: 409, body: "newer exists", want: ErrNotMostRecent, requests: 1, inError: "newer exists"},
		{status: 400, body: "bad signature\nsecond line must not appear", want: ErrBadRequest, requests: 1, inError: `"bad signature"`},
		{status: 413, want: ErrBadRequest, requests: 1},
		{status: 404, want: ErrBadRequest, requests: 1},
		{status: 418, body: "\x00\x1b[31mI'm a teapot", want: ErrBadRequest, requests: 1, inError: `"[31mI'm a teapot"`},
		{status: 428, want: ErrNotMostRecent, requests: 1}, // v4-6 relays: concurrent write
		{status: 300, want: ErrInvalidResponse, requests: 1},
		{status: 408, want: ErrUnavailable, requests: 3},
		{status: 500, body: "boom", want: ErrUnavailable, requests: 3, inError: "boom"},
		{status: 502, want: ErrUnavailable, requests: 3},
		{status: 503, want: ErrUnavailable, requests: 3},
		{status: 429, want: ErrRateLimited, requests: 1},
	} {
		t.Run(strconv.Itoa(tc.status)+"/"+tc.header, func(t *testing.T) {
			srv, n := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
				if tc.header != "" {
					w.Header().Set(headerDHTStoredNodes, tc.header)
				}
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			})
			r := newTestRelay(t, srv.URL)
			receipt, err := r.Publish(testContext(t), p)
			if got := n.Load(); got != tc.requests {
				t.Errorf("%d requests, want %d", got, tc.requests)
			}
			if tc.want == nil {
				if err != nil || receipt.DHTNodes != tc.nodes {
					t.Fatalf("receipt %+v, err %v; want %d nodes", receipt, err, tc.nodes)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			backendError(t, err, r, OpPublish, tc.status)
			if tc.inError != "" && !strings.Contains(err.Error(), tc.inError) {
				t.Errorf("error %q does not contain %q", err, tc.inError)
			}
			if strings.Contains(err.Error(), "second line") {
				t.Errorf("error %q quotes more than the first line", err)
			}
			if tc.status == 429 {
				var rl *RateLimitError
				if !errors.As(err, &rl) {
					t.Fatalf("%v is not a *RateLimitError", err)
				}
			}
		})
	}
}

func TestRelayResolveStatus(t *testing.T) {
	sk := newSecretKey(t)
	other := newSecretKey(t)
	p := txtPacket(t, sk, testEpoch, "v", 300)
	payload := p.RelayPayload()
	forged := bytes.Clone(payload)
	forged[10] ^= 1 // inside the signature
	otherPayload := txtPacket(t, other, testEpoch, "other", 300).RelayPayload()
	garbage := bytes.Repeat([]byte{0xA5}, 300)

	for _, tc := range []struct {
		name     string
		status   int
		body     []byte
		want     error // nil: success
		also     error
		requests int64
	}{
		{name: "ok", status: 200, body: payload, requests: 1},
		{name: "404", status: 404, body: []byte("not found"), want: ErrNotFound, requests: 1},
		{name: "304", status: 304, want: ErrNotFound, requests: 1},
		{name: "empty 200", status: 200, want: ErrNotFound, requests: 1},
		{name: "empty 204", status: 204, want: ErrNotFound, requests: 1},
		{name: "garbage", status: 200, body: garbage, want: ErrInvalidResponse, also: ErrInvalidPacket, requests: 1},
		{name: "truncated", status: 200, body: payload[:len(payload)-5], want: ErrInvalidResponse, also: ErrInvalidPacket, requests: 1},
		{name: "short", status: 200, body: payload[:20], want: ErrInvalidResponse, also: ErrPacketTooShort, requests: 1},
		{name: "forged", status: 200, body: forged, want: ErrInvalidResponse, also: ErrBadSignature, requests: 1},
		{name: "other key", status: 200, body: otherPayload, want: ErrInvalidResponse, also: ErrBadSignature, requests: 1},
		{name: "1073 bytes", status: 200, body: bytes.Repeat([]byte{1}, MaxPayloadSize+1), want: ErrInvalidResponse, requests: 1},
		{name: "400", status: 400, body: []byte("bad key"), want: ErrBadRequest, requests: 1},
		{name: "429", status: 429, want: ErrRateLimited, requests: 1},
		{name: "500", status: 500, want: ErrUnavailable, requests: 3},
		{name: "408", status: 408, want: ErrUnavailable, requests: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, n := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodGet || r.URL.Path != "/"+sk.PublicKey().String() {
					t.Errorf("request %s %s", r.Method, r.URL.Path)
				}
				if h := r.Header.Get("If-Modified-Since"); h != "" {
					t.Errorf("If-Modified-Since sent: %q", h)
				}
				w.WriteHeader(tc.status)
				w.Write(tc.body)
			})
			r := newTestRelay(t, srv.URL)
			got, err := r.Resolve(testContext(t), Query{Key: sk.PublicKey(), NewerThan: testEpoch - 1})
			if c := n.Load(); c != tc.requests {
				t.Errorf("%d requests, want %d", c, tc.requests)
			}
			if tc.want == nil {
				if err != nil || !got.Equal(p) {
					t.Fatalf("got %v, %v; want %v", got, err, p)
				}
				return
			}
			if got != nil || !errors.Is(err, tc.want) {
				t.Fatalf("got %v, %v; want error %v", got, err, tc.want)
			}
			if tc.also != nil && !errors.Is(err, tc.also) {
				t.Errorf("err %v does not match %v", err, tc.also)
			}
			backendError(t, err, r, OpResolve, tc.status)
		})
	}
}

func TestRelayResolveFreshHeader(t *testing.T) {
	sk := newSecretKey(t)
	var cc []string
	var mu sync.Mutex
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		cc = append(cc, r.Header.Get("Cache-Control"))
		mu.Unlock()
		http.NotFound(w, r)
	})
	r := newTestRelay(t, srv.URL)
	ctx := testContext(t)
	r.Resolve(ctx, Query{Key: sk.PublicKey()})
	r.Resolve(ctx, Query{Key: sk.PublicKey(), Fresh: true})
	if len(cc) != 2 || cc[0] != "" || cc[1] != "no-cache" {
		t.Fatalf("Cache-Control headers %q, want [\"\" \"no-cache\"]", cc)
	}
}

// countingBody counts the bytes the client read from a response body.
type countingTransport struct {
	base http.RoundTripper
	read *atomic.Int64
}

type countingBody struct {
	io.ReadCloser
	read *atomic.Int64
}

func (b countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.read.Add(int64(n))
	return n, err
}

func (c countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(req)
	if err == nil {
		resp.Body = countingBody{resp.Body, c.read}
	}
	return resp, err
}

func TestRelayResolveHostileStream(t *testing.T) {
	sk := newSecretKey(t)
	const tenMB = 10 << 20
	chunk := bytes.Repeat([]byte{0x5A}, 32<<10)

	t.Run("10MB with Content-Length", func(t *testing.T) {
		srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(tenMB))
			for i := 0; i < tenMB/len(chunk); i++ {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		})
		var read atomic.Int64
		hc := loopbackHTTPClient(t, func(rt http.RoundTripper) http.RoundTripper { return countingTransport{rt, &read} })
		r := newTestRelay(t, srv.URL, RelayHTTPClient(hc))
		_, err := r.Resolve(testContext(t), Query{Key: sk.PublicKey()})
		if !errors.Is(err, ErrInvalidResponse) {
			t.Fatalf("err = %v, want ErrInvalidResponse", err)
		}
		if n := read.Load(); n != 0 {
			t.Errorf("read %d body bytes; the Content-Length alone should reject it", n)
		}
	})

	t.Run("endless chunked", func(t *testing.T) {
		done := make(chan int64, 1)
		srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
			var written int64
			defer func() { done <- written }()
			f := w.(http.Flusher)
			for written < 1<<30 { // 1 GiB: far more than socket buffers hold
				n, err := w.Write(chunk)
				written += int64(n)
				if err != nil {
					return
				}
				f.Flush()
			}
		})
		var read atomic.Int64
		hc := loopbackHTTPClient(t, func(rt http.RoundTripper) http.RoundTripper { return countingTransport{rt, &read} })
		r := newTestRelay(t, srv.URL, RelayHTTPClient(hc))
		_, err := r.Resolve(testContext(t), Query{Key: sk.PublicKey()})
		if !errors.Is(err, ErrInvalidResponse) {
			t.Fatalf("err = %v, want ErrInvalidResponse", err)
		}
		if n := read.Load(); n > MaxPayloadSize+1 {
			t.Errorf("read %d body bytes, want at most %d", n, MaxPayloadSize+1)
		}
		select {
		case written := <-done:
			if written >= 1<<30 {
				t.Errorf("server wrote the whole stream: the client kept reading")
			}
		case <-time.After(testTimeout):
			t.Fatal("server still writing: the connection was not closed")
		}
	})
}

func TestRelayResolveConnectionDroppedMidBody(t *testing.T) {
	sk := newSecretKey(t)
	srv, n := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "500")
		w.WriteHeader(200)
		w.Write(make([]byte, 100))
		w.(http.Flusher).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	r := newTestRelay(t, srv.URL)
	_, err := r.Resolve(testContext(t), Query{Key: sk.PublicKey()})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	backendError(t, err, r, OpResolve, 200)
	if n.Load() != 3 {
		t.Errorf("%d requests, want 3 (a broken body is retried)", n.Load())
	}
}

func TestRelayHangingTimesOut(t *testing.T) {
	sk := newSecretKey(t)
	srv, n := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
	r := newTestRelay(t, srv.URL, RelayTimeout(50*time.Millisecond), RelayRetries(1))
	_, err := r.Resolve(testContext(t), Query{Key: sk.PublicKey()})
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrUnavailable from a timeout", err)
	}
	backendError(t, err, r, OpResolve, 0)
	if n.Load() != 2 {
		t.Errorf("%d requests, want 2", n.Load())
	}
}

func TestRelayCallerCancel(t *testing.T) {
	sk := newSecretKey(t)
	arrived := make(chan struct{}, 8)
	srv, n := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // until the body is read, the server cannot see the client leave
		arrived <- struct{}{}
		<-r.Context().Done()
	})
	r := newTestRelay(t, srv.URL, RelayTimeout(0))
	ctx, cancel := context.WithCancel(testContext(t))
	go func() {
		<-arrived
		cancel()
	}()
	_, err := r.Publish(ctx, txtPacket(t, sk, testEpoch, "v", 300))
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want context.Canceled and not ErrUnavailable", err)
	}
	if n.Load() != 1 {
		t.Errorf("%d requests after cancel, want 1", n.Load())
	}
	// A call with a context already done makes no request.
	if _, err := r.Resolve(ctx, Query{Key: sk.PublicKey()}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if n.Load() != 1 {
		t.Errorf("%d requests, want 1", n.Load())
	}
}

func TestRelayRetry500Twice(t *testing.T) {
	sk := newSecretKey(t)
	p := txtPacket(t, sk, testEpoch, "v", 300)
	for _, op := range []string{OpPublish, OpResolve} {
		t.Run(op, func(t *testing.T) {
			var calls atomic.Int64
			srv, n := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				if calls.Add(1) <= 2 {
					http.Error(w, "try again", http.StatusInternalServerError)
					return
				}
				if r.Method == http.MethodPut {
					w.WriteHeader(http.StatusNoContent)
					return
				}
				w.Write(p.RelayPayload())
			})
			r := newTestRelay(t, srv.URL)
			var err error
			if op == OpPublish {
				_, err = r.Publish(testContext(t), p)
			} else {
				var got *SignedPacket
				got, err = r.Resolve(testContext(t), Query{Key: sk.PublicKey()})
				if err == nil && !got.Equal(p) {
					t.Fatal("wrong packet")
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			if n.Load() != 3 {
				t.Errorf("%d requests, want 3", n.Load())
			}
		})
	}
}

func TestRelayNoRetries(t *testing.T) {
	sk := newSecretKey(t)
	srv, n := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	r := newTestRelay(t, srv.URL, RelayRetries(0))
	if _, err := r.Resolve(testContext(t), Query{Key: sk.PublicKey()}); !errors.Is(err, ErrUnavailable) {
		t.Fatal(err)
	}
	if n.Load() != 1 {
		t.Errorf("%d requests, want 1", n.Load())
	}
}

func TestRelayClosedListener(t *testing.T) {
	sk := newSecretKey(t)
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	r := newTestRelay(t, url)
	_, err := r.Publish(testContext(t), txtPacket(t, sk, testEpoch, "v", 300))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	backendError(t, err, r, OpPublish, 0)
	_, err = r.Resolve(testContext(t), Query{Key: sk.PublicKey()})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
}

func TestRelayPublishNil(t *testing.T) {
	r := newTestRelay(t, "http://127.0.0.1:1")
	if _, err := r.Publish(testContext(t), nil); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("err = %v", err)
	}
}

func TestRelayBackoffGrowsAndCaps(t *testing.T) {
	r, err := NewRelay("http://127.0.0.1:1", RelayBackoff(100*time.Millisecond, 2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		n      int
		lo, hi time.Duration
	}{
		{0, 50 * time.Millisecond, 100 * time.Millisecond},
		{1, 100 * time.Millisecond, 200 * time.Millisecond},
		{2, 200 * time.Millisecond, 400 * time.Millisecond},
		{4, 800 * time.Millisecond, 1600 * time.Millisecond},
		{5, time.Second, 2 * time.Second},
		{60, time.Second, 2 * time.Second},
	} {
		for range 50 {
			if d := r.backoff(tc.n); d < tc.lo || d > tc.hi {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", tc.n, d, tc.lo, tc.hi)
			}
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"2", 2 * time.Second},
		{" 120 ", 2 * time.Minute},
		{"0", 0},
		{"-5", 0},
		{"1.5", 0},
		{"soon", 0},
		{"3601", time.Hour},
		{"99999999999999999999999", time.Hour},
		{"99999999999999999999999x", 0},
		{"18446744073709551616 seconds", 0},
		{"3600abc", 0},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{now.Add(48 * time.Hour).Format(http.TimeFormat), time.Hour},
		{now.Add(90 * time.Second).Format(time.RFC850), 90 * time.Second},
	} {
		if got := parseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestRelayMessage(t *testing.T) {
	long := strings.Repeat("é", 200)
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"  \n\nbad key\nmore", "bad key"},
		{"a\tb\x00c\x7f", "abc"},
		{"\xff\xfeoops", "\uFFFDoops"},
		{"\x01\x02\r\nreal message", "real message"},
	} {
		if got := relayMessage(strings.NewReader(tc.in)); got != tc.want {
			t.Errorf("relayMessage(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	got := relayMessage(strings.NewReader(long))
	if len(got) > maxMessageLen+len("…") || !strings.HasSuffix(got, "…") || !strings.HasPrefix(got, "éé") {
		t.Errorf("long message not truncated cleanly: %q (%d bytes)", got, len(got))
	}
}

// rateLimitedServer answers 429 (with retryAfter, when not empty) to the
// first `limited` requests and success afterwards.
func rateLimitedServer(t *testing.T, limited int64, retryAfter string, p *SignedPacket) (*httptest.Server, *atomic.Int64) {
	return countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if limited > 0 {
			limited--
			if retryAfter != "" {
				w.Header().Set("Retry-After", retryAfter)
			}
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return
		}
		if r.Method == http.MethodPut {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Write(p.RelayPayload())
	})
}

func rateLimitError(t *testing.T, err error) *RateLimitError {
	t.Helper()
	var rl *RateLimitError
	if !errors.Is(err, ErrRateLimited) || !errors.As(err, &rl) {
		t.Fatalf("err = %v, want a *RateLimitError", err)
	}
	return rl
}

func TestRelayRateLimitRetryAfter(t *testing.T) {
	sk := newSecretKey(t)
	p := txtPacket(t, sk, testEpoch, "v", 300)
	clock := clockwork.NewFakeClockAt(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	srv, n := rateLimitedServer(t, 1, "2", p)
	r := newTestRelay(t, srv.URL, RelayClock(clock))
	ctx := testContext(t)

	_, err := r.Publish(ctx, p)
	if rl := rateLimitError(t, err); rl.RetryAfter != 2*time.Second {
		t.Fatalf("RetryAfter = %v, want 2s", rl.RetryAfter)
	}
	backendError(t, err, r, OpPublish, http.StatusTooManyRequests)
	if n.Load() != 1 {
		t.Fatalf("%d requests, want 1", n.Load())
	}

	// Right away: publishing fails fast, without touching the network.
	_, err = r.Publish(ctx, p)
	if rl := rateLimitError(t, err); rl.RetryAfter != 2*time.Second {
		t.Errorf("RetryAfter = %v, want 2s", rl.RetryAfter)
	}
	backendError(t, err, r, OpPublish, 0)
	clock.Advance(1500 * time.Millisecond)
	_, err = r.Publish(ctx, p)
	if rl := rateLimitError(t, err); rl.RetryAfter != 500*time.Millisecond {
		t.Errorf("RetryAfter = %v, want 500ms", rl.RetryAfter)
	}
	if n.Load() != 1 {
		t.Fatalf("%d requests while rate limited, want 1", n.Load())
	}
	// The memory is per operation: resolves were never refused.
	if got, err := r.Resolve(ctx, Query{Key: sk.PublicKey()}); err != nil || !got.Equal(p) {
		t.Fatalf("resolve during the publish window: %v", err)
	}

	clock.Advance(500 * time.Millisecond)
	if _, err := r.Publish(ctx, p); err != nil {
		t.Fatalf("publish after the window: %v", err)
	}
	if n.Load() != 3 {
		t.Fatalf("%d requests, want 3", n.Load())
	}
}

func TestRelayRateLimitHTTPDate(t *testing.T) {
	sk := newSecretKey(t)
	p := txtPacket(t, sk, testEpoch, "v", 300)
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := clockwork.NewFakeClockAt(now)
	srv, _ := rateLimitedServer(t, 1, now.Add(30*time.Second).Format(http.TimeFormat), p)
	r := newTestRelay(t, srv.URL, RelayClock(clock))
	_, err := r.Resolve(testContext(t), Query{Key: sk.PublicKey()})
	if rl := rateLimitError(t, err); rl.RetryAfter != 30*time.Second {
		t.Fatalf("RetryAfter = %v, want 30s", rl.RetryAfter)
	}
}

func TestRelayRateLimitOwnBackoff(t *testing.T) {
	sk := newSecretKey(t)
	p := txtPacket(t, sk, testEpoch, "v", 300)
	clock := clockwork.NewFakeClock()
	srv, n := rateLimitedServer(t, 9, "", p)
	r := newTestRelay(t, srv.URL, RelayClock(clock))
	ctx := testContext(t)
	want := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60}
	for i, w := range want {
		w *= time.Second
		_, err := r.Resolve(ctx, Query{Key: sk.PublicKey()})
		if rl := rateLimitError(t, err); rl.RetryAfter != w {
			t.Fatalf("429 #%d: RetryAfter = %v, want %v", i+1, rl.RetryAfter, w)
		}
		// Still inside the window: no request.
		_, err = r.Resolve(ctx, Query{Key: sk.PublicKey()})
		rateLimitError(t, err)
		if n.Load() != int64(i+1) {
			t.Fatalf("%d requests, want %d", n.Load(), i+1)
		}
		clock.Advance(w)
	}
	// "Retry-After: 0" is no usable value: our own backoff applies.
	_, err := r.Resolve(ctx, Query{Key: sk.PublicKey()}) // 9th 429
	rateLimitError(t, err)
	clock.Advance(time.Hour)
	if _, err := r.Resolve(ctx, Query{Key: sk.PublicKey()}); err != nil {
		t.Fatal(err)
	}
	// A success resets the backoff.
	r.noteRateLimit(OpResolve, 0)
	if got := r.rateLimitRemaining(OpResolve); got != time.Second {
		t.Fatalf("after a success the next backoff is %v, want 1s", got)
	}
}

func TestRelayRateLimitZeroRetryAfter(t *testing.T) {
	sk := newSecretKey(t)
	p := txtPacket(t, sk, testEpoch, "v", 300)
	clock := clockwork.NewFakeClock()
	srv, n := rateLimitedServer(t, 5, "0", p)
	r := newTestRelay(t, srv.URL, RelayClock(clock))
	_, err := r.Resolve(testContext(t), Query{Key: sk.PublicKey()})
	if rl := rateLimitError(t, err); rl.RetryAfter != time.Second {
		t.Fatalf("RetryAfter = %v, want our own 1s", rl.RetryAfter)
	}
	_, err = r.Resolve(testContext(t), Query{Key: sk.PublicKey()})
	rateLimitError(t, err)
	if n.Load() != 1 {
		t.Fatalf("%d requests: Retry-After 0 must not cause a hot loop", n.Load())
	}
}

func TestRelayRateLimitWaitOnce(t *testing.T) {
	sk := newSecretKey(t)
	p := txtPacket(t, sk, testEpoch, "v", 300)
	clock := clockwork.NewFakeClock()
	srv, n := rateLimitedServer(t, 1, "2", p)
	r := newTestRelay(t, srv.URL, RelayClock(clock), RelayMaxRetryAfterWait(5*time.Second))
	ctx := testContext(t)
	type result struct {
		p   *SignedPacket
		err error
	}
	done := make(chan result, 1)
	go func() {
		p, err := r.Resolve(ctx, Query{Key: sk.PublicKey()})
		done <- result{p, err}
	}()
	if err := clock.BlockUntilContext(ctx, 1); err != nil { // the call sleeps on the clock
		t.Fatal(err)
	}
	if n.Load() != 1 {
		t.Fatalf("%d requests before the wait, want 1", n.Load())
	}
	clock.Advance(2 * time.Second)
	res := <-done
	if res.err != nil || !res.p.Equal(p) {
		t.Fatalf("got %v, %v", res.p, res.err)
	}
	if n.Load() != 2 {
		t.Fatalf("%d requests, want 2", n.Load())
	}
}

func TestRelayRateLimitWaitTooLong(t *testing.T) {
	sk := newSecretKey(t)
	p := txtPacket(t, sk, testEpoch, "v", 300)
	clock := clockwork.NewFakeClock()
	srv, n := rateLimitedServer(t, 3, "10", p)
	r := newTestRelay(t, srv.URL, RelayClock(clock), RelayMaxRetryAfterWait(5*time.Second))
	// The wait exceeds RelayMaxRetryAfterWait: fail at once.
	_, err := r.Resolve(testContext(t), Query{Key: sk.PublicKey()})
	if rl := rateLimitError(t, err); rl.RetryAfter != 10*time.Second {
		t.Fatalf("RetryAfter = %v", rl.RetryAfter)
	}
	clock.Advance(7 * time.Second)
	// 3 s left fits the maximum but not the context's deadline: fail at once.
	ctx, cancel := context.WithTimeout(testContext(t), time.Second)
	defer cancel()
	_, err = r.Resolve(ctx, Query{Key: sk.PublicKey()})
	if rl := rateLimitError(t, err); rl.RetryAfter != 3*time.Second {
		t.Fatalf("RetryAfter = %v", rl.RetryAfter)
	}
	if n.Load() != 1 {
		t.Fatalf("%d requests, want 1", n.Load())
	}
	// Waiting is cancellable.
	ctx2, cancel2 := context.WithCancel(testContext(t))
	done := make(chan error, 1)
	go func() {
		_, err := r.Resolve(ctx2, Query{Key: sk.PublicKey()})
		done <- err
	}()
	if err := clock.BlockUntilContext(testContext(t), 1); err != nil {
		t.Fatal(err)
	}
	cancel2()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}
