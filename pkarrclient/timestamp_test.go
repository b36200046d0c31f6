package pkarrclient

import (
	"math"
	"testing"
	"time"
)

// hugeTimestamps are the values an attacker stamps a packet with to lock
// its key: every one lies beyond 2^63-1 microseconds, where a conversion
// through int64 wraps into the past.
var hugeTimestamps = []Timestamp{
	1<<63 - 1,
	1 << 63,
	1<<63 + 123_456_789,
	math.MaxUint64 - 1,
	math.MaxUint64,
}

// A timestamp beyond 2^63-1 µs is far in the future, never in the past:
// reading it as a time must keep its order against the clock and against
// every other timestamp.
func TestTimestampTimeNeverWraps(t *testing.T) {
	now := time.Now()
	prev := Timestamp(0)
	for _, ts := range hugeTimestamps {
		got := ts.Time()
		if !got.After(now) {
			t.Errorf("Timestamp(%d).Time() = %v, not after now", uint64(ts), got)
		}
		if got.Sub(now) <= 2*time.Minute {
			t.Errorf("Timestamp(%d).Time().Sub(now) = %v, within a future bound", uint64(ts), got.Sub(now))
		}
		if got.Year() < 294_000 {
			t.Errorf("Timestamp(%d).Time() is in year %d", uint64(ts), got.Year())
		}
		if prev != 0 && !got.After(prev.Time()) {
			t.Errorf("Timestamp(%d).Time() = %v, not after Timestamp(%d).Time() = %v", uint64(ts), got, uint64(prev), prev.Time())
		}
		if back := TimestampFromTime(got); back != ts {
			t.Errorf("TimestampFromTime(Timestamp(%d).Time()) = %d", uint64(ts), uint64(back))
		}
		prev = ts
	}
}

func TestTimestampFromTimeSaturates(t *testing.T) {
	if got := MaxTimestamp.Time().Year(); got != 586524 {
		t.Errorf("MaxTimestamp is in year %d, its godoc says 586524", got)
	}
	for _, c := range []struct {
		tm   time.Time
		want Timestamp
	}{
		{time.Unix(0, -1), 0},
		{time.Unix(0, 0), 0},
		{time.Unix(0, 999), 0},
		{time.Unix(0, 1000), 1},
		{time.UnixMicro(math.MaxInt64), math.MaxInt64},
		{time.UnixMicro(math.MaxInt64).Add(time.Microsecond), 1 << 63},
		{MaxTimestamp.Time().Add(999 * time.Nanosecond), MaxTimestamp},
		{MaxTimestamp.Time().Add(time.Microsecond), MaxTimestamp},
		{MaxTimestamp.Time().AddDate(1000, 0, 0), MaxTimestamp},
	} {
		if got := TimestampFromTime(c.tm); got != c.want {
			t.Errorf("TimestampFromTime(%v) = %d, want %d", c.tm, uint64(got), uint64(c.want))
		}
	}
}

// After is the check every future bound uses: it must agree with the
// exact order of timestamp and time, at every magnitude.
func TestTimestampAfter(t *testing.T) {
	now := time.Now()
	bound := now.Add(2 * time.Minute)
	for _, ts := range hugeTimestamps {
		if !ts.After(bound) {
			t.Errorf("Timestamp(%d).After(now+2min) = false", uint64(ts))
		}
	}
	for _, ts := range append([]Timestamp{0, 1, TimestampFromTime(now)}, hugeTimestamps...) {
		tm := ts.Time()
		for _, c := range []struct {
			d    time.Duration
			want bool
		}{
			{0, false},
			{-time.Nanosecond, true},
			{-time.Microsecond, true},
			{999 * time.Nanosecond, false},
			{time.Microsecond, false},
		} {
			if got := ts.After(tm.Add(c.d)); got != c.want {
				t.Errorf("Timestamp(%d).After(its time %+v) = %v, want %v", uint64(ts), c.d, got, c.want)
			}
		}
	}
	if !Timestamp(0).After(time.Unix(-1, 0)) {
		t.Error("the epoch is not after a time before it")
	}
	if MaxTimestamp.After(MaxTimestamp.Time().AddDate(1, 0, 0)) {
		t.Error("MaxTimestamp after a time a year past it")
	}
}

func TestTimestampNext(t *testing.T) {
	for _, c := range []struct {
		ts, want Timestamp
		ok       bool
	}{
		{0, 1, true},
		{1<<63 - 1, 1 << 63, true},
		{MaxTimestamp - 1, MaxTimestamp, true},
		{MaxTimestamp, MaxTimestamp, false},
	} {
		got, ok := c.ts.Next()
		if got != c.want || ok != c.ok {
			t.Errorf("Timestamp(%d).Next() = %d, %v; want %d, %v", uint64(c.ts), uint64(got), ok, uint64(c.want), c.ok)
		}
	}
}

// A Stamper whose clock has run past the last timestamp repeats
// MaxTimestamp: stuck, but never wrapped back to 0, which every stored
// packet would beat.
func TestStamperSaturates(t *testing.T) {
	s := NewStamper(func() time.Time { return MaxTimestamp.Time().AddDate(1, 0, 0) })
	for range 3 {
		if got := s.Next(); got != MaxTimestamp {
			t.Fatalf("Next() = %d, want MaxTimestamp", uint64(got))
		}
	}
	s = NewStamper(func() time.Time { return (MaxTimestamp - 1).Time() })
	if got := s.Next(); got != MaxTimestamp-1 {
		t.Fatalf("Next() = %d", uint64(got))
	}
	for range 3 {
		if got := s.Next(); got != MaxTimestamp {
			t.Fatalf("Next() after MaxTimestamp-1 = %d, want MaxTimestamp", uint64(got))
		}
	}
}

// FuzzTimestamp: at every magnitude, Time is exact (it round-trips and
// keeps the order of timestamps), After agrees with it, and Next is the
// successor or refuses.
func FuzzTimestamp(f *testing.F) {
	f.Add(uint64(0), int64(0))
	f.Add(uint64(1_700_000_000_123_456), int64(-1))
	f.Add(uint64(1<<63-1), int64(1000))
	f.Add(uint64(1<<63), int64(-1000))
	f.Add(uint64(math.MaxUint64), int64(999))
	f.Fuzz(func(t *testing.T, raw uint64, offset int64) {
		ts := Timestamp(raw)
		tm := ts.Time()
		if back := TimestampFromTime(tm); back != ts {
			t.Fatalf("TimestampFromTime(Timestamp(%d).Time()) = %d", raw, uint64(back))
		}
		other := tm.Add(time.Duration(offset))
		if got, want := ts.After(other), tm.After(other); got != want {
			t.Fatalf("Timestamp(%d).After(its time %+dns) = %v, want %v", raw, offset, got, want)
		}
		next, ok := ts.Next()
		if ok != (ts != MaxTimestamp) || ok && (next <= ts || !next.Time().After(tm) || next.Time().Sub(tm) != time.Microsecond) || !ok && next != MaxTimestamp {
			t.Fatalf("Timestamp(%d).Next() = %d, %v", raw, uint64(next), ok)
		}
	})
}
