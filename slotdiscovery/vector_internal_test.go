package slotdiscovery

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/phrasemeet/discovery"
	"github.com/phrasemeet/discovery/pkarrclient"
)

// The default profile's known-answer vector. Every member of a group must
// derive the same keys from the passphrase; a change to the KDF
// parameters, the salt, a BLAKE3 context, the slot numbering, the entry
// layout or the sealing would cut every new build off from every group
// made by an older one, and nothing else would notice. The vector pins
// them all; it changes only with a new profile version, on purpose:
//
//	go test ./slotdiscovery -run TestDefaultProfileVector -update
//
// rewrites it from the code (and says so in the test log).
var updateVector = flag.Bool("update", false, "rewrite testdata/default_profile_vector.json from the code")

const vectorFile = "default_profile_vector.json"

// katPassphrase is the vector's passphrase, the can-sync profile's
// published example too.
const katPassphrase = "correct horse battery staple"

// katSlots are the root group's slots in the vector: the first and last of
// levels 0 to 4 (the levels read whole in a group of a hundred), one
// inside level 8 and both ends of the deepest level.
var katSlots = []int{0, 1, 2, 3, 6, 7, 14, 15, 30, 255, 65535, 131070}

// katNamespaces are the namespaces in the vector: the empty one, a group
// of its own, and a typical named one.
var katNamespaces = []string{"", "chat/room-7"}

const katPurpose = "mdnsdiscovery"

type katVector struct {
	Comment    string         `json:"comment"`
	Passphrase string         `json:"passphrase"`
	App        string         `json:"app"`
	KDF        katKDF         `json:"kdf"`
	Group      katGroup       `json:"group"`
	Namespaces []katNamespace `json:"namespaces"`
	Entries    []katEntry     `json:"entries"`
}

type katKDF struct {
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
}

// katGroup is one group's derived material. Root, entry_key and binding
// are internal, but recorded apart so that a failure says which step
// changed: the salt or KDF (root), a context (the rest).
type katGroup struct {
	Root     string       `json:"root"`
	EntryKey string       `json:"entry_key"`
	Binding  string       `json:"binding"`
	Purpose  katPurposeKV `json:"purpose_key"`
	Slots    []katSlot    `json:"slots"`
}

type katPurposeKV struct {
	Purpose string `json:"purpose"`
	Key     string `json:"key"`
}

type katNamespace struct {
	Name string `json:"name"`
	katGroup
}

type katSlot struct {
	Index     int    `json:"index"`
	Level     int    `json:"level"`
	PublicZ32 string `json:"public_z32"`
	PublicHex string `json:"public_hex"`
}

// katEntry is one sealed entry: its inputs, then what the code makes of
// them. Namespace is null for the root group.
type katEntry struct {
	Namespace  *string  `json:"namespace"`
	Slot       int      `json:"slot"`
	Kind       string   `json:"kind"`
	TimeMicro  int64    `json:"time_us"`
	SinceMicro int64    `json:"since_us"`
	ID         string   `json:"id"`
	Addrs      []string `json:"addrs"`
	Meta       string   `json:"meta_hex"`
	// SignerSeed is the Ed25519 seed of the key the ID names, empty for
	// an ID that is not a key (which carries no proof).
	SignerSeed string `json:"signer_seed,omitempty"`
	Nonce      string `json:"nonce"`
	Proof      string `json:"proof,omitempty"`
	Plaintext  string `json:"plaintext"`
	Sealed     string `json:"sealed"`
}

// katEntryInputs are the vector's entries before sealing: a plain ID with
// addresses and metadata, a key ID with a proof in a deeper slot, and a
// signed tombstone in a namespace.
func katEntryInputs() []katEntry {
	seed := bytes.Repeat([]byte{0x5e}, ed25519.SeedSize)
	keyID := hex.EncodeToString(ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey))
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC).UnixMicro()
	ns := katNamespaces[1]
	nonce := func(b byte) string {
		n := make([]byte, chacha20poly1305.NonceSize)
		for i := range n {
			n[i] = b + byte(i)
		}
		return hex.EncodeToString(n)
	}
	return []katEntry{
		{
			Slot: 0, Kind: "live", TimeMicro: t0 + 123456, SinceMicro: t0 - 60_000_000,
			ID:    "peer-kat",
			Addrs: []string{"/ip4/192.0.2.1/udp/4001/quic-v1", "/ip6/2001:db8::1/tcp/4001"},
			Meta:  hex.EncodeToString([]byte("kat meta")),
			Nonce: nonce(0x00),
		},
		{
			Slot: 5, Kind: "live", TimeMicro: t0 + 1, SinceMicro: t0,
			ID:         keyID,
			Addrs:      []string{"/ip4/198.51.100.7/udp/443/quic-v1"},
			SignerSeed: hex.EncodeToString(seed),
			Nonce:      nonce(0x40),
		},
		{
			Namespace: &ns, Slot: 1, Kind: "tombstone", TimeMicro: t0 + 999_999, SinceMicro: t0,
			ID:         keyID,
			SignerSeed: hex.EncodeToString(seed),
			Nonce:      nonce(0x80),
		},
	}
}

func katGroupOf(g *Group, slots []int) katGroup {
	kg := katGroup{
		Root:     hex.EncodeToString(g.key[:]),
		EntryKey: hex.EncodeToString(g.entryKey[:]),
		Binding:  hex.EncodeToString(g.binding[:]),
	}
	pk := g.DeriveKey(katPurpose)
	kg.Purpose = katPurposeKV{Purpose: katPurpose, Key: hex.EncodeToString(pk[:])}
	for _, i := range slots {
		pub := g.SlotKey(i).PublicKey()
		kg.Slots = append(kg.Slots, katSlot{Index: i, Level: levelOf(i), PublicZ32: pub.String(), PublicHex: hex.EncodeToString(pub[:])})
	}
	return kg
}

// katEntryOf decodes an entry's inputs.
func katEntryOf(t *testing.T, in katEntry) (entry, []byte, ed25519.PrivateKey) {
	t.Helper()
	e := entry{time: time.UnixMicro(in.TimeMicro), since: time.UnixMicro(in.SinceMicro), rec: discovery.Record{ID: in.ID, Addrs: in.Addrs}}
	switch in.Kind {
	case "live":
		e.kind = kindLive
	case "tombstone":
		e.kind = kindTombstone
	default:
		t.Fatalf("vector entry kind %q", in.Kind)
	}
	meta, err := hex.DecodeString(in.Meta)
	if err != nil {
		t.Fatal(err)
	}
	if len(meta) > 0 {
		e.rec.Meta = meta
	}
	nonce, err := hex.DecodeString(in.Nonce)
	if err != nil || len(nonce) != chacha20poly1305.NonceSize {
		t.Fatalf("vector nonce %q: %v", in.Nonce, err)
	}
	var priv ed25519.PrivateKey
	if in.SignerSeed != "" {
		seed, err := hex.DecodeString(in.SignerSeed)
		if err != nil || len(seed) != ed25519.SeedSize {
			t.Fatalf("vector signer seed %q: %v", in.SignerSeed, err)
		}
		priv = ed25519.NewKeyFromSeed(seed)
	}
	return e, nonce, priv
}

// buildVector computes the vector from the code: the default profile (no
// options to DeriveGroup), the fixed inputs above.
func buildVector(t *testing.T) (katVector, map[string]*Group) {
	t.Helper()
	g, err := DeriveGroup([]byte(katPassphrase))
	if err != nil {
		t.Fatal(err)
	}
	kdf := DefaultKDF()
	v := katVector{
		Comment: "Known-answer vector of the slotdiscovery default profile. Do not edit: a change here is a new profile " +
			"that cannot meet groups of older builds. Regenerate with: go test ./slotdiscovery -run TestDefaultProfileVector -update",
		Passphrase: katPassphrase,
		App:        DefaultApp,
		KDF:        katKDF{Time: kdf.Time, MemoryKiB: kdf.MemoryKiB, Threads: kdf.Threads},
		Group:      katGroupOf(g, katSlots),
	}
	groups := map[string]*Group{"": g}
	for _, name := range katNamespaces {
		ng := g.Namespace(name)
		groups["ns:"+name] = ng
		v.Namespaces = append(v.Namespaces, katNamespace{Name: name, katGroup: katGroupOf(ng, []int{0, 1, 2})})
	}
	for _, in := range katEntryInputs() {
		eg := g
		if in.Namespace != nil {
			eg = groups["ns:"+*in.Namespace]
		}
		e, nonce, priv := katEntryOf(t, in)
		slot := eg.SlotKey(in.Slot).PublicKey()
		var signer discovery.Signer
		if priv != nil {
			signer = discovery.Ed25519Signer(priv)
		}
		e.proof, err = discovery.Prove([]discovery.IDScheme{discovery.Ed25519Hex{}}, signer, e.rec.ID, eg.proofMessage(slot, e.marshalBody()))
		if err != nil {
			t.Fatal(err)
		}
		plain, err := e.marshal()
		if err != nil {
			t.Fatal(err)
		}
		sealed, err := eg.sealNonce(&e, slot, [chacha20poly1305.NonceSize]byte(nonce))
		if err != nil {
			t.Fatal(err)
		}
		in.Proof = hex.EncodeToString(e.proof)
		in.Plaintext = hex.EncodeToString(plain)
		in.Sealed = hex.EncodeToString(sealed)
		v.Entries = append(v.Entries, in)
	}
	return v, groups
}

// TestDefaultProfileVector recomputes every value of the vector in
// testdata and compares, then opens the vector's sealed entries as a
// reader would: a build that cannot is cut off from its groups.
func TestDefaultProfileVector(t *testing.T) {
	got, groups := buildVector(t)
	path := filepath.Join("testdata", vectorFile)
	if *updateVector {
		b, err := json.MarshalIndent(got, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote %s: every group made by an older build is now out of reach of this one", path)
		return
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (generate it with -update)", err)
	}
	var want katVector
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&want); err != nil {
		t.Fatalf("%s: %v", path, err)
	}

	t.Run("recompute", func(t *testing.T) {
		diffs := diffJSON(t, got, want)
		for _, d := range diffs {
			t.Error(d)
		}
		if len(diffs) > 0 {
			t.Logf("%d values differ from %s: the default profile changed, and builds of this code cannot meet groups of older ones", len(diffs), path)
		}
	})

	t.Run("open", func(t *testing.T) {
		schemes := []discovery.IDScheme{discovery.Ed25519Hex{}}
		for n, w := range want.Entries {
			g := groups[""]
			if w.Namespace != nil {
				g = groups["ns:"+*w.Namespace]
			}
			if g == nil {
				t.Fatalf("entries[%d]: namespace %q not in the vector", n, *w.Namespace)
			}
			sealed, err := hex.DecodeString(w.Sealed)
			if err != nil {
				t.Fatal(err)
			}
			slot := g.SlotKey(w.Slot).PublicKey()
			e, err := g.open(sealed, slot)
			if err != nil {
				t.Errorf("entries[%d] (slot %d): the vector's sealed entry does not open: %v", n, w.Slot, err)
				continue
			}
			in, _, _ := katEntryOf(t, w)
			if e.kind != in.kind || !e.time.Equal(in.time) || !e.since.Equal(in.since) || e.rec.ID != in.rec.ID ||
				!slices.Equal(e.rec.Addrs, in.rec.Addrs) || !bytes.Equal(e.rec.Meta, in.rec.Meta) {
				t.Errorf("entries[%d] opens as %s, want %s", n, katDescribe(e), katDescribe(in))
			}
			if err := katCheckProof(schemes, e, g, slot); err != nil {
				t.Errorf("entries[%d]: proof: %v", n, err)
			}
		}
	})
}

func katDescribe(e entry) string {
	return fmt.Sprintf("{kind %d, time %d µs, since %d µs, id %q, addrs %q, meta %x}",
		e.kind, e.time.UnixMicro(), e.since.UnixMicro(), e.rec.ID, e.rec.Addrs, e.rec.Meta)
}

// katCheckProof is the proof rule applied to an opened entry, as a reader
// applies it.
func katCheckProof(schemes []discovery.IDScheme, e entry, g *Group, slot pkarrclient.PublicKey) error {
	_, bad := provenEntries(g, schemes, []sealedEntry{{entry: e}}, slot)
	if bad != 0 {
		return fmt.Errorf("proof of %q does not verify", e.rec.ID)
	}
	return nil
}

// diffJSON compares got and want as JSON, leaf by leaf, and returns one
// line per path that differs, in the file's order: the inputs, then the
// root key (KDF and salt), then what BLAKE3 derives from it, then the
// entries, so the first line names the furthest-upstream change.
func diffJSON(t *testing.T, got, want any) []string {
	t.Helper()
	g, w := flatJSON(t, got), flatJSON(t, want)
	wv := make(map[string]string, len(w))
	for _, l := range w {
		wv[l.path] = l.value
	}
	var diffs []string
	seen := make(map[string]bool, len(g))
	for _, l := range g {
		seen[l.path] = true
		v, ok := wv[l.path]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("%s = %s, not in the vector", l.path, short(l.value)))
		case v != l.value:
			diffs = append(diffs, fmt.Sprintf("%s = %s, vector has %s", l.path, short(l.value), short(v)))
		}
	}
	for _, l := range w {
		if !seen[l.path] {
			diffs = append(diffs, fmt.Sprintf("%s: vector has %s, the code makes none", l.path, short(l.value)))
		}
	}
	return diffs
}

type jsonLeaf struct{ path, value string }

// flatJSON lists v's leaves, as JSON, in the order encoding/json writes
// them (struct field order).
func flatJSON(t *testing.T, v any) []jsonLeaf {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out []jsonLeaf
	var walk func(path string)
	walk = func(path string) {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		switch tok {
		case json.Delim('{'):
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					t.Fatal(err)
				}
				walk(strings.TrimPrefix(path+"."+k.(string), "."))
			}
		case json.Delim('['):
			n := 0
			for ; dec.More(); n++ {
				walk(fmt.Sprintf("%s[%d]", path, n))
			}
			if n == 0 {
				out = append(out, jsonLeaf{path, "[]"})
			}
		default:
			lb, _ := json.Marshal(tok)
			out = append(out, jsonLeaf{path, string(lb)})
			return
		}
		if _, err := dec.Token(); err != nil { // the closing delimiter
			t.Fatal(err)
		}
	}
	walk("")
	return out
}

// short cuts a long value for the log; the vector file has it whole.
func short(v string) string {
	if len(v) <= 72 {
		return v
	}
	return fmt.Sprintf("%s…(%d chars)", v[:64], len(v))
}
