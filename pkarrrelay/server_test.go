package pkarrrelay

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// runningServer is a Server serving on a loopback port.
type runningServer struct {
	srv    *Server
	url    string
	addr   string
	cancel context.CancelFunc
	done   chan error
}

func startServer(t *testing.T, h *Handler, opts ...ServerOption) *runningServer {
	t.Helper()
	srv, err := NewServer(h, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := srv.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rs := &runningServer{srv: srv, url: srv.URL(), addr: ln.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	go func() { rs.done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() { rs.stop(t) })
	return rs
}

// stop cancels the server's context and returns what Serve returned.
func (rs *runningServer) stop(t *testing.T) error {
	t.Helper()
	rs.cancel()
	select {
	case err, ok := <-rs.done:
		if ok {
			close(rs.done)
		}
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return after its context ended")
		return nil
	}
}

func newTestHandler(t *testing.T, store Store, opts ...Option) *Handler {
	t.Helper()
	all := append([]Option{WithWriteRateLimit(rate.Inf, 0), WithReadRateLimit(rate.Inf, 0)}, opts...)
	h, err := NewHandler(store, all...)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestServerCutsOffSlowLoris(t *testing.T) {
	h := newTestHandler(t, NewMemoryStore(10))
	// Read and Write are far longer than the drip below, so only
	// ReadHeader can end it early.
	rs := startServer(t, h, ServerTimeouts(Timeouts{ReadHeader: 200 * time.Millisecond, Read: time.Minute, Write: time.Minute}))
	conn, err := net.Dial("tcp", rs.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	closed := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, conn) // returns when the server hangs up
		closed <- err
	}()
	request := "GET / HTTP/1.1\r\nHost: relay\r\nX-Slow: " + strings.Repeat("a", 1000)
	// One byte every 20 ms would take 20 s to finish the headers.
	for i := 0; i < len(request); i++ {
		select {
		case <-closed:
			return // cut off while still sending headers
		case <-time.After(20 * time.Millisecond):
		}
		if _, err := conn.Write([]byte{request[i]}); err != nil {
			return // the server closed the connection
		}
	}
	t.Fatal("the server waited for a client that sent its headers one byte at a time")
}

func TestServerRejectsHugeHeaders(t *testing.T) {
	h := newTestHandler(t, NewMemoryStore(10))
	rs := startServer(t, h, ServerMaxHeaderBytes(1024))
	req, _ := http.NewRequest(http.MethodGet, rs.url+"/", nil)
	req.Header.Set("X-Big", strings.Repeat("b", 64<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("status %d, want 431", resp.StatusCode)
	}
}

// blockingStore holds every Get until released, so a test can keep a
// request in flight.
func blockingStore(inner Store) (store *funcStore, entered chan struct{}, release chan struct{}) {
	entered = make(chan struct{}, 10)
	release = make(chan struct{})
	store = &funcStore{Store: inner, get: func(ctx context.Context, key pkarrclient.PublicKey) (Record, error) {
		entered <- struct{}{}
		<-release
		return inner.Get(ctx, key)
	}}
	return store, entered, release
}

func TestServerGracefulShutdown(t *testing.T) {
	inner := NewMemoryStore(10)
	sk := newSecretKey(t)
	mustPut(t, inner, sign(t, sk, pkarrclient.TimestampFromTime(time.Now()), 300, "in flight"), PutStored)
	store, entered, release := blockingStore(inner)
	h := newTestHandler(t, store)
	rs := startServer(t, h)

	type result struct {
		code int
		body []byte
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get(rs.url + "/" + sk.PublicKey().String())
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		got <- result{resp.StatusCode, body, err}
	}()
	<-entered // the request is inside the handler

	rs.cancel()
	// Shutdown closes the listener first: new connections are refused
	// while the old request is still running.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", rs.addr, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the server kept accepting connections after shutdown began")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-rs.done:
		t.Fatalf("Serve returned (%v) while a request was in flight", err)
	case <-time.After(100 * time.Millisecond):
	}

	close(release)
	r := <-got
	if r.err != nil || r.code != http.StatusOK || len(r.body) == 0 {
		t.Fatalf("in-flight request: code %d, %d bytes, err %v", r.code, len(r.body), r.err)
	}
	if err := rs.stop(t); err != nil {
		t.Fatalf("Serve after a graceful shutdown: %v", err)
	}
}

func TestServerShutdownGraceExpires(t *testing.T) {
	store, entered, release := blockingStore(NewMemoryStore(10))
	defer close(release)
	h := newTestHandler(t, store)
	rs := startServer(t, h, ServerTimeouts(Timeouts{Shutdown: 100 * time.Millisecond}))
	clientErr := make(chan error, 1)
	go func() {
		resp, err := http.Get(rs.url + "/" + newSecretKey(t).PublicKey().String())
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		clientErr <- err
	}()
	<-entered
	err := rs.stop(t)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Serve = %v, want the grace period's deadline error", err)
	}
	if err := <-clientErr; err == nil {
		t.Error("the stuck request completed although its connection was closed")
	}
}

func TestServerMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := newTestHandler(t, NewMemoryStore(10), WithRegisterer(reg), WithWriteRateLimit(1, 2))
	rs := startServer(t, h)
	sk := newSecretKey(t)
	p := sign(t, sk, pkarrclient.TimestampFromTime(time.Now()), 300, "m")
	put := func(payload []byte) {
		req, _ := http.NewRequest(http.MethodPut, rs.url+"/"+sk.PublicKey().String(), bytes.NewReader(payload))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	put(p.RelayPayload())
	put([]byte("bad"))
	put(p.RelayPayload()) // rate limited
	resp, err := http.Get(rs.url + "/" + sk.PublicKey().String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	resp, err = http.Get(rs.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	for _, want := range []string{
		`pkarr_relay_requests_total{code="204",method="PUT"} 1`,
		`pkarr_relay_requests_total{code="400",method="PUT"} 1`,
		`pkarr_relay_requests_total{code="429",method="PUT"} 1`,
		`pkarr_relay_requests_total{code="200",method="GET"} 1`,
		`pkarr_relay_request_duration_seconds_bucket{method="GET",le=`,
		`pkarr_relay_packets_stored 1`,
		`pkarr_relay_put_outcomes_total{outcome="stored"} 1`,
		`pkarr_relay_put_outcomes_total{outcome="bad"} 1`,
		`pkarr_relay_put_outcomes_total{outcome="conflict"} 0`,
		`pkarr_relay_rate_limited_total{bucket="write"} 1`,
		`pkarr_relay_rate_limited_total{bucket="read"} 0`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// The metrics endpoint is not an API request.
	if !strings.Contains(string(body), "pkarr_relay_request_duration_seconds_count{method=\"GET\"} 1\n") {
		t.Error("/metrics requests were counted as API requests")
	}
}

func TestServerMetricsOptions(t *testing.T) {
	h := newTestHandler(t, NewMemoryStore(10), WithBasePath("/pkarr"))
	rs := startServer(t, h, ServerMetrics("/internal/metrics", nil))
	if !strings.HasSuffix(rs.url, "/pkarr") {
		t.Errorf("URL %s lacks the base path", rs.url)
	}
	root := strings.TrimSuffix(rs.url, "/pkarr")
	for path, want := range map[string]int{"/internal/metrics": 200, "/metrics": 404, "/pkarr": 200} {
		resp, err := http.Get(root + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}

	off := startServer(t, newTestHandler(t, NewMemoryStore(10)), ServerMetrics("", nil))
	resp, err := http.Get(off.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// With the API at "/", the path is an (invalid) key path.
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("disabled /metrics answered %d, want the API's 400", resp.StatusCode)
	}
}

func TestNewServerRejectsBadOptions(t *testing.T) {
	h := newTestHandler(t, NewMemoryStore(10), WithBasePath("/pkarr"))
	for name, opt := range map[string]ServerOption{
		"negative timeout":         ServerTimeouts(Timeouts{Read: -1}),
		"zero header bytes":        ServerMaxHeaderBytes(0),
		"relative metrics path":    ServerMetrics("metrics", nil),
		"metrics over index":       ServerMetrics("/pkarr", nil),
		"metrics over index slash": ServerMetrics("/pkarr/", nil),
	} {
		if _, err := NewServer(h, opt); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: %v, want ErrInvalidConfig", name, err)
		}
	}
	if _, err := NewServer(nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("nil handler: %v", err)
	}
	srv, err := NewServer(h, ServerTimeouts(Timeouts{Idle: time.Minute}))
	if err != nil {
		t.Fatal(err)
	}
	if srv.http.ReadHeaderTimeout != defaultTimeouts.ReadHeader || srv.http.IdleTimeout != time.Minute ||
		srv.http.MaxHeaderBytes != DefaultMaxHeaderBytes || srv.grace != defaultTimeouts.Shutdown {
		t.Errorf("timeouts not applied over the defaults: %+v", srv.http)
	}
}

// fakeListener reports an address and nothing else.
type fakeListener struct {
	net.Listener
	addr net.Addr
}

func (l fakeListener) Addr() net.Addr { return l.addr }

func TestServerURL(t *testing.T) {
	cases := []struct {
		base string
		addr net.Addr
		want string
	}{
		{"/", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}, "http://127.0.0.1:8080"},
		{"/pkarr", &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 80}, "http://192.0.2.1:80/pkarr"},
		{"/", &net.TCPAddr{IP: net.IPv4zero, Port: 1}, "http://127.0.0.1:1"},
		{"/", &net.TCPAddr{IP: net.IPv6unspecified, Port: 2}, "http://[::1]:2"},
		{"/", &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 3}, "http://[2001:db8::1]:3"},
		{"/", &net.UnixAddr{Name: "/tmp/relay.sock", Net: "unix"}, "http:///tmp/relay.sock"},
	}
	for _, tc := range cases {
		h := newTestHandler(t, NewMemoryStore(1), WithBasePath(tc.base))
		srv, err := NewServer(h)
		if err != nil {
			t.Fatal(err)
		}
		if srv.URL() != "" {
			t.Error("URL before Listen is not empty")
		}
		srv.setURL(fakeListener{addr: tc.addr})
		if got := srv.URL(); got != tc.want {
			t.Errorf("URL for %v under %q = %q, want %q", tc.addr, tc.base, got, tc.want)
		}
	}
}

func TestServerListenAndServe(t *testing.T) {
	h := newTestHandler(t, NewMemoryStore(10), WithVersion("test"))
	srv, err := NewServer(h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ListenAndServe(ctx, "127.0.0.1:0") }()
	deadline := time.Now().Add(10 * time.Second)
	for srv.URL() == "" {
		if time.Now().After(deadline) {
			t.Fatal("no URL")
		}
		time.Sleep(5 * time.Millisecond)
	}
	resp, err := http.Get(srv.URL() + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "version: test") {
		t.Errorf("index page %q", body)
	}
	http.DefaultClient.CloseIdleConnections()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("ListenAndServe: %v", err)
	}

	// A second server on a busy port fails at Listen.
	srv2, _ := NewServer(h)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	if err := srv2.ListenAndServe(context.Background(), busy.Addr().String()); err == nil {
		t.Error("ListenAndServe on a busy port succeeded")
	}
}

func TestServeFailingListener(t *testing.T) {
	srv, err := NewServer(newTestHandler(t, NewMemoryStore(1)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	err = srv.Serve(context.Background(), ln)
	if err == nil {
		t.Fatal("Serve on a closed listener returned nil")
	}
}
