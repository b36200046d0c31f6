package pkarrclient

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"runtime"
	"strings"

	"filippo.io/edwards25519"

	"github.com/phrasemeet/discovery/internal/regularfile"
)

// Sizes of the key material, in bytes.
const (
	PublicKeySize = ed25519.PublicKeySize // 32
	SeedSize      = ed25519.SeedSize      // 32
	SignatureSize = ed25519.SignatureSize // 64
)

// publicKeyTextLen is the length of a 32-byte key in z-base-32.
const publicKeyTextLen = 52

// PublicKey is an Ed25519 public key, the address of a pkarr record set.
// The zero value is not a valid key; obtain one from ParsePublicKey,
// PublicKeyFromBytes or SecretKey.PublicKey.
type PublicKey [PublicKeySize]byte

// PublicKeyFromBytes returns the key in b, which must be 32 bytes encoding a
// valid Ed25519 curve point.
func PublicKeyFromBytes(b []byte) (PublicKey, error) {
	var pk PublicKey
	if len(b) != PublicKeySize {
		return pk, fmt.Errorf("%w: %d bytes, want %d", ErrInvalidKey, len(b), PublicKeySize)
	}
	// Rejecting keys that are not curve points up front means a typo'd or
	// forged key fails here with a clear error, not later as a signature
	// that can never verify.
	if _, err := new(edwards25519.Point).SetBytes(b); err != nil {
		return pk, fmt.Errorf("%w: not a point on the Ed25519 curve", ErrInvalidKey)
	}
	copy(pk[:], b)
	return pk, nil
}

// ParsePublicKey parses a key in any of the text forms pkarr accepts:
//
//	yg4gxe7z1r7mr6orids9fh95y7gxhdsxjqi6nngsxxtakqaxr5no
//	pk:yg4gxe7z1r7mr6orids9fh95y7gxhdsxjqi6nngsxxtakqaxr5no
//	https://yg4gxe7z1r7mr6orids9fh95y7gxhdsxjqi6nngsxxtakqaxr5no/path
//	https://user@_foo.yg4gxe7z1r7mr6orids9fh95y7gxhdsxjqi6nngsxxtakqaxr5no.:443/?q#f
//	_foo.yg4gxe7z1r7mr6orids9fh95y7gxhdsxjqi6nngsxxtakqaxr5no
//
// In a URL or domain name the key is the last label of the host. The key must
// be canonical z-base-32 and a valid Ed25519 point.
func ParsePublicKey(s string) (PublicKey, error) {
	var pk PublicKey
	orig := s
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "pk:")
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return pk, fmt.Errorf("%w: %q is not a key or URL", ErrInvalidKey, orig)
		}
		s = u.Hostname()
	}
	s = strings.TrimSuffix(s, ".")
	if i := strings.LastIndexByte(s, '.'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) != publicKeyTextLen {
		return pk, fmt.Errorf("%w: %q: a key is %d z-base-32 characters, got %d",
			ErrInvalidKey, truncateForError(orig), publicKeyTextLen, len(s))
	}
	b, err := DecodeZBase32(s)
	if err != nil {
		return pk, fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	return PublicKeyFromBytes(b)
}

// truncateForError keeps hostile input from producing megabyte-long errors.
func truncateForError(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}

// String returns the key in z-base-32, the form used in pkarr names and URLs.
func (pk PublicKey) String() string { return EncodeZBase32(pk[:]) }

// Bytes returns a copy of the 32 key bytes.
func (pk PublicKey) Bytes() []byte { return bytes.Clone(pk[:]) }

// MarshalText implements encoding.TextMarshaler (z-base-32).
func (pk PublicKey) MarshalText() ([]byte, error) { return []byte(pk.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler, accepting every form
// ParsePublicKey accepts.
func (pk *PublicKey) UnmarshalText(text []byte) error {
	k, err := ParsePublicKey(string(text))
	if err != nil {
		return err
	}
	*pk = k
	return nil
}

// Verify reports whether sig is a valid Ed25519 signature of msg by pk.
func (pk PublicKey) Verify(msg, sig []byte) bool {
	return len(sig) == SignatureSize && ed25519.Verify(pk[:], msg, sig)
}

// SecretKey is an Ed25519 signing key. It never prints its secret: String,
// GoString, Format and LogValue all show only the public key, so a key that
// slips into a log line or an error leaks nothing.
//
// A SecretKey must not be copied after first use; pass *SecretKey.
type SecretKey struct {
	priv ed25519.PrivateKey // seed || public key
	pub  PublicKey
}

// GenerateSecretKey returns a new random key. A nil rand means crypto/rand.
func GenerateSecretKey(rand io.Reader) (*SecretKey, error) {
	if rand == nil {
		rand = cryptoRand{}
	}
	var seed [SeedSize]byte
	defer clear(seed[:])
	if _, err := io.ReadFull(rand, seed[:]); err != nil {
		return nil, fmt.Errorf("pkarr: generating key: %w", err)
	}
	return SecretKeyFromSeed(seed[:])
}

type cryptoRand struct{}

func (cryptoRand) Read(b []byte) (int, error) { return rand.Read(b) }

// SecretKeyFromSeed returns the key whose 32-byte Ed25519 seed is seed. The
// seed is copied; the caller may wipe its own copy.
func SecretKeyFromSeed(seed []byte) (*SecretKey, error) {
	if len(seed) != SeedSize {
		return nil, fmt.Errorf("%w: seed is %d bytes, want %d", ErrInvalidSecretKey, len(seed), SeedSize)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	sk := &SecretKey{priv: priv}
	copy(sk.pub[:], priv[SeedSize:])
	return sk, nil
}

// PublicKey returns the key's public half.
func (sk *SecretKey) PublicKey() PublicKey { return sk.pub }

// Seed returns a copy of the 32-byte seed. Handle it as a secret.
func (sk *SecretKey) Seed() []byte { return bytes.Clone(sk.priv[:SeedSize]) }

// Sign signs msg.
func (sk *SecretKey) Sign(msg []byte) []byte { return ed25519.Sign(sk.priv, msg) }

// Equal reports, in constant time, whether sk and other are the same key.
func (sk *SecretKey) Equal(other *SecretKey) bool {
	if sk == nil || other == nil {
		return sk == other
	}
	return subtle.ConstantTimeCompare(sk.priv, other.priv) == 1
}

// Destroy overwrites the key material. The key is unusable afterwards.
func (sk *SecretKey) Destroy() {
	clear(sk.priv)
	sk.priv = nil
}

// String shows the public key only.
func (sk *SecretKey) String() string { return "SecretKey(" + sk.pub.String() + ")" }

// GoString shows the public key only, so %#v does not leak the seed.
func (sk *SecretKey) GoString() string { return sk.String() }

// Format makes every fmt verb print String, so %x or %v cannot leak the seed.
func (sk *SecretKey) Format(f fmt.State, _ rune) { io.WriteString(f, sk.String()) }

// LogValue implements slog.LogValuer: logging a key logs its public half.
func (sk *SecretKey) LogValue() slog.Value { return slog.StringValue(sk.String()) }

// ErrInsecureKeyFile reports a secret key file readable by other users.
var ErrInsecureKeyFile = errors.New("pkarr: secret key file is accessible by other users (want mode 0600)")

// SaveSecretKey writes sk's 32-byte seed to a new file at path with mode 0600.
// It refuses to overwrite an existing file, so a slip cannot destroy a key.
func SaveSecretKey(path string, sk *SecretKey) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("pkarr: saving secret key: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("pkarr: saving secret key: %w", cerr)
		}
		if err != nil {
			os.Remove(path)
		}
	}()
	seed := sk.Seed()
	defer clear(seed)
	if _, err := f.Write(seed); err != nil {
		return fmt.Errorf("pkarr: saving secret key: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("pkarr: saving secret key: %w", err)
	}
	return nil
}

// LoadSecretKey reads a secret key file: either the raw 32-byte seed, as
// SaveSecretKey writes it, or the seed as 64 hex digits (optionally followed
// by a newline), as pkarr and iroh tools print it. It must be a regular
// file, refused before it is opened otherwise (a named pipe would block the
// open for good), and on Unix not accessible by group or others.
func LoadSecretKey(path string) (*SecretKey, error) {
	f, st, err := regularfile.Open(path)
	if errors.Is(err, regularfile.ErrNotRegular) {
		return nil, fmt.Errorf("%w: %w", ErrInvalidSecretKey, err)
	}
	if err != nil {
		return nil, fmt.Errorf("pkarr: loading secret key: %w", err)
	}
	defer f.Close()
	if runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o", ErrInsecureKeyFile, path, st.Mode().Perm())
	}
	// Read one byte more than the longest valid form, to detect longer files.
	buf := make([]byte, 2*SeedSize+3)
	defer clear(buf)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("pkarr: loading secret key: %w", err)
	}
	return parseSeedFile(buf[:n], path)
}

func parseSeedFile(b []byte, path string) (*SecretKey, error) {
	if len(b) == SeedSize {
		return SecretKeyFromSeed(b)
	}
	text := bytes.TrimRight(b, "\r\n")
	if len(text) == 2*SeedSize {
		var seed [SeedSize]byte
		defer clear(seed[:])
		if _, err := hex.Decode(seed[:], text); err == nil {
			return SecretKeyFromSeed(seed[:])
		}
	}
	return nil, fmt.Errorf("%w: %s holds %d bytes, want a 32-byte seed or 64 hex digits",
		ErrInvalidSecretKey, path, len(b))
}
