package chat

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// The room's path to members reached only through a relay.
//
// A circuit relay with limits (the default: 2 minutes and 128 KiB per
// direction) makes Limited connections, and pubsub (v0.19) opens no
// stream over one: it takes a peer only once it is Connected, which a
// Limited connection is not. So a member behind a symmetric NAT, relayed
// and never punched through, would be found, connected and never heard.
// For such members the room has a path of its own: one stream each way,
// opened with network.WithAllowLimitedConn, carrying the same messages as
// the topic, one length-prefixed frame each. pubsub goes on carrying
// everything else, and takes over as soon as it lists the member on the
// topic (a direct link, or an unlimited relay).
//
// Only members discovery found may use it: a stream from any other peer,
// the relay's operator for one, is refused. Their records were signed and
// published in the rendezvous only passphrase holders can read, so this
// asks more of a peer than the topic does (pubsub takes anyone who knows
// the topic's name).

// relayedProto is the protocol of the room's own streams.
const relayedProto = protocol.ID("/phrasemeet-chat/relayed/1.0.0")

// Timings of the relayed path: how often the room looks for members it
// can reach only through a limited relay (connections also wake it), how
// long opening a stream may take, and how long one frame may take to
// leave.
const (
	relayedCheck        = time.Second
	relayedOpenTimeout  = 10 * time.Second
	relayedWriteTimeout = 10 * time.Second
)

// relayedQueue bounds the frames waiting for one member's stream; a
// member too slow to take them loses the surplus, as a slow pubsub peer
// does, rather than holding memory.
const relayedQueue = 64

// relayedStream is this peer's outbound stream to one member.
type relayedStream struct {
	s     network.Stream
	queue chan []byte
}

var errFrameTooLarge = errors.New("frame larger than a room message can be")

// readFrame reads one frame: its length as a uvarint, then that many
// bytes, at most max.
func readFrame(r *bufio.Reader, max int) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if n > uint64(max) {
		return nil, fmt.Errorf("%w: %d bytes", errFrameTooLarge, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}

// appendFrame appends b as a frame.
func appendFrame(dst, b []byte) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(b))), b...)
}

// keepRelayed opens the relayed path to every member connected through a
// limited relay only, when it connects and then every relayedCheck (a
// member found after connecting, or a stream that failed, gets another
// try).
func (r *Room) keepRelayed(ctx context.Context) {
	defer r.wg.Done()
	sub, err := r.h.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged))
	if err != nil {
		r.con.Statusf("watching relayed members: %v", err)
		return
	}
	defer sub.Close()
	tick := time.NewTicker(relayedCheck)
	defer tick.Stop()
	for {
		select {
		case ev, ok := <-sub.Out():
			if !ok {
				return
			}
			r.checkRelayed(ctx, ev.(event.EvtPeerConnectednessChanged).Peer)
		case <-tick.C:
			for _, p := range r.h.Network().Peers() {
				r.checkRelayed(ctx, p)
			}
		case <-ctx.Done():
			return
		}
	}
}

// relayable reports whether the relayed path is for p: a member found by
// discovery, connected only through a limited relay.
func (r *Room) relayable(p peer.ID) bool {
	return r.h.Network().Connectedness(p) == network.Limited && r.mon.isMember(p)
}

// checkRelayed opens the relayed path to p if it is relayable and no path
// is open or opening.
func (r *Room) checkRelayed(ctx context.Context, p peer.ID) {
	if !r.relayable(p) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.relayed[p] != nil || r.opening[p] {
		return
	}
	r.opening[p] = true
	r.wg.Add(1)
	go r.openRelayed(ctx, p)
}

func (r *Room) openRelayed(ctx context.Context, p peer.ID) {
	defer r.wg.Done()
	octx, cancel := context.WithTimeout(network.WithAllowLimitedConn(ctx, "phrasemeet-chat"), relayedOpenTimeout)
	s, err := r.h.NewStream(octx, p, relayedProto)
	cancel()
	r.mu.Lock()
	delete(r.opening, p)
	if err != nil || ctx.Err() != nil {
		// Refused (it has not found us yet) or cut: the next check
		// tries again while the member stays connected.
		r.mu.Unlock()
		if s != nil {
			s.Reset()
		}
		return
	}
	rs := &relayedStream{s: s, queue: make(chan []byte, relayedQueue)}
	r.relayed[p] = rs
	mb := r.memberLocked(p)
	if !mb.present() {
		mb.acked, mb.tries = false, 0
	}
	mb.viaRelay = true
	r.kickLocked() // it needs our hello, as a pubsub join would
	r.wg.Add(1)
	r.mu.Unlock()
	go r.writeRelayed(ctx, p, rs)
}

// writeRelayed sends the queued frames to p until the stream or the room
// ends. The other side never writes on it: a read returns only when the
// stream closes, which is how a lost member is noticed without writing.
func (r *Room) writeRelayed(ctx context.Context, p peer.ID, rs *relayedStream) {
	defer r.wg.Done()
	closed := make(chan struct{})
	go func() {
		_, _ = rs.s.Read(make([]byte, 1))
		close(closed)
	}()
	defer func() {
		rs.s.Reset()
		<-closed
		if ctx.Err() == nil {
			r.dropRelayed(p, rs)
		}
	}()
	for {
		select {
		case b := <-rs.queue:
			_ = rs.s.SetWriteDeadline(time.Now().Add(relayedWriteTimeout))
			if _, err := rs.s.Write(appendFrame(nil, b)); err != nil {
				return
			}
		case <-closed:
			return
		case <-ctx.Done():
			return
		}
	}
}

// dropRelayed forgets p's stream rs. The member leaves only if nothing
// else reaches it: pubsub lists it, or a connection remains over which the
// next check opens another stream.
func (r *Room) dropRelayed(p peer.ID, rs *relayedStream) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.relayed[p] != rs {
		return
	}
	delete(r.relayed, p)
	mb := r.members[p]
	if mb == nil {
		return
	}
	mb.viaRelay = false
	if !mb.subscribed && r.h.Network().Connectedness(p) == network.NotConnected {
		r.departLocked(mb)
	}
}

// handleRelayed reads the frames a member sends over its relayed path.
func (r *Room) handleRelayed(s network.Stream) {
	p := s.Conn().RemotePeer()
	if !r.mon.isMember(p) {
		s.Reset()
		return
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-r.ctx.Done():
			s.Reset()
		case <-done:
		}
	}()
	br := bufio.NewReader(s)
	for {
		b, err := readFrame(br, maxWire)
		if err != nil {
			s.Reset()
			return
		}
		if m, err := decodeMessage(b); err == nil {
			r.handle(p, m)
		}
	}
}

// sendRelayed queues a message for every member reached over the relayed
// path but not among listed (the members pubsub sends to: a relay's
// limited budget is not spent on what pubsub delivers), and returns how
// many.
func (r *Room) sendRelayed(b []byte, listed []peer.ID) int {
	skip := make(map[peer.ID]bool, len(listed))
	for _, p := range listed {
		skip[p] = true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for p, rs := range r.relayed {
		if skip[p] {
			continue
		}
		select {
		case rs.queue <- b:
			n++
		default: // full: that member is not taking what it is sent
		}
	}
	return n
}
