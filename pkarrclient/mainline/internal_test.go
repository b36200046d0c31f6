package mainline

// Unit tests and fuzz targets of the DHT backend's unexported helpers:
// packetFromGet, which must turn any get reply a stranger's node can send
// into either nothing or a packet that verifies under the key asked for,
// and guardQuery, which keeps crafted queries away from the library's
// handlers that dereference missing arguments.

import (
	"bytes"
	"context"
	"errors"
	"expvar"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anacrolix/dht/v2"
	"github.com/anacrolix/dht/v2/krpc"
	"github.com/anacrolix/torrent/bencode"
	"github.com/jonboulle/clockwork"

	"github.com/phrasemeet/discovery/pkarrclient"
)

// getReplyFor is the get reply an honest node holding p sends.
func getReplyFor(p *pkarrclient.SignedPacket) krpc.Msg {
	seq := int64(p.Timestamp())
	r := &krpc.Return{ID: krpc.ID{0x42}, Token: ptrTo("tok")}
	r.V = bencode.MustMarshal(p.DNS())
	r.K = [32]byte(p.PublicKey())
	copy(r.Sig[:], p.Signature())
	r.Seq = &seq
	return krpc.Msg{T: "aa", Y: "r", R: r}
}

func ptrTo[T any](v T) *T { return &v }

// bencodeString is v encoded as a bencode string.
func bencodeString(v []byte) []byte {
	return append([]byte(strconv.Itoa(len(v))+":"), v...)
}

// withReturn copies m and its reply dictionary, then lets f change the copy.
func withReturn(m krpc.Msg, f func(r *krpc.Return)) krpc.Msg {
	r := *m.R
	if m.R.Seq != nil {
		r.Seq = ptrTo(*m.R.Seq)
	}
	m.R = &r
	f(m.R)
	return m
}

func TestPacketFromGet(t *testing.T) {
	sk := testKey(t, 0x31)
	other := testKey(t, 0x32)
	key := sk.PublicKey()
	p := mustSign(t, sk, 1_700_000_000_000_000, pkarrclient.NewBuilder().TXT("_dht", 300, "genuine"))
	good := getReplyFor(p)
	theirs := getReplyFor(mustSign(t, other, 1_700_000_000_000_000, pkarrclient.NewBuilder().TXT("_dht", 300, "theirs")))

	// A value over 1000 bytes, validly signed by the key: only the size
	// is wrong.
	big := bytes.Repeat([]byte{'x'}, pkarrclient.MaxDNSSize+1)
	bigSig := sk.Sign(pkarrclient.SignableBytes(p.Timestamp(), big))

	// Bytes that are no DNS message, validly signed.
	junk := []byte("not a dns message")
	junkSig := sk.Sign(pkarrclient.SignableBytes(p.Timestamp(), junk))

	// The genuine DNS bytes re-encoded as a bencode list of integers,
	// which anacrolix's decoder turns into the same []byte.
	var list bytes.Buffer
	list.WriteByte('l')
	for _, c := range p.DNS() {
		fmt.Fprintf(&list, "i%de", c)
	}
	list.WriteByte('e')

	cases := []struct {
		name string
		res  dht.QueryResult
		want getVerdict
	}{
		{"valid", dht.QueryResult{Reply: good}, getValid},
		{"network error", dht.QueryResult{Reply: good, Err: errors.New("timeout")}, getNoAnswer},
		{"KRPC error", dht.QueryResult{Reply: krpc.Msg{T: "aa", Y: "e", E: &krpc.Error{Code: 201}}}, getNoAnswer},
		{"r without a dictionary", dht.QueryResult{Reply: krpc.Msg{T: "aa", Y: "r"}}, getNoAnswer},
		{"query instead of reply", dht.QueryResult{Reply: krpc.Msg{T: "aa", Y: "q", Q: "get", R: good.R}}, getNoAnswer},
		{"no value", dht.QueryResult{Reply: withReturn(good, func(r *krpc.Return) { r.V = nil })}, getNoValue},
		{"no value, seq only", dht.QueryResult{Reply: withReturn(good, func(r *krpc.Return) {
			r.V, r.K, r.Sig = nil, [32]byte{}, [64]byte{}
		})}, getNoValue},
		{"no seq", dht.QueryResult{Reply: withReturn(good, func(r *krpc.Return) { r.Seq = nil })}, getMalformed},
		{"negative seq", dht.QueryResult{Reply: withReturn(good, func(r *krpc.Return) { *r.Seq = -1 })}, getMalformed},
		{"seq off by one", dht.QueryResult{Reply: withReturn(good, func(r *krpc.Return) { *r.Seq++ })}, getMalformed},
		{"no key", dht.QueryResult{Reply: withReturn(good, func(r *krpc.Return) { r.K = [32]byte{} })}, getMalformed},
		{"wrong signature", dht.QueryResult{Reply: withReturn(good, func(r *krpc.Return) { r.Sig[7] ^= 1 })}, getMalformed},
		{"no signature", dht.QueryResult{Reply: withReturn(good, func(r *krpc.Return) { r.Sig = [64]byte{} })}, getMalformed},
		{"value changed", dht.QueryResult{Reply: withReturn(good, func(r *krpc.Return) {
			v := p.DNS()
			v[len(v)-1] ^= 1
			r.V = bencode.MustMarshal(v)
		})}, getMalformed},
		{"another key's packet, their k", dht.QueryResult{Reply: theirs}, getMalformed},
		{"another key's packet, our k", dht.QueryResult{Reply: withReturn(theirs, func(r *krpc.Return) { r.K = [32]byte(key) })}, getMalformed},
		{"value over 1000 bytes, signed", dht.QueryResult{Reply: withReturn(good, func(r *krpc.Return) {
			r.V = bencode.MustMarshal(big)
			copy(r.Sig[:], bigSig)
		})}, getMalformed},
		{"signed junk that is no DNS", dht.QueryResult{Reply: withReturn(good, func(r *krpc.Return) {
			r.V = bencode.MustMarshal(junk)
			copy(r.Sig[:], junkSig)
		})}, getMalformed},
		{"v an integer", dht.QueryResult{Reply: withReturn(good, func(r *krpc.Return) { r.V = bencode.Bytes("i42e") })}, getMalformed},
		{"v a list of strings", dht.QueryResult{Reply: withReturn(good, func(r *krpc.Return) { r.V = bencode.Bytes("l3:abce") })}, getMalformed},
		{"v a dictionary", dht.QueryResult{Reply: withReturn(good, func(r *krpc.Return) { r.V = bencode.Bytes("d1:a1:be") })}, getMalformed},
		{"v the genuine bytes as a list of integers", dht.QueryResult{Reply: withReturn(good, func(r *krpc.Return) {
			r.V = bencode.Bytes(list.Bytes())
		})}, getMalformed},
		{"v a string with trailing bytes", dht.QueryResult{Reply: withReturn(good, func(r *krpc.Return) {
			r.V = append(bencodeString(p.DNS()), "xx"...)
		})}, getMalformed},
		{"v a truncated string", dht.QueryResult{Reply: withReturn(good, func(r *krpc.Return) {
			r.V = bencodeString(p.DNS())[:20]
		})}, getMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, verdict := packetFromGet(key, c.res)
			if verdict != c.want {
				t.Fatalf("verdict %d, want %d", verdict, c.want)
			}
			if (got != nil) != (verdict == getValid) {
				t.Fatalf("packet %v with verdict %d", got, verdict)
			}
			if got != nil && !got.Equal(p) {
				t.Fatalf("returned a packet other than the genuine one: %v", got)
			}
		})
	}

	// The genuine reply is not accepted for another key either.
	if got, v := packetFromGet(other.PublicKey(), dht.QueryResult{Reply: good}); got != nil || v != getMalformed {
		t.Fatalf("a packet for one key was accepted for another: %v, verdict %d", got, v)
	}
}

func TestGuardQuery(t *testing.T) {
	src := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}
	for _, q := range []string{"put", "get", "announce_peer", "find_node", "get_peers", "ping", "sample_infohashes", ""} {
		m := krpc.Msg{Q: q, T: "aa", Y: "q"}
		if guardQuery(&m, src) {
			t.Errorf("%q without arguments was let through", q)
		}
	}
	target := krpc.ID{1, 2, 3}
	for _, q := range []string{"get", "find_node"} {
		m := krpc.Msg{Q: q, T: "aa", Y: "q", A: &krpc.MsgArgs{Target: target}}
		if !guardQuery(&m, src) {
			t.Fatalf("%q with arguments was dropped", q)
		}
		if m.A.InfoHash != target {
			t.Errorf("%q: info_hash %x, want the target %x", q, m.A.InfoHash, target)
		}
	}
	// Other queries keep their own info_hash (get_peers names a torrent).
	ih := krpc.ID{9}
	m := krpc.Msg{Q: "get_peers", T: "aa", Y: "q", A: &krpc.MsgArgs{InfoHash: ih, Target: target}}
	if !guardQuery(&m, src) || m.A.InfoHash != ih {
		t.Errorf("get_peers: kept %v, info_hash %x, want %x", true, m.A.InfoHash, ih)
	}
}

func TestGetTallyResolveError(t *testing.T) {
	ctxErr := context.DeadlineExceeded
	cases := []struct {
		tally   getTally
		ctxErr  error
		hinted  bool
		want    error
		wantCtx bool
	}{
		{getTally{noAnswer: 3}, nil, false, pkarrclient.ErrUnavailable, false},
		{getTally{noAnswer: 3}, ctxErr, false, pkarrclient.ErrUnavailable, true},
		{getTally{}, nil, false, pkarrclient.ErrUnavailable, false},
		{getTally{noValue: 2, noAnswer: 5}, nil, false, pkarrclient.ErrNotFound, false},
		{getTally{noValue: 2}, ctxErr, false, pkarrclient.ErrUnavailable, true}, // cut short: not a verdict
		{getTally{malformed: 1}, nil, false, pkarrclient.ErrNotFound, false},
		{getTally{noValue: 1}, nil, true, pkarrclient.ErrNotFound, false},
	}
	for _, c := range cases {
		err := c.tally.resolveError(c.ctxErr, c.hinted)
		if !errors.Is(err, c.want) {
			t.Errorf("%+v (ctx %v): %v, want %v", c.tally, c.ctxErr, err, c.want)
		}
		if errors.Is(err, pkarrclient.ErrNotFound) && errors.Is(err, pkarrclient.ErrUnavailable) {
			t.Errorf("%+v: %v is both not found and unavailable", c.tally, err)
		}
		if got := errors.Is(err, ctxErr); got != c.wantCtx {
			t.Errorf("%+v (ctx %v): wraps the deadline %v, want %v", c.tally, c.ctxErr, got, c.wantCtx)
		}
	}
}

func TestDHTPublishErrorUnwrap(t *testing.T) {
	cases := []struct {
		e    PublishError
		is   []error
		isnt []error
	}{
		{PublishError{Closest: 8, Other: 8}, []error{pkarrclient.ErrUnavailable}, []error{pkarrclient.ErrNotMostRecent, pkarrclient.ErrPacketTooLarge}},
		{PublishError{}, []error{pkarrclient.ErrUnavailable}, []error{pkarrclient.ErrNotMostRecent}},
		{PublishError{Stale: 2}, []error{pkarrclient.ErrNotMostRecent}, []error{pkarrclient.ErrUnavailable}},
		{PublishError{Closest: 8, Stale: 1, Other: 7}, []error{pkarrclient.ErrNotMostRecent}, []error{pkarrclient.ErrUnavailable}},
		{PublishError{Closest: 8, TooLarge: 8}, []error{pkarrclient.ErrPacketTooLarge, pkarrclient.ErrInvalidPacket}, []error{pkarrclient.ErrUnavailable}},
	}
	for _, c := range cases {
		err := error(&pkarrclient.BackendError{Backend: BackendName, Op: pkarrclient.OpPublish, Err: &c.e})
		for _, want := range c.is {
			if !errors.Is(err, want) {
				t.Errorf("%+v: %v does not match %v", c.e, err, want)
			}
		}
		for _, not := range c.isnt {
			if errors.Is(err, not) {
				t.Errorf("%+v: %v matches %v", c.e, err, not)
			}
		}
		if err.Error() == "" {
			t.Errorf("%+v: empty message", c.e)
		}
	}
}

// FuzzPacketFromGet feeds arbitrary KRPC datagrams, decoded as the library
// decodes them, to packetFromGet: it must never panic, and a packet it
// returns must be exactly the value of the reply and verify under the key.
func FuzzPacketFromGet(f *testing.F) {
	sk := testKey(f, 0x44)
	other := testKey(f, 0x45)
	key := sk.PublicKey()
	p := mustSign(f, sk, 1_700_000_000_000_000, pkarrclient.NewBuilder().TXT("_dht", 300, "fuzz").Record("@ 60 IN A 192.0.2.1"))
	good := getReplyFor(p)
	seed := func(m krpc.Msg) { f.Add(bencode.MustMarshal(m)) }
	seed(good)
	seed(withReturn(good, func(r *krpc.Return) { r.Seq = nil }))
	seed(withReturn(good, func(r *krpc.Return) { *r.Seq = -5 }))
	seed(withReturn(good, func(r *krpc.Return) { r.Sig[0] ^= 0x80 }))
	seed(withReturn(good, func(r *krpc.Return) { r.V = bencode.Bytes("i42e") }))
	seed(withReturn(good, func(r *krpc.Return) { r.V = bencode.Bytes("li1ei2ee") }))
	seed(withReturn(good, func(r *krpc.Return) { r.V = bencode.MustMarshal(bytes.Repeat([]byte{'x'}, 1001)) }))
	seed(withReturn(good, func(r *krpc.Return) { r.V = nil }))
	seed(getReplyFor(mustSign(f, other, 1_700_000_000_000_000, pkarrclient.NewBuilder().TXT("_dht", 300, "other"))))
	seed(krpc.Msg{T: "aa", Y: "e", E: &krpc.Error{Code: 205, Msg: "too big"}})
	full := bencode.MustMarshal(good)
	f.Add(full[:len(full)/2])
	f.Add([]byte("d1:rd2:id20:aaaaaaaaaaaaaaaaaaaa1:v3:abce1:t2:aa1:y1:re"))
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, b []byte) {
		var m krpc.Msg
		if err := bencode.Unmarshal(b, &m); err != nil {
			var trailing bencode.ErrUnusedTrailingBytes
			if !errors.As(err, &trailing) {
				return // the library drops such datagrams too
			}
		}
		got, verdict := packetFromGet(key, dht.QueryResult{Reply: m})
		if (got != nil) != (verdict == getValid) {
			t.Fatalf("packet %v with verdict %d", got, verdict)
		}
		if got == nil {
			return
		}
		if got.PublicKey() != key {
			t.Fatalf("returned a packet for key %v, asked %v", got.PublicKey(), key)
		}
		if !key.Verify(pkarrclient.SignableBytes(got.Timestamp(), got.DNS()), got.Signature()) {
			t.Fatalf("returned a packet whose signature does not verify")
		}
		if m.R.Seq == nil || pkarrclient.Timestamp(*m.R.Seq) != got.Timestamp() {
			t.Fatalf("timestamp %d is not the reply's seq %v", got.Timestamp(), m.R.Seq)
		}
		if !bytes.Equal(m.R.V, bencodeString(got.DNS())) {
			t.Fatalf("DNS bytes are not the reply's v: v=%q", m.R.V)
		}
		if q, err := pkarrclient.ParseRelayPayload(key, got.RelayPayload()); err != nil || !q.Equal(got) {
			t.Fatalf("an accepted packet does not re-parse: %v", err)
		}
	})
}

// FuzzServingNodeDatagram sends arbitrary datagrams to a serving node on
// 127.0.0.1 and then a ping: the node must answer the ping, i.e. it is
// still running and has not crashed on anything before it. The node is
// this fuzz process's own (created before f.Fuzz, closed at the end); the
// only state it shares with other tests is the library's expvar counters.
// "@TOKEN@" in an input becomes a write token the node issued to the
// sender, so inputs can reach the put handler.
func FuzzServingNodeDatagram(f *testing.F) {
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	var strayed atomic.Int64
	node, err := New(
		WithConn(loopbackOnlyConn{PacketConn: conn, strayed: &strayed}),
		WithServing(1000),
		WithBootstrap(),
		WithResolver(refusingResolver{}),
		WithSendBudget(0, 0),
		WithSourceRateLimit(0, 0), // one sender, two queries per input
		WithRefreshInterval(0),
	)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { node.Close() })
	sender, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { sender.Close() })
	to := node.Addr()

	// exchange sends b, then a ping, and returns the reply to the ping.
	const pingT = "\xfe\xedpng"
	ping := fmt.Sprintf("d1:ad2:id20:%se1:q4:ping1:t%d:%s1:y1:qe", bytes.Repeat([]byte{'p'}, 20), len(pingT), pingT)
	exchange := func(tb testing.TB, b []byte) krpc.Msg {
		tb.Helper()
		if len(b) > 0 {
			if _, err := sender.WriteTo(b, to); err != nil {
				tb.Fatal(err)
			}
		}
		if _, err := sender.WriteTo([]byte(ping), to); err != nil {
			tb.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		buf := make([]byte, 1<<16)
		for {
			sender.SetReadDeadline(deadline)
			n, _, err := sender.ReadFrom(buf)
			if err != nil {
				tb.Fatalf("the node did not answer a ping after %q: %v", b, err)
			}
			var m krpc.Msg
			if bencode.Unmarshal(buf[:n], &m) == nil && m.T == pingT && m.Y == "r" {
				return m
			}
		}
	}
	// A write token for the sender's address, from a get.
	getQ := fmt.Sprintf("d1:ad2:id20:%s6:target20:%se1:q3:get1:t2:gg1:y1:qe",
		bytes.Repeat([]byte{'p'}, 20), bytes.Repeat([]byte{'t'}, 20))
	if _, err := sender.WriteTo([]byte(getQ), to); err != nil {
		f.Fatal(err)
	}
	var token string
	buf := make([]byte, 1<<16)
	sender.SetReadDeadline(time.Now().Add(10 * time.Second))
	for token == "" {
		n, _, err := sender.ReadFrom(buf)
		if err != nil {
			f.Fatalf("no token from the node: %v", err)
		}
		var m krpc.Msg
		if bencode.Unmarshal(buf[:n], &m) == nil && m.T == "gg" && m.R != nil && m.R.Token != nil {
			token = *m.R.Token
		}
	}
	tokenField := []byte(strconv.Itoa(len(token)) + ":" + token)

	sk := testKey(f, 0x46)
	p := mustSign(f, sk, 1_700_000_000_000_000, pkarrclient.NewBuilder().TXT("_dht", 300, "put"))
	args := func(extra string) string {
		return "d2:id20:" + string(bytes.Repeat([]byte{'p'}, 20)) + extra + "e"
	}
	for _, s := range []string{
		"d1:q3:put1:t2:aa1:y1:qe",
		"d1:q3:get1:t2:aa1:y1:qe",
		"d1:q13:announce_peer1:t2:aa1:y1:qe",
		"d1:q9:find_node1:t2:aa1:y1:qe",
		"d1:q9:get_peers1:t2:aa1:y1:qe",
		"d1:q4:ping1:t2:aa1:y1:qe",
		"d1:a" + args("") + "1:q3:put1:t2:aa1:y1:qe",
		"d1:a" + args("5:token@TOKEN@") + "1:q3:put1:t2:aa1:y1:qe",
		"d1:a" + args("3:seqi1e5:token@TOKEN@1:vi1e") + "1:q3:put1:t2:aa1:y1:qe",
		"d1:a" + args("3:seqi1e5:token@TOKEN@1:vd1:ai1eee") + "1:q3:put1:t2:aa1:y1:qe",
		"d1:a" + args("1:k32:"+string(p.PublicKey().Bytes())+"3:seqi"+strconv.FormatUint(uint64(p.Timestamp()), 10)+
			"e3:sig64:"+string(p.Signature())+"5:token@TOKEN@1:v"+string(bencodeString(p.DNS()))) + "1:q3:put1:t2:aa1:y1:qe",
		"d1:a" + args("1:k32:"+string(p.PublicKey().Bytes())+"3:seqi"+strconv.FormatUint(uint64(p.Timestamp()), 10)+
			"e3:sig64:"+string(p.Signature())+"5:token@TOKEN@1:v"+string(bencodeString(p.DNS()))+"3:casi5e") + "1:q3:put1:t2:aa1:y1:qe",
		"d1:a" + args("1:k32:"+string(p.PublicKey().Bytes())+"3:seqi1e3:sig64:"+string(p.Signature())+
			"5:token@TOKEN@1:v1001:"+string(bytes.Repeat([]byte{'v'}, 1001))) + "1:q3:put1:t2:aa1:y1:qe",
		"d1:a" + args("6:target20:"+string(bytes.Repeat([]byte{'t'}, 20))) + "1:q3:get1:t2:aa1:y1:qe",
		"d1:a" + args("6:target20:"+string(bytes.Repeat([]byte{'t'}, 20))+"4:wantl2:n42:n6e") + "1:q9:find_node1:t2:aa1:y1:qe",
		"d1:a" + args("9:info_hash20:"+string(bytes.Repeat([]byte{'i'}, 20))+"4:porti1e5:token@TOKEN@") + "1:q13:announce_peer1:t2:aa1:y1:qe",
		"d1:rd2:id20:aaaaaaaaaaaaaaaaaaaae1:t2:zz1:y1:re",
		"d1:eli201e5:oops!e1:t2:zz1:y1:ee",
		"",
	} {
		f.Add([]byte(s))
	}

	f.Fuzz(func(t *testing.T, b []byte) {
		b = bytes.ReplaceAll(b, []byte("@TOKEN@"), tokenField)
		if m := exchange(t, b); m.R == nil {
			t.Fatalf("ping answered without a reply dictionary")
		}
		if n := strayed.Load(); n > 0 {
			t.Fatalf("the node tried to send %d datagrams off loopback", n)
		}
	})
}

// loopbackOnlyConn refuses, and counts, datagrams to anything but loopback
// (mainlinetest's guard cannot be used here: mainlinetest imports this package).
type loopbackOnlyConn struct {
	net.PacketConn
	strayed *atomic.Int64
}

func (c loopbackOnlyConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if ua, ok := addr.(*net.UDPAddr); !ok || !ua.AddrPort().Addr().Unmap().IsLoopback() {
		c.strayed.Add(1)
		return 0, fmt.Errorf("refusing to send to %v", addr)
	}
	return c.PacketConn.WriteTo(b, addr)
}

type refusingResolver struct{}

func (refusingResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	return nil, fmt.Errorf("test: refusing to look up %q", host)
}

// TestAcceptDatagram pins what filterConn lets through to the library:
// KRPC replies and errors, and the six queries of BEP5 and BEP44.
func TestAcceptDatagram(t *testing.T) {
	cases := []struct {
		in   string
		want bool
	}{
		{"d1:rd2:id20:abcdefghij0123456789e1:t2:aa1:y1:re", true},
		{"d1:eli201e4:oopse1:t2:aa1:y1:ee", true},
		{"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe", true},
		{"d1:q3:put1:t2:aa1:y1:qe", true}, // guardQuery's job, not the filter's
		{"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe" + "trailing", true},
		{"d1:ad2:id20:abcdefghij0123456789e1:q9:ping-0001:t2:aa1:y1:qe", false},
		{"d1:q16:sample_infohashes1:t2:aa1:y1:qe", false},
		{"d1:t2:aa1:y1:xe", false},
		{"d1:q4:ping1:t2:aa1:y", false}, // truncated
		{"li1ee", false},
		{"", false},
		{"d", false},
	}
	for _, c := range cases {
		if got := acceptDatagram([]byte(c.in)); got != c.want {
			t.Errorf("acceptDatagram(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

// TestUnknownQueriesDoNotGrowExpvars sends queries with many distinct
// names at a serving node: without filterConn the library would keep a
// counter per name, forever.
func TestUnknownQueriesDoNotGrowExpvars(t *testing.T) {
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(WithConn(conn), WithServing(0), WithBootstrap(), WithSendBudget(0, 0), WithRefreshInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	raw, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	before := dhtExpvarCount()
	for i := range 200 {
		name := fmt.Sprintf("phrasemeet-unknown-%d", i)
		q := "d1:ad2:id20:abcdefghij0123456789e1:q" + strconv.Itoa(len(name)) + ":" + name + "1:t2:aa1:y1:qe"
		if _, err := raw.WriteTo([]byte(q), d.Addr()); err != nil {
			t.Fatal(err)
		}
	}
	// A ping after them is read after them (one socket, one reader); its
	// answer proves the unknown ones were consumed.
	ping := "d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:pg1:y1:qe"
	if _, err := raw.WriteTo([]byte(ping), d.Addr()); err != nil {
		t.Fatal(err)
	}
	raw.SetReadDeadline(time.Now().Add(20 * time.Second))
	buf := make([]byte, 1500)
	for {
		n, _, err := raw.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no answer to the ping: %v", err)
		}
		if bytes.Contains(buf[:n], []byte("1:t2:pg")) {
			break
		}
	}
	// The library counts in a goroutine; give it time to have done so.
	time.Sleep(50 * time.Millisecond)
	if after := dhtExpvarCount(); after > before+5 {
		t.Fatalf("the library's expvar map grew from %d to %d entries", before, after)
	}
}

func dhtExpvarCount() int {
	m, ok := expvar.Get("dht").(*expvar.Map)
	if !ok {
		return 0
	}
	n := 0
	m.Do(func(expvar.KeyValue) { n++ })
	return n
}

// TestSourceLimits: a budget per IPv4 address or IPv6 /64, refilled by
// the clock, and a bounded number of them remembered.
func TestSourceLimits(t *testing.T) {
	clock := clockwork.NewFakeClock()
	s, err := newSourceLimits(1, 2, clock, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	udp := func(s string) net.Addr { return net.UDPAddrFromAddrPort(netip.MustParseAddrPort(s)) }
	spend := func(addr net.Addr) int {
		n := 0
		for s.allow(addr) {
			n++
			if n > 100 {
				t.Fatalf("%v: no limit", addr)
			}
		}
		return n
	}
	if n := spend(udp("192.0.2.1:1")); n != 2 {
		t.Fatalf("burst of 2, spent %d", n)
	}
	// The same IPv4 address from another port, or IPv4-mapped: the same
	// source. Another address: its own budget.
	for _, a := range []string{"192.0.2.1:2", "[::ffff:192.0.2.1]:3"} {
		if s.allow(udp(a)) {
			t.Errorf("%s was given a budget of its own", a)
		}
	}
	if n := spend(udp("192.0.2.2:1")); n != 2 {
		t.Errorf("a second IPv4 source: spent %d, want 2", n)
	}
	// IPv6: one budget per /64.
	if n := spend(udp("[2001:db8:1:2::1]:1")); n != 2 {
		t.Fatalf("IPv6 burst: spent %d", n)
	}
	if s.allow(udp("[2001:db8:1:2:ffff::9]:1")) {
		t.Error("another address of the same /64 was given a budget of its own")
	}
	if n := spend(udp("[2001:db8:1:3::1]:1")); n != 2 {
		t.Errorf("another /64: spent %d, want 2", n)
	}
	if s.allow(&net.UnixAddr{Name: "x", Net: "unixgram"}) != true {
		t.Error("an address without an IP was counted")
	}
	// The clock refills at the rate.
	clock.Advance(time.Second)
	if n := spend(udp("192.0.2.1:1")); n != 1 {
		t.Errorf("after one second at 1/s: spent %d, want 1", n)
	}
	if got := s.dropped.Load(); got < 5 {
		t.Errorf("dropped %d, want the refusals counted", got)
	}
	// Bounded memory.
	for i := range maxLimitedSources + 10 {
		s.allow(udp(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 1).String()))
	}
	if n := s.budgets.Len(); n > maxLimitedSources {
		t.Errorf("%d budgets remembered, want at most %d", n, maxLimitedSources)
	}
}

// testKey is a fixed key from a seed of one repeated byte, as package
// pkarrclient's internal tests make theirs.
func testKey(t testing.TB, seedByte byte) *pkarrclient.SecretKey {
	t.Helper()
	sk, err := pkarrclient.SecretKeyFromSeed(bytes.Repeat([]byte{seedByte}, pkarrclient.SeedSize))
	if err != nil {
		t.Fatal(err)
	}
	return sk
}

// mustSign signs b with sk at ts.
func mustSign(t testing.TB, sk *pkarrclient.SecretKey, ts pkarrclient.Timestamp, b *pkarrclient.Builder) *pkarrclient.SignedPacket {
	t.Helper()
	p, err := b.Timestamp(ts).Sign(sk)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
