package slotdiscovery

import (
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/zeebo/blake3"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/phrasemeet/discovery/pkarrclient"
)

// KDFParams are the Argon2id parameters that turn a passphrase into a
// group's root key. They are part of the profile: peers with different
// parameters are in different groups.
type KDFParams struct {
	// Time is the number of passes over memory.
	Time uint32
	// MemoryKiB is the memory used, in KiB.
	MemoryKiB uint32
	// Threads is the parallelism.
	Threads uint8
}

// DefaultKDF is RFC 9106's second recommended Argon2id setting: t=3, 64 MiB,
// p=4. It costs about 130 ms on a 2-core machine, once per passphrase, and
// the same for every guess an attacker makes against the slot keys that
// relays and the DHT show in public.
func DefaultKDF() KDFParams { return KDFParams{Time: 3, MemoryKiB: 64 * 1024, Threads: 4} }

// DefaultApp is the application name used in the KDF salt when none is
// given. Applications should pass their own, so two unrelated programs
// whose users happen to choose the same passphrase never meet.
const DefaultApp = "phrasemeet"

// MinPassphraseLen is the shortest passphrase the default profile accepts.
const MinPassphraseLen = 12

// Errors about passphrases and keys.
var (
	// ErrEmptyPassphrase: no passphrase was given.
	ErrEmptyPassphrase = errors.New("slotdiscovery: empty passphrase")
	// ErrWeakPassphrase: the passphrase is too short or too repetitive for
	// the default profile. The message never includes the passphrase.
	ErrWeakPassphrase = errors.New("slotdiscovery: passphrase too weak")
)

// CheckPassphrase reports whether the default profile accepts p: at least
// MinPassphraseLen characters and at least 6 distinct ones. This is a
// floor, not an entropy meter: anyone who learns the group's slot keys
// (every relay does) can test guesses offline at the KDF's cost, so four
// or more random words are the advice.
func CheckPassphrase(p []byte) error {
	if len(p) == 0 {
		return ErrEmptyPassphrase
	}
	if !utf8.Valid(p) {
		return fmt.Errorf("%w: not valid UTF-8", ErrWeakPassphrase)
	}
	if n := utf8.RuneCount(p); n < MinPassphraseLen {
		return fmt.Errorf("%w: %d characters, want at least %d (four random words are better)", ErrWeakPassphrase, n, MinPassphraseLen)
	}
	distinct := make(map[rune]struct{})
	for _, r := range string(p) {
		distinct[r] = struct{}{}
	}
	if len(distinct) < 6 {
		return fmt.Errorf("%w: only %d distinct characters", ErrWeakPassphrase, len(distinct))
	}
	return nil
}

// BLAKE3 derive-key contexts. Each is hard-coded, unique to its use and
// dated, as the BLAKE3 spec asks, so no two derived keys can coincide.
const (
	ctxNamespace = "phrasemeet 2026-11 slotdiscovery namespace v1"
	ctxSlotSeed  = "phrasemeet 2026-11 slotdiscovery slot seed v1"
	ctxEntryKey  = "phrasemeet 2026-11 slotdiscovery entry key v1"
	ctxPurpose   = "phrasemeet 2026-11 slotdiscovery purpose key v1"
	ctxBinding   = "phrasemeet 2026-12 slotdiscovery entry proof binding v1"
	ctxSlotEntry = "phrasemeet 2026-12 slotdiscovery slot entry key v1"
)

// Group is the key material of one group: what a passphrase (through the
// KDF) or a namespace under it derives. From it come the slot signing keys
// and the key that seals entries; it holds no passphrase. A Group is safe
// for concurrent use.
type Group struct {
	key [32]byte
	// entryKey is the root of the keys that seal entries, one per slot
	// (see slotAEAD).
	entryKey [32]byte
	// binding goes into every entry's signed message, so a proof made
	// for one group (or namespace) proves nothing in another. It is not
	// secret: nothing else is derived from it.
	binding [32]byte

	mu    sync.Mutex
	slots map[int]*pkarrclient.SecretKey
}

// KeyOption adjusts DeriveGroup.
type KeyOption func(*keyConfig)

type keyConfig struct {
	app string
	kdf KDFParams
}

// WithApp sets the application name that salts the KDF (default
// DefaultApp).
func WithApp(name string) KeyOption { return func(c *keyConfig) { c.app = name } }

// WithKDF sets the Argon2id parameters (default DefaultKDF). Tests use
// cheap ones; every member of a group must use the same.
func WithKDF(p KDFParams) KeyOption { return func(c *keyConfig) { c.kdf = p } }

// DeriveGroup runs the slow KDF over the passphrase and returns the
// group's keys. It is the only expensive step, done once per passphrase;
// namespaces and slot keys derived from the result are cheap. It enforces
// CheckPassphrase.
func DeriveGroup(passphrase []byte, opts ...KeyOption) (*Group, error) {
	cfg := keyConfig{app: DefaultApp, kdf: DefaultKDF()}
	for _, o := range opts {
		o(&cfg)
	}
	if err := CheckPassphrase(passphrase); err != nil {
		return nil, err
	}
	if cfg.app == "" {
		return nil, errors.New("slotdiscovery: empty application name")
	}
	if cfg.kdf.Time < 1 || cfg.kdf.MemoryKiB < 8*uint32(max(cfg.kdf.Threads, 1)) || cfg.kdf.Threads < 1 {
		return nil, fmt.Errorf("slotdiscovery: invalid Argon2id parameters %+v", cfg.kdf)
	}
	// The salt names the scheme and the application, length-prefixed so no
	// two names can run together; Argon2 wants at least 8 bytes, and gets
	// them from the fixed prefix.
	salt := append([]byte("phrasemeet/slotdiscovery/v1/app="), strconv.Itoa(len(cfg.app))...)
	salt = append(append(salt, ':'), cfg.app...)
	root := argon2.IDKey(passphrase, salt, cfg.kdf.Time, cfg.kdf.MemoryKiB, cfg.kdf.Threads, 32)
	g, err := newGroup(root)
	clear(root)
	return g, err
}

func newGroup(key []byte) (*Group, error) {
	g := &Group{slots: make(map[int]*pkarrclient.SecretKey)}
	copy(g.key[:], key)
	blake3.DeriveKey(ctxBinding, g.key[:], g.binding[:])
	blake3.DeriveKey(ctxEntryKey, g.key[:], g.entryKey[:])
	return g, nil
}

// slotAEAD returns the AEAD that seals entries in the slot whose public
// key is slot. A key of its own per slot lets entries carry 12-byte
// random nonces instead of XChaCha's 24, which is room in a 1000-byte
// packet: a slot sees a few writes a minute, so even in decades of use
// its nonces stay far from the 2^48 at which random 96-bit ones would
// begin to collide.
func (g *Group) slotAEAD(slot pkarrclient.PublicKey) cipher.AEAD {
	material := make([]byte, 0, len(g.entryKey)+len(slot))
	material = append(append(material, g.entryKey[:]...), slot[:]...)
	var k [32]byte
	blake3.DeriveKey(ctxSlotEntry, material, k[:])
	clear(material)
	aead, err := chacha20poly1305.New(k[:])
	clear(k[:])
	if err != nil { // only for a key of the wrong size
		panic(err)
	}
	return aead
}

// Namespace returns the sub-group name under g: its own slots and entry
// key, unrelated to g's and to every other namespace's, without running
// the KDF again. Namespace("") is a group of its own too, distinct from g.
func (g *Group) Namespace(name string) *Group {
	material := make([]byte, 0, len(g.key)+len(name))
	material = append(append(material, g.key[:]...), name...)
	var k [32]byte
	blake3.DeriveKey(ctxNamespace, material, k[:])
	clear(material)
	// newGroup fails only on a wrong key length, which 32 never is.
	ng, err := newGroup(k[:])
	clear(k[:])
	if err != nil {
		panic("slotdiscovery: " + err.Error())
	}
	return ng
}

// DeriveKey returns a 32-byte key for another mechanism that should meet
// the same group (mDNS service names, a chat's topic), unrelated to the
// slot keys, the entry key and every other purpose's key. Purpose names
// the use, such as "mdnsdiscovery"; the passphrase stays out of reach.
func (g *Group) DeriveKey(purpose string) [32]byte {
	material := make([]byte, 0, len(g.key)+len(purpose))
	material = append(append(material, g.key[:]...), purpose...)
	var k [32]byte
	blake3.DeriveKey(ctxPurpose, material, k[:])
	clear(material)
	return k
}

// SlotKey returns the signing key of slot i (i >= 0). Keys are derived on
// first use and kept.
func (g *Group) SlotKey(i int) *pkarrclient.SecretKey {
	if i < 0 {
		panic("slotdiscovery: negative slot index")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if sk, ok := g.slots[i]; ok {
		return sk
	}
	var material [40]byte
	copy(material[:32], g.key[:])
	binary.LittleEndian.PutUint64(material[32:], uint64(i))
	var seed [32]byte
	blake3.DeriveKey(ctxSlotSeed, material[:], seed[:])
	clear(material[:])
	sk, err := pkarrclient.SecretKeyFromSeed(seed[:])
	clear(seed[:])
	if err != nil {
		panic("slotdiscovery: " + err.Error()) // a 32-byte seed is always valid
	}
	g.slots[i] = sk
	return sk
}

// CanSyncSlots is the number of slots in the can-sync profile.
const CanSyncSlots = 8

// CanSyncSlotKey returns slot i's signing key in the can-sync profile:
// the Ed25519 seed is the plain BLAKE3 hash of
// "can-sync-rendezvous:{passphrase}:{i}", as can-sync derives it.
func CanSyncSlotKey(passphrase []byte, i int) *pkarrclient.SecretKey {
	msg := fmt.Appendf(nil, "can-sync-rendezvous:%s:%d", passphrase, i)
	seed := blake3.Sum256(msg)
	clear(msg)
	sk, err := pkarrclient.SecretKeyFromSeed(seed[:])
	clear(seed[:])
	if err != nil {
		panic("slotdiscovery: " + err.Error())
	}
	return sk
}
