package discovery

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Memory is an in-process rendezvous space: every Discoverer joined to the
// same Memory sees the others' announcements at once, and a leave or an
// ended announcement as Lost at once. It is for tests and examples, and is
// the reference the conformance suite is written against.
type Memory struct {
	now func() time.Time

	mu      sync.Mutex
	members map[*memoryMember]struct{}
	records map[string]*memoryAnnouncement // by ID, across the space
}

// NewMemory returns an empty space.
func NewMemory() *Memory {
	return &Memory{
		now:     time.Now,
		members: make(map[*memoryMember]struct{}),
		records: make(map[string]*memoryAnnouncement),
	}
}

// Join returns a new Discoverer in the space, which immediately knows every
// record announced there. name is its [Discoverer.Name] ("memory" if
// empty).
func (m *Memory) Join(name string) Discoverer {
	if name == "" {
		name = "memory"
	}
	d := &memoryMember{space: m, name: name, tracker: NewTracker(m.now), own: make(map[*memoryAnnouncement]struct{})}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.members[d] = struct{}{}
	for _, a := range m.records {
		d.tracker.Upsert(d.peer(a.rec))
	}
	return d
}

type memoryMember struct {
	space   *Memory
	name    string
	tracker *Tracker
	wg      sync.WaitGroup // announcement watchers

	// Guarded by space.mu.
	closed bool
	own    map[*memoryAnnouncement]struct{}
}

func (d *memoryMember) Name() string { return d.name }

// peer is rec as this member sees it.
func (d *memoryMember) peer(rec Record) Peer {
	return Peer{Record: rec, Sources: []string{d.name}, Seen: d.space.now()}
}

func (d *memoryMember) Announce(ctx context.Context, rec Record) (Announcement, error) {
	if err := rec.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m := d.space
	a := &memoryAnnouncement{owner: d, rec: rec.Clone(), done: make(chan struct{})}
	m.mu.Lock()
	switch {
	case d.closed:
		m.mu.Unlock()
		return nil, ErrClosed
	case m.records[rec.ID] != nil:
		m.mu.Unlock()
		return nil, fmt.Errorf("%w: %q", ErrAlreadyAnnounced, rec.ID)
	}
	m.records[rec.ID] = a
	d.own[a] = struct{}{}
	m.publishLocked(a)
	d.wg.Add(1)
	m.mu.Unlock()
	go func() {
		defer d.wg.Done()
		select {
		case <-ctx.Done():
			a.end()
		case <-a.done:
		}
	}()
	return a, nil
}

func (d *memoryMember) Subscribe(ctx context.Context) (<-chan Event, error) {
	return d.tracker.Subscribe(ctx)
}

// Close ends at once: the members of a Memory are told synchronously, so
// ctx has nothing to cut short.
func (d *memoryMember) Close(context.Context) error {
	m := d.space
	m.mu.Lock()
	if d.closed {
		m.mu.Unlock()
		d.wg.Wait()
		return nil
	}
	d.closed = true
	delete(m.members, d)
	var own []*memoryAnnouncement
	for a := range d.own {
		own = append(own, a)
	}
	m.mu.Unlock()
	for _, a := range own {
		a.end()
	}
	d.wg.Wait()
	d.tracker.Close()
	return nil
}

// publishLocked shows a's record to every other member.
func (m *Memory) publishLocked(a *memoryAnnouncement) {
	for d := range m.members {
		if d != a.owner {
			d.tracker.Upsert(d.peer(a.rec))
		}
	}
}

type memoryAnnouncement struct {
	owner *memoryMember
	done  chan struct{} // closed when the announcement ends

	// Guarded by owner.space.mu.
	rec   Record
	ended bool
}

func (a *memoryAnnouncement) Record() Record {
	m := a.owner.space
	m.mu.Lock()
	defer m.mu.Unlock()
	return a.rec.Clone()
}

func (a *memoryAnnouncement) Update(ctx context.Context, rec Record) error {
	if err := rec.Validate(); err != nil {
		return err
	}
	m := a.owner.space
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case a.ended:
		return ErrLeft
	case rec.ID != a.rec.ID:
		return fmt.Errorf("%w: the ID cannot change (%q to %q)", ErrInvalidRecord, a.rec.ID, rec.ID)
	}
	a.rec = rec.Clone()
	m.publishLocked(a)
	return nil
}

func (a *memoryAnnouncement) Leave(context.Context) error {
	a.end()
	return nil
}

// end withdraws the record from the space, once.
func (a *memoryAnnouncement) end() {
	m := a.owner.space
	m.mu.Lock()
	defer m.mu.Unlock()
	if a.ended {
		return
	}
	a.ended = true
	close(a.done)
	delete(m.records, a.rec.ID)
	delete(a.owner.own, a)
	for d := range m.members {
		if d != a.owner {
			d.tracker.Remove(a.rec.ID)
		}
	}
}
