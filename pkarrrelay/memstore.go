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
	lru    *simplelru.LRU[pkarrclient.PublicKey, memEntry]
	closed bool
}

// memEntry is what the store keeps per packet: the payload slice and the
// two numbers a GET cannot read from it, without Record's full time.Time
// and timestamp copy. That keeps the LRU's per-key element in the 128-byte
// allocation class rather than the 160-byte one; the payload itself is one
// slice of exactly its own bytes (1072 at most, in the 1152-byte class).
type memEntry struct {
	payload []byte
	stored  int64 // Unix nanoseconds
	ttl     uint32
}

func (e *memEntry) record() Record {
	ts, _ := checkPayload(e.payload) // verified when it was stored
	return Record{Payload: e.payload, Timestamp: ts, TTL: e.ttl, Stored: time.Unix(0, e.stored)}
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty store holding at most capacity packets;
// a capacity below 1 means DefaultCapacity.
//
// Measured (TestMemoryStoreFootprint, BenchmarkMemoryStoreFootprint), a
// stored packet costs about 1.4 KB of live heap at the full 1072-byte
// payload and 0.65 KB at a typical 405-byte one, so DefaultCapacity of full
// packets holds about 1.4 GB live. The process's resident set is larger:
// with Go's default GOGC=100 the heap grows to about twice the live data
// between collections, and PUTing full packets measured 2.6 KB of RSS per
// packet (2.6 GB at DefaultCapacity). Set GOMEMLIMIT, or a smaller capacity,
// where that matters.
func NewMemoryStore(capacity int) *MemoryStore {
	if capacity < 1 {
		capacity = DefaultCapacity
	}
	lru, err := simplelru.NewLRU[pkarrclient.PublicKey, memEntry](capacity, nil)
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
	e := memEntry{payload: rec.Payload, stored: rec.Stored.UnixNano(), ttl: rec.TTL}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, ErrClosed
	}
	outcome := PutStored
	if held, ok := s.lru.Peek(p.PublicKey()); ok {
		heldRec := held.record()
		outcome = compare(ts, rec.Payload, &heldRec)
		if outcome == PutNotMostRecent {
			return outcome, nil
		}
		if outcome == PutUnchanged {
			// Keep the held bytes (callers may share them) and refresh
			// only the time.
			held.stored = e.stored
			e = held
		}
	}
	s.lru.Add(p.PublicKey(), e)
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
	e, ok := s.lru.Get(key)
	if !ok {
		return Record{}, ErrNotFound
	}
	return e.record(), nil
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
