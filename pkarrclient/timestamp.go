package pkarrclient

import (
	"math"
	"strconv"
	"sync/atomic"
	"time"
)

// Timestamp is a pkarr packet timestamp: microseconds since the Unix epoch.
// It doubles as the packet's version: a higher timestamp is newer.
type Timestamp uint64

// MaxTimestamp is the largest timestamp a packet can carry, in the year
// 586524. A packet stamped so can never be replaced: relays and the DHT
// keep the newer packet of a key, and no timestamp is newer.
const MaxTimestamp = Timestamp(math.MaxUint64)

// TimestampFromTime converts t to a Timestamp, truncating to microseconds.
// Times before the epoch map to 0 and times after [MaxTimestamp] to
// MaxTimestamp. It is exact over the whole range, including past 2^63 µs,
// where time.Time's UnixMicro is undefined.
func TimestampFromTime(t time.Time) Timestamp {
	sec := t.Unix() // floor, defined for every time
	if sec < 0 {
		return 0
	}
	const maxSec = math.MaxUint64 / 1_000_000
	us := uint64(t.Nanosecond()) / 1000
	if uint64(sec) > maxSec || uint64(sec) == maxSec && us > math.MaxUint64%1_000_000 {
		return MaxTimestamp
	}
	return Timestamp(uint64(sec)*1_000_000 + us)
}

// Time returns the timestamp as a time.Time in UTC. The conversion is exact
// for every value: a timestamp past 2^63 µs is a time after the year
// 294246, never wrapped into the past, so a packet stamped there still
// reads as far ahead. Such times have no UnixMicro, and none past the year
// 9999 has an HTTP date or a JSON encoding; to judge a timestamp against a
// bound, prefer [Timestamp.After].
func (ts Timestamp) Time() time.Time {
	return time.Unix(int64(ts/1_000_000), int64(ts%1_000_000)*1000).UTC()
}

// After reports whether ts is later than t. It compares in the timestamp
// domain, exactly for every timestamp and every time: the check for a
// packet stamped beyond a future bound is ts.After(now.Add(bound)).
func (ts Timestamp) After(t time.Time) bool {
	if t.Unix() < 0 {
		return true // every timestamp is at or after the epoch
	}
	return ts > TimestampFromTime(t)
}

// Next returns the smallest timestamp newer than ts, which a write must
// carry to replace a packet stamped ts. It reports false, with
// MaxTimestamp, when there is none: ts is MaxTimestamp, and a packet
// stamped so can never be replaced. It never wraps to 0.
func (ts Timestamp) Next() (Timestamp, bool) {
	if ts == MaxTimestamp {
		return MaxTimestamp, false
	}
	return ts + 1, true
}

// String formats the timestamp as RFC 3339 with microseconds.
func (ts Timestamp) String() string {
	if ts > 1<<62 { // beyond time.Time's comfortable range; show the raw value
		return strconv.FormatUint(uint64(ts), 10) + "us"
	}
	return ts.Time().Format("2006-01-02T15:04:05.000000Z07:00")
}

// Stamper hands out strictly increasing timestamps from a clock, as pkarr
// requires of every writer: two packets signed in the same microsecond would
// otherwise be ordered by their DNS bytes, not by which came last.
//
// A Stamper is safe for concurrent use. Share one Stamper among everything
// that signs for the same keys; [Now] uses one per process.
type Stamper struct {
	now  func() time.Time
	last atomic.Uint64
}

// NewStamper returns a Stamper reading the given clock. A nil clock means
// time.Now.
func NewStamper(now func() time.Time) *Stamper {
	if now == nil {
		now = time.Now
	}
	return &Stamper{now: now}
}

// Next returns a timestamp from the clock, or one more than the previous
// timestamp when the clock has not advanced (or went backwards). It
// saturates at [MaxTimestamp] (a clock past the year 586524), repeating it
// rather than wrapping to 0.
func (s *Stamper) Next() Timestamp {
	for {
		last := s.last.Load()
		next := uint64(TimestampFromTime(s.now()))
		if next <= last {
			n, _ := Timestamp(last).Next()
			next = uint64(n)
		}
		if s.last.CompareAndSwap(last, next) {
			return Timestamp(next)
		}
	}
}

// processStamper makes timestamps strictly increasing across the whole
// process, which is what the pkarr specification asks of a writer. It is the
// package's one piece of shared mutable state, and it only ever moves forward
// with the real clock; code that needs another clock uses its own Stamper.
var processStamper = NewStamper(time.Now)

// Now returns a timestamp from the system clock, strictly greater than every
// timestamp Now returned before in this process.
func Now() Timestamp { return processStamper.Next() }
