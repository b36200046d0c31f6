package mainline

import (
	"context"
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/anacrolix/dht/v2"
	"github.com/anacrolix/dht/v2/bep44"
	"github.com/anacrolix/dht/v2/krpc"
	"github.com/anacrolix/dht/v2/traversal"
	"github.com/anacrolix/torrent/bencode"

	"github.com/phrasemeet/discovery/pkarrclient"
)

// mutableTarget is the BEP44 target of a pkarr key: SHA-1 of the key, no salt.
func mutableTarget(key pkarrclient.PublicKey) bep44.Target { return sha1.Sum(key[:]) }

// Resolve looks the key up in the DHT. Without q.MostRecent it returns the
// first valid packet any node sends; with it, it waits for the lookup to
// settle (bounded by the timeout) and returns the newest. q.NewerThan is
// passed as BEP44's seq, so nodes holding nothing newer send nothing.
func (d *DHT) Resolve(ctx context.Context, q pkarrclient.Query) (*pkarrclient.SignedPacket, error) {
	if err := d.ctx.Err(); err != nil {
		return nil, d.fail(pkarrclient.OpResolve, fmt.Errorf("%w: DHT closed", pkarrclient.ErrUnavailable))
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
	found := make(chan *pkarrclient.SignedPacket, d.cfg.alpha)
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
		return nil, d.fail(pkarrclient.OpResolve, err)
	}
	defer op.Stop()

	var best *pkarrclient.SignedPacket
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
	return nil, d.fail(pkarrclient.OpResolve, t.resolveError(cut, q.NewerThan > 0))
}

// maxSeq is the largest timestamp a BEP44 seq (a signed 64-bit integer)
// can carry.
const maxSeq = pkarrclient.Timestamp(1<<63 - 1)

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
			pkarrclient.ErrUnavailable, t.noAnswer, cut)
	case cut != nil:
		return fmt.Errorf("%w: DHT lookup cut short after %d answers, none with a valid packet: %w",
			pkarrclient.ErrUnavailable, answered, cut)
	case answered == 0:
		return fmt.Errorf("%w: no DHT node answered (%d queried)", pkarrclient.ErrUnavailable, t.noAnswer)
	case t.malformed > 0:
		return fmt.Errorf("%w: %d DHT nodes answered, none with a valid packet (%d sent invalid values)",
			pkarrclient.ErrNotFound, answered, t.malformed)
	case hinted:
		return fmt.Errorf("%w: none newer on %d DHT nodes", pkarrclient.ErrNotFound, answered)
	}
	return fmt.Errorf("%w: on %d DHT nodes", pkarrclient.ErrNotFound, answered)
}

// packetFromGet extracts and verifies a packet from a get reply. Nothing in
// the reply is trusted: the key must be the one asked for, seq must be
// present and non-negative, v must be one bencoded string, and the
// signature must verify over pkarr's signable bytes.
func packetFromGet(key pkarrclient.PublicKey, res dht.QueryResult) (*pkarrclient.SignedPacket, getVerdict) {
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
	payload := make([]byte, 0, pkarrclient.SignatureSize+8+len(v))
	payload = append(payload, r.Sig[:]...)
	payload = binary.BigEndian.AppendUint64(payload, uint64(*r.Seq))
	payload = append(payload, v...)
	p, err := pkarrclient.ParseRelayPayload(key, payload)
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
