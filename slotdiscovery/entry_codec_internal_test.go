package slotdiscovery

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/phrasemeet/discovery"
)

// An entry has exactly one encoding, as an mDNS record has: a length or
// count written as a longer uvarint than it needs is refused wherever it
// is, so no one can make a second plaintext (or signed part) for the same
// entry. Before slot entries and mDNS records shared one codec, the entry
// reader took any uvarint.
func TestEntryHasOneEncoding(t *testing.T) {
	e := entry{
		kind:  kindLive,
		time:  time.UnixMicro(1_750_000_000_000_000),
		since: time.UnixMicro(1_749_000_000_000_000),
		rec:   discovery.Record{ID: "peer", Addrs: []string{"/ip4/192.0.2.1/udp/1"}, Meta: []byte("m")},
		proof: []byte("sig"),
	}
	genuine, err := e.marshal()
	if err != nil {
		t.Fatal(err)
	}
	// build writes e's plaintext with the varint number padded (0-based,
	// in order: ID length, address count, address length, meta length,
	// proof length) two bytes long; -1 pads none.
	build := func(padded int) []byte {
		out := bytes.Clone(genuine[:entryHeader])
		i := 0
		varint := func(n int) {
			if n >= 0x80 {
				t.Fatalf("test values must be under 128, got %d", n)
			}
			if i == padded {
				out = append(out, byte(n)|0x80, 0x00)
			} else {
				out = append(out, byte(n))
			}
			i++
		}
		field := func(b []byte) { varint(len(b)); out = append(out, b...) }
		field([]byte(e.rec.ID))
		varint(len(e.rec.Addrs))
		for _, a := range e.rec.Addrs {
			field([]byte(a))
		}
		field(e.rec.Meta)
		field(e.proof)
		return out
	}
	if !bytes.Equal(build(-1), genuine) {
		t.Fatalf("the test's layout %x is not the writer's %x", build(-1), genuine)
	}
	if got, err := unmarshalEntry(genuine); err != nil || !entriesEqual(got, e) {
		t.Fatalf("the genuine entry: %+v, %v", got, err)
	}
	for i, name := range []string{"ID length", "address count", "address length", "meta length", "proof length"} {
		if _, err := unmarshalEntry(build(i)); !errors.Is(err, errEntry) {
			t.Errorf("a padded %s: %v, want errEntry", name, err)
		}
	}
}
