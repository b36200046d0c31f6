package recordcodec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// encode is a plaintext with a header of hdr bytes (the byte 0xee each)
// and the given fields.
func encode(hdr int, id string, addrs []string, meta, proof []byte) []byte {
	out := bytes.Repeat([]byte{0xee}, hdr)
	out = AppendBody(out, []byte(id), addrs, meta)
	return AppendProof(out, proof)
}

func TestRoundTrip(t *testing.T) {
	long := strings.Repeat("a", 200) // a two-byte length
	for _, c := range []struct {
		name        string
		hdr         int
		id          string
		addrs       []string
		meta, proof []byte
	}{
		{"smallest", 0, "x", nil, nil, nil},
		{"after a header", 26, "peer", []string{"/ip4/192.0.2.1/udp/1", ""}, []byte("meta"), []byte("sig")},
		{"long fields", 18, long, []string{long, long}, []byte(long), []byte(long)},
	} {
		t.Run(c.name, func(t *testing.T) {
			plain := encode(c.hdr, c.id, c.addrs, c.meta, c.proof)
			body := c.hdr + BodySize(len(c.id), c.addrs, len(c.meta))
			if len(plain) != body+ProofSize(len(c.proof)) {
				t.Fatalf("encoded %d bytes, BodySize and ProofSize say %d", len(plain), body+ProofSize(len(c.proof)))
			}
			f, err := Decode(plain, c.hdr, false)
			if err != nil {
				t.Fatal(err)
			}
			if string(f.ID) != c.id || !slices.Equal(f.Addrs, c.addrs) || !bytes.Equal(f.Meta, c.meta) || !bytes.Equal(f.Proof, c.proof) {
				t.Fatalf("decoded %+v", f)
			}
			if !bytes.Equal(f.Signed, plain[:body]) {
				t.Fatalf("signed part %x, want the %d bytes before the proof field", f.Signed, body)
			}
		})
	}
}

// Decoded fields own their bytes (the ID aside, which the caller
// converts at once): the buffer a plaintext was opened into is reused.
func TestDecodeCopies(t *testing.T) {
	plain := encode(2, "peer", []string{"addr"}, []byte("meta"), []byte("sig"))
	f, err := Decode(plain, 2, false)
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Clone(plain)
	for i := range plain {
		plain[i] = 0
	}
	if string(f.Meta) != "meta" || string(f.Proof) != "sig" || f.Addrs[0] != "addr" || !bytes.Equal(f.Signed, want[:len(want)-4]) {
		t.Fatalf("fields alias the plaintext: %+v", f)
	}
}

func TestDecodeRejects(t *testing.T) {
	good := encode(1, "id", []string{"a"}, []byte("m"), []byte("p"))
	// A plaintext whose fields after the header are these bytes.
	raw := func(b ...byte) []byte { return append([]byte{0xee}, b...) }
	for _, c := range []struct {
		name  string
		plain []byte
		hdr   int
		bare  bool
		why   string
	}{
		{"shorter than the header", []byte{1, 2}, 3, false, "shorter than the 3-byte header"},
		{"a negative header", good, -1, false, "a header of -1 bytes"},
		{"nothing after the header", raw(), 1, false, "bad varint"},
		{"a non-minimal ID length", raw(0x82, 0x00, 'i', 'd', 0, 0, 0), 1, false, "bad varint"},
		{"a non-minimal address count", raw(1, 'i', 0x80, 0x00, 0, 0), 1, false, "bad varint"},
		{"a non-minimal proof length", raw(1, 'i', 0, 0, 0x80, 0x00), 1, false, "bad varint"},
		{"a uvarint overflowing 64 bits", raw(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02), 1, false, "bad varint"},
		{"an empty ID", raw(0, 0, 0, 0), 1, false, "empty ID"},
		{"an ID cut short", raw(5, 'i', 'd'), 1, false, "truncated"},
		{"more addresses than bytes", raw(1, 'i', 4, 0, 0, 0), 1, false, "4 addresses in 3 bytes"},
		{"a huge address count", binary.AppendUvarint(raw(1, 'i'), 1<<40), 1, false, "addresses in 0 bytes"},
		{"an address cut short", raw(1, 'i', 1, 3, 'a'), 1, false, "truncated"},
		{"no meta field", raw(1, 'i', 0), 1, false, "bad varint"},
		{"no proof field (version 1's layout)", raw(1, 'i', 0, 0), 1, false, "bad varint"},
		{"a proof cut short", raw(1, 'i', 0, 0, 64, 1, 2), 1, false, "truncated"},
		{"a trailing byte", append(bytes.Clone(good), 0), 1, false, "1 trailing bytes"},
		{"a tombstone with an address", raw(1, 'i', 1, 1, 'a', 0, 0), 1, true, "tombstone with a record"},
		{"a tombstone with metadata", raw(1, 'i', 0, 1, 'm', 0), 1, true, "tombstone with a record"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode(c.plain, c.hdr, c.bare)
			var me *MalformedError
			if !errors.As(err, &me) || !strings.Contains(err.Error(), c.why) {
				t.Fatalf("Decode: %v, want a MalformedError saying %q", err, c.why)
			}
		})
	}
	// What a tombstone may carry: an ID and a proof.
	if _, err := Decode(encode(1, "id", nil, nil, []byte("p")), 1, true); err != nil {
		t.Fatalf("a tombstone with a proof: %v", err)
	}
	if _, err := Decode(good, 1, false); err != nil {
		t.Fatalf("the genuine plaintext: %v", err)
	}
}

func TestDecodeTime(t *testing.T) {
	for _, c := range []struct {
		us uint64
		ok bool
	}{{0, true}, {1_750_000_000_000_000, true}, {MaxMicros, true}, {MaxMicros + 1, false}, {1 << 63, false}, {^uint64(0), false}} {
		got, err := DecodeTime(c.us)
		if c.ok != (err == nil) {
			t.Errorf("DecodeTime(%d): %v, want ok=%v", c.us, err, c.ok)
			continue
		}
		if c.ok && !got.Equal(time.UnixMicro(int64(c.us))) {
			t.Errorf("DecodeTime(%d) = %v", c.us, got)
		}
		var me *MalformedError
		if !c.ok && !errors.As(err, &me) {
			t.Errorf("DecodeTime(%d): %T, want a MalformedError", c.us, err)
		}
	}
}

func TestUvarintLen(t *testing.T) {
	for _, n := range []uint64{0, 1, 0x7f, 0x80, 0x3fff, 0x4000, 1<<63 - 1, 1 << 63, ^uint64(0)} {
		if got, want := UvarintLen(n), len(binary.AppendUvarint(nil, n)); got != want {
			t.Errorf("UvarintLen(%d) = %d, want %d", n, got, want)
		}
	}
}

// FuzzDecode: any input either fails with a MalformedError or is exactly
// what the encoder writes for the fields decoded, so a plaintext has one
// encoding, its signed part is what the writer signs, and a tombstone
// carries no record.
func FuzzDecode(f *testing.F) {
	f.Add(uint8(0), false, encode(0, "x", nil, nil, nil))
	f.Add(uint8(26), false, encode(26, "peer", []string{"/ip4/192.0.2.1/udp/1", ""}, []byte("meta"), []byte("sig")))
	f.Add(uint8(18), true, encode(18, strings.Repeat("ab", 32), nil, nil, bytes.Repeat([]byte{7}, 65)))
	f.Add(uint8(1), true, encode(1, "id", []string{"a"}, nil, nil))
	f.Add(uint8(1), false, []byte{0xee, 0x82, 0x00, 'i', 'd', 0, 0, 0})
	f.Add(uint8(1), false, binary.AppendUvarint([]byte{0xee, 1, 'i'}, 1<<40))
	f.Add(uint8(3), false, []byte{1, 2})
	f.Fuzz(func(t *testing.T, hdr uint8, bare bool, plain []byte) {
		in := bytes.Clone(plain)
		fs, err := Decode(in, int(hdr), bare)
		if err != nil {
			var me *MalformedError
			if !errors.As(err, &me) {
				t.Fatalf("error %T is not a MalformedError: %v", err, err)
			}
			return
		}
		if len(fs.ID) == 0 {
			t.Fatal("accepted an empty ID")
		}
		if bare && (len(fs.Addrs) > 0 || len(fs.Meta) > 0) {
			t.Fatal("accepted a tombstone carrying a record")
		}
		body := AppendBody(bytes.Clone(plain[:hdr]), fs.ID, fs.Addrs, fs.Meta)
		if !bytes.Equal(fs.Signed, body) {
			t.Fatalf("signed part %x, the writer signs %x", fs.Signed, body)
		}
		if again := AppendProof(body, fs.Proof); !bytes.Equal(again, plain) {
			t.Fatalf("re-encoded %x, input %x: more than one encoding", again, plain)
		}
		if n := int(hdr) + BodySize(len(fs.ID), fs.Addrs, len(fs.Meta)) + ProofSize(len(fs.Proof)); n != len(plain) {
			t.Fatalf("sizes say %d bytes, input has %d", n, len(plain))
		}
		// Everything but the ID is a copy: spoil the decoded buffer and
		// encode again, with the ID from the untouched input.
		for i := range in {
			in[i] ^= 0x55
		}
		idAt := int(hdr) + UvarintLen(uint64(len(fs.ID)))
		id := plain[idAt : idAt+len(fs.ID)]
		if again := AppendProof(AppendBody(bytes.Clone(plain[:hdr]), id, fs.Addrs, fs.Meta), fs.Proof); !bytes.Equal(again, plain) || !bytes.Equal(fs.Signed, body) {
			t.Fatal("fields alias the plaintext")
		}
	})
}
