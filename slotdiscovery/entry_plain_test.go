package slotdiscovery

import (
	"bytes"
	"errors"
	"testing"
)

// TestEntryPlaintextBound: an entry whose plaintext is exactly
// maxEntryPlain bytes is written and read; one byte more is refused on
// both sides.
func TestEntryPlaintextBound(t *testing.T) {
	e := fuzzMaxEntry()
	plain, err := e.marshal()
	if err != nil {
		t.Fatalf("an entry of exactly %d bytes: %v", maxEntryPlain, err)
	}
	if len(plain) != maxEntryPlain {
		t.Fatalf("fuzzMaxEntry encodes to %d bytes, want %d", len(plain), maxEntryPlain)
	}
	got, err := unmarshalEntry(plain)
	if err != nil || !entriesEqual(got, e) {
		t.Fatalf("an entry of exactly %d bytes reads as %+v, %v", maxEntryPlain, got, err)
	}
	e.rec.Meta = append(bytes.Clone(e.rec.Meta), 'x')
	if _, err := e.marshal(); !errors.Is(err, ErrRecordTooLarge) {
		t.Errorf("an entry of %d bytes: %v, want ErrRecordTooLarge", maxEntryPlain+1, err)
	}
	if _, err := unmarshalEntry(append(bytes.Clone(plain), 0)); !errors.Is(err, errEntry) {
		t.Errorf("a plaintext of %d bytes: %v, want errEntry", maxEntryPlain+1, err)
	}
}
