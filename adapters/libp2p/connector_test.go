package libp2padapter_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"

	"github.com/phrasemeet/discovery"
	libp2padapter "github.com/phrasemeet/discovery/adapters/libp2p"
)

// startConnector starts c for the whole test and closes it at the end.
func startConnector(t *testing.T, c *libp2padapter.Connector) {
	t.Helper()
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
}

func notifyChannel() (chan libp2padapter.ConnectEvent, libp2padapter.ConnectorOption) {
	ch := make(chan libp2padapter.ConnectEvent, 256)
	return ch, libp2padapter.ConnectNotify(func(e libp2padapter.ConnectEvent) { ch <- e })
}

func awaitConnect(t *testing.T, ctx context.Context, ch <-chan libp2padapter.ConnectEvent, what string) libp2padapter.ConnectEvent {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-ctx.Done():
		t.Fatalf("waiting for %s: %v", what, ctx.Err())
	}
	panic("unreachable")
}

// announcer is a member of the test's rendezvous space that announces
// records by hand, as other peers (or impostors) would.
func announcer(t *testing.T, open libp2padapter.Opener, ns string) discovery.Discoverer {
	t.Helper()
	d, err := open(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(context.Background()) })
	return d
}

func hostRecord(id peer.ID, addrs []string) discovery.Record {
	return discovery.Record{ID: id.String(), Addrs: addrs}
}

// closedPort returns a loopback TCP address nothing listens on: dials to
// it are refused at once.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port)
}

// peerIDSorted returns a fresh peer ID that sorts above self, or below it
// when above is false: the connector dials a higher ID at once and yields
// to a lower one.
func peerIDSorted(t *testing.T, self peer.ID, above bool) peer.ID {
	t.Helper()
	for {
		id := newPeerID(t)
		if id != self && (id > self) == above {
			return id
		}
	}
}

// barrier announces an unreachable peer that the connector of self dials
// at once, and waits for that dial's failure, which must be the next
// event: every event announced before it has been handled, and none of
// them dialed anyone.
func barrier(t *testing.T, ctx context.Context, src discovery.Discoverer, events <-chan libp2padapter.ConnectEvent, self peer.ID, what string) {
	t.Helper()
	other := peerIDSorted(t, self, true)
	if _, err := src.Announce(ctx, hostRecord(other, []string{closedPort(t)})); err != nil {
		t.Fatal(err)
	}
	if e := awaitConnect(t, ctx, events, "the barrier peer's failure"); e.Peer.ID != other {
		t.Fatalf("%s: %v for %s; want the barrier peer's failure first", what, e.Type, e.Peer.ID)
	}
}

// A found peer is dialed; this host's own record and a peer it is already
// connected to are not.
func TestConnectorConnectsOnFound(t *testing.T) {
	ctx := testContext(t)
	open := libp2padapter.MemoryOpener(discovery.NewMemory())
	ha, hb, hc := newHost(t), newHost(t), newHost(t)
	if err := hb.Connect(ctx, peer.AddrInfo{ID: hc.ID(), Addrs: hc.Addrs()}); err != nil {
		t.Fatal(err)
	}
	src := announcer(t, open, "c")
	events, notify := notifyChannel()
	c, err := libp2padapter.NewConnector(hb, announcer(t, open, "c"), notify, libp2padapter.ConnectYieldDelay(0))
	if err != nil {
		t.Fatal(err)
	}
	startConnector(t, c)
	for _, h := range []host.Host{hb, hc, ha} { // in this order: A's record comes last
		if _, err := src.Announce(ctx, hostRecord(h.ID(), addrStrings(h.Addrs()))); err != nil {
			t.Fatal(err)
		}
	}
	e := awaitConnect(t, ctx, events, "a dial")
	if e.Type != libp2padapter.Connected || e.Peer.ID != ha.ID() || e.Attempt != 1 || e.Err != nil {
		t.Fatalf("first event %v %s attempt %d err %v, want Connected to A on the first attempt", e.Type, e.Peer.ID, e.Attempt, e.Err)
	}
	if hb.Network().Connectedness(ha.ID()) != network.Connected {
		t.Errorf("B reports Connected but is %v to A", hb.Network().Connectedness(ha.ID()))
	}
	// The records of B itself and of C came first; had either been
	// dialed, its outcome (instant: self-dials fail, C is connected) would
	// be reported by now or right after Close.
	c.Close()
	close(events)
	for e := range events {
		t.Errorf("unexpected %v for %s", e.Type, e.Peer.ID)
	}
}

// A peer whose ID sorts below ours is dialed only after the yield. When it
// cannot be reached, it is retried after delays that double up to the cap;
// when it is Lost, retrying stops. The fake clock makes every delay exact
// and every step observable.
func TestConnectorBacksOffUnreachablePeer(t *testing.T) {
	ctx := testContext(t)
	open := libp2padapter.MemoryOpener(discovery.NewMemory())
	hb := newHost(t)
	clock := clockwork.NewFakeClock()
	events, notify := notifyChannel()
	const yield = 3 * time.Second
	logs := newLogChannel()
	c, err := libp2padapter.NewConnector(hb, announcer(t, open, "u"), notify,
		libp2padapter.ConnectLogger(slog.New(logs)),
		libp2padapter.ConnectClock(clock),
		libp2padapter.ConnectJitter(0),
		libp2padapter.ConnectBackoff(time.Second, 4*time.Second),
		libp2padapter.ConnectYieldDelay(yield))
	if err != nil {
		t.Fatal(err)
	}
	startConnector(t, c)
	unreachable := peerIDSorted(t, hb.ID(), false)
	ann, err := announcer(t, open, "u").Announce(ctx, hostRecord(unreachable, []string{closedPort(t)}))
	if err != nil {
		t.Fatal(err)
	}

	// The yield: a timer, and no dial until it fires.
	if err := clock.BlockUntilContext(ctx, 1); err != nil {
		t.Fatalf("no yield timer: %v", err)
	}
	select {
	case e := <-events:
		t.Fatalf("%v before the yield ended", e.Type)
	default:
	}
	clock.Advance(yield)

	for attempt, wantDelay := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second} {
		e := awaitConnect(t, ctx, events, fmt.Sprintf("failure %d", attempt+1))
		if e.Type != libp2padapter.Failed || e.Peer.ID != unreachable || e.Err == nil {
			t.Fatalf("event %v %s err %v, want Failed with an error", e.Type, e.Peer.ID, e.Err)
		}
		if e.Attempt != attempt+1 || e.RetryIn != wantDelay {
			t.Fatalf("failure %d: attempt %d, retry in %v; want attempt %d, retry in %v", attempt+1, e.Attempt, e.RetryIn, attempt+1, wantDelay)
		}
		if !e.Time.Equal(clock.Now()) {
			t.Errorf("event stamped %v, fake clock at %v", e.Time, clock.Now())
		}
		// The retry is a timer on the fake clock; nothing dials before the
		// clock moves.
		if err := clock.BlockUntilContext(ctx, 1); err != nil {
			t.Fatalf("no retry scheduled: %v", err)
		}
		select {
		case e := <-events:
			t.Fatalf("%v before the retry was due", e.Type)
		default:
		}
		if attempt < 3 {
			clock.Advance(wantDelay)
		}
	}
	// Lost: no more dials, even once the retry would have been due.
	if err := ann.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	logs.await(t, ctx, "peer lost, no more dials", "peer", unreachable.String())
	clock.Advance(time.Hour)
	// Nothing more for the lost peer.
	barrier(t, ctx, announcer(t, open, "u"), events, hb.ID(), "after Lost")
}

// Close cancels a dial in flight and waits for it: a peer whose address
// accepts TCP but never speaks would otherwise hold the dial for a minute.
func TestConnectorCloseCancelsDial(t *testing.T) {
	ctx := testContext(t)
	open := libp2padapter.MemoryOpener(discovery.NewMemory())
	// Long libp2p timeouts, so only the connector's cancellation can end
	// the dial within the test's wait.
	hb := newHost(t, libp2p.SwarmOpts(swarm.WithDialTimeout(time.Hour), swarm.WithDialTimeoutLocal(time.Hour)))
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			conn, err := silent.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- conn
		}
	}()
	defer func() {
		silent.Close()
		for conn := range accepted {
			conn.Close()
		}
	}()

	events, notify := notifyChannel()
	c, err := libp2padapter.NewConnector(hb, announcer(t, open, "s"), notify,
		libp2padapter.ConnectTimeout(time.Hour), libp2padapter.ConnectYieldDelay(0))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := c.Start(runCtx); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(runCtx); !errors.Is(err, libp2padapter.ErrStarted) {
		t.Errorf("second Start: %v, want ErrStarted", err)
	}
	port := silent.Addr().(*net.TCPAddr).Port
	if _, err := announcer(t, open, "s").Announce(ctx, hostRecord(newPeerID(t), []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port)})); err != nil {
		t.Fatal(err)
	}
	var conn net.Conn
	select {
	case conn = <-accepted:
	case <-ctx.Done():
		t.Fatal("the connector never dialed")
	}
	// Cancelling the connector's context ends the dial: the dialer hangs
	// up on the silent listener.
	cancel()
	if err := conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		t.Fatal(err)
	}
	// The dialer's first bytes (multistream's header) may come before the
	// hang-up; read on to the end.
	for {
		_, err := conn.Read(make([]byte, 1024))
		if err == nil {
			continue
		}
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			t.Fatal("the dial went on after the connector's context ended")
		}
		break
	}
	done := make(chan struct{})
	go func() { c.Close(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("Close did not return")
	}
	select {
	case e := <-events:
		t.Errorf("a cancelled dial was reported: %v %v", e.Type, e.Err)
	default:
	}
	if err := c.Start(ctx); !errors.Is(err, libp2padapter.ErrClosed) {
		t.Errorf("Start after Close: %v, want ErrClosed", err)
	}
}

// A Connector over an Adapter's namespace dials the peers advertised there.
func TestConnectorOverAdapterNamespace(t *testing.T) {
	ctx := testContext(t)
	mem := discovery.NewMemory()
	ha, hb := newHost(t), newHost(t)
	a := newAdapter(t, ha, libp2padapter.MemoryOpener(mem))
	b := newAdapter(t, hb, libp2padapter.MemoryOpener(mem))
	events, notify := notifyChannel()
	c, err := libp2padapter.NewConnector(hb, b.Subscriber("mesh"), notify, libp2padapter.ConnectYieldDelay(0))
	if err != nil {
		t.Fatal(err)
	}
	startConnector(t, c)
	if _, err := a.Advertise(ctx, "mesh"); err != nil {
		t.Fatal(err)
	}
	if e := awaitConnect(t, ctx, events, "connection"); e.Type != libp2padapter.Connected || e.Peer.ID != ha.ID() {
		t.Fatalf("%v %s (%v), want Connected to A", e.Type, e.Peer.ID, e.Err)
	}
}

// A record whose ID spells a target's peer ID another way (as a CID) is
// not that peer: its Lost must not stop the retries of the real record.
func TestConnectorIgnoresOtherSpellings(t *testing.T) {
	ctx := testContext(t)
	open := libp2padapter.MemoryOpener(discovery.NewMemory())
	hb := newHost(t)
	clock := clockwork.NewFakeClock()
	events, notify := notifyChannel()
	c, err := libp2padapter.NewConnector(hb, announcer(t, open, "alias"), notify,
		libp2padapter.ConnectClock(clock),
		libp2padapter.ConnectJitter(0),
		libp2padapter.ConnectBackoff(time.Second, 4*time.Second),
		libp2padapter.ConnectYieldDelay(0))
	if err != nil {
		t.Fatal(err)
	}
	startConnector(t, c)
	src := announcer(t, open, "alias")
	target, addr := newPeerID(t), closedPort(t)
	if _, err := src.Announce(ctx, hostRecord(target, []string{addr})); err != nil {
		t.Fatal(err)
	}
	if e := awaitConnect(t, ctx, events, "the first failure"); e.Peer.ID != target || e.Type != libp2padapter.Failed {
		t.Fatalf("%v for %s, want the target's failure", e.Type, e.Peer.ID)
	}
	alias, err := src.Announce(ctx, discovery.Record{ID: peer.ToCid(target).String(), Addrs: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	if err := alias.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	// Events are handled in order: once another peer's failure is in, the
	// alias's Found and Lost have been handled too.
	other := newPeerID(t)
	if _, err := src.Announce(ctx, hostRecord(other, []string{closedPort(t)})); err != nil {
		t.Fatal(err)
	}
	if e := awaitConnect(t, ctx, events, "the other peer's failure"); e.Peer.ID != other {
		t.Fatalf("%v for %s, want the other peer's failure", e.Type, e.Peer.ID)
	}
	if err := clock.BlockUntilContext(ctx, 2); err != nil {
		t.Fatalf("the two retries are not both scheduled: %v", err)
	}
	clock.Advance(time.Second)
	for range 2 {
		if e := awaitConnect(t, ctx, events, "a retry"); e.Peer.ID == target {
			if e.Attempt != 2 {
				t.Fatalf("target's retry is attempt %d, want 2", e.Attempt)
			}
			return
		}
	}
	t.Fatal("the target was not retried after its alias was lost")
}

// New addresses during the yield do not cut it short: the peer that
// dials first would be dialed back at the same instant, the race the
// yield avoids. The yield's dial uses the newest addresses.
func TestConnectorYieldSurvivesUpdate(t *testing.T) {
	ctx := testContext(t)
	open := libp2padapter.MemoryOpener(discovery.NewMemory())
	hb := newHost(t)
	clock := clockwork.NewFakeClock()
	events, notify := notifyChannel()
	const yield = 3 * time.Second
	c, err := libp2padapter.NewConnector(hb, announcer(t, open, "y"), notify,
		libp2padapter.ConnectClock(clock),
		libp2padapter.ConnectJitter(0),
		libp2padapter.ConnectYieldDelay(yield))
	if err != nil {
		t.Fatal(err)
	}
	startConnector(t, c)
	lower := peerIDSorted(t, hb.ID(), false)
	ann, err := announcer(t, open, "y").Announce(ctx, hostRecord(lower, []string{closedPort(t)}))
	if err != nil {
		t.Fatal(err)
	}
	if err := clock.BlockUntilContext(ctx, 1); err != nil {
		t.Fatalf("no yield timer: %v", err)
	}
	updated := closedPort(t)
	if err := ann.Update(ctx, hostRecord(lower, []string{updated})); err != nil {
		t.Fatal(err)
	}
	// Events are handled in order: past the barrier, the update has been
	// handled, without a dial.
	barrier(t, ctx, announcer(t, open, "y"), events, hb.ID(), "during the yield")
	clock.Advance(yield)
	for {
		e := awaitConnect(t, ctx, events, "the yield's dial")
		if e.Peer.ID != lower {
			continue // the higher peer's retry, due at the same time
		}
		if e.Attempt != 1 || len(e.Peer.Addrs) != 1 || e.Peer.Addrs[0].String() != updated {
			t.Fatalf("after the yield: attempt %d to %v, want attempt 1 to %s", e.Attempt, e.Peer.Addrs, updated)
		}
		return
	}
}

// A peer still known whose connection closes is dialed again after the
// backoff's base; with ConnectRedial(false) it is left alone.
func TestConnectorRedialsClosedConnection(t *testing.T) {
	for _, redial := range []bool{true, false} {
		t.Run(fmt.Sprintf("redial=%v", redial), func(t *testing.T) {
			ctx := testContext(t)
			open := libp2padapter.MemoryOpener(discovery.NewMemory())
			ha, hb := newHost(t), newHost(t)
			clock := clockwork.NewFakeClock()
			events, notify := notifyChannel()
			logs := newLogChannel()
			c, err := libp2padapter.NewConnector(hb, announcer(t, open, "r"), notify,
				libp2padapter.ConnectLogger(slog.New(logs)),
				libp2padapter.ConnectClock(clock),
				libp2padapter.ConnectJitter(0),
				libp2padapter.ConnectBackoff(time.Second, 4*time.Second),
				libp2padapter.ConnectYieldDelay(0),
				libp2padapter.ConnectRedial(redial))
			if err != nil {
				t.Fatal(err)
			}
			startConnector(t, c)
			src := announcer(t, open, "r")
			if _, err := src.Announce(ctx, hostRecord(ha.ID(), addrStrings(ha.Addrs()))); err != nil {
				t.Fatal(err)
			}
			if e := awaitConnect(t, ctx, events, "the first dial"); e.Type != libp2padapter.Connected || e.Peer.ID != ha.ID() {
				t.Fatalf("%v for %s, want Connected to A", e.Type, e.Peer.ID)
			}
			if err := hb.Network().ClosePeer(ha.ID()); err != nil {
				t.Fatal(err)
			}
			if !redial {
				clock.Advance(time.Hour)
				barrier(t, ctx, src, events, hb.ID(), "with redial off")
				if hb.Network().Connectedness(ha.ID()) == network.Connected {
					t.Error("A was redialed with ConnectRedial(false)")
				}
				return
			}
			logs.await(t, ctx, "connection closed, redialing", "peer", ha.ID().String())
			if err := clock.BlockUntilContext(ctx, 1); err != nil {
				t.Fatalf("no redial scheduled: %v", err)
			}
			select {
			case e := <-events:
				t.Fatalf("%v before the redial was due", e.Type)
			default:
			}
			clock.Advance(time.Second)
			if e := awaitConnect(t, ctx, events, "the redial"); e.Type != libp2padapter.Connected || e.Peer.ID != ha.ID() || e.Attempt != 1 {
				t.Fatalf("%v for %s attempt %d, want Connected to A on the first attempt", e.Type, e.Peer.ID, e.Attempt)
			}
			if hb.Network().Connectedness(ha.ID()) != network.Connected {
				t.Error("redial reported Connected, but B is not connected to A")
			}
		})
	}
}
