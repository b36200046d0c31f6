package mdnsdiscovery

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/phrasemeet/discovery"
)

func secretOf(b byte) *[32]byte {
	var s [32]byte
	for i := range s {
		s[i] = b + byte(i)
	}
	return &s
}

func mustSealer(t testing.TB, secret *[32]byte) *sealer {
	t.Helper()
	s, err := newSealer(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// t0 is a fixed sealing time for records built by tests.
var t0 = time.UnixMicro(1_780_000_000_000_000)

func liveRecord(id string, seq uint64, at time.Time, addrs ...string) wireRecord {
	return wireRecord{
		kind:   kindLive,
		origin: origin{1, 2, 3, 4, 5, 6, 7, 8},
		seq:    seq,
		time:   at,
		rec:    discovery.Record{ID: id, Addrs: addrs, Meta: []byte("meta-" + id)},
	}
}

// fixedNonce makes a seal repeatable, for seeds and comparisons.
func fixedNonce(b byte) []byte { return bytes.Repeat([]byte{b}, chacha20poly1305.NonceSizeX) }

// The service name follows RFC 6335 §5.1, as RFC 6763 §7.2 requires of
// DNS-SD service types: at most 15 characters, letters, digits and
// hyphens, a letter among them, no hyphen at either end or two together.
func TestServiceName(t *testing.T) {
	re := regexp.MustCompile(`^_([a-z0-9-]+)\._udp$`)
	seen := make(map[string]bool)
	for b := range byte(50) {
		name := serviceFor(secretOf(b))
		m := re.FindStringSubmatch(name)
		if m == nil {
			t.Fatalf("service %q is not _<name>._udp", name)
		}
		label := m[1]
		if len(label) > 15 || !strings.ContainsAny(label, "abcdefghijklmnopqrstuvwxyz") ||
			strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") || strings.Contains(label, "--") {
			t.Errorf("service name %q breaks RFC 6335 §5.1", label)
		}
		if !strings.HasPrefix(label, servicePrefix) {
			t.Errorf("service name %q lacks the %q prefix", label, servicePrefix)
		}
		if serviceFor(secretOf(b)) != name {
			t.Errorf("service name of one secret changed: %q", name)
		}
		if seen[name] {
			t.Errorf("two secrets share the service name %q", name)
		}
		seen[name] = true
	}
}

// Random names are DNS labels, distinct, and not derived from anything.
func TestRandomLabel(t *testing.T) {
	seen := make(map[string]bool)
	for range 100 {
		l := randomLabel()
		if len(l) != 26 || !regexp.MustCompile(`^[a-z2-7]+$`).MatchString(l) {
			t.Fatalf("label %q is not 26 base32 characters", l)
		}
		if seen[l] {
			t.Fatalf("label %q came twice", l)
		}
		seen[l] = true
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	s := mustSealer(t, secretOf(1))
	for _, w := range []wireRecord{
		liveRecord("peer", 1, t0),
		liveRecord("12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo", 1<<60, t0,
			"/ip4/192.0.2.1/udp/4001/quic-v1", "/ip6/2001:db8::1/tcp/4001", ""),
		{kind: kindGone, seq: 7, time: t0, rec: discovery.Record{ID: "gone"}},
		{kind: kindLive, seq: 0, time: time.UnixMicro(0), rec: discovery.Record{ID: "\x00\xff\"\\ odd", Meta: []byte{0, '\\', '"'}}},
	} {
		txt, err := s.seal(&w)
		if err != nil {
			t.Fatalf("seal %+v: %v", w, err)
		}
		got, err := s.open(txt)
		if err != nil {
			t.Fatalf("open %+v: %v", w, err)
		}
		if got.kind != w.kind || got.origin != w.origin || got.seq != w.seq || !got.time.Equal(w.time) || !got.rec.Equal(w.rec) {
			t.Errorf("round trip changed the record:\n got %+v\nwant %+v", got, w)
		}
	}
}

// A record's TXT strings are at most 255 bytes, keyed a=, b=, ... in
// order, every one full but the last, and only base64 after the key.
func TestTXTLayout(t *testing.T) {
	s := mustSealer(t, secretOf(1))
	b64chars := regexp.MustCompile(`^[A-Za-z0-9+/]+$`)
	for size := 0; ; size += 37 {
		w := liveRecord("p", 1, t0)
		w.rec.Meta = bytes.Repeat([]byte{'m'}, size)
		txt, err := s.seal(&w)
		if errors.Is(err, ErrRecordTooLarge) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(txt) > maxTXT {
			t.Fatalf("%d strings, at most %d", len(txt), maxTXT)
		}
		for i, str := range txt {
			if len(str) > 255 {
				t.Fatalf("string %d is %d bytes", i, len(str))
			}
			if i < len(txt)-1 && len(str) != 255 {
				t.Fatalf("string %d of %d is %d bytes, not full", i, len(txt), len(str))
			}
			if str[:2] != string(rune('a'+i))+"=" || !b64chars.MatchString(str[2:]) {
				t.Fatalf("string %d is %q", i, str)
			}
		}
	}
}

func TestRecordTooLarge(t *testing.T) {
	d, err := newDiscoverer(secretOf(1), nil)
	if err != nil {
		t.Fatal(err)
	}
	checkRecord := d.checkRecord
	// The largest record that fits: header, a one-byte ID, no addresses,
	// metadata filling the rest (its length takes two varint bytes) and an
	// empty proof.
	fit := discovery.Record{ID: "x", Meta: make([]byte, maxPlain-plainHeader-2-1-2-1)}
	if err := checkRecord(fit); err != nil {
		t.Fatalf("a record of exactly %d bytes: %v", maxPlain, err)
	}
	over := fit.Clone()
	over.Meta = append(over.Meta, 0)
	err = checkRecord(over)
	if !errors.Is(err, ErrRecordTooLarge) || !errors.Is(err, discovery.ErrInvalidRecord) {
		t.Fatalf("a record one byte too large: %v, want ErrRecordTooLarge and ErrInvalidRecord", err)
	}
	if err := checkRecord(discovery.Record{Addrs: []string{"a"}}); !errors.Is(err, discovery.ErrInvalidRecord) {
		t.Fatalf("a record without ID: %v, want ErrInvalidRecord", err)
	}
}

// sealRaw seals arbitrary plaintext under s, for inputs encode never
// makes.
func sealRaw(s *sealer, plain []byte, nonce byte) []string {
	n := fixedNonce(nonce)
	return toTXT(b64.EncodeToString(s.aead.Seal(n, n, plain, aad)))
}

// plainOf returns w's plaintext, failing the test if it does not encode.
func plainOf(t testing.TB, w wireRecord) []byte {
	t.Helper()
	p, err := w.encode()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestOpenRejects(t *testing.T) {
	s := mustSealer(t, secretOf(1))
	other := mustSealer(t, secretOf(2))
	w := liveRecord("peer", 1, t0, "/ip4/192.0.2.1/udp/1")
	good, err := s.sealWithNonce(&w, fixedNonce(9))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.open(good); err != nil {
		t.Fatalf("the genuine record does not open: %v", err)
	}
	big := liveRecord("peer", 1, t0)
	big.rec.Meta = make([]byte, 400)
	goodBig, _ := s.sealWithNonce(&big, fixedNonce(9))
	if len(goodBig) != 3 {
		t.Fatalf("want a record of three strings, got %d", len(goodBig))
	}
	flip := func(txt []string, i, j int) []string {
		out := append([]string(nil), txt...)
		b := []byte(out[i])
		if b[j] == 'A' {
			b[j] = 'B'
		} else {
			b[j] = 'A'
		}
		out[i] = string(b)
		return out
	}
	plain := plainOf(t, w)
	nonMinimal := append(append(append([]byte(nil), plain[:plainHeader]...), 0x84, 0x00), plain[plainHeader+1:]...)
	tomb := plainOf(t, wireRecord{kind: kindGone, seq: 1, time: t0, rec: discovery.Record{ID: "x"}})
	for _, c := range []struct {
		name string
		txt  []string
		why  string // what the error must say: the reason, not an earlier one
	}{
		{"nothing", nil, "0 TXT strings"},
		{"an empty string", []string{""}, "string 0 of 0 bytes"},
		{"a key alone", []string{"a="}, "string 0 of 2 bytes"},
		{"plain DNS-SD text", []string{"path=/", "version=1"}, "string 0 of 6 bytes"},
		{"too many strings", append(append([]string(nil), goodBig...), "d=x", "e=x", "f=x", "g=x", "h=x"), "TXT strings"},
		{"a string over 255 bytes", []string{"a=" + strings.Repeat("A", 300)}, "string 0 of 302 bytes"},
		{"a short middle string", append([]string{goodBig[0][:100]}, goodBig[1:]...), "string 0 of 100 bytes"},
		{"strings out of order", append([]string{goodBig[1], goodBig[0]}, goodBig[2:]...), "string 0 has the wrong key"},
		{"a wrong key", append([]string{"x" + good[0][1:]}, good[1:]...), "wrong key"},
		{"no equals sign", append([]string{"a:" + good[0][2:]}, good[1:]...), "wrong key"},
		{"not base64", []string{"a=" + strings.Repeat("*", 80)}, "not base64"},
		{"a line break inside", []string{good[0][:40] + "\r\n" + good[0][40:]}, "not base64"},
		{"base64 with padding", []string{good[0] + "=="}, "not base64"},
		{"non-canonical base64", []string{"a=" + strings.Repeat("A", 58) + "B"}, "not base64"},
		{"too short to be sealed", []string{"a=" + b64.EncodeToString(make([]byte, sealOverhead-1))}, "sealed bytes"},
		{"a flipped ciphertext bit", flip(good, 0, 60), "does not open"},
		// The last character also holds padding bits; the one before is all tag.
		{"a flipped tag bit", flip(good, len(good)-1, len(good[len(good)-1])-2), "does not open"},
		{"another group's key", func() []string { txt, _ := other.sealWithNonce(&w, fixedNonce(9)); return txt }(), "does not open"},
		{"wrong version", sealRaw(s, append([]byte{3}, plain[1:]...), 1), "version 3"},
		{"version 1, without a proof field", sealRaw(s, append([]byte{1}, plain[1:len(plain)-1]...), 1), "version 1"},
		{"unknown kind", sealRaw(s, append([]byte{plainVersion, 3}, plain[2:]...), 1), "kind 3"},
		{"a short header", sealRaw(s, plain[:plainHeader-1], 1), "25 plaintext bytes"},
		{"trailing bytes", sealRaw(s, append(append([]byte(nil), plain...), 0), 1), "1 trailing bytes"},
		{"truncated", sealRaw(s, plain[:len(plain)-2], 1), "truncated"},
		{"no proof field", sealRaw(s, plain[:len(plain)-1], 1), "bad varint"},
		{"a proof cut short", sealRaw(s, append(append([]byte(nil), plain[:len(plain)-1]...), 64, 1, 2), 1), "truncated"},
		{"a non-minimal varint", sealRaw(s, nonMinimal, 1), "bad varint"},
		{"an empty ID", sealRaw(s, append(append([]byte(nil), plain[:plainHeader]...), 0, 0, 0), 1), "empty ID"},
		{"a huge address count", sealRaw(s, binary.AppendUvarint(append(append([]byte(nil), plain[:plainHeader]...), 1, 'x'), 1<<40), 1), "addresses in"},
		{"a tombstone with metadata", sealRaw(s, append(tomb[:len(tomb)-2], 1, 'm', 0), 1), "tombstone with a record"},
		{"time beyond range", sealRaw(s, binary.BigEndian.AppendUint64(append([]byte(nil), plain[:18]...), 1<<63), 1), "time out of range"},
		// The text bound is exact: one plaintext byte more is one
		// character too many, refused before any decoding.
		{"a plaintext one byte over", sealRaw(s, make([]byte, maxPlain+1), 1), "855 bytes of text"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.open(c.txt)
			if !errors.Is(err, errRejected) || !strings.Contains(err.Error(), c.why) {
				t.Fatalf("open: %v, want errRejected saying %q", err, c.why)
			}
		})
	}
	// The decoder bounds its input by itself too, whoever calls it.
	if _, err := decodeRecord(append(append([]byte(nil), plain...), make([]byte, maxPlain)...)); !errors.Is(err, errRejected) {
		t.Errorf("decoding an oversized plaintext: %v, want errRejected", err)
	}
}

// Sealed, encoded and next to the rest of zeroconf's answer, the largest
// record fits one packet of IPv6's minimum MTU (1280 bytes, 1232 of them
// UDP payload), so no answer needs fragmenting. The message is built the
// way zeroconf answers a browse (PTR, then SRV, TXT and addresses) and
// announces (SRV, TXT, PTR, the DNS-SD PTR and addresses), with the
// longest names it uses and as many AAAA records as hostIPs gives.
func TestLargestRecordFitsOnePacket(t *testing.T) {
	s := mustSealer(t, secretOf(1))
	w := liveRecord("x", 1, t0)
	w.rec.Meta = make([]byte, maxPlain-plainHeader-2-1-2-1)
	txt, err := s.seal(&w)
	if err != nil {
		t.Fatal(err)
	}
	service := serviceFor(secretOf(1)) + "." + mdnsDomain
	instance := randomLabel() + "." + service
	host := randomLabel() + "." + mdnsDomain
	hdr := func(name string, typ uint16) dns.RR_Header {
		return dns.RR_Header{Name: name, Rrtype: typ, Class: dns.ClassINET, Ttl: 120}
	}
	ptr := &dns.PTR{Hdr: hdr(service, dns.TypePTR), Ptr: instance}
	srv := &dns.SRV{Hdr: hdr(instance, dns.TypeSRV), Port: servicePort, Target: host}
	txtRR := &dns.TXT{Hdr: hdr(instance, dns.TypeTXT), Txt: txt}
	var addrs []dns.RR // the most hostIPs gives, and the largest kind
	for i := range maxHostIPs {
		addrs = append(addrs, &dns.AAAA{Hdr: hdr(host, dns.TypeAAAA), AAAA: net.ParseIP(fmt.Sprintf("2001:db8::%d", i))})
	}
	dnssd := &dns.PTR{Hdr: hdr("_services._dns-sd._udp."+mdnsDomain, dns.TypePTR), Ptr: service}
	for name, m := range map[string]*dns.Msg{
		"browse answer": {MsgHdr: dns.MsgHdr{Response: true}, Compress: true, Answer: []dns.RR{ptr}, Extra: append([]dns.RR{srv, txtRR}, addrs...)},
		"announcement":  {MsgHdr: dns.MsgHdr{Response: true}, Compress: true, Answer: append([]dns.RR{srv, txtRR, ptr, dnssd}, addrs...)},
	} {
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 1232 {
			t.Errorf("%s with the largest record is %d bytes, over 1232", name, len(b))
		}
		t.Logf("%s with the largest record: %d bytes", name, len(b))
	}
}
