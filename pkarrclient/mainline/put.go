package mainline

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/anacrolix/dht/v2"
	k_nearest_nodes "github.com/anacrolix/dht/v2/k-nearest-nodes"
	"github.com/anacrolix/dht/v2/krpc"
	"github.com/anacrolix/dht/v2/traversal"

	"github.com/phrasemeet/discovery/pkarrclient"
)

// PublishError tells why a publish failed: no node stored the packet,
// or the lookup found a more recent one.
type PublishError struct {
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

// Error says first why nothing was stored when that is one reason
// (a more recent packet, or no node found), else the counts by reason.
func (e *PublishError) Error() string {
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
func (e *PublishError) Unwrap() []error {
	var errs []error
	if e.Stale > 0 {
		errs = append(errs, pkarrclient.ErrNotMostRecent)
	}
	if e.TooLarge > 0 {
		errs = append(errs, pkarrclient.ErrPacketTooLarge)
	}
	if len(errs) == 0 {
		errs = append(errs, pkarrclient.ErrUnavailable)
	}
	return errs
}

// Publish stores p on the nodes closest to its key: a get lookup collects
// write tokens from the closest nodes, then each gets a put. It reports
// how many stored it in the receipt. It fails with a *[PublishError]
// (inside a *[pkarrclient.BackendError]) when none did, or when the lookup met a more
// recent packet, verified, on some node (errors.Is ErrNotMostRecent; then
// nothing is put). Unverifiable 302 answers fail a publish only when no
// node stored it, so one lying node cannot block a key.
func (d *DHT) Publish(ctx context.Context, p *pkarrclient.SignedPacket) (pkarrclient.PublishReceipt, error) {
	if p == nil {
		return pkarrclient.PublishReceipt{}, d.fail(pkarrclient.OpPublish, fmt.Errorf("%w: nil packet", pkarrclient.ErrBadRequest))
	}
	if p.Timestamp() > maxSeq {
		return pkarrclient.PublishReceipt{}, d.fail(pkarrclient.OpPublish, fmt.Errorf("%w: timestamp %d does not fit a BEP44 seq",
			pkarrclient.ErrBadRequest, p.Timestamp()))
	}
	if err := d.ctx.Err(); err != nil {
		return pkarrclient.PublishReceipt{}, d.fail(pkarrclient.OpPublish, fmt.Errorf("%w: DHT closed", pkarrclient.ErrUnavailable))
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
		return pkarrclient.PublishReceipt{}, d.fail(pkarrclient.OpPublish, err)
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
		return pkarrclient.PublishReceipt{}, d.fail(pkarrclient.OpPublish, &PublishError{Stale: n})
	}
	var closest []k_nearest_nodes.Elem
	op.Closest().Range(func(e k_nearest_nodes.Elem) { closest = append(closest, e) })
	if len(closest) == 0 {
		if err := ctx.Err(); err != nil {
			return pkarrclient.PublishReceipt{}, d.fail(pkarrclient.OpPublish, fmt.Errorf("%w: DHT lookup: %w", pkarrclient.ErrUnavailable, err))
		}
		return pkarrclient.PublishReceipt{}, d.fail(pkarrclient.OpPublish, &PublishError{})
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
	perr := PublishError{Closest: len(closest)}
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
		return pkarrclient.PublishReceipt{}, d.fail(pkarrclient.OpPublish, &perr)
	}
	if perr.Stale > 0 {
		// A 302 is only a claim: one stranger among the closest nodes
		// could otherwise fail every publish of a key. A more recent
		// packet that really exists was already seen, verified, during
		// the lookup and stopped the publish there.
		d.logger.Debug("pkarr DHT: some nodes claim a more recent packet",
			slog.String("key", key.String()), slog.Int("stored", stored), slog.Int("stale", perr.Stale))
	}
	return pkarrclient.PublishReceipt{DHTNodes: stored}, nil
}
