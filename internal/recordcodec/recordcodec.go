// Package recordcodec is the one encoding of a discovery.Record's fields
// that mdnsdiscovery's LAN records and slotdiscovery's slot entries share.
//
// Each format has a fixed header of its own (version, kind, times; the
// formats differ there) followed by the same fields:
//
//	uvarint len + id | uvarint count, then uvarint len + addr each |
//	uvarint len + meta | uvarint len + proof
//
// The plaintext up to the proof field is what the proof signs. Every
// varint is minimally encoded and nothing may trail the proof, so a
// plaintext has exactly one encoding: Decode accepts only what
// AppendBody and AppendProof write.
//
// The package knows nothing of sealing, size limits or what an ID means:
// each format checks its own bound on the plaintext before decoding and
// may store the ID in a form of its own (slotdiscovery packs hex IDs).
package recordcodec

import (
	"encoding/binary"
	"fmt"
	"slices"
	"time"
)

// MaxMicros bounds a time in microseconds since the Unix epoch, about
// 146,000 years, so that time.UnixMicro and comparisons of decoded times
// behave. Both formats store times as big-endian uint64 microseconds and
// refuse larger ones.
const MaxMicros = 1 << 62

// Fields are a record's fields as they follow a format's header.
type Fields struct {
	// ID is the ID as stored, never empty. It aliases the decoded
	// plaintext: the caller converts it (to a string) before the
	// plaintext's buffer is reused.
	ID []byte
	// Addrs are the addresses, in order; nil when there are none.
	Addrs []string
	// Meta is the metadata, a copy; nil when empty.
	Meta []byte
	// Proof is the proof, a copy; nil when empty.
	Proof []byte
	// Signed is a copy of the plaintext up to the proof field, header
	// included: what the proof signs.
	Signed []byte
}

// MalformedError says why Decode refused a plaintext. Each format wraps
// it in its own rejection error, so errors.Is with that still works.
type MalformedError struct {
	// Reason is a short phrase for logs, such as "truncated".
	Reason string
}

// Error returns the reason alone: the wrapping format's error says what
// was malformed.
func (e *MalformedError) Error() string { return e.Reason }

func malformed(format string, args ...any) error {
	return &MalformedError{Reason: fmt.Sprintf(format, args...)}
}

// UvarintLen is the length of n as a minimal uvarint.
func UvarintLen(n uint64) int {
	l := 1
	for n >= 0x80 {
		n >>= 7
		l++
	}
	return l
}

// BodySize is how many bytes AppendBody adds for an ID of idLen bytes,
// these addresses and metaLen bytes of metadata. A format can check its
// size limit with it before encoding anything.
func BodySize(idLen int, addrs []string, metaLen int) int {
	n := UvarintLen(uint64(idLen)) + idLen + UvarintLen(uint64(len(addrs))) + UvarintLen(uint64(metaLen)) + metaLen
	for _, a := range addrs {
		n += UvarintLen(uint64(len(a))) + len(a)
	}
	return n
}

// ProofSize is how many bytes AppendProof adds for a proof of n bytes.
func ProofSize(n int) int { return UvarintLen(uint64(n)) + n }

// AppendBody appends the fields before the proof: the ID as stored, the
// addresses and the metadata.
func AppendBody(out, id []byte, addrs []string, meta []byte) []byte {
	out = appendField(out, id)
	out = binary.AppendUvarint(out, uint64(len(addrs)))
	for _, a := range addrs {
		out = binary.AppendUvarint(out, uint64(len(a)))
		out = append(out, a...)
	}
	return appendField(out, meta)
}

// AppendProof appends the proof field, the last of a plaintext.
func AppendProof(out, proof []byte) []byte { return appendField(out, proof) }

func appendField(out, b []byte) []byte {
	out = binary.AppendUvarint(out, uint64(len(b)))
	return append(out, b...)
}

// DecodeTime reads a stored time, refusing one beyond MaxMicros.
func DecodeTime(us uint64) (time.Time, error) {
	if us > MaxMicros {
		return time.Time{}, malformed("time out of range")
	}
	return time.UnixMicro(int64(us)), nil
}

// Decode reads the fields that follow a header of header bytes in plain.
// A tombstone
// (bare) carries no addresses or metadata. Every length is checked
// against what remains before it is used, so no input reads out of
// bounds or makes Decode allocate more than the input's size. Errors are
// *MalformedError.
func Decode(plain []byte, header int, bare bool) (Fields, error) {
	var f Fields
	if header < 0 {
		return f, malformed("a header of %d bytes", header)
	}
	if header > len(plain) {
		return f, malformed("%d bytes, shorter than the %d-byte header", len(plain), header)
	}
	rest := plain[header:]
	uvarint := func() (uint64, error) {
		n, k := binary.Uvarint(rest)
		if k <= 0 || k != UvarintLen(n) {
			return 0, malformed("bad varint")
		}
		rest = rest[k:]
		return n, nil
	}
	field := func() ([]byte, error) {
		n, err := uvarint()
		if err != nil {
			return nil, err
		}
		if n > uint64(len(rest)) {
			return nil, malformed("truncated")
		}
		v := rest[:n]
		rest = rest[n:]
		return v, nil
	}
	id, err := field()
	if err != nil {
		return f, err
	}
	if len(id) == 0 {
		return f, malformed("empty ID")
	}
	f.ID = id
	count, err := uvarint()
	if err != nil {
		return f, err
	}
	if count > uint64(len(rest)) { // each address takes at least its length byte
		return f, malformed("%d addresses in %d bytes", count, len(rest))
	}
	for range count {
		a, err := field()
		if err != nil {
			return f, err
		}
		f.Addrs = append(f.Addrs, string(a))
	}
	meta, err := field()
	if err != nil {
		return f, err
	}
	if len(meta) > 0 {
		f.Meta = slices.Clone(meta)
	}
	f.Signed = slices.Clone(plain[:len(plain)-len(rest)])
	proof, err := field()
	if err != nil {
		return f, err
	}
	if len(proof) > 0 {
		f.Proof = slices.Clone(proof)
	}
	if len(rest) != 0 {
		return f, malformed("%d trailing bytes", len(rest))
	}
	if bare && (len(f.Addrs) > 0 || len(f.Meta) > 0) {
		return f, malformed("tombstone with a record")
	}
	return f, nil
}
