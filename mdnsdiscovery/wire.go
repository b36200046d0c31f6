package mdnsdiscovery

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/zeebo/blake3"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/phrasemeet/discovery"
	"github.com/phrasemeet/discovery/internal/recordcodec"
)

// BLAKE3 derive-key contexts: hard-coded, dated and unique to their use,
// as the BLAKE3 spec asks, so the service name and the record key can
// never coincide with each other or with any other phrasemeet key.
const (
	ctxServiceName = "phrasemeet 2026-11 mdnsdiscovery service name v1"
	ctxRecordKey   = "phrasemeet 2026-11 mdnsdiscovery record key v1"
	ctxBinding     = "phrasemeet 2026-12 mdnsdiscovery record proof binding v1"
)

// The service label is "pm-" and 12 base32 characters of a BLAKE3 hash of
// the secret: 15 characters, the most RFC 6763 §7.2 (by RFC 6335 §5.1)
// allows a service name, and 60 bits, so two groups on one LAN collide
// with negligible odds. It is a function of the secret only, which the
// caller derived with Argon2id: a LAN observer testing a passphrase guess
// against it pays the Argon2id run, as against the relays.
const (
	servicePrefix    = "pm-"
	serviceHashChars = 12
	serviceProto     = "_udp"
)

// lowerBase32 spells hashes and random names in DNS-friendly characters:
// lowercase letters and the digits 2-7, never a hyphen.
var lowerBase32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// serviceFor returns the DNS-SD service type of the group with this
// secret, such as "_pm-abcdefgh2345._udp".
func serviceFor(secret *[32]byte) string {
	var h [32]byte
	blake3.DeriveKey(ctxServiceName, secret[:], h[:])
	return "_" + servicePrefix + lowerBase32.EncodeToString(h[:])[:serviceHashChars] + "." + serviceProto
}

// randomLabel returns a fresh instance (and host) name: 16 random bytes,
// 26 characters, unrelated to the peer's ID, so the name tells a LAN
// observer nothing and two registrations of one peer cannot be linked by
// it.
func randomLabel() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return lowerBase32.EncodeToString(b[:])
}

// A record on the LAN is one peer's discovery.Record, sealed with
// XChaCha20-Poly1305 under the group's record key, in the TXT record of a
// DNS-SD service instance.
//
// Plaintext layout (version 2):
//
//	version (1) | kind (1) | origin (8) | seq (8, big-endian) |
//	time µs (8, big-endian) | uvarint len + id |
//	uvarint count, then uvarint len + addr each | uvarint len + meta |
//	uvarint len + proof
//
// Kind is 1 for a live record and 2 for a tombstone (a peer leaving;
// no addresses or metadata). Origin is a random tag of the announcing
// Discoverer, so it never reports records it made itself. Seq orders a
// peer's versions: it starts at the clock in microseconds and grows by at
// least one with every Update and the final tombstone, so it keeps
// growing across announcements of one ID and across restarts. Time is
// when this copy was sealed; a refresh seals the same version again with
// a newer time. Readers order versions by (seq, time), ignore anything
// older than what they have seen, and drop records whose time is too far
// from their clock, so a captured record can be replayed only briefly
// and never over a newer one.
//
// The proof is empty unless the ID is a public key (an ID a configured
// discovery.IDScheme owns); then it is that key's signature of
// proofDomain | the group's binding (32 bytes derived from the secret) |
// the plaintext before the proof field, and readers drop the record if it
// does not verify. Every member holds the secret, so without it one
// member could seal a tombstone, or a higher version with its own
// address, under another's ID; with it a member can only replay the
// owner's own records, which the version order already defeats. Version
// 1 had no proof field; readers of either refuse the other's records.
//
// The fields after the header are recordcodec's, shared with
// slotdiscovery's entries. Every varint is minimally encoded and nothing
// may trail, so a record has exactly one encoding.
//
// Sealed: 24-byte random nonce | ciphertext and 16-byte tag; the
// additional data names the format. The sealed bytes are base64-encoded
// (standard alphabet, no padding) and cut into TXT strings "a=...",
// "b=...", ... of at most 255 bytes each, every one full but the last.
// Base64 rather than raw bytes because DNS libraries, miekg/dns among
// them, rewrite quotes, backslashes and unprintable bytes in TXT strings;
// distinct keys because DNS-SD (RFC 6763 §6.4) ignores repeated ones.
type wireRecord struct {
	kind   kind
	origin origin
	seq    uint64
	time   time.Time // microsecond precision
	rec    discovery.Record
	proof  []byte // see above; empty for an ID that is not a key
	signed []byte // the plaintext the proof covers, as read; set by decodeRecord
}

type kind uint8

const (
	kindLive kind = 1
	kindGone kind = 2
)

// origin tags the Discoverer that sealed a record.
type origin [8]byte

const (
	plainVersion = 2
	plainHeader  = 1 + 1 + 8 + 8 + 8

	// maxPlain bounds a record's plaintext so that, sealed and encoded,
	// zeroconf's answer (PTR, SRV, TXT, an A and two AAAA records) fits
	// in 1232 bytes, the UDP payload of IPv6's minimum MTU, and so never
	// needs fragmenting. TestLargestRecordFitsOnePacket checks the sum.
	// It counts the proof: 65 bytes for an Ed25519 key or a libp2p
	// Ed25519 peer ID.
	maxPlain     = 600
	sealOverhead = chacha20poly1305.NonceSizeX + chacha20poly1305.Overhead
	maxSealed    = maxPlain + sealOverhead

	txtKeyLen  = 2 // "a="
	txtMaxLen  = 255
	txtChunk   = txtMaxLen - txtKeyLen
	maxTXTText = (maxSealed*4 + 2) / 3 // base64 without padding
	maxTXT     = (maxTXTText + txtChunk - 1) / txtChunk
)

// aad binds a sealed record to this format, so no other use of the key
// (there is none today) could ever be confused with it.
var aad = []byte("phrasemeet mdnsdiscovery record v1")

// proofDomain starts every message a record's proof signs, so the
// signature can be nothing else, and nothing else can be one.
var proofDomain = []byte("phrasemeet mdnsdiscovery record proof v2\x00")

var b64 = base64.RawStdEncoding.Strict()

// ErrRecordTooLarge is returned by Announce and Update for a record whose
// encoding would not fit one mDNS packet. It wraps
// discovery.ErrInvalidRecord.
var ErrRecordTooLarge = fmt.Errorf("%w: too large for an mDNS record (%d bytes encoded at most)", discovery.ErrInvalidRecord, maxPlain)

// errRejected is the parent of every reason a TXT record from the LAN is
// dropped: it does not parse, does not open with the group key, or does
// not decode.
var errRejected = errors.New("mdnsdiscovery: record rejected")

func rejected(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errRejected}, args...)...)
}

// encode returns w's plaintext.
func (w *wireRecord) encode() ([]byte, error) {
	body, err := w.encodeBody()
	if err != nil {
		return nil, err
	}
	if n := len(body) + uvarintLen(uint64(len(w.proof))) + len(w.proof); n > maxPlain {
		return nil, fmt.Errorf("%w: %d bytes", ErrRecordTooLarge, n)
	}
	return appendBytes(body, string(w.proof)), nil
}

// encodeBody returns w's plaintext up to the proof field: what the proof
// signs.
func (w *wireRecord) encodeBody() ([]byte, error) {
	if err := w.rec.Validate(); err != nil {
		return nil, err
	}
	if w.kind != kindLive && w.kind != kindGone {
		return nil, fmt.Errorf("mdnsdiscovery: record kind %d", w.kind)
	}
	if w.kind == kindGone && (len(w.rec.Addrs) > 0 || len(w.rec.Meta) > 0) {
		return nil, errors.New("mdnsdiscovery: a tombstone carries no addresses or metadata")
	}
	us := w.time.UnixMicro()
	if us < 0 || us > maxMicros {
		return nil, fmt.Errorf("mdnsdiscovery: time %v out of range", w.time)
	}
	n := plainHeader + recordcodec.BodySize(len(w.rec.ID), w.rec.Addrs, len(w.rec.Meta))
	if n > maxPlain {
		return nil, fmt.Errorf("%w: %d bytes", ErrRecordTooLarge, n)
	}
	out := make([]byte, 0, n+1+len(w.proof)+2)
	out = append(out, plainVersion, byte(w.kind))
	out = append(out, w.origin[:]...)
	out = binary.BigEndian.AppendUint64(out, w.seq)
	out = binary.BigEndian.AppendUint64(out, uint64(us))
	return recordcodec.AppendBody(out, []byte(w.rec.ID), w.rec.Addrs, w.rec.Meta), nil
}

// maxMicros keeps a sealed time where time.UnixMicro and comparisons
// behave.
const maxMicros = recordcodec.MaxMicros

// appendBytes appends the last field, the proof.
func appendBytes(out []byte, s string) []byte {
	return recordcodec.AppendProof(out, []byte(s))
}

func uvarintLen(n uint64) int { return recordcodec.UvarintLen(n) }

// decodeRecord parses a plaintext: the header here, the record's fields
// with recordcodec, which checks every length against what remains before
// using it, so no input reads out of bounds or makes it allocate more
// than the input's size.
func decodeRecord(b []byte) (wireRecord, error) {
	var w wireRecord
	if len(b) < plainHeader || len(b) > maxPlain {
		return w, rejected("%d plaintext bytes", len(b))
	}
	if b[0] != plainVersion {
		return w, rejected("version %d", b[0])
	}
	w.kind = kind(b[1])
	if w.kind != kindLive && w.kind != kindGone {
		return w, rejected("kind %d", b[1])
	}
	copy(w.origin[:], b[2:10])
	w.seq = binary.BigEndian.Uint64(b[10:18])
	t, err := recordcodec.DecodeTime(binary.BigEndian.Uint64(b[18:26]))
	if err != nil {
		return w, rejected("%w", err)
	}
	w.time = t
	f, err := recordcodec.Decode(b, plainHeader, w.kind == kindGone)
	if err != nil {
		return w, rejected("%w", err)
	}
	w.rec = discovery.Record{ID: string(f.ID), Addrs: f.Addrs, Meta: f.Meta}
	w.proof, w.signed = f.Proof, f.Signed
	return w, nil
}

// sealer seals and opens records under one group's record key.
type sealer struct {
	aead cipher.AEAD
	// binding goes into every proof's message, so a proof made in one
	// group proves nothing in another. Not secret: nothing else comes
	// from it.
	binding [32]byte
}

func newSealer(secret *[32]byte) (*sealer, error) {
	var k [32]byte
	blake3.DeriveKey(ctxRecordKey, secret[:], k[:])
	aead, err := chacha20poly1305.NewX(k[:])
	clear(k[:])
	if err != nil {
		return nil, err
	}
	s := &sealer{aead: aead}
	blake3.DeriveKey(ctxBinding, secret[:], s.binding[:])
	return s, nil
}

// proofMessage is what the proof of a record whose plaintext up to the
// proof field is body signs.
func (s *sealer) proofMessage(body []byte) []byte {
	msg := make([]byte, 0, len(proofDomain)+len(s.binding)+len(body))
	msg = append(msg, proofDomain...)
	msg = append(msg, s.binding[:]...)
	return append(msg, body...)
}

// seal returns w sealed under a fresh random nonce, as TXT strings.
func (s *sealer) seal(w *wireRecord) ([]string, error) {
	var nonce [chacha20poly1305.NonceSizeX]byte
	_, _ = rand.Read(nonce[:]) // crypto/rand.Read never fails
	return s.sealWithNonce(w, nonce[:])
}

func (s *sealer) sealWithNonce(w *wireRecord, nonce []byte) ([]string, error) {
	plain, err := w.encode()
	if err != nil {
		return nil, err
	}
	sealed := s.aead.Seal(slices.Clip(nonce), nonce, plain, aad)
	return toTXT(b64.EncodeToString(sealed)), nil
}

// toTXT cuts text into keyed TXT strings of at most 255 bytes.
func toTXT(text string) []string {
	out := make([]string, 0, (len(text)+txtChunk-1)/txtChunk)
	for i := 0; len(text) > 0; i++ {
		n := min(len(text), txtChunk)
		out = append(out, string(rune('a'+i))+"="+text[:n])
		text = text[n:]
	}
	return out
}

// open parses, opens and decodes the TXT strings of an instance. Only the
// layout toTXT makes is accepted, with every length bounded before any
// work, so hostile input costs at most one bounded base64 decode and one
// AEAD open.
func (s *sealer) open(txt []string) (wireRecord, error) {
	if len(txt) == 0 || len(txt) > maxTXT {
		return wireRecord{}, rejected("%d TXT strings", len(txt))
	}
	total := 0
	for i, t := range txt {
		last := i == len(txt)-1
		switch {
		case len(t) > txtMaxLen, len(t) <= txtKeyLen,
			!last && len(t) != txtMaxLen:
			return wireRecord{}, rejected("TXT string %d of %d bytes", i, len(t))
		case t[0] != byte('a'+i) || t[1] != '=':
			return wireRecord{}, rejected("TXT string %d has the wrong key", i)
		}
		total += len(t) - txtKeyLen
	}
	if total > maxTXTText {
		return wireRecord{}, rejected("%d bytes of text", total)
	}
	var text strings.Builder
	text.Grow(total)
	for _, t := range txt {
		// Checked here because Go's base64 decoder skips '\r' and '\n',
		// which would give one record more than one encoding.
		for i := txtKeyLen; i < len(t); i++ {
			if !isBase64(t[i]) {
				return wireRecord{}, rejected("not base64")
			}
		}
		text.WriteString(t[txtKeyLen:])
	}
	sealed, err := b64.DecodeString(text.String())
	if err != nil {
		return wireRecord{}, rejected("not base64")
	}
	if len(sealed) < sealOverhead {
		return wireRecord{}, rejected("%d sealed bytes", len(sealed))
	}
	nonce, ct := sealed[:chacha20poly1305.NonceSizeX], sealed[chacha20poly1305.NonceSizeX:]
	plain, err := s.aead.Open(ct[:0], nonce, ct, aad)
	if err != nil {
		return wireRecord{}, rejected("does not open with the group key")
	}
	return decodeRecord(plain)
}

func isBase64(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/'
}

// compareVersion orders version (seq, t) against (oseq, ot): by
// sequence first, so an Update is ordered right even if the peer's clock
// stepped back, then by sealing time, so a refresh of the same version
// counts as newer.
func compareVersion(seq uint64, t time.Time, oseq uint64, ot time.Time) int {
	if seq != oseq {
		if seq > oseq {
			return 1
		}
		return -1
	}
	return t.Compare(ot)
}
