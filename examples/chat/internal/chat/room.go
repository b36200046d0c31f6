package chat

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/fx"

	"github.com/phrasemeet/discovery/slotdiscovery"
)

// Room is this peer's membership of the chat's pubsub topic: it sends what
// the user types, prints what the others send, and tells who comes and
// goes.
//
// Arrivals and departures come from pubsub's topic events (a peer
// subscribed, or unsubscribed or disconnected). Names come from hellos:
// whenever a member appears, every member already there says hello, and
// so does the newcomer. A hello lists the members whose hello its author
// has received, and a member says hello again (every helloRetry, a few
// times) until every member present lists it: pubsub reports a peer's
// subscription as soon as the peer's stream to us delivers it, which can
// be a moment before pubsub has a stream to send to that peer, and a
// message published in that moment is dropped without a word. A goodbye
// on the way out makes a leave immediate and tells a clean quit from a
// lost connection.
type Room struct {
	h      host.Host
	ps     *pubsub.PubSub
	con    *Console
	mon    *Monitor
	fw     *Farewells // nil in tests that build a Room by hand
	name   string
	nick   string
	linger time.Duration

	topic  *pubsub.Topic
	sub    *pubsub.Subscription
	events *pubsub.TopicEventHandler
	joined time.Time
	ctx    context.Context // the room's life, from start to stop
	cancel context.CancelFunc
	wg     sync.WaitGroup
	kick   chan struct{} // someone needs our hello now
	// stopGreet ends the greeter, and greeted closes when it has: no
	// hello may follow our goodbye, or the others would see us come back.
	stopGreet context.CancelFunc
	greeted   chan struct{}
	// seq numbers our messages, so a member that gets one twice (over
	// pubsub through another member, and over the relayed path) shows
	// it once; seen remembers the recent ones received.
	seq  atomic.Int64
	seen *lru.Cache[msgKey, struct{}]

	mu      sync.Mutex
	members map[peer.ID]*member
	relayed map[peer.ID]*relayedStream // relayed.go
	opening map[peer.ID]bool           // relayed streams being opened
}

// msgKey names one message: its author, the author's session, and its
// number in that session.
type msgKey struct {
	from   peer.ID
	joined int64
	seq    int64
}

// seenMessages is how many recent messages a room remembers to drop
// duplicates: far more than arrive twice within a moment.
const seenMessages = 1024

// member is what the room knows of another peer.
type member struct {
	id     peer.ID
	nick   string    // as it calls itself; "" before its first message
	joined time.Time // when it says it joined
	// subscribed: pubsub lists it on the topic; viaRelay: our relayed
	// path to it is open. Either way, what we send reaches it.
	subscribed bool
	viaRelay   bool
	// gone is the joined time of the session whose goodbye came: a hello
	// of that session arriving later (sent before the goodbye, but
	// forwarded by another member) must not bring it back.
	gone    time.Time
	greeted bool // its arrival was printed and its leave not yet
	acked   bool // its hello lists us: it has our hello
	tries   int  // hellos sent since it appeared without its ack
	// leaving: it dropped without a goodbye, and has departGrace to come
	// back before it is shown as left.
	leaving bool
}

// departGrace is how long a member that drops without a goodbye, while
// discovery still lists it, has to come back before the room shows it as
// left. A relay's per-connection limit cuts a relayed-only conversation
// (every 2 minutes by go-libp2p's default) and the connector is back
// through the relay within a second or two: that is no departure.
const departGrace = 5 * time.Second

// present reports whether what we send reaches m.
func (m *member) present() bool { return m.subscribed || m.viaRelay }

// helloRetry is how soon an unacknowledged hello is repeated, and
// helloTries how many times at most: a peer subscribed to the topic that
// never acknowledges is not a chat, or not one we can reach.
const (
	helloRetry = 500 * time.Millisecond
	helloTries = 10
)

// Member is another peer of the room as /peers shows it.
type Member struct {
	// ID is the member's peer ID: what stays the same when its nick
	// changes or collides with another's.
	ID   peer.ID
	Nick string // the name shown, disambiguated if two share it
	// Here: its hello came and it has not left since.
	Here bool
	// Reachable: what we send reaches it, over pubsub (which lists it on
	// the topic once connected) or the relayed path; a member that is
	// Here but not Reachable is heard through others.
	Reachable bool
	// Left: it was here and has gone (a goodbye, or its subscription
	// ended); kept so /peers can still name it.
	Left bool
}

func newRoom(lc fx.Lifecycle, cfg Config, h host.Host, ps *pubsub.PubSub, g *slotdiscovery.Group, con *Console, mon *Monitor, fw *Farewells) *Room {
	seen, _ := lru.New[msgKey, struct{}](seenMessages) // fails only for a size <= 0
	r := &Room{
		h:       h,
		ps:      ps,
		con:     con,
		mon:     mon,
		fw:      fw,
		name:    TopicName(g),
		nick:    cfg.Nick,
		linger:  cfg.QuitLinger,
		seen:    seen,
		members: make(map[peer.ID]*member),
		relayed: make(map[peer.ID]*relayedStream),
		opening: make(map[peer.ID]bool),
		kick:    make(chan struct{}, 1),
	}
	if r.nick == "" {
		r.nick = DefaultNick(h.ID())
	}
	if mon != nil {
		mon.setNicks(r.nickOf)
	}
	lc.Append(fx.Hook{OnStart: r.start, OnStop: r.stop})
	return r
}

// nickOf is id's nick as the room shows it, or "" if it has told none.
// It takes the room's lock: callers must not hold the monitor's.
func (r *Room) nickOf(id peer.ID) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	mb := r.members[id]
	if mb == nil || mb.nick == "" {
		return ""
	}
	return r.displayLocked(mb)
}

// Topic is the room's pubsub topic name.
func (r *Room) Topic() string { return r.name }

// Nick is this peer's nick.
func (r *Room) Nick() string { return r.nick }

// Joined is when this peer joined the room.
func (r *Room) Joined() time.Time { return r.joined }

func (r *Room) start(context.Context) error {
	topic, err := r.ps.Join(r.name)
	if err != nil {
		return fmt.Errorf("joining the room: %w", err)
	}
	events, err := topic.EventHandler()
	if err != nil {
		topic.Close()
		return fmt.Errorf("joining the room: %w", err)
	}
	// Subscribing is what makes pubsub advertise the topic and look for
	// its members through the adapter.
	sub, err := topic.Subscribe()
	if err != nil {
		events.Cancel()
		topic.Close()
		return fmt.Errorf("joining the room: %w", err)
	}
	r.topic, r.events, r.sub = topic, events, sub
	r.joined = time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	r.ctx, r.cancel = ctx, cancel
	greetCtx, stopGreet := context.WithCancel(ctx)
	r.stopGreet, r.greeted = stopGreet, make(chan struct{})
	r.h.SetStreamHandler(relayedProto, r.handleRelayed)
	r.wg.Add(3)
	go r.readMessages(ctx)
	go r.readEvents(ctx)
	go r.keepRelayed(ctx)
	go r.greet(greetCtx)
	r.con.Say("* you are %s (%s); type a line to send it, /peers, /quit", r.nick, r.h.ID())
	return nil
}

// stop says goodbye, waits a moment for it to leave (the connections
// close right after, and a message still queued would be lost), then
// leaves the topic.
func (r *Room) stop(ctx context.Context) error {
	if r.topic == nil {
		return nil
	}
	r.stopGreet()
	<-r.greeted
	r.mu.Lock()
	relayed := len(r.relayed)
	r.mu.Unlock()
	if len(r.topic.ListPeers()) > 0 || relayed > 0 {
		if _, err := r.publish(ctx, wireMessage{Kind: kindBye, Nick: r.nick}); err == nil {
			select {
			case <-time.After(r.linger):
			case <-ctx.Done():
			}
		}
	}
	r.h.RemoveStreamHandler(relayedProto)
	r.cancel()
	r.sub.Cancel()
	r.events.Cancel()
	r.wg.Wait()
	// Close refuses while pubsub has not yet processed the cancellations
	// above, which it does asynchronously; pubsub itself stops next, so a
	// refusal changes nothing.
	_ = r.topic.Close()
	return nil
}

// stamp marks m as this session's next message: when we joined, and its
// number.
func (r *Room) stamp(m wireMessage) wireMessage {
	m.Joined = r.joined.UnixMilli()
	m.Seq = r.seq.Add(1)
	return m
}

// Send publishes a line. It returns how many members it went to, over
// pubsub or the relayed path: none means nobody received it (pubsub keeps
// no backlog).
//
// A member can be here with no path to it for a moment: its hello came
// over its relayed stream before ours to it was open, or a hole punch
// replaced the relayed connection before pubsub took up the direct one,
// or a relay's limit cut the connection and the connector is making it
// again (the member is in its departure grace). A line sent then to a
// room of two would reach nobody although the other is shown as here. So
// when a line reaches nobody at all while such a member is connected or
// in its grace, Send waits for a path (until ctx ends) and sends
// the same message again when one opens; the receiver drops a copy it
// already had by its number. When the line reaches someone, Send does not
// wait: a member without a path yet misses it, as pubsub keeps no
// backlog.
func (r *Room) Send(ctx context.Context, text string) (int, error) {
	b := r.stamp(wireMessage{Kind: kindText, Nick: r.nick, Text: text}).encode()
	for {
		n, err := r.publishEncoded(ctx, b)
		if n > 0 || err != nil || !r.pathPending() {
			return n, err
		}
		select {
		case <-time.After(pathPoll):
		case <-ctx.Done():
			return 0, nil
		}
	}
}

// pathPoll is how often Send looks for a path to a member that has none
// yet.
const pathPoll = 25 * time.Millisecond

// pathPending reports whether a member shown as here, that neither
// pubsub nor our relayed path reaches, is connected to us or in its
// departure grace: a path is on its way.
func (r *Room) pathPending() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, mb := range r.members {
		if mb.greeted && !mb.present() && (mb.leaving || r.h.Network().Connectedness(id) != network.NotConnected) {
			return true
		}
	}
	return false
}

// publish sends m to the topic, and to the members reached over the
// relayed path that pubsub does not list; it returns how many members it
// went to.
func (r *Room) publish(ctx context.Context, m wireMessage) (int, error) {
	return r.publishEncoded(ctx, r.stamp(m).encode())
}

// publishEncoded is publish of a message already stamped and encoded.
func (r *Room) publishEncoded(ctx context.Context, b []byte) (int, error) {
	if err := r.topic.Publish(ctx, b); err != nil {
		return 0, err
	}
	listed := r.topic.ListPeers()
	return len(listed) + r.sendRelayed(b, listed), nil
}

func (r *Room) readMessages(ctx context.Context) {
	defer r.wg.Done()
	self := r.h.ID()
	for {
		msg, err := r.sub.Next(ctx)
		if err != nil {
			return // cancelled: the room is stopping
		}
		from := msg.GetFrom()
		if from == self {
			continue // our own, echoed back by pubsub
		}
		m, err := decodeMessage(msg.Data)
		if err != nil {
			continue // not something a chat sent; nothing to show
		}
		r.handle(from, m)
	}
}

func (r *Room) handle(from peer.ID, m wireMessage) {
	if m.Seq > 0 {
		if seen, _ := r.seen.ContainsOrAdd(msgKey{from: from, joined: m.Joined, seq: m.Seq}, struct{}{}); seen {
			return // had it by the other path
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	mb := r.memberLocked(from)
	renamed := mb.nick != "" && m.Nick != "" && m.Nick != mb.nick
	old := r.displayLocked(mb)
	if m.Nick != "" {
		mb.nick = m.Nick
	}
	prevJoined := mb.joined
	if t := m.joinedAt(); !t.IsZero() {
		mb.joined = t
	}
	session := m.joinedAt()
	if mb.leaving && m.Kind != kindBye && session.After(prevJoined) && mb.greeted {
		// Back as another session (it restarted): the old one did
		// leave. A message of the same session proves nothing (it may
		// have been on its way when the connection went); the grace's
		// end decides, by whether a path is open.
		mb.leaving, mb.greeted = false, false
		r.con.Say("* %s left (connection closed)", old)
	}
	switch m.Kind {
	case kindBye:
		mb.gone = session
		mb.leaving = false
		r.mon.noteGoodbye(from)
		r.fw.said(from) // no redial: it left on purpose
		if mb.greeted {
			mb.greeted = false
			r.con.Say("* %s left", r.displayLocked(mb))
		}
		return
	case kindHello, kindText:
		if !mb.gone.IsZero() && !session.After(mb.gone) {
			// Sent before that session's goodbye and delivered after it.
			// A line still shows; the member stays gone.
			if m.Kind == kindText {
				r.con.Say("<%s> %s", r.displayLocked(mb), m.Text)
			}
			return
		}
		if !mb.gone.IsZero() {
			// A new session of a member that said goodbye: it may be
			// dialed again.
			r.fw.back(from)
		}
		if m.Kind == kindHello {
			acked := slices.Contains(m.Knows, r.h.ID().String())
			if !acked {
				r.kickLocked() // it lacks our hello: send it again now
			}
			mb.acked = acked
		}
		if !mb.greeted {
			mb.greeted = true
			verb := "is here"
			if mb.joined.After(r.joined) {
				verb = "joined"
			}
			r.con.Say("* %s %s (%s)", r.displayLocked(mb), verb, from)
		} else if renamed {
			r.con.Say("* %s is now %s", old, r.displayLocked(mb))
		}
	}
	if m.Kind == kindText {
		r.con.Say("<%s> %s", r.displayLocked(mb), m.Text)
	}
}

func (r *Room) readEvents(ctx context.Context) {
	defer r.wg.Done()
	for {
		ev, err := r.events.NextPeerEvent(ctx)
		if err != nil {
			return
		}
		switch ev.Type {
		case pubsub.PeerJoin:
			// Someone appeared: tell them who we are. They do the same
			// on seeing us, so both sides learn the other's nick.
			r.mu.Lock()
			mb := r.memberLocked(ev.Peer)
			if !mb.present() {
				mb.acked, mb.tries = false, 0
			}
			mb.subscribed = true
			r.kickLocked()
			r.mu.Unlock()
		case pubsub.PeerLeave:
			r.mu.Lock()
			mb := r.memberLocked(ev.Peer)
			mb.subscribed = false
			// A member still connected through a limited relay is
			// reached over the relayed path (opened at the next check,
			// if not yet): it has not left.
			if !mb.viaRelay && !r.relayable(ev.Peer) {
				r.departLocked(mb)
			}
			r.mu.Unlock()
		}
	}
}

// departLocked makes mb gone without a goodbye: the peer crashed, lost
// its network, or its goodbye was lost.
//
// A member discovery still lists gets departGrace to come back first.
func (r *Room) departLocked(mb *member) {
	mb.acked = false
	if !mb.greeted || mb.leaving {
		return
	}
	if r.mon == nil || !r.mon.isListed(mb.id) || r.ctx == nil {
		r.leftLocked(mb)
		return
	}
	mb.leaving = true
	ctx := r.ctx
	time.AfterFunc(departGrace, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if !mb.leaving || ctx.Err() != nil {
			return // back, or said goodbye, or the room stopped
		}
		mb.leaving = false
		if mb.present() {
			return // back: what we send reaches it again
		}
		// Even if still connected: a member no path reaches after the
		// grace is not here, and Send must not wait for it.
		r.leftLocked(mb)
	})
}

func (r *Room) leftLocked(mb *member) {
	mb.greeted = false
	r.con.Say("* %s left (connection closed)", r.displayLocked(mb))
}

func (r *Room) kickLocked() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// greet says hello when kicked, and again every helloRetry while a member
// present has not acknowledged it (at most helloTries times per member).
// One hello is broadcast to all, so one send serves every member waiting.
func (r *Room) greet(ctx context.Context) {
	defer close(r.greeted)
	tick := time.NewTicker(helloRetry)
	defer tick.Stop()
	for {
		kicked := false
		select {
		case <-r.kick:
			kicked = true
		case <-tick.C:
		case <-ctx.Done():
			return
		}
		hello, send := r.helloDue(kicked)
		if !send {
			continue
		}
		if _, err := r.publish(ctx, hello); err != nil && !errors.Is(err, context.Canceled) {
			r.con.Statusf("saying hello: %v", err)
		}
	}
}

// helloDue reports whether a hello should go out now, and builds it.
func (r *Room) helloDue(kicked bool) (wireMessage, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	send := kicked
	var knows []string
	for _, mb := range r.members {
		if !mb.present() {
			continue
		}
		if mb.greeted && len(knows) < maxKnows {
			knows = append(knows, mb.id.String())
		}
		if !mb.acked && mb.tries < helloTries {
			mb.tries++
			send = true
		}
	}
	slices.Sort(knows)
	return wireMessage{Kind: kindHello, Nick: r.nick, Knows: knows}, send
}

func (r *Room) memberLocked(id peer.ID) *member {
	mb := r.members[id]
	if mb == nil {
		mb = &member{id: id}
		r.members[id] = mb
	}
	return mb
}

// displayLocked is the name a member is shown by: its nick, followed by
// the end of its peer ID when someone else in the room (us included) goes
// by the same nick, since a nick proves nothing.
func (r *Room) displayLocked(mb *member) string {
	nick := mb.nick
	if nick == "" {
		return DefaultNick(mb.id)
	}
	clash := nick == r.nick
	for _, o := range r.members {
		if o != mb && o.nick == nick && (o.present() || o.greeted) {
			clash = true
		}
	}
	if clash {
		return nick + "#" + strings.TrimPrefix(shortID(mb.id), "…")
	}
	return nick
}

// Members returns the other peers the room knows: present now, greeted,
// or gone after it spoke, ordered by name.
func (r *Room) Members() []Member {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Member
	for _, mb := range r.members {
		if mb.present() || mb.greeted || mb.nick != "" {
			// A goodbye makes a member Left at once, though pubsub still
			// lists it subscribed while its goodbye lingers.
			out = append(out, Member{ID: mb.id, Nick: r.displayLocked(mb), Here: mb.greeted, Reachable: mb.present(),
				Left: !mb.greeted && (!mb.present() || !mb.gone.IsZero())})
		}
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Nick, b.Nick) })
	return out
}
