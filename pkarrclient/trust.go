package pkarrclient

import (
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// defaultDistrust is how long a backend caught serving a packet older than
// one it accepted stays distrusted: long enough to outlast a scan cycle of
// the slot rendezvous many times over, short enough that a relay that
// restarted from an old snapshot, or one behind a stale cache, is not shut
// out for good.
const defaultDistrust = 10 * time.Minute

// ackLog remembers, per key and backend, the newest timestamp the backend
// accepted from this Client, and which backends have since served a packet
// older than that. A relay has no honest way to go back: it keeps the
// newest packet per key, so serving an older one after accepting a newer
// one means it lied about the PUT, lost data, or sits behind a cache. None
// of those deserves to answer first.
type ackLog struct {
	acked *lru.Cache[PublicKey, []Timestamp] // per backend index

	exempt []bool // per backend index: it may honestly serve older packets

	mu    sync.Mutex
	until []time.Time // per backend index: distrusted until then
}

func newAckLog(backends []Backend, keys int) *ackLog {
	c, err := lru.New[PublicKey, []Timestamp](max(keys, 1))
	if err != nil { // only for a size below 1, excluded above
		panic(err)
	}
	l := &ackLog{acked: c, until: make([]time.Time, len(backends)), exempt: make([]bool, len(backends))}
	for i, b := range backends {
		if m, ok := b.(MayServeOlder); ok && m.MayServeOlder() {
			l.exempt[i] = true
		}
	}
	return l
}

// accepted records that backend i accepted a packet for key stamped ts.
func (l *ackLog) accepted(key PublicKey, i int, ts Timestamp) {
	l.mu.Lock()
	defer l.mu.Unlock()
	acks, _ := l.acked.Get(key)
	if acks == nil {
		acks = make([]Timestamp, len(l.until))
	}
	if ts > acks[i] {
		acks = append([]Timestamp(nil), acks...) // the cache may still hand out the old slice
		acks[i] = ts
		l.acked.Add(key, acks)
	}
}

// served checks a packet backend i served for key against what it
// accepted before. It reports whether the backend just went back on an
// acknowledgement, and if so distrusts it until now+d.
func (l *ackLog) served(key PublicKey, i int, ts Timestamp, now time.Time, d time.Duration) bool {
	if d <= 0 || l.exempt[i] {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	acks, ok := l.acked.Peek(key)
	if !ok || ts >= acks[i] {
		return false
	}
	l.until[i] = now.Add(d)
	return true
}

// distrusted reports whether backend i is distrusted at now.
func (l *ackLog) distrusted(i int, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return now.Before(l.until[i])
}
