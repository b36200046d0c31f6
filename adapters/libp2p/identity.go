package libp2padapter

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/phrasemeet/discovery"
)

// PeerIDScheme is the discovery.IDScheme of libp2p peer IDs: a record
// whose ID is a peer ID is proven by a signature of that peer's key, so a
// member of the group cannot announce another host's peer ID with its own
// addresses, or a tombstone for it. passphrase.SlotOpener applies it by
// default.
//
// It owns every string that decodes as a peer ID, in any of its text
// forms (base58, or a CID in any multibase), so no other spelling of a
// host's ID can be used unsigned.
//
// Proof layout: uvarint key length | key | signature. Where the ID
// inlines its public key (Ed25519 and secp256k1 keys, go-libp2p's
// default being Ed25519), the key length is 0 and the key is taken from
// the ID: 65 bytes in all for Ed25519. Where the ID is a hash of the key
// (RSA, ECDSA), the proof carries the key, marshalled as
// crypto.MarshalPublicKey does, and it must hash to the ID. An RSA proof
// (a 2048-bit key and its signature, about 560 bytes) is larger than a
// slot entry can hold: RSA hosts cannot announce in the slot rendezvous.
type PeerIDScheme struct{}

var _ discovery.IDScheme = PeerIDScheme{}

// Owns implements discovery.IDScheme.
func (PeerIDScheme) Owns(id string) bool {
	pid, err := peer.Decode(id)
	return err == nil && pid != ""
}

// Verify implements discovery.IDScheme.
func (PeerIDScheme) Verify(id string, msg, proof []byte) error {
	pid, err := peer.Decode(id)
	if err != nil || pid == "" {
		return fmt.Errorf("%w: %q is not a peer ID", discovery.ErrBadProof, id)
	}
	n, k := binary.Uvarint(proof)
	if k <= 0 || n > uint64(len(proof)-k) {
		return fmt.Errorf("%w: a malformed peer ID proof", discovery.ErrBadProof)
	}
	keyBytes, sig := proof[k:k+int(n)], proof[k+int(n):]
	inlined, err := pid.ExtractPublicKey()
	var pub crypto.PubKey
	switch {
	case err == nil && len(keyBytes) == 0:
		pub = inlined
	case err == nil:
		// One form per proof: the ID already says which key it is.
		return fmt.Errorf("%w: the proof carries a key that %s already inlines", discovery.ErrBadProof, id)
	case !errors.Is(err, peer.ErrNoPublicKey):
		return fmt.Errorf("%w: %s inlines no usable key: %v", discovery.ErrBadProof, id, err)
	case len(keyBytes) == 0:
		return fmt.Errorf("%w: %s is a hash of its key, and the proof does not carry the key", discovery.ErrBadProof, id)
	default:
		if pub, err = crypto.UnmarshalPublicKey(keyBytes); err != nil {
			return fmt.Errorf("%w: the proof's key: %v", discovery.ErrBadProof, err)
		}
		if !pid.MatchesPublicKey(pub) {
			return fmt.Errorf("%w: the proof's key is not %s's", discovery.ErrBadProof, id)
		}
	}
	ok, err := pub.Verify(msg, sig)
	if err != nil || !ok {
		return fmt.Errorf("%w: not a signature by %s", discovery.ErrBadProof, id)
	}
	return nil
}

// KeySigner returns a discovery.Signer for the peer ID of priv, making
// the proofs PeerIDScheme verifies. It fails with discovery.ErrNoKey for
// every other ID.
func KeySigner(priv crypto.PrivKey) discovery.Signer {
	if priv == nil {
		return keySigner{err: fmt.Errorf("%w: no private key", discovery.ErrNoKey)}
	}
	pid, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return keySigner{err: fmt.Errorf("libp2padapter: the signer's key: %w", err)}
	}
	s := keySigner{priv: priv, id: pid, prefix: []byte{0}}
	if _, err := pid.ExtractPublicKey(); err != nil {
		// The ID is a hash of the key: the proof carries the key.
		kb, err := crypto.MarshalPublicKey(priv.GetPublic())
		if err != nil {
			return keySigner{err: fmt.Errorf("libp2padapter: the signer's key: %w", err)}
		}
		s.prefix = append(binary.AppendUvarint(nil, uint64(len(kb))), kb...)
	}
	return s
}

// HostSigner returns KeySigner of h's identity key, as h's peerstore
// holds it.
func HostSigner(h host.Host) discovery.Signer {
	if h == nil {
		return keySigner{err: fmt.Errorf("%w: nil host", discovery.ErrNoKey)}
	}
	return KeySigner(h.Peerstore().PrivKey(h.ID()))
}

type keySigner struct {
	priv   crypto.PrivKey
	id     peer.ID
	prefix []byte // the proof's key length and key
	err    error  // why this signer cannot sign at all
}

func (s keySigner) Sign(id string, msg []byte) ([]byte, error) {
	if s.err != nil {
		return nil, s.err
	}
	if pid, err := peer.Decode(id); err != nil || pid != s.id {
		return nil, fmt.Errorf("%w: this signer holds the key of %s only", discovery.ErrNoKey, s.id)
	}
	sig, err := s.priv.Sign(msg)
	if err != nil {
		return nil, fmt.Errorf("libp2padapter: signing: %w", err)
	}
	return append(append([]byte(nil), s.prefix...), sig...), nil
}

// String names the key's peer ID, never the key.
func (s keySigner) String() string { return "libp2padapter.KeySigner(" + s.id.String() + ")" }

// Format prints String for every verb, so no format shows the key.
func (s keySigner) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }
