package pkarrclient

import (
	"context"
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anacrolix/dht/v2"
	"github.com/anacrolix/dht/v2/bep44"
	k_nearest_nodes "github.com/anacrolix/dht/v2/k-nearest-nodes"
	"github.com/anacrolix/dht/v2/krpc"
	"github.com/anacrolix/dht/v2/traversal"
	"github.com/anacrolix/torrent/bencode"
)

// DHTName is the name a [DHT] backend reports in outcomes and errors.
const DHTName = "mainline-dht"

// DHT is a [Backend] on the BitTorrent Mainline DHT: a signed packet is a
// BEP44 mutable item with k = the public key, seq = the packet's timestamp,
// v = its raw DNS message, no salt and no cas, stored at target SHA-1(k).
// That is exactly the buffer pkarr signs, so packets travel unchanged
// between relays, this backend and pkarr's own clients.
//
// Publish and Resolve run their own lookups on the library's traversal
// and single-query calls rather than anacrolix's exts/getput, which waits
// for a whole traversal before answering, reports no acknowledgements and
// dereferences a missing seq (see the package notes). Every answer is
// verified here: its key, its seq and its Ed25519 signature.
//
// A DHT is passive by default: it asks, it never answers, which is what a
// client behind NAT should be. [DHTServe] makes it a full node that answers
// queries and stores items for others (the dht-node command).
type DHT struct {
	srv    *dht.Server
	conn   net.PacketConn
	cfg    dhtConfig
	logger *slog.Logger

	ctx    context.Context // cancelled by Close; bounds background work
	cancel context.CancelFunc
	wg     sync.WaitGroup // background goroutines and finishing traversals

	// mu guards closed; wg.Add happens only under mu while !closed, so
	// Close's Wait never races a new registration.
	mu     sync.Mutex
	closed bool

	closeOnce sync.Once
	closeErr  error
}

var _ Backend = (*DHT)(nil)

// Name returns [DHTName].
func (d *DHT) Name() string { return DHTName }

// Addr is the node's UDP address.
func (d *DHT) Addr() net.Addr { return d.conn.LocalAddr() }

// AddrPort is the node's UDP address as a netip.AddrPort.
func (d *DHT) AddrPort() netip.AddrPort {
	if ua, ok := d.conn.LocalAddr().(*net.UDPAddr); ok {
		return ua.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(d.conn.LocalAddr().String())
	return ap
}

// ID is the node's 20-byte DHT node ID.
func (d *DHT) ID() [20]byte { return d.srv.ID() }

// RoutingTableSize is the number of nodes in the routing table.
func (d *DHT) RoutingTableSize() int { return d.srv.NumNodes() }

// Serving reports whether the node answers queries ([DHTServe]).
func (d *DHT) Serving() bool { return d.cfg.serve }

// mutableTarget is the BEP44 target of a pkarr key: SHA-1 of the key, no salt.
func mutableTarget(key PublicKey) bep44.Target { return sha1.Sum(key[:]) }

// Resolve looks the key up in the DHT. Without q.MostRecent it returns the
// first valid packet any node sends; with it, it waits for the lookup to
// settle (bounded by the timeout) and returns the newest. q.NewerThan is
// passed as BEP44's seq, so nodes holding nothing newer send nothing.
func (d *DHT) Resolve(ctx context.Context, q Query) (*SignedPacket, error) {
	if err := d.ctx.Err(); err != nil {
		return nil, d.fail(opResolve, fmt.Errorf("%w: DHT closed", ErrUnavailable))
	}
	ctx, cancel := d.opContext(ctx)
	defer cancel()
	target := mutableTarget(q.Key)
	var seq *int64
	if q.NewerThan > 0 && q.NewerThan <= maxSeq {
		s := int64(q.NewerThan)
		seq = &s
	}

	// Room for every query in flight, so no verified packet is left
	// blocked in a sender when the loop below stops reading.
	found := make(chan *SignedPacket, d.cfg.alpha)
	var mu sync.Mutex
	var tally getTally
	op, err := d.startTraversal(krpc.ID(target), dhtK, nil, func(qctx context.Context, addr krpc.NodeAddr) traversal.QueryResult {
		res := d.srv.Get(qctx, dht.NewAddr(addr.UDP()), target, seq, dht.QueryRateLimiting{})
		p, verdict := packetFromGet(q.Key, res)
		mu.Lock()
		tally.add(verdict)
		mu.Unlock()
		if p != nil && (q.NewerThan == 0 || p.Timestamp() > q.NewerThan) {
			select {
			case found <- p:
			case <-qctx.Done():
			}
		}
		return tokenOnly(res.TraversalQueryResult(addr))
	})
	if err != nil {
		return nil, d.fail(opResolve, err)
	}
	defer op.Stop()

	var best *SignedPacket
	stalled := false
	for {
		select {
		case p := <-found:
			if !q.MostRecent {
				return p, nil
			}
			if p.MoreRecentThan(best) {
				best = p
			}
			continue
		case <-op.Stalled():
			stalled = true
		case <-ctx.Done():
		}
		break
	}
	// Drain what arrived in the same instant as the stall.
	for {
		select {
		case p := <-found:
			if p.MoreRecentThan(best) {
				best = p
			}
			continue
		default:
		}
		break
	}
	if best != nil {
		return best, nil
	}
	mu.Lock()
	t := tally
	mu.Unlock()
	var cut error
	if !stalled {
		cut = ctx.Err()
	}
	return nil, d.fail(opResolve, t.resolveError(cut, q.NewerThan > 0))
}

// maxSeq is the largest timestamp a BEP44 seq (a signed 64-bit integer)
// can carry.
const maxSeq = Timestamp(1<<63 - 1)

// getVerdict classifies one node's answer to a get query.
type getVerdict int

const (
	getNoAnswer  getVerdict = iota // timeout, network error or KRPC error
	getNoValue                     // answered, holds nothing (or nothing newer)
	getValid                       // a verified packet
	getMalformed                   // a value that failed verification
)

type getTally struct{ noAnswer, noValue, valid, malformed int }

func (t *getTally) add(v getVerdict) {
	switch v {
	case getNoAnswer:
		t.noAnswer++
	case getNoValue:
		t.noValue++
	case getValid:
		t.valid++
	case getMalformed:
		t.malformed++
	}
}

// resolveError explains a lookup that found nothing. cut is the context's
// error when the lookup was cut short before it settled: then the nodes
// closest to the key may not have been asked, and "not found" would be a
// guess that a relay would cache, so it is ErrUnavailable.
func (t getTally) resolveError(cut error, hinted bool) error {
	answered := t.noValue + t.valid + t.malformed
	switch {
	case answered == 0 && cut != nil:
		return fmt.Errorf("%w: no DHT node answered before the deadline (%d queried): %w",
			ErrUnavailable, t.noAnswer, cut)
	case cut != nil:
		return fmt.Errorf("%w: DHT lookup cut short after %d answers, none with a valid packet: %w",
			ErrUnavailable, answered, cut)
	case answered == 0:
		return fmt.Errorf("%w: no DHT node answered (%d queried)", ErrUnavailable, t.noAnswer)
	case t.malformed > 0:
		return fmt.Errorf("%w: %d DHT nodes answered, none with a valid packet (%d sent invalid values)",
			ErrNotFound, answered, t.malformed)
	case hinted:
		return fmt.Errorf("%w: none newer on %d DHT nodes", ErrNotFound, answered)
	}
	return fmt.Errorf("%w: on %d DHT nodes", ErrNotFound, answered)
}

// packetFromGet extracts and verifies a packet from a get reply. Nothing in
// the reply is trusted: the key must be the one asked for, seq must be
// present and non-negative, v must be one bencoded string, and the
// signature must verify over pkarr's signable bytes.
func packetFromGet(key PublicKey, res dht.QueryResult) (*SignedPacket, getVerdict) {
	if res.Err != nil || res.Reply.Y != "r" || res.Reply.R == nil {
		return nil, getNoAnswer
	}
	r := res.Reply.R
	if len(r.V) == 0 {
		return nil, getNoValue
	}
	if r.Seq == nil || *r.Seq < 0 || r.K != [32]byte(key) {
		return nil, getMalformed
	}
	var v []byte
	if r.V[0] < '0' || r.V[0] > '9' { // a list of small integers decodes too
		return nil, getMalformed
	}
	if err := bencode.Unmarshal(r.V, &v); err != nil {
		return nil, getMalformed
	}
	payload := make([]byte, 0, SignatureSize+8+len(v))
	payload = append(payload, r.Sig[:]...)
	payload = binary.BigEndian.AppendUint64(payload, uint64(*r.Seq))
	payload = append(payload, v...)
	p, err := ParseRelayPayload(key, payload)
	if err != nil {
		return nil, getMalformed
	}
	return p, getValid
}

// tokenOnly keeps a node among the closest only if it sent a write token
// (a string), since a put to it needs one.
func tokenOnly(r traversal.QueryResult) traversal.QueryResult {
	if _, ok := r.ClosestData.(string); !ok {
		r.ClosestData = nil
		r.ResponseFrom = nil
	}
	return r
}

// DHTPublishError tells why a publish failed: no node stored the packet,
// or the lookup found a more recent one.
type DHTPublishError struct {
	// Closest is the number of closest nodes the put was sent to (0 when
	// the lookup already found a more recent packet and nothing was put).
	Closest int
	// Stale counts nodes that hold a more recent packet: found verified
	// during the lookup, or answering the put with 302 (which also covers
	// a different packet with the same timestamp).
	Stale int
	// TooLarge counts nodes that answered 205. Stock anacrolix nodes
	// refuse values whose bencoding exceeds 1000 bytes, i.e. DNS messages
	// of 997 bytes or more, which pkarr allows; our serving nodes, like
	// pkarr's, mainline and bittorrent-dht, take up to 1000 raw bytes.
	TooLarge int
	// Other counts other KRPC errors, timeouts and network failures.
	Other int
}

func (e *DHTPublishError) Error() string {
	switch {
	case e.Closest == 0 && e.Stale > 0:
		return fmt.Sprintf("pkarr: %d DHT nodes hold a more recent packet; nothing was published", e.Stale)
	case e.Closest == 0:
		return "pkarr: DHT publish found no node to store on"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "pkarr: no DHT node stored the packet (%d asked", e.Closest)
	if e.Stale > 0 {
		fmt.Fprintf(&b, ", %d hold a more recent packet (302)", e.Stale)
	}
	if e.TooLarge > 0 {
		fmt.Fprintf(&b, ", %d refused it as too large (205)", e.TooLarge)
	}
	if e.Other > 0 {
		fmt.Fprintf(&b, ", %d failed or did not answer", e.Other)
	}
	b.WriteString(")")
	return b.String()
}

// Unwrap makes errors.Is match ErrNotMostRecent when some node holds a more
// recent packet, ErrPacketTooLarge when some node refused the size, and
// ErrUnavailable otherwise.
func (e *DHTPublishError) Unwrap() []error {
	var errs []error
	if e.Stale > 0 {
		errs = append(errs, ErrNotMostRecent)
	}
	if e.TooLarge > 0 {
		errs = append(errs, ErrPacketTooLarge)
	}
	if len(errs) == 0 {
		errs = append(errs, ErrUnavailable)
	}
	return errs
}

// Publish stores p on the nodes closest to its key: a get lookup collects
// write tokens from the closest nodes, then each gets a put. It reports
// how many stored it in the receipt. It fails with a *[DHTPublishError]
// (inside a *[BackendError]) when none did, or when the lookup met a more
// recent packet, verified, on some node (errors.Is ErrNotMostRecent; then
// nothing is put). Unverifiable 302 answers fail a publish only when no
// node stored it, so one lying node cannot block a key.
func (d *DHT) Publish(ctx context.Context, p *SignedPacket) (PublishReceipt, error) {
	if p == nil {
		return PublishReceipt{}, d.fail(opPublish, fmt.Errorf("%w: nil packet", ErrBadRequest))
	}
	if p.Timestamp() > maxSeq {
		return PublishReceipt{}, d.fail(opPublish, fmt.Errorf("%w: timestamp %d does not fit a BEP44 seq",
			ErrBadRequest, p.Timestamp()))
	}
	if err := d.ctx.Err(); err != nil {
		return PublishReceipt{}, d.fail(opPublish, fmt.Errorf("%w: DHT closed", ErrUnavailable))
	}
	ctx, cancel := d.opContext(ctx)
	defer cancel()
	key := p.PublicKey()
	target := mutableTarget(key)
	seq := int64(p.Timestamp())

	// The lookup passes one below our seq, so nodes holding our seq or a
	// newer one send the value back. A newer one, verified, proves ours
	// stale before any put. Our own packet, verified, marks a node that
	// already holds it: a republish there may earn a 302 (bittorrent-dht
	// refuses an equal seq, where BEP44 would renew the item), which then
	// means "already stored", not "stale". Only a verified copy counts:
	// a node merely claiming our seq proves nothing.
	var newer atomic.Int32
	var holders sync.Map // node address string -> struct{}
	hint := max(seq-1, 0)
	op, err := d.startTraversal(krpc.ID(target), dhtK, func(data any) bool {
		_, ok := data.(string)
		return ok
	}, func(qctx context.Context, addr krpc.NodeAddr) traversal.QueryResult {
		res := d.srv.Get(qctx, dht.NewAddr(addr.UDP()), target, &hint, dht.QueryRateLimiting{})
		if q, v := packetFromGet(key, res); v == getValid {
			switch {
			case q.MoreRecentThan(p):
				newer.Add(1)
			case q.Equal(p):
				holders.Store(addr.String(), struct{}{})
			}
		}
		return tokenOnly(res.TraversalQueryResult(addr))
	})
	if err != nil {
		return PublishReceipt{}, d.fail(opPublish, err)
	}
	// The lookup may use most of the time, not all of it: a put to the
	// nodes found so far beats a lookup that ran out the clock.
	lookupCtx, lookupCancel := context.WithTimeout(ctx, remaining(ctx)*7/10)
	select {
	case <-op.Stalled():
	case <-lookupCtx.Done():
	}
	lookupCancel()
	op.Stop()
	<-op.Stopped() // Closest is only safe to read once no query can add to it
	if n := int(newer.Load()); n > 0 {
		return PublishReceipt{}, d.fail(opPublish, &DHTPublishError{Stale: n})
	}
	var closest []k_nearest_nodes.Elem
	op.Closest().Range(func(e k_nearest_nodes.Elem) { closest = append(closest, e) })
	if len(closest) == 0 {
		if err := ctx.Err(); err != nil {
			return PublishReceipt{}, d.fail(opPublish, fmt.Errorf("%w: DHT lookup: %w", ErrUnavailable, err))
		}
		return PublishReceipt{}, d.fail(opPublish, &DHTPublishError{})
	}

	args := krpc.MsgArgs{
		ID:  d.srv.ID(),
		K:   key,
		Seq: &seq,
		V:   p.DNS(),
	}
	copy(args.Sig[:], p.Signature())
	type putResult struct {
		ok   bool
		code int
		held bool // the node sent our packet back in the lookup
	}
	results := make(chan putResult, len(closest))
	for _, e := range closest {
		a := args
		a.Token = e.Data.(string) // DataFilter admitted strings only
		addr := dht.NewAddr(e.Addr.UDP())
		_, held := holders.Load(e.Addr.String())
		go func() {
			// A put unanswered after the resend delay is sent once more:
			// a lost datagram should not cost a stored copy, and a second
			// one is cheap next to a new lookup.
			res := d.srv.Query(ctx, addr, "put", dht.QueryInput{MsgArgs: a, NumTries: 2})
			switch {
			case res.Err != nil:
				results <- putResult{}
			case res.Reply.Y == "r":
				results <- putResult{ok: true}
			case res.Reply.Error() != nil:
				results <- putResult{code: res.Reply.Error().Code, held: held}
			default:
				results <- putResult{}
			}
		}()
	}
	perr := DHTPublishError{Closest: len(closest)}
	stored := 0
	for range closest {
		switch r := <-results; {
		case r.ok:
			stored++
		case r.code == krpc.ErrorCodeSequenceNumberLessThanCurrent && r.held:
			stored++ // it refused to renew what it holds
		case r.code == krpc.ErrorCodeSequenceNumberLessThanCurrent:
			perr.Stale++
		case r.code == krpc.ErrorCodeMessageValueFieldTooBig:
			perr.TooLarge++
		default:
			perr.Other++
		}
	}
	if stored == 0 {
		return PublishReceipt{}, d.fail(opPublish, &perr)
	}
	if perr.Stale > 0 {
		// A 302 is only a claim: one stranger among the closest nodes
		// could otherwise fail every publish of a key. A more recent
		// packet that really exists was already seen, verified, during
		// the lookup and stopped the publish there.
		d.logger.Debug("pkarr DHT: some nodes claim a more recent packet",
			slog.String("key", key.String()), slog.Int("stored", stored), slog.Int("stale", perr.Stale))
	}
	return PublishReceipt{DHTNodes: stored}, nil
}

// opContext bounds one publish or resolve by the DHT's timeout and ends it
// when the DHT is closed.
func (d *DHT) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.timeout)
	stop := context.AfterFunc(d.ctx, cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}

// remaining is the time left before ctx's deadline.
func remaining(ctx context.Context) time.Duration {
	dl, ok := ctx.Deadline()
	if !ok {
		return defaultDHTTimeout
	}
	return max(time.Until(dl), 0)
}

func (d *DHT) fail(op string, err error) error {
	return &BackendError{Backend: DHTName, Op: op, Err: err}
}
