package main

import (
	"context"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anacrolix/dht/v2/krpc"
	"github.com/anacrolix/torrent/bencode"

	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/pkarrclient/mainline"
	"github.com/phrasemeet/discovery/pkarrclient/mainline/mainlinetest"
	"github.com/phrasemeet/discovery/pkarrrelay"
)

// In-process tests of the DHT flags and commands. Every command runs
// through runCLI's loopback guard; the networks come from mainlinetest, whose
// own guard covers the nodes.

// sentLog records where a socket sent datagrams.
type sentLog struct {
	mu    sync.Mutex
	addrs []string
}

func (l *sentLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.addrs)
}

type recordingConn struct {
	net.PacketConn
	log *sentLog
}

func (c *recordingConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	c.log.mu.Lock()
	c.log.addrs = append(c.log.addrs, addr.String())
	c.log.mu.Unlock()
	return c.PacketConn.WriteTo(b, addr)
}

const someKey = "yg4gxe7z1r7mr6orids9fh95y7gxhdsxjqi6nngsxxtakqaxr5no"

func TestDHTUsageErrors(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	if code, _, stderr := runCLI(t, nil, "keygen", "--out", keyFile); code != 0 {
		t.Fatal(stderr)
	}
	for _, tc := range []struct {
		vars map[string]string
		args []string
		code int
		want string
	}{
		{nil, []string{"publish", "--secret-file", keyFile, "--txt", "a=b", "--bootstrap", "127.0.0.1:5"}, 2, "--bootstrap needs --dht"},
		{nil, []string{"resolve", "--dht-listen", "127.0.0.1:0", someKey}, 2, "--dht-listen needs --dht"},
		{nil, []string{"relay", "--dht-nodes-file", filepath.Join(dir, "n")}, 2, "--dht-nodes-file needs --dht"},
		{nil, []string{"resolve", "--relay", "none", someKey}, 2, "nothing to talk to"},
		{map[string]string{"PHRASEMEET_RELAYS": "none"}, []string{"publish", "--secret-file", keyFile, "--txt", "a=b"}, 2, "nothing to talk to"},
		{nil, []string{"resolve", "--relay", "none,http://127.0.0.1:1", someKey}, 2, `--relay: "none" cannot be combined`},
		{nil, []string{"resolve", "--dht", "--bootstrap", "none", "--bootstrap", "127.0.0.1:5", someKey}, 2, `"none" cannot be combined`},
		{nil, []string{"resolve", "--dht", "--bootstrap", "127.0.0.1", someKey}, 2, `--bootstrap "127.0.0.1": want HOST:PORT`},
		{nil, []string{"resolve", "--dht", "--bootstrap", ":6881", someKey}, 2, "want HOST:PORT"},
		{nil, []string{"resolve", "--dht", "--bootstrap", "127.0.0.1:0", someKey}, 2, "port must be a number"},
		{nil, []string{"resolve", "--dht", "--bootstrap", "127.0.0.1:http", someKey}, 2, "port must be a number"},
		{map[string]string{bootstrapEnv: "nonsense"}, []string{"resolve", "--dht", someKey}, 2, `PHRASEMEET_BOOTSTRAP "nonsense"`},
		{nil, []string{"resolve", "--dht", "--dht-listen", "127.0.0.1:-1", someKey}, 1, "DHT: listen udp"},
		{nil, []string{"relay", "--dht", "--dht-listen", "127.0.0.1:-1"}, 1, "DHT: listen udp"},
		{nil, []string{"relay", "--dht", "--bootstrap", "x"}, 2, "want HOST:PORT"},
		{nil, []string{"dht-node", "--capacity", "0"}, 2, "--capacity must be at least 1"},
		{nil, []string{"dht-node", "--refresh-interval", "-1s"}, 2, "--refresh-interval"},
		{nil, []string{"dht-node", "--source-limit", "-1"}, 2, "--source-limit must be"},
		{nil, []string{"dht-node", "--source-limit", "NaN"}, 2, "--source-limit must be"},
		{nil, []string{"dht-node", "--source-limit", "1e300"}, 2, "--source-limit must be"},
		{nil, []string{"dht-node", "extra"}, 2, `unexpected argument "extra"`},
		{nil, []string{"dht-node", "--dht"}, 2, "unknown flag --dht"},
		{nil, []string{"dht-node", "--log-level", "loud"}, 2, "--log-level"},
		{nil, []string{"dht-node", "--bootstrap", "none,127.0.0.1:5"}, 2, `"none" cannot be combined`},
		{nil, []string{"dht-node", "--listen", "127.0.0.1:-5"}, 1, "DHT: listen udp"},
	} {
		code, stdout, stderr := runCLI(t, tc.vars, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("phrasemeet %q: exit %d, stderr %q; want exit %d and %q", tc.args, code, stderr, tc.code, tc.want)
		}
		if strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("phrasemeet %q: error is not one line: %q", tc.args, stderr)
		}
		if stdout != "" {
			t.Errorf("phrasemeet %q: printed %q on stdout", tc.args, stdout)
		}
	}
}

func TestBootstrapAddrs(t *testing.T) {
	env := func(v string) env { return env{getenv: func(string) string { return v }} }
	public := mainline.DefaultBootstrap()
	for _, tc := range []struct {
		flags []string
		env   string
		want  []string
	}{
		{[]string{"127.0.0.1:1"}, "127.0.0.2:2", []string{"127.0.0.1:1"}},
		{nil, " 127.0.0.2:2 , [::1]:3 ", []string{"127.0.0.2:2", "[::1]:3"}},
		{nil, "", public},
		{nil, "none", nil},
		{[]string{"none"}, "127.0.0.2:2", nil},
		{[]string{"public", "127.0.0.1:1"}, "", append(slices.Clone(public), "127.0.0.1:1")},
		{[]string{"router.example:6881"}, "", []string{"router.example:6881"}},
	} {
		got, err := bootstrapAddrs(tc.flags, env(tc.env))
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("bootstrapAddrs(%q, env %q) = %q, %v; want %q", tc.flags, tc.env, got, err, tc.want)
		}
	}
	got, err := relayURLs([]string{"none"}, env("http://b"))
	if err != nil || len(got) != 0 {
		t.Errorf(`relayURLs("none") = %q, %v; want none`, got, err)
	}
}

func TestHelpDescribesDHT(t *testing.T) {
	_, stdout, _ := runCLI(t, nil, "help")
	for _, want := range []string{"dht-node", "--dht adds the Mainline DHT", `"none" means no relay`, "$PHRASEMEET_BOOTSTRAP", "resolve --dht --relay none KEY"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("help lacks %q:\n%s", want, stdout)
		}
	}
	for cmd, wants := range map[string][]string{
		"publish":  {"--dht", "--bootstrap", "--dht-listen", "--dht-nodes-file", `"none": no relay, the DHT alone`},
		"resolve":  {"--dht", "--bootstrap", "--most-recent", "--relay none: the DHT alone"},
		"relay":    {"--dht", "--bootstrap", "passive DHT client"},
		"dht-node": {"--listen", "--bootstrap", "--nodes-file", "--capacity", "--refresh-interval", `"none" for no node at all`},
	} {
		code, stdout, _ := runCLI(t, nil, cmd, "-h")
		if code != 0 {
			t.Errorf("%s -h: exit %d", cmd, code)
		}
		for _, want := range wants {
			if !strings.Contains(stdout, want) {
				t.Errorf("%s -h lacks %q:\n%s", cmd, want, stdout)
			}
		}
	}
}

// TestForgottenBootstrapStaysOnLoopback: with no --bootstrap the DHT
// commands ask PHRASEMEET_BOOTSTRAP, here the dead loopback port, and
// nothing else: no datagram leaves loopback and no name is looked up
// (runCLI's guard), and the dead port is what was asked.
func TestForgottenBootstrapStaysOnLoopback(t *testing.T) {
	t.Parallel()
	keyFile := filepath.Join(t.TempDir(), "key")
	if code, _, stderr := runCLI(t, nil, "keygen", "--out", keyFile); code != 0 {
		t.Fatal(stderr)
	}
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"resolve", "--dht", "--relay", "none", someKey}, exitNoAnswer},
		{[]string{"publish", "--dht", "--relay", "none", "--secret-file", keyFile, "--txt", "a=b"}, 1},
	} {
		args := tc.args
		var sent sentLog
		e, _, stderr := testEnv(t, nil, &sent)
		code := run(context.Background(), e, args)
		if code != tc.code || !strings.Contains(stderr.String(), "no DHT node") && !strings.Contains(stderr.String(), "found no node") {
			t.Errorf("%q with a dead bootstrap: exit %d %q", args, code, stderr)
		}
		got := sent.list()
		if len(got) == 0 {
			t.Errorf("%q sent nothing; want a query to %s", args, deadBootstrap)
		}
		for _, a := range got {
			if a != deadBootstrap {
				t.Errorf("%q sent a datagram to %s; want only %s", args, a, deadBootstrap)
			}
		}
	}
}

// newDHTNetwork starts n in-process DHT nodes and returns them with the
// --bootstrap value that names them all.
func newDHTNetwork(t *testing.T, n int) (*mainlinetest.Network, string) {
	t.Helper()
	nw := mainlinetest.New(t, n)
	return nw, strings.Join(nw.Addrs(), ",")
}

func keyFileFor(t *testing.T) (string, pkarrclient.PublicKey) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "key")
	code, stdout, stderr := runCLI(t, nil, "keygen", "--out", path)
	if code != 0 {
		t.Fatal(stderr)
	}
	pk, err := pkarrclient.ParsePublicKey(strings.TrimSpace(stdout))
	if err != nil {
		t.Fatal(err)
	}
	return path, pk
}

var storedOn = regexp.MustCompile(`stored on (\d+) DHT nodes?`)

func storedCount(t *testing.T, s string) int {
	t.Helper()
	m := storedOn.FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no DHT node count in %q", s)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func TestDHTPublishResolveInProcess(t *testing.T) {
	t.Parallel()
	_, boot := newDHTNetwork(t, 5)
	keyFile, key := keyFileFor(t)
	nodesFile := filepath.Join(t.TempDir(), "nodes")

	code, stdout, stderr := runCLI(t, nil, "publish", "--dht", "--relay", "none", "--bootstrap", boot,
		"--dht-nodes-file", nodesFile, "--secret-file", keyFile, "--txt", "_hello=dht")
	if code != 0 || !strings.Contains(stdout, "to the DHT: stored on ") || !strings.Contains(stderr, "mainline-dht  ok, stored on ") {
		t.Fatalf("publish: exit %d\n%s%s", code, stdout, stderr)
	}
	if n := storedCount(t, stdout); n < 3 {
		t.Errorf("stored on %d of 5 nodes", n)
	}
	if st, err := os.Stat(nodesFile); err != nil || st.Size() == 0 {
		t.Errorf("--dht-nodes-file not written: %v", err)
	}

	for _, extra := range [][]string{nil, {"--most-recent"}} {
		args := append([]string{"resolve", "--dht", "--relay", "none", "--bootstrap", boot, key.String()}, extra...)
		code, stdout, stderr = runCLI(t, nil, args...)
		if code != 0 || !strings.Contains(stdout, "_hello."+key.String()+".\t300\tIN\tTXT\t\"dht\"") {
			t.Fatalf("%q: exit %d\n%s%s", args, code, stdout, stderr)
		}
	}

	// From the snapshot alone: "none" and the file still find the network.
	code, stdout, stderr = runCLI(t, nil, "resolve", "--dht", "--relay", "none", "--bootstrap", "none",
		"--dht-nodes-file", nodesFile, key.String())
	if code != 0 || !strings.Contains(stdout, "\"dht\"") {
		t.Fatalf("resolve from the snapshot: exit %d\n%s%s", code, stdout, stderr)
	}

	other, _ := pkarrclient.GenerateSecretKey(nil)
	code, _, stderr = runCLI(t, nil, "resolve", "--dht", "--relay", "none", "--bootstrap", boot, other.PublicKey().String())
	if code != exitNotFound || !strings.Contains(stderr, "not found") {
		t.Errorf("resolve of an unknown key: exit %d %q", code, stderr)
	}
}

// TestDHTAlongsideRelays: --dht adds the DHT to the relays; each reports
// on its own line and the summary names both.
func TestDHTAlongsideRelays(t *testing.T) {
	t.Parallel()
	nw, boot := newDHTNetwork(t, 4)
	h, err := pkarrrelay.NewHandler(pkarrrelay.NewMemoryStore(10))
	if err != nil {
		t.Fatal(err)
	}
	relay := httptest.NewServer(h)
	defer relay.Close()
	keyFile, key := keyFileFor(t)

	code, stdout, stderr := runCLI(t, nil, "publish", "--dht", "--relay", relay.URL, "--bootstrap", boot,
		"--secret-file", keyFile, "--txt", "_both=yes")
	if code != 0 || !strings.Contains(stdout, "to 1 of 1 relays and the DHT: stored on ") ||
		!strings.Contains(stderr, relay.URL+"  ok (") || !strings.Contains(stderr, "mainline-dht  ok, stored on ") {
		t.Fatalf("publish: exit %d\n%s%s", code, stdout, stderr)
	}
	// Each holds it on its own.
	code, stdout, stderr = runCLI(t, nil, "resolve", "--relay", relay.URL, key.String())
	if code != 0 || !strings.Contains(stdout, `"yes"`) {
		t.Fatalf("resolve from the relay: exit %d %s%s", code, stdout, stderr)
	}
	p, err := nw.NewClient().Resolve(context.Background(), pkarrclient.Query{Key: key})
	if err != nil || p.TXT("_both")[0] != "yes" {
		t.Fatalf("resolve from the DHT: %v", err)
	}

	// A dead relay does not fail a publish the DHT took, and says so.
	code, stdout, stderr = runCLI(t, nil, "publish", "--dht", "--bootstrap", boot,
		"--secret-file", keyFile, "--txt", "_both=again")
	if code != 0 || !strings.Contains(stdout, "to 0 of 1 relays and the DHT: stored on ") ||
		!strings.Contains(stderr, deadRelay+"  failed: ") {
		t.Fatalf("publish with a dead relay: exit %d\n%s%s", code, stdout, stderr)
	}
}

// TestDHTPublishStale: a node holding a more recent packet makes publish
// fail with a line that says "stale", first thing.
func TestDHTPublishStale(t *testing.T) {
	t.Parallel()
	nw, boot := newDHTNetwork(t, 4)
	keyFile, _ := keyFileFor(t)
	sk, err := pkarrclient.LoadSecretKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ahead := pkarrclient.TimestampFromTime(time.Now().Add(time.Minute))
	future, err := pkarrclient.NewBuilder().Timestamp(ahead).TXT("_v", 300, "future").Sign(sk)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nw.NewClient().Publish(context.Background(), future); err != nil {
		t.Fatal(err)
	}

	code, stdout, stderr := runCLI(t, nil, "publish", "--dht", "--relay", "none", "--bootstrap", boot,
		"--secret-file", keyFile, "--txt", "_v=now")
	if code != 1 || stdout != "" {
		t.Fatalf("publish under a newer packet: exit %d\n%s%s", code, stdout, stderr)
	}
	lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "  mainline-dht  failed: stale, a more recent packet is stored: ") ||
		!strings.HasPrefix(lines[1], "phrasemeet publish: stale: a more recent packet for this key is already published") {
		t.Fatalf("want one outcome line and one error line, both saying stale:\n%s", stderr)
	}
}

// TestDHTPublishLargest: a DNS message of pkarr's largest size, 1000 bytes,
// is stored by our nodes (stock anacrolix nodes count the bencoding and
// refuse 997-1000 bytes with 205).
func TestDHTPublishLargest(t *testing.T) {
	t.Parallel()
	_, boot := newDHTNetwork(t, 4)
	keyFile, key := keyFileFor(t)
	value := valueForDNSSize(t, keyFile, pkarrclient.MaxDNSSize)
	code, stdout, stderr := runCLI(t, nil, "publish", "--dht", "--relay", "none", "--bootstrap", boot,
		"--secret-file", keyFile, "--txt", "_big="+value)
	if code != 0 || storedCount(t, stdout) < 1 {
		t.Fatalf("publish of a 1000-byte DNS message: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr = runCLI(t, nil, "resolve", "--dht", "--relay", "none", "--bootstrap", boot, key.String())
	_, txt, _ := strings.Cut(stdout, "\tTXT\t")
	if code != 0 || strings.Count(txt, "x") != len(value) { // printed in 255-byte strings
		t.Fatalf("resolve of the 1000-byte DNS message: exit %d\n%s%s", code, stdout, stderr)
	}
}

// valueForDNSSize finds a TXT value for _big that makes the DNS message,
// signed with the key in keyFile, exactly n bytes.
func valueForDNSSize(t *testing.T, keyFile string, n int) string {
	t.Helper()
	sk, err := pkarrclient.LoadSecretKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	for l := n - 120; l < n; l++ {
		v := strings.Repeat("x", l)
		p, err := pkarrclient.NewBuilder().TXT("_big", 300, v).Sign(sk)
		if err == nil && len(p.DNS()) == n {
			return v
		}
	}
	t.Fatalf("found no TXT value giving a %d-byte DNS message", n)
	return ""
}

// TestDHTPublishTooLarge: a node that refuses the value's size (205, as
// stock anacrolix nodes do from 997 bytes) makes publish fail with a line
// that says "too large" and how big the message was. The node is a raw
// socket that hands out a write token and answers every put with 205.
func TestDHTPublishTooLarge(t *testing.T) {
	t.Parallel()
	node := startRefusingNode(t)
	keyFile, _ := keyFileFor(t)
	value := valueForDNSSize(t, keyFile, 998)
	code, stdout, stderr := runCLI(t, nil, "publish", "--dht", "--relay", "none", "--bootstrap", node,
		"--secret-file", keyFile, "--txt", "_big="+value)
	if code != 1 || stdout != "" {
		t.Fatalf("publish refused as too large: exit %d\n%s%s", code, stdout, stderr)
	}
	lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "  mainline-dht  failed: too large, nodes refused the 998-byte DNS message") ||
		!strings.HasPrefix(lines[1], "phrasemeet publish: too large: DHT nodes refused the 998-byte DNS message") {
		t.Fatalf("want one outcome line and one error line, both saying too large:\n%s", stderr)
	}
}

// startRefusingNode runs a one-socket DHT node on 127.0.0.1 that answers
// get with a write token and no other nodes, put with error 205, and any
// other query with its id. It stops when the test ends.
func startRefusingNode(t *testing.T) string {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	id := krpc.ID{0x20, 0x5}
	go func() {
		defer close(done)
		buf := make([]byte, 1<<16)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			var m krpc.Msg
			if bencode.Unmarshal(buf[:n], &m) != nil || m.Y != "q" {
				continue
			}
			out := krpc.Msg{T: m.T, Y: "r", R: &krpc.Return{ID: id}}
			switch m.Q {
			case "get":
				token := "refusing-token"
				out.R.Token = &token
			case "put":
				out = krpc.Msg{T: m.T, Y: "e", E: &krpc.Error{Code: krpc.ErrorCodeMessageValueFieldTooBig, Msg: "v too big"}}
			}
			b, err := bencode.Marshal(out)
			if err == nil {
				conn.WriteTo(b, from)
			}
		}
	}()
	return conn.LocalAddr().String()
}
