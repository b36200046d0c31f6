package pkarrrelay

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/phrasemeet/discovery/pkarrclient"
	"golang.org/x/time/rate"
)

// Fuzz targets for what HTTP clients and proxies send the relay.

// fuzzTrusted turns a comma-separated list into trusted proxy prefixes the
// way WithTrustedProxies stores them; entries that do not parse are dropped.
func fuzzTrusted(spec string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range strings.Split(spec, ",") {
		if p, err := netip.ParsePrefix(strings.TrimSpace(s)); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}

// xffEntry parses one X-Forwarded-For entry as the documentation promises:
// an address, with or without a port, IPv4-mapped IPv6 read as IPv4, zone
// dropped.
func xffEntry(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return netip.Addr{}, false
		}
		a = ap.Addr()
	}
	return a.Unmap().WithZone(""), true
}

func trustedBy(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if a.IsValid() && p.Contains(a) {
			return true
		}
	}
	return false
}

// checkNormalized holds for every address the rate limiter may key on.
func checkNormalized(t *testing.T, what string, a netip.Addr) {
	t.Helper()
	if a.Is4In6() || a.Zone() != "" {
		t.Fatalf("%s %v is not normalized (IPv4-mapped or zoned)", what, a)
	}
}

// FuzzForwardedFor checks the X-Forwarded-For walk against its contract:
// the answer is an entry of the header whose right-hand neighbours all
// parse and are trusted proxies, and it is untrusted unless it is the
// leftmost entry. Above all, whatever a client writes into the header, the
// address a trusted proxy appends for it is the one that counts.
func FuzzForwardedFor(f *testing.F) {
	const proxies = "10.0.0.0/8, fd00::/8"
	for _, tc := range []struct{ a, b string }{
		{"198.51.100.1", ""},
		{"203.0.113.5, 198.51.100.1, 10.9.9.9", ""},
		{"203.0.113.5", "198.51.100.1,10.9.9.9"},
		{" 198.51.100.1:4444 , 10.0.0.1 ", ""},
		{"[2001:db8::1]:443", ""},
		{"10.0.0.9, 10.0.0.8", ""},
		{"198.51.100.1, not-an-ip", ""},
		{"198.51.100.1,,10.0.0.1", ""},
		{"", ""},
		{",", ","},
		{"::ffff:10.1.2.3, fe80::1%eth0", ""},
		{"[fd00::1%25x]:1, ::ffff:198.51.100.2", ""},
	} {
		f.Add(tc.a, tc.b, proxies, []byte{203, 0, 113, 9}, false)
	}
	f.Add("1.2.3.4", "", "", []byte(nil), true)
	f.Add("1.2.3.4", "", "0.0.0.0/0, ::/0", []byte{1, 2, 3, 4}, true)
	f.Add("10.0.0.1", "", "::ffff:10.0.0.0/104", []byte(netip.MustParseAddr("2001:db8::7").AsSlice()), true)
	f.Fuzz(func(t *testing.T, xff1, xff2, trustedSpec string, client []byte, port bool) {
		trusted := fuzzTrusted(trustedSpec)
		values := []string{xff1}
		if xff2 != "" {
			values = append(values, xff2)
		}
		got, ok := forwardedFor(values, trusted)

		header := strings.Join(values, ",")
		entries := strings.Split(header, ",")
		// Walk the entries from the right while they are trusted proxies.
		i := len(entries) - 1
		var a netip.Addr
		parsed := false
		for ; i >= 0; i-- {
			if a, parsed = xffEntry(entries[i]); !parsed || !trustedBy(a, trusted) || i == 0 {
				break
			}
		}
		switch {
		case strings.TrimSpace(header) == "":
			if ok {
				t.Fatalf("forwardedFor(%q) = %v from an empty header", values, got)
			}
		case !parsed:
			if ok {
				t.Fatalf("forwardedFor(%q) = %v, but entry %d (%q) is malformed", values, got, i, entries[i])
			}
		default:
			if !ok || got != a {
				t.Fatalf("forwardedFor(%q, %v) = %v, %v; want entry %d, %v", values, trusted, got, ok, i, a)
			}
			checkNormalized(t, "forwardedFor", got)
		}

		// The client's own proxy appends the address it saw. Whatever the
		// client put before it, that address is the answer, also behind a
		// further trusted proxy.
		c, cok := netip.AddrFromSlice(client)
		if !cok || trustedBy(c.Unmap(), trusted) {
			return
		}
		cs := c.String()
		if port {
			cs = netip.AddrPortFrom(c, 443).String()
		}
		chain := append(append([]string(nil), values...), cs)
		if got, ok := forwardedFor(chain, trusted); !ok || got != c.Unmap() {
			t.Fatalf("forwardedFor(%q, %v) = %v, %v; the proxy-appended client is %v", chain, trusted, got, ok, c)
		}
		if len(trusted) > 0 && trustedBy(trusted[0].Addr().Unmap(), trusted) {
			chain = append(chain, trusted[0].Addr().String())
			if got, ok := forwardedFor(chain, trusted); !ok || got != c.Unmap() {
				t.Fatalf("forwardedFor(%q, %v) = %v, %v; the proxy-appended client is %v", chain, trusted, got, ok, c)
			}
		}
	})
}

// FuzzClientAddr checks the address a request is rate-limited under: the
// peer, or (only for a trusted peer) an address that appears in
// X-Forwarded-For; always normalized and, for IPv6, a /64. A client talking
// to the relay directly cannot move its requests to another bucket.
func FuzzClientAddr(f *testing.F) {
	const proxies = "10.0.0.0/8, fd00::/8"
	for _, tc := range []struct{ remote, xff string }{
		{"192.0.2.7:5555", ""},
		{"192.0.2.7:5555", "198.51.100.1"},
		{"10.1.2.3:5555", "198.51.100.1"},
		{"10.1.2.3:5555", "203.0.113.5, 198.51.100.1, 10.9.9.9"},
		{"10.1.2.3:5555", "198.51.100.1, not-an-ip"},
		{"[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:80", ""},
		{"[::ffff:10.0.0.1]:80", "2001:db8::1"},
		{"[fe80::1%eth0]:80", ""},
		{"[fd00::1]:80", "192.0.2.44"},
		{"@", "192.0.2.44"},
		{"10.0.0.1", "[2001:db8:5::1]:9"},
		{"", ""},
	} {
		f.Add(tc.remote, tc.xff, "", proxies)
	}
	f.Add("10.0.0.1:1", "1.1.1.1", "2.2.2.2", "0.0.0.0/0")
	f.Fuzz(func(t *testing.T, remote, xff1, xff2, trustedSpec string) {
		trusted := fuzzTrusted(trustedSpec)
		req := &http.Request{RemoteAddr: remote, Header: http.Header{}}
		for _, v := range []string{xff1, xff2} {
			if v != "" {
				req.Header.Add("X-Forwarded-For", v)
			}
		}
		got := clientAddr(req, trusted)
		checkNormalized(t, "clientAddr", got)
		if got.Is6() {
			if b := got.As16(); !bytes.Equal(b[8:], make([]byte, 8)) {
				t.Fatalf("clientAddr = %v, not a /64", got)
			}
		}

		// The peer, as the documentation describes it.
		var peer netip.Addr
		if ap, err := netip.ParseAddrPort(remote); err == nil {
			peer = ap.Addr().Unmap().WithZone("")
		} else if a, err := netip.ParseAddr(remote); err == nil {
			peer = a.Unmap().WithZone("")
		}
		peerKey := bucketKey(peer)
		if alone := clientAddr(&http.Request{RemoteAddr: remote}, trusted); alone != peerKey {
			t.Fatalf("clientAddr without a header = %v, want the peer's bucket %v", alone, peerKey)
		}
		if !trustedBy(peer, trusted) {
			if got != peerKey {
				t.Fatalf("untrusted peer %q with X-Forwarded-For %q is counted as %v, not as itself (%v)",
					remote, req.Header.Values("X-Forwarded-For"), got, peerKey)
			}
			return
		}
		if got == peerKey {
			return
		}
		for _, e := range strings.Split(strings.Join(req.Header.Values("X-Forwarded-For"), ","), ",") {
			if a, ok := xffEntry(e); ok && bucketKey(a) == got {
				return
			}
		}
		t.Fatalf("clientAddr(%q, %q) = %v: neither the peer nor a header entry", remote, req.Header.Values("X-Forwarded-For"), got)
	})
}

// fuzzKey is the fuzz targets' fixed signing key, so their inputs replay.
func fuzzKey(t testing.TB, b byte) *pkarrclient.SecretKey {
	t.Helper()
	sk, err := pkarrclient.SecretKeyFromSeed(bytes.Repeat([]byte{b}, pkarrclient.SeedSize))
	if err != nil {
		t.Fatal(err)
	}
	return sk
}

// Modes of FuzzHandler's body.
const (
	// fuzzSignBody: the body is a DNS message; the harness signs it with
	// the fixed key at the input's timestamp, so the fuzzer reaches past
	// the signature check with DNS of its own.
	fuzzSignBody = 1 << iota
)

// shortBody delivers b and then, like net/http's body reader when the
// client sends less than its Content-Length, io.ErrUnexpectedEOF.
type shortBody struct{ r io.Reader }

func (s *shortBody) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// FuzzHandler drives the relay's Handler with arbitrary requests against a
// memory store that already holds a packet. Invariants: the status is one
// the API documents (and, with rate limits off and a healthy store, never
// 429, 500 or 503); every 200 for a key carries a payload that verifies
// under that key; a request that does not answer 204 to a PUT leaves the
// store as it was; after a 204 to a PUT, GET and HEAD of the same path
// return exactly the payload bytes that were sent.
func FuzzHandler(f *testing.F) {
	sk := fuzzKey(f, 0x42)
	other := fuzzKey(f, 0x43)
	key := "/" + sk.PublicKey().String()
	held := sign(f, sk, tsAt(-time.Hour), 300, "held")
	newer := sign(f, sk, tsAt(0), 60, "newer")
	older := sign(f, sk, tsAt(-2*time.Hour), 60, "older")
	future := sign(f, sk, tsAt(time.Hour), 60, "future")
	lastMod, _ := httpDate(held.Timestamp())
	big := bytes.Repeat([]byte{'x'}, pkarrclient.MaxPayloadSize+1)

	type seed struct {
		method, path, ims, xff string
		cl                     int64
		body                   []byte
		mode                   uint8
		ts                     uint64
	}
	seeds := []seed{
		{"PUT", key, "", "", -1, newer.RelayPayload(), 0, 0},
		{"PUT", key, "", "", int64(len(newer.RelayPayload())), newer.RelayPayload(), 0, 0},
		{"PUT", key, "", "198.51.100.1", -1, older.RelayPayload(), 0, 0},
		{"PUT", key, "", "", -1, held.RelayPayload(), 0, 0},
		{"PUT", key, "", "", -1, future.RelayPayload(), 0, 0},
		{"PUT", "/" + other.PublicKey().String(), "", "", -1, newer.RelayPayload(), 0, 0},
		{"PUT", key, "", "", 5000, newer.RelayPayload(), 0, 0},
		{"PUT", key, "", "", -1, big, 0, 0},
		{"PUT", key, "", "", 2000, newer.RelayPayload()[:100], 0, 0},
		{"PUT", key, "", "", 100, newer.RelayPayload(), 0, 0},
		{"PUT", key, "", "", -1, nil, 0, 0},
		{"PUT", key, "", "", -1, newer.DNS(), fuzzSignBody, uint64(tsAt(0))},
		{"PUT", key, "", "", -1, newer.DNS(), fuzzSignBody, uint64(tsAt(time.Minute))},
		{"PUT", key, "", "", -1, []byte{0, 0, 0x84, 0, 0, 0, 0, 0, 0, 0, 0, 0}, fuzzSignBody, uint64(tsAt(0))},
		{"PUT", key, "", "", -1, []byte("not dns"), fuzzSignBody, uint64(tsAt(0))},
		{"GET", key, "", "", -1, nil, 0, 0},
		{"GET", key, lastMod, "", -1, nil, 0, 0},
		{"GET", key, "Mon, 01 Jan 0001 00:00:00 GMT", "", -1, nil, 0, 0},
		{"GET", key, "garbage", "", -1, nil, 0, 0},
		{"HEAD", key, lastMod, "", -1, nil, 0, 0},
		{"HEAD", key, "", "", -1, nil, 0, 0},
		{"OPTIONS", key, "", "", -1, nil, 0, 0},
		{"DELETE", key, "", "", -1, nil, 0, 0},
		{"POST", "/", "", "", -1, nil, 0, 0},
		{"GET", "/", "", "", -1, nil, 0, 0},
		{"HEAD", "/", "", "", -1, nil, 0, 0},
		{"OPTIONS", "/", "", "", -1, nil, 0, 0},
		{"GET", "/" + other.PublicKey().String(), "", "", -1, nil, 0, 0},
		{"GET", "/" + strings.Repeat("y", 52), "", "", -1, nil, 0, 0},
		{"GET", "/pk:" + sk.PublicKey().String(), "", "", -1, nil, 0, 0},
		{"GET", key + "/x", "", "", -1, nil, 0, 0},
		{"GET", "", "", "", -1, nil, 0, 0},
		{"", key, "", "10.0.0.1, 2001:db8::1", -1, nil, 0, 0},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.ims, s.xff, s.cl, s.body, s.mode, s.ts)
	}

	logger := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f.Fuzz(func(t *testing.T, method, path, ims, xff string, cl int64, body []byte, mode uint8, ts uint64) {
		store := NewMemoryStore(16)
		defer store.Close()
		ctx := context.Background()
		if _, err := store.Put(ctx, held); err != nil {
			t.Fatal(err)
		}
		h, err := NewHandler(store,
			WithClock(clockwork.NewFakeClockAt(epoch)),
			WithWriteRateLimit(rate.Inf, 0),
			WithReadRateLimit(rate.Inf, 0),
			WithTrustedProxies(netip.MustParsePrefix("192.0.2.0/24")),
			WithLogger(logger))
		if err != nil {
			t.Fatal(err)
		}

		if mode&fuzzSignBody != 0 && len(body) <= pkarrclient.MaxPayloadSize {
			body = rawPayload(sk, pkarrclient.Timestamp(ts), body)
		}
		// What the handler can read: the whole body for an unknown length,
		// else at most Content-Length bytes, ending early with an error
		// when the client sent less.
		delivered := body
		var reader io.Reader = bytes.NewReader(body)
		if cl < 0 {
			cl = -1
		} else if cl <= int64(len(body)) {
			delivered = body[:cl]
			reader = bytes.NewReader(delivered)
		} else {
			reader = &shortBody{bytes.NewReader(body)}
		}

		serve := func(method, path string, header http.Header, body io.Reader, cl int64) *httptest.ResponseRecorder {
			req := &http.Request{
				Method:        method,
				URL:           &url.URL{Path: path},
				Proto:         "HTTP/1.1",
				ProtoMajor:    1,
				ProtoMinor:    1,
				Header:        header,
				Body:          io.NopCloser(body),
				ContentLength: cl,
				RemoteAddr:    "192.0.2.1:4242",
				Host:          "relay.test",
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			return w
		}
		header := http.Header{}
		if ims != "" {
			header.Set("If-Modified-Since", ims)
		}
		if xff != "" {
			header.Set("X-Forwarded-For", xff)
		}
		if cl >= 0 {
			header.Set("Content-Length", strconv.FormatInt(cl, 10))
		}
		w := serve(method, path, header, reader, cl)
		code := w.Code

		switch code {
		case http.StatusOK, http.StatusNoContent, http.StatusNotModified, http.StatusBadRequest,
			http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusConflict, http.StatusRequestEntityTooLarge:
		case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusServiceUnavailable:
			t.Fatalf("%s %q: %d with rate limits off and a healthy store: %q", method, path, code, w.Body.Bytes())
		default:
			t.Fatalf("%s %q: undocumented status %d: %q", method, path, code, w.Body.Bytes())
		}

		keyText, isKeyPath := strings.CutPrefix(path, "/")
		isKeyPath = isKeyPath && keyText != ""
		switch code {
		case http.StatusOK:
			if method != http.MethodGet && method != http.MethodHead {
				t.Fatalf("%s %q answered 200", method, path)
			}
			if isKeyPath {
				checkServedPayload(t, w, method, keyText)
			}
		case http.StatusNotModified:
			if !isKeyPath || method != http.MethodGet && method != http.MethodHead || w.Body.Len() != 0 {
				t.Fatalf("%s %q: 304 with a %d-byte body", method, path, w.Body.Len())
			}
		case http.StatusNoContent:
			if method != http.MethodPut && method != http.MethodOptions {
				t.Fatalf("%s %q answered 204", method, path)
			}
		case http.StatusMethodNotAllowed:
			if w.Header().Get("Allow") == "" {
				t.Fatalf("%s %q: 405 without Allow", method, path)
			}
		case http.StatusConflict:
			if method != http.MethodPut {
				t.Fatalf("%s %q answered 409", method, path)
			}
		case http.StatusRequestEntityTooLarge:
			if method != http.MethodPut || cl <= pkarrclient.MaxPayloadSize && len(delivered) <= pkarrclient.MaxPayloadSize {
				t.Fatalf("%s %q: 413 for %d bytes (Content-Length %d)", method, path, len(delivered), cl)
			}
		}
		// A declared length over the limit is refused before anything else.
		if code != http.StatusRequestEntityTooLarge && method == http.MethodPut && isKeyPath &&
			!strings.Contains(keyText, "/") && cl > pkarrclient.MaxPayloadSize {
			t.Fatalf("PUT %q: %d for Content-Length %d", path, code, cl)
		}

		// Only a 204 to a PUT may change the store.
		if method != http.MethodPut || code != http.StatusNoContent {
			if store.Len() != 1 {
				t.Fatalf("%s %q answered %d but the store now holds %d packets", method, path, code, store.Len())
			}
			rec, err := store.Get(ctx, held.PublicKey())
			if err != nil || !bytes.Equal(rec.Payload, held.RelayPayload()) {
				t.Fatalf("%s %q answered %d but the held packet changed (%v)", method, path, code, err)
			}
			return
		}

		// After a 204 the same path serves exactly what was sent.
		put, err := pkarrclient.ParseRelayPayload(mustKey(t, keyText), delivered)
		if err != nil {
			t.Fatalf("PUT %q: 204 for a payload that does not verify: %v", path, err)
		}
		if put.Timestamp() > pkarrclient.TimestampFromTime(epoch.Add(DefaultFutureMargin)) {
			t.Fatalf("PUT %q: 204 for a packet stamped %v, beyond the future margin", path, put.Timestamp())
		}
		if put.PublicKey() == held.PublicKey() && !bytes.Equal(delivered, held.RelayPayload()) && !put.MoreRecentThan(held) {
			t.Fatalf("PUT %q: 204 for a packet older than the one held", path)
		}
		g := serve(http.MethodGet, path, http.Header{}, http.NoBody, 0)
		if g.Code != http.StatusOK || !bytes.Equal(g.Body.Bytes(), delivered) {
			t.Fatalf("PUT %q answered 204, then GET answered %d with %d bytes, want the %d bytes sent",
				path, g.Code, g.Body.Len(), len(delivered))
		}
		hd := serve(http.MethodHead, path, http.Header{}, http.NoBody, 0)
		if hd.Code != http.StatusOK || hd.Body.Len() != 0 || hd.Header().Get("Content-Length") != strconv.Itoa(len(delivered)) {
			t.Fatalf("PUT %q answered 204, then HEAD answered %d, Content-Length %q, %d body bytes",
				path, hd.Code, hd.Header().Get("Content-Length"), hd.Body.Len())
		}
	})
}

// mustKey decodes the key of a request the relay answered with success:
// 52 z-base-32 characters (either case) holding an Ed25519 point.
func mustKey(t *testing.T, text string) pkarrclient.PublicKey {
	t.Helper()
	b, err := pkarrclient.DecodeZBase32(text)
	if err != nil || len(text) != 52 {
		t.Fatalf("key %q of a successful request does not decode: %v", text, err)
	}
	k, err := pkarrclient.PublicKeyFromBytes(b)
	if err != nil {
		t.Fatalf("key %q of a successful request: %v", text, err)
	}
	return k
}

// checkServedPayload checks a 200 for a key: the relay payload media type,
// a correct Content-Length, and (for GET) bytes that verify under the key.
func checkServedPayload(t *testing.T, w *httptest.ResponseRecorder, method, keyText string) {
	t.Helper()
	k := mustKey(t, keyText)
	if ct := w.Header().Get("Content-Type"); ct != PayloadContentType {
		t.Fatalf("%s %q: 200 with Content-Type %q", method, keyText, ct)
	}
	n, err := strconv.Atoi(w.Header().Get("Content-Length"))
	if err != nil || n < pkarrclient.PayloadHeaderSize || n > pkarrclient.MaxPayloadSize {
		t.Fatalf("%s %q: 200 with Content-Length %q", method, keyText, w.Header().Get("Content-Length"))
	}
	if method == http.MethodHead {
		if w.Body.Len() != 0 {
			t.Fatalf("HEAD %q: %d body bytes", keyText, w.Body.Len())
		}
		return
	}
	if w.Body.Len() != n {
		t.Fatalf("GET %q: Content-Length %d, body %d bytes", keyText, n, w.Body.Len())
	}
	if _, err := pkarrclient.ParseRelayPayload(k, w.Body.Bytes()); err != nil {
		t.Fatalf("GET %q: served a payload that does not verify: %v", keyText, err)
	}
}
