package slotdiscovery_test

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/zeebo/blake3"

	"github.com/phrasemeet/discovery"
	"github.com/phrasemeet/discovery/internal/slottest"
	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/slotdiscovery"
)

// The can-sync profile against locked slots, on the relay of locked_test.go.

// csAwaitSane waits until id is in a can-sync slot whose packet is stamped
// within the future bound, and returns the slot: the ID as its announcer
// wrote it, not as an attacker pinned it.
func csAwaitSane(t *testing.T, ctx context.Context, c *pkarrclient.Client, id string) int {
	t.Helper()
	deadline := time.Now().Add(lockWait)
	for {
		ids, tss := csSlots(t, ctx, c, csPassphrase)
		for i := range ids {
			if ids[i] == id && !tss[i].Time().After(time.Now().Add(2*time.Minute)) {
				return i
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never written to a slot within the future bound; slots now %q, stamped %v", id, ids, tss)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCanSyncLockedSlots locks can-sync slots beyond 2^63 µs on a relay
// that drops losing writes silently, as n0's does. can-sync cannot move
// once it claimed, so a locked slot must never be claimed: not as the
// first empty slot, not as one that holds our own ID. Two peers then meet;
// an ID found in a locked slot is reported, seen no later than it was
// read; no write is stamped beyond the future bound, and the requests stay
// within the schedule.
func TestCanSyncLockedSlots(t *testing.T) {
	ctx := csCtx(t)
	r := startLockRelay(t, true)
	key := func(i int) *pkarrclient.SecretKey { return slotdiscovery.CanSyncSlotKey([]byte(csPassphrase), i) }
	aID, bID, attacker := csID("locked a"), csID("locked b"), csID("attacker")
	canSyncTXT := func(id string) *pkarrclient.Builder {
		return pkarrclient.NewBuilder().TXT(slotdiscovery.CanSyncRecordName, 300, id)
	}
	r.lock(t, key(0), lockAtMax, pkarrclient.NewBuilder().TXT("_junk", 300, "locked")) // reads empty
	r.lock(t, key(1), lockAt63, canSyncTXT(attacker))                                  // reads taken
	r.lock(t, key(3), lockAt63x, canSyncTXT(aID))                                      // pins a's own ID
	observer := slottest.Client(t, r.url)
	start := time.Now()

	a := newCanSync(t, slottest.Client(t, r.url), csPassphrase, csFastSchedule()...)
	aEvents, err := a.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Announce(ctx, discovery.Record{ID: aID}); err != nil {
		t.Fatal(err)
	}
	if s := csAwaitSane(t, ctx, observer, aID); s != 2 {
		t.Errorf("a claimed slot %d, want 2, the first empty slot not locked", s)
	}
	// b starts once a holds its slot: two can-sync peers starting together
	// race for the same empty slot (failure 2 of the notes), not this test.
	b := newCanSync(t, slottest.Client(t, r.url), csPassphrase, csFastSchedule()...)
	bEvents, err := b.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Announce(ctx, discovery.Record{ID: bID}); err != nil {
		t.Fatal(err)
	}
	if s := csAwaitSane(t, ctx, observer, bID); s != 4 {
		t.Errorf("b claimed slot %d, want 4", s)
	}
	csAwait(t, aEvents, "a finds b", csIs(discovery.Found, bID))
	csAwait(t, bEvents, "b finds a", csIs(discovery.Found, aID))
	// A new subscription replays every peer known, the attacker's ID too.
	replay, err := b.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e := csAwait(t, replay, "b finds the attacker's ID", csIs(discovery.Found, attacker))
	if e.Peer.Seen.Before(start) || e.Peer.Seen.After(time.Now()) {
		t.Errorf("the ID in a slot stamped %d was seen at %v, want between %v and now", uint64(lockAt63), e.Peer.Seen, start)
	}

	// The schedule bounds the requests: per peer, eight GETs a scan and
	// one PUT a republish, with slack for a scan or republish in flight.
	gets, puts := r.gets.Load(), r.puts.Load()
	const window = 2 * time.Second
	time.Sleep(window)
	scans, republishes := int64(window/(100*time.Millisecond))+2, int64(window/(500*time.Millisecond))+2
	if n := r.gets.Load() - gets; n > 2*8*scans {
		t.Errorf("%d GETs in %v, want at most %d", n, window, 2*8*scans)
	}
	if n := r.puts.Load() - puts; n > 2*republishes {
		t.Errorf("%d PUTs in %v, want at most %d", n, window, 2*republishes)
	}
	if n := r.future.Load(); n > 0 {
		t.Errorf("%d writes stamped beyond the relay's future margin", n)
	}
}

// TestCanSyncFallbackSkipsLockedSlot fills all eight slots with the
// claimer's hash fallback slot locked: a write there can never land, so
// the claimer takes the next slot after it instead, the one place its
// claim departs from can-sync's.
func TestCanSyncFallbackSkipsLockedSlot(t *testing.T) {
	ctx := csCtx(t)
	r := startLockRelay(t, true)
	id := csID("claimer")
	idBytes, _ := hex.DecodeString(id)
	h := blake3.Sum256(idBytes)
	fallback := int(binary.LittleEndian.Uint64(h[:8]) % 8)
	observer := slottest.Client(t, r.url)
	old := csOld()
	for i := range 8 {
		sk := slotdiscovery.CanSyncSlotKey([]byte(csPassphrase), i)
		b := pkarrclient.NewBuilder().TXT(slotdiscovery.CanSyncRecordName, 300, csID(fmt.Sprint("p", i)))
		if i == fallback {
			r.lock(t, sk, lockAtMax, b)
			continue
		}
		r.lock(t, sk, old, b)
	}
	cs := newCanSync(t, slottest.Client(t, r.url), csPassphrase, csFastSchedule()...)
	if _, err := cs.Announce(ctx, discovery.Record{ID: id}); err != nil {
		t.Fatal(err)
	}
	csAwaitSlot(t, ctx, observer, csPassphrase, (fallback+1)%8, id, old)
}
