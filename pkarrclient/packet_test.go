package pkarrclient

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func testKey(t testing.TB, seedByte byte) *SecretKey {
	t.Helper()
	sk, err := SecretKeyFromSeed(bytes.Repeat([]byte{seedByte}, SeedSize))
	if err != nil {
		t.Fatal(err)
	}
	return sk
}

func mustSign(t testing.TB, sk *SecretKey, ts Timestamp, b *Builder) *SignedPacket {
	t.Helper()
	p, err := b.Timestamp(ts).Sign(sk)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// signRaw signs an arbitrary DNS message, bypassing the Builder, as a
// hostile publisher holding the key could.
func signRaw(sk *SecretKey, ts Timestamp, wire []byte) []byte {
	raw := make([]byte, HeaderSize+len(wire))
	copy(raw, sk.pub[:])
	copy(raw[PublicKeySize:], sk.Sign(signable(ts, wire)))
	binary.BigEndian.PutUint64(raw[PublicKeySize+SignatureSize:], uint64(ts))
	copy(raw[HeaderSize:], wire)
	return raw
}

func TestNormalizeName(t *testing.T) {
	const o = "8pinxxgqs41n4aididenw5apqp1urfmzdztr8jt4abrkdn435ewo"
	for _, tc := range []struct{ in, want string }{
		{"", o},
		{".", o},
		{"@", o},
		{"_foo", "_foo." + o},
		{"_foo.", "_foo." + o},
		{"a.b", "a.b." + o},
		{"_foo." + o, "_foo." + o},
		{"_foo." + o + ".", "_foo." + o},
		{o, o},
		{"_foo." + strings.ToUpper(o), "_foo." + strings.ToUpper(o)},
		{"_foo.@", "_foo." + o},
		{"example.com", "example.com." + o},
	} {
		if got := normalizeName(tc.in, o); got != tc.want {
			t.Errorf("normalizeName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestBuilderRecordTypes(t *testing.T) {
	sk := testKey(t, 1)
	origin := sk.PublicKey().String()
	https, err := dns.NewRR("_svc 3600 IN HTTPS 1 . alpn=h3 port=443")
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 300) + "\\\"\x00\xff"
	p := mustSign(t, sk, 42, NewBuilder().
		TXT("_txt", 60, "k=v").
		TXT("_long", 60, long).
		Address("@", 30, netip.MustParseAddr("192.0.2.1")).
		Address("v6", 30, netip.MustParseAddr("2001:db8::1")).
		Address("mapped", 30, netip.MustParseAddr("::ffff:192.0.2.7")).
		CNAME("alias", 120, "example.com").
		Record("mx 300 IN MX 10 mail.example.com.").
		RR(https).
		RR(&dns.TXT{Hdr: dns.RR_Header{Name: "_notype", Ttl: 5}, Txt: []string{"inferred"}}))

	q, err := ParseSignedPacket(p.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if got := q.TXT("_txt"); len(got) != 1 || got[0] != "k=v" {
		t.Errorf("TXT(_txt) = %q", got)
	}
	if got := q.TXT("_long." + origin + "."); len(got) != 1 || got[0] != long {
		t.Errorf("TXT(_long) round trip lost bytes: %q", got)
	}
	if got := q.TXT("_notype"); len(got) != 1 || got[0] != "inferred" {
		t.Errorf("TXT(_notype) = %q (type inference)", got)
	}
	wantTypes := map[string]uint16{
		origin + ".":             dns.TypeA,
		"v6." + origin + ".":     dns.TypeAAAA,
		"mapped." + origin + ".": dns.TypeA,
		"alias." + origin + ".":  dns.TypeCNAME,
		"mx." + origin + ".":     dns.TypeMX,
		"_svc." + origin + ".":   dns.TypeHTTPS,
	}
	for name, typ := range wantTypes {
		rrs := q.RecordsNamed(name)
		if len(rrs) != 1 || rrs[0].Header().Rrtype != typ || rrs[0].Header().Class != dns.ClassINET {
			t.Errorf("RecordsNamed(%s) = %v, want one %s", name, rrs, dns.Type(typ))
		}
	}
	deeper := mustSign(t, sk, 44, NewBuilder().TXT("a._x", 1, "1").TXT("b.a._x", 1, "2").TXT("_x", 1, "3"))
	if got := deeper.TXT("*._x"); len(got) != 1 || got[0] != "1" {
		t.Errorf("*._x matched %q, want one label only, as pkarr", got)
	}
	if got := len(q.RecordsNamed("*." + origin)); got != len(q.Records())-1 {
		t.Errorf("wildcard matched %d records, want every record below the apex (%d)", got, len(q.Records())-1)
	}
	if got := q.TTL(0, 1<<31); got != 5 {
		t.Errorf("TTL = %d, want the smallest record TTL 5", got)
	}
	if got := q.TTL(300, 86400); got != 300 {
		t.Errorf("clamped TTL = %d, want 300", got)
	}
	if got := mustSign(t, sk, 43, NewBuilder()).TTL(300, 86400); got != 300 {
		t.Errorf("TTL of an empty packet = %d, want min", got)
	}
}

func TestRecordsAreCopies(t *testing.T) {
	sk := testKey(t, 2)
	p := mustSign(t, sk, 1, NewBuilder().TXT("_a", 60, "one"))
	rrs := p.Records()
	rrs[0].(*dns.TXT).Txt[0] = "mutated"
	rrs[0].Header().Name = "evil."
	if got := p.TXT("_a"); len(got) != 1 || got[0] != "one" {
		t.Fatalf("packet changed through Records(): %q", got)
	}
	b := p.Bytes()
	b[len(b)-1] ^= 0xff
	if _, err := ParseSignedPacket(p.Bytes()); err != nil {
		t.Fatalf("packet changed through Bytes(): %v", err)
	}
}

func TestBuilderErrors(t *testing.T) {
	sk := testKey(t, 3)
	for name, b := range map[string]*Builder{
		"bad presentation": NewBuilder().Record("this is not a record"),
		"class CH":         NewBuilder().RR(&dns.TXT{Hdr: dns.RR_Header{Name: "_x", Rrtype: dns.TypeTXT, Class: dns.ClassCHAOS}, Txt: []string{"a"}}),
		"type mismatch":    NewBuilder().RR(&dns.TXT{Hdr: dns.RR_Header{Name: "_x", Rrtype: dns.TypeA}, Txt: []string{"a"}}),
		"nil record":       NewBuilder().RR(nil),
		"invalid address":  NewBuilder().Address("x", 1, netip.Addr{}),
		"too large":        NewBuilder().TXT("_big", 1, strings.Repeat("z", 1000)),
	} {
		_, err := b.Timestamp(1).Sign(sk)
		if !errors.Is(err, ErrInvalidPacket) {
			t.Errorf("%s: err = %v, want ErrInvalidPacket", name, err)
		}
	}
	_, err := NewBuilder().TXT("_big", 1, strings.Repeat("z", 1000)).Sign(sk)
	if !errors.Is(err, ErrPacketTooLarge) {
		t.Errorf("oversized DNS: %v, want ErrPacketTooLarge", err)
	}
	var destroyed = testKey(t, 4)
	destroyed.Destroy()
	if _, err := NewBuilder().Sign(destroyed); !errors.Is(err, ErrInvalidSecretKey) {
		t.Errorf("destroyed key: %v", err)
	}
}

// TestDNSSizeBoundary signs DNS messages of exactly 1000 and 1001 bytes.
func TestDNSSizeBoundary(t *testing.T) {
	sk := testKey(t, 5)
	sizeWith := func(n int) (*SignedPacket, error) {
		return NewBuilder().Timestamp(7).TXT("_p", 1, strings.Repeat("a", n)).Sign(sk)
	}
	base, err := sizeWith(0)
	if err != nil {
		t.Fatal(err)
	}
	overhead := len(base.DNS())
	// A TXT value of n bytes costs n + ceil(n/255) bytes on the wire (one
	// length byte per 255-byte string); find the n that lands on 1000.
	n := 0
	for ; ; n++ {
		p, err := sizeWith(n)
		if err != nil {
			t.Fatalf("n=%d (dns %d bytes): %v", n, overhead+n, err)
		}
		if len(p.DNS()) == MaxDNSSize {
			if p.Size() != MaxPacketSize || len(p.RelayPayload()) != MaxPayloadSize {
				t.Fatalf("sizes %d/%d", p.Size(), len(p.RelayPayload()))
			}
			if _, err := ParseSignedPacket(p.Bytes()); err != nil {
				t.Fatalf("1000-byte DNS rejected: %v", err)
			}
			break
		}
	}
	if _, err := sizeWith(n + 1); !errors.Is(err, ErrPacketTooLarge) {
		t.Fatalf("1001-byte DNS: %v", err)
	}
}

// TestParseHostile is the codec's table of hostile inputs. Every case must
// fail with an error matching ErrInvalidPacket, and none may panic.
func TestParseHostile(t *testing.T) {
	sk := testKey(t, 6)
	other := testKey(t, 7)
	good := mustSign(t, sk, 1_700_000_000_000_000, NewBuilder().TXT("_a", 300, "value"))
	raw := good.Bytes()

	flip := func(b []byte, i int) []byte { b = bytes.Clone(b); b[i] ^= 1; return b }

	// A DNS message whose answer name is a compression pointer to itself.
	loop := []byte{0, 0, 0x80, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xc0, 12, 0, 16, 0, 1, 0, 0, 0, 1, 0, 1, 0}
	// Two pointers pointing at each other.
	loop2 := []byte{0, 0, 0x80, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xc0, 14, 0xc0, 12, 0, 16, 0, 1, 0, 0, 0, 1, 0, 1, 0}
	// A pointer past the end of the message.
	dangling := []byte{0, 0, 0x80, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xc0, 200, 0, 16, 0, 1, 0, 0, 0, 1, 0, 1, 0}
	// The header claims 1 answer but the message ends.
	shortAnswers := []byte{0, 0, 0x80, 0, 0, 0, 0, 1, 0, 0, 0, 0}
	// An rdlength that runs past the end.
	longRdata := []byte{0, 0, 0x80, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 16, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 1, 'a'}

	badPoint := bytes.Clone(raw)
	// y = 2 is not the y-coordinate of any curve point.
	copy(badPoint, append([]byte{2}, make([]byte, 31)...))

	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrPacketTooShort},
		{"one byte", []byte{0}, ErrPacketTooShort},
		{"header minus one", raw[:HeaderSize-1], ErrPacketTooShort},
		{"truncated DNS", raw[:len(raw)-3], ErrInvalidPacket},
		{"oversized", append(bytes.Clone(raw), make([]byte, MaxPacketSize)...), ErrPacketTooLarge},
		{"one over the limit", make([]byte, MaxPacketSize+1), ErrPacketTooLarge},
		{"flipped signature", flip(raw, 40), ErrBadSignature},
		{"flipped timestamp", flip(raw, 100), ErrBadSignature},
		{"flipped DNS byte", flip(raw, len(raw)-1), ErrBadSignature},
		{"other key in front", append(other.pub[:], raw[PublicKeySize:]...), ErrBadSignature},
		{"invalid curve point", badPoint, ErrInvalidKey},
		{"compression loop", signRaw(sk, 5, loop), ErrInvalidDNS},
		{"pointer cycle", signRaw(sk, 5, loop2), ErrInvalidDNS},
		{"dangling pointer", signRaw(sk, 5, dangling), ErrInvalidDNS},
		{"answers missing", signRaw(sk, 5, shortAnswers), ErrInvalidDNS},
		{"rdlength overrun", signRaw(sk, 5, longRdata), ErrInvalidDNS},
		{"empty DNS", signRaw(sk, 5, nil), ErrInvalidDNS},
		{"all zero", make([]byte, 200), ErrInvalidPacket},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSignedPacket(tc.in)
			if !errors.Is(err, tc.want) || !errors.Is(err, ErrInvalidPacket) {
				t.Fatalf("ParseSignedPacket: err = %v, want %v", err, tc.want)
			}
			if len(tc.in) >= PublicKeySize && bytes.Equal(tc.in[:PublicKeySize], sk.pub[:]) {
				_, err = ParseRelayPayload(sk.PublicKey(), tc.in[PublicKeySize:])
				if err == nil {
					t.Fatalf("ParseRelayPayload accepted it")
				}
			}
		})
	}

	// Relay payloads: the key comes from the request, not the bytes.
	payload := good.RelayPayload()
	for name, tc := range map[string]struct {
		key  PublicKey
		in   []byte
		want error
	}{
		"wrong key":          {other.PublicKey(), payload, ErrBadSignature},
		"empty":              {sk.PublicKey(), nil, ErrPacketTooShort},
		"71 bytes":           {sk.PublicKey(), payload[:71], ErrPacketTooShort},
		"1073 bytes":         {sk.PublicKey(), make([]byte, MaxPayloadSize+1), ErrPacketTooLarge},
		"signature stripped": {sk.PublicKey(), payload[SignatureSize:], ErrInvalidPacket},
	} {
		if _, err := ParseRelayPayload(tc.key, tc.in); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", name, err, tc.want)
		}
	}
}

// TestParseAcceptsUncompressed checks that a packet whose names are not
// compressed (as some other encoders write them) parses and yields the
// same records.
func TestParseAcceptsUncompressed(t *testing.T) {
	sk := testKey(t, 8)
	p := mustSign(t, sk, 9, NewBuilder().TXT("_a", 60, "1").TXT("_a", 60, "2").TXT("_b._a", 60, "3"))
	msg := dns.Msg{MsgHdr: dns.MsgHdr{Response: true}, Compress: false, Answer: p.Records()}
	wire, err := msg.Pack()
	if err != nil {
		t.Fatal(err)
	}
	if len(wire) <= len(p.DNS()) {
		t.Fatalf("uncompressed form (%d) not longer than compressed (%d): test is not testing", len(wire), len(p.DNS()))
	}
	q, err := ParseSignedPacket(signRaw(sk, 9, wire))
	if err != nil {
		t.Fatal(err)
	}
	if got := q.TXT("_a"); len(got) != 2 || got[0] != "1" || got[1] != "2" {
		t.Fatalf("TXT(_a) = %q", got)
	}
	if got := q.TXT("_b._a"); len(got) != 1 || got[0] != "3" {
		t.Fatalf("TXT(_b._a) = %q", got)
	}
}

func TestMoreRecentThan(t *testing.T) {
	sk := testKey(t, 9)
	a := mustSign(t, sk, 100, NewBuilder().TXT("_a", 60, "a"))
	b := mustSign(t, sk, 101, NewBuilder().TXT("_a", 60, "a"))
	c := mustSign(t, sk, 101, NewBuilder().TXT("_a", 60, "b"))
	if !b.MoreRecentThan(a) || a.MoreRecentThan(b) {
		t.Error("higher timestamp must win")
	}
	if !c.MoreRecentThan(b) || b.MoreRecentThan(c) {
		t.Error("equal timestamps: larger DNS bytes must win")
	}
	if b.MoreRecentThan(b) {
		t.Error("a packet is not more recent than itself")
	}
	if !a.MoreRecentThan(nil) {
		t.Error("any packet beats nil")
	}
}

func TestStamperStrictlyIncreasing(t *testing.T) {
	frozen := func() time.Time { return time.Unix(1_700_000_000, 0) }
	s := NewStamper(frozen)
	prev := s.Next()
	if prev != Timestamp(1_700_000_000_000_000) {
		t.Fatalf("first stamp %d", prev)
	}
	for range 1000 {
		next := s.Next()
		if next <= prev {
			t.Fatalf("%d after %d", next, prev)
		}
		prev = next
	}
	// Concurrent callers never get the same value.
	seen := sync.Map{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 500 {
				if _, dup := seen.LoadOrStore(Now(), true); dup {
					t.Error("duplicate timestamp from Now")
				}
			}
		}()
	}
	wg.Wait()
}

func TestTimestampConversions(t *testing.T) {
	tm := time.Date(2023, 11, 14, 22, 13, 20, 123456789, time.UTC)
	ts := TimestampFromTime(tm)
	if ts != 1_700_000_000_123_456 {
		t.Fatalf("ts = %d", ts)
	}
	if !ts.Time().Equal(tm.Truncate(time.Microsecond)) {
		t.Fatalf("Time() = %v", ts.Time())
	}
	if TimestampFromTime(time.Unix(-5, 0)) != 0 {
		t.Fatal("pre-epoch time must map to 0")
	}
	if got := ts.String(); got != "2023-11-14T22:13:20.123456Z" {
		t.Fatalf("String() = %s", got)
	}
	if got := Timestamp(1 << 63).String(); !strings.HasSuffix(got, "us") {
		t.Fatalf("huge timestamp String() = %s", got)
	}
}
