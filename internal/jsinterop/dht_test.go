package jsinterop

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/pkarrclient/mainline"
	"github.com/phrasemeet/discovery/pkarrclient/mainline/mainlinetest"
	"github.com/phrasemeet/discovery/pkarrrelay"
)

// jsNode is a DHT node the JS side started.
type jsNode struct {
	Addr string `json:"addr"`
	ID   string `json:"id"`
}

// startJSNode starts a bittorrent-dht node ("bittorrent": a full node that
// stores signed items) or pkarr 1.3.0's DHT wrapper ("pkarr") on
// 127.0.0.1, bootstrapped from the given addresses only.
func startJSNode(t testing.TB, js *driver, name, kind string, bootstrap []string) jsNode {
	t.Helper()
	var n jsNode
	js.must(t, "startDHT", map[string]any{"name": name, "kind": kind, "bootstrap": bootstrap}, &n)
	return n
}

// putResult is one node's answer to a probePut.
type putResult struct {
	OK    bool   `json:"ok"`
	Code  int    `json:"code"`
	Error string `json:"error"`
}

func (r putResult) String() string {
	if r.OK {
		return "stored"
	}
	return "refused: " + r.Error // k-rpc's message starts with the KRPC error code
}

type probePutResult struct {
	Size    int                  `json:"size"`
	Results map[string]putResult `json:"results"`
	Packet  *jsPacket            `json:"packet"`
}

type stored struct {
	Seq   string `json:"seq"`
	Size  int    `json:"size"`
	Valid bool   `json:"valid"`
	Error string `json:"error"`
}

// probeGet asks each node directly what it stores for key.
func probeGet(t testing.TB, js *driver, from string, key pkarrclient.PublicKey, nodes []string) map[string]*stored {
	t.Helper()
	var out map[string]*stored
	js.must(t, "probeGet", signArgs{Name: from, PublicKey: key.String(), Nodes: nodes}, &out)
	return out
}

// mixedNet is our DHT nodes (mainline.DHT serving, through mainlinetest) and
// a bittorrent-dht full node, "control", bootstrapped from ours: the
// reference for what BEP44 storage answers to the same messages.
type mixedNet struct {
	nw      *mainlinetest.Network
	js      *driver
	control jsNode
}

func newMixedNet(t testing.TB, ours int) *mixedNet {
	t.Helper()
	js := startDriver(t)
	nw := mainlinetest.New(t, ours)
	m := &mixedNet{nw: nw, js: js, control: startJSNode(t, js, "control", "bittorrent", nw.Addrs())}
	// The control queried our nodes while bootstrapping; a bootstrap round
	// of theirs asks it in turn, which makes it a node they hand out.
	for i := range ours {
		if _, err := nw.Node(i).Bootstrap(opContext(t)); err != nil {
			t.Fatalf("our node %d bootstrapping again: %v", i, err)
		}
	}
	return m
}

// all is our nodes' addresses and the control's.
func (m *mixedNet) all() []string { return append(m.nw.Addrs(), m.control.Addr) }

// client is one of our DHT clients that bootstraps from every node, the
// control included. Through our nodes alone it met the control only when
// their tables held it: an anacrolix node hands out only contacts that
// answered it, and a client that never heard of the control never put to
// it (TestDHTPlainPutAfterCas failed 6 runs in 40 that way).
func (m *mixedNet) client() *mainline.DHT {
	return m.nw.NewClient(mainline.WithBootstrap(m.all()...))
}

// put has the JS node "from" put an item on every node of m, checks that
// the control stored it (else the test itself is wrong), and reports which
// of our nodes refused it, one line each.
func (m *mixedNet) put(t testing.TB, from string, args signArgs) (refusals []string, res probePutResult) {
	t.Helper()
	args.Name, args.Nodes = from, m.all()
	m.js.must(t, "probePut", args, &res)
	if r := res.Results[m.control.Addr]; !r.OK {
		t.Fatalf("bittorrent-dht's own node (the control) %s a put of seq %s cas %s: the test is wrong", r, args.Seq, casText(args.Cas))
	}
	for _, a := range m.nw.Addrs() {
		if r := res.Results[a]; !r.OK {
			refusals = append(refusals, fmt.Sprintf("our node %s %s", a, r))
		}
	}
	return refusals, res
}

func casText(c *int64) string {
	if c == nil {
		return "none"
	}
	return fmt.Sprint(*c)
}

// TestDHTBootstrapBothWays: a bittorrent-dht node bootstraps off our nodes
// and lists them in its routing table; a new node of ours bootstraps off
// the bittorrent-dht node alone and learns our other nodes through it.
func TestDHTBootstrapBothWays(t *testing.T) {
	js := startDriver(t)
	nw := mainlinetest.New(t, 3)
	j := startJSNode(t, js, "j", "bittorrent", nw.Addrs())

	var table []string
	js.must(t, "nodes", map[string]string{"name": "j"}, &table)
	for _, a := range nw.Addrs() {
		if !slices.Contains(table, a) {
			t.Errorf("bittorrent-dht's routing table %v lacks our node %s", table, a)
		}
	}

	conn, err := nw.Guard().Listen()
	if err != nil {
		t.Fatal(err)
	}
	d, err := mainline.New(
		mainline.WithConn(conn),
		mainline.WithServing(0),
		mainline.WithBootstrap(j.Addr),
		mainline.WithResolver(nw.Guard()),
		mainline.WithResendDelay(mainlinetest.DefaultResendDelay),
		mainline.WithSendBudget(0, 0),
		mainline.WithRefreshInterval(0),
	)
	if err != nil {
		conn.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if n, err := d.Bootstrap(opContext(t)); err != nil || n == 0 {
		t.Fatalf("our node bootstrapping off bittorrent-dht: %d answered, %v", n, err)
	}
	if size := d.RoutingTableSize(); size < 2 {
		t.Errorf("our node bootstrapped off bittorrent-dht knows %d nodes; want it and ours it learned from it", size)
	}
	js.must(t, "nodes", map[string]string{"name": "j"}, &table)
	if mine := d.Addr().String(); !slices.Contains(table, mine) {
		t.Errorf("bittorrent-dht's routing table %v lacks our new node %s", table, mine)
	}
}

// TestDHTJSPublishesOursResolves: JS publishes a pkarr packet as a BEP44
// mutable item (k = key, seq = µs timestamp, v = DNS bytes, sig over the
// BEP44 buffer); each of our nodes stores it (asked directly), and our DHT
// client resolves it as a valid SignedPacket with the JS side's bytes.
//   - "pkarr": pkarr 1.3.0's own DHT publish (lib/dht.js put of
//     SignedPacket.bep44Args(), what Pkarr.publish does);
//   - "bittorrent-dht": bittorrent-dht's public put() with a signature.
func TestDHTJSPublishesOursResolves(t *testing.T) {
	js := startDriver(t)
	nw := mainlinetest.New(t, 3)
	startJSNode(t, js, "p", "pkarr", nw.Addrs())
	startJSNode(t, js, "b", "bittorrent", nw.Addrs())
	client := nw.NewClient()

	check := func(t *testing.T, want jsPacket) {
		t.Helper()
		key, err := pkarrclient.ParsePublicKey(want.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		held := probeGet(t, js, "b", key, nw.Addrs())
		for _, a := range nw.Addrs() {
			if h := held[a]; h == nil || h.Seq != want.Timestamp || !h.Valid {
				t.Errorf("our node %s holds %+v; want seq %s, valid", a, h, want.Timestamp)
			}
		}
		got, err := client.Resolve(opContext(t), pkarrclient.Query{Key: key})
		if err != nil {
			t.Fatalf("our DHT client resolving what JS published: %v", err)
		}
		checkJSPacket(t, got, want)
	}

	t.Run("pkarr", func(t *testing.T) {
		var res struct {
			Packet jsPacket `json:"packet"`
			Nodes  []string `json:"nodes"`
		}
		js.must(t, "pkarrPublish", signArgs{Name: "p", Seed: seed(t, "js"), Timestamp: ts(pkarrclient.Now()), Records: jsRecords()}, &res)
		check(t, res.Packet)
	})

	t.Run("bittorrent-dht", func(t *testing.T) {
		var res struct {
			N      int       `json:"n"`
			Error  string    `json:"error"`
			Packet *jsPacket `json:"packet"`
		}
		js.must(t, "btPut", signArgs{Name: "b", Seed: seed(t, "js"), Seq: ts(pkarrclient.Now()), Records: jsRecords()}, &res)
		if res.Error != "" || res.Packet == nil {
			t.Fatalf("bittorrent-dht put: %q (packet %v)", res.Error, res.Packet)
		}
		t.Logf("bittorrent-dht's put was acknowledged by %d nodes", res.N)
		check(t, *res.Packet)
	})
}

// TestDHTOursPublishesJSResolves: our DHT client publishes; bittorrent-dht's
// full node accepted and stored it (our put message, token and signature
// pass its checks); pkarr 1.3.0's DHT resolve (full lookup) finds it, served
// by our nodes among others, and bittorrent-dht's public get() from a fresh
// node returns the same bytes.
func TestDHTOursPublishesJSResolves(t *testing.T) {
	m := newMixedNet(t, 3)
	js := m.js
	startJSNode(t, js, "p", "pkarr", m.nw.Addrs())
	startJSNode(t, js, "r", "bittorrent", m.nw.Addrs())
	client := m.client()

	sk := secretKey(t, seed(t, "go"))
	p := goPacket(t, sk, pkarrclient.Now())
	// What is tested is that bittorrent-dht's node (the control) takes our
	// put. On a loaded machine a publish can miss a node whose token
	// request timed out (seen in CI: stored by 3 nodes, the control not
	// among them); a client publishes again, and so does this test, at
	// most three times.
	var held map[string]*stored
	for attempt := 1; ; attempt++ {
		receipt, err := client.Publish(opContext(t), p)
		if err != nil {
			t.Fatalf("our DHT client publishing: %v", err)
		}
		t.Logf("our publish %d was stored by %d nodes", attempt, receipt.DHTNodes)
		held = probeGet(t, js, "r", sk.PublicKey(), m.all())
		if h := held[m.control.Addr]; (h != nil && h.Valid) || attempt == 3 {
			break
		}
	}
	if h := held[m.control.Addr]; h == nil || h.Seq != ts(p.Timestamp()) || !h.Valid {
		t.Errorf("bittorrent-dht's node %s holds %+v after our publish; want seq %s, valid", m.control.Addr, h, ts(p.Timestamp()))
	}
	ours := 0
	for _, a := range m.nw.Addrs() {
		switch h := held[a]; {
		case h == nil:
		case h.Seq != ts(p.Timestamp()) || !h.Valid:
			t.Errorf("our node %s holds %+v after our publish; want seq %s, valid", a, h, ts(p.Timestamp()))
		default:
			ours++
		}
	}
	if ours == 0 {
		t.Errorf("none of our nodes holds our publish")
	}

	var res struct {
		Packet jsPacket `json:"packet"`
		Nodes  []string `json:"nodes"`
	}
	js.must(t, "pkarrResolve", map[string]any{"name": "p", "publicKey": sk.PublicKey().String(), "fullLookup": true}, &res)
	checkGoPacket(t, res.Packet, p)
	served := false
	for _, a := range m.nw.Addrs() {
		served = served || slices.Contains(res.Nodes, a)
	}
	if !served {
		t.Errorf("pkarr JS got the packet from %v, none of them ours (%v)", res.Nodes, m.nw.Addrs())
	}

	var got *jsPacket
	js.must(t, "btGet", map[string]string{"name": "r", "publicKey": sk.PublicKey().String()}, &got)
	if got == nil {
		t.Fatal("bittorrent-dht's get found nothing")
	}
	checkGoPacket(t, *got, p)
}

// TestDHTCasChain: bittorrent-dht writes seq1, then seq2 with cas = seq1,
// then seq3 with cas = seq2, to each of our nodes and to bittorrent-dht's own
// node. BEP44: cas is compared with the seq the node stores, so every step
// is stored. Then a wrong cas (not the stored seq) must be refused with 301.
func TestDHTCasChain(t *testing.T) {
	m := newMixedNet(t, 3)
	startJSNode(t, m.js, "w", "bittorrent", m.nw.Addrs())
	s := seed(t, "cas")
	base := pkarrclient.Now()
	seqs := []pkarrclient.Timestamp{base, base + 1, base + 2}
	var failures []string
	for i, seq := range seqs {
		args := signArgs{Seed: s, Seq: ts(seq), Records: []record{{Name: "_step", Type: "TXT", TTL: 300, Data: fmt.Sprint(i + 1)}}}
		if i > 0 {
			c := int64(seqs[i-1])
			args.Cas = &c
		}
		refused, _ := m.put(t, "w", args)
		for _, r := range refused {
			failures = append(failures, fmt.Sprintf("step %d (seq %s, cas %s): %s", i+1, args.Seq, casText(args.Cas), r))
		}
	}
	if len(failures) > 0 {
		t.Errorf("a correct cas chain (bittorrent-dht's own node stored every step):\n%s", strings.Join(failures, "\n"))
	}

	// A cas that is not the stored seq: BEP44 says 301, and the control
	// says so too.
	wrong := int64(seqs[0]) // the node stores seqs[2] (or, if it refused, seqs[1])
	args := signArgs{Name: "w", Seed: s, Seq: ts(base + 3), Cas: &wrong, Nodes: m.all(),
		Records: []record{{Name: "_step", Type: "TXT", TTL: 300, Data: "wrong cas"}}}
	var res probePutResult
	m.js.must(t, "probePut", args, &res)
	if r := res.Results[m.control.Addr]; r.OK || r.Code != 301 {
		t.Fatalf("bittorrent-dht's own node answered a stale cas with %s, want 301: the test is wrong", r)
	}
	for _, a := range m.nw.Addrs() {
		if r := res.Results[a]; r.OK || r.Code != 301 {
			t.Errorf("our node %s answered a put whose cas (%d) is not the stored seq with %s; BEP44 wants 301", a, wrong, r)
		}
	}
}

// TestDHTPlainPutAfterCas: after a write with cas, writes without cas go on
// being accepted (cas is optional per put), from bittorrent-dht and from our
// own client: seq1, seq2 with cas = seq1, then seq3 without cas from
// bittorrent-dht; then seq4 published by our DHT client. Each node must end
// up holding seq4.
func TestDHTPlainPutAfterCas(t *testing.T) {
	m := newMixedNet(t, 3)
	startJSNode(t, m.js, "w", "bittorrent", m.nw.Addrs())
	s := seed(t, "cas")
	base := pkarrclient.Now()
	first := int64(base)
	var failures []string
	for i, step := range []signArgs{
		{Seq: ts(base)},
		{Seq: ts(base + 1), Cas: &first},
		{Seq: ts(base + 2)},
	} {
		step.Seed = s
		step.Records = []record{{Name: "_step", Type: "TXT", TTL: 300, Data: fmt.Sprint(i + 1)}}
		refused, _ := m.put(t, "w", step)
		for _, r := range refused {
			failures = append(failures, fmt.Sprintf("bittorrent-dht step %d (seq %s, cas %s): %s", i+1, step.Seq, casText(step.Cas), r))
		}
	}

	sk := secretKey(t, s)
	p := goPacket(t, sk, base+3)
	if _, err := m.client().Publish(opContext(t), p); err != nil {
		failures = append(failures, fmt.Sprintf("our client publishing seq %s: %v", ts(p.Timestamp()), err))
	}
	held := probeGet(t, m.js, "w", sk.PublicKey(), m.all())
	for _, a := range m.all() {
		if h := held[a]; h == nil || h.Seq != ts(p.Timestamp()) {
			who := "our node"
			if a == m.control.Addr {
				who = "bittorrent-dht's node (control)"
			}
			failures = append(failures, fmt.Sprintf("%s %s holds %+v at the end; want seq %s (our client's publish)", who, a, h, ts(p.Timestamp())))
		}
	}
	if len(failures) > 0 {
		t.Errorf("plain puts after a cas put:\n%s", strings.Join(failures, "\n"))
	}
}

// TestDHT1000ByteValues: BEP44 limits v to 1000 bytes, and pkarr's DNS
// message to 1000 bytes; bittorrent-dht's node stores 1000 (its client
// refuses 1000 and up, so the driver sends the put itself). JS offers DNS
// messages of 996 to 1000 bytes to every node; then our client resolves the
// 1000-byte packet, and publishes a 1000-byte packet of its own that every
// node must store.
func TestDHT1000ByteValues(t *testing.T) {
	m := newMixedNet(t, 3)
	startJSNode(t, m.js, "w", "bittorrent", m.nw.Addrs())
	client := m.client()

	var failures []string
	var big probePutResult
	var bigKey pkarrclient.PublicKey
	for _, size := range []int{996, 997, 999, 1000} {
		s := seed(t, fmt.Sprint(size))
		refused, res := m.put(t, "w", signArgs{Seed: s, Seq: ts(pkarrclient.Now()), PadTo: size})
		if res.Size != size || res.Packet == nil {
			t.Fatalf("JS built a %d-byte value (packet %v), want a %d-byte pkarr packet", res.Size, res.Packet != nil, size)
		}
		for _, r := range refused {
			failures = append(failures, fmt.Sprintf("%d-byte v: %s", size, r))
		}
		big, bigKey = res, secretKey(t, s).PublicKey()
	}

	got, err := client.Resolve(opContext(t), pkarrclient.Query{Key: bigKey})
	switch {
	case err != nil:
		failures = append(failures, fmt.Sprintf("our client resolving the 1000-byte packet: %v", err))
	case hex.EncodeToString(got.DNS()) != big.Packet.DNS:
		failures = append(failures, "our client resolved other bytes for the 1000-byte packet")
	}

	sk := secretKey(t, seed(t, "go"))
	p := paddedGoPacket(t, sk, pkarrclient.Now(), 1000)
	rcpt, err := client.Publish(opContext(t), p)
	if err != nil {
		failures = append(failures, fmt.Sprintf("our client publishing a 1000-byte packet: %v", err))
	}
	// A publish stores on the closest nodes its lookup found; on a loaded
	// machine a lookup in a network this small may miss one, which says
	// nothing about sizes. What must hold: some node stored it, and every
	// node that holds something holds the whole packet.
	held := probeGet(t, m.js, "w", sk.PublicKey(), m.all())
	addrs := m.all()
	sort.Strings(addrs)
	holding := 0
	for _, a := range addrs {
		switch h := held[a]; {
		case h == nil:
			t.Logf("node %s holds nothing after our 1000-byte publish (not among the closest its lookup found)", a)
		case h.Size != 1000 || !h.Valid:
			failures = append(failures, fmt.Sprintf("node %s holds %+v after our 1000-byte publish", a, h))
		default:
			holding++
		}
	}
	if err == nil && (holding == 0 || rcpt.DHTNodes == 0) {
		failures = append(failures, fmt.Sprintf("%d of the probed nodes hold our 1000-byte packet, the receipt says %d stored it", holding, rcpt.DHTNodes))
	}
	if len(failures) > 0 {
		t.Errorf("1000-byte values:\n%s", strings.Join(failures, "\n"))
	}
}

// TestDHTRepublishToBittorrentDHT: the very packet published before is
// published again (what keeps an item alive on the DHT, hourly) where the
// closest nodes are bittorrent-dht nodes. They answer the put with 302,
// since they refuse any seq not above the stored one, identical items
// included (BEP44: a node SHOULD just reset the item's timeout). The nodes
// hold exactly this packet, and our lookup before the put sees them return
// it, so the republish has not lost to a more recent packet:
//   - our DHT client's second Publish must not fail (today it fails with
//     ErrNotMostRecent, "2 hold a more recent packet (302)");
//   - our relay with that DHT client upstream must not answer pkarr JS's
//     identical republish with 409.
func TestDHTRepublishToBittorrentDHT(t *testing.T) {
	js := startDriver(t)
	guard := mainlinetest.New(t, 1) // for its loopback guard and client options only
	j1 := startJSNode(t, js, "j1", "bittorrent", nil)
	j2 := startJSNode(t, js, "j2", "bittorrent", []string{j1.Addr})
	jsNodes := []string{j1.Addr, j2.Addr}

	t.Run("our client", func(t *testing.T) {
		client := guard.NewClient(mainline.WithBootstrap(jsNodes...))
		sk := secretKey(t, seed(t, "go"))
		p := goPacket(t, sk, pkarrclient.Now())
		if _, err := client.Publish(opContext(t), p); err != nil {
			t.Fatalf("first publish to bittorrent-dht nodes: %v", err)
		}
		for a, h := range probeGet(t, js, "j1", sk.PublicKey(), jsNodes) {
			if h == nil || h.Seq != ts(p.Timestamp()) {
				t.Fatalf("bittorrent-dht node %s holds %+v after our publish", a, h)
			}
		}
		receipt, err := client.Publish(opContext(t), p)
		if err != nil {
			t.Errorf("republishing the same packet, which both bittorrent-dht nodes hold: %v (errors.Is ErrNotMostRecent: %v; receipt %+v)",
				err, errors.Is(err, pkarrclient.ErrNotMostRecent), receipt)
		}
	})

	t.Run("our relay", func(t *testing.T) {
		url := startOurRelay(t, pkarrrelay.WithUpstream(guard.NewClient(mainline.WithBootstrap(jsNodes...))))
		args := signArgs{URL: url, Seed: seed(t, "js"), Timestamp: ts(pkarrclient.Now()), Records: jsRecords()}
		for i := range 2 {
			var put struct {
				Status int    `json:"status"`
				Body   string `json:"body"`
			}
			js.must(t, "relayPut", args, &put)
			if put.Status != http.StatusNoContent {
				t.Errorf("PUT %d of the same packet to our relay (DHT upstream: bittorrent-dht nodes): %d %q", i+1, put.Status, strings.TrimSpace(put.Body))
			}
		}
	})
}
