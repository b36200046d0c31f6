package pkarrrelay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/prometheus/client_golang/prometheus"
)

func TestPutThenGet(t *testing.T) {
	r := newRelay(t, NewMemoryStore(10))
	sk := newSecretKey(t)
	p := sign(t, sk, tsAt(-time.Minute+250*time.Microsecond), 600, "hello")

	resp := r.putPacket(p)
	wantStatus(t, resp, http.StatusNoContent)
	wantHeader(t, resp, "Access-Control-Allow-Origin", "*")

	resp, body := r.get(sk.PublicKey(), nil)
	wantStatus(t, resp, http.StatusOK)
	if !bytes.Equal(body, p.RelayPayload()) {
		t.Fatalf("GET body differs from the payload PUT")
	}
	wantHeader(t, resp, "Content-Type", "application/pkarr.org/relays#payload")
	wantHeader(t, resp, "Cache-Control", "public, max-age=600")
	wantHeader(t, resp, "Last-Modified", "Sun, 01 Jun 2025 11:59:00 GMT")
	wantHeader(t, resp, "Access-Control-Allow-Origin", "*")
	wantHeader(t, resp, "Access-Control-Allow-Methods", "GET, HEAD, PUT, OPTIONS")
	wantHeader(t, resp, "Access-Control-Expose-Headers", "Retry-After, "+HeaderDHTStoredNodes)
	wantHeader(t, resp, "Content-Length", fmt.Sprint(len(p.RelayPayload())))

	// The body verifies under the key, as a client would check it.
	got, err := pkarrclient.ParseRelayPayload(sk.PublicKey(), body)
	if err != nil || !got.Equal(p) {
		t.Fatalf("GET body does not parse back to the packet: %v", err)
	}

	resp, body = r.do(http.MethodHead, r.keyURL(sk.PublicKey()), nil, nil)
	wantStatus(t, resp, http.StatusOK)
	if len(body) != 0 {
		t.Errorf("HEAD returned a %d-byte body", len(body))
	}
	wantHeader(t, resp, "Content-Length", fmt.Sprint(len(p.RelayPayload())))
	wantHeader(t, resp, "Content-Type", PayloadContentType)
	wantHeader(t, resp, "Cache-Control", "public, max-age=600")
}

func TestCacheControlClampsTTL(t *testing.T) {
	cases := []struct {
		name   string
		opts   []Option
		ttls   []uint32 // nil: a packet without records
		maxAge string
	}{
		{"below minimum", nil, []uint32{30}, "300"},
		{"in range", nil, []uint32{1000}, "1000"},
		{"above maximum", nil, []uint32{100000}, "86400"},
		{"smallest of several", nil, []uint32{5000, 700, 9000}, "700"},
		{"zero TTL", nil, []uint32{0}, "300"},
		{"no records", nil, nil, "300"},
		{"custom bounds", []Option{WithTTLClamp(10, 20)}, []uint32{5}, "10"},
		{"custom bounds max", []Option{WithTTLClamp(10, 20)}, []uint32{50}, "20"},
		{"custom bounds no records", []Option{WithTTLClamp(10, 20)}, nil, "10"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRelay(t, NewMemoryStore(10), tc.opts...)
			sk := newSecretKey(t)
			b := pkarrclient.NewBuilder().Timestamp(tsAt(0))
			for i, ttl := range tc.ttls {
				b.TXT(fmt.Sprintf("_r%d", i), ttl, "v")
			}
			p, err := b.Sign(sk)
			if err != nil {
				t.Fatal(err)
			}
			wantStatus(t, r.putPacket(p), http.StatusNoContent)
			resp, _ := r.get(sk.PublicKey(), nil)
			wantStatus(t, resp, http.StatusOK)
			wantHeader(t, resp, "Cache-Control", "public, max-age="+tc.maxAge)
		})
	}
}

// invalidPointKey returns the z-base-32 text of 32 bytes that are not an
// Ed25519 curve point.
func invalidPointKey(t testing.TB) string {
	t.Helper()
	for i := 2; i < 256; i++ {
		b := make([]byte, 32)
		b[0] = byte(i)
		if _, err := pkarrclient.PublicKeyFromBytes(b); err != nil {
			return pkarrclient.EncodeZBase32(b)
		}
	}
	t.Fatal("no invalid point found")
	return ""
}

// nonZeroPadKey returns key's text with padding bits set in its last
// character: the same 32 bytes, but not the canonical encoding.
func nonZeroPadKey(key pkarrclient.PublicKey) string {
	const alphabet = "ybndrfg8ejkmcpqxot1uwisza345h769"
	s := key.String()
	idx := strings.IndexByte(alphabet, s[len(s)-1])
	return s[:len(s)-1] + string(alphabet[idx|1])
}

// dnsWithLoop is a DNS response whose one answer's owner name is a
// compression pointer to itself.
var dnsWithLoop = []byte{
	0, 0, 0x80, 0, // id 0, flags: response
	0, 0, 0, 1, 0, 0, 0, 0, // qd 0, an 1, ns 0, ar 0
	0xC0, 12, // name: pointer to offset 12, i.e. to itself
	0, 16, 0, 1, // TXT IN
	0, 0, 0, 60, // TTL
	0, 2, 1, 'x', // rdata
}

func TestHostilePuts(t *testing.T) {
	skA, skB := newSecretKey(t), newSecretKey(t)
	keyA, keyB := skA.PublicKey(), skB.PublicKey()
	good := sign(t, skA, tsAt(0), 300, "good").RelayPayload()
	flip := func(b []byte, i int) []byte {
		c := bytes.Clone(b)
		c[i] ^= 0x01
		return c
	}
	// chunked hides the length, so the client sends the body chunked and
	// the server cannot reject it by Content-Length.
	chunked := func(b []byte) io.Reader { return io.MultiReader(bytes.NewReader(b)) }

	cases := []struct {
		name    string
		path    string // key text; empty means keyA
		body    io.Reader
		want    int
		wantMsg string
	}{
		{"zero-length body", "", bytes.NewReader(nil), 400, "payload too short"},
		{"truncated inside signature", "", bytes.NewReader(good[:50]), 400, "payload too short"},
		{"truncated inside timestamp", "", bytes.NewReader(good[:70]), 400, "payload too short"},
		{"header only, no DNS", "", bytes.NewReader(good[:72]), 400, ""},
		{"truncated DNS", "", bytes.NewReader(good[:len(good)-3]), 400, ""},
		{"oversized with Content-Length", "", bytes.NewReader(make([]byte, 1073)), 413, "payload larger than 1072 bytes"},
		{"oversized chunked by one byte", "", chunked(make([]byte, 1073)), 413, ""},
		{"oversized chunked 1 MB", "", chunked(make([]byte, 1<<20)), 413, ""},
		{"maximum size garbage", "", bytes.NewReader(make([]byte, 1072)), 400, ""},
		{"flipped signature byte", "", bytes.NewReader(flip(good, 10)), 400, "bad signature"},
		{"flipped timestamp byte", "", bytes.NewReader(flip(good, 71)), 400, "bad signature"},
		{"flipped DNS byte", "", bytes.NewReader(flip(good, len(good)-1)), 400, ""},
		{"signed by A, PUT to B", keyB.String(), bytes.NewReader(good), 400, "bad signature"},
		{"compression loop under a valid signature", "", bytes.NewReader(rawPayload(skA, tsAt(0), dnsWithLoop)), 400, "invalid DNS message"},
		{"key with characters outside z-base-32", strings.Repeat("0", 52), bytes.NewReader(good), 400, "invalid public key"},
		{"key with l and v", "l" + keyA.String()[1:51] + "v", bytes.NewReader(good), 400, "invalid public key"},
		{"key too short", keyA.String()[:51], bytes.NewReader(good), 400, "invalid public key"},
		{"key too long", keyA.String() + "y", bytes.NewReader(good), 400, "invalid public key"},
		{"key with pk: prefix", "pk:" + keyA.String(), bytes.NewReader(good), 400, "invalid public key"},
		{"key with non-zero padding bits", nonZeroPadKey(keyA), bytes.NewReader(good), 400, "invalid public key"},
		{"key not a curve point", invalidPointKey(t), bytes.NewReader(good), 400, "invalid public key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			store := NewMemoryStore(10)
			r := newRelay(t, store)
			path := tc.path
			if path == "" {
				path = keyA.String()
			}
			resp, body := r.do(http.MethodPut, r.base+"/"+path, tc.body, nil)
			wantStatus(t, resp, tc.want)
			msg := string(body)
			if strings.Count(msg, "\n") != 1 || len(msg) > 80 {
				t.Errorf("error body %q is not one short line", msg)
			}
			if tc.wantMsg != "" && strings.TrimSpace(msg) != tc.wantMsg {
				t.Errorf("error body %q, want %q", msg, tc.wantMsg)
			}
			wantHeader(t, resp, "Access-Control-Allow-Origin", "*")
			if store.Len() != 0 {
				t.Errorf("store holds %d packets after a rejected PUT", store.Len())
			}
		})
	}
}

// TestPutTooLargeBeforeReading sends only headers announcing a large body:
// the relay must answer 413 without waiting for the body.
func TestPutTooLargeBeforeReading(t *testing.T) {
	r := newRelay(t, NewMemoryStore(10))
	sk := newSecretKey(t)
	conn, err := net.Dial("tcp", r.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "PUT /%s HTTP/1.1\r\nHost: relay\r\nContent-Length: 100000000\r\n\r\n", sk.PublicKey())
	buf := make([]byte, 512)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no answer before the body was sent: %v", err)
	}
	if !strings.HasPrefix(string(buf[:n]), "HTTP/1.1 413 ") {
		t.Fatalf("answer %q, want 413", buf[:n])
	}
}

func TestPutFutureTimestamps(t *testing.T) {
	cases := []struct {
		name   string
		opts   []Option
		offset time.Duration
		want   int
	}{
		{"now", nil, 0, 204},
		{"exactly at the default margin", nil, 5 * time.Minute, 204},
		{"one microsecond past the default margin", nil, 5*time.Minute + time.Microsecond, 400},
		{"a year ahead", nil, 365 * 24 * time.Hour, 400},
		{"custom margin inside", []Option{WithFutureMargin(time.Second)}, time.Second, 204},
		{"custom margin outside", []Option{WithFutureMargin(time.Second)}, time.Second + time.Microsecond, 400},
		{"zero margin", []Option{WithFutureMargin(0)}, time.Microsecond, 400},
		{"long ago", nil, -10 * 365 * 24 * time.Hour, 204},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRelay(t, NewMemoryStore(10), tc.opts...)
			sk := newSecretKey(t)
			resp, body := r.do(http.MethodPut, r.keyURL(sk.PublicKey()),
				bytes.NewReader(sign(t, sk, tsAt(tc.offset), 300, "x").RelayPayload()), nil)
			wantStatus(t, resp, tc.want)
			if tc.want == 400 && strings.TrimSpace(string(body)) != "timestamp too far in the future" {
				t.Errorf("body %q", body)
			}
		})
	}

	// The margin moves with the clock: a packet refused now is accepted
	// once the clock catches up.
	r := newRelay(t, NewMemoryStore(10))
	sk := newSecretKey(t)
	p := sign(t, sk, tsAt(time.Hour), 300, "x")
	wantStatus(t, r.putPacket(p), http.StatusBadRequest)
	r.clock.Advance(56 * time.Minute)
	wantStatus(t, r.putPacket(p), http.StatusNoContent)
}

func TestPutOrdering(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind.name, func(t *testing.T) {
			r := newRelay(t, kind.open(t, 10))
			sk := newSecretKey(t)
			older := sign(t, sk, tsAt(-time.Second), 300, "older")
			newer := sign(t, sk, tsAt(0), 300, "newer")

			wantStatus(t, r.putPacket(newer), http.StatusNoContent)
			wantStatus(t, r.putPacket(newer), http.StatusNoContent) // identical: still 204
			resp, body := r.do(http.MethodPut, r.keyURL(sk.PublicKey()), bytes.NewReader(older.RelayPayload()), nil)
			wantStatus(t, resp, http.StatusConflict)
			if strings.Count(string(body), "\n") != 1 {
				t.Errorf("409 body %q", body)
			}
			wantHeader(t, resp, "Access-Control-Allow-Origin", "*")

			// Equal timestamps: the larger DNS message wins, as in pkarr.
			a := sign(t, sk, tsAt(time.Second), 300, "a")
			b := sign(t, sk, tsAt(time.Second), 300, "b")
			wantStatus(t, r.putPacket(b), http.StatusNoContent)
			wantStatus(t, r.putPacket(a), http.StatusConflict)

			_, got := r.get(sk.PublicKey(), nil)
			if !bytes.Equal(got, b.RelayPayload()) {
				t.Fatal("the store does not hold the most recent packet")
			}
		})
	}
}

func TestGetErrors(t *testing.T) {
	r := newRelay(t, NewMemoryStore(10))
	sk := newSecretKey(t)
	cases := []struct {
		name, path string
		want       int
	}{
		{"unknown key", sk.PublicKey().String(), 404},
		{"upper-case unknown key", strings.ToUpper(sk.PublicKey().String()), 404},
		{"bad characters", strings.Repeat("0", 52), 400},
		{"wrong length", sk.PublicKey().String()[:40], 400},
		{"non-zero padding bits", nonZeroPadKey(sk.PublicKey()), 400},
		{"not a curve point", invalidPointKey(t), 400},
		{"trailing slash", sk.PublicKey().String() + "/", 404},
		{"nested path", sk.PublicKey().String() + "/x", 404},
	}
	for _, tc := range cases {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			t.Run(tc.name+" "+method, func(t *testing.T) {
				resp, _ := r.do(method, r.base+"/"+tc.path, nil, nil)
				wantStatus(t, resp, tc.want)
			})
		}
	}
}

// TestIfModifiedSinceEchoesLastModified: a client that sends back the
// Last-Modified it was given gets 304 whatever the packet's sub-second
// part, and a newer packet in a later second gets 200 again.
func TestIfModifiedSinceEchoesLastModified(t *testing.T) {
	r := newRelay(t, NewMemoryStore(10))
	sk := newSecretKey(t)
	for i, frac := range []time.Duration{0, time.Microsecond, 500 * time.Millisecond, time.Second - time.Microsecond} {
		p := sign(t, sk, tsAt(time.Duration(i)*time.Second+frac), 300, "x")
		wantStatus(t, r.putPacket(p), 204)
		resp, _ := r.get(sk.PublicKey(), nil)
		wantStatus(t, resp, 200)
		lm := resp.Header.Get("Last-Modified")
		if lm == "" {
			t.Fatal("no Last-Modified")
		}
		resp, body := r.get(sk.PublicKey(), http.Header{"If-Modified-Since": {lm}})
		if resp.StatusCode != 304 || len(body) != 0 {
			t.Errorf("packet at +%v: If-Modified-Since = Last-Modified %q answered %d with %d bytes, want 304",
				frac, lm, resp.StatusCode, len(body))
		}
	}
	// The next second's packet is newer than the echoed date.
	resp, _ := r.get(sk.PublicKey(), nil)
	lm := resp.Header.Get("Last-Modified")
	wantStatus(t, r.putPacket(sign(t, sk, tsAt(10*time.Second), 300, "y")), 204)
	resp, _ = r.get(sk.PublicKey(), http.Header{"If-Modified-Since": {lm}})
	wantStatus(t, resp, 200)
}

func TestIfModifiedSince(t *testing.T) {
	r := newRelay(t, NewMemoryStore(10))
	onSecond := newSecretKey(t) // packet stamped exactly on a second
	halfPast := newSecretKey(t) // packet stamped half a second later
	wantStatus(t, r.putPacket(sign(t, onSecond, tsAt(0), 300, "x")), 204)
	wantStatus(t, r.putPacket(sign(t, halfPast, tsAt(500*time.Millisecond), 300, "x")), 204)

	date := func(d time.Duration) string { return epoch.Add(d).Format(http.TimeFormat) }
	cases := []struct {
		name   string
		sk     *pkarrclient.SecretKey
		header string
		want   int
	}{
		{"equal second", onSecond, date(0), 304},
		{"one second earlier", onSecond, date(-time.Second), 200},
		{"later header", onSecond, date(time.Hour), 304},
		{"RFC 850 form", onSecond, epoch.Format(time.RFC850), 304},
		{"ANSI C form", onSecond, epoch.Format(time.ANSIC), 304},
		// HTTP dates have whole seconds, and Last-Modified shows the
		// packet's second: a header naming that second is an echo of
		// Last-Modified and revalidates, as in net/http and pkarr-relay.
		{"packet half a second after the header's second", halfPast, date(0), 304},
		{"header one second before a half-second packet", halfPast, date(-time.Second), 200},
		{"header one second after a half-second packet", halfPast, date(time.Second), 304},
		{"garbage", onSecond, "yesterday", 200},
		{"empty", onSecond, "", 200},
		{"before the epoch", onSecond, "Thu, 01 Jan 1950 00:00:00 GMT", 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := r.get(tc.sk.PublicKey(), http.Header{"If-Modified-Since": {tc.header}})
			wantStatus(t, resp, tc.want)
			wantHeader(t, resp, "Access-Control-Allow-Origin", "*")
			wantHeader(t, resp, "Cache-Control", "public, max-age=300")
			if resp.Header.Get("Last-Modified") == "" {
				t.Error("no Last-Modified")
			}
			if tc.want == 304 && len(body) != 0 {
				t.Errorf("304 with a %d-byte body", len(body))
			}
			if tc.want == 200 && len(body) == 0 {
				t.Error("200 with an empty body (the bug of relays before version 7)")
			}
		})
	}
}

func TestOptionsPreflight(t *testing.T) {
	r := newRelay(t, NewMemoryStore(10), WithBasePath("/pkarr"))
	sk := newSecretKey(t)
	for _, tc := range []struct{ requested, allowed string }{
		// What the browser asks for is what it gets: pkarr 7's client sends
		// Cache-Control on NetworkOnly resolves.
		{"content-type", "content-type"},
		{"cache-control", "cache-control"},
		{"Content-Type, If-Modified-Since, Cache-Control", "Content-Type, If-Modified-Since, Cache-Control"},
		// Nothing asked, or nothing that is a header list: the fixed set.
		{"", preflightHeaders},
		{"content-type;q=1", preflightHeaders},
		{"x-a:b", preflightHeaders},
		{"a,,b", preflightHeaders},
		{"bad header", preflightHeaders},
		{strings.Repeat("x", 600), preflightHeaders},
	} {
		for _, url := range []string{r.keyURL(sk.PublicKey()), r.base, r.base + "/", r.base + "/not-a-key"} {
			hdr := http.Header{"Origin": {"https://example.com"}, "Access-Control-Request-Method": {"GET"}}
			if tc.requested != "" {
				hdr.Set("Access-Control-Request-Headers", tc.requested)
			}
			resp, body := r.do(http.MethodOptions, url, nil, hdr)
			wantStatus(t, resp, http.StatusNoContent)
			if len(body) != 0 {
				t.Errorf("OPTIONS %s: %d-byte body", url, len(body))
			}
			wantHeader(t, resp, "Access-Control-Allow-Origin", "*")
			wantHeader(t, resp, "Access-Control-Allow-Methods", "GET, HEAD, PUT, OPTIONS")
			wantHeader(t, resp, "Access-Control-Allow-Headers", tc.allowed)
			wantHeader(t, resp, "Access-Control-Max-Age", "86400")
		}
	}
}

func TestBasePath(t *testing.T) {
	for _, base := range []string{"/pkarr", "/pkarr/", "/a/b"} {
		t.Run(base, func(t *testing.T) {
			r := newRelay(t, NewMemoryStore(10), WithBasePath(base))
			sk := newSecretKey(t)
			p := sign(t, sk, tsAt(0), 300, "x")
			key := sk.PublicKey().String()
			root := r.srv.URL

			wantStatus(t, r.putPacket(p), http.StatusNoContent)
			resp, _ := r.get(sk.PublicKey(), nil)
			wantStatus(t, resp, http.StatusOK)

			for _, path := range []string{"/other/" + key, "/" + key, "/", "/pkarrx/" + key} {
				resp, _ := r.do(http.MethodGet, root+path, nil, nil)
				wantStatus(t, resp, http.StatusNotFound)
				wantHeader(t, resp, "Access-Control-Allow-Origin", "*")
				resp, _ = r.do(http.MethodPut, root+path, bytes.NewReader(p.RelayPayload()), nil)
				wantStatus(t, resp, http.StatusNotFound)
			}
			for _, path := range []string{r.base, r.base + "/"} {
				resp, body := r.do(http.MethodGet, path, nil, nil)
				wantStatus(t, resp, http.StatusOK)
				if !strings.Contains(string(body), "pkarr relay") {
					t.Errorf("index page %q", body)
				}
			}
		})
	}
}

func TestMethodNotAllowed(t *testing.T) {
	r := newRelay(t, NewMemoryStore(10))
	key := newSecretKey(t).PublicKey()
	for _, method := range []string{http.MethodPost, http.MethodDelete, http.MethodPatch, "BREW"} {
		resp, _ := r.do(method, r.keyURL(key), nil, nil)
		wantStatus(t, resp, http.StatusMethodNotAllowed)
		wantHeader(t, resp, "Allow", "GET, HEAD, PUT, OPTIONS")
		resp, _ = r.do(method, r.base+"/", nil, nil)
		wantStatus(t, resp, http.StatusMethodNotAllowed)
		wantHeader(t, resp, "Allow", "GET, HEAD, OPTIONS")
	}
	resp, _ := r.do(http.MethodPut, r.base+"/", bytes.NewReader([]byte("x")), nil)
	wantStatus(t, resp, http.StatusMethodNotAllowed)
}

func TestIndexPage(t *testing.T) {
	r := newRelay(t, NewMemoryStore(10), WithVersion("1.2.3"))
	for range 3 {
		sk := newSecretKey(t)
		wantStatus(t, r.putPacket(sign(t, sk, tsAt(0), 300, "x")), 204)
	}
	r.clock.Advance(90*time.Minute + 5*time.Second + 300*time.Millisecond)
	resp, body := r.do(http.MethodGet, r.base+"/", nil, nil)
	wantStatus(t, resp, http.StatusOK)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q", ct)
	}
	if !containsAll(string(body), "version: 1.2.3", "packets: 3", "uptime: 1h30m5s") {
		t.Errorf("index page:\n%s", body)
	}
	resp, body = r.do(http.MethodHead, r.base+"/", nil, nil)
	wantStatus(t, resp, http.StatusOK)
	if len(body) != 0 {
		t.Error("HEAD index returned a body")
	}
}

func TestNewHandlerRejectsBadOptions(t *testing.T) {
	store := NewMemoryStore(1)
	cases := map[string][]Option{
		"base path without slash":    {WithBasePath("pkarr")},
		"base path with double /":    {WithBasePath("//x")},
		"nil clock":                  {WithClock(nil)},
		"negative margin":            {WithFutureMargin(-time.Second)},
		"inverted TTL bounds":        {WithTTLClamp(10, 5)},
		"zero write rate":            {WithWriteRateLimit(0, 10)},
		"zero read burst":            {WithReadRateLimit(5, 0)},
		"zero table size":            {WithLimiterTableSize(0)},
		"invalid trusted prefix":     {WithTrustedProxies(netip.Prefix{})},
		"nil logger":                 {WithLogger(nil)},
		"nil registerer":             {WithRegisterer(nil)},
		"nil upstream":               {WithUpstream(nil)},
		"no upstream slots":          {WithUpstreamBudget(0, 10, 10)},
		"zero upstream rate":         {WithUpstreamBudget(4, 0, 10)},
		"negative upstream rate":     {WithUpstreamBudget(4, -1, 10)},
		"zero upstream burst":        {WithUpstreamBudget(4, 10, 0)},
		"negative negative-cache":    {WithNegativeCacheTTL(-time.Second)},
		"zero upstream timeout":      {WithUpstreamTimeout(0)},
		"zero upstream cache":        {WithUpstreamCacheSize(0)},
		"no publish workers":         {WithPublishQueue(0, 10)},
		"no publish queue":           {WithPublishQueue(1, 0)},
		"negative publish retries":   {WithPublishRetries(-1, time.Second)},
		"zero publish backoff":       {WithPublishRetries(1, 0)},
		"zero publish timeout":       {WithPublishTimeout(0)},
		"negative margin after good": {WithFutureMargin(time.Second), WithFutureMargin(-1)},
	}
	for name, opts := range cases {
		if _, err := NewHandler(store, opts...); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: err = %v, want ErrInvalidConfig", name, err)
		}
	}
	if _, err := NewHandler(nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("nil store: err = %v", err)
	}
	reg := prometheus.NewRegistry()
	if _, err := NewHandler(store, WithRegisterer(reg)); err != nil {
		t.Fatal(err)
	}
	if _, err := NewHandler(store, WithRegisterer(reg)); err == nil {
		t.Error("registering a second handler's metrics on one registry succeeded")
	}
}

func TestStoreFailures(t *testing.T) {
	sk := newSecretKey(t)
	p := sign(t, sk, tsAt(0), 300, "x")
	boom := errors.New("disk on fire")
	cases := []struct {
		name     string
		err      error
		wantPut  int
		wantGet  int
		wantWarn bool
	}{
		{"failure", boom, 500, 500, true},
		{"closed", ErrClosed, 503, 503, false},
		{"corrupt", fmt.Errorf("%w: bad bytes", ErrCorrupt), 500, 500, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			store := &funcStore{
				Store: NewMemoryStore(10),
				put:   func(context.Context, *pkarrclient.SignedPacket) (PutOutcome, error) { return 0, tc.err },
				get:   func(context.Context, pkarrclient.PublicKey) (Record, error) { return Record{}, tc.err },
			}
			logs := &logCapture{}
			r := newRelay(t, store, WithLogger(slog.New(logs)))
			resp, body := r.do(http.MethodPut, r.keyURL(sk.PublicKey()), bytes.NewReader(p.RelayPayload()), nil)
			wantStatus(t, resp, tc.wantPut)
			if strings.Contains(string(body), "fire") {
				t.Errorf("internal error leaked to the client: %q", body)
			}
			resp, _ = r.get(sk.PublicKey(), nil)
			wantStatus(t, resp, tc.wantGet)
			if got := logs.count(slog.LevelWarn); (got > 0) != tc.wantWarn {
				t.Errorf("%d warnings logged, want warnings: %v", got, tc.wantWarn)
			}
		})
	}
}

// logCapture is a slog.Handler that keeps every record.
type logCapture struct {
	mu      sync.Mutex
	records []slog.Record
}

func (l *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCapture) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, r.Clone())
	return nil
}
func (l *logCapture) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logCapture) WithGroup(string) slog.Handler      { return l }

func (l *logCapture) count(level slog.Level) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.records {
		if r.Level == level {
			n++
		}
	}
	return n
}

func (l *logCapture) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, r := range l.records {
		b.WriteString(r.Message)
		r.Attrs(func(a slog.Attr) bool {
			fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
			return true
		})
		b.WriteByte('\n')
	}
	return b.String()
}

func TestLogsOneDebugLinePerRequestWithoutBodies(t *testing.T) {
	logs := &logCapture{}
	r := newRelay(t, NewMemoryStore(10), WithLogger(slog.New(logs)))
	sk := newSecretKey(t)
	secret := "very-secret-record-value"
	wantStatus(t, r.putPacket(sign(t, sk, tsAt(0), 300, secret)), 204)
	resp, _ := r.get(sk.PublicKey(), nil)
	wantStatus(t, resp, 200)
	resp, _ = r.get(newSecretKey(t).PublicKey(), nil)
	wantStatus(t, resp, 404)
	if n := logs.count(slog.LevelDebug); n != 3 {
		t.Errorf("%d debug lines for 3 requests", n)
	}
	text := logs.text()
	if strings.Contains(text, secret) {
		t.Error("a packet body reached the log")
	}
	if !containsAll(text, "method=PUT", "status=204", "method=GET", "status=404", "client=127.0.0.1") {
		t.Errorf("log lines lack request fields:\n%s", text)
	}
}

// TestRateLimitDefaults checks that a handler built without rate options
// limits writes as pkarr-relay does: a burst of 10.
func TestRateLimitDefaults(t *testing.T) {
	r := newRelay(t, NewMemoryStore(10),
		WithWriteRateLimit(DefaultWriteRate, DefaultWriteBurst),
		WithReadRateLimit(DefaultReadRate, DefaultReadBurst))
	key := newSecretKey(t).PublicKey()
	for range DefaultWriteBurst {
		wantStatus(t, r.put(key, []byte("junk")), http.StatusBadRequest)
	}
	wantStatus(t, r.put(key, []byte("junk")), http.StatusTooManyRequests)
	for range DefaultReadBurst {
		resp, _ := r.get(key, nil)
		wantStatus(t, resp, http.StatusNotFound)
	}
	resp, _ := r.get(key, nil)
	wantStatus(t, resp, http.StatusTooManyRequests)

	h, err := NewHandler(NewMemoryStore(1))
	if err != nil {
		t.Fatal(err)
	}
	if h.writeLim == nil || h.writeLim.limit != 2 || h.writeLim.burst != 10 || h.readLim == nil {
		t.Errorf("default limits: write %+v read %+v", h.writeLim, h.readLim)
	}
}
