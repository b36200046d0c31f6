package mainline

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"net/netip"
	"os"

	"github.com/anacrolix/dht/v2/krpc"
)

// The routing table snapshot ([WithNodesFile]) is a file this package
// writes and reads back, nothing else. Earlier versions wrote anacrolix's
// headerless compact node list, in which any 38 bytes read as a node: a
// stray or corrupt file made the node send datagrams to whatever address
// its bytes spelled. Version 1 is recognisable and checked:
//
//	magic    "phrasemeet dht nodes v1\n" (24 bytes)
//	count    uint32, big-endian, at most maxSnapshotNodes
//	records  count times 38 bytes: node ID (20), address as 16 bytes
//	         (IPv4 in its IPv4-mapped form), port (uint16, big-endian)
//	check    CRC-32C of everything before it, uint32, big-endian
//
// A reader accepts a file only if all of it is exactly that, and every
// record is a node one can send to: a non-zero ID, a non-zero port, and
// an address that is not unspecified, multicast, broadcast or IPv6
// link-local (which needs a zone the file cannot carry), with no record
// twice. The writer writes nothing else.
//
// What a node does with a file it cannot use depends on whose it is. One
// that starts with the magic is ours and damaged: it is logged and
// ignored, and overwritten by the next snapshot, so a node restarting
// after a bad write keeps working. Anything else (the old format
// included, which cannot be told apart from garbage safely) may be a file
// named by mistake: New fails, and the file is never written to.

const (
	snapshotMagic = "phrasemeet dht nodes v1\n"
	// snapshotFamily is what every version's magic starts with: a file
	// that has it but another version is ours, and still not readable.
	snapshotFamily = "phrasemeet dht nodes v"
	// maxSnapshotNodes bounds a snapshot well above a full routing table
	// (160 buckets of 8 nodes, each possibly under two addresses).
	maxSnapshotNodes = 4096
	snapshotRecord   = 20 + 16 + 2
	maxSnapshotSize  = len(snapshotMagic) + 4 + maxSnapshotNodes*snapshotRecord + 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrSnapshotUnrecognized is the reason a routing table snapshot file is
// refused when it is not one this package writes: another format (the
// headerless one of earlier versions included), another version, or not a
// regular file. New fails and leaves the file alone.
var ErrSnapshotUnrecognized = errors.New("not a DHT routing table snapshot of this version")

// ErrSnapshotDamaged is the reason a routing table snapshot of ours is
// refused when it fails its check or its structure. New logs it, starts
// without the snapshot and overwrites the file at the next save.
var ErrSnapshotDamaged = errors.New("damaged DHT routing table snapshot")

// SnapshotError tells why a routing table snapshot file ([WithNodesFile])
// was not used. errors.Is matches ErrSnapshotUnrecognized,
// ErrSnapshotDamaged, or the error reading the file.
type SnapshotError struct {
	Path string // the file
	Err  error  // ErrSnapshotUnrecognized, ErrSnapshotDamaged or an I/O error
	// Detail says what exactly was wrong ("bad checksum", ...), or is empty.
	Detail string
}

// Error names the file and the reason and, for a file that is not a
// snapshot of ours, says it was left alone and what to do.
func (e *SnapshotError) Error() string {
	msg := fmt.Sprintf("pkarr: DHT nodes file %s: %v", e.Path, e.Err)
	if e.Detail != "" {
		msg += " (" + e.Detail + ")"
	}
	if errors.Is(e.Err, ErrSnapshotUnrecognized) {
		msg += "; it was left untouched: remove it or name another file"
	}
	return msg
}

// Unwrap gives errors.Is the reason, one of the sentinels or the I/O
// error.
func (e *SnapshotError) Unwrap() error { return e.Err }

// snapshotFault is a parse failure: which of the two kinds, and why.
type snapshotFault struct {
	kind   error // ErrSnapshotUnrecognized or ErrSnapshotDamaged
	detail string
}

func (f *snapshotFault) Error() string { return f.kind.Error() + ": " + f.detail }
func (f *snapshotFault) Unwrap() error { return f.kind }

func unrecognized(format string, args ...any) error {
	return &snapshotFault{kind: ErrSnapshotUnrecognized, detail: fmt.Sprintf(format, args...)}
}

func damaged(format string, args ...any) error {
	return &snapshotFault{kind: ErrSnapshotDamaged, detail: fmt.Sprintf(format, args...)}
}

// parseNodesSnapshot reads a version 1 snapshot. Its errors wrap
// ErrSnapshotUnrecognized or ErrSnapshotDamaged.
func parseNodesSnapshot(b []byte) ([]krpc.NodeInfo, error) {
	if !bytes.HasPrefix(b, []byte(snapshotMagic)) {
		if bytes.HasPrefix(b, []byte(snapshotFamily)) && len(b) > len(snapshotFamily) {
			return nil, unrecognized("a version this one does not read")
		}
		return nil, unrecognized("no %q header", snapshotMagic[:len(snapshotMagic)-1])
	}
	body := b[len(snapshotMagic):]
	if len(body) < 8 {
		return nil, damaged("%d bytes, too short for a count and a checksum", len(b))
	}
	n := binary.BigEndian.Uint32(body)
	if n > maxSnapshotNodes {
		return nil, damaged("%d nodes, more than %d", n, maxSnapshotNodes)
	}
	if want := 4 + int(n)*snapshotRecord + 4; len(body) != want {
		return nil, damaged("%d bytes for %d nodes, want %d", len(b), n, len(snapshotMagic)+want)
	}
	sumAt := len(b) - 4
	if got, want := crc32.Checksum(b[:sumAt], castagnoli), binary.BigEndian.Uint32(b[sumAt:]); got != want {
		return nil, damaged("bad checksum")
	}
	nodes := make([]krpc.NodeInfo, 0, n)
	seen := make(map[snapshotKey]bool, n)
	rec := b[len(snapshotMagic)+4 : sumAt]
	for i := range int(n) {
		r := rec[i*snapshotRecord : (i+1)*snapshotRecord]
		var id krpc.ID
		copy(id[:], r[:20])
		addr := netip.AddrPortFrom(netip.AddrFrom16([16]byte(r[20:36])).Unmap(), binary.BigEndian.Uint16(r[36:]))
		if err := checkSnapshotNode(id, addr); err != nil {
			return nil, damaged("node %d: %v", i, err)
		}
		k := snapshotKey{id, addr}
		if seen[k] {
			return nil, damaged("node %d: listed twice", i)
		}
		seen[k] = true
		nodes = append(nodes, krpc.NodeInfo{ID: id, Addr: krpc.NodeAddr{IP: addr.Addr().AsSlice(), Port: int(addr.Port())}})
	}
	return nodes, nil
}

type snapshotKey struct {
	id   krpc.ID
	addr netip.AddrPort
}

// checkSnapshotNode accepts a node that can be contacted; see the format
// comment above.
func checkSnapshotNode(id krpc.ID, ap netip.AddrPort) error {
	a := ap.Addr()
	switch {
	case id == krpc.ID{}:
		return errors.New("zero node ID")
	case ap.Port() == 0:
		return errors.New("port 0")
	case !a.IsValid() || a.IsUnspecified():
		return fmt.Errorf("unspecified address %v", a)
	case a.IsMulticast():
		return fmt.Errorf("multicast address %v", a)
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return errors.New("broadcast address")
	case a.Is6() && a.IsLinkLocalUnicast():
		return fmt.Errorf("IPv6 link-local address %v", a)
	}
	return nil
}

// snapshotNode converts a library node to the snapshot's form; ok is false
// for one a reader would refuse.
func snapshotNode(n krpc.NodeInfo) (snapshotKey, bool) {
	ip, ok := netip.AddrFromSlice(n.Addr.IP)
	if !ok || n.Addr.Port <= 0 || n.Addr.Port > 0xffff {
		return snapshotKey{}, false
	}
	k := snapshotKey{n.ID, netip.AddrPortFrom(ip.Unmap(), uint16(n.Addr.Port))}
	return k, checkSnapshotNode(k.id, k.addr) == nil
}

// encodeNodesSnapshot writes nodes as a version 1 snapshot, leaving out
// those a reader would refuse and repeats (the library lists every IPv4
// node under its IPv4-mapped address too), up to maxSnapshotNodes.
func encodeNodesSnapshot(nodes []krpc.NodeInfo) []byte {
	var keys []snapshotKey
	seen := make(map[snapshotKey]bool, len(nodes))
	for _, n := range nodes {
		k, ok := snapshotNode(n)
		if !ok || seen[k] {
			continue
		}
		seen[k] = true
		keys = append(keys, k)
		if len(keys) == maxSnapshotNodes {
			break
		}
	}
	b := make([]byte, 0, len(snapshotMagic)+4+len(keys)*snapshotRecord+4)
	b = append(b, snapshotMagic...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(keys)))
	for _, k := range keys {
		a := k.addr.Addr().As16()
		b = append(b, k.id[:]...)
		b = append(b, a[:]...)
		b = binary.BigEndian.AppendUint16(b, k.addr.Port())
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// readNodesSnapshot reads the snapshot at path: no nodes and no error when
// there is no file or an empty one, else its nodes or a *SnapshotError. It reads only a
// regular file, and no more of it than a snapshot can hold, so a FIFO or
// a device named by mistake neither blocks nor fills memory.
func readNodesSnapshot(path string) ([]krpc.NodeInfo, error) {
	fail := func(err error, detail string) error {
		return &SnapshotError{Path: path, Err: err, Detail: detail}
	}
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fail(err, "")
	}
	if !st.Mode().IsRegular() {
		return nil, fail(ErrSnapshotUnrecognized, "not a regular file")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fail(err, "")
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, int64(maxSnapshotSize)+1))
	if err != nil {
		return nil, fail(err, "")
	}
	if len(b) == 0 {
		return nil, nil // nothing to lose: created by hand, or by touch
	}
	nodes, err := parseNodesSnapshot(b)
	var fault *snapshotFault
	if errors.As(err, &fault) {
		if len(b) > maxSnapshotSize {
			fault.detail = fmt.Sprintf("larger than the %d bytes a snapshot can have", maxSnapshotSize)
		}
		return nil, fail(fault.kind, fault.detail)
	}
	return nodes, err
}

// addSnapshotNodes adds nodes to the routing table, each IPv4 one in its
// IPv4 form (the library otherwise queries it under two names), and
// returns how many it took.
func (d *DHT) addSnapshotNodes(nodes []krpc.NodeInfo) int {
	added := 0
	for _, n := range nodes {
		if ip4 := n.Addr.IP.To4(); ip4 != nil {
			n.Addr.IP = ip4
		}
		if d.srv.AddNode(n) == nil {
			added++
		}
	}
	return added
}

// saveNodes writes the routing table as a snapshot, through a temporary
// file and a rename so a crash never leaves half a snapshot. An empty
// table does not overwrite a useful older snapshot.
func (d *DHT) saveNodes() error {
	nodes := d.srv.Nodes()
	if len(nodes) == 0 {
		return nil
	}
	return writeFileAtomic(d.cfg.nodesFile, encodeNodesSnapshot(nodes), 0o600)
}
