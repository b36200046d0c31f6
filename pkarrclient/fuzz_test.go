package pkarrclient

import (
	"bytes"
	"strings"
	"testing"
)

// fuzzSeeds returns valid packets of several shapes, so the fuzzer starts
// from the structure it has to break.
func fuzzSeeds(f *testing.F) [][]byte {
	f.Helper()
	sk := testKey(f, 0x11)
	var seeds [][]byte
	for _, b := range []*Builder{
		NewBuilder(),
		NewBuilder().TXT("_a", 30, "relay=https://example.net/"),
		NewBuilder().TXT("_a", 30, "1").TXT("_b._a", 60, "2").Record("@ 60 IN A 192.0.2.1"),
		NewBuilder().Record("_s 300 IN HTTPS 1 . alpn=h3 port=443").CNAME("c", 5, "example.com"),
		NewBuilder().TXT("_l", 1, strings.Repeat("\x00\\\"", 200)),
	} {
		p, err := b.Timestamp(1_700_000_000_000_000).Sign(sk)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, p.Bytes())
	}
	return seeds
}

// checkParsed holds the invariants of any packet a parser accepted.
func checkParsed(t *testing.T, p *SignedPacket, raw []byte) {
	if !bytes.Equal(p.Bytes(), raw) {
		t.Fatalf("Bytes() differs from the parsed input")
	}
	q, err := ParseSignedPacket(p.Bytes())
	if err != nil || !q.Equal(p) {
		t.Fatalf("re-parse of an accepted packet: %v", err)
	}
	if r, err := ParseRelayPayload(p.PublicKey(), p.RelayPayload()); err != nil || !r.Equal(p) {
		t.Fatalf("relay payload of an accepted packet: %v", err)
	}
	if ttl := p.TTL(300, 86400); ttl < 300 || ttl > 86400 {
		t.Fatalf("TTL %d outside the clamp", ttl)
	}
	for _, rr := range p.Records() {
		p.RecordsNamed(rr.Header().Name)
		p.TXT(rr.Header().Name)
		_ = rr.String()
	}
	_ = p.String()
}

func FuzzParseSignedPacket(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Add([]byte{})
	f.Add(make([]byte, HeaderSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseSignedPacket(b)
		if err != nil {
			if p != nil {
				t.Fatal("packet returned with an error")
			}
			return
		}
		checkParsed(t, p, b)
	})
}

func FuzzParseRelayPayload(f *testing.F) {
	seeds := fuzzSeeds(f)
	key, err := PublicKeyFromBytes(seeds[0][:PublicKeySize])
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range seeds {
		f.Add(s[PublicKeySize:])
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, payload []byte) {
		p, err := ParseRelayPayload(key, payload)
		if err != nil {
			return
		}
		if p.PublicKey() != key {
			t.Fatal("accepted packet has another key")
		}
		checkParsed(t, p, append(key.Bytes(), payload...))
	})
}

func FuzzDecodeZBase32(f *testing.F) {
	for _, s := range []string{vectorZ32, "", "y", "yy", "yb", "YG4G", "pk:x", "ybndrfg8ejkmcpqxot1uwisza345h769"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := DecodeZBase32(s)
		if err != nil {
			return
		}
		if got := EncodeZBase32(b); got != strings.ToLower(s) {
			t.Fatalf("decode(%q) = %x, which encodes back to %q", s, b, got)
		}
	})
}

func FuzzParsePublicKey(f *testing.F) {
	for _, s := range []string{vectorZ32, "pk:" + vectorZ32, "https://a@b." + vectorZ32 + ".:1/x?y#z", "http://[::1", "://"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		pk, err := ParsePublicKey(s)
		if err != nil {
			return
		}
		again, err := ParsePublicKey(pk.String())
		if err != nil || again != pk {
			t.Fatalf("canonical form of %q does not parse back: %v", s, err)
		}
	})
}

// FuzzTXTRoundTrip checks that any bytes stored with Builder.TXT come back
// unchanged from SignedPacket.TXT after encoding and parsing.
func FuzzTXTRoundTrip(f *testing.F) {
	for _, s := range []string{"", "k=v", `\`, `\065`, `"`, "\x00\xff", strings.Repeat("a", 256)} {
		f.Add(s)
	}
	sk := testKey(f, 0x12)
	f.Fuzz(func(t *testing.T, value string) {
		p, err := NewBuilder().Timestamp(1).TXT("_v", 60, value).Sign(sk)
		if err != nil {
			if len(value) < 700 {
				t.Fatalf("a %d-byte value failed to sign: %v", len(value), err)
			}
			return
		}
		q, err := ParseSignedPacket(p.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if got := q.TXT("_v"); len(got) != 1 || got[0] != value {
			t.Fatalf("TXT round trip: put %q, got %q", value, got)
		}
	})
}
