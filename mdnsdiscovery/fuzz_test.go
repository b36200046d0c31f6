package mdnsdiscovery

// Fuzz targets for everything that reads the LAN: the TXT strings of an
// instance through to the reader's state, and the record plaintext. Each
// checks what the code promises, not only that it returns: bad input is
// refused with errRejected and changes nothing; whatever is accepted has
// exactly one encoding, so re-encoding it gives back the input.
//
// The committed corpus lives in testdata/fuzz/<Target>/ and plain go test
// replays it. Its genuine records are sealed under secretOf(1) with fixed
// nonces, so they stay genuine in later runs.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/libp2p/zeroconf/v2"

	"github.com/phrasemeet/discovery"
)

// fuzzRecords are records of every shape the writer makes, at t0.
func fuzzRecords() []wireRecord {
	return []wireRecord{
		liveRecord("12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo", uint64(t0.UnixMicro()), t0,
			"/ip4/192.0.2.1/udp/4001/quic-v1", "/ip6/2001:db8::1/tcp/4001"),
		liveRecord("p", 1, t0),
		{kind: kindGone, seq: 2, time: t0, rec: discovery.Record{ID: "p"}},
		{kind: kindLive, seq: 3, time: t0, rec: discovery.Record{ID: "big", Meta: bytes.Repeat([]byte{0xab}, 500)}},
		{kind: kindLive, seq: 4, time: t0, origin: origin{0xff}, rec: discovery.Record{ID: "\x00\"\\", Addrs: []string{"", "\xff"}}},
		{kind: kindLive, seq: 5, time: t0, rec: discovery.Record{ID: fuzzKeyID, Addrs: []string{"a"}}, proof: bytes.Repeat([]byte{7}, 64)},
		{kind: kindGone, seq: 6, time: t0, rec: discovery.Record{ID: fuzzKeyID}},
	}
}

// fuzzKey signs for fuzzKeyID, an ID the default scheme owns.
var fuzzKey, fuzzKeyID = testKey(0x5c)

// fuzzSigned are records about fuzzKeyID with valid proofs for secretOf(1).
func fuzzSigned(tb testing.TB, s *sealer) []wireRecord {
	var out []wireRecord
	for _, w := range []wireRecord{
		{kind: kindLive, seq: 7, time: t0, rec: discovery.Record{ID: fuzzKeyID, Addrs: []string{"/ip4/192.0.2.5/udp/1"}}},
		{kind: kindGone, seq: 8, time: t0, rec: discovery.Record{ID: fuzzKeyID}},
	} {
		body, err := w.encodeBody()
		if err != nil {
			tb.Fatal(err)
		}
		w.proof = ed25519.Sign(fuzzKey, s.proofMessage(body))
		out = append(out, w)
	}
	return out
}

// FuzzOpen feeds the TXT strings of one instance ("\n" separates them) to
// the parser and then to a reader, as zeroconf would deliver them.
func FuzzOpen(f *testing.F) {
	s := mustSealer(f, secretOf(1))
	for i, w := range append(fuzzRecords(), fuzzSigned(f, s)...) {
		txt, err := s.sealWithNonce(&w, fixedNonce(byte(i)))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(strings.Join(txt, "\n"))
	}
	f.Add("hello=world\npath=/")
	f.Add("a=" + strings.Repeat("A", 253) + "\nb=AAAA")
	f.Fuzz(func(t *testing.T, in string) {
		txt := strings.Split(in, "\n")
		if in == "" {
			txt = nil
		}
		w, err := s.open(txt)
		if err != nil {
			if !errors.Is(err, errRejected) {
				t.Fatalf("open failed with %v, not errRejected", err)
			}
		} else {
			checkAccepted(t, s, txt, w)
		}
		checkFold(t, txt, w, err)
	})
}

// checkAccepted holds an accepted record to what the writer makes: a
// valid record, and the very strings the writer would have produced.
func checkAccepted(t *testing.T, s *sealer, txt []string, w wireRecord) {
	if w.rec.ID == "" {
		t.Fatal("accepted a record with an empty ID")
	}
	if w.kind == kindGone && (len(w.rec.Addrs) > 0 || len(w.rec.Meta) > 0) {
		t.Fatal("accepted a tombstone with a record")
	}
	var text strings.Builder
	for _, str := range txt {
		text.WriteString(str[txtKeyLen:])
	}
	sealed, err := b64.DecodeString(text.String())
	if err != nil {
		t.Fatalf("accepted text that is not base64: %v", err)
	}
	again, err := s.sealWithNonce(&w, sealed[:24])
	if err != nil {
		t.Fatalf("an accepted record does not encode again: %v", err)
	}
	if strings.Join(again, "\n") != strings.Join(txt, "\n") {
		t.Fatalf("an accepted record has a second encoding:\n in %q\nout %q", txt, again)
	}
}

// checkFold delivers txt to a fresh reader on a fake clock at t0 and
// checks the only outcomes allowed: a rejection that changes nothing, or
// the record folded in by the rules.
func checkFold(t *testing.T, txt []string, w wireRecord, openErr error) {
	d, err := newDiscoverer(secretOf(1), []Option{WithClock(clockwork.NewFakeClockAt(t0))})
	if err != nil {
		t.Fatal(err)
	}
	defer d.tracker.Close()
	d.handle(&zeroconf.ServiceEntry{Text: txt})
	st := d.Stats()
	peers := d.Peers()
	if st.Received != 1 {
		t.Fatalf("Received = %d, want 1", st.Received)
	}
	if openErr != nil {
		if st.Rejected != 1 || len(peers) != 0 {
			t.Fatalf("a rejected record changed the reader: %+v, %d peers", st, len(peers))
		}
		return
	}
	// A record about a key counts only with its key's signature over the
	// group's message; the fuzzer can only copy one from the seeds.
	proven := true
	if isHexKey(w.rec.ID) {
		pub, _ := hex.DecodeString(w.rec.ID)
		msg := append(append(append([]byte(nil), proofDomain...), d.sealer.binding[:]...), w.signed...)
		proven = len(w.proof) == ed25519.SignatureSize && ed25519.Verify(pub, msg, w.proof)
	}
	if !proven {
		if st.Unproven != 1 || len(peers) != 0 {
			t.Fatalf("a record about a key without its proof changed the reader: %+v, %d peers", st, len(peers))
		}
		return
	}
	age := t0.Sub(w.time)
	fresh := age <= d.cfg.staleAfter+d.cfg.maxSkew && -age <= d.cfg.maxSkew
	wantPeer := fresh && w.kind == kindLive && w.origin != d.origin
	if wantPeer != (len(peers) == 1) || len(peers) > 1 {
		t.Fatalf("record %+v (fresh %v) left %d peers", w, fresh, len(peers))
	}
	if wantPeer && (!peers[0].Record.Equal(w.rec) || !peers[0].Seen.Equal(w.time)) {
		t.Fatalf("peer %+v, want the record %+v seen at %v", peers[0], w.rec, w.time)
	}
	if !fresh && st.Stale != 1 {
		t.Fatalf("a record sealed at %v, read at %v, was not counted stale: %+v", w.time, t0, st)
	}
	// Whatever came in, a subscriber gets a consistent replay.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ch, err := d.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range peers {
		if e := <-ch; e.Type != discovery.Found || e.Peer.ID != w.rec.ID {
			t.Fatalf("replayed %v %q, want Found %q", e.Type, e.Peer.ID, w.rec.ID)
		}
	}
}

// isHexKey reports whether id is 64 hex digits, either case: an ID the
// default scheme owns.
func isHexKey(id string) bool {
	return len(id) == 64 && strings.Trim(strings.ToLower(id), "0123456789abcdef") == ""
}

// FuzzDecodeRecord feeds the plaintext decoder directly, past the AEAD a
// fuzzer could never forge: whatever it accepts re-encodes to the same
// bytes.
func FuzzDecodeRecord(f *testing.F) {
	for _, w := range append(fuzzRecords(), fuzzSigned(f, mustSealer(f, secretOf(1)))...) {
		f.Add(plainOf(f, w))
	}
	f.Add([]byte{})
	f.Add(make([]byte, plainHeader))
	f.Fuzz(func(t *testing.T, plain []byte) {
		w, err := decodeRecord(plain)
		if err != nil {
			if !errors.Is(err, errRejected) {
				t.Fatalf("decode failed with %v, not errRejected", err)
			}
			return
		}
		again, err := w.encode()
		if err != nil {
			t.Fatalf("a decoded record does not encode: %v (%+v)", err, w)
		}
		if !bytes.Equal(again, plain) {
			t.Fatalf("a decoded record has a second encoding:\n in %x\nout %x", plain, again)
		}
		// What a proof signs is the input up to the proof field, which is
		// all that follows.
		body, err := w.encodeBody()
		if err != nil || !bytes.Equal(body, w.signed) || !bytes.Equal(appendBytes(body, string(w.proof)), plain) {
			t.Fatalf("signed part %x and proof %x do not make the input %x (%v)", w.signed, w.proof, plain, err)
		}
	})
}
