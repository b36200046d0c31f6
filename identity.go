package discovery

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Proof of identity.
//
// Every member of a group holds the same passphrase, so every member can
// write anything a mechanism carries, under any ID. Without more, one
// member can hide another: it writes a tombstone under B's ID, or a live
// record with its own address, stamped a little ahead of the others'
// clocks and rewritten before it ages out, and the others see B gone, or
// dial the attacker when they mean B. Encryption keeps strangers out; it
// cannot tell members apart.
//
// Where an ID is a public key, it can: the record about it is signed with
// that key. The rule the mechanisms apply is
//
//   - an [IDScheme] says which IDs are keys (Owns) and checks a signature
//     by the key an ID names (Verify); a mechanism is configured with a
//     list of schemes, and the first scheme of the list that owns an ID
//     is the one that judges it;
//   - a record whose ID a scheme owns is announced only with a proof made
//     by a [Signer] that holds the key; Announce fails at once, with an
//     error wrapping [ErrNoKey], when none does;
//   - a reader ignores every record whose ID a scheme owns unless its
//     proof verifies, whatever else it says (a tombstone included).
//
// The signed message is the mechanism's: its own domain-separation string,
// a value bound to the group (so a record cannot be replayed into another
// group) and the record's content, its time included. Readers keep the
// newest time per ID, so a replayed old record of B's never rolls B back.
//
// What remains possible. For an ID that no scheme owns (a name, a number,
// any string that is not a key) nothing changes: any member can still
// write under it, hide it and redirect it; such IDs are labels, not
// identities, and applications that need more must use keys as IDs. For an
// ID that is a key, a member can no longer forge a record, but can still
// drop the owner's record from a shared medium (a slot packet it
// rewrites), which the owner repairs at its next write, and can replay
// the owner's own latest record, unchanged, for as long as it is fresh.
// IDs are compared as strings: a scheme owns every spelling it would
// accept as the same key (both cases of hex, every text form of a libp2p
// peer ID), so another spelling of B's key cannot be used unsigned, but
// an application that maps IDs to keys must use one canonical form.

// IDScheme recognises IDs that are public keys, and checks proofs made
// with the keys they name.
type IDScheme interface {
	// Owns reports whether id names a public key under this scheme. It
	// must be cheap and safe on any string: readers call it on every
	// record they receive.
	Owns(id string) bool
	// Verify checks that proof is a signature of msg by the key id names.
	// It fails with an error wrapping ErrBadProof when it is not.
	Verify(id string, msg, proof []byte) error
}

// Signer makes proofs for the IDs whose keys it holds.
type Signer interface {
	// Sign returns a proof of msg for id, which the scheme owning id
	// verifies. It fails with an error wrapping ErrNoKey when it holds no
	// key for id.
	Sign(id string, msg []byte) (proof []byte, err error)
}

// Errors of proofs, for errors.Is.
var (
	// ErrNoKey: the ID is a public key and no key to sign for it is at
	// hand, so a record under it cannot be announced.
	ErrNoKey = errors.New("discovery: no private key for this ID")
	// ErrBadProof: a record's proof does not verify under its ID's key.
	ErrBadProof = errors.New("discovery: proof does not verify")
)

// SchemeFor returns the first of schemes that owns id, or nil when none
// does.
func SchemeFor(schemes []IDScheme, id string) IDScheme {
	for _, s := range schemes {
		if s != nil && s.Owns(id) {
			return s
		}
	}
	return nil
}

// Prove returns the proof a record under id needs for msg: nil when no
// scheme owns id, a signature by signer otherwise. It fails with an error
// wrapping ErrNoKey when a scheme owns id and signer is nil or holds no
// key for it.
func Prove(schemes []IDScheme, signer Signer, id string, msg []byte) ([]byte, error) {
	if SchemeFor(schemes, id) == nil {
		return nil, nil
	}
	if signer == nil {
		return nil, fmt.Errorf("%w: %q is a public key, and no signer is configured", ErrNoKey, id)
	}
	proof, err := signer.Sign(id, msg)
	if err != nil {
		return nil, err
	}
	if len(proof) == 0 {
		return nil, fmt.Errorf("%w: the signer made an empty proof for %q", ErrBadProof, id)
	}
	return proof, nil
}

// CheckProof applies the rule to one received record: nil when no scheme
// owns id (any proof is then ignored), otherwise the verdict of the first
// scheme that owns it. An empty proof never verifies.
func CheckProof(schemes []IDScheme, id string, msg, proof []byte) error {
	s := SchemeFor(schemes, id)
	if s == nil {
		return nil
	}
	if len(proof) == 0 {
		return fmt.Errorf("%w: no proof", ErrBadProof)
	}
	return s.Verify(id, msg, proof)
}

// Ed25519Hex is the IDScheme of IDs that are Ed25519 public keys written
// as 64 hex digits, as iroh writes its endpoint IDs. It owns every
// string of exactly 64 hex digits, in either case, whether or not the 32
// bytes are a valid point: a string that looks like a key is treated as
// one, so it cannot be used unsigned, and one that is not a point can
// never be announced (no one can sign for it). Use another form for IDs
// that are not keys. The proof is the 64-byte Ed25519 signature
// (RFC 8032, as crypto/ed25519 makes it) of the message.
type Ed25519Hex struct{}

// Owns implements IDScheme.
func (Ed25519Hex) Owns(id string) bool {
	if len(id) != 2*ed25519.PublicKeySize {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// Verify implements IDScheme.
func (s Ed25519Hex) Verify(id string, msg, proof []byte) error {
	if !s.Owns(id) {
		return fmt.Errorf("%w: %q is not an Ed25519 key in hex", ErrBadProof, id)
	}
	pub, _ := hex.DecodeString(id) // Owns checked the digits
	if len(proof) != ed25519.SignatureSize {
		return fmt.Errorf("%w: a %d-byte proof, want an Ed25519 signature of %d", ErrBadProof, len(proof), ed25519.SignatureSize)
	}
	// Verify returns false for a key that is not a point, too.
	if !ed25519.Verify(pub, msg, proof) {
		return fmt.Errorf("%w: not a signature by %s", ErrBadProof, id)
	}
	return nil
}

// Ed25519Signer returns a Signer holding one Ed25519 key (a copy of
// priv): it signs for the key's ID under Ed25519Hex, in either case, and
// fails with ErrNoKey for every other ID. A priv of the wrong length makes
// every Sign fail.
func Ed25519Signer(priv ed25519.PrivateKey) Signer {
	s := ed25519Signer{priv: ed25519.PrivateKey(append([]byte(nil), priv...))}
	if len(priv) == ed25519.PrivateKeySize {
		s.id = hex.EncodeToString(priv.Public().(ed25519.PublicKey))
	}
	return s
}

type ed25519Signer struct {
	priv ed25519.PrivateKey
	id   string // lowercase hex of the public key
}

func (s ed25519Signer) Sign(id string, msg []byte) ([]byte, error) {
	if len(s.priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("discovery: an Ed25519 private key has %d bytes, not %d", ed25519.PrivateKeySize, len(s.priv))
	}
	if !strings.EqualFold(id, s.id) {
		return nil, fmt.Errorf("%w: this signer holds the key of %s only", ErrNoKey, s.id)
	}
	return ed25519.Sign(s.priv, msg), nil
}

// String names the key, never its private half.
func (s ed25519Signer) String() string { return "Ed25519Signer(" + s.id + ")" }

// Format prints String for every verb, %#v and %x included, so no format
// shows the private key.
func (s ed25519Signer) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }
