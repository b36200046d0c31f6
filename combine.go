package discovery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Combine runs several discoverers as one. It announces through every
// member and merges what they find: a peer found by two members is one
// peer, Found once, with both in [Peer.Sources] (the record shown is the
// one seen most recently), and Lost only when the last member loses it. A
// member that fails to announce or to subscribe does not stop the others;
// Announce fails only if every member failed.
//
// Combine takes ownership of its members: Close closes them.
func Combine(members ...Discoverer) Discoverer {
	names := make([]string, len(members))
	for i, d := range members {
		names[i] = d.Name()
	}
	c := &combined{
		name:    "combine(" + strings.Join(names, ",") + ")",
		members: slices.Clone(members),
		tracker: NewTracker(nil),
		known:   make(map[string]map[int]Peer),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	for i, d := range c.members {
		events, err := d.Subscribe(c.ctx)
		if err != nil {
			// It still announces; it just contributes no peers.
			continue
		}
		c.wg.Add(1)
		go c.follow(i, events)
	}
	return c
}

type combined struct {
	name    string
	members []Discoverer
	tracker *Tracker

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	known map[string]map[int]Peer // peer ID -> member index -> peer as that member knows it

	closeOnce sync.Once
}

func (c *combined) Name() string { return c.name }

// follow merges one member's events into the combined view.
func (c *combined) follow(i int, events <-chan Event) {
	defer c.wg.Done()
	for e := range events {
		c.mu.Lock()
		bySource := c.known[e.Peer.ID]
		if e.Type == Lost {
			delete(bySource, i)
		} else {
			if bySource == nil {
				bySource = make(map[int]Peer)
				c.known[e.Peer.ID] = bySource
			}
			bySource[i] = e.Peer
		}
		if len(bySource) == 0 {
			delete(c.known, e.Peer.ID)
			c.tracker.Remove(e.Peer.ID)
		} else {
			c.tracker.Upsert(c.mergeLocked(bySource))
		}
		c.mu.Unlock()
	}
}

// mergeLocked is one peer as the members know it: the most recently seen
// record, and every member that knows it, in member order.
func (c *combined) mergeLocked(bySource map[int]Peer) Peer {
	var merged Peer
	first := true
	for i := range c.members {
		p, ok := bySource[i]
		if !ok {
			continue
		}
		if first || p.Seen.After(merged.Seen) {
			merged.Record, merged.Seen = p.Record, p.Seen
		}
		first = false
		for _, s := range p.Sources {
			if !slices.Contains(merged.Sources, s) {
				merged.Sources = append(merged.Sources, s)
			}
		}
	}
	return merged
}

func (c *combined) Announce(ctx context.Context, rec Record) (Announcement, error) {
	if err := rec.Validate(); err != nil {
		return nil, err
	}
	if c.ctx.Err() != nil {
		return nil, ErrClosed
	}
	a := &combinedAnnouncement{rec: rec.Clone(), done: ctx.Done()}
	var errs []error
	for _, d := range c.members {
		ma, err := d.Announce(ctx, rec)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", d.Name(), err))
			continue
		}
		a.members = append(a.members, ma)
	}
	if len(a.members) == 0 {
		return nil, fmt.Errorf("discovery: no member could announce: %w", errors.Join(errs...))
	}
	return a, nil
}

func (c *combined) Subscribe(ctx context.Context) (<-chan Event, error) {
	return c.tracker.Subscribe(ctx)
}

// Close closes every member at once, each with ctx, so that one slow
// mechanism does not spend the others' time.
func (c *combined) Close(ctx context.Context) error {
	errs := make([]error, len(c.members))
	var wg sync.WaitGroup
	for i, d := range c.members {
		wg.Go(func() {
			if err := d.Close(ctx); err != nil {
				errs[i] = fmt.Errorf("%s: %w", d.Name(), err)
			}
		})
	}
	wg.Wait()
	c.closeOnce.Do(func() {
		c.cancel()
		c.wg.Wait()
		c.tracker.Close()
	})
	return errors.Join(errs...)
}

type combinedAnnouncement struct {
	members []Announcement
	// done is the announcement's context's: once it has ended the
	// announcement has, whether or not every member has noticed yet.
	done <-chan struct{}

	mu  sync.Mutex
	rec Record
}

func (a *combinedAnnouncement) Record() Record {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.rec.Clone()
}

// Update updates every member's announcement; it fails only if all did.
func (a *combinedAnnouncement) Update(ctx context.Context, rec Record) error {
	select {
	case <-a.done:
		return ErrLeft
	default:
	}
	var errs []error
	for _, m := range a.members {
		if err := m.Update(ctx, rec); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == len(a.members) {
		return errors.Join(errs...)
	}
	a.mu.Lock()
	a.rec = rec.Clone()
	a.mu.Unlock()
	return nil
}

// Leave leaves through every member, in parallel, and reports every
// failure.
func (a *combinedAnnouncement) Leave(ctx context.Context) error {
	errs := make([]error, len(a.members))
	var wg sync.WaitGroup
	for i, m := range a.members {
		wg.Go(func() { errs[i] = m.Leave(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}
