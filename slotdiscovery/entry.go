package slotdiscovery

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/phrasemeet/discovery"
	"github.com/phrasemeet/discovery/internal/recordcodec"
	"github.com/phrasemeet/discovery/pkarrclient"
)

// An entry is one peer's sealed line in a slot packet: who it is, how to
// reach it, and when it said so. A slot packet holds several, one TXT
// record each at the packet's apex, so the record name says nothing about
// the group.
//
// Plaintext layout (version 2):
//
//	version (1) | flags (1) | time µs (8, big-endian) | since µs (8) |
//	uvarint len + id | uvarint count, then uvarint len + addr each |
//	uvarint len + meta | uvarint len + proof
//
// The fields after the header are recordcodec's, shared with
// mdnsdiscovery's records.
//
// Flags: bits 0-1 the kind (1 live, 2 tombstone); bit 7 set when the ID
// is lowercase hex and stored as its bytes, which halves the usual
// 64-character endpoint ID.
//
// The proof is empty unless the ID is a public key (an ID a configured
// [discovery.IDScheme] owns); then it is the scheme's signature, by that
// key, of proofDomain | the group's binding (32 bytes) | the slot's
// public key (32) | the plaintext before the proof field. Readers ignore
// an entry about a key whose proof does not verify, so a member holding
// the passphrase cannot write a tombstone or another address under
// someone else's key; the binding keeps a proof from being replayed into
// another group, the slot key into another slot. Version 1 had no proof
// field; readers of either version refuse the other's entries.
//
// Sealed: 12-byte random nonce | ChaCha20-Poly1305 ciphertext and tag,
// under a key of the slot's own (see Group.slotAEAD). The additional data
// binds the entry to its slot's public key too, so an entry copied into
// another slot does not open.
type entry struct {
	kind  entryKind
	time  time.Time // this version's signed time: liveness is judged by it
	since time.Time // when the peer first claimed: older claims win a full slot
	rec   discovery.Record
	// proof proves the entry for its slot when the ID is a key (see
	// Discoverer.sign); empty otherwise.
	proof []byte
	// signed is the plaintext the proof covers, as read; set by
	// unmarshalEntry only.
	signed []byte
}

type entryKind uint8

const (
	kindLive      entryKind = 1
	kindTombstone entryKind = 2

	entryVersion = 2
	flagHexID    = 0x80
	kindMask     = 0x03

	entryHeader  = 2 + 8 + 8
	sealOverhead = chacha20poly1305.NonceSize + chacha20poly1305.Overhead

	// txtRROverhead is what one entry costs in the DNS message beyond its
	// sealed bytes: a compressed owner name (2), type, class, TTL and
	// rdlength (10), and one length byte per 255-byte character-string.
	txtRROverhead = 12
	// packetOverhead is the DNS header (12) plus the first, uncompressed
	// owner name: the z-base-32 key and the root label (54).
	packetOverhead = 12 + 54

	entryTTL = 300

	// maxEntryPlain keeps one entry well inside a packet, leaving room for
	// at least two more of typical size (typicalEntry): 430 bytes of
	// plaintext are 472 on the wire, and 934 bytes are left for entries in
	// a packet. It counts the proof, 65 bytes for an Ed25519 key, so a
	// record proper has about 365 bytes.
	maxEntryPlain = 430
)

var aadPrefix = []byte("phrasemeet slotdiscovery entry v1\x00")

// proofDomain starts every message an entry's proof signs, so a signature
// made for an entry can be nothing else (a libp2p signed envelope, a TLS
// or Noise handshake, a pkarr packet) and none of those can be an entry's
// proof.
var proofDomain = []byte("phrasemeet slotdiscovery entry proof v2\x00")

// errEntry is the parent of every reason a sealed entry is rejected.
var errEntry = errors.New("slotdiscovery: invalid entry")

// ErrRecordTooLarge is returned for a record whose entry would not leave
// room in a slot packet for other peers.
var ErrRecordTooLarge = fmt.Errorf("%w: too large for a slot entry", discovery.ErrInvalidRecord)

func packedID(id string) ([]byte, bool) {
	if len(id) == 0 || len(id)%2 != 0 {
		return nil, false
	}
	b, err := hex.DecodeString(id)
	if err != nil || hex.EncodeToString(b) != id {
		return nil, false // uppercase or mixed: keep it verbatim
	}
	return b, true
}

// marshalBody encodes the plaintext up to the proof field: what the proof
// signs.
func (e *entry) marshalBody() []byte {
	flags := byte(e.kind) & kindMask
	id := []byte(e.rec.ID)
	if b, ok := packedID(e.rec.ID); ok {
		flags |= flagHexID
		id = b
	}
	out := make([]byte, 0, 64+len(id)+len(e.rec.Meta)+len(e.proof)+2)
	out = append(out, entryVersion, flags)
	out = binary.BigEndian.AppendUint64(out, uint64(e.time.UnixMicro()))
	out = binary.BigEndian.AppendUint64(out, uint64(e.since.UnixMicro()))
	return recordcodec.AppendBody(out, id, e.rec.Addrs, e.rec.Meta)
}

// marshal encodes the plaintext, proof included.
func (e *entry) marshal() ([]byte, error) {
	out := recordcodec.AppendProof(e.marshalBody(), e.proof)
	if len(out) > maxEntryPlain {
		return nil, fmt.Errorf("%w: %d bytes encoded, at most %d", ErrRecordTooLarge, len(out), maxEntryPlain)
	}
	return out, nil
}

// unmarshalEntry decodes a plaintext: the header here, the record's
// fields with recordcodec, which checks every length against what
// remains, so no input can make it read out of bounds or allocate more
// than the input's size, and accepts only minimal varints and no
// trailing bytes, so an entry has exactly one encoding. A plaintext
// longer than maxEntryPlain, which marshal never makes, is refused.
func unmarshalEntry(b []byte) (entry, error) {
	var e entry
	if len(b) < entryHeader || len(b) > maxEntryPlain {
		return e, fmt.Errorf("%w: %d bytes", errEntry, len(b))
	}
	if b[0] != entryVersion {
		return e, fmt.Errorf("%w: version %d", errEntry, b[0])
	}
	flags := b[1]
	e.kind = entryKind(flags & kindMask)
	if e.kind != kindLive && e.kind != kindTombstone || flags&^(kindMask|flagHexID) != 0 {
		return e, fmt.Errorf("%w: flags %#x", errEntry, flags)
	}
	var err error
	if e.time, err = recordcodec.DecodeTime(binary.BigEndian.Uint64(b[2:])); err != nil {
		return e, fmt.Errorf("%w: %w", errEntry, err)
	}
	if e.since, err = recordcodec.DecodeTime(binary.BigEndian.Uint64(b[10:])); err != nil {
		return e, fmt.Errorf("%w: %w", errEntry, err)
	}
	f, err := recordcodec.Decode(b, entryHeader, e.kind == kindTombstone)
	if err != nil {
		return e, fmt.Errorf("%w: %w", errEntry, err)
	}
	id := string(f.ID)
	if flags&flagHexID != 0 {
		id = hex.EncodeToString(f.ID)
	}
	e.rec = discovery.Record{ID: id, Addrs: f.Addrs, Meta: f.Meta}
	e.proof, e.signed = f.Proof, f.Signed
	return e, nil
}

// proofMessage is what the proof of an entry in slot signs, body being
// the entry's plaintext up to the proof field.
func (g *Group) proofMessage(slot pkarrclient.PublicKey, body []byte) []byte {
	msg := make([]byte, 0, len(proofDomain)+len(g.binding)+len(slot)+len(body))
	msg = append(msg, proofDomain...)
	msg = append(msg, g.binding[:]...)
	msg = append(msg, slot[:]...)
	return append(msg, body...)
}

func aad(slot pkarrclient.PublicKey) []byte {
	return append(slices.Clip(aadPrefix), slot[:]...)
}

// seal encrypts e for the slot whose key is slot, under a random nonce.
func (g *Group) seal(e *entry, slot pkarrclient.PublicKey) ([]byte, error) {
	var nonce [chacha20poly1305.NonceSize]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, err
	}
	return g.sealNonce(e, slot, nonce)
}

// sealNonce is seal with the nonce given. Only seal and the known-answer
// test call it: a fixed nonce makes the sealed bytes reproducible, and a
// reused one would give away the plaintexts under it.
func (g *Group) sealNonce(e *entry, slot pkarrclient.PublicKey, nonce [chacha20poly1305.NonceSize]byte) ([]byte, error) {
	plain, err := e.marshal()
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, sealOverhead+len(plain))
	out = append(out, nonce[:]...)
	return g.slotAEAD(slot).Seal(out, out, plain, aad(slot)), nil
}

// open decrypts and decodes one sealed entry from the slot slot.
func (g *Group) open(sealed []byte, slot pkarrclient.PublicKey) (entry, error) {
	if len(sealed) < sealOverhead {
		return entry{}, fmt.Errorf("%w: %d sealed bytes", errEntry, len(sealed))
	}
	nonce, ct := sealed[:chacha20poly1305.NonceSize], sealed[chacha20poly1305.NonceSize:]
	plain, err := g.slotAEAD(slot).Open(nil, nonce, ct, aad(slot))
	if err != nil {
		return entry{}, fmt.Errorf("%w: does not open with the group key", errEntry)
	}
	return unmarshalEntry(plain)
}

// sealedEntry is an entry together with the exact bytes it was read as.
// A peer rewriting a slot carries other peers' entries forward byte for
// byte: it could re-seal them, but keeping the bytes keeps their size,
// and so the packet's fit, exactly as their owners made it.
type sealedEntry struct {
	entry
	sealed []byte
}

// wireSize is what the entry costs in a slot's DNS message.
func (s sealedEntry) wireSize() int {
	return len(s.sealed) + txtRROverhead + (len(s.sealed)+254)/255
}

// openSlot returns the entries of a slot packet that open under g, and
// how many TXT records did not (another group's, a forger's or junk).
func (g *Group) openSlot(p *pkarrclient.SignedPacket) (entries []sealedEntry, bad int) {
	key := p.PublicKey()
	for _, v := range p.TXT("@") {
		e, err := g.open([]byte(v), key)
		if err != nil {
			bad++
			continue
		}
		entries = append(entries, sealedEntry{entry: e, sealed: []byte(v)})
	}
	return entries, bad
}

// buildSlot signs a slot packet holding the given entries.
func buildSlot(sk *pkarrclient.SecretKey, ts pkarrclient.Timestamp, entries []sealedEntry) (*pkarrclient.SignedPacket, error) {
	b := pkarrclient.NewBuilder().Timestamp(ts)
	for _, e := range entries {
		b.TXT("@", entryTTL, string(e.sealed))
	}
	return b.Sign(sk)
}

// fits reports whether entries fit one packet's 1000-byte DNS message.
func fits(entries []sealedEntry) bool {
	n := packetOverhead
	for _, e := range entries {
		n += e.wireSize()
	}
	return n <= pkarrclient.MaxDNSSize
}
