package jsinterop

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/phrasemeet/discovery/internal/proctest"
	"github.com/phrasemeet/discovery/pkarrclient"
)

// startTimeout bounds how long a command takes to print that it serves.
const startTimeout = 60 * time.Second

// command is exec.Command for the built binary, with an environment that
// names no relay, bootstrap node or passphrase of the machine's.
func command(t testing.TB, ctx context.Context, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(ctx, phrasemeet(t), args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PHRASEMEET_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "HOME="+t.TempDir())
	return cmd
}

var (
	dhtNodeLine = regexp.MustCompile(`^dht-node listening on (\S+)$`)
	relayLine   = regexp.MustCompile(`^relay serving (\S+) `)
)

// startDHTNode runs `phrasemeet dht-node` on 127.0.0.1 and returns its
// address; bootstrap "none" starts a network.
func startDHTNode(t testing.TB, name, bootstrap string) string {
	t.Helper()
	p := proctest.Start(t, name, command(t, context.Background(),
		"dht-node", "--listen", "127.0.0.1:0", "--bootstrap", bootstrap, "--log-level", "warn"))
	return p.WaitLine(proctest.Stdout, dhtNodeLine, startTimeout)[1]
}

// TestCommandsWithJS runs the commands as an operator would (two
// `phrasemeet dht-node`s and `phrasemeet relay --dht`), with bittorrent-dht
// and pkarr JS around them:
//   - pkarr JS publishes to the relay; pkarr JS's DHT resolve then finds the
//     packet the relay published to the DHT;
//   - bittorrent-dht puts a packet; `phrasemeet resolve --dht` prints it;
//   - the dht-node processes take a BEP44 cas chain and 1000-byte values
//     from bittorrent-dht (as TestDHTCasChain and TestDHT1000ByteValues
//     check our DHT package in-process).
func TestCommandsWithJS(t *testing.T) {
	js := startDriver(t)
	a := startDHTNode(t, "dht-node A", "none")
	b := startDHTNode(t, "dht-node B", a)
	control := startJSNode(t, js, "control", "bittorrent", []string{a, b})
	ours := []string{a, b}
	all := []string{a, b, control.Addr}

	relayProc := proctest.Start(t, "relay", command(t, context.Background(),
		"relay", "--listen", "127.0.0.1:0", "--write-rate", "0", "--read-rate", "0", "--log-level", "warn",
		"--dht", "--dht-listen", "127.0.0.1:0", "--bootstrap", strings.Join(all, ",")))
	relayURL := relayProc.WaitLine(proctest.Stdout, relayLine, startTimeout)[1]

	t.Run("JS to relay to DHT to JS", func(t *testing.T) {
		s := seed(t, "js")
		var put struct {
			Status int      `json:"status"`
			Body   string   `json:"body"`
			Packet jsPacket `json:"packet"`
		}
		js.must(t, "relayPut", signArgs{URL: relayURL, Seed: s, Timestamp: ts(pkarrclient.Now()), Records: jsRecords()}, &put)
		if put.Status != 204 {
			t.Fatalf("phrasemeet relay answered pkarr JS's PUT with %d %q", put.Status, put.Body)
		}
		startJSNode(t, js, "reader", "pkarr", []string{a})
		// The relay may publish to the DHT after it answers: look until
		// the packet is there, within a bound.
		var res *struct {
			Packet jsPacket `json:"packet"`
			Nodes  []string `json:"nodes"`
		}
		deadline := time.Now().Add(opTimeout)
		for res == nil && time.Now().Before(deadline) {
			js.must(t, "pkarrResolve", map[string]any{"name": "reader", "publicKey": put.Packet.PublicKey, "fullLookup": true}, &res)
			if res == nil {
				time.Sleep(500 * time.Millisecond)
			}
		}
		if res == nil {
			t.Fatalf("pkarr JS's DHT resolve did not find what phrasemeet relay --dht got within %v", opTimeout)
		}
		if res.Packet.Payload != put.Packet.Payload {
			t.Errorf("pkarr JS resolved another packet from the DHT:\n%+v\nwant\n%+v", res.Packet, put.Packet)
		}
		if !slices.ContainsFunc(res.Nodes, func(n string) bool { return slices.Contains(ours, n) }) {
			t.Errorf("pkarr JS got the packet from %v, neither dht-node (%v)", res.Nodes, ours)
		}
	})

	t.Run("JS to DHT to resolve command", func(t *testing.T) {
		s := seed(t, "js")
		var res struct {
			N      int       `json:"n"`
			Error  string    `json:"error"`
			Packet *jsPacket `json:"packet"`
		}
		js.must(t, "btPut", signArgs{Name: "control", Seed: s, Seq: ts(pkarrclient.Now()), Records: jsRecords()}, &res)
		if res.Error != "" || res.N == 0 {
			t.Fatalf("bittorrent-dht put: %d nodes, %q", res.N, res.Error)
		}
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		out, err := command(t, ctx, "resolve", "--relay", "none", "--dht", "--dht-listen", "127.0.0.1:0",
			"--bootstrap", a, secretKey(t, s).PublicKey().String()).CombinedOutput()
		if err != nil {
			t.Fatalf("phrasemeet resolve: %v\n%s", err, out)
		}
		for _, want := range []string{`"hello from pkarr js"`, "127.0.0.1", "target.example.", "; " + res.Packet.PublicKey} {
			if !strings.Contains(string(out), want) {
				t.Errorf("phrasemeet resolve printed no %s:\n%s", want, out)
			}
		}
	})

	t.Run("cas chain", func(t *testing.T) {
		startJSNode(t, js, "writer", "bittorrent", ours)
		s := seed(t, "cas")
		base := pkarrclient.Now()
		var failures []string
		for i, seq := range []pkarrclient.Timestamp{base, base + 1, base + 2} {
			args := signArgs{Name: "writer", Seed: s, Seq: ts(seq), Nodes: all,
				Records: []record{{Name: "_step", Type: "TXT", TTL: 300, Data: fmt.Sprint(i + 1)}}}
			if i > 0 {
				c := int64(seq - 1)
				args.Cas = &c
			}
			var res probePutResult
			js.must(t, "probePut", args, &res)
			if r := res.Results[control.Addr]; !r.OK {
				t.Fatalf("bittorrent-dht's own node %s step %d: the test is wrong", r, i+1)
			}
			for _, n := range ours {
				if r := res.Results[n]; !r.OK {
					failures = append(failures, fmt.Sprintf("step %d (seq %s, cas %s): dht-node %s %s", i+1, args.Seq, casText(args.Cas), n, r))
				}
			}
		}
		if len(failures) > 0 {
			t.Errorf("a correct cas chain against phrasemeet dht-node:\n%s", strings.Join(failures, "\n"))
		}
	})

	t.Run("1000-byte value", func(t *testing.T) {
		var res probePutResult
		js.must(t, "probePut", signArgs{Name: "control", Seed: seed(t, "big"), Seq: ts(pkarrclient.Now()), PadTo: 1000, Nodes: ours}, &res)
		if res.Size != 1000 {
			t.Fatalf("JS built a %d-byte value", res.Size)
		}
		for _, n := range ours {
			if r := res.Results[n]; !r.OK {
				t.Errorf("dht-node %s: a 1000-byte v %s", n, r)
			}
		}
	})
}
