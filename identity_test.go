package discovery_test

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/phrasemeet/discovery"
)

func testKey(seed byte) (ed25519.PrivateKey, string) {
	priv := ed25519.NewKeyFromSeed(append(make([]byte, ed25519.SeedSize-1), seed))
	return priv, hex.EncodeToString(priv.Public().(ed25519.PublicKey))
}

func TestEd25519HexOwns(t *testing.T) {
	_, id := testKey(1)
	var s discovery.Ed25519Hex
	for in, want := range map[string]bool{
		id:                         true,
		strings.ToUpper(id):        true,
		strings.Repeat("0", 64):    true, // not a usable key, but looks like one
		id[:63]:                    false,
		id + "0":                   false,
		"0x" + id[2:]:              false,
		"g" + id[1:]:               false,
		" " + id[1:]:               false,
		"":                         false,
		"12D3KooWAbCdEfGhIjKlMnOp": false,
	} {
		if got := s.Owns(in); got != want {
			t.Errorf("Owns(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestEd25519SignVerify(t *testing.T) {
	bPriv, bID := testKey(1)
	_, cID := testKey(2)
	var s discovery.Ed25519Hex
	signer := discovery.Ed25519Signer(bPriv)
	msg := []byte("an entry")
	proof, err := signer.Sign(bID, msg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(bID, msg, proof); err != nil {
		t.Fatalf("own proof: %v", err)
	}
	upper, err := signer.Sign(strings.ToUpper(bID), msg)
	if err != nil {
		t.Fatalf("signing for the uppercase ID: %v", err)
	}
	if err := s.Verify(strings.ToUpper(bID), msg, upper); err != nil {
		t.Fatalf("uppercase ID: %v", err)
	}
	if _, err := signer.Sign(cID, msg); !errors.Is(err, discovery.ErrNoKey) {
		t.Fatalf("signing for another key: %v, want ErrNoKey", err)
	}
	bad := func(what string, id string, m, p []byte) {
		t.Helper()
		if err := s.Verify(id, m, p); !errors.Is(err, discovery.ErrBadProof) {
			t.Errorf("%s: %v, want ErrBadProof", what, err)
		}
	}
	bad("another key's ID", cID, msg, proof)
	bad("another message", bID, []byte("an entrY"), proof)
	flipped := append([]byte(nil), proof...)
	flipped[0] ^= 1
	bad("a flipped proof", bID, msg, flipped)
	bad("a short proof", bID, msg, proof[:63])
	bad("a long proof", bID, msg, append(append([]byte(nil), proof...), 0))
	bad("an empty proof", bID, msg, nil)
	bad("an all-ones key", strings.Repeat("f", 64), msg, proof)
	bad("not hex", "x"+bID[1:], msg, proof)

	if _, err := discovery.Ed25519Signer(bPriv[:10]).Sign(bID, msg); err == nil || errors.Is(err, discovery.ErrNoKey) {
		t.Errorf("a truncated key: %v, want an error of its own", err)
	}
	// No format shows the private key.
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
		out := fmt.Sprintf(verb, signer)
		if strings.Contains(out, hex.EncodeToString(bPriv.Seed())) || strings.Contains(out, fmt.Sprint([]byte(bPriv.Seed()))) {
			t.Errorf("%s shows the private key: %s", verb, out)
		}
	}
}

// swapScheme owns every ID starting with "k:" and accepts a proof equal
// to the message reversed: enough to check how schemes are chosen.
type swapScheme struct{ prefix string }

func (s swapScheme) Owns(id string) bool { return strings.HasPrefix(id, s.prefix) }
func (s swapScheme) Verify(id string, msg, proof []byte) error {
	if string(proof) != s.prefix+string(msg) {
		return discovery.ErrBadProof
	}
	return nil
}

func TestProveAndCheck(t *testing.T) {
	bPriv, bID := testKey(1)
	schemes := []discovery.IDScheme{discovery.Ed25519Hex{}}
	msg := []byte("m")
	signer := discovery.Ed25519Signer(bPriv)

	if p, err := discovery.Prove(schemes, nil, "peer-b", msg); p != nil || err != nil {
		t.Fatalf("an ID no scheme owns: %x, %v; want no proof, no error", p, err)
	}
	if _, err := discovery.Prove(schemes, nil, bID, msg); !errors.Is(err, discovery.ErrNoKey) {
		t.Fatalf("no signer: %v, want ErrNoKey", err)
	}
	p, err := discovery.Prove(schemes, signer, bID, msg)
	if err != nil {
		t.Fatal(err)
	}
	if err := discovery.CheckProof(schemes, bID, msg, p); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"no proof":    discovery.CheckProof(schemes, bID, msg, nil),
		"empty proof": discovery.CheckProof(schemes, bID, msg, []byte{}),
		"wrong msg":   discovery.CheckProof(schemes, bID, []byte("n"), p),
	} {
		if !errors.Is(err, discovery.ErrBadProof) {
			t.Errorf("%s: %v, want ErrBadProof", name, err)
		}
	}
	if err := discovery.CheckProof(schemes, "peer-b", msg, []byte("junk")); err != nil {
		t.Errorf("an ID no scheme owns, with junk for a proof: %v", err)
	}
	if err := discovery.CheckProof(nil, bID, msg, nil); err != nil {
		t.Errorf("no schemes: %v", err)
	}
	// The first scheme that owns an ID judges it.
	two := []discovery.IDScheme{swapScheme{"k:"}, swapScheme{"k:x"}}
	if s := discovery.SchemeFor(two, "k:x1"); s != two[0] {
		t.Errorf("SchemeFor picked %v, want the first", s)
	}
	if err := discovery.CheckProof(two, "k:x1", msg, []byte("k:xm")); !errors.Is(err, discovery.ErrBadProof) {
		t.Errorf("a proof only the second scheme accepts: %v", err)
	}
	if err := discovery.CheckProof(two, "k:x1", msg, []byte("k:m")); err != nil {
		t.Errorf("a proof the first scheme accepts: %v", err)
	}
	if discovery.SchemeFor(append([]discovery.IDScheme{nil}, two...), "k:") == nil {
		t.Error("a nil scheme stops the search")
	}
}
