package pkarrrelay

import (
	"math"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/time/rate"
)

// limiterTable holds one token bucket per client address. It remembers only
// the most recently seen addresses: a forgotten address starts again with a
// full bucket, which is what an idle address would have anyway.
type limiterTable struct {
	limit rate.Limit
	burst int

	mu  sync.Mutex
	lru *simplelru.LRU[netip.Addr, *rate.Limiter]
}

func newLimiterTable(l limitConfig, size int) (*limiterTable, error) {
	lru, err := simplelru.NewLRU[netip.Addr, *rate.Limiter](size, nil)
	if err != nil {
		return nil, err
	}
	return &limiterTable{limit: l.rate, burst: l.burst, lru: lru}, nil
}

// allow takes one token from addr's bucket at now. When the bucket is empty
// it returns false and how long until a token is available. The clock is the
// caller's, so tests decide what time it is.
func (t *limiterTable) allow(addr netip.Addr, now time.Time) (bool, time.Duration) {
	t.mu.Lock()
	lim, ok := t.lru.Get(addr)
	if !ok {
		lim = rate.NewLimiter(t.limit, t.burst)
		t.lru.Add(addr, lim)
	}
	t.mu.Unlock()
	if lim.AllowN(now, 1) {
		return true, 0
	}
	missing := 1 - lim.TokensAt(now)
	return false, time.Duration(math.Ceil(missing / float64(t.limit) * float64(time.Second)))
}

// retryAfterSeconds renders a wait as Retry-After wants it: whole seconds,
// rounded up, at least one (zero would invite an immediate retry).
func retryAfterSeconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	return max(s, 1)
}

// clientAddr returns the address a request is rate-limited under: the TCP
// peer, or, when the peer is a trusted proxy, the client it forwarded for.
// IPv6 clients are grouped by /64, the smallest block an ISP routes to one
// customer; per-address buckets would give each of them billions of buckets.
func clientAddr(r *http.Request, trusted []netip.Prefix) netip.Addr {
	addr := peerAddr(r.RemoteAddr)
	if len(trusted) > 0 && isTrusted(addr, trusted) {
		if fwd, ok := forwardedFor(r.Header.Values("X-Forwarded-For"), trusted); ok {
			addr = fwd
		}
	}
	return bucketKey(addr)
}

// peerAddr parses http.Request.RemoteAddr. Anything unparseable (a Unix
// socket, a test harness) maps to the zero Addr, which is one shared bucket.
func peerAddr(remote string) netip.Addr {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return ap.Addr().Unmap().WithZone("")
	}
	if a, err := netip.ParseAddr(remote); err == nil {
		return a.Unmap().WithZone("")
	}
	return netip.Addr{}
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// forwardedFor walks X-Forwarded-For from the right (the entry our own proxy
// appended) to the left, skipping trusted proxies, and returns the first
// untrusted address: everything left of it was written by the client and
// proves nothing. A malformed entry makes the whole header untrustworthy.
// When every entry is a trusted proxy, the leftmost one is the client.
func forwardedFor(values []string, trusted []netip.Prefix) (netip.Addr, bool) {
	header := strings.Join(values, ",")
	if strings.TrimSpace(header) == "" {
		return netip.Addr{}, false
	}
	var last netip.Addr
	for rest := header; ; {
		i := strings.LastIndexByte(rest, ',')
		a, ok := parseForwardedAddr(strings.TrimSpace(rest[i+1:]))
		if !ok {
			return netip.Addr{}, false
		}
		if !isTrusted(a, trusted) {
			return a, true
		}
		last = a
		if i < 0 {
			return last, true
		}
		rest = rest[:i]
	}
}

// parseForwardedAddr accepts an address with or without a port, as proxies
// write both.
func parseForwardedAddr(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone(""), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	return netip.Addr{}, false
}

// bucketKey maps an address to its rate-limit bucket.
func bucketKey(a netip.Addr) netip.Addr {
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}
