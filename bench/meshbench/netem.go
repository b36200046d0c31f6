package meshbench

// The injected round-trip time: every peer's HTTP exchanges with the relay
// and every libp2p connection a peer dials spend rtt on each round trip,
// on loopback, and nothing may leave the machine.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/gologshim"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/phrasemeet/discovery/internal/netdelay"
)

// loopbackDialer refuses every address that is not loopback, so a bug in
// the benchmark (or a library's default bootstrap list) cannot reach the
// internet.
func loopbackDialer() *net.Dialer {
	return &net.Dialer{Timeout: 10 * time.Second, Control: func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil || !ap.Addr().IsLoopback() {
			return fmt.Errorf("refusing to dial %s: the benchmark talks to loopback only", address)
		}
		return nil
	}}
}

// peerTransport is one peer's own HTTP transport: its own connection pool,
// no proxy from the environment, loopback only.
func peerTransport() *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		DialContext:         loopbackDialer().DialContext,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     30 * time.Second,
	}
}

// peerIP is the address peer i's requests carry in X-Forwarded-For: IPv4
// from the benchmarking range (RFC 2544, 198.18.0.0/15), never dialed. Not
// IPv6: pkarrrelay limits IPv6 clients per /64, so peers in one /64 would
// share one budget.
func peerIP(i int) string {
	return fmt.Sprintf("198.18.%d.%d", (i+1)>>8&255, (i+1)&255)
}

// slowDialer is the TCP dialer of every benchmark host (libp2p's
// tcp.WithDialerForAddr): loopback only; the connect costs one rtt, as a
// TCP handshake does, and the connection delays each direction by rtt/2,
// so every round trip over it costs rtt whichever side starts it. The
// accepting side is not wrapped: the dialer's delays cover both
// directions.
type slowDialer struct{ rtt time.Duration }

func (s slowDialer) forAddr(raddr ma.Multiaddr) (tcp.ContextDialer, error) {
	ip, err := manet.ToIP(raddr)
	if err != nil {
		return nil, err
	}
	if !ip.IsLoopback() {
		return nil, fmt.Errorf("refusing to dial %s: the benchmark talks to loopback only", raddr)
	}
	return s, nil
}

// quietKeepAlive routes go-libp2p's logs (errors and above, to standard
// error) through a handler that drops one line: the TCP transport
// complains, on every dial, that a delayConn cannot set TCP keep-alives
// (it wraps the dialed connection in a struct that hides every method
// beyond net.Conn's), and keep-alives mean nothing on a loopback
// connection that lives for one run. It must run before go-libp2p logs
// anything.
var quietKeepAlive = sync.OnceFunc(func() {
	gologshim.SetDefaultHandler(dropKeepAlive{slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})})
})

type dropKeepAlive struct{ slog.Handler }

func (d dropKeepAlive) Handle(ctx context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, "can't set TCP keepalives") {
		return nil
	}
	return d.Handler.Handle(ctx, r)
}

func (d dropKeepAlive) WithAttrs(as []slog.Attr) slog.Handler {
	return dropKeepAlive{d.Handler.WithAttrs(as)}
}

func (d dropKeepAlive) WithGroup(name string) slog.Handler {
	return dropKeepAlive{d.Handler.WithGroup(name)}
}

func (s slowDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if err := netdelay.Pause(ctx, s.rtt); err != nil {
		return nil, err
	}
	c, err := loopbackDialer().DialContext(ctx, network, address)
	if err != nil || s.rtt <= 0 {
		return c, err
	}
	return newDelayConn(c, s.rtt/2), nil
}

// delayConn delivers what it reads d after it arrived and writes what it
// is given d after it was given, in order, without limiting throughput.
type delayConn struct {
	net.Conn
	d time.Duration

	in   chan chunk // read from the network, not yet delivered
	out  chan chunk // given to Write, not yet sent
	done chan struct{}
	once sync.Once

	rmu  sync.Mutex // one Read at a time; guards cur
	cur  chunk
	werr error // the first failed write, sticky

	dmu       sync.Mutex
	rDeadline time.Time
	wDeadline time.Time
	dChanged  chan struct{} // closed and replaced when a deadline changes
	wmu       sync.Mutex
}

type chunk struct {
	b   []byte
	at  time.Time
	err error
}

func newDelayConn(c net.Conn, d time.Duration) *delayConn {
	dc := &delayConn{Conn: c, d: d, in: make(chan chunk, 256), out: make(chan chunk, 256),
		done: make(chan struct{}), dChanged: make(chan struct{})}
	go dc.readLoop()
	go dc.writeLoop()
	return dc
}

func (c *delayConn) readLoop() {
	for {
		b := make([]byte, 32<<10)
		n, err := c.Conn.Read(b)
		select {
		case c.in <- chunk{b: b[:n], at: time.Now().Add(c.d), err: err}:
		case <-c.done:
			return
		}
		if err != nil {
			return
		}
	}
}

func (c *delayConn) writeLoop() {
	for {
		select {
		case ch := <-c.out:
			if err := sleepUntil(ch.at, c.done); err != nil {
				return
			}
			if _, err := c.Conn.Write(ch.b); err != nil {
				c.wmu.Lock()
				if c.werr == nil {
					c.werr = err
				}
				c.wmu.Unlock()
				return
			}
		case <-c.done:
			return
		}
	}
}

func sleepUntil(at time.Time, done <-chan struct{}) error {
	d := time.Until(at)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-done:
		return net.ErrClosed
	}
}

// deadline returns the current deadline (read or write) and a channel
// closed when either changes.
func (c *delayConn) deadline(read bool) (time.Time, <-chan struct{}) {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	if read {
		return c.rDeadline, c.dChanged
	}
	return c.wDeadline, c.dChanged
}

// wait blocks until at, the connection closes, or the deadline passes.
func (c *delayConn) wait(read bool, ready <-chan chunk, at time.Time) (chunk, error) {
	for {
		dl, changed := c.deadline(read)
		var timeout <-chan time.Time
		if !dl.IsZero() {
			d := time.Until(dl)
			if d <= 0 {
				return chunk{}, os.ErrDeadlineExceeded
			}
			t := time.NewTimer(d)
			defer t.Stop()
			timeout = t.C
		}
		var sleep <-chan time.Time
		if ready == nil {
			d := time.Until(at)
			if d <= 0 {
				return chunk{}, nil
			}
			t := time.NewTimer(d)
			defer t.Stop()
			sleep = t.C
		}
		select {
		case ch := <-ready:
			return ch, nil
		case <-sleep:
			return chunk{}, nil
		case <-timeout:
			return chunk{}, os.ErrDeadlineExceeded
		case <-changed:
		case <-c.done:
			return chunk{}, net.ErrClosed
		}
	}
}

func (c *delayConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if len(c.cur.b) == 0 && c.cur.err == nil {
		ch, err := c.wait(true, c.in, time.Time{})
		if err != nil {
			return 0, err
		}
		c.cur = ch
	}
	if _, err := c.wait(true, nil, c.cur.at); err != nil {
		return 0, err
	}
	if len(c.cur.b) == 0 {
		return 0, c.cur.err // sticky: every later Read gets it too
	}
	n := copy(p, c.cur.b)
	c.cur.b = c.cur.b[n:]
	return n, nil
}

func (c *delayConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	err := c.werr
	c.wmu.Unlock()
	if err != nil {
		return 0, err
	}
	b := append([]byte(nil), p...)
	ch := chunk{b: b, at: time.Now().Add(c.d)}
	for {
		dl, changed := c.deadline(false)
		var timeout <-chan time.Time
		if !dl.IsZero() {
			d := time.Until(dl)
			if d <= 0 {
				return 0, os.ErrDeadlineExceeded
			}
			t := time.NewTimer(d)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case c.out <- ch:
			return len(p), nil
		case <-timeout:
			return 0, os.ErrDeadlineExceeded
		case <-changed:
		case <-c.done:
			return 0, net.ErrClosed
		}
	}
}

func (c *delayConn) Close() error {
	err := net.ErrClosed
	c.once.Do(func() {
		close(c.done)
		err = c.Conn.Close()
	})
	return err
}

func (c *delayConn) setDeadline(read, write bool, t time.Time) {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	if read {
		c.rDeadline = t
	}
	if write {
		c.wDeadline = t
	}
	close(c.dChanged)
	c.dChanged = make(chan struct{})
}

// The deadlines are the wrapper's: the loops below it read and write
// without one, so a deadline never fails data already in flight.
func (c *delayConn) SetDeadline(t time.Time) error {
	c.setDeadline(true, true, t)
	return nil
}

func (c *delayConn) SetReadDeadline(t time.Time) error {
	c.setDeadline(true, false, t)
	return nil
}

func (c *delayConn) SetWriteDeadline(t time.Time) error {
	c.setDeadline(false, true, t)
	return nil
}

var _ net.Conn = (*delayConn)(nil)

// errUnfinished marks a run that reached its timeout.
var errUnfinished = errors.New("unfinished")
