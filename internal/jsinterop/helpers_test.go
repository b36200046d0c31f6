package jsinterop

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/time/rate"

	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/pkarrrelay"
)

// opTimeout bounds one publish or resolve by our side.
const opTimeout = 60 * time.Second

func opContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), opTimeout)
	t.Cleanup(cancel)
	return ctx
}

// seed returns a 32-byte Ed25519 seed, fixed per test and label, as hex:
// both sides derive the same key from it (RFC 8032), which the tests check.
func seed(t testing.TB, label string) string {
	s := sha256.Sum256([]byte(t.Name() + "\x00" + label))
	return hex.EncodeToString(s[:])
}

// secretKey is our side's key for a seed.
func secretKey(t testing.TB, seedHex string) *pkarrclient.SecretKey {
	t.Helper()
	b, err := hex.DecodeString(seedHex)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := pkarrclient.SecretKeyFromSeed(b)
	if err != nil {
		t.Fatal(err)
	}
	return sk
}

// jsPacket is a signed packet as the JS side holds it (driver.mjs's
// describe).
type jsPacket struct {
	PublicKey string     `json:"publicKey"`
	Timestamp string     `json:"timestamp"`
	Signature string     `json:"signature"`
	DNS       string     `json:"dns"`
	Payload   string     `json:"payload"`
	Answers   []jsAnswer `json:"answers"`
}

// jsAnswer is one record as dns-packet decoded it.
type jsAnswer struct {
	Name string          `json:"name"`
	Type string          `json:"type"`
	TTL  uint32          `json:"ttl"`
	Data json.RawMessage `json:"data"`
}

// record is one record for the JS side to sign, in dns-packet's terms.
type record struct {
	Name string `json:"name"`
	Type string `json:"type"`
	TTL  uint32 `json:"ttl"`
	Data any    `json:"data"`
}

// signArgs are the arguments of the driver's sign, relayPut and put
// requests.
type signArgs struct {
	Name      string   `json:"name,omitempty"` // DHT node, for DHT requests
	URL       string   `json:"url,omitempty"`  // relay, for relayPut
	Seed      string   `json:"seed"`
	Timestamp string   `json:"timestamp,omitempty"` // µs, for packets
	Seq       string   `json:"seq,omitempty"`       // µs, for BEP44 items
	Cas       *int64   `json:"cas,omitempty"`
	Records   []record `json:"records,omitempty"`
	PadTo     int      `json:"padTo,omitempty"`
	Nodes     []string `json:"nodes,omitempty"` // probePut, probeGet
	PublicKey string   `json:"publicKey,omitempty"`
}

// longText is longer than one TXT character-string (255 bytes), as
// phrasemeet's sealed entries are.
var longText = strings.Repeat("0123456789abcdef", 25) // 400 bytes

// jsRecords are what the JS side signs: each type phrasemeet or pkarr
// users publish, a TXT value split into two character-strings, and names
// given relative, as "@" and absolute-looking.
func jsRecords() []record {
	return []record{
		{Name: "_foo", Type: "TXT", TTL: 300, Data: "hello from pkarr js"},
		{Name: "_long", Type: "TXT", TTL: 300, Data: []string{longText[:255], longText[255:]}},
		{Name: "@", Type: "A", TTL: 60, Data: "127.0.0.1"},
		{Name: "@", Type: "AAAA", TTL: 60, Data: "::1"},
		{Name: "www.", Type: "CNAME", TTL: 120, Data: "target.example"},
	}
}

// checkJSPacket checks a packet the JS side signed, as our side got it:
// the same bytes, and records that read back as the JS side wrote them.
func checkJSPacket(t testing.TB, got *pkarrclient.SignedPacket, want jsPacket) {
	t.Helper()
	if got.PublicKey().String() != want.PublicKey {
		t.Errorf("key %s, JS signed under %s", got.PublicKey(), want.PublicKey)
	}
	if ts := strconv.FormatUint(uint64(got.Timestamp()), 10); ts != want.Timestamp {
		t.Errorf("timestamp %s, JS signed %s", ts, want.Timestamp)
	}
	if s := hex.EncodeToString(got.Signature()); s != want.Signature {
		t.Errorf("signature %s, JS signed %s", s, want.Signature)
	}
	if d := hex.EncodeToString(got.DNS()); d != want.DNS {
		t.Errorf("DNS bytes differ:\nours %s\nJS   %s", d, want.DNS)
	}
	if p := hex.EncodeToString(got.RelayPayload()); p != want.Payload {
		t.Errorf("relay payload differs:\nours %s\nJS   %s", p, want.Payload)
	}
	if v := got.TXT("_foo"); len(v) != 1 || v[0] != "hello from pkarr js" {
		t.Errorf(`TXT "_foo" = %q`, v)
	}
	if v := got.TXT("_long"); len(v) != 1 || v[0] != longText {
		t.Errorf(`TXT "_long" = %q, want the two character-strings joined`, v)
	}
	checkAddr(t, got, dns.TypeA, "127.0.0.1", 60)
	checkAddr(t, got, dns.TypeAAAA, "::1", 60)
	cn := got.RecordsNamed("www")
	if len(cn) != 1 {
		t.Errorf(`records named "www": %v`, cn)
	} else if c, ok := cn[0].(*dns.CNAME); !ok || c.Target != "target.example." || c.Hdr.Ttl != 120 {
		t.Errorf(`record "www" = %v, want CNAME target.example. with TTL 120`, cn[0])
	}
}

func checkAddr(t testing.TB, p *pkarrclient.SignedPacket, typ uint16, want string, ttl uint32) {
	t.Helper()
	var found []string
	for _, rr := range p.RecordsNamed("@") {
		if rr.Header().Rrtype != typ {
			continue
		}
		var ip string
		switch r := rr.(type) {
		case *dns.A:
			ip = r.A.String()
		case *dns.AAAA:
			ip = r.AAAA.String()
		}
		found = append(found, ip)
		if ip == want && rr.Header().Ttl != ttl {
			t.Errorf("%s %s has TTL %d, want %d", dns.TypeToString[typ], ip, rr.Header().Ttl, ttl)
		}
	}
	if len(found) != 1 || found[0] != want {
		t.Errorf("%s records at the apex: %v, want [%s]", dns.TypeToString[typ], found, want)
	}
}

// goPacket signs the records our side publishes in these tests.
func goPacket(t testing.TB, sk *pkarrclient.SecretKey, ts pkarrclient.Timestamp) *pkarrclient.SignedPacket {
	t.Helper()
	p, err := pkarrclient.NewBuilder().Timestamp(ts).
		TXT("_bar", 300, "hello from go").
		TXT("@", 300, longText).
		Address("@", 60, netip.MustParseAddr("127.0.0.1")).
		Address("@", 60, netip.MustParseAddr("::1")).
		CNAME("www", 120, "target.example").
		Sign(sk)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// paddedGoPacket signs a packet whose DNS message is exactly size bytes.
func paddedGoPacket(t testing.TB, sk *pkarrclient.SecretKey, ts pkarrclient.Timestamp, size int) *pkarrclient.SignedPacket {
	t.Helper()
	sign := func(n int) *pkarrclient.SignedPacket {
		p, err := pkarrclient.NewBuilder().Timestamp(ts).TXT("_pad", 300, strings.Repeat("x", n)).Sign(sk)
		if err != nil && !errors.Is(err, pkarrclient.ErrPacketTooLarge) {
			t.Fatal(err)
		}
		return p
	}
	// Each byte of value adds one byte, and each 255-byte chunk one more:
	// count up from a size that is surely below.
	for n := size - 120; n <= size; n++ {
		if p := sign(n); p != nil && len(p.DNS()) == size {
			return p
		}
	}
	t.Fatalf("no TXT padding gives a %d-byte DNS message", size)
	return nil
}

// checkGoPacket checks a packet our side signed, as the JS side got it.
func checkGoPacket(t testing.TB, got jsPacket, want *pkarrclient.SignedPacket) {
	t.Helper()
	z := want.PublicKey().String()
	if got.PublicKey != z {
		t.Errorf("JS key %s, we signed under %s", got.PublicKey, z)
	}
	if ts := strconv.FormatUint(uint64(want.Timestamp()), 10); got.Timestamp != ts {
		t.Errorf("JS timestamp %s, we signed %s", got.Timestamp, ts)
	}
	if s := hex.EncodeToString(want.Signature()); got.Signature != s {
		t.Errorf("JS signature %s, we signed %s", got.Signature, s)
	}
	if d := hex.EncodeToString(want.DNS()); got.DNS != d {
		t.Errorf("DNS bytes differ:\nJS   %s\nours %s", got.DNS, d)
	}
	type rec struct {
		name, typ string
		ttl       uint32
		data      string
	}
	var have []rec
	for _, a := range got.Answers {
		r := rec{name: a.Name, typ: a.Type, ttl: a.TTL}
		if a.Type == "TXT" {
			var parts []string
			if err := json.Unmarshal(a.Data, &parts); err != nil {
				t.Errorf("TXT data %s: %v", a.Data, err)
			}
			r.data = strings.Join(parts, "")
		} else if err := json.Unmarshal(a.Data, &r.data); err != nil {
			t.Errorf("%s data %s: %v", a.Type, a.Data, err)
		}
		have = append(have, r)
	}
	wantRecs := []rec{
		{"_bar." + z, "TXT", 300, "hello from go"},
		{z, "TXT", 300, longText},
		{z, "A", 60, "127.0.0.1"},
		{z, "AAAA", 60, "::1"},
		{"www." + z, "CNAME", 120, "target.example"},
	}
	if fmt.Sprint(have) != fmt.Sprint(wantRecs) {
		t.Errorf("JS decoded the records as\n%v\nwant\n%v", have, wantRecs)
	}
}

// startOurRelay serves our relay (pkarrrelay's Handler and Server, a memory
// store, no rate limits) on 127.0.0.1 until the test ends, and returns its
// URL. opts are added to the handler's.
func startOurRelay(t testing.TB, opts ...pkarrrelay.Option) string {
	t.Helper()
	h, err := pkarrrelay.NewHandler(pkarrrelay.NewMemoryStore(1000), append([]pkarrrelay.Option{
		pkarrrelay.WithWriteRateLimit(rate.Inf, 0),
		pkarrrelay.WithReadRateLimit(rate.Inf, 0),
		pkarrrelay.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := pkarrrelay.NewServer(h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := srv.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("relay: %v", err)
		}
	})
	return srv.URL()
}

// relayClient is our client over the given relays.
func relayClient(t testing.TB, urls ...string) *pkarrclient.Client {
	t.Helper()
	c, err := pkarrclient.NewRelayClient(urls, pkarrclient.RelayTimeout(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// ts formats a timestamp for the JS side.
func ts(t pkarrclient.Timestamp) string { return strconv.FormatUint(uint64(t), 10) }
