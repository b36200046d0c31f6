package slotdiscovery

// Fuzz targets for every parser of the package: the entry plaintext, the
// sealed entry, a slot packet's apex TXT records, can-sync's _can_sync
// record, and the slot classification of ReadTable. Each checks what the
// parser promises, not only that it returns: bad input gets an error that
// wraps the package's sentinel, good input round-trips, and garbage next
// to genuine entries costs those entries nothing.
//
// The committed corpus lives in testdata/fuzz/<Target>/; plain go test
// replays it. Seeds sealed at test time use fixed nonces (fuzzSealFixed),
// so a genuine seal written into the corpus stays genuine in later runs.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/jonboulle/clockwork"
	"math"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/phrasemeet/discovery"
	"github.com/phrasemeet/discovery/pkarrclient"
)

// fuzzKDF keeps group derivation cheap, as the package's other tests do.
var fuzzKDF = KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

const (
	fuzzPassphrase      = "fuzz passphrase one two three"
	fuzzOtherPassphrase = "another group's passphrase"
	// fuzzSlots is how many slot keys the targets sign with.
	fuzzSlots = 4
)

// fuzzNow is the fixed clock of the targets that judge ages.
var fuzzNow = time.UnixMicro(1_750_000_000_000_000)

func fuzzGroup(tb testing.TB, passphrase string) *Group {
	tb.Helper()
	g, err := DeriveGroup([]byte(passphrase), WithKDF(fuzzKDF))
	if err != nil {
		tb.Fatal(err)
	}
	return g
}

// fuzzSealFixed seals e for slot as seal does, but with a nonce made of
// the byte n: seeds are then the same in every run.
func fuzzSealFixed(tb testing.TB, g *Group, e *entry, slot pkarrclient.PublicKey, n byte) []byte {
	tb.Helper()
	plain, err := e.marshal()
	if err != nil {
		tb.Fatal(err)
	}
	nonce := bytes.Repeat([]byte{n}, chacha20poly1305.NonceSize)
	return g.slotAEAD(slot).Seal(nonce, nonce, plain, aad(slot))
}

// fuzzHexID is a 64-character lowercase hex ID, as an iroh endpoint ID:
// the public key of fuzzKey, so the targets can sign for it.
var fuzzKey, fuzzHexID = func() (ed25519.PrivateKey, string) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x5c}, ed25519.SeedSize))
	return priv, hex.EncodeToString(priv.Public().(ed25519.PublicKey))
}()

// fuzzProof is the proof a fuzzed entry carries, from 7 bits of its
// input: p bytes, so both the empty proof and one of an Ed25519
// signature's length come up.
func fuzzProof(p uint8) []byte {
	if p == 0 {
		return nil
	}
	return bytes.Repeat([]byte{p}, int(p))
}

// fuzzSign gives e the proof a writer holding fuzzKey makes for slot.
func fuzzSign(tb testing.TB, g *Group, e *entry, slot pkarrclient.PublicKey) {
	tb.Helper()
	e.proof = nil
	proof, err := discovery.Prove([]discovery.IDScheme{discovery.Ed25519Hex{}}, discovery.Ed25519Signer(fuzzKey),
		e.rec.ID, g.proofMessage(slot, e.marshalBody()))
	if err != nil {
		tb.Fatal(err)
	}
	e.proof = proof
}

// isHexKeyID reports whether id is 64 hex digits in either case: an ID
// the default scheme owns, whose entries need a proof.
func isHexKeyID(id string) bool {
	return len(id) == 64 && strings.Trim(strings.ToLower(id), "0123456789abcdef") == ""
}

// fuzzEntries are entries of every shape the writer makes.
func fuzzEntries() []entry {
	t0 := time.UnixMicro(1_750_000_000_000_000)
	return []entry{
		{kind: kindLive, time: t0, since: t0.Add(-time.Hour), rec: discovery.Record{
			ID: fuzzHexID, Addrs: []string{"192.0.2.1:4433", "[2001:db8::1]:4433", "relay=https://relay.example/"}, Meta: []byte("v=1"),
		}},
		{kind: kindLive, time: t0.Add(-90 * time.Second), since: t0.Add(-100 * time.Second), rec: discovery.Record{ID: "peer-Alpha"}},
		{kind: kindTombstone, time: t0.Add(-10 * time.Second), since: t0.Add(-time.Minute), rec: discovery.Record{ID: fuzzHexID[:32]}},
		{kind: kindLive, time: t0.Add(time.Second), since: time.UnixMicro(0), rec: discovery.Record{
			ID: strings.ToUpper(fuzzHexID), Addrs: []string{""}, Meta: []byte{0, 0xff, '\\', '"'},
		}},
		{kind: kindLive, time: time.UnixMicro(1 << 62), since: time.UnixMicro(1 << 62), rec: discovery.Record{
			ID: "abc", Addrs: []string{strings.Repeat("a", 200)}, Meta: bytes.Repeat([]byte{'m'}, 40),
		}, proof: bytes.Repeat([]byte{0xaa}, 64)},
	}
}

// fuzzMaxEntry is an entry whose plaintext is exactly maxEntryPlain bytes.
func fuzzMaxEntry() entry {
	e := fuzzEntries()[0]
	plain, err := e.marshal()
	if err != nil {
		panic(err)
	}
	// Meta's length prefix stays one byte (3 -> n < 128), so each byte
	// added to Meta adds one to the encoding, up to the point where the
	// prefix grows to two bytes.
	extra := maxEntryPlain - len(plain)
	if len(e.rec.Meta)+extra >= 128 {
		extra-- // the two-byte prefix takes one of them
	}
	e.rec.Meta = append(bytes.Clone(e.rec.Meta), bytes.Repeat([]byte{'x'}, extra)...)
	return e
}

func entriesEqual(a, b entry) bool {
	return a.kind == b.kind && a.time.Equal(b.time) && a.since.Equal(b.since) && a.rec.Equal(b.rec) &&
		bytes.Equal(a.proof, b.proof)
}

// uvarintLen is the length of n's uvarint encoding.
func uvarintLen(n int) int { return len(binary.AppendUvarint(nil, uint64(n))) }

// isLowerHexBytes reports whether s is non-empty, of even length and made
// of 0-9a-f only: an ID the format stores as its bytes.
func isLowerHexBytes(s string) bool {
	if s == "" || len(s)%2 != 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// fuzzChunks splits b into values: a length byte then that many bytes
// (the length byte 255 takes the next two bytes, big-endian, instead), the
// last value cut short if b ends first.
func fuzzChunks(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		n := int(b[0])
		b = b[1:]
		if n == 255 && len(b) >= 2 {
			n = int(binary.BigEndian.Uint16(b))
			b = b[2:]
		}
		n = min(n, len(b))
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

// chunk encodes values as fuzzChunks reads them.
func chunk(values ...[]byte) []byte {
	var out []byte
	for _, v := range values {
		if len(v) >= 255 {
			out = append(out, 255)
			out = binary.BigEndian.AppendUint16(out, uint16(len(v)))
		} else {
			out = append(out, byte(len(v)))
		}
		out = append(out, v...)
	}
	return out
}

// FuzzEntryUnmarshal: any bytes either fail with errEntry or decode to an
// entry that re-encodes canonically, no longer than its input and within
// maxEntryPlain, and decodes again to the same entry.
func FuzzEntryUnmarshal(f *testing.F) {
	for _, e := range append(fuzzEntries(), fuzzMaxEntry()) {
		b, err := e.marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)-1])                // truncated
		f.Add(append(b, 0))                // trailing byte
		f.Add(append([]byte{2}, b[1:]...)) // unknown version
	}
	hdr := func(flags byte) []byte {
		b := []byte{entryVersion, flags}
		b = binary.BigEndian.AppendUint64(b, 1_750_000_000_000_000)
		return binary.BigEndian.AppendUint64(b, 1_749_000_000_000_000)
	}
	f.Add([]byte{})
	f.Add(hdr(byte(kindLive)))
	f.Add(append(hdr(byte(kindLive)), 0, 0, 0, 0))                                                            // empty ID
	f.Add(append(hdr(byte(kindLive)), 1, 'a', 0, 0, 0))                                                       // smallest entry
	f.Add(append(hdr(byte(kindLive)), 1, 'a', 0, 0))                                                          // no proof field (version 1's layout)
	f.Add(append(hdr(byte(kindLive)|flagHexID), 1, 0xab, 0, 0, 0))                                            // packed ID
	f.Add(append(hdr(byte(kindLive)), 0x81, 0x00, 'a', 0, 0, 0))                                              // overlong uvarint
	f.Add(append(hdr(byte(kindLive)), 2, 'a', 'b', 0, 0, 0))                                                  // lowercase hex kept verbatim
	f.Add(append(hdr(3), 1, 'a', 0, 0, 0))                                                                    // kind 3
	f.Add(append(hdr(byte(kindLive)|0x10), 1, 'a', 0, 0, 0))                                                  // unknown flag
	f.Add(append(hdr(byte(kindTombstone)), 1, 'a', 1, 0, 0, 0))                                               // tombstone with an address
	f.Add(append(hdr(byte(kindTombstone)), 1, 'a', 0, 1, 'm', 0))                                             // tombstone with meta
	f.Add(append(hdr(byte(kindTombstone)), 1, 'a', 0, 0, 2, 's', 'g'))                                        // tombstone with a proof
	f.Add(append(hdr(byte(kindLive)), 1, 'a', 0, 0, 64))                                                      // proof cut short
	f.Add(append(hdr(byte(kindLive)), 1, 'a', 0, 0, 0x80, 0x00))                                              // overlong proof length
	f.Add(append(hdr(byte(kindLive)), 1, 'a', 0xff, 0xff, 0xff, 0xff, 0x0f))                                  // huge address count
	f.Add(append(hdr(byte(kindLive)), 1, 'a', 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02)) // uvarint overflow
	v1 := append([]byte{1}, append(hdr(byte(kindLive)), 1, 'a', 0, 0)[1:]...)
	f.Add(v1) // a version 1 entry
	big := append(hdr(byte(kindLive)), 1, 'a', 0)
	big = binary.AppendUvarint(big, uint64(maxEntryPlain))
	f.Add(append(append(big, make([]byte, maxEntryPlain)...), 0)) // well formed, too large
	f.Fuzz(func(t *testing.T, b []byte) {
		in := bytes.Clone(b)
		e, err := unmarshalEntry(in)
		if err != nil {
			if !errors.Is(err, errEntry) {
				t.Fatalf("error does not wrap errEntry: %v", err)
			}
			return
		}
		// The entry owns its bytes: the decrypted buffer is reused.
		for i := range in {
			in[i] ^= 0x55
		}
		if again, err := unmarshalEntry(b); err != nil || !entriesEqual(e, again) || !bytes.Equal(e.signed, again.signed) {
			t.Fatalf("entry aliases its input, or decoding is not deterministic: %v", err)
		}
		if len(b) > maxEntryPlain {
			t.Fatalf("accepted a %d-byte plaintext, the limit is %d", len(b), maxEntryPlain)
		}
		// What a proof signs is the input up to the proof field, exactly:
		// the proof field, a length and the proof, is all that follows.
		tail := b[len(e.signed):]
		n, k := binary.Uvarint(tail)
		if !bytes.HasPrefix(b, e.signed) || k <= 0 || n != uint64(len(e.proof)) ||
			k+len(e.proof) != len(tail) || !bytes.Equal(tail[k:], e.proof) {
			t.Fatalf("signed part %x and proof %x do not make the input %x", e.signed, e.proof, b)
		}
		if e.kind != kindLive && e.kind != kindTombstone {
			t.Fatalf("accepted kind %d", e.kind)
		}
		if e.rec.Validate() != nil {
			t.Fatalf("accepted an invalid record %+v", e.rec)
		}
		if e.kind == kindTombstone && (len(e.rec.Addrs) > 0 || len(e.rec.Meta) > 0) {
			t.Fatalf("accepted a tombstone carrying a record")
		}
		if us := e.time.UnixMicro(); us < 0 || us > 1<<62 {
			t.Fatalf("accepted time %d µs", us)
		}
		canon, err := e.marshal()
		if err != nil {
			t.Fatalf("accepted entry does not re-encode: %v", err)
		}
		if len(canon) > len(b) {
			t.Fatalf("re-encoding grew from %d to %d bytes", len(b), len(canon))
		}
		e2, err := unmarshalEntry(canon)
		if err != nil {
			t.Fatalf("re-encoding does not decode: %v", err)
		}
		if !entriesEqual(e, e2) {
			t.Fatalf("round trip changed the entry:\n%+v\n%+v", e, e2)
		}
		if canon2, err := e2.marshal(); err != nil || !bytes.Equal(canon, canon2) {
			t.Fatalf("encoding is not canonical: %x then %x (%v)", canon, canon2, err)
		}
	})
}

// FuzzEntryMarshal: marshal of an entry the writer can make has exactly the
// documented size, fails with ErrRecordTooLarge past maxEntryPlain and
// nowhere else, packs exactly the lowercase hex IDs, and decodes back to
// the same entry, whose signed part is marshalBody's. The kind byte's
// bit 0 makes a tombstone, its other bits a proof (fuzzProof).
func FuzzEntryMarshal(f *testing.F) {
	for _, e := range append(fuzzEntries(), fuzzMaxEntry()) {
		f.Add(uint8(e.kind), uint64(e.time.UnixMicro()), uint64(e.since.UnixMicro()), e.rec.ID,
			strings.Join(e.rec.Addrs, "\x00"), e.rec.Meta)
	}
	f.Add(uint8(kindLive), uint64(0), uint64(0), "", "", []byte(nil))
	f.Add(uint8(kindLive), uint64(1), uint64(1), "0", "a\x00\x00b", []byte{})
	f.Add(uint8(kindLive), uint64(1<<62), uint64(1), "ABab", "", bytes.Repeat([]byte{'x'}, 500))
	f.Add(uint8(64<<1|1), uint64(1), uint64(1), fuzzHexID, "", []byte(nil))                   // a tombstone with a 64-byte proof
	f.Add(uint8(64<<1), uint64(1), uint64(1), fuzzHexID, "a", bytes.Repeat([]byte{'x'}, 280)) // a live entry with one, near the limit
	f.Fuzz(func(t *testing.T, kind uint8, tm, since uint64, id, addrs string, meta []byte) {
		e := entry{
			kind:  kindLive,
			time:  time.UnixMicro(int64(tm % (1<<62 + 1))),
			since: time.UnixMicro(int64(since % (1<<62 + 1))),
			rec:   discovery.Record{ID: id, Meta: meta},
			proof: fuzzProof(kind >> 1),
		}
		if addrs != "" {
			e.rec.Addrs = strings.Split(addrs, "\x00")
		}
		if kind&1 == 1 {
			e.kind = kindTombstone
			e.rec.Addrs, e.rec.Meta = nil, nil
		}
		stored := len(id)
		if isLowerHexBytes(id) {
			stored = len(id) / 2
		}
		want := entryHeader + uvarintLen(stored) + stored + uvarintLen(len(e.rec.Addrs))
		for _, a := range e.rec.Addrs {
			want += uvarintLen(len(a)) + len(a)
		}
		want += uvarintLen(len(e.rec.Meta)) + len(e.rec.Meta)
		want += uvarintLen(len(e.proof)) + len(e.proof)

		b, err := e.marshal()
		if want > maxEntryPlain {
			if !errors.Is(err, ErrRecordTooLarge) || !errors.Is(err, discovery.ErrInvalidRecord) {
				t.Fatalf("a %d-byte entry: got %v, want ErrRecordTooLarge", want, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("a %d-byte entry failed: %v", want, err)
		}
		if len(b) != want {
			t.Fatalf("encoded %d bytes, the layout says %d", len(b), want)
		}
		if packed := b[1]&flagHexID != 0; packed != isLowerHexBytes(id) {
			t.Fatalf("ID %q packed=%v", id, packed)
		}
		got, err := unmarshalEntry(b)
		if id == "" {
			// The writer never gets here (Record.Validate comes first);
			// the reader refuses it.
			if !errors.Is(err, errEntry) {
				t.Fatalf("an empty ID decoded: %v", err)
			}
			return
		}
		if err != nil {
			t.Fatalf("valid entry does not decode: %v", err)
		}
		if !entriesEqual(e, got) {
			t.Fatalf("round trip changed the entry:\n%+v\n%+v", e, got)
		}
		if !bytes.Equal(got.signed, e.marshalBody()) {
			t.Fatalf("the signed part read %x, the writer signs %x", got.signed, e.marshalBody())
		}
	})
}

// fuzzSeals returns, for the seeds, entries sealed with fixed nonces for
// slots 0..fuzzSlots-1 of g, by slot key and sealed bytes.
func fuzzSeals(tb testing.TB, g *Group) (seals [][]byte, known map[string]entry) {
	known = make(map[string]entry)
	for i := range fuzzSlots {
		key := g.SlotKey(i).PublicKey()
		for j, e := range fuzzEntries() {
			s := fuzzSealFixed(tb, g, &e, key, byte(16*i+j))
			seals = append(seals, s)
			known[string(key[:])+string(s)] = e
		}
	}
	return seals, known
}

// FuzzOpen: arbitrary sealed bytes under an arbitrary slot key (the AAD)
// fail with errEntry, unless they are a genuine seal for that very key,
// which then opens to its entry; nothing opens under another group's key.
func FuzzOpen(f *testing.F) {
	g := fuzzGroup(f, fuzzPassphrase)
	other := fuzzGroup(f, fuzzOtherPassphrase)
	seals, known := fuzzSeals(f, g)
	key0, key1 := g.SlotKey(0).PublicKey(), g.SlotKey(1).PublicKey()
	for i, s := range seals {
		key := g.SlotKey(i / len(fuzzEntries())).PublicKey()
		f.Add(s, key[:])
		f.Add(s, key1[:])     // genuine, but the wrong slot
		f.Add(s[:40], key[:]) // nonce and tag only
	}
	f.Add([]byte{}, key0[:])
	f.Add(make([]byte, sealOverhead), key0[:])
	f.Add(make([]byte, sealOverhead+18), []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, sealed, slot []byte) {
		key := key0
		if len(slot) == pkarrclient.PublicKeySize {
			copy(key[:], slot) // any 32 bytes: aad does not need a point
		}
		in := bytes.Clone(sealed)
		e, err := g.open(in, key)
		if !bytes.Equal(in, sealed) {
			t.Fatal("open modified its input")
		}
		want, genuine := known[string(key[:])+string(sealed)]
		switch {
		case err != nil && !errors.Is(err, errEntry):
			t.Fatalf("error does not wrap errEntry: %v", err)
		case err != nil && genuine:
			t.Fatalf("a genuine seal failed to open: %v", err)
		case err == nil && !genuine:
			t.Fatalf("%x opened under %x though nobody sealed it there: %+v", sealed, key, e)
		case err == nil && !entriesEqual(e, want):
			t.Fatalf("opened to %+v, sealed %+v", e, want)
		}
		if _, err := other.open(sealed, key); err == nil {
			t.Fatal("opened with another group's key")
		}
	})
}

// fuzzEntry builds a valid entry from fuzzed fields, or reports false when
// it would not fit the format.
func fuzzEntry(kind uint8, tm uint64, id, addrs string, meta []byte) (entry, bool) {
	t := time.UnixMicro(int64(tm % (1<<62 + 1)))
	e := entry{kind: kindLive, time: t, since: t.Add(-time.Duration(tm%1000) * time.Second), rec: discovery.Record{ID: id, Meta: meta},
		proof: fuzzProof(kind >> 1)}
	if e.since.Before(time.UnixMicro(0)) {
		e.since = time.UnixMicro(0)
	}
	if addrs != "" {
		e.rec.Addrs = strings.Split(addrs, "\x00")
	}
	if kind&1 == 1 {
		e.kind = kindTombstone
		e.rec.Addrs, e.rec.Meta = nil, nil
	}
	if id == "" {
		return e, false
	}
	_, err := e.marshal()
	return e, err == nil
}

// FuzzSealOpen: a fresh seal opens to its entry under its own slot key and
// nowhere else: not under another slot's key (the AAD binds the slot), not
// under another group's key, not with any byte flipped, cut or added.
func FuzzSealOpen(f *testing.F) {
	g := fuzzGroup(f, fuzzPassphrase)
	other := fuzzGroup(f, fuzzOtherPassphrase)
	for i, e := range append(fuzzEntries(), fuzzMaxEntry()) {
		f.Add(uint8(e.kind), uint64(e.time.UnixMicro()), e.rec.ID, strings.Join(e.rec.Addrs, "\x00"), e.rec.Meta,
			uint8(i), []byte(nil), uint16(i*37), byte(1<<(i%8)))
	}
	k := g.SlotKey(0).PublicKey()
	k[31] ^= 0x80 // the same key but its sign bit
	f.Add(uint8(kindLive), uint64(1), "x", "", []byte(nil), uint8(0), k[:], uint16(0), byte(0))
	f.Fuzz(func(t *testing.T, kind uint8, tm uint64, id, addrs string, meta []byte, slot uint8, otherKey []byte, pos uint16, mask byte) {
		e, ok := fuzzEntry(kind, tm, id, addrs, meta)
		if !ok {
			return
		}
		i := int(slot % fuzzSlots)
		key := g.SlotKey(i).PublicKey()
		s, err := g.seal(&e, key)
		if err != nil {
			t.Fatal(err)
		}
		plain, _ := e.marshal()
		if len(s) != sealOverhead+len(plain) {
			t.Fatalf("sealed %d bytes, want %d", len(s), sealOverhead+len(plain))
		}
		got, err := g.open(s, key)
		if err != nil || !entriesEqual(e, got) {
			t.Fatalf("seal does not open to its entry: %v", err)
		}
		wrong := []pkarrclient.PublicKey{g.SlotKey((i + 1) % fuzzSlots).PublicKey(), other.SlotKey(i).PublicKey()}
		if len(otherKey) == pkarrclient.PublicKeySize {
			wrong = append(wrong, pkarrclient.PublicKey(otherKey))
		}
		for _, w := range wrong {
			if w == key {
				continue
			}
			if _, err := g.open(s, w); !errors.Is(err, errEntry) {
				t.Fatalf("opened under slot key %x, sealed for %x (%v)", w, key, err)
			}
		}
		if _, err := other.open(s, key); err == nil {
			t.Fatal("opened with another group's key")
		}
		if mask == 0 {
			mask = 1
		}
		flipped := bytes.Clone(s)
		flipped[int(pos)%len(s)] ^= mask
		if _, err := g.open(flipped, key); !errors.Is(err, errEntry) {
			t.Fatalf("opened with byte %d flipped by %#x (%v)", int(pos)%len(s), mask, err)
		}
		if _, err := g.open(s[:int(pos)%len(s)], key); !errors.Is(err, errEntry) {
			t.Fatalf("opened cut to %d bytes (%v)", int(pos)%len(s), err)
		}
		if _, err := g.open(append(bytes.Clone(s), mask), key); !errors.Is(err, errEntry) {
			t.Fatalf("opened with a byte added (%v)", err)
		}
	})
}

// A fuzzed slot packet is built from a layout: each byte adds one record.
const (
	recGenuine    = iota // a genuine entry for this slot, at the apex
	recGarbage           // the next fuzzed value, at an apex spelling
	recOtherSlot         // a genuine entry sealed for another slot
	recOtherGroup        // an entry sealed by another group for this slot
	recNotApex           // a genuine entry under a name below the apex
	recNotTXT            // an A record at the apex
	recKinds
)

// fuzzRecord is one record of a fuzzed packet and what a reader must make
// of it.
type fuzzRecord struct {
	name  string
	value []byte
	a     bool   // an A record rather than a TXT record
	apex  bool   // a TXT record at the apex: openSlot reads it
	want  *entry // the entry it must open to; nil for one that must not
	// signed is set for an entry that carries a valid proof for this
	// slot: one about a key without it must not count.
	signed bool
}

func (r fuzzRecord) add(b *pkarrclient.Builder) {
	if r.a {
		b.Address(r.name, entryTTL, netip.MustParseAddr("192.0.2.7"))
		return
	}
	b.TXT(r.name, entryTTL, string(r.value))
}

// fuzzSignFitting signs records, dropping the last ones until the packet
// fits 1000 bytes, and returns the packet as a relay would hand it over,
// with the records it holds.
func fuzzSignFitting(t *testing.T, sk *pkarrclient.SecretKey, ts pkarrclient.Timestamp, recs []fuzzRecord) (*pkarrclient.SignedPacket, []fuzzRecord) {
	for {
		b := pkarrclient.NewBuilder().Timestamp(ts)
		for _, r := range recs {
			r.add(b)
		}
		p, err := b.Sign(sk)
		if errors.Is(err, pkarrclient.ErrPacketTooLarge) && len(recs) > 0 {
			recs = recs[:len(recs)-1]
			continue
		}
		if err != nil {
			t.Fatalf("signing %d records: %v", len(recs), err)
		}
		q, err := pkarrclient.ParseRelayPayload(sk.PublicKey(), p.RelayPayload())
		if err != nil {
			t.Fatalf("a signed packet does not parse: %v", err)
		}
		return q, recs
	}
}

// fuzzSlotRecords turns a layout and fuzzed values into records for slot i
// of g: genuine entries, freshly sealed, wherever the layout says, among
// garbage and other groups' and slots' entries. known holds the seeds'
// fixed seals, which a fuzzed value may copy.
//
// With sign set, genuine entries for slot i carry a proof: a valid one,
// or, where the layout byte's high part says so, one made for another
// slot, which must not count.
func fuzzSlotRecords(t *testing.T, g, other *Group, i int, layout, garbage []byte, genuine []entry, known map[string]entry, sign bool) []fuzzRecord {
	key := g.SlotKey(i).PublicKey()
	origin := key.String()
	apexNames := []string{"@", "", ".", origin, origin + ".", strings.ToUpper(origin)}
	values := fuzzChunks(garbage)
	var recs []fuzzRecord
	nextGenuine, nextValue := 0, 0
	seal := func(g *Group, slot pkarrclient.PublicKey) (*entry, []byte) {
		e := genuine[nextGenuine%len(genuine)]
		nextGenuine++
		s, err := g.seal(&e, slot)
		if err != nil {
			t.Fatal(err)
		}
		return &e, s
	}
	for _, l := range layout[:min(len(layout), 24)] {
		switch l % recKinds {
		case recGenuine:
			e := genuine[nextGenuine%len(genuine)]
			nextGenuine++
			valid := false
			if sign {
				// The name takes the high part's low digits, the proof
				// the next.
				valid = int(l/recKinds)/len(apexNames)%2 == 0
				signFor := key
				if !valid {
					signFor = g.SlotKey((i + 1) % fuzzSlots).PublicKey()
				}
				fuzzSign(t, g, &e, signFor)
			}
			s, err := g.seal(&e, key)
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, fuzzRecord{name: apexNames[int(l/recKinds)%len(apexNames)], value: s, apex: true, want: &e, signed: valid})
		case recGarbage:
			if nextValue >= len(values) {
				continue
			}
			v := values[nextValue]
			nextValue++
			r := fuzzRecord{name: apexNames[int(l/recKinds)%len(apexNames)], value: v, apex: true}
			if e, ok := known[string(key[:])+string(v)]; ok {
				r.want = &e // a copy of a genuine seal is genuine
			}
			recs = append(recs, r)
		case recOtherSlot:
			_, s := seal(g, g.SlotKey((i+1+int(l/recKinds)%(fuzzSlots-1))%fuzzSlots).PublicKey())
			recs = append(recs, fuzzRecord{name: "@", value: s, apex: true})
		case recOtherGroup:
			_, s := seal(other, key)
			recs = append(recs, fuzzRecord{name: "@", value: s, apex: true})
		case recNotApex:
			_, s := seal(g, key)
			recs = append(recs, fuzzRecord{name: []string{"_x", "sub", "_can_sync", "a.b"}[int(l/recKinds)%4], value: s})
		case recNotTXT:
			recs = append(recs, fuzzRecord{name: "@", a: true})
		}
	}
	return recs
}

// checkOpenSlot checks openSlot's answer for a packet of recs, and reports
// which of the entries must count: those about a key only if signed.
func checkOpenSlot(t *testing.T, g *Group, p *pkarrclient.SignedPacket, recs []fuzzRecord) ([]sealedEntry, []bool) {
	entries, bad := g.openSlot(p)
	var want []fuzzRecord
	wantBad := 0
	for _, r := range recs {
		switch {
		case !r.apex:
		case r.want != nil:
			want = append(want, r)
		default:
			wantBad++
		}
	}
	if bad != wantBad {
		t.Fatalf("%d records counted as not opening, want %d", bad, wantBad)
	}
	if len(entries) != len(want) {
		t.Fatalf("%d entries opened, want %d", len(entries), len(want))
	}
	for k, se := range entries {
		if !bytes.Equal(se.sealed, want[k].value) {
			t.Fatalf("entry %d: sealed bytes changed", k)
		}
		if !entriesEqual(se.entry, *want[k].want) {
			t.Fatalf("entry %d opened to %+v, want %+v", k, se.entry, *want[k].want)
		}
	}
	count := make([]bool, len(want))
	for k, r := range want {
		count[k] = r.signed || !isHexKeyID(r.want.rec.ID)
	}
	return entries, count
}

// FuzzOpenSlot: in a slot packet, every genuine entry at the apex comes
// back intact and in order, whatever its neighbours (garbage, entries of
// other slots and groups, records elsewhere); each apex TXT record that
// does not open is counted once; and the opened entries, carried forward
// byte for byte, make a packet whose size the estimate bounds.
func FuzzOpenSlot(f *testing.F) {
	g := fuzzGroup(f, fuzzPassphrase)
	other := fuzzGroup(f, fuzzOtherPassphrase)
	seals, known := fuzzSeals(f, g)
	genuine := fuzzEntries()[:4]
	f.Add([]byte{recGenuine, recGarbage, recGenuine}, chunk([]byte("hello")), uint8(0))
	f.Add([]byte{recGarbage, recGarbage, recGarbage}, chunk(seals[0], seals[1][:50], seals[2][1:]), uint8(0))
	f.Add([]byte{recGarbage, recGenuine + 2*recKinds, recGarbage + recKinds}, chunk(seals[len(fuzzEntries())], []byte{}), uint8(1))
	f.Add([]byte{recOtherSlot, recOtherGroup, recNotApex, recNotTXT, recGenuine + 5*recKinds}, []byte(nil), uint8(2))
	f.Add([]byte{recGarbage, recGenuine, recGarbage, recGenuine, recGarbage, recGenuine}, chunk(make([]byte, 300), bytes.Repeat([]byte{'\\'}, 41), []byte("\"")), uint8(3))
	f.Add(bytes.Repeat([]byte{recGenuine}, 10), []byte(nil), uint8(0))
	f.Fuzz(func(t *testing.T, layout, garbage []byte, slot uint8) {
		i := int(slot % fuzzSlots)
		sk := g.SlotKey(i)
		recs := fuzzSlotRecords(t, g, other, i, layout, garbage, genuine, known, false)
		p, recs := fuzzSignFitting(t, sk, 1_750_000_000_000_000, recs)
		entries, _ := checkOpenSlot(t, g, p, recs)
		if len(entries) == 0 {
			return
		}
		// Carried forward: the entries alone always fit again, open the
		// same, and the size estimate is an upper bound, tight to the
		// first owner name's 2 bytes.
		q, err := buildSlot(sk, p.Timestamp()+1, entries)
		if err != nil {
			t.Fatalf("the %d entries of a valid packet do not fit one: %v", len(entries), err)
		}
		again, bad := g.openSlot(q)
		if bad != 0 || len(again) != len(entries) {
			t.Fatalf("rebuilt slot: %d entries, %d bad; want %d, 0", len(again), bad, len(entries))
		}
		est := packetOverhead
		for _, e := range entries {
			est += e.wireSize()
		}
		if actual := len(q.DNS()); est < actual || est > actual+2 {
			t.Fatalf("size estimate %d for a %d-byte DNS message of %d entries", est, actual, len(entries))
		}
	})
}

// fuzzBackend answers resolves from a map, as a relay holding those
// packets would; a key it does not hold is not found, and err, when set,
// is every answer.
type fuzzBackend struct {
	mu      sync.Mutex
	packets map[pkarrclient.PublicKey]*pkarrclient.SignedPacket
	err     error
}

func (b *fuzzBackend) Name() string { return "fuzz" }

func (b *fuzzBackend) Publish(context.Context, *pkarrclient.SignedPacket) (pkarrclient.PublishReceipt, error) {
	return pkarrclient.PublishReceipt{}, errors.New("fuzz backend is read-only")
}

func (b *fuzzBackend) Resolve(_ context.Context, q pkarrclient.Query) (*pkarrclient.SignedPacket, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return nil, b.err
	}
	if p, ok := b.packets[q.Key]; ok {
		return p, nil
	}
	return nil, fmt.Errorf("fuzz backend: %w", pkarrclient.ErrNotFound)
}

func (b *fuzzBackend) set(err error, packets ...*pkarrclient.SignedPacket) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.err = err
	b.packets = make(map[pkarrclient.PublicKey]*pkarrclient.SignedPacket)
	for _, p := range packets {
		b.packets[p.PublicKey()] = p
	}
}

// fuzzClient returns a client over a fuzzBackend, without a cache, so each
// read sees what the backend holds now.
func fuzzClient(tb testing.TB) (*pkarrclient.Client, *fuzzBackend) {
	b := &fuzzBackend{}
	c, err := pkarrclient.NewClient([]pkarrclient.Backend{b}, pkarrclient.WithCacheSize(0))
	if err != nil {
		tb.Fatal(err)
	}
	return c, b
}

// FuzzReadTable: ReadTable classifies a slot holding any mix of entries
// (of any age, about keys with and without valid proofs), garbage and
// foreign records as its documentation says, counts the foreign and the
// unproven ones, reports every entry that counts, and reads the next level
// exactly when the slot is locked or full.
func FuzzReadTable(f *testing.F) {
	g := fuzzGroup(f, fuzzPassphrase)
	other := fuzzGroup(f, fuzzOtherPassphrase)
	seals, known := fuzzSeals(f, g)
	const staleAfter, futureBound = 150 * time.Second, 2 * time.Minute
	f.Add([]byte{recGenuine, recGarbage}, chunk([]byte("junk")), []byte{0}, int64(0), false)
	f.Add([]byte{recGenuine, recGenuine}, []byte(nil), []byte{0x80, 0x7f}, int64(-time.Hour/time.Microsecond), false)
	f.Add([]byte{recGenuine}, []byte(nil), []byte{31}, int64(0), false)   // 155 s old: stale
	f.Add([]byte{recGenuine}, []byte(nil), []byte{0xe2}, int64(0), false) // 150 s in the future
	f.Add([]byte{recGenuine}, []byte(nil), []byte{0}, int64(futureBound/time.Microsecond+1), false)
	f.Add([]byte{recGarbage, recOtherGroup, recOtherSlot, recNotApex}, chunk(seals[0]), []byte{0}, int64(1), false)
	f.Add(bytes.Repeat([]byte{recGenuine}, 8), []byte(nil), []byte{0, 0, 0, 0, 0, 0, 0, 0}, int64(0), false)
	f.Add([]byte{recGenuine}, []byte(nil), []byte(nil), int64(0), true)
	f.Add([]byte(nil), []byte(nil), []byte(nil), int64(0), false)
	f.Add([]byte{recGenuine}, []byte(nil), []byte{0}, int64(math.MinInt64), false)             // stamped 2^63 µs
	f.Add([]byte{recGenuine}, []byte(nil), []byte{0}, int64(math.MinInt64+123_456_789), false) // and beyond
	// Genuine entries with proofs for another slot, beside valid ones.
	f.Add([]byte{recGenuine, recGenuine + 6*recKinds, recGenuine + 7*recKinds, recGenuine + 6*recKinds}, []byte(nil), []byte{0, 0, 0, 0}, int64(0), false)
	client, backend := fuzzClient(f)
	f.Fuzz(func(t *testing.T, layout, garbage, ages []byte, tsOffset int64, unreachable bool) {
		// Genuine entries dated around now: each ages byte, as an int8,
		// is a signed offset in units of 5 s.
		var genuine []entry
		for k, e := range fuzzEntries()[:4] {
			off := 0
			if k < len(ages) {
				off = int(int8(ages[k]))
			}
			e.time = fuzzNow.Add(time.Duration(off) * -5 * time.Second)
			genuine = append(genuine, e)
		}
		// An offset below -2^62 stands for a timestamp at or beyond 2^63
		// µs, where an int64 conversion wraps: its bits, as a uint64.
		ts := pkarrclient.Timestamp(max(1, fuzzNow.UnixMicro()+tsOffset%(1<<50)))
		if tsOffset < -(1 << 62) {
			ts = pkarrclient.Timestamp(uint64(tsOffset))
		}
		sk := g.SlotKey(0)
		recs := fuzzSlotRecords(t, g, other, 0, layout, garbage, genuine, known, true)
		p, recs := fuzzSignFitting(t, sk, ts, recs)
		if unreachable {
			backend.set(errors.New("fuzz: relay unreachable"))
		} else {
			backend.set(nil, p)
		}
		// TableMinSlots(1): the walk's depth rule alone, below the join
		// levels a table reads whole by default.
		infos, err := ReadTable(context.Background(), client, g, TableMinSlots(1),
			TableClock(clockwork.NewFakeClockAt(fuzzNow)), TableStaleAfter(staleAfter), TableFutureMargin(futureBound))
		if err != nil {
			t.Fatal(err)
		}
		if len(infos) == 0 {
			t.Fatal("no slot read")
		}
		si := infos[0]
		if si.Index != 0 || si.Key != sk.PublicKey() {
			t.Fatalf("slot 0 reported as %d, %s", si.Index, si.Key)
		}
		for _, o := range infos[1:] {
			if o.State != SlotEmpty || o.Foreign != 0 || len(o.Members) != 0 || o.Err != nil {
				t.Fatalf("slot %d holds nothing but reads as %+v", o.Index, o)
			}
		}
		if unreachable {
			if si.State != SlotUnreadable || si.Err == nil || len(infos) != 1 {
				t.Fatalf("unreachable slot reads %s (%v), %d slots", si.State, si.Err, len(infos))
			}
			return
		}
		if !si.Packet.Equal(ts.Time()) {
			t.Fatalf("packet time %v, want %v", si.Packet, ts.Time())
		}
		if uint64(ts) > uint64(fuzzNow.Add(futureBound).UnixMicro()) {
			if si.State != SlotLocked || len(si.Members) != 0 || si.Foreign != 0 || len(infos) != 3 {
				t.Fatalf("a packet %v ahead reads %s, %d members, %d foreign, %d slots",
					ts.Time().Sub(fuzzNow), si.State, len(si.Members), si.Foreign, len(infos))
			}
			return
		}
		opened, count := checkOpenSlot(t, g, p, recs)
		if si.Foreign != func() int { _, bad := g.openSlot(p); return bad }() {
			t.Fatalf("%d foreign records, openSlot counts otherwise", si.Foreign)
		}
		// Entries about a key without a valid proof are counted apart
		// and are not members.
		var entries []sealedEntry
		for k, e := range opened {
			if count[k] {
				entries = append(entries, e)
			}
		}
		if si.Unproven != len(opened)-len(entries) {
			t.Fatalf("%d entries counted unproven; %d of %d open entries have no valid proof", si.Unproven, len(opened)-len(entries), len(opened))
		}
		if len(si.Members) != len(entries) {
			t.Fatalf("%d members, %d entries open and count", len(si.Members), len(entries))
		}
		live, size, largest := false, packetOverhead, typicalEntry
		for k, m := range si.Members {
			e := entries[k]
			if !m.Record.Equal(e.rec) || !m.Time.Equal(e.time) || !m.Since.Equal(e.since) || m.Left != (e.kind == kindTombstone) {
				t.Fatalf("member %d is %+v, the entry %+v", k, m, e.entry)
			}
			fresh := !m.Time.Before(fuzzNow.Add(-staleAfter)) && !m.Time.After(fuzzNow.Add(futureBound))
			if m.Stale == fresh {
				t.Fatalf("member %d dated %v from now: Stale=%v", k, m.Time.Sub(fuzzNow), m.Stale)
			}
			if fresh {
				size += e.wireSize()
				largest = max(largest, e.wireSize())
				live = live || !m.Left
			}
		}
		want := SlotEmpty
		switch {
		case live:
			want = SlotLive
		case len(entries) > 0:
			want = SlotStale
		}
		if si.State != want {
			t.Fatalf("slot reads %s, want %s", si.State, want)
		}
		// The walk goes deeper when a newcomer as large as the largest
		// fresh entry seen (at least a typical one) finds no room.
		full := size+largest > pkarrclient.MaxDNSSize
		if wantSlots := map[bool]int{false: 1, true: 3}[full]; len(infos) != wantSlots {
			t.Fatalf("read %d slots; the slot is full=%v (%d bytes used, largest entry %d)", len(infos), full, size, largest)
		}
	})
}

// fuzzCanSyncIDs are IDs a can-sync slot may hold: keys, and 32 bytes that
// are not a curve point.
func fuzzCanSyncIDs(tb testing.TB) (valid []string, notKey string) {
	for _, seed := range []byte{1, 2, 3} {
		sk, err := pkarrclient.SecretKeyFromSeed(bytes.Repeat([]byte{seed}, 32))
		if err != nil {
			tb.Fatal(err)
		}
		pk := sk.PublicKey()
		valid = append(valid, hex.EncodeToString(pk[:]))
	}
	for i := 0; ; i++ {
		b := bytes.Repeat([]byte{byte(i)}, 32)
		b[0] = 0x02
		if _, err := pkarrclient.PublicKeyFromBytes(b); err != nil {
			return valid, hex.EncodeToString(b)
		}
	}
}

// FuzzCanSyncID: an announced can-sync ID is accepted exactly when it is
// 64 lowercase hex digits of an Ed25519 point; an accepted ID, written as
// can-sync writes it, reads back as itself, and whatever a slot read
// returns is an ID that could be announced.
func FuzzCanSyncID(f *testing.F) {
	valid, notKey := fuzzCanSyncIDs(f)
	for _, s := range []string{valid[0], strings.ToUpper(valid[1]), " " + valid[2], valid[0][:62], valid[0] + "00", notKey, "",
		"zz" + valid[0][2:], "0x" + valid[0][2:], strings.Repeat("0", 64), "01" + strings.Repeat("0", 62), "\u0130" + valid[0][2:]} {
		f.Add(s)
	}
	sk := CanSyncSlotKey([]byte("fuzz can-sync id"), 0)
	f.Fuzz(func(t *testing.T, s string) {
		b, err := checkCanSyncRecord(discovery.Record{ID: s})
		var point bool
		if raw, herr := hex.DecodeString(s); herr == nil && len(raw) == canSyncIDSize && hex.EncodeToString(raw) == s {
			_, perr := pkarrclient.PublicKeyFromBytes(raw)
			point = perr == nil
		}
		switch {
		case err == nil && !point:
			t.Fatalf("accepted %q, not the lowercase hex of a key", s)
		case err != nil && point:
			t.Fatalf("refused %q, the lowercase hex of a key: %v", s, err)
		case err != nil && !errors.Is(err, discovery.ErrInvalidRecord):
			t.Fatalf("error does not wrap ErrInvalidRecord: %v", err)
		case err == nil && hex.EncodeToString(b) != s:
			t.Fatalf("accepted %q as bytes %x", s, b)
		}
		if err == nil {
			if _, err := checkCanSyncRecord(discovery.Record{ID: s, Addrs: []string{"a"}}); err == nil {
				t.Fatal("accepted Addrs, which can-sync's wire cannot carry")
			}
			if _, err := checkCanSyncRecord(discovery.Record{ID: s, Meta: []byte{1}}); err == nil {
				t.Fatal("accepted Meta, which can-sync's wire cannot carry")
			}
		}
		// The value as a slot's record, written as can-sync writes it.
		p, serr := pkarrclient.NewBuilder().Timestamp(1).TXT(CanSyncRecordName, canSyncTTL, s).Sign(sk)
		if serr != nil {
			if err == nil {
				t.Fatalf("an accepted ID does not sign: %v", serr)
			}
			return // too large for a packet
		}
		p, perr := pkarrclient.ParseSignedPacket(p.Bytes())
		if perr != nil {
			t.Fatal(perr)
		}
		id, ok := canSyncOccupant(p)
		if err == nil && (!ok || id != s) {
			t.Fatalf("announced %q, read back %q, %v", s, id, ok)
		}
		if ok {
			if _, err := checkCanSyncRecord(discovery.Record{ID: id}); err != nil {
				t.Fatalf("read %q from %q, which cannot be announced: %v", id, s, err)
			}
			if !strings.EqualFold(strings.TrimSpace(s), id) {
				t.Fatalf("read %q from %q", id, s)
			}
		}
	})
}

// canSyncRecord is one record of a fuzzed can-sync slot.
type canSyncRecord struct {
	name  string
	value string
	a     bool
}

// FuzzCanSyncSlot: a can-sync slot holding any records reads as can-sync
// reads it (checked against a model that pairs each parsed record with the
// value written, instead of re-reading values by name): the first TXT
// record named exactly _can_sync.<key> whose trimmed value is 32 bytes of
// hex decides, and only if those bytes are a key. ReadCanSyncSlot agrees,
// and reports an empty slot as ErrNotFound with the packet's timestamp.
func FuzzCanSyncSlot(f *testing.F) {
	valid, notKey := fuzzCanSyncIDs(f)
	f.Add([]byte{0}, chunk([]byte(valid[0])), uint64(1))
	f.Add([]byte{0, 0}, chunk([]byte("hello"), []byte(valid[1])), uint64(2))
	f.Add([]byte{0, 0}, chunk([]byte(notKey), []byte(valid[1])), uint64(3))
	f.Add([]byte{0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0}, chunk([]byte(valid[0]), []byte(valid[0]), []byte(valid[0]), []byte(valid[0]), []byte(valid[0]), []byte(valid[0]), []byte(valid[1])), uint64(4))
	f.Add([]byte{0, 0, 0}, chunk([]byte(" \t"+strings.ToUpper(valid[2])+"\n"), []byte(valid[0][:63]), []byte(valid[0]+"00")), uint64(5))
	f.Add([]byte{0x70, 0}, chunk([]byte(valid[0])), uint64(6))
	f.Add([]byte{0x80}, []byte(nil), uint64(0))
	f.Add([]byte{0}, chunk([]byte(strings.Repeat("ab", 200))), uint64(1<<63))
	client, backend := fuzzClient(f)
	sk := CanSyncSlotKey([]byte("fuzz can-sync slot"), 0)
	key := sk.PublicKey()
	origin := key.String()
	want := CanSyncRecordName + "." + origin
	// Names by the layout byte's high nibble; only the first two and
	// "_can_sync.<key>." are the record can-sync reads.
	names := []string{CanSyncRecordName, want, "_CAN_SYNC", "_Can_Sync", "x." + CanSyncRecordName, "@", "_other",
		CanSyncRecordName + "." + strings.ToUpper(origin), want + ".", CanSyncRecordName + ".@"}
	f.Fuzz(func(t *testing.T, layout, values []byte, ts uint64) {
		vs := fuzzChunks(values)
		var recs []canSyncRecord
		for k, l := range layout[:min(len(layout), 16)] {
			r := canSyncRecord{name: names[int(l>>4)%len(names)], a: l&1 == 1}
			if k < len(vs) {
				r.value = string(vs[k])
			}
			recs = append(recs, r)
		}
		var p *pkarrclient.SignedPacket
		for {
			b := pkarrclient.NewBuilder().Timestamp(pkarrclient.Timestamp(max(ts, 1)))
			for _, r := range recs {
				if r.a {
					b.Address(r.name, canSyncTTL, netip.MustParseAddr("192.0.2.9"))
				} else {
					b.TXT(r.name, canSyncTTL, r.value)
				}
			}
			var err error
			p, err = b.Sign(sk)
			if errors.Is(err, pkarrclient.ErrPacketTooLarge) && len(recs) > 0 {
				recs = recs[:len(recs)-1]
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			if p, err = pkarrclient.ParseRelayPayload(key, p.RelayPayload()); err != nil {
				t.Fatal(err)
			}
			break
		}
		// The model.
		wantID, wantOK := "", false
		for k, rr := range p.Records() {
			if recs[k].a || strings.TrimSuffix(rr.Header().Name, ".") != want {
				continue
			}
			b, err := hex.DecodeString(strings.TrimSpace(recs[k].value))
			if err != nil || len(b) != canSyncIDSize {
				continue
			}
			if _, err := pkarrclient.PublicKeyFromBytes(b); err == nil {
				wantID, wantOK = hex.EncodeToString(b), true
			}
			break
		}
		id, ok := canSyncOccupant(p)
		if ok != wantOK || id != wantID {
			t.Fatalf("slot reads %q, %v; can-sync reads %q, %v", id, ok, wantID, wantOK)
		}
		backend.set(nil, p)
		rid, rts, err := ReadCanSyncSlot(context.Background(), client, key)
		if rts != p.Timestamp() {
			t.Fatalf("timestamp %v, the packet's is %v", rts, p.Timestamp())
		}
		switch {
		case ok && (err != nil || rid != id):
			t.Fatalf("ReadCanSyncSlot: %q, %v; want %q", rid, err, id)
		case !ok && (!errors.Is(err, pkarrclient.ErrNotFound) || rid != ""):
			t.Fatalf("ReadCanSyncSlot of an empty slot: %q, %v; want ErrNotFound", rid, err)
		}
	})
}

// TestFuzzHelpers checks the helpers the targets build on.
func TestFuzzHelpers(t *testing.T) {
	if got := fuzzChunks(chunk([]byte("a"), nil, bytes.Repeat([]byte{1}, 300))); len(got) != 3 || len(got[2]) != 300 {
		t.Fatalf("chunk/fuzzChunks do not round-trip: %d values", len(got))
	}
	e := fuzzMaxEntry()
	if b, err := e.marshal(); err != nil || len(b) != maxEntryPlain {
		t.Fatalf("fuzzMaxEntry encodes to %d bytes (%v), want %d", len(b), err, maxEntryPlain)
	}
	e.rec.Meta = append(e.rec.Meta, 'x')
	if _, err := e.marshal(); !errors.Is(err, ErrRecordTooLarge) {
		t.Fatalf("one byte past the limit: %v", err)
	}
	valid, notKey := fuzzCanSyncIDs(t)
	if _, err := checkCanSyncRecord(discovery.Record{ID: valid[0]}); err != nil {
		t.Fatal(err)
	}
	if _, err := checkCanSyncRecord(discovery.Record{ID: notKey}); err == nil {
		t.Fatal("notKey is a key")
	}
}
