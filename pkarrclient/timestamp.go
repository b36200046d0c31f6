package pkarrclient

import (
	"strconv"
	"sync/atomic"
	"time"
)

// Timestamp is a pkarr packet timestamp: microseconds since the Unix epoch.
// It doubles as the packet's version: a higher timestamp is newer.
type Timestamp uint64

// TimestampFromTime converts t to a Timestamp, truncating to microseconds.
// Times before the epoch map to 0.
func TimestampFromTime(t time.Time) Timestamp {
	us := t.UnixMicro()
	if us < 0 {
		return 0
	}
	return Timestamp(us)
}

// Time returns the timestamp as a time.Time in UTC.
func (ts Timestamp) Time() time.Time {
	return time.UnixMicro(int64(ts)).UTC()
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
// timestamp when the clock has not advanced (or went backwards).
func (s *Stamper) Next() Timestamp {
	for {
		last := s.last.Load()
		next := uint64(TimestampFromTime(s.now()))
		if next <= last {
			next = last + 1
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
