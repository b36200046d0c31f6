// Package discoverytest is the conformance suite every discovery.Discoverer
// runs, in the way golang.org/x/net/nettest's TestConn checks a net.Conn:
// one call, [Run], proves an implementation (ours or a user's) behaves as
// the interface promises.
//
//	func TestConformance(t *testing.T) {
//		discoverytest.Run(t, func(t *testing.T, n int) []discovery.Discoverer {
//			space := discovery.NewMemory()
//			ds := make([]discovery.Discoverer, n)
//			for i := range ds {
//				ds[i] = space.Join("memory")
//			}
//			return ds
//		})
//	}
package discoverytest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/phrasemeet/discovery"
)

// MakeGroup returns n fresh discoverers that share one group (one space, one
// passphrase, one relay set): each must be able to find the others. The
// suite closes them; MakeGroup should register any other cleanup (a relay
// server, say) with t.Cleanup.
type MakeGroup func(t *testing.T, n int) []discovery.Discoverer

// Option adjusts the suite to a mechanism.
type Option func(*config)

type config struct {
	timeout time.Duration
	makeID  func(name string) string // nil: a peer's name is its ID
	stall   StallableGroup           // nil: LeaveHonoursContext runs on a MakeGroup group
}

// StallableGroup is MakeGroup for a group whose network can be made to
// hang: after stall is called, every request its members make (to a relay,
// say) goes unanswered until the test ends. Register the undoing with
// t.Cleanup.
type StallableGroup func(t *testing.T, n int) (ds []discovery.Discoverer, stall func())

// WithStall lets LeaveHonoursContext and CloseHonoursContext exercise a
// leave that cannot finish: each announces on a group made, waits until the
// other member sees it, stalls the network, and then leaves (or closes) with
// a short context. Without it the checks run on an ordinary group, where a
// Leave or Close that returns at once passes trivially.
func WithStall(makeGroup StallableGroup) Option { return func(c *config) { c.stall = makeGroup } }

// WithTimeout bounds every wait for an event (default 30 s). Mechanisms
// that only notice a peer at their next scan need a bound above their scan
// period, and above their ageing period for the cancellation test.
func WithTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// WithIDsOnly adapts the suite to a mechanism whose wire carries only a peer's
// ID, such as the can-sync slot rendezvous, which also dictates the form of
// an ID. The suite then names each peer it announces through makeID (the
// peer "leaver" is announced as makeID("leaver")) and announces records
// with no Addrs and no Meta. makeID must be deterministic and give
// distinct names distinct IDs.
//
// With nothing but an ID to announce there is no record change to observe,
// so UpdatedOnRecordChange only checks that Update accepts the same record
// and refuses another ID, then skips. Every other case runs unchanged.
func WithIDsOnly(makeID func(name string) string) Option {
	return func(c *config) { c.makeID = makeID }
}

// Run runs the whole suite against the implementation makeGroup builds,
// each case as a subtest.
func Run(t *testing.T, makeGroup MakeGroup, opts ...Option) {
	cfg := config{timeout: 30 * time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	s := &suite{cfg: cfg, make: makeGroup, views: make(map[<-chan discovery.Event]map[string]discovery.Peer)}
	for _, c := range []struct {
		name string
		f    func(*testing.T)
	}{
		{"MutualDiscovery", s.mutualDiscovery},
		{"NeverReportsItself", s.neverReportsItself},
		{"LateSubscriberGetsKnownPeers", s.lateSubscriber},
		{"LateJoinerIsFound", s.lateJoiner},
		{"UpdatedOnRecordChange", s.updated},
		{"SlowSubscriberCatchesUp", s.slowSubscriber},
		{"LostOnLeave", s.lostOnLeave},
		{"LeaveHonoursContext", s.leaveHonoursContext},
		{"CloseHonoursContext", s.closeHonoursContext},
		{"CancellationStopsAnnouncing", s.cancellation},
		{"SubscriptionEndsWithContext", s.subscriptionEnds},
		{"InvalidAnnouncements", s.invalid},
		{"CloseIdempotent", s.closeIdempotent},
		{"NoGoroutineLeak", s.noLeak},
	} {
		t.Run(c.name, c.f)
	}
}

type suite struct {
	cfg  config
	make MakeGroup

	// views is what each subscription the suite opened has been told,
	// to hold its stream to the interface's consistency promise.
	mu    sync.Mutex
	views map[<-chan discovery.Event]map[string]discovery.Peer
}

// group builds n members and closes them when the test ends.
func (s *suite) group(t *testing.T, n int) []discovery.Discoverer {
	t.Helper()
	ds := s.make(t, n)
	if len(ds) != n {
		t.Fatalf("MakeGroup returned %d discoverers, want %d", len(ds), n)
	}
	t.Cleanup(func() {
		for _, d := range ds {
			if err := d.Close(context.Background()); err != nil {
				t.Errorf("%s: Close: %v", d.Name(), err)
			}
		}
	})
	return ds
}

func (s *suite) ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 4*s.cfg.timeout)
	t.Cleanup(cancel)
	return ctx
}

// id is the ID the suite announces for the peer it calls name.
func (s *suite) id(name string) string {
	if s.cfg.makeID == nil {
		return name
	}
	return s.cfg.makeID(name)
}

// record is the record the suite announces for the peer it calls name:
// with addresses and metadata, unless the mechanism carries IDs only.
func (s *suite) record(name string, addrs ...string) discovery.Record {
	if s.cfg.makeID != nil {
		return discovery.Record{ID: s.id(name)}
	}
	return discovery.Record{ID: name, Addrs: addrs, Meta: []byte("meta-" + name)}
}

func announce(t *testing.T, ctx context.Context, d discovery.Discoverer, rec discovery.Record) discovery.Announcement {
	t.Helper()
	a, err := d.Announce(ctx, rec)
	if err != nil {
		t.Fatalf("%s: Announce(%q): %v", d.Name(), rec.ID, err)
	}
	return a
}

// subscribe subscribes to d; await holds the stream to the interface's
// consistency promise.
func (s *suite) subscribe(t *testing.T, ctx context.Context, d discovery.Discoverer) <-chan discovery.Event {
	t.Helper()
	ch, err := d.Subscribe(ctx)
	if err != nil {
		t.Fatalf("%s: Subscribe: %v", d.Name(), err)
	}
	s.mu.Lock()
	s.views[ch] = make(map[string]discovery.Peer)
	s.mu.Unlock()
	t.Cleanup(func() {
		s.mu.Lock()
		delete(s.views, ch)
		s.mu.Unlock()
	})
	return ch
}

// view returns a copy of what the subscription has been told so far, as
// await saw it.
func (s *suite) view(ch <-chan discovery.Event) map[string]discovery.Peer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.views[ch])
}

// consistent applies e to what ch's subscriber has been told and fails
// on an event the interface rules out: Updated or Lost for a peer it was
// not told was Found, Found for a peer it knows, an Updated that changes
// nothing it was told.
func (s *suite) consistent(t *testing.T, ch <-chan discovery.Event, e discovery.Event) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.views[ch]
	if v == nil {
		return // not opened through subscribe
	}
	old, known := v[e.Peer.ID]
	switch e.Type {
	case discovery.Found:
		if known {
			t.Errorf("Found for %q, which the subscriber already knows (no Lost in between)", e.Peer.ID)
		}
		v[e.Peer.ID] = e.Peer
	case discovery.Updated:
		if !known {
			t.Errorf("Updated for %q, which the subscriber was never told was Found", e.Peer.ID)
		} else if old.Record.Equal(e.Peer.Record) && slices.Equal(old.Sources, e.Peer.Sources) {
			t.Errorf("Updated for %q changes nothing the subscriber was told", e.Peer.ID)
		}
		v[e.Peer.ID] = e.Peer
	case discovery.Lost:
		if !known {
			t.Errorf("Lost for %q, which the subscriber was never told was Found", e.Peer.ID)
		}
		delete(v, e.Peer.ID)
	}
}

// await reads events until match accepts one, failing after the timeout or
// if the stream closes. Events that do not match are checked against the
// interface's promises and otherwise skipped.
func (s *suite) await(t *testing.T, ch <-chan discovery.Event, what string, match func(discovery.Event) bool) discovery.Event {
	t.Helper()
	timer := time.NewTimer(s.cfg.timeout)
	defer timer.Stop()
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				t.Fatalf("the event stream closed while waiting for %s", what)
			}
			checkEvent(t, e)
			s.consistent(t, ch, e)
			if match(e) {
				return e
			}
		case <-timer.C:
			t.Fatalf("no %s within %v", what, s.cfg.timeout)
		}
	}
}

// checkEvent holds every event to what the interface promises.
func checkEvent(t *testing.T, e discovery.Event) {
	t.Helper()
	if e.Type != discovery.Found && e.Type != discovery.Updated && e.Type != discovery.Lost {
		t.Errorf("event of unknown type %v", e.Type)
	}
	if e.Peer.ID == "" {
		t.Errorf("%v event for a peer with an empty ID", e.Type)
	}
	if len(e.Peer.Sources) == 0 {
		t.Errorf("%v event for %q names no source", e.Type, e.Peer.ID)
	}
	if e.Time.IsZero() {
		t.Errorf("%v event for %q has no time", e.Type, e.Peer.ID)
	}
}

// is matches an event of type typ for the peer the suite calls name.
func (s *suite) is(typ discovery.EventType, name string) func(discovery.Event) bool {
	id := s.id(name)
	return func(e discovery.Event) bool { return e.Type == typ && e.Peer.ID == id }
}

// found waits until every named peer has been Found on ch, and returns
// them by name.
func (s *suite) found(t *testing.T, ch <-chan discovery.Event, who string, names ...string) map[string]discovery.Peer {
	t.Helper()
	want := slices.Clone(names)
	got := make(map[string]discovery.Peer)
	for len(want) > 0 {
		var name string
		s.await(t, ch, fmt.Sprintf("Found for %v at %s", want, who), func(e discovery.Event) bool {
			if e.Type == discovery.Lost {
				return false
			}
			i := slices.IndexFunc(want, func(n string) bool { return s.id(n) == e.Peer.ID })
			if i < 0 {
				return false
			}
			name = want[i]
			got[name] = e.Peer
			return true
		})
		want = slices.DeleteFunc(want, func(n string) bool { return n == name })
	}
	return got
}

func (s *suite) mutualDiscovery(t *testing.T) {
	ctx := s.ctx(t)
	ds := s.group(t, 3)
	ids := []string{"peer-a", "peer-b", "peer-c"}
	subs := make([]<-chan discovery.Event, len(ds))
	for i, d := range ds {
		subs[i] = s.subscribe(t, ctx, d)
	}
	for i, d := range ds {
		announce(t, ctx, d, s.record(ids[i], fmt.Sprintf("/ip4/192.0.2.%d/udp/4001", i+1)))
	}
	for i := range ds {
		others := slices.Delete(slices.Clone(ids), i, i+1)
		got := s.found(t, subs[i], ids[i], others...)
		for j, id := range ids {
			if j == i {
				continue
			}
			want := s.record(id, fmt.Sprintf("/ip4/192.0.2.%d/udp/4001", j+1))
			if !got[id].Record.Equal(want) {
				t.Errorf("%s found %q as %+v, want %+v", ids[i], id, got[id].Record, want)
			}
		}
	}
}

func (s *suite) neverReportsItself(t *testing.T) {
	ctx := s.ctx(t)
	ds := s.group(t, 2)
	sub := s.subscribe(t, ctx, ds[0])
	announce(t, ctx, ds[0], s.record("self"))
	announce(t, ctx, ds[1], s.record("other"))
	// Wait for the other peer; any event about ourselves before it fails.
	s.await(t, sub, "Found for other", func(e discovery.Event) bool {
		if e.Peer.ID == s.id("self") {
			t.Fatalf("a discoverer reported its own record: %v", e.Type)
		}
		return s.is(discovery.Found, "other")(e)
	})
	// A late subscription replays known peers: still not ourselves.
	late := s.subscribe(t, ctx, ds[0])
	s.await(t, late, "replayed Found for other", func(e discovery.Event) bool {
		if e.Peer.ID == s.id("self") {
			t.Fatalf("a late subscription replayed our own record")
		}
		return s.is(discovery.Found, "other")(e)
	})
}

func (s *suite) lateSubscriber(t *testing.T) {
	ctx := s.ctx(t)
	ds := s.group(t, 2)
	first := s.subscribe(t, ctx, ds[1])
	announce(t, ctx, ds[0], s.record("early"))
	s.found(t, first, "the first subscriber", "early")
	// Subscribed after the peer was known: its first events replay it.
	late := s.subscribe(t, ctx, ds[1])
	e := s.await(t, late, "replayed Found for early", func(e discovery.Event) bool { return e.Peer.ID == s.id("early") })
	if e.Type != discovery.Found {
		t.Fatalf("a late subscriber's first event for a known peer is %v, want found", e.Type)
	}
}

func (s *suite) lateJoiner(t *testing.T) {
	ctx := s.ctx(t)
	ds := s.group(t, 3)
	subs := []<-chan discovery.Event{s.subscribe(t, ctx, ds[0]), s.subscribe(t, ctx, ds[1])}
	announce(t, ctx, ds[0], s.record("first"))
	announce(t, ctx, ds[1], s.record("second"))
	s.found(t, subs[0], "first", "second")
	s.found(t, subs[1], "second", "first")
	// The third peer joins after the others found each other.
	late := s.subscribe(t, ctx, ds[2])
	announce(t, ctx, ds[2], s.record("late"))
	s.found(t, late, "late", "first", "second")
	s.found(t, subs[0], "first", "late")
	s.found(t, subs[1], "second", "late")
}

func (s *suite) updated(t *testing.T) {
	ctx := s.ctx(t)
	if s.cfg.makeID != nil {
		// An ID is all there is: check what Update can still promise.
		ds := s.group(t, 1)
		rec := s.record("mover")
		a := announce(t, ctx, ds[0], rec)
		if err := a.Update(ctx, rec); err != nil {
			t.Errorf("Update with the same record: %v, want nil", err)
		}
		if err := a.Update(ctx, s.record("someone-else")); !errors.Is(err, discovery.ErrInvalidRecord) {
			t.Errorf("Update to another ID: %v, want ErrInvalidRecord", err)
		}
		if got := a.Record(); !got.Equal(rec) {
			t.Errorf("Announcement.Record after Update = %+v, want %+v", got, rec)
		}
		t.Skip("WithIDsOnly: the mechanism's wire carries only the ID, so a record cannot change and no Updated event can be observed")
	}
	ds := s.group(t, 2)
	sub := s.subscribe(t, ctx, ds[1])
	a := announce(t, ctx, ds[0], s.record("mover", "/ip4/192.0.2.1/udp/4001"))
	s.found(t, sub, "observer", "mover")
	moved := s.record("mover", "/ip4/198.51.100.7/udp/4001", "/ip6/2001:db8::7/udp/4001")
	if err := a.Update(ctx, moved); err != nil {
		t.Fatalf("Update: %v", err)
	}
	s.await(t, sub, "Updated for mover with its new addresses", func(e discovery.Event) bool {
		if e.Peer.ID == moved.ID && e.Type == discovery.Lost {
			t.Fatalf("an address change was reported as lost")
		}
		return e.Peer.ID == moved.ID && e.Type == discovery.Updated && e.Peer.Record.Equal(moved)
	})
	if got := a.Record(); !got.Equal(moved) {
		t.Errorf("Announcement.Record after Update = %+v, want %+v", got, moved)
	}
	if err := a.Update(ctx, s.record("someone-else")); !errors.Is(err, discovery.ErrInvalidRecord) {
		t.Errorf("Update to another ID: %v, want ErrInvalidRecord", err)
	}
}

// slowSubscriber: a subscriber that reads nothing while another peer comes
// and goes and a peer changes its record many times must, when it reads,
// see a consistent stream (await checks every event) that reaches the
// group's final state: the first peer with its last record, the other
// absent. The first peer is announced first and changes last, so that
// reading up to its last record reads past whatever a queue holds for the
// one that came and went.
func (s *suite) slowSubscriber(t *testing.T) {
	ctx := s.ctx(t)
	ds := s.group(t, 2)
	sub := s.subscribe(t, ctx, ds[1])
	final := s.record("churner", "/ip4/192.0.2.1/udp/4001")
	a := announce(t, ctx, ds[0], final)
	passer := announce(t, ctx, ds[0], s.record("passer"))
	if err := passer.Leave(ctx); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	if s.cfg.makeID == nil {
		for i := range 50 {
			final = s.record("churner", fmt.Sprintf("/ip4/192.0.2.1/udp/%d", 5000+i))
			if err := a.Update(ctx, final); err != nil {
				t.Fatalf("Update #%d: %v", i+1, err)
			}
		}
	}
	// Only now does the subscriber read.
	s.until(t, sub, "churner with its last record", func(v map[string]discovery.Peer) bool {
		p, ok := v[final.ID]
		return ok && p.Record.Equal(final)
	})
	s.until(t, sub, "passer gone", func(v map[string]discovery.Peer) bool {
		_, ok := v[s.id("passer")]
		return !ok
	})
}

// until reads ch, as await does, until what ch's subscriber has been told
// satisfies cond; it reads nothing if it already does.
func (s *suite) until(t *testing.T, ch <-chan discovery.Event, what string, cond func(map[string]discovery.Peer) bool) {
	t.Helper()
	if cond(s.view(ch)) {
		return
	}
	s.await(t, ch, what, func(discovery.Event) bool { return cond(s.view(ch)) })
}

func (s *suite) lostOnLeave(t *testing.T) {
	ctx := s.ctx(t)
	ds := s.group(t, 2)
	sub := s.subscribe(t, ctx, ds[1])
	a := announce(t, ctx, ds[0], s.record("leaver"))
	s.found(t, sub, "observer", "leaver")
	if err := a.Leave(ctx); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	s.await(t, sub, "Lost for leaver", s.is(discovery.Lost, "leaver"))
	if err := a.Leave(ctx); err != nil {
		t.Errorf("a second Leave: %v, want nil", err)
	}
	if err := a.Update(ctx, s.record("leaver", "/ip4/192.0.2.9/udp/1")); !errors.Is(err, discovery.ErrLeft) {
		t.Errorf("Update after Leave: %v, want ErrLeft", err)
	}
	// The ID is free again once left.
	announce(t, ctx, ds[0], s.record("leaver"))
	s.await(t, sub, "Found for leaver after it came back", s.is(discovery.Found, "leaver"))
}

// leaveShortCtx is the context LeaveHonoursContext leaves with, and
// leaveBound how long it waits for Leave to return: far above it, so a
// loaded machine does not fail the check, and far below the seconds a
// mechanism's own leave bound may take.
const (
	leaveShortCtx = 100 * time.Millisecond
	leaveBound    = 2 * time.Second
)

// leaveHonoursContext: Leave returns soon after its context ends, with nil
// or the context's error, even when the mechanism's leave (a tombstone
// written to a relay that does not answer) would take longer.
func (s *suite) leaveHonoursContext(t *testing.T) {
	ctx := s.ctx(t)
	ds, stall := s.stallable(t)
	sub := s.subscribe(t, ctx, ds[1])
	a := announce(t, ctx, ds[0], s.record("hurried"))
	// Seen by the other member: whatever leaving has to undo is in place.
	s.found(t, sub, "observer", "hurried")
	stall()
	lctx, cancel := context.WithTimeout(ctx, leaveShortCtx)
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- a.Leave(lctx) }()
	timer := time.NewTimer(leaveBound)
	defer timer.Stop()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Leave with a context that ended: %v, want nil or an error wrapping context.DeadlineExceeded", err)
		}
		t.Logf("Leave with a %v context returned after %v: %v", leaveShortCtx, time.Since(start).Round(time.Millisecond), err)
	case <-timer.C:
		t.Errorf("Leave with a %v context had not returned %v later", leaveShortCtx, leaveBound)
		<-done // the cleanup closes the group; let Leave finish first
		t.Logf("Leave returned after %v", time.Since(start).Round(time.Millisecond))
	}
	if err := a.Update(ctx, s.record("hurried")); !errors.Is(err, discovery.ErrLeft) {
		t.Errorf("Update after a Leave cut short: %v, want ErrLeft", err)
	}
}

// closeHonoursContext: Close returns soon after its context ends, with nil
// or the context's error, even when leaving (a tombstone written to a relay
// that does not answer) would take longer; and when it returns, its
// subscriptions are closed and Announce and Subscribe fail with ErrClosed,
// whether it finished or was cut short. A later Close with a fresh context
// is no error, or the same one: it waits for the same work.
func (s *suite) closeHonoursContext(t *testing.T) {
	ctx := s.ctx(t)
	ds, stall := s.stallable(t)
	sub := s.subscribe(t, ctx, ds[1])
	mine := s.subscribe(t, ctx, ds[0])
	announce(t, ctx, ds[0], s.record("hasty"))
	s.found(t, sub, "observer", "hasty")
	stall()
	cctx, cancel := context.WithTimeout(ctx, leaveShortCtx)
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- ds[0].Close(cctx) }()
	timer := time.NewTimer(leaveBound)
	defer timer.Stop()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Close with a context that ended: %v, want nil or an error wrapping context.DeadlineExceeded", err)
		}
		t.Logf("Close with a %v context returned after %v: %v", leaveShortCtx, time.Since(start).Round(time.Millisecond), err)
	case <-timer.C:
		t.Errorf("Close with a %v context had not returned %v later", leaveShortCtx, leaveBound)
		<-done
		t.Logf("Close returned after %v", time.Since(start).Round(time.Millisecond))
	}
	// Closed already, not "soon": Close has returned.
	select {
	case _, ok := <-mine:
		for ok {
			select {
			case _, ok = <-mine:
			default:
				t.Fatal("a subscription was still open when Close returned")
			}
		}
	default:
		t.Fatal("a subscription was still open when Close returned")
	}
	if _, err := ds[0].Announce(ctx, s.record("after-close")); !errors.Is(err, discovery.ErrClosed) {
		t.Errorf("Announce after a Close cut short: %v, want ErrClosed", err)
	}
	if _, err := ds[0].Subscribe(ctx); !errors.Is(err, discovery.ErrClosed) {
		t.Errorf("Subscribe after a Close cut short: %v, want ErrClosed", err)
	}
}

// stallable builds two members whose network can be stalled (WithStall),
// or an ordinary group with a stall that does nothing; the suite closes
// them when the test ends.
func (s *suite) stallable(t *testing.T) ([]discovery.Discoverer, func()) {
	t.Helper()
	if s.cfg.stall == nil {
		return s.group(t, 2), func() {}
	}
	ds, stall := s.cfg.stall(t, 2)
	if len(ds) != 2 {
		t.Fatalf("StallableGroup returned %d discoverers, want 2", len(ds))
	}
	t.Cleanup(func() {
		for _, d := range ds {
			if err := d.Close(context.Background()); err != nil {
				t.Errorf("%s: Close: %v", d.Name(), err)
			}
		}
	})
	return ds, stall
}

func (s *suite) cancellation(t *testing.T) {
	ctx := s.ctx(t)
	ds := s.group(t, 2)
	sub := s.subscribe(t, ctx, ds[1])
	actx, cancel := context.WithCancel(ctx)
	a := announce(t, actx, ds[0], s.record("cancelled"))
	s.found(t, sub, "observer", "cancelled")
	cancel()
	s.await(t, sub, "Lost for a peer whose announcement was cancelled", s.is(discovery.Lost, "cancelled"))
	if err := a.Update(ctx, s.record("cancelled", "/ip4/192.0.2.3/udp/1")); !errors.Is(err, discovery.ErrLeft) {
		t.Errorf("Update after the announcement's context ended: %v, want ErrLeft", err)
	}
}

func (s *suite) subscriptionEnds(t *testing.T) {
	ctx := s.ctx(t)
	ds := s.group(t, 2)
	sctx, cancel := context.WithCancel(ctx)
	sub := s.subscribe(t, sctx, ds[1])
	cancel()
	timer := time.NewTimer(s.cfg.timeout)
	defer timer.Stop()
	for {
		select {
		case _, ok := <-sub:
			if !ok {
				return
			}
		case <-timer.C:
			t.Fatalf("the event stream stayed open %v after its context ended", s.cfg.timeout)
		}
	}
}

func (s *suite) invalid(t *testing.T) {
	ctx := s.ctx(t)
	ds := s.group(t, 1)
	if _, err := ds[0].Announce(ctx, discovery.Record{Addrs: []string{"x"}}); !errors.Is(err, discovery.ErrInvalidRecord) {
		t.Errorf("Announce with an empty ID: %v, want ErrInvalidRecord", err)
	}
	announce(t, ctx, ds[0], s.record("twice"))
	if _, err := ds[0].Announce(ctx, s.record("twice")); !errors.Is(err, discovery.ErrAlreadyAnnounced) {
		t.Errorf("a second Announce of one ID: %v, want ErrAlreadyAnnounced", err)
	}
}

func (s *suite) closeIdempotent(t *testing.T) {
	ctx := s.ctx(t)
	ds := s.make(t, 2)
	if len(ds) != 2 {
		t.Fatalf("MakeGroup returned %d discoverers, want 2", len(ds))
	}
	defer ds[1].Close(context.Background())
	sub := s.subscribe(t, ctx, ds[1])
	mine := s.subscribe(t, ctx, ds[0])
	announce(t, ctx, ds[0], s.record("closer"))
	s.found(t, sub, "observer", "closer")
	for i := range 2 {
		if err := ds[0].Close(ctx); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	// Close ended the announcement (others see it leave) and our stream.
	s.await(t, sub, "Lost for a peer whose discoverer closed", s.is(discovery.Lost, "closer"))
	timer := time.NewTimer(s.cfg.timeout)
	defer timer.Stop()
drain:
	for {
		select {
		case _, ok := <-mine:
			if !ok {
				break drain
			}
		case <-timer.C:
			t.Fatal("a subscription stayed open after Close")
		}
	}
	if _, err := ds[0].Announce(ctx, s.record("after-close")); !errors.Is(err, discovery.ErrClosed) {
		t.Errorf("Announce after Close: %v, want ErrClosed", err)
	}
	if _, err := ds[0].Subscribe(ctx); !errors.Is(err, discovery.ErrClosed) {
		t.Errorf("Subscribe after Close: %v, want ErrClosed", err)
	}
}

func (s *suite) noLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	// A subtest, so that whatever MakeGroup registered with t.Cleanup (a
	// relay server, say) has stopped too before goroutines are counted.
	t.Run("group", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		ds := s.make(t, 3)
		for i, d := range ds {
			s.subscribe(t, ctx, d)
			announce(t, ctx, d, s.record(fmt.Sprintf("leak-%d", i)))
		}
		sub := s.subscribe(t, ctx, ds[0])
		s.found(t, sub, "leak-0", "leak-1", "leak-2")
		for _, d := range ds {
			if err := d.Close(context.Background()); err != nil {
				t.Errorf("Close: %v", err)
			}
		}
	})
	deadline := time.Now().Add(s.cfg.timeout)
	for {
		after := runtime.NumGoroutine()
		if after <= before {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("%d goroutines before, %d after closing everything:\n%s", before, after, buf[:n])
		}
		time.Sleep(20 * time.Millisecond)
	}
}
