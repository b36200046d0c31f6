package pkarrrelay

import (
	"container/list"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// Defaults of the Server's connection limits (see ServerMaxConns).
const (
	// DefaultMaxConns caps the connections a Server holds in all. Each
	// costs a file descriptor, a goroutine and about 10 KB of buffers, so
	// 10,000 stay near 100 MB. When the process may open fewer files, the
	// default is three quarters of that limit instead, leaving the rest
	// for the store, the DHT socket and logs: the relay reaches its own
	// cap, which it handles, before the system's, where accept fails and
	// nobody is served.
	DefaultMaxConns = 10_000
	// DefaultMaxConnsPerIP caps the connections from one client address
	// (IPv6 by /64). A browser opens six per host and a pkarr client one
	// or two; 64 leaves room for a few dozen users behind one NAT. It is
	// lowered to a quarter of the total cap when that is smaller, so one
	// address can never hold most of the server.
	DefaultMaxConnsPerIP = 64
)

// connLimiter enforces the connection caps. A new connection over a cap
// takes the place of the connection idle longest (for the per-address cap,
// the address's own; for the total, anyone's), where idle means between
// requests, or not yet through the headers of its first one (net/http
// calls a connection active only once a request's headers are read, so a
// client dripping headers is idle here); when every connection in its way
// is in a handler, the new one is answered 429 (per address) or 503
// (total) and closed. So a client that parks connections, or opens them
// and sends nothing, pushes out only its own, and newcomers are served.
type connLimiter struct {
	total, perIP int
	trusted      []netip.Prefix
	metrics      *metrics

	mu   sync.Mutex
	n    int
	byIP map[netip.Addr]map[*limitedConn]struct{}
	idle *list.List // of *limitedConn, longest idle first
}

// limitedConn is a connection the limiter counts.
type limitedConn struct {
	net.Conn
	lim    *connLimiter
	ip     netip.Addr
	exempt bool // a trusted proxy: not capped per address

	// Under lim.mu.
	state   http.ConnState
	since   time.Time     // when it last became idle
	idleAt  *list.Element // its place in lim.idle while idle
	removed bool
}

func newConnLimiter(total, perIP int, trusted []netip.Prefix, m *metrics) *connLimiter {
	return &connLimiter{
		total:   total,
		perIP:   perIP,
		trusted: trusted,
		metrics: m,
		byIP:    make(map[netip.Addr]map[*limitedConn]struct{}),
		idle:    list.New(),
	}
}

// listener wraps ln so that every connection it accepts is counted, or
// refused.
func (l *connLimiter) listener(ln net.Listener) net.Listener {
	return &limitListener{Listener: ln, lim: l}
}

type limitListener struct {
	net.Listener
	lim *connLimiter
}

func (ll *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := ll.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if lc := ll.lim.admit(c); lc != nil {
			return lc, nil
		}
	}
}

// admit counts c, making room by closing an idle connection when a cap
// is reached, or answers and closes c and returns nil.
func (l *connLimiter) admit(c net.Conn) *limitedConn {
	lc := &limitedConn{Conn: c, lim: l, state: http.StateNew, since: time.Now()}
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		lc.ip = bucketKey(ap.Addr().Unmap().WithZone(""))
		lc.exempt = isTrusted(lc.ip, l.trusted)
	}
	var victims []*limitedConn
	refuse := ""
	l.mu.Lock()
	mine := l.byIP[lc.ip]
	if !lc.exempt && len(mine) >= l.perIP {
		if v := l.oldestIdleOf(mine); v != nil {
			victims = append(victims, v)
			l.removeLocked(v)
		} else {
			refuse = "per_ip"
		}
	}
	if refuse == "" && l.n >= l.total {
		if e := l.idle.Front(); e != nil {
			v := e.Value.(*limitedConn)
			victims = append(victims, v)
			l.removeLocked(v)
		} else {
			refuse = "total"
		}
	}
	if refuse == "" {
		l.addLocked(lc)
	}
	l.mu.Unlock()

	for _, v := range victims {
		v.Conn.Close()
		l.metrics.connsEvicted.Inc()
	}
	if refuse != "" {
		l.metrics.connsRefused.WithLabelValues(refuse).Inc()
		refuseConn(c, refuse == "per_ip")
		return nil
	}
	return lc
}

// Canned answers for refused connections, written before any request is
// read: a client that sends one right away sees the status; one that does
// not is only cut off sooner.
const (
	refusedPerIP = "HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\nRetry-After: 1\r\n" +
		"Access-Control-Allow-Origin: *\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 34\r\n\r\n" +
		"too many connections from address\n"
	refusedTotal = "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\n" +
		"Access-Control-Allow-Origin: *\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 21\r\n\r\n" +
		"too many connections\n"
)

// refuseConn answers and closes a connection over a cap. A fresh socket's
// send buffer is empty, so the write does not wait; the deadline is there
// for a peer that has already gone.
func refuseConn(c net.Conn, perIP bool) {
	c.SetWriteDeadline(time.Now().Add(time.Second))
	msg := refusedTotal
	if perIP {
		msg = refusedPerIP
	}
	io.WriteString(c, msg)
	c.Close()
}

func (l *connLimiter) oldestIdleOf(set map[*limitedConn]struct{}) *limitedConn {
	var oldest *limitedConn
	for c := range set {
		if c.idleAt != nil && (oldest == nil || c.since.Before(oldest.since)) {
			oldest = c
		}
	}
	return oldest
}

func (l *connLimiter) addLocked(c *limitedConn) {
	l.n++
	set := l.byIP[c.ip]
	if set == nil {
		set = make(map[*limitedConn]struct{})
		l.byIP[c.ip] = set
	}
	set[c] = struct{}{}
	c.idleAt = l.idle.PushBack(c) // new: idle until its first request starts
	l.metrics.connsOpen.Set(float64(l.n))
}

func (l *connLimiter) removeLocked(c *limitedConn) {
	if c.removed {
		return
	}
	c.removed = true
	l.n--
	if set := l.byIP[c.ip]; set != nil {
		delete(set, c)
		if len(set) == 0 {
			delete(l.byIP, c.ip)
		}
	}
	if c.idleAt != nil {
		l.idle.Remove(c.idleAt)
		c.idleAt = nil
	}
	l.metrics.connsOpen.Set(float64(l.n))
}

// connState is the http.Server's ConnState hook: it keeps each
// connection's place among the idle ones.
func (l *connLimiter) connState(nc net.Conn, state http.ConnState) {
	c, ok := nc.(*limitedConn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.removed {
		return
	}
	c.state = state
	switch state {
	case http.StateActive:
		if c.idleAt != nil {
			l.idle.Remove(c.idleAt)
			c.idleAt = nil
		}
	case http.StateIdle:
		if c.idleAt == nil {
			c.since = time.Now()
			c.idleAt = l.idle.PushBack(c)
		}
	case http.StateClosed, http.StateHijacked:
		l.removeLocked(c)
	}
}

// Close closes the connection and stops counting it.
func (c *limitedConn) Close() error {
	c.lim.mu.Lock()
	c.lim.removeLocked(c)
	c.lim.mu.Unlock()
	return c.Conn.Close()
}

// activeFor returns how many connections from addr are in a request; for
// tests.
func (l *connLimiter) activeFor(addr string) int {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for c := range l.byIP[bucketKey(a)] {
		if c.state == http.StateActive {
			n++
		}
	}
	return n
}
