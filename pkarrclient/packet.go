package pkarrclient

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Size limits of the pkarr wire format, in bytes.
const (
	// MaxDNSSize is the largest DNS message a packet may carry: the limit on
	// a BEP44 value in the Mainline DHT.
	MaxDNSSize = 1000
	// HeaderSize is the fixed prefix of a packet: key, signature, timestamp.
	HeaderSize = PublicKeySize + SignatureSize + 8
	// MaxPacketSize is the largest signed packet (1104).
	MaxPacketSize = HeaderSize + MaxDNSSize
	// MaxPayloadSize is the largest relay payload (1072): a packet without
	// its leading public key, as carried in relay PUT and GET bodies.
	MaxPayloadSize = MaxPacketSize - PublicKeySize
	// PayloadHeaderSize is the fixed prefix of a relay payload: signature
	// and timestamp (72).
	PayloadHeaderSize = HeaderSize - PublicKeySize
)

// SignedPacket is a pkarr signed packet: a DNS message of answer records,
// a timestamp and an Ed25519 signature over both, under a public key.
//
// The wire form is
//
//	public key (32) | signature (64) | timestamp, u64 big-endian µs (8) | DNS message (≤ 1000)
//
// and the signature covers the BEP44 mutable-item buffer
// "3:seqi<timestamp>e1:v<len(dns)>:<dns>".
//
// A SignedPacket always holds a verified signature and a DNS message that
// parses: the only ways to get one are signing ([Builder.Sign], [Sign]) and
// parsing with verification ([ParseSignedPacket], [ParseRelayPayload]).
// It is immutable and safe for concurrent use.
type SignedPacket struct {
	raw     []byte // the whole wire form; never modified after construction
	key     PublicKey
	answers []dns.RR
}

// Sign builds and signs a packet holding records under sk at timestamp ts.
//
// Record names are normalized to the key's origin, the z-base-32 form of the
// public key: a trailing dot is ignored; "", "." and "@" mean the origin
// itself; a name whose last label already is the origin (in any case) is
// kept; anything else gets ".<origin>" appended. A last label "@" stands for
// the origin, so "_foo.@" is "_foo.<origin>" (pkarr would reduce it to the
// origin alone and drop "_foo"). A record's class must be IN (a zero class
// is taken as IN) and its type is filled in from its Go type when unset.
// The records are copied; the caller's values are not modified.
//
// The DNS message is built as pkarr builds it: id 0, flags 0x8000, no
// questions, the records as answers, names compressed.
func Sign(sk *SecretKey, ts Timestamp, records []dns.RR) (*SignedPacket, error) {
	if sk == nil || sk.priv == nil {
		return nil, fmt.Errorf("%w: nil or destroyed key", ErrInvalidSecretKey)
	}
	origin := sk.pub.String()
	answers := make([]dns.RR, 0, len(records))
	for i, r := range records {
		rr, err := normalizeRecord(r, origin)
		if err != nil {
			return nil, fmt.Errorf("%w: record %d: %w", ErrInvalidDNS, i, err)
		}
		answers = append(answers, rr)
	}
	msg := dns.Msg{MsgHdr: dns.MsgHdr{Response: true}, Compress: true, Answer: answers}
	wire, err := msg.Pack()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidDNS, err)
	}
	if len(wire) > MaxDNSSize {
		return nil, fmt.Errorf("%w: DNS message is %d bytes, limit %d", ErrPacketTooLarge, len(wire), MaxDNSSize)
	}
	raw := make([]byte, HeaderSize+len(wire))
	copy(raw, sk.pub[:])
	binary.BigEndian.PutUint64(raw[PublicKeySize+SignatureSize:], uint64(ts))
	copy(raw[HeaderSize:], wire)
	copy(raw[PublicKeySize:], sk.Sign(signable(ts, wire)))
	return &SignedPacket{raw: raw, key: sk.pub, answers: answers}, nil
}

// signable returns the bytes a packet's signature covers: the BEP44 mutable
// item encoding of seq and v, without salt and without the outer dictionary.
func signable(ts Timestamp, v []byte) []byte {
	// "3:seqi" + 20 digits + "e1:v" + 4 digits + ":" fits in 40 bytes.
	b := make([]byte, 0, 40+len(v))
	b = append(b, "3:seqi"...)
	b = strconv.AppendUint(b, uint64(ts), 10)
	b = append(b, "e1:v"...)
	b = strconv.AppendInt(b, int64(len(v)), 10)
	b = append(b, ':')
	return append(b, v...)
}

// SignableBytes returns the bytes a packet with this timestamp and DNS
// message is signed over. Other transports (the DHT's BEP44 put) need it.
func SignableBytes(ts Timestamp, dnsMessage []byte) []byte { return signable(ts, dnsMessage) }

// ParseSignedPacket decodes and verifies a packet in wire form. It rejects,
// with an error matching ErrInvalidPacket, input that is too short or too
// long, a key that is not a curve point, a DNS message that does not parse,
// and a signature that does not verify.
func ParseSignedPacket(b []byte) (*SignedPacket, error) {
	if len(b) < HeaderSize {
		return nil, fmt.Errorf("%w: %d bytes, need at least %d", ErrPacketTooShort, len(b), HeaderSize)
	}
	if len(b) > MaxPacketSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrPacketTooLarge, len(b), MaxPacketSize)
	}
	key, err := PublicKeyFromBytes(b[:PublicKeySize])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidPacket, err)
	}
	return verifyPacket(key, bytes.Clone(b))
}

// ParseRelayPayload decodes and verifies a relay payload (a packet without
// its leading key, as relays send and receive it) for the given key. A
// payload signed by any other key fails with ErrBadSignature, so a relay
// cannot answer one key's query with another key's records.
func ParseRelayPayload(key PublicKey, payload []byte) (*SignedPacket, error) {
	if len(payload) < PayloadHeaderSize {
		return nil, fmt.Errorf("%w: payload is %d bytes, need at least %d", ErrPacketTooShort, len(payload), PayloadHeaderSize)
	}
	if len(payload) > MaxPayloadSize {
		return nil, fmt.Errorf("%w: payload is %d bytes, limit %d", ErrPacketTooLarge, len(payload), MaxPayloadSize)
	}
	raw := make([]byte, PublicKeySize+len(payload))
	copy(raw, key[:])
	copy(raw[PublicKeySize:], payload)
	return verifyPacket(key, raw)
}

// verifyPacket checks raw, which the caller owns and hands over.
func verifyPacket(key PublicKey, raw []byte) (*SignedPacket, error) {
	ts := Timestamp(binary.BigEndian.Uint64(raw[PublicKeySize+SignatureSize:]))
	wire := raw[HeaderSize:]
	// Parsing the DNS first is cheap and rejects most garbage before the
	// comparatively expensive signature check.
	var msg dns.Msg
	if err := msg.Unpack(wire); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidDNS, err)
	}
	// miekg/dns stops quietly when a message ends early, keeping the records
	// it read so far; pkarr's parser fails instead. Holding every section to
	// its declared count keeps the two in agreement on what is valid.
	for i, n := range []int{len(msg.Question), len(msg.Answer), len(msg.Ns), len(msg.Extra)} {
		if declared := int(binary.BigEndian.Uint16(wire[4+2*i:])); declared != n {
			return nil, fmt.Errorf("%w: header declares %d records in section %d, message holds %d",
				ErrInvalidDNS, declared, i, n)
		}
	}
	if !key.Verify(signable(ts, wire), raw[PublicKeySize:PublicKeySize+SignatureSize]) {
		return nil, ErrBadSignature
	}
	return &SignedPacket{raw: raw, key: key, answers: msg.Answer}, nil
}

// PublicKey returns the key that signed the packet.
func (p *SignedPacket) PublicKey() PublicKey { return p.key }

// Timestamp returns the packet's timestamp (its version).
func (p *SignedPacket) Timestamp() Timestamp {
	return Timestamp(binary.BigEndian.Uint64(p.raw[PublicKeySize+SignatureSize:]))
}

// Signature returns a copy of the 64-byte signature.
func (p *SignedPacket) Signature() []byte {
	return bytes.Clone(p.raw[PublicKeySize : PublicKeySize+SignatureSize])
}

// DNS returns a copy of the encoded DNS message (the BEP44 value).
func (p *SignedPacket) DNS() []byte { return bytes.Clone(p.raw[HeaderSize:]) }

// Bytes returns a copy of the packet's wire form.
func (p *SignedPacket) Bytes() []byte { return bytes.Clone(p.raw) }

// RelayPayload returns a copy of the relay payload: the wire form without
// the leading public key.
func (p *SignedPacket) RelayPayload() []byte { return bytes.Clone(p.raw[PublicKeySize:]) }

// Size returns the length of the wire form.
func (p *SignedPacket) Size() int { return len(p.raw) }

// Equal reports whether p and q are the same packet, byte for byte.
func (p *SignedPacket) Equal(q *SignedPacket) bool {
	if p == nil || q == nil {
		return p == q
	}
	return bytes.Equal(p.raw, q.raw)
}

// MoreRecentThan reports whether p supersedes q: a higher timestamp wins, and
// on equal timestamps the lexicographically larger DNS message wins, as in
// pkarr. A nil q is superseded by any packet.
func (p *SignedPacket) MoreRecentThan(q *SignedPacket) bool {
	if q == nil {
		return true
	}
	return MoreRecent(p.Timestamp(), p.raw[HeaderSize:], q.Timestamp(), q.raw[HeaderSize:])
}

// MoreRecent is pkarr's order between two versions of one key's packet,
// given their timestamps and DNS messages: the higher timestamp wins, and on
// equal timestamps the lexicographically larger DNS message wins. Stores
// that keep raw bytes compare with it without rebuilding (and re-verifying)
// packets; SignedPacket.MoreRecentThan is the same rule.
func MoreRecent(aTS Timestamp, aDNS []byte, bTS Timestamp, bDNS []byte) bool {
	if aTS != bTS {
		return aTS > bTS
	}
	return bytes.Compare(aDNS, bDNS) > 0
}

// TTL returns the smallest TTL among the packet's records clamped to
// [min, max], or min when the packet has no records, as pkarr computes the
// lifetime of a cached packet.
func (p *SignedPacket) TTL(min, max uint32) uint32 {
	if len(p.answers) == 0 {
		return min
	}
	ttl := p.answers[0].Header().Ttl
	for _, rr := range p.answers[1:] {
		ttl = minU32(ttl, rr.Header().Ttl)
	}
	return minU32(max, maxU32(min, ttl))
}

// Expired reports whether a packet last seen at seen has outlived its TTL
// (clamped to [min, max]) at time now.
func (p *SignedPacket) Expired(seen, now time.Time, min, max uint32) bool {
	return now.Sub(seen) >= time.Duration(p.TTL(min, max))*time.Second
}

func minU32(a, b uint32) uint32 {
	if a < b {
		return a
	}
	return b
}

func maxU32(a, b uint32) uint32 {
	if a > b {
		return a
	}
	return b
}

// Records returns copies of all answer records, in packet order.
func (p *SignedPacket) Records() []dns.RR {
	out := make([]dns.RR, len(p.answers))
	for i, rr := range p.answers {
		out[i] = dns.Copy(rr)
	}
	return out
}

// RecordsNamed returns copies of the answer records whose owner is name,
// normalized as in Sign (so "_foo" finds "_foo.<key>" and "@" finds the
// apex). A name starting with "*." matches one label in its place, as in
// pkarr: "*.foo" matches "bar.foo.<key>" but not "a.bar.foo.<key>". Names
// compare case-insensitively, as DNS names do.
func (p *SignedPacket) RecordsNamed(name string) []dns.RR {
	want := dns.Fqdn(normalizeName(name, p.key.String()))
	wildcard := strings.HasPrefix(want, "*.")
	var out []dns.RR
	for _, rr := range p.answers {
		have := rr.Header().Name
		match := strings.EqualFold(have, want)
		if wildcard && !match {
			suffix := want[1:] // ".foo.<key>."
			if cut := len(have) - len(suffix); cut > 0 && strings.EqualFold(have[cut:], suffix) {
				match = !strings.Contains(have[:cut], ".")
			}
		}
		if match {
			out = append(out, dns.Copy(rr))
		}
	}
	return out
}

// TXT returns the values of the TXT records named name (normalized as in
// RecordsNamed), each record's character-strings joined, as raw bytes in a
// string: the inverse of Builder.TXT.
func (p *SignedPacket) TXT(name string) []string {
	var out []string
	for _, rr := range p.RecordsNamed(name) {
		if t, ok := rr.(*dns.TXT); ok {
			var b strings.Builder
			for _, s := range t.Txt {
				b.WriteString(unescapeTXT(s))
			}
			out = append(out, b.String())
		}
	}
	return out
}

// String summarizes the packet for logs: key, time, size and record count.
func (p *SignedPacket) String() string {
	return fmt.Sprintf("SignedPacket(%s, %s, %d bytes, %d records)",
		p.key, p.Timestamp(), len(p.raw), len(p.answers))
}

// normalizeName maps a record name to its owner name under origin, without
// the trailing dot. See Sign for the rules.
func normalizeName(name, origin string) string {
	name = strings.TrimSuffix(name, ".")
	if name == "" || name == "@" {
		return origin
	}
	last := name
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		last = name[i+1:]
	}
	switch {
	case strings.EqualFold(last, origin):
		return name
	case last == "@":
		return name[:len(name)-1] + origin
	}
	return name + "." + origin
}

// normalizeRecord returns a copy of r with its name under origin, class IN
// and type set.
func normalizeRecord(r dns.RR, origin string) (dns.RR, error) {
	if r == nil || r.Header() == nil {
		return nil, fmt.Errorf("nil record")
	}
	rr := dns.Copy(r)
	h := rr.Header()
	h.Name = dns.Fqdn(normalizeName(h.Name, origin))
	switch h.Class {
	case 0:
		h.Class = dns.ClassINET
	case dns.ClassINET:
	default:
		return nil, fmt.Errorf("class %s, pkarr records are class IN", dns.Class(h.Class))
	}
	want, known := rrTypeOf(rr)
	switch {
	case h.Rrtype == 0 && !known:
		return nil, fmt.Errorf("record type unset and not inferable from %T", rr)
	case h.Rrtype == 0:
		h.Rrtype = want
	case known && h.Rrtype != want:
		return nil, fmt.Errorf("header says %s but the record is a %T", dns.Type(h.Rrtype), rr)
	}
	return rr, nil
}

// rrTypeOf infers an RR's type code from its Go type: miekg/dns packs the
// header's Rrtype as given, so a record built as &dns.TXT{} with a zero
// header would otherwise go on the wire as type 0.
func rrTypeOf(rr dns.RR) (uint16, bool) {
	code, ok := rrTypeTable()[reflect.TypeOf(rr)]
	return code, ok
}

// rrTypeTable maps each Go record type to its type code. It is computed
// once and never modified. A few Go types serve several codes; those are
// left out and must carry their code in the header.
var rrTypeTable = sync.OnceValue(func() map[reflect.Type]uint16 {
	table := make(map[reflect.Type]uint16, len(dns.TypeToRR))
	ambiguous := make(map[reflect.Type]bool)
	for code, newRR := range dns.TypeToRR {
		t := reflect.TypeOf(newRR())
		if _, dup := table[t]; dup {
			ambiguous[t] = true
		}
		table[t] = code
	}
	for t := range ambiguous {
		delete(table, t)
	}
	return table
})

// escapeTXT turns raw bytes into a miekg/dns TXT string, which is in zone
// file presentation form: backslash, quote and unprintable bytes escaped.
func escapeTXT(raw string) string {
	var b strings.Builder
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < ' ' || c > '~':
			fmt.Fprintf(&b, "\\%03d", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// unescapeTXT is the inverse of escapeTXT, and also decodes what miekg/dns
// produces when it unpacks a TXT string.
func unescapeTXT(s string) string {
	if strings.IndexByte(s, '\\') < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		if i+2 < len(s) && isDigit(s[i]) && isDigit(s[i+1]) && isDigit(s[i+2]) {
			n := int(s[i]-'0')*100 + int(s[i+1]-'0')*10 + int(s[i+2]-'0')
			if n <= 255 {
				b.WriteByte(byte(n))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// txtChunk is the longest character-string a TXT record can hold.
const txtChunk = 255

// Builder collects records for a packet. Its methods record the first error
// and make the rest no-ops, so a chain of calls needs one check, at Sign.
type Builder struct {
	records []dns.RR
	ts      Timestamp
	err     error
}

// NewBuilder returns an empty Builder.
func NewBuilder() *Builder { return &Builder{} }

// Timestamp sets the packet's timestamp. Without it, Sign uses [Now].
func (b *Builder) Timestamp(ts Timestamp) *Builder {
	b.ts = ts
	return b
}

// TXT adds a TXT record holding value, raw bytes in a string. A value
// longer than 255 bytes is split into several character-strings, which
// SignedPacket.TXT joins again.
func (b *Builder) TXT(name string, ttl uint32, value string) *Builder {
	parts := []string{}
	for len(value) > txtChunk {
		parts = append(parts, escapeTXT(value[:txtChunk]))
		value = value[txtChunk:]
	}
	parts = append(parts, escapeTXT(value))
	return b.RR(&dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Ttl: ttl}, Txt: parts})
}

// Address adds an A record for an IPv4 address or an AAAA record for an
// IPv6 address.
func (b *Builder) Address(name string, ttl uint32, addr netip.Addr) *Builder {
	addr = addr.Unmap()
	switch {
	case addr.Is4():
		a := addr.As4()
		return b.RR(&dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Ttl: ttl}, A: a[:]})
	case addr.Is6():
		a := addr.As16()
		return b.RR(&dns.AAAA{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeAAAA, Ttl: ttl}, AAAA: a[:]})
	}
	return b.fail(fmt.Errorf("%w: invalid IP address", ErrInvalidDNS))
}

// CNAME adds a CNAME record pointing name at target.
func (b *Builder) CNAME(name string, ttl uint32, target string) *Builder {
	return b.RR(&dns.CNAME{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeCNAME, Ttl: ttl}, Target: dns.Fqdn(target)})
}

// Record adds one record written in zone-file presentation form, such as
// `_foo 300 IN HTTPS 1 . alpn=h3` or `@ 60 IN A 192.0.2.1`. Relative names
// are normalized to the key's origin when the packet is signed.
func (b *Builder) Record(presentation string) *Builder {
	rr, err := dns.NewRR(presentation)
	if err != nil {
		return b.fail(fmt.Errorf("%w: %q: %v", ErrInvalidDNS, truncateForError(presentation), err))
	}
	if rr == nil {
		return b.fail(fmt.Errorf("%w: %q holds no record", ErrInvalidDNS, truncateForError(presentation)))
	}
	return b.RR(rr)
}

// RR adds records of any type miekg/dns knows (HTTPS, SVCB, MX, ...).
func (b *Builder) RR(rrs ...dns.RR) *Builder {
	if b.err == nil {
		b.records = append(b.records, rrs...)
	}
	return b
}

func (b *Builder) fail(err error) *Builder {
	if b.err == nil {
		b.err = err
	}
	return b
}

// Sign signs the records under sk. It fails if any earlier call failed, if a
// record is invalid, or if the DNS message exceeds 1000 bytes.
func (b *Builder) Sign(sk *SecretKey) (*SignedPacket, error) {
	if b.err != nil {
		return nil, b.err
	}
	ts := b.ts
	if ts == 0 {
		ts = Now()
	}
	return Sign(sk, ts, b.records)
}
