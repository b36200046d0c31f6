package mainline_test

// BEP44 put rules of a serving node, checked on the wire: hand-signed
// mutable items sent as raw KRPC puts to a real node on 127.0.0.1. The
// rules are those of BEP44 as libtorrent, bittorrent-dht and Rust's
// mainline implement them: cas is compared with the STORED SEQ, v may be
// up to 1000 raw bytes, a lower seq is refused with 302.

import (
	"crypto/ed25519"
	"crypto/sha1"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anacrolix/dht/v2/krpc"
	"github.com/anacrolix/torrent/bencode"
	"github.com/jonboulle/clockwork"

	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/pkarrclient/mainline"
	"github.com/phrasemeet/discovery/pkarrclient/mainline/mainlinetest"
)

// bep44Key signs hand-made BEP44 mutable items, optionally salted.
type bep44Key struct {
	sk   ed25519.PrivateKey
	salt string
}

func newBEP44Key(t *testing.T, seed byte, salt string) bep44Key {
	t.Helper()
	s := make([]byte, ed25519.SeedSize)
	for i := range s {
		s[i] = seed + byte(i)
	}
	return bep44Key{sk: ed25519.NewKeyFromSeed(s), salt: salt}
}

func (k bep44Key) pub() string { return string(k.sk.Public().(ed25519.PublicKey)) }

// target is the item's BEP44 target: SHA-1 of the key and the salt.
func (k bep44Key) target() string {
	h := sha1.Sum([]byte(k.pub() + k.salt))
	return string(h[:])
}

// put returns the arguments of a put of v at seq, signed, with cas unless
// it is nil.
func (k bep44Key) put(seq int64, v string, cas *int64) fields {
	signed := ""
	if k.salt != "" {
		signed = "4:salt" + bstr(k.salt)
	}
	signed += "3:seqi" + strconv.FormatInt(seq, 10) + "e1:v" + bstr(v)
	f := fields{
		"k":   bstr(k.pub()),
		"seq": bint(seq),
		"sig": bstr(string(ed25519.Sign(k.sk, []byte(signed)))),
		"v":   bstr(v),
	}
	if k.salt != "" {
		f["salt"] = bstr(k.salt)
	}
	if cas != nil {
		f["cas"] = bint(*cas)
	}
	return f
}

func casOf(n int64) *int64 { return &n }

// targeter names a BEP44 target.
type targeter interface{ target() string }

// keyTarget is the target of an unsalted key, as pkarr uses.
type keyTarget struct{ key []byte }

func (k keyTarget) target() string {
	h := sha1.Sum(k.key)
	return string(h[:])
}

// putCode sends a put with a fresh token and returns 0 when the node
// stored it, else the KRPC error code it answered.
func putCode(t *testing.T, addr string, k targeter, args fields) int {
	t.Helper()
	raw := rawSocket(t)
	m := rawQuery(t, raw, addr, "get", fields{"target": bstr(k.target())})
	if m.R == nil || m.R.Token == nil {
		t.Fatalf("no token from %s: %+v", addr, m)
	}
	m = rawQuery(t, raw, addr, "put", merge(args, fields{"token": bstr(*m.R.Token)}))
	switch {
	case m.Y == "r":
		return 0
	case m.Error() != nil:
		return m.Error().Code
	}
	t.Fatalf("put answered neither r nor e: %+v", m)
	return -1
}

// stored returns the seq and raw v the node holds for k (ok false: none).
func stored(t *testing.T, addr string, k bep44Key) (seq int64, v string, ok bool) {
	t.Helper()
	m := rawQuery(t, rawSocket(t), addr, "get", fields{"target": bstr(k.target())})
	if m.R == nil || len(m.R.V) == 0 {
		return 0, "", false
	}
	if m.R.Seq == nil {
		t.Fatalf("a value without seq: %+v", m.R)
	}
	var s string
	if err := bencode.Unmarshal(m.R.V, &s); err != nil {
		t.Fatalf("v is not a string: %q", m.R.V)
	}
	return *m.R.Seq, s, true
}

// TestDHTNodeBEP44Put runs each BEP44 put rule against a real serving node.
func TestDHTNodeBEP44Put(t *testing.T) {
	t.Parallel()
	nw := mainlinetest.New(t, 1, mainlinetest.WithBootstrapRounds(0))
	addr := nw.Addrs()[0]

	type step struct {
		seq  int64
		v    string
		cas  *int64
		want int // 0: stored, else the KRPC error code
	}
	const (
		ok        = 0
		casFailed = krpc.ErrorCodeCasHashMismatched             // 301
		stale     = krpc.ErrorCodeSequenceNumberLessThanCurrent // 302
		tooBig    = krpc.ErrorCodeMessageValueFieldTooBig       // 205
		badSig    = krpc.ErrorCodeInvalidSignature              // 206
		saltBig   = krpc.ErrorCodeSaltFieldTooBig               // 207
	)
	cases := []struct {
		name    string
		salt    string
		steps   []step
		wantSeq int64
		wantV   string
	}{
		{name: "a cas chain", steps: []step{
			{1, "one", nil, ok}, {2, "two", casOf(1), ok}, {3, "three", casOf(2), ok},
		}, wantSeq: 3, wantV: "three"},
		{name: "a salted cas chain", salt: "room", steps: []step{
			{1, "one", nil, ok}, {2, "two", casOf(1), ok}, {3, "three", casOf(2), ok},
		}, wantSeq: 3, wantV: "three"},
		{name: "a wrong cas", steps: []step{
			{1, "one", nil, ok}, {2, "two", casOf(7), casFailed}, {2, "two", casOf(2), casFailed},
			{2, "two", casOf(1), ok},
		}, wantSeq: 2, wantV: "two"},
		{name: "plain puts after a cas write", steps: []step{
			{1, "one", nil, ok}, {2, "two", casOf(1), ok}, {3, "three", nil, ok}, {4, "four", nil, ok},
		}, wantSeq: 4, wantV: "four"},
		{name: "cas on an empty slot", steps: []step{
			{5, "five", casOf(4), ok},
		}, wantSeq: 5, wantV: "five"},
		{name: "a lower seq", steps: []step{
			{5, "five", nil, ok}, {4, "four", nil, stale}, {4, "four", casOf(5), stale},
			{4, "four", casOf(3), casFailed}, // cas is checked first, as BEP44 orders it
		}, wantSeq: 5, wantV: "five"},
		{name: "the same seq", steps: []step{
			{5, "five", nil, ok}, {5, "five", nil, ok}, {5, "other", nil, stale},
		}, wantSeq: 5, wantV: "five"},
		{name: "997 bytes", steps: []step{{1, strings.Repeat("a", 997), nil, ok}},
			wantSeq: 1, wantV: strings.Repeat("a", 997)},
		{name: "1000 bytes", steps: []step{{1, strings.Repeat("b", 999), nil, ok}, {2, strings.Repeat("b", 1000), nil, ok}},
			wantSeq: 2, wantV: strings.Repeat("b", 1000)},
		{name: "1001 bytes", steps: []step{{1, "small", nil, ok}, {2, strings.Repeat("c", 1001), nil, tooBig}},
			wantSeq: 1, wantV: "small"},
		{name: "a salt of 65 bytes", salt: strings.Repeat("s", 65), steps: []step{{1, "one", nil, saltBig}}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k := newBEP44Key(t, byte(16*i), tc.salt)
			for j, s := range tc.steps {
				if got := putCode(t, addr, k, k.put(s.seq, s.v, s.cas)); got != s.want {
					t.Fatalf("step %d (seq %d, cas %v): answer %d, want %d", j+1, s.seq, fmtCas(s.cas), got, s.want)
				}
			}
			seq, v, found := stored(t, addr, k)
			if tc.wantV == "" {
				if found {
					t.Fatalf("stored seq %d although every put was refused", seq)
				}
				return
			}
			if !found || seq != tc.wantSeq || v != tc.wantV {
				t.Fatalf("stored seq %d, %d bytes (found %v); want seq %d, %d bytes", seq, len(v), found, tc.wantSeq, len(tc.wantV))
			}
		})
	}

	t.Run("a bad signature", func(t *testing.T) {
		k := newBEP44Key(t, 0xf0, "")
		args := k.put(1, "one", nil)
		args["v"] = bstr("two") // signed "one"
		if got := putCode(t, addr, k, args); got != badSig {
			t.Fatalf("answer %d, want %d", got, badSig)
		}
		if seq, _, found := stored(t, addr, k); found {
			t.Fatalf("a forged item was stored (seq %d)", seq)
		}
	})
}

func fmtCas(c *int64) string {
	if c == nil {
		return "none"
	}
	return strconv.FormatInt(*c, 10)
}

// TestDHTPublishAfterCasWrite: once another client has written a key with
// a correct cas on every node, our client's plain publish of a newer packet
// still goes through (anacrolix refused every put without that same cas
// until the item expired).
func TestDHTPublishAfterCasWrite(t *testing.T) {
	t.Parallel()
	nw := mainlinetest.New(t, 3)
	ctx := testCtx(t, time.Minute)
	sk := newTestSecretKey(t)
	first := txtPacket(t, sk, 1_000_000, "first", 300)
	second := txtPacket(t, sk, 2_000_000, "second", 300)
	for i := range nw.Len() {
		rawPut(t, nw, i, first)
		code := putCode(t, nw.Addrs()[i], keyTarget{first.PublicKey().Bytes()},
			merge(itemFields(second), fields{"cas": bint(int64(first.Timestamp()))}))
		if code != 0 {
			t.Fatalf("node %d refused a correct cas write: %d", i, code)
		}
	}
	third := txtPacket(t, sk, 3_000_000, "third", 300)
	rcpt, err := nw.NewClient().Publish(ctx, third)
	if err != nil || rcpt.DHTNodes != nw.Len() {
		t.Fatalf("publish after a cas write: stored on %d of %d, %v", rcpt.DHTNodes, nw.Len(), err)
	}
	got, err := nw.NewClient().Resolve(ctx, pkarrclient.Query{Key: sk.PublicKey(), MostRecent: true})
	if err != nil || !got.Equal(third) {
		t.Fatalf("resolve: %v, %v", got, err)
	}
}

// TestDHTPublishSendsNoCas: our client's put carries exactly BEP44's
// fields for an unsalted mutable item and no cas, so no node's cas rule,
// right or wrong, can refuse it.
func TestDHTPublishSendsNoCas(t *testing.T) {
	t.Parallel()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	puts := make(chan map[string]bencode.Bytes, 4)
	done := make(chan struct{})
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	go func() {
		defer close(done)
		buf := make([]byte, 1<<16)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			var m struct {
				T string                   `bencode:"t"`
				Q string                   `bencode:"q"`
				A map[string]bencode.Bytes `bencode:"a"`
			}
			if bencode.Unmarshal(buf[:n], &m) != nil {
				continue
			}
			base := fields{"id": bstr("nocas-node-012345678")}
			switch m.Q {
			case "get":
				conn.WriteTo(reply(m.T, base.with("token", bstr("tok"))), from)
			case "put":
				select {
				case puts <- m.A:
				default:
				}
				conn.WriteTo(reply(m.T, base), from)
			default:
				conn.WriteTo(reply(m.T, base), from)
			}
		}
	}()
	c := hostileClient(t, conn.LocalAddr().String())
	sk := newTestSecretKey(t)
	p := txtPacket(t, sk, 1_000_000, "no cas", 300)
	if _, err := c.Publish(testCtx(t, time.Minute), p); err != nil {
		t.Fatal(err)
	}
	args := <-puts
	var keys []string
	for k := range args {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"id", "k", "seq", "sig", "token", "v"}; !slices.Equal(keys, want) {
		t.Fatalf("put arguments %q, want %q", keys, want)
	}
}

// TestDHTNodeItemsExpire: an item not put again for two hours is gone, and
// no longer holds back a lower seq.
func TestDHTNodeItemsExpire(t *testing.T) {
	t.Parallel()
	clock := clockwork.NewFakeClock()
	nw := mainlinetest.New(t, 1, mainlinetest.WithBootstrapRounds(0), mainlinetest.WithNodeOptions(mainline.WithClock(clock)))
	addr := nw.Addrs()[0]
	k := newBEP44Key(t, 0xe0, "")
	if code := putCode(t, addr, k, k.put(5, "five", nil)); code != 0 {
		t.Fatalf("put: %d", code)
	}
	clock.Advance(2*time.Hour - time.Second)
	if seq, _, ok := stored(t, addr, k); !ok || seq != 5 {
		t.Fatalf("before two hours: seq %d, found %v", seq, ok)
	}
	if code := putCode(t, addr, k, k.put(4, "four", nil)); code != krpc.ErrorCodeSequenceNumberLessThanCurrent {
		t.Fatalf("a lower seq before expiry: %d, want 302", code)
	}
	clock.Advance(time.Second)
	if seq, _, ok := stored(t, addr, k); ok {
		t.Fatalf("after two hours the item is still there (seq %d)", seq)
	}
	if code := putCode(t, addr, k, k.put(4, "four", nil)); code != 0 {
		t.Fatalf("a lower seq after expiry: %d, want stored", code)
	}
}
