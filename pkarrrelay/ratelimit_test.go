package pkarrrelay

import (
	"bytes"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

func TestWriteRateLimit(t *testing.T) {
	r := newRelay(t, NewMemoryStore(100), WithWriteRateLimit(1, 3))
	sk := newSecretKey(t)
	next := time.Duration(0)
	putNew := func() *http.Response {
		next += time.Millisecond
		return r.putPacket(sign(t, sk, tsAt(next-time.Hour), 300, "x"))
	}
	for range 3 {
		wantStatus(t, putNew(), http.StatusNoContent)
	}
	resp, body := r.do(http.MethodPut, r.keyURL(sk.PublicKey()), bytes.NewReader([]byte("x")), nil)
	wantStatus(t, resp, http.StatusTooManyRequests)
	wantHeader(t, resp, "Retry-After", "1")
	wantHeader(t, resp, "Access-Control-Allow-Origin", "*")
	if string(body) != "rate limited\n" {
		t.Errorf("429 body %q", body)
	}

	// Reads have their own bucket.
	for range 10 {
		resp, _ := r.get(sk.PublicKey(), nil)
		wantStatus(t, resp, http.StatusOK)
	}

	// The bucket refills with the (fake) clock: one token per second.
	r.clock.Advance(999 * time.Millisecond)
	wantStatus(t, putNew(), http.StatusTooManyRequests)
	r.clock.Advance(time.Millisecond)
	wantStatus(t, putNew(), http.StatusNoContent)
	wantStatus(t, putNew(), http.StatusTooManyRequests)
	r.clock.Advance(time.Hour)
	for range 3 {
		wantStatus(t, putNew(), http.StatusNoContent)
	}
	wantStatus(t, putNew(), http.StatusTooManyRequests)
}

func TestRetryAfterRoundsUp(t *testing.T) {
	// One PUT per four seconds, as n0's relay allows.
	r := newRelay(t, NewMemoryStore(10), WithWriteRateLimit(rate.Every(4*time.Second), 1))
	key := newSecretKey(t).PublicKey()
	wantStatus(t, r.put(key, nil), http.StatusBadRequest)
	resp := r.put(key, nil)
	wantStatus(t, resp, http.StatusTooManyRequests)
	wantHeader(t, resp, "Retry-After", "4")
	r.clock.Advance(1500 * time.Millisecond) // 2.5 s to go: rounds up to 3
	resp = r.put(key, nil)
	wantStatus(t, resp, http.StatusTooManyRequests)
	wantHeader(t, resp, "Retry-After", "3")
	r.clock.Advance(2499 * time.Millisecond) // 1 ms to go: still a whole second
	resp = r.put(key, nil)
	wantHeader(t, resp, "Retry-After", "1")
	r.clock.Advance(time.Millisecond)
	wantStatus(t, r.put(key, nil), http.StatusBadRequest)

	for _, tc := range []struct {
		d    time.Duration
		want int64
	}{{0, 1}, {time.Nanosecond, 1}, {time.Second, 1}, {time.Second + 1, 2}, {59*time.Second + 1, 60}} {
		if got := retryAfterSeconds(tc.d); got != tc.want {
			t.Errorf("retryAfterSeconds(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}
}

func TestReadRateLimit(t *testing.T) {
	r := newRelay(t, NewMemoryStore(10), WithReadRateLimit(2, 4))
	sk := newSecretKey(t)
	for range 4 {
		resp, _ := r.get(sk.PublicKey(), nil)
		wantStatus(t, resp, http.StatusNotFound)
	}
	resp, _ := r.get(sk.PublicKey(), nil)
	wantStatus(t, resp, http.StatusTooManyRequests)
	wantHeader(t, resp, "Retry-After", "1")
	resp, _ = r.do(http.MethodHead, r.keyURL(sk.PublicKey()), nil, nil)
	wantStatus(t, resp, http.StatusTooManyRequests)
	resp, _ = r.do(http.MethodGet, r.base+"/", nil, nil)
	wantStatus(t, resp, http.StatusTooManyRequests)
	// Writes are unaffected, and preflights are never limited.
	wantStatus(t, r.putPacket(sign(t, sk, tsAt(0), 300, "x")), http.StatusNoContent)
	resp, _ = r.do(http.MethodOptions, r.keyURL(sk.PublicKey()), nil, nil)
	wantStatus(t, resp, http.StatusNoContent)
	r.clock.Advance(500 * time.Millisecond)
	resp, _ = r.get(sk.PublicKey(), nil)
	wantStatus(t, resp, http.StatusOK)
}

// TestForwardedForOverHTTP checks X-Forwarded-For end to end: from a
// trusted proxy each forwarded client has its own bucket; from anyone else
// the header is ignored and all requests share the peer's bucket.
func TestForwardedForOverHTTP(t *testing.T) {
	xff := func(ip string) http.Header { return http.Header{"X-Forwarded-For": {ip}} }
	key := newSecretKey(t).PublicKey()

	trusted := newRelay(t, NewMemoryStore(10), WithWriteRateLimit(1, 1),
		WithTrustedProxies(netip.MustParsePrefix("127.0.0.0/8")))
	for _, client := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"} {
		resp, _ := trusted.do(http.MethodPut, trusted.keyURL(key), nil, xff(client))
		wantStatus(t, resp, http.StatusBadRequest)
	}
	resp, _ := trusted.do(http.MethodPut, trusted.keyURL(key), nil, xff("192.0.2.1"))
	wantStatus(t, resp, http.StatusTooManyRequests)
	// A client cannot escape its bucket by prepending addresses.
	resp, _ = trusted.do(http.MethodPut, trusted.keyURL(key), nil, xff("203.0.113.9, 192.0.2.1"))
	wantStatus(t, resp, http.StatusTooManyRequests)

	untrusted := newRelay(t, NewMemoryStore(10), WithWriteRateLimit(1, 1),
		WithTrustedProxies(netip.MustParsePrefix("10.0.0.0/8")))
	resp, _ = untrusted.do(http.MethodPut, untrusted.keyURL(key), nil, xff("192.0.2.1"))
	wantStatus(t, resp, http.StatusBadRequest)
	resp, _ = untrusted.do(http.MethodPut, untrusted.keyURL(key), nil, xff("192.0.2.2"))
	wantStatus(t, resp, http.StatusTooManyRequests)

	// An IPv4-mapped prefix means the IPv4 one: peers are compared unmapped.
	mapped := newRelay(t, NewMemoryStore(10), WithWriteRateLimit(1, 1),
		WithTrustedProxies(netip.MustParsePrefix("::ffff:127.0.0.0/104")))
	for _, client := range []string{"192.0.2.1", "192.0.2.2"} {
		resp, _ := mapped.do(http.MethodPut, mapped.keyURL(key), nil, xff(client))
		wantStatus(t, resp, http.StatusBadRequest)
	}
}

func TestClientAddr(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	cases := []struct {
		name    string
		remote  string
		xff     []string
		trusted []netip.Prefix
		want    string
	}{
		{"plain peer", "192.0.2.7:5555", nil, nil, "192.0.2.7"},
		{"XFF ignored without trusted proxies", "192.0.2.7:5555", []string{"198.51.100.1"}, nil, "192.0.2.7"},
		{"XFF ignored from an untrusted peer", "192.0.2.7:5555", []string{"198.51.100.1"}, proxies, "192.0.2.7"},
		{"XFF from a trusted peer", "10.1.2.3:5555", []string{"198.51.100.1"}, proxies, "198.51.100.1"},
		{"rightmost untrusted entry wins", "10.1.2.3:5555", []string{"203.0.113.5, 198.51.100.1, 10.9.9.9"}, proxies, "198.51.100.1"},
		{"several headers are one list", "10.1.2.3:5555", []string{"203.0.113.5", "198.51.100.1,10.9.9.9"}, proxies, "198.51.100.1"},
		{"spaces and ports", "10.1.2.3:5555", []string{" 198.51.100.1:4444 , 10.0.0.1 "}, proxies, "198.51.100.1"},
		{"bracketed IPv6 with port", "10.1.2.3:5555", []string{"[2001:db8::1]:443"}, proxies, "2001:db8::"},
		{"all hops trusted: leftmost", "10.1.2.3:5555", []string{"10.0.0.9, 10.0.0.8"}, proxies, "10.0.0.9"},
		{"malformed entry: use the peer", "10.1.2.3:5555", []string{"198.51.100.1, not-an-ip"}, proxies, "10.1.2.3"},
		{"empty entry: use the peer", "10.1.2.3:5555", []string{"198.51.100.1,,10.0.0.1"}, proxies, "10.1.2.3"},
		{"empty header: use the peer", "10.1.2.3:5555", []string{""}, proxies, "10.1.2.3"},
		{"IPv6 grouped by /64", "[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:80", nil, nil, "2001:db8:1:2::"},
		{"IPv4-mapped IPv6 is IPv4", "[::ffff:192.0.2.7]:80", nil, nil, "192.0.2.7"},
		{"zone dropped", "[fe80::1%eth0]:80", nil, nil, "fe80::"},
		{"trusted IPv6 proxy", "[fd00::1]:80", []string{"192.0.2.44"}, proxies, "192.0.2.44"},
		{"unparseable peer", "@", []string{"192.0.2.44"}, proxies, "invalid IP"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, "http://relay/", nil)
			req.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				req.Header.Add("X-Forwarded-For", v)
			}
			if got := clientAddr(req, tc.trusted).String(); got != tc.want {
				t.Errorf("clientAddr = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestLimiterTableIsBounded(t *testing.T) {
	table, err := newLimiterTable(limitConfig{rate: 1, burst: 1}, 2)
	if err != nil {
		t.Fatal(err)
	}
	now := epoch
	a, b, c := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.3")
	for _, addr := range []netip.Addr{a, b, c} {
		if ok, _ := table.allow(addr, now); !ok {
			t.Fatalf("%s refused on its first request", addr)
		}
	}
	if n := table.lru.Len(); n != 2 {
		t.Fatalf("table holds %d limiters, cap 2", n)
	}
	// c is remembered and empty; a was forgotten and starts full again.
	if ok, wait := table.allow(c, now); ok || wait != time.Second {
		t.Errorf("c: allowed=%v wait=%v, want refused for 1s", ok, wait)
	}
	if ok, _ := table.allow(a, now); !ok {
		t.Error("a forgotten limiter was not reset")
	}
}
