package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha1"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anacrolix/dht/v2/krpc"
	"github.com/anacrolix/torrent/bencode"

	"github.com/phrasemeet/discovery/internal/proctest"
)

// Tests of `phrasemeet dht-node` as a process, talking raw KRPC to it from
// sockets on 127.0.0.1.

// krpcPeer is a raw KRPC socket on a loopback address.
type krpcPeer struct {
	t    *testing.T
	conn net.PacketConn
	n    int
}

func newKRPCPeer(t *testing.T, ip string) *krpcPeer {
	t.Helper()
	conn, err := net.ListenPacket("udp4", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &krpcPeer{t: t, conn: conn}
}

// query sends q with args to addr and returns the answer, failing the test
// after a generous wait.
func (p *krpcPeer) query(addr, q string, args krpc.MsgArgs) krpc.Msg {
	p.t.Helper()
	to, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.n++
	tid := "q" + strconv.Itoa(p.n)
	args.ID = krpc.ID{'p', 'e', 'e', 'r'}
	b, err := bencode.Marshal(krpc.Msg{T: tid, Y: "q", Q: q, A: &args})
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.conn.WriteTo(b, to); err != nil {
		p.t.Fatal(err)
	}
	buf := make([]byte, 1<<16)
	p.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		n, _, err := p.conn.ReadFrom(buf)
		if err != nil {
			p.t.Fatalf("%s to %s: no answer: %v", q, addr, err)
		}
		var m krpc.Msg
		if bencode.Unmarshal(buf[:n], &m) == nil && m.T == tid {
			return m
		}
	}
}

// put signs v at seq with sk (cas 0: none), sends it with a fresh token and
// returns 0 when addr stored it, else the KRPC error code.
func (p *krpcPeer) put(addr string, sk ed25519.PrivateKey, seq int64, v string, cas int64) int {
	p.t.Helper()
	pub := [32]byte(sk.Public().(ed25519.PublicKey))
	target := krpc.ID(sha1.Sum(pub[:]))
	m := p.query(addr, "get", krpc.MsgArgs{Target: target})
	if m.R == nil || m.R.Token == nil {
		p.t.Fatalf("get gave no token: %+v", m)
	}
	signed := "3:seqi" + strconv.FormatInt(seq, 10) + "e1:v" + strconv.Itoa(len(v)) + ":" + v
	args := krpc.MsgArgs{Token: *m.R.Token, K: pub, Seq: &seq, V: v, Cas: cas}
	copy(args.Sig[:], ed25519.Sign(sk, []byte(signed)))
	m = p.query(addr, "put", args)
	switch {
	case m.Y == "r":
		return 0
	case m.Error() != nil:
		return m.Error().Code
	}
	p.t.Fatalf("put answered neither r nor e: %+v", m)
	return -1
}

// TestProcessesDHTNodeBEP44: a dht-node process follows BEP44 where
// anacrolix does not: a cas chain goes through, cas is compared with the
// stored seq, plain puts work after a cas write, and v may be 1000 raw
// bytes.
func TestProcessesDHTNodeBEP44(t *testing.T) {
	t.Parallel()
	_, addr := startDHTNode(t, "none")
	peer := newKRPCPeer(t, "127.0.0.1")
	sk := ed25519.NewKeyFromSeed([]byte(strings.Repeat("k", ed25519.SeedSize)))
	for _, s := range []struct {
		seq  int64
		v    string
		cas  int64
		want int
	}{
		{1, "one", 0, 0},
		{2, "two", 1, 0},
		{3, "three", 2, 0},
		{4, "four", 2, krpc.ErrorCodeCasHashMismatched},
		{4, "four", 0, 0},
		{5, strings.Repeat("v", 997), 0, 0},
		{6, strings.Repeat("v", 1000), 6, krpc.ErrorCodeCasHashMismatched},
		{6, strings.Repeat("v", 1000), 5, 0},
		{7, strings.Repeat("v", 1001), 0, krpc.ErrorCodeMessageValueFieldTooBig},
		{3, "three", 0, krpc.ErrorCodeSequenceNumberLessThanCurrent},
	} {
		if got := peer.put(addr, sk, s.seq, s.v, s.cas); got != s.want {
			t.Fatalf("put seq %d (%d bytes, cas %d): answer %d, want %d", s.seq, len(s.v), s.cas, got, s.want)
		}
	}
}

// TestProcessesDHTNodeRefusesGarbageNodesFile: `dht-node --nodes-file`
// naming 38 random bytes (which earlier versions read as a node to send
// to) fails at once with one line that names the file, and leaves it as
// it was.
func TestProcessesDHTNodeRefusesGarbageNodesFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "nodes")
	garbage := make([]byte, 38)
	rand.Read(garbage)
	if err := os.WriteFile(path, garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, nil, "dht-node", "--listen", "127.0.0.1:0", "--bootstrap", "none", "--nodes-file", path)
	err := p.Wait(readyTimeout)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit %v, want status 1\n%s", err, p.Output())
	}
	stderr := p.Text(proctest.Stderr)
	assertCleanError(t, stderr)
	if !strings.HasPrefix(stderr, "phrasemeet dht-node: ") || !strings.Contains(stderr, path) ||
		!strings.Contains(stderr, "remove it or name another file") {
		t.Errorf("stderr %q: want the file named and what to do", stderr)
	}
	if out := p.Text(proctest.Stdout); out != "" {
		t.Errorf("it started serving: %q", out)
	}
	if b, _ := os.ReadFile(path); !bytes.Equal(b, garbage) {
		t.Error("the file was changed")
	}
}

// TestDHTClientRefusesGarbageNodesFile: publish and resolve with
// --dht-nodes-file naming a file that is not a snapshot fail with one line
// before sending anything.
func TestDHTClientRefusesGarbageNodesFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "nodes")
	var b []byte
	b = append(b, bytes.Repeat([]byte{'g'}, 20)...)
	b = append(b, net.ParseIP("2001:db8::1").To16()...)
	b = append(b, 0x1a, 0xe1)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	keyFile, key := keyFileFor(t)
	for _, args := range [][]string{
		{"publish", "--dht", "--relay", "none", "--dht-nodes-file", path, "--secret-file", keyFile, "--txt", "_a=b"},
		{"resolve", "--dht", "--relay", "none", "--dht-nodes-file", path, key.String()},
	} {
		var sent sentLog
		e, stdout, stderr := testEnv(t, nil, &sent)
		code := run(context.Background(), e, args)
		if code != 1 || stdout.Len() != 0 || !strings.Contains(stderr.String(), path) {
			t.Errorf("%s: exit %d\n%s%s", args[0], code, stdout, stderr)
		}
		assertCleanError(t, stderr.String())
		if s := sent.list(); len(s) > 0 {
			t.Errorf("%s sent datagrams to %q", args[0], s)
		}
	}
}

// pingOnce sends one ping from conn to addr and reports whether it was
// answered within wait.
func pingOnce(t *testing.T, conn net.PacketConn, to net.Addr, tid string, wait time.Duration) bool {
	t.Helper()
	b, err := bencode.Marshal(krpc.Msg{T: tid, Y: "q", Q: "ping", A: &krpc.MsgArgs{ID: krpc.ID{'v'}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.WriteTo(b, to); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 1<<16)
	for {
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			return false
		}
		var m krpc.Msg
		if bencode.Unmarshal(buf[:n], &m) == nil && m.T == tid && m.Y == "r" {
			return true
		}
	}
}

// TestProcessesDHTNodeFloodedByOneSource: a dht-node process with its
// default flags answers a source asking at a client's pace while another
// source pings it at about 1000 per second, and says once that it drops
// the flooder's queries.
func TestProcessesDHTNodeFloodedByOneSource(t *testing.T) {
	// Not parallel: the flood loads the machine, and other tests'
	// lookups on loopback should not have to run through it.
	p, addr := startDHTNode(t, "none")
	to, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	flooder := newKRPCPeer(t, "127.0.0.2").conn
	victim := newKRPCPeer(t, "127.0.0.3").conn
	ping, err := bencode.Marshal(krpc.Msg{T: "ff", Y: "q", Q: "ping", A: &krpc.MsgArgs{ID: krpc.ID{'f'}}})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	flooding := make(chan int)
	go func() {
		sent := 0
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			for range 10 {
				flooder.WriteTo(ping, to)
				sent++
			}
			select {
			case <-stop:
				flooding <- sent
				return
			case <-tick.C:
			}
		}
	}()
	time.Sleep(200 * time.Millisecond) // the flood spends its burst first
	const pings = 60
	answered := 0
	for i := range pings {
		if pingOnce(t, victim, to, "v"+strconv.Itoa(i), 2*time.Second) {
			answered++
		}
		time.Sleep(50 * time.Millisecond) // within the default 20 a second
	}
	close(stop)
	sent := <-flooding
	t.Logf("victim: %d of %d answered while the flooder sent %d", answered, pings, sent)
	if answered < pings*95/100 {
		t.Errorf("the victim got %d of %d answers", answered, pings)
	}
	p.WaitLine(proctest.Stderr, regexp.MustCompile(`dropping queries from sources over their answer budget.*source=127\.0\.0\.2/32`), 10*time.Second)
}
