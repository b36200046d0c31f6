package pkarrrelay

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/phrasemeet/discovery/pkarrclient"
	"golang.org/x/time/rate"
)

// rawGet sends one GET on c and reads its answer.
func rawGet(t *testing.T, c net.Conn, br *bufio.Reader, path string) *http.Response {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: relay\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// TestServerClosesConnectionAfter429: a client told to slow down does not
// keep its connection parked for the idle timeout; the relay closes it
// after the answer.
func TestServerClosesConnectionAfter429(t *testing.T) {
	clock := clockwork.NewFakeClockAt(epoch)
	h, err := NewHandler(NewMemoryStore(10), WithClock(clock), WithReadRateLimit(1, 1), WithWriteRateLimit(rate.Inf, 0))
	if err != nil {
		t.Fatal(err)
	}
	rs := startServer(t, h, ServerTimeouts(Timeouts{Idle: time.Hour}))
	c, err := net.Dial("tcp", rs.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	key := "/" + newSecretKey(t).PublicKey().String()
	if resp := rawGet(t, c, br, key); resp.StatusCode != http.StatusNotFound || resp.Close {
		t.Fatalf("first GET: %d, close %v; want 404 on a kept-alive connection", resp.StatusCode, resp.Close)
	}
	resp := rawGet(t, c, br, key)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("second GET: %d, want 429", resp.StatusCode)
	}
	if !resp.Close {
		t.Error("429 without Connection: close")
	}
	// The server hangs up rather than waiting an hour for the next request.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("after a 429 the connection stays open: read %v, want EOF", err)
	}
}

// dialFrom opens a TCP connection to addr from the loopback address from
// (127.x.y.z), so one test can be several clients.
func dialFrom(from, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 10 * time.Second}
	return d.Dial("tcp", addr)
}

// clientFrom is an HTTP client whose connections come from the loopback
// address from.
func clientFrom(from string) *http.Client {
	return &http.Client{
		Timeout: 20 * time.Second,
		Transport: &http.Transport{DialContext: (&net.Dialer{
			LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)},
		}).DialContext},
	}
}

// holdConns opens n connections from from, sends one request on each
// when request is set, and returns those still open.
func holdConns(t *testing.T, from, addr string, n int, request bool) []net.Conn {
	t.Helper()
	var (
		mu   sync.Mutex
		held []net.Conn
		wg   sync.WaitGroup
	)
	for range n {
		wg.Go(func() {
			c, err := dialFrom(from, addr)
			if err != nil {
				return
			}
			if request {
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: relay\r\n\r\n"); err != nil {
					c.Close()
					return
				}
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					c.Close()
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				c.SetDeadline(time.Time{})
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		})
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	return held
}

// open counts the connections in held that the server has not closed.
func open(held []net.Conn) int {
	n := 0
	for _, c := range held {
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		var b [1]byte
		_, err := c.Read(b[:])
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			n++
		}
	}
	return n
}

// TestServerConnectionLimitPerIP: one address holds at most its share of
// connections, whether it leaves them idle after a request or never sends
// one; a client from another address is served meanwhile.
func TestServerConnectionLimitPerIP(t *testing.T) {
	for _, request := range []bool{true, false} {
		name := "idle after a request"
		if !request {
			name = "never a request"
		}
		t.Run(name, func(t *testing.T) {
			h := newTestHandler(t, NewMemoryStore(10))
			rs := startServer(t, h, ServerMaxConns(100, 8), ServerTimeouts(Timeouts{Idle: time.Hour, ReadHeader: time.Hour}))
			held := holdConns(t, "127.0.0.2", rs.addr, 40, request)
			if n := open(held); n > 8 {
				t.Errorf("127.0.0.2 holds %d connections, cap 8", n)
			}
			// Another address is served, and so is a new connection from
			// the capped address: it takes the place of that address's
			// connection idle longest.
			for _, from := range []string{"127.0.0.3", "127.0.0.2"} {
				c := clientFrom(from)
				resp, err := c.Get(rs.url + "/")
				c.CloseIdleConnections()
				if err != nil {
					t.Fatalf("a new connection from %s: %v", from, err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("a new connection from %s: %d", from, resp.StatusCode)
				}
			}
		})
	}
}

// TestServerConnectionLimitTrustedProxy: a trusted reverse proxy carries
// many clients over its connections, so it is not capped per address.
func TestServerConnectionLimitTrustedProxy(t *testing.T) {
	h := newTestHandler(t, NewMemoryStore(10), WithTrustedProxies(netip.MustParsePrefix("127.0.0.4/32")))
	rs := startServer(t, h, ServerMaxConns(100, 4), ServerTimeouts(Timeouts{Idle: time.Hour}))
	held := holdConns(t, "127.0.0.4", rs.addr, 12, true)
	if n := open(held); n != 12 {
		t.Errorf("the trusted proxy holds %d of its 12 connections", n)
	}
	held = holdConns(t, "127.0.0.5", rs.addr, 12, true)
	if n := open(held); n > 4 {
		t.Errorf("an untrusted address holds %d connections, cap 4", n)
	}
}

// TestServerConnectionLimitTotal: many addresses together reach the total
// cap; a newcomer still gets in, in place of the connection idle longest.
func TestServerConnectionLimitTotal(t *testing.T) {
	h := newTestHandler(t, NewMemoryStore(10))
	rs := startServer(t, h, ServerMaxConns(20, 5), ServerTimeouts(Timeouts{Idle: time.Hour, ReadHeader: time.Hour}))
	var held []net.Conn
	for i := 2; i < 10; i++ {
		held = append(held, holdConns(t, "127.0.0."+strconv.Itoa(i), rs.addr, 5, true)...)
	}
	if n := open(held); n > 20 {
		t.Errorf("%d connections open, cap 20", n)
	}
	c := clientFrom("127.0.0.20")
	defer c.CloseIdleConnections()
	resp, err := c.Get(rs.url + "/")
	if err != nil {
		t.Fatalf("a newcomer at the total cap: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("a newcomer at the total cap: %d", resp.StatusCode)
	}
}

// TestServerConnectionLimitRefusesWhenAllBusy: when every connection of an
// address is in a handler, a further one is refused with 429 and closed
// rather than queued or let in.
func TestServerConnectionLimitRefusesWhenAllBusy(t *testing.T) {
	release := make(chan struct{})
	store := &funcStore{Store: NewMemoryStore(10), get: func(ctx context.Context, _ pkarrclient.PublicKey) (Record, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return Record{}, ErrNotFound
	}}
	h := newTestHandler(t, store)
	rs := startServer(t, h, ServerMaxConns(100, 2))
	defer close(release) // before the server stops: its handlers are waiting
	key := "/" + newSecretKey(t).PublicKey().String()
	for range 2 {
		c, err := dialFrom("127.0.0.2", rs.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, "GET "+key+" HTTP/1.1\r\nHost: relay\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "two connections in a handler", func() bool { return rs.srv.conns.activeFor("127.0.0.2") == 2 })
	c, err := dialFrom("127.0.0.2", rs.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("third connection: %v, want a 429", err)
	}
	if resp.StatusCode != http.StatusTooManyRequests || !resp.Close || resp.Header.Get("Retry-After") == "" {
		t.Errorf("third connection: %d close %v Retry-After %q", resp.StatusCode, resp.Close, resp.Header.Get("Retry-After"))
	}
	// Another address is not affected.
	other := clientFrom("127.0.0.3")
	defer other.CloseIdleConnections()
	resp, err = other.Get(rs.url + "/")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("another address: %v %v", resp, err)
	}
	resp.Body.Close()
}

func TestConnLimitOptions(t *testing.T) {
	h := newTestHandler(t, NewMemoryStore(10))
	for _, bad := range [][2]int{{-1, 0}, {0, -1}, {10, 11}} {
		if _, err := NewServer(h, ServerMaxConns(bad[0], bad[1])); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("ServerMaxConns(%d, %d): %v, want ErrInvalidConfig", bad[0], bad[1], err)
		}
	}
	srv, err := NewServer(h)
	if err != nil {
		t.Fatal(err)
	}
	total, perIP := srv.ConnLimits()
	if total < 1 || total > DefaultMaxConns || perIP < 1 || perIP > DefaultMaxConnsPerIP || perIP > total {
		t.Errorf("default limits %d in all, %d per address", total, perIP)
	}
	if limit, ok := openFileLimit(); ok && uint64(total) > limit {
		t.Errorf("default total %d above the open-file limit %d", total, limit)
	}
}
