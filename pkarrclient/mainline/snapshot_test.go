package mainline_test

// The routing table snapshot file (WithNodesFile): what is in a file the
// node did not write must never become an address it sends to.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/phrasemeet/discovery/pkarrclient/mainline"
	"github.com/phrasemeet/discovery/pkarrclient/mainline/mainlinetest"
)

// legacyRecord is one node in the headerless format of earlier versions
// (anacrolix's compact IPv6 node info): id, 16-byte address, port.
func legacyRecord(id byte, addr string, port uint16) []byte {
	b := bytes.Repeat([]byte{id}, 20)
	a := netip.MustParseAddr(addr).As16()
	b = append(b, a[:]...)
	return binary.BigEndian.AppendUint16(b, port)
}

// startWithNodesFile starts a serving node on a guarded loopback socket
// whose only source of nodes is the snapshot at path, and lets it try to
// bootstrap from it. It returns New's error (the node is closed).
func startWithNodesFile(t *testing.T, g *mainlinetest.Guard, path string, logs *syncBuffer) error {
	t.Helper()
	conn, err := g.Listen()
	if err != nil {
		t.Fatal(err)
	}
	opts := []mainline.Option{
		mainline.WithConn(conn),
		mainline.WithServing(0),
		mainline.WithNodesFile(path),
		mainline.WithBootstrap(),
		mainline.WithResolver(g),
		mainline.WithResendDelay(mainlinetest.DefaultResendDelay),
		mainline.WithRefreshInterval(0),
	}
	if logs != nil {
		opts = append(opts, mainline.WithLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	}
	d, err := mainline.New(opts...)
	if err != nil {
		conn.Close()
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d.Bootstrap(ctx) // from whatever the snapshot gave
	if err := d.Close(); err != nil {
		t.Logf("close: %v", err)
	}
	return nil
}

// TestDHTNodesFileGarbage: a file that is not a snapshot of ours, 38
// random bytes or the old headerless format among them, makes New fail
// with ErrSnapshotUnrecognized; nothing is sent anywhere, and the file is
// left as it was. Earlier versions read any 38 bytes as a node and sent it
// datagrams.
func TestDHTNodesFileGarbage(t *testing.T) {
	t.Parallel()
	random := make([]byte, 38)
	rand.Read(random)
	for name, content := range map[string][]byte{
		"38 bytes naming a public IPv6 node":   legacyRecord('g', "2001:db8::1", 6881),
		"38 random bytes":                      random,
		"the old format, two nodes":            append(legacyRecord('a', "192.0.2.1", 6881), legacyRecord('b', "192.0.2.2", 6881)...),
		"text":                                 []byte("not a routing table"),
		"a snapshot of a version not known":    []byte("phrasemeet dht nodes v9\n\x00\x00\x00\x00\x00\x00\x00\x00"),
		"the magic without its version number": []byte("phrasemeet dht nodes"),
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "nodes")
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			g := &mainlinetest.Guard{}
			err := startWithNodesFile(t, g, path, nil)
			var serr *mainline.SnapshotError
			if !errors.Is(err, mainline.ErrSnapshotUnrecognized) || !errors.As(err, &serr) || serr.Path != path {
				t.Errorf("New: %v; want a *SnapshotError for %s, ErrSnapshotUnrecognized", err, path)
			} else if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, path) {
				t.Errorf("error %q: want one line naming the file", msg)
			}
			for _, v := range g.Violations() {
				t.Errorf("sent off loopback: %s", v)
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, content) {
				t.Errorf("the file was changed")
			}
		})
	}
	t.Run("a directory", func(t *testing.T) {
		err := startWithNodesFile(t, &mainlinetest.Guard{}, t.TempDir(), nil)
		if !errors.Is(err, mainline.ErrSnapshotUnrecognized) {
			t.Errorf("New: %v; want ErrSnapshotUnrecognized", err)
		}
	})
}

// TestDHTNodesFileDamaged: a snapshot of ours that fails its check (a
// flipped bit, a cut) is logged and ignored, its nodes are not contacted,
// and the node replaces it with a good snapshot once it has nodes.
func TestDHTNodesFileDamaged(t *testing.T) {
	t.Parallel()
	nw := mainlinetest.New(t, 3)
	good := mainline.EncodeNodesSnapshot(t, []netip.AddrPort{netip.MustParseAddrPort("[2001:db8::7]:6881")})
	flipped := bytes.Clone(good)
	flipped[len(flipped)-10] ^= 0x04
	for name, content := range map[string][]byte{
		"a flipped bit":    flipped,
		"cut short":        good[:len(good)-3],
		"a byte too many":  append(bytes.Clone(good), 0),
		"only the header":  good[:24],
		"a count too high": append(bytes.Clone(good[:24]), 0xff, 0xff, 0xff, 0xff),
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "nodes")
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			g := &mainlinetest.Guard{}
			conn, err := g.Listen()
			if err != nil {
				t.Fatal(err)
			}
			var logs syncBuffer
			d, err := mainline.New(mainline.WithConn(conn), mainline.WithServing(0),
				mainline.WithNodesFile(path), mainline.WithBootstrap(nw.Addrs()...),
				mainline.WithResolver(g), mainline.WithResendDelay(mainlinetest.DefaultResendDelay),
				mainline.WithSendBudget(0, 0), mainline.WithRefreshInterval(0),
				mainline.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
			if err != nil {
				conn.Close()
				t.Fatalf("New with a damaged snapshot: %v", err)
			}
			if !strings.Contains(logs.String(), "snapshot damaged") {
				t.Errorf("not logged; log:\n%s", logs.String())
			}
			if _, err := d.Bootstrap(testCtx(t, time.Minute)); err != nil {
				t.Fatal(err)
			}
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			g.Check(t)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			nodes, err := mainline.ParseNodesSnapshot(b)
			if err != nil || len(nodes) == 0 {
				t.Fatalf("not replaced by a good snapshot: %d nodes, %v", len(nodes), err)
			}
		})
	}
}
