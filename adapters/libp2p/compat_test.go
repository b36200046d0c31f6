package libp2padapter_test

import (
	"context"
	"slices"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	coredisc "github.com/libp2p/go-libp2p/core/discovery"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/backoff"
	"github.com/libp2p/go-libp2p/p2p/discovery/util"

	"github.com/phrasemeet/discovery"
	libp2padapter "github.com/phrasemeet/discovery/adapters/libp2p"
)

// Three hosts that share nothing but a rendezvous space meet through
// pubsub's own discovery: nobody dials by hand, and a message published on
// one arrives on the others.
func TestPubSubWithDiscovery(t *testing.T) {
	ctx := testContext(t)
	mem := discovery.NewMemory()
	type node struct {
		id     peer.ID
		topic  *pubsub.Topic
		sub    *pubsub.Subscription
		events *pubsub.TopicEventHandler
	}
	nodes := make([]node, 3)
	// pubsub drops what node 0 publishes to a peer before its own stream
	// to that peer is open, even with flood publishing; its tracer says
	// when each opens.
	streams := make(chan peer.ID, 16)
	for i := range nodes {
		h := newQUICHost(t)
		a := newAdapter(t, h, libp2padapter.MemoryOpener(mem))
		psCtx, stop := context.WithCancel(context.Background())
		t.Cleanup(stop)
		opts := []pubsub.Option{pubsub.WithDiscovery(a), pubsub.WithFloodPublish(true)}
		if i == 0 {
			opts = append(opts, pubsub.WithEventTracer(streamTracer(streams)))
		}
		ps, err := pubsub.NewGossipSub(psCtx, h, opts...)
		if err != nil {
			t.Fatal(err)
		}
		topic, err := ps.Join("chat")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { topic.Close() })
		events, err := topic.EventHandler()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(events.Cancel)
		sub, err := topic.Subscribe() // advertises "floodsub:chat" and starts discovery
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(sub.Cancel)
		nodes[i] = node{id: h.ID(), topic: topic, sub: sub, events: events}
	}

	// Node 0 publishes once it knows both others are in the topic and
	// has a stream to each.
	joined := map[peer.ID]bool{nodes[1].id: true, nodes[2].id: true}
	for len(joined) > 0 {
		ev, err := nodes[0].events.NextPeerEvent(ctx)
		if err != nil {
			t.Fatalf("node 0 waiting for the others to join the topic: %v", err)
		}
		if ev.Type == pubsub.PeerJoin {
			delete(joined, ev.Peer)
		}
	}
	open := map[peer.ID]bool{nodes[1].id: true, nodes[2].id: true}
	for len(open) > 0 {
		select {
		case p := <-streams:
			delete(open, p)
		case <-ctx.Done():
			t.Fatal("node 0 never opened its streams to the others")
		}
	}
	if err := nodes[0].topic.Publish(ctx, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes[1:] {
		msg, err := n.sub.Next(ctx)
		if err != nil {
			t.Fatalf("%s waiting for the message: %v", n.id, err)
		}
		if string(msg.Data) != "hello" || msg.GetFrom() != nodes[0].id {
			t.Errorf("%s received %q from %s, want hello from node 0", n.id, msg.Data, msg.GetFrom())
		}
	}
}

// streamTracer reports each outbound pubsub stream's peer on ch.
type streamTracer chan<- peer.ID

func (s streamTracer) Trace(evt *pb.TraceEvent) {
	if evt.GetType() != pb.TraceEvent_ON_NEW_OUTBOUND_STREAM {
		return
	}
	if id, err := peer.IDFromBytes(evt.GetOnNewOutboundStream().GetPeerID()); err == nil {
		select {
		case s <- id:
		default:
		}
	}
}

// Through backoff.NewBackoffDiscovery, with util.Advertise keeping the
// record and util.FindPeers reading it. Limit is required: without it,
// BackoffDiscovery returns no peer from a live query.
func TestBackoffDiscoveryAndUtilAdvertise(t *testing.T) {
	ctx := testContext(t)
	mem := discovery.NewMemory()
	ha, hb := newHost(t), newHost(t)
	a := newAdapter(t, ha, libp2padapter.MemoryOpener(mem))
	b := newAdapter(t, hb, libp2padapter.MemoryOpener(mem))
	da, err := backoff.NewBackoffDiscovery(a, backoff.NewFixedBackoff(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	db, err := backoff.NewBackoffDiscovery(b, backoff.NewFixedBackoff(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	const ns = "backoff"
	events := subscribe(t, ctx, b, ns)
	advCtx, stop := context.WithCancel(ctx)
	util.Advertise(advCtx, da, ns)

	found, err := util.FindPeers(ctx, db, ns, coredisc.Limit(10))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(found), []peer.ID{ha.ID()}) {
		t.Fatalf("BackoffDiscovery found %v, want A (%s)", ids(found), ha.ID())
	}

	// util.Advertise's context is the record's lifetime.
	awaitEvent(t, ctx, events, "A found", isEvent(discovery.Found, ha.ID()))
	stop()
	awaitEvent(t, ctx, events, "A lost once util.Advertise's context ended", isEvent(discovery.Lost, ha.ID()))
}

// backoff.NewBackoffConnector dials what FindPeers returns.
func TestBackoffConnector(t *testing.T) {
	ctx := testContext(t)
	mem := discovery.NewMemory()
	ha, hb := newHost(t), newHost(t)
	a := newAdapter(t, ha, libp2padapter.MemoryOpener(mem))
	b := newAdapter(t, hb, libp2padapter.MemoryOpener(mem))
	conns := connectedness(t, hb)
	if _, err := a.Advertise(ctx, "connect"); err != nil {
		t.Fatal(err)
	}
	connector, err := backoff.NewBackoffConnector(hb, 16, 10*time.Second, backoff.NewFixedBackoff(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ch, err := b.FindPeers(ctx, "connect")
	if err != nil {
		t.Fatal(err)
	}
	connector.Connect(ctx, ch)
	awaitConnected(t, ctx, hb, conns, ha.ID())
}
