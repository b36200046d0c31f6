package mdnsdiscovery

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/jonboulle/clockwork"
	"github.com/libp2p/zeroconf/v2"

	"github.com/phrasemeet/discovery"
)

// Issue 12, item 3, on the LAN: a member holds the group secret, so it can
// seal a record under another member's ID. Where the ID is a key, a
// record about it must carry that key's signature; the reader drops one
// that does not. Driven by hand on a fake clock, as the state tests are.

func testKey(seed byte) (ed25519.PrivateKey, string) {
	priv := ed25519.NewKeyFromSeed(append(make([]byte, ed25519.SeedSize-1), seed))
	return priv, hex.EncodeToString(priv.Public().(ed25519.PublicKey))
}

// signedBy gives w a proof by priv for the group of s: right, when priv
// is the ID's key and s the reader's group.
func signedBy(t *testing.T, s *sealer, priv ed25519.PrivateKey, w wireRecord) wireRecord {
	t.Helper()
	w.proof = nil
	body, err := w.encodeBody()
	if err != nil {
		t.Fatal(err)
	}
	w.proof = ed25519.Sign(priv, s.proofMessage(body))
	return w
}

func TestStateForgedRecordsIgnored(t *testing.T) {
	h := newHarness(t)
	bPriv, bID := testKey(1)
	cPriv, _ := testKey(2)
	other := mustSealer(t, secretOf(2))
	now := h.now()
	v1 := signedBy(t, h.peer, bPriv, liveRecord(bID, 100, now, "/ip4/192.0.2.2/udp/1"))
	h.hear(v1)
	h.expect(discovery.Found, bID, "/ip4/192.0.2.2/udp/1")

	tomb := wireRecord{kind: kindGone, seq: 1 << 40, time: now, rec: discovery.Record{ID: bID}}
	evil := liveRecord(bID, 1<<40, now, "/ip4/203.0.113.66/udp/1")
	tamper := signedBy(t, h.peer, bPriv, liveRecord(bID, 101, now, "/ip4/192.0.2.2/udp/1"))
	tamper.rec.Addrs = []string{"/ip4/203.0.113.66/udp/1"}
	forged := map[string]wireRecord{
		"a tombstone without proof":             tomb,
		"a newer version without proof":         evil,
		"a tombstone signed by another key":     signedBy(t, h.peer, cPriv, tomb),
		"a newer version signed by another key": signedBy(t, h.peer, cPriv, evil),
		"a proof made for another group":        signedBy(t, other, bPriv, evil),
		"a tombstone with a zero proof": func() wireRecord {
			w := tomb
			w.proof = make([]byte, ed25519.SignatureSize)
			return w
		}(),
		"B's record with its address changed": tamper,
		"B's uppercase ID, unsigned":          liveRecord(strings.ToUpper(bID), 1<<40, now, "/ip4/203.0.113.66/udp/1"),
	}
	for name, w := range forged {
		h.hear(w)
		h.quiet(name)
	}
	if st := h.d.Stats(); st.Unproven != len(forged) {
		t.Fatalf("Unproven = %d, want %d", st.Unproven, len(forged))
	}
	// B itself still updates, and a replay of its older, genuinely
	// signed version changes nothing.
	h.hear(signedBy(t, h.peer, bPriv, liveRecord(bID, 101, now, "/ip4/192.0.2.2/udp/2")))
	h.expect(discovery.Updated, bID, "/ip4/192.0.2.2/udp/2")
	h.hear(v1)
	h.quiet("B's older version replayed")
	if st := h.d.Stats(); st.Replayed != 1 {
		t.Fatalf("Replayed = %d, want 1", st.Replayed)
	}
	// And B's own tombstone, signed, is heard.
	h.hear(signedBy(t, h.peer, bPriv, wireRecord{kind: kindGone, seq: 102, time: now, rec: discovery.Record{ID: bID}}))
	h.expect(discovery.Lost, bID)
	// IDs that are not keys are as open as before.
	h.hear(liveRecord("peer-p", 1, now, "a"))
	h.expect(discovery.Found, "peer-p", "a")
	h.hear(liveRecord("peer-p", 2, now, "b"))
	h.expect(discovery.Updated, "peer-p", "b")
}

// TestAnnounceNeedsKey: announcing an ID that is a key fails at once,
// with ErrNoKey, unless the signer holds that key; the proof counts
// toward the size; a signed announcement seals a proof readers accept.
func TestAnnounceNeedsKey(t *testing.T) {
	bPriv, bID := testKey(1)
	cPriv, _ := testKey(2)
	for name, tc := range map[string]struct {
		opts []Option
		want error
	}{
		"no signer":   {nil, discovery.ErrNoKey},
		"another key": {[]Option{WithSigner(discovery.Ed25519Signer(cPriv))}, discovery.ErrNoKey},
		"its key":     {[]Option{WithSigner(discovery.Ed25519Signer(bPriv))}, nil},
		"no schemes":  {[]Option{WithIDSchemes()}, nil},
	} {
		t.Run(name, func(t *testing.T) {
			d, err := newDiscoverer(secretOf(1), append([]Option{WithClock(clockwork.NewFakeClockAt(t0))}, tc.opts...))
			if err != nil {
				t.Fatal(err)
			}
			defer d.tracker.Close()
			err = d.checkRecord(discovery.Record{ID: bID, Addrs: []string{"a"}})
			if !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
				t.Fatalf("checkRecord: %v, want %v", err, tc.want)
			}
			if err != nil {
				if _, aerr := d.Announce(context.Background(), discovery.Record{ID: bID}); !errors.Is(aerr, tc.want) {
					t.Fatalf("Announce: %v, want %v", aerr, tc.want)
				}
				return
			}
			// What register would seal, a reader of the group accepts.
			w := wireRecord{kind: kindLive, seq: 1, time: t0, rec: discovery.Record{ID: bID, Addrs: []string{"a"}}}
			if err := d.sign(&w); err != nil {
				t.Fatal(err)
			}
			txt, err := d.sealer.seal(&w)
			if err != nil {
				t.Fatal(err)
			}
			h := newHarness(t)
			h.d.cfg.schemes = d.cfg.schemes
			h.d.handle(&zeroconf.ServiceEntry{Text: txt})
			h.expect(discovery.Found, bID, "a")
		})
	}
	d, err := newDiscoverer(secretOf(1), []Option{WithSigner(discovery.Ed25519Signer(bPriv))})
	if err != nil {
		t.Fatal(err)
	}
	defer d.tracker.Close()
	// A record that fits without its proof does not with it.
	meta := make([]byte, maxPlain-plainHeader-(1+len(bID))-1-2-1)
	if err := d.checkRecord(discovery.Record{ID: "x" + bID[1:], Meta: meta}); err != nil {
		t.Fatalf("the unsigned record of that size: %v", err)
	}
	if err := d.checkRecord(discovery.Record{ID: bID, Meta: meta}); !errors.Is(err, ErrRecordTooLarge) {
		t.Fatalf("with a proof: %v, want ErrRecordTooLarge", err)
	}
}
