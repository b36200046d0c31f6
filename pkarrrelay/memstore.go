package pkarrrelay

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/phrasemeet/discovery/pkarrclient"
)

// MemoryStore is a Store in memory that evicts the least recently used
// packet when full. Everything is lost when the process ends, which suits
// tests and relays that can afford to forget (clients republish about
// hourly).
type MemoryStore struct {
	// One mutex around a non-thread-safe LRU, rather than a thread-safe
	// cache, because Put must compare and replace in one step.
	mu     sync.Mutex
	lru    *simplelru.LRU[pkarrclient.PublicKey, Record]
	closed bool
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty store holding at most capacity packets;
// a capacity below 1 means DefaultCapacity. A full packet takes a little over
// a kilobyte, so DefaultCapacity can grow to about 1.2 GB.
func NewMemoryStore(capacity int) *MemoryStore {
	if capacity < 1 {
		capacity = DefaultCapacity
	}
	lru, err := simplelru.NewLRU[pkarrclient.PublicKey, Record](capacity, nil)
	if err != nil { // only for a non-positive size, excluded above
		panic("pkarrrelay: " + err.Error())
	}
	return &MemoryStore{lru: lru}
}

// Put implements Store. Put is the recent use that keeps a key from eviction.
func (s *MemoryStore) Put(ctx context.Context, p *pkarrclient.SignedPacket) (PutOutcome, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	ts := p.Timestamp()
	// The copy and the TTL scan happen outside the lock; only the compare
	// and the swap need it.
	rec := newRecord(p, time.Now())
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, ErrClosed
	}
	outcome := PutStored
	if held, ok := s.lru.Peek(p.PublicKey()); ok {
		outcome = compare(ts, rec.Payload, &held)
		if outcome == PutNotMostRecent {
			return outcome, nil
		}
		if outcome == PutUnchanged {
			// Keep the held bytes (callers may share them) and refresh
			// only the time.
			held.Stored = rec.Stored
			rec = held
		}
	}
	s.lru.Add(p.PublicKey(), rec)
	return outcome, nil
}

// Get implements Store. The returned Payload is shared, never modified.
func (s *MemoryStore) Get(ctx context.Context, key pkarrclient.PublicKey) (Record, error) {
	if err := ctx.Err(); err != nil {
		return Record{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Record{}, ErrClosed
	}
	rec, ok := s.lru.Get(key)
	if !ok {
		return Record{}, ErrNotFound
	}
	return rec, nil
}

// Len implements Store.
func (s *MemoryStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lru.Len()
}

// Close implements Store: it drops every packet.
func (s *MemoryStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		s.lru.Purge()
	}
	return nil
}
