package slotdiscovery

import (
	"errors"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/phrasemeet/discovery"
	"github.com/phrasemeet/discovery/pkarrclient"
)

// TestComposeStaysWithinTheBound: the next version of a slot beats what
// the slot held and is never stamped past our own future bound, nor
// wrapped past 2^64-1 back to a time every stored packet beats. A slot
// where both cannot hold is locked for us, whatever its last read said.
func TestComposeStaysWithinTheBound(t *testing.T) {
	client, backend := fuzzClient(t)
	backend.set(errors.New("relay down")) // no read touches the slot view
	const bound = 2 * time.Minute
	d, err := New(client, fuzzGroup(t, fuzzPassphrase), WithClock(clockwork.NewFakeClockAt(fuzzNow)), WithFutureBound(bound))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	a := &announcement{d: d, rec: discovery.Record{ID: "peer"}, slot: -1, held: -1}
	e := entry{kind: kindLive, time: d.stamp(), since: d.stamp(), rec: a.rec}
	limit := pkarrclient.TimestampFromTime(fuzzNow.Add(bound))
	for _, c := range []struct {
		name   string
		held   pkarrclient.Timestamp
		locked bool
	}{
		{"past", pkarrclient.TimestampFromTime(fuzzNow.Add(-time.Second)), false},
		{"just inside the bound", limit - 1, false},
		{"at the bound", limit, true},
		{"2^63", 1 << 63, true},
		{"2^64-1", pkarrclient.MaxTimestamp, true},
	} {
		d.mu.Lock()
		sv := d.view.slot(0)
		sv.ts, sv.locked = c.held, false
		d.mu.Unlock()
		p, _, err := a.compose(0, e)
		d.mu.Lock()
		locked := sv.locked
		d.mu.Unlock()
		if c.locked {
			if !errors.Is(err, errLocked) || !locked {
				t.Errorf("%s: compose over %d: %v, locked=%v; want errLocked", c.name, uint64(c.held), err, locked)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: compose over %d: %v", c.name, uint64(c.held), err)
			continue
		}
		if ts := p.Timestamp(); ts <= c.held || ts > limit {
			t.Errorf("%s: compose over %d stamped %d, want in (%d, %d]", c.name, uint64(c.held), uint64(ts), uint64(c.held), uint64(limit))
		}
	}
}
