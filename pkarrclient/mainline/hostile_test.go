package mainline_test

// Hostile input for the DHT backend. A stranger's node is a raw UDP socket
// here that answers KRPC queries with hand-crafted bencode; the DHT under
// test must neither crash nor return anything but a packet that verifies
// under the key it asked for.

import (
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anacrolix/dht/v2/krpc"
	"github.com/anacrolix/torrent/bencode"

	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/pkarrclient/mainline"
	"github.com/phrasemeet/discovery/pkarrclient/mainline/mainlinetest"
)

// crashDatagrams are queries without arguments. Each dereferences nil in an
// anacrolix v2.24.0 handler (get_peers is checked by the library itself);
// the first is the known 23-byte remote crash of a serving node.
var crashDatagrams = []string{
	"d1:q3:put1:t2:aa1:y1:qe",
	"d1:q3:get1:t2:aa1:y1:qe",
	"d1:q13:announce_peer1:t2:aa1:y1:qe",
	"d1:q9:find_node1:t2:aa1:y1:qe",
	"d1:q9:get_peers1:t2:aa1:y1:qe",
}

// bstr encodes s as a bencode string.
func bstr(s string) string { return strconv.Itoa(len(s)) + ":" + s }

// bint encodes n as a bencode integer.
func bint(n int64) string { return "i" + strconv.FormatInt(n, 10) + "e" }

// fields is the inside of a bencode dictionary: key to encoded value.
type fields map[string]string

// dict encodes f as a bencode dictionary, keys sorted.
func (f fields) dict() string {
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	s := "d"
	for _, k := range keys {
		s += bstr(k) + f[k]
	}
	return s + "e"
}

func (f fields) with(k, v string) fields {
	g := fields{}
	for key, val := range f {
		g[key] = val
	}
	g[k] = v
	return g
}

func (f fields) without(k string) fields {
	g := f.with(k, "")
	delete(g, k)
	return g
}

// reply is a KRPC response with transaction id tid and return values r.
func reply(tid string, r fields) []byte {
	return []byte(fields{"r": r.dict(), "t": bstr(tid), "y": bstr("r")}.dict())
}

// itemFields are the BEP44 values of a get reply carrying p.
func itemFields(p *pkarrclient.SignedPacket) fields {
	return fields{
		"k":   bstr(string(p.PublicKey().Bytes())),
		"seq": bint(int64(p.Timestamp())),
		"sig": bstr(string(p.Signature())),
		"v":   bstr(string(p.DNS())),
	}
}

// hostileNode answers KRPC queries on 127.0.0.1 from a raw socket: every
// query with a bare reply carrying its id (no nodes), get queries with
// whatever onGet returns (nil: no answer at all).
type hostileNode struct {
	conn  net.PacketConn
	id    [20]byte
	onGet func(tid string, base fields) []byte
	// onGetSeq, when set, answers gets instead of onGet, given the seq
	// the get carried (nil for none).
	onGetSeq func(tid string, seq *int64, base fields) []byte
	onPut    func(tid string) []byte // nil: claim to have stored it
	gets     atomic.Int64
	puts     atomic.Int64
	wg       sync.WaitGroup
}

// startHostile runs a hostile node with the given node id until the test
// ends. base, passed to onGet, holds the id and a token.
func startHostile(t *testing.T, id [20]byte, onGet func(tid string, base fields) []byte) *hostileNode {
	t.Helper()
	return startHostileWith(t, id, func(h *hostileNode) { h.onGet = onGet })
}

// startHostileWith is startHostile with the node's hooks set by setup
// before it serves.
func startHostileWith(t *testing.T, id [20]byte, setup func(h *hostileNode)) *hostileNode {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hostileNode{conn: conn, id: id}
	setup(h)
	h.wg.Add(1)
	go h.serve()
	t.Cleanup(func() {
		conn.Close()
		h.wg.Wait()
	})
	return h
}

func (h *hostileNode) addr() string { return h.conn.LocalAddr().String() }

func (h *hostileNode) serve() {
	defer h.wg.Done()
	buf := make([]byte, 1<<16)
	base := fields{"id": bstr(string(h.id[:])), "token": bstr("hostile-token")}
	for {
		n, from, err := h.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		var m krpc.Msg
		if err := bencode.Unmarshal(buf[:n], &m); err != nil || m.Y != "q" {
			continue
		}
		var out []byte
		switch m.Q {
		case "get":
			h.gets.Add(1)
			if h.onGetSeq != nil {
				out = h.onGetSeq(m.T, m.A.Seq, base)
			} else {
				out = h.onGet(m.T, base)
			}
		case "put":
			h.puts.Add(1)
			if h.onPut != nil {
				out = h.onPut(m.T)
			} else { // claim to have stored it
				out = reply(m.T, base.without("token"))
			}
		default:
			out = reply(m.T, base.without("token"))
		}
		if out != nil {
			h.conn.WriteTo(out, from)
		}
	}
}

// hostileClient is a passive DHT whose only bootstrap nodes are addrs, on a
// socket guarded to loopback.
func hostileClient(t *testing.T, addrs ...string) *mainline.DHT {
	t.Helper()
	g := &mainlinetest.Guard{}
	conn, err := g.Listen()
	if err != nil {
		t.Fatal(err)
	}
	d, err := mainline.New(
		mainline.WithConn(conn),
		mainline.WithBootstrap(addrs...),
		mainline.WithResolver(g),
		mainline.WithResendDelay(mainlinetest.DefaultResendDelay),
		mainline.WithSendBudget(0, 0),
		mainline.WithRefreshInterval(0),
		mainline.WithTimeout(20*time.Second),
	)
	if err != nil {
		conn.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Close()
		g.Check(t)
	})
	return d
}

// nearID is a node id next to key's BEP44 target, so lookups for key
// count the node among the closest.
func nearID(key pkarrclient.PublicKey, last byte) [20]byte {
	id := sha1.Sum(key.Bytes())
	id[19] ^= last
	return id
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestDHTCrashDatagrams sends the argument-less queries that crash
// anacrolix's handlers to a serving node and to a passive client, several
// times each; both must survive and keep working. Without guardQuery the
// test binary dies with a nil dereference.
func TestDHTCrashDatagrams(t *testing.T) {
	t.Parallel()
	nw := mainlinetest.New(t, 5)
	passive := nw.NewClient()
	target := nw.Node(0)
	ctx := testCtx(t, time.Minute)

	raw, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for range 3 {
		for _, dg := range crashDatagrams {
			for _, to := range []net.Addr{target.Addr(), passive.Addr()} {
				if _, err := raw.WriteTo([]byte(dg), to); err != nil {
					t.Fatal(err)
				}
			}
		}
	}

	// The serving node still answers: a ping sent after the datagrams is
	// processed after them (one socket, one reader), and answered.
	ping := fields{"a": fields{"id": bstr("abcdefghij0123456789")}.dict(), "q": bstr("ping"),
		"t": bstr("pg"), "y": bstr("q")}.dict()
	if _, err := raw.WriteTo([]byte(ping), target.Addr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<16)
	raw.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		n, _, err := raw.ReadFrom(buf)
		if err != nil {
			t.Fatalf("the serving node did not answer a ping after the crash datagrams: %v", err)
		}
		var m krpc.Msg
		if bencode.Unmarshal(buf[:n], &m) == nil && m.T == "pg" {
			if m.Y != "r" {
				t.Fatalf("ping answered with %q", buf[:n])
			}
			break
		}
		// Anything else must be an error reply to a datagram (the library
		// answers get_peers without arguments with 203), never a result.
		if m.Y == "r" {
			t.Fatalf("a crash datagram got a result: %q", buf[:n])
		}
	}

	// Publish and resolve through both: the passive client publishes, a
	// client that knows only the attacked node resolves, and the attacked
	// node resolves for itself.
	sk := newTestSecretKey(t)
	p := txtPacket(t, sk, 1_000_000, "after the crash datagrams", 300)
	if _, err := passive.Publish(ctx, p); err != nil {
		t.Fatalf("the attacked passive client cannot publish: %v", err)
	}
	// A client that knows only the attacked node republishes through it,
	// so the node holds the packet whichever nodes the first publish
	// reached (anacrolix nodes answer lookups with the nodes of one side
	// of their table only, so in a five-node network a lookup entered
	// through one node need not find the others).
	viaTarget := nw.NewClient(mainline.WithBootstrap(target.AddrPort().String()))
	if _, err := viaTarget.Publish(ctx, p); err != nil {
		t.Fatalf("the attacked node does not take puts: %v", err)
	}
	for name, d := range map[string]*mainline.DHT{"via the attacked node": viaTarget, "the attacked node": target, "the attacked client": passive} {
		got, err := d.Resolve(ctx, pkarrclient.Query{Key: sk.PublicKey(), MostRecent: true})
		if err != nil || !got.Equal(p) {
			t.Fatalf("resolve %s: %v, %v", name, got, err)
		}
	}
}

// TestDHTHostileGetReplies points a client at one hostile node that answers
// every get with a crafted reply. No reply may yield a packet.
func TestDHTHostileGetReplies(t *testing.T) {
	t.Parallel()
	sk := newTestSecretKey(t)
	other := newTestSecretKey(t)
	key := sk.PublicKey()
	const ts = 1_700_000_000_000_000
	p := txtPacket(t, sk, ts, "genuine", 300)
	theirs := txtPacket(t, other, ts, "theirs", 300)
	big := string(bytes.Repeat([]byte{'x'}, pkarrclient.MaxDNSSize+1))
	bigSig := string(sk.Sign(pkarrclient.SignableBytes(ts, []byte(big))))
	var asList bytes.Buffer
	asList.WriteByte('l')
	for _, c := range p.DNS() {
		fmt.Fprintf(&asList, "i%de", c)
	}
	asList.WriteByte('e')
	flipped := p.Signature()
	flipped[10] ^= 0x01

	item := itemFields(p)
	cases := []struct {
		name      string
		get       func(tid string, base fields) []byte
		newerThan pkarrclient.Timestamp
		want      error
	}{
		{name: "matching k and v, no seq", want: pkarrclient.ErrNotFound,
			get: func(tid string, b fields) []byte { return reply(tid, merge(b, item.without("seq"))) }},
		{name: "truncated bencode", want: pkarrclient.ErrUnavailable,
			get: func(tid string, b fields) []byte {
				full := reply(tid, merge(b, item))
				return full[:len(full)-9]
			}},
		{name: "v over 1000 bytes, validly signed", want: pkarrclient.ErrNotFound,
			get: func(tid string, b fields) []byte {
				return reply(tid, merge(b, item.with("v", bstr(big)).with("sig", bstr(bigSig))))
			}},
		{name: "wrong signature", want: pkarrclient.ErrNotFound,
			get: func(tid string, b fields) []byte {
				return reply(tid, merge(b, item.with("sig", bstr(string(flipped)))))
			}},
		{name: "valid packet of another key, their k", want: pkarrclient.ErrNotFound,
			get: func(tid string, b fields) []byte { return reply(tid, merge(b, itemFields(theirs))) }},
		{name: "valid packet of another key, our k", want: pkarrclient.ErrNotFound,
			get: func(tid string, b fields) []byte {
				return reply(tid, merge(b, itemFields(theirs).with("k", item["k"])))
			}},
		{name: "genuine packet, seq not above NewerThan", newerThan: ts, want: pkarrclient.ErrNotFound,
			get: func(tid string, b fields) []byte { return reply(tid, merge(b, item)) }},
		{name: "v an integer", want: pkarrclient.ErrNotFound,
			get: func(tid string, b fields) []byte { return reply(tid, merge(b, item.with("v", "i42e"))) }},
		{name: "v a list", want: pkarrclient.ErrNotFound,
			get: func(tid string, b fields) []byte { return reply(tid, merge(b, item.with("v", "l3:abce"))) }},
		{name: "v a list of integers", want: pkarrclient.ErrNotFound,
			get: func(tid string, b fields) []byte {
				return reply(tid, merge(b, item.with("v", asList.String())))
			}},
		{name: "negative seq", want: pkarrclient.ErrNotFound,
			get: func(tid string, b fields) []byte { return reply(tid, merge(b, item.with("seq", "i-1e"))) }},
		{name: "genuine packet, wrong transaction id", want: pkarrclient.ErrUnavailable,
			get: func(tid string, b fields) []byte { return reply(tid+"x", merge(b, item)) }},
		{name: "error reply", want: pkarrclient.ErrUnavailable,
			get: func(tid string, b fields) []byte {
				return []byte(fields{"e": "li201e4:nopee", "t": bstr(tid), "y": bstr("e")}.dict())
			}},
		{name: "error reply without e", want: pkarrclient.ErrUnavailable,
			get: func(tid string, b fields) []byte {
				return []byte(fields{"t": bstr(tid), "y": bstr("e")}.dict())
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := startHostile(t, nearID(key, 1), c.get)
			d := hostileClient(t, h.addr())
			ctx := testCtx(t, time.Minute)
			for _, mostRecent := range []bool{false, true} {
				got, err := d.Resolve(ctx, pkarrclient.Query{Key: key, NewerThan: c.newerThan, MostRecent: mostRecent})
				if got != nil {
					t.Fatalf("most recent %v: a hostile reply yielded a packet: %v", mostRecent, got)
				}
				if !errors.Is(err, c.want) {
					t.Fatalf("most recent %v: got %v, want %v", mostRecent, err, c.want)
				}
			}
			if h.gets.Load() == 0 {
				t.Fatal("the hostile node was never asked")
			}
		})
	}
}

// merge returns the union of a and b (b wins).
func merge(a, b fields) fields {
	out := fields{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// TestDHTHostileAmongHonest mixes hostile nodes into a real network: one
// forges a newer packet (bad signature), one replays a genuine older packet.
// Resolves return the genuine newest packet, and the forgery does not make
// a publish look stale.
func TestDHTHostileAmongHonest(t *testing.T) {
	t.Parallel()
	nw := mainlinetest.New(t, 8)
	ctx := testCtx(t, time.Minute)
	sk := newTestSecretKey(t)
	key := sk.PublicKey()
	const ts = 1_700_000_000_000_000
	old := txtPacket(t, sk, ts, "old", 300)
	cur := txtPacket(t, sk, ts+1, "current", 300)
	forged := itemFields(txtPacket(t, sk, ts+1000, "forged", 300))
	forged["v"] = bstr(string(txtPacket(t, sk, ts+1000, "forgeD", 300).DNS())) // signature no longer matches

	forger := startHostile(t, nearID(key, 1), func(tid string, b fields) []byte { return reply(tid, merge(b, forged)) })
	replayer := startHostile(t, nearID(key, 2), func(tid string, b fields) []byte { return reply(tid, merge(b, itemFields(old))) })

	if _, err := nw.NewClient().Publish(ctx, cur); err != nil {
		t.Fatal(err)
	}

	// First valid: the forger alone among honest nodes never wins.
	d := nw.NewClient(mainline.WithBootstrap(append([]string{forger.addr()}, nw.Addrs()...)...))
	got, err := d.Resolve(ctx, pkarrclient.Query{Key: key})
	if err != nil || !got.Equal(cur) {
		t.Fatalf("first-valid resolve with a forger: %v, %v; want the current packet", got, err)
	}

	// Most recent, with both: the genuine newest wins over the forgery and
	// the replay, which were both asked.
	d = nw.NewClient(mainline.WithBootstrap(append([]string{forger.addr(), replayer.addr()}, nw.Addrs()...)...))
	got, err = d.Resolve(ctx, pkarrclient.Query{Key: key, MostRecent: true})
	if err != nil || !got.Equal(cur) {
		t.Fatalf("most-recent resolve with a forger and a replayer: %v, %v; want the current packet", got, err)
	}
	if forger.gets.Load() == 0 || replayer.gets.Load() == 0 {
		t.Fatalf("hostile nodes not asked: forger %d, replayer %d gets", forger.gets.Load(), replayer.gets.Load())
	}

	// The forged "newer" value does not block a publish: it fails
	// verification, so it proves nothing stale.
	next := txtPacket(t, sk, ts+2, "next", 300)
	rcpt, err := d.Publish(ctx, next)
	if err != nil {
		t.Fatalf("publish beside a forger: %v", err)
	}
	if rcpt.DHTNodes < 1 {
		t.Fatalf("publish stored on %d nodes", rcpt.DHTNodes)
	}
	t.Logf("publish beside hostile nodes: stored on %d (the forger claims one: %d puts)", rcpt.DHTNodes, forger.puts.Load())
	got, err = nw.NewClient().Resolve(ctx, pkarrclient.Query{Key: key, MostRecent: true})
	if err != nil || !got.Equal(next) {
		t.Fatalf("after the publish: %v, %v; want the next packet", got, err)
	}
}

// TestDHTLying302 shows that a node answering every put with 302 ("a more
// recent packet exists") without holding one cannot block a key: among
// honest nodes the publish succeeds; alone, it fails as stale, since no
// node stored the packet.
func TestDHTLying302(t *testing.T) {
	t.Parallel()
	nw := mainlinetest.New(t, 8)
	ctx := testCtx(t, time.Minute)
	sk := newTestSecretKey(t)
	key := sk.PublicKey()
	liar := startHostileWith(t, nearID(key, 1), func(h *hostileNode) {
		h.onGet = func(tid string, b fields) []byte { return reply(tid, b) }
		h.onPut = func(tid string) []byte {
			return []byte(fields{"e": "l" + bint(302) + bstr("sequence number less than current") + "e", "t": bstr(tid), "y": bstr("e")}.dict())
		}
	})

	p := txtPacket(t, sk, 1_700_000_000_000_000, "mine", 300)
	d := nw.NewClient(mainline.WithBootstrap(append([]string{liar.addr()}, nw.Addrs()...)...))
	// The liar is known to the client alone (it hands out no nodes and
	// nobody else has heard of it), so a publish that starts while the
	// background bootstrap has answers from some nodes but not yet from
	// the liar would start from those and never meet it.
	for d.RoutingTableSize() < nw.Len()+1 {
		if ctx.Err() != nil {
			t.Fatalf("the client's table holds %d nodes, want all %d and the liar", d.RoutingTableSize(), nw.Len())
		}
		time.Sleep(10 * time.Millisecond)
	}
	rcpt, err := d.Publish(ctx, p)
	if err != nil {
		t.Fatalf("publish beside a node lying 302: %v", err)
	}
	if liar.puts.Load() == 0 {
		t.Fatal("the liar was never asked to store the packet")
	}
	if rcpt.DHTNodes < 1 {
		t.Fatalf("publish stored on %d nodes", rcpt.DHTNodes)
	}
	got, err := nw.NewClient().Resolve(ctx, pkarrclient.Query{Key: key})
	if err != nil || !got.Equal(p) {
		t.Fatalf("resolve after the publish: %v, %v", got, err)
	}

	alone := hostileClient(t, liar.addr())
	_, err = alone.Publish(ctx, txtPacket(t, sk, 1_700_000_000_000_001, "again", 300))
	var perr *mainline.PublishError
	if !errors.Is(err, pkarrclient.ErrNotMostRecent) || !errors.As(err, &perr) || perr.Stale != 1 || perr.Closest != 1 {
		t.Fatalf("publish to the liar alone: %v; want a PublishError with 1 of 1 stale", err)
	}
}

// TestDHTRepublishToANodeThatRefusesEqualSeq: bittorrent-dht answers 302
// to a put of the very item it holds, where BEP44 would renew it. A
// republish of an identical packet to such nodes stored it long ago, and
// must not read as a lost race; a node that merely says 302 without
// holding our packet still counts as stale.
func TestDHTRepublishToANodeThatRefusesEqualSeq(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, time.Minute)
	sk := newTestSecretKey(t)
	key := sk.PublicKey()
	p := txtPacket(t, sk, 1_700_000_000_000_000, "mine", 300)
	refuse := func(tid string) []byte {
		return []byte(fields{"e": "l" + bint(302) + bstr("sequence number less than current") + "e", "t": bstr(tid), "y": bstr("e")}.dict())
	}
	// As bittorrent-dht does, it sends the value only to a get whose seq
	// is below the one it holds.
	holder := startHostileWith(t, nearID(key, 1), func(h *hostileNode) {
		h.onGetSeq = func(tid string, seq *int64, b fields) []byte {
			if seq != nil && *seq >= int64(p.Timestamp()) {
				return reply(tid, merge(b, fields{"seq": bint(int64(p.Timestamp()))}))
			}
			return reply(tid, merge(b, itemFields(p)))
		}
		h.onPut = refuse
	})
	rcpt, err := hostileClient(t, holder.addr()).Publish(ctx, p)
	if err != nil || rcpt.DHTNodes != 1 {
		t.Fatalf("republish to a node holding the packet: %+v, %v; want stored on 1", rcpt, err)
	}
	if holder.puts.Load() == 0 {
		t.Fatal("the holder was never asked to store the packet")
	}

	// One that holds only an older packet, and says 302 all the same.
	older := txtPacket(t, sk, 1_700_000_000_000_000-1, "older", 300)
	claimer := startHostileWith(t, nearID(key, 1), func(h *hostileNode) {
		h.onGet = func(tid string, b fields) []byte { return reply(tid, merge(b, itemFields(older))) }
		h.onPut = refuse
	})
	_, err = hostileClient(t, claimer.addr()).Publish(ctx, p)
	var perr *mainline.PublishError
	if !errors.Is(err, pkarrclient.ErrNotMostRecent) || !errors.As(err, &perr) || perr.Stale != 1 {
		t.Fatalf("publish to a node holding an older packet and saying 302: %v; want 1 stale", err)
	}
}
