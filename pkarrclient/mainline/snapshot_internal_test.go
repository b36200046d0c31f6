package mainline

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"net/netip"
	"testing"

	"github.com/anacrolix/dht/v2/krpc"
)

// snapshotOf builds a version 1 snapshot of raw records, checksum right,
// whatever the records hold: what encodeNodesSnapshot would refuse to write.
func snapshotOf(records ...[]byte) []byte {
	b := []byte(snapshotMagic)
	b = binary.BigEndian.AppendUint32(b, uint32(len(records)))
	for _, r := range records {
		b = append(b, r...)
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func rawRecord(id byte, addr string, port uint16) []byte {
	b := bytes.Repeat([]byte{id}, 20)
	a := netip.MustParseAddr(addr).As16()
	b = append(b, a[:]...)
	return binary.BigEndian.AppendUint16(b, port)
}

func node(id byte, addr string, port int) krpc.NodeInfo {
	var n krpc.NodeInfo
	for i := range n.ID {
		n.ID[i] = id
	}
	n.Addr = krpc.NodeAddr{IP: netip.MustParseAddr(addr).AsSlice(), Port: port}
	return n
}

func TestNodesSnapshotRoundTrip(t *testing.T) {
	in := []krpc.NodeInfo{
		node(1, "127.0.0.1", 6881),
		node(2, "192.0.2.9", 1),
		node(3, "2001:db8::5", 65535),
		node(1, "::ffff:127.0.0.1", 6881), // the IPv4-mapped twin of the first: left out
		node(4, "0.0.0.0", 6881),          // refused by a reader: left out
		node(5, "ff02::1", 6881),
		node(6, "10.0.0.1", 0),
		node(0, "10.0.0.2", 6881),
		node(7, "fe80::1", 6881),
		node(8, "255.255.255.255", 6881),
		node(9, "224.0.0.1", 6881),
	}
	b := encodeNodesSnapshot(in)
	out, err := parseNodesSnapshot(b)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range out {
		got = append(got, n.Addr.String())
	}
	want := []string{"127.0.0.1:6881", "192.0.2.9:1", "[2001:db8::5]:65535"}
	if len(got) != len(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] || out[i].ID != in[i].ID {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	if !bytes.Equal(encodeNodesSnapshot(out), b) {
		t.Fatal("re-encoding changed the bytes")
	}
	if empty, err := parseNodesSnapshot(encodeNodesSnapshot(nil)); err != nil || len(empty) != 0 {
		t.Fatalf("empty snapshot: %v, %v", empty, err)
	}
}

// TestParseNodesSnapshotRefuses: a checksum does not make a record usable;
// every rule of the format is checked on its own.
func TestParseNodesSnapshotRefuses(t *testing.T) {
	good := rawRecord(1, "192.0.2.1", 6881)
	cases := map[string]struct {
		b    []byte
		kind error
	}{
		"zero id":            {snapshotOf(rawRecord(0, "192.0.2.1", 6881)), ErrSnapshotDamaged},
		"port 0":             {snapshotOf(rawRecord(1, "192.0.2.1", 0)), ErrSnapshotDamaged},
		"unspecified v4":     {snapshotOf(rawRecord(1, "0.0.0.0", 6881)), ErrSnapshotDamaged},
		"unspecified v6":     {snapshotOf(rawRecord(1, "::", 6881)), ErrSnapshotDamaged},
		"multicast":          {snapshotOf(rawRecord(1, "ff05::2", 6881)), ErrSnapshotDamaged},
		"broadcast":          {snapshotOf(rawRecord(1, "255.255.255.255", 6881)), ErrSnapshotDamaged},
		"link-local v6":      {snapshotOf(rawRecord(1, "fe80::1", 6881)), ErrSnapshotDamaged},
		"twice":              {snapshotOf(good, good), ErrSnapshotDamaged},
		"count beyond max":   {append(append([]byte(snapshotMagic), 0, 0, 0x10, 1), make([]byte, 4)...), ErrSnapshotDamaged},
		"checksum":           {append(snapshotOf(good)[:len(snapshotOf(good))-1], 0), ErrSnapshotDamaged},
		"old format":         {good, ErrSnapshotUnrecognized},
		"other version":      {[]byte("phrasemeet dht nodes v2\n\x00\x00\x00\x00\x00\x00\x00\x00"), ErrSnapshotUnrecognized},
		"magic in lowercase": {[]byte("PHRASEMEET DHT NODES V1\n"), ErrSnapshotUnrecognized},
	}
	for name, tc := range cases {
		if _, err := parseNodesSnapshot(tc.b); !errors.Is(err, tc.kind) {
			t.Errorf("%s: %v, want %v", name, err, tc.kind)
		}
	}
	if _, err := parseNodesSnapshot(snapshotOf(good)); err != nil {
		t.Fatalf("the good record: %v", err)
	}
}

// FuzzParseNodesSnapshot: no input panics the parser; whatever it accepts
// is a list of nodes one may send to, and encodes back to the same bytes
// (so it is exactly what the writer would have written).
func FuzzParseNodesSnapshot(f *testing.F) {
	f.Add(encodeNodesSnapshot([]krpc.NodeInfo{node(1, "127.0.0.1", 6881), node(2, "2001:db8::1", 6882)}))
	f.Add(encodeNodesSnapshot(nil))
	f.Add(rawRecord('g', "2001:db8::1", 6881))
	f.Add(snapshotOf(rawRecord(1, "ff02::1", 6881)))
	f.Add(snapshotOf(rawRecord(1, "192.0.2.1", 6881), rawRecord(1, "192.0.2.1", 6881)))
	f.Add([]byte(snapshotMagic))
	f.Add([]byte("phrasemeet dht nodes v2\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		nodes, err := parseNodesSnapshot(b)
		if err != nil {
			if !errors.Is(err, ErrSnapshotDamaged) && !errors.Is(err, ErrSnapshotUnrecognized) {
				t.Fatalf("error of neither kind: %v", err)
			}
			if errors.Is(err, ErrSnapshotDamaged) != bytes.HasPrefix(b, []byte(snapshotMagic)) {
				t.Fatalf("damaged is for files with the magic, and only them: %v", err)
			}
			return
		}
		for _, n := range nodes {
			k, ok := snapshotNode(n)
			if !ok {
				t.Fatalf("accepted a node one cannot send to: %v", n)
			}
			if k.addr.Addr().Is4In6() {
				t.Fatalf("IPv4 node in IPv4-mapped form: %v", n)
			}
		}
		if !bytes.Equal(encodeNodesSnapshot(nodes), b) {
			t.Fatalf("accepted bytes the writer would not write")
		}
	})
}
