package slotdiscovery_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/phrasemeet/discovery"
	"github.com/phrasemeet/discovery/internal/slottest"
	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/slotdiscovery"
)

// TestCanSyncOneLyingRelay runs three can-sync peers over a relay that
// answers first, acknowledges every PUT and keeps only the first packet
// of each key, which for every slot is an old one naming a peer long
// gone, and an honest relay 3-20 ms slower: each must find the other
// two, as over two honest relays. Reads that trusted the first answer
// would see only the old names.
func TestCanSyncOneLyingRelay(t *testing.T) {
	honest := slottest.Serve(t, slottest.Delayed(slottest.RelayHandler(t), 3*time.Millisecond, 20*time.Millisecond))
	urls := []string{slottest.LyingRelay(t, goneCanSyncPeers(t)...), honest}
	const n = 3
	ds := make([]*slotdiscovery.CanSync, n)
	ids := make([]string, n)
	for i := range ds {
		ds[i] = newCanSync(t, slottest.ClientWith(t, urls, pkarrclient.RelayTimeout(250*time.Millisecond)), csPassphrase, csFastSchedule()...)
		ids[i] = csID(fmt.Sprint("lying relay peer ", i))
		if _, err := ds[i].Announce(t.Context(), discovery.Record{ID: ids[i]}); err != nil {
			t.Fatal(err)
		}
		// One after the other: can-sync's own claim race puts peers that
		// start together in one slot, where they overwrite each other
		// (failure 2 of the notes), liar or not.
		waitClaimed(t, honest, ids[i])
	}
	known := make([]func() []string, n)
	for i, d := range ds {
		known[i] = watch(t, d)
	}
	waitKnown(t, known, ids, 40*time.Second, nil)
}

// TestCanSyncLaggingRelay runs three can-sync peers over an honest relay
// and one that answers first with an old packet in every slot, naming
// peers long gone, and refuses every write. Reads that took the first
// answer would see only the old names.
func TestCanSyncLaggingRelay(t *testing.T) {
	frozen := goneCanSyncPeers(t)
	honest := slottest.Serve(t, slottest.Delayed(slottest.RelayHandler(t), 3*time.Millisecond, 20*time.Millisecond))
	urls := []string{slottest.FrozenRelay(t, frozen...), honest}
	const n = 3
	known := make([]func() []string, n)
	ids := make([]string, n)
	for i := range n {
		d := newCanSync(t, slottest.ClientWith(t, urls, pkarrclient.RelayTimeout(250*time.Millisecond)), csPassphrase, csFastSchedule()...)
		known[i] = watch(t, d)
		ids[i] = csID(fmt.Sprint("lagging relay peer ", i))
		if _, err := d.Announce(t.Context(), discovery.Record{ID: ids[i]}); err != nil {
			t.Fatal(err)
		}
		waitClaimed(t, honest, ids[i])
	}
	waitKnown(t, known, ids, 40*time.Second, nil)
}

// TestReadCanSyncSlotIgnoresTheCache: the client cached the packet it
// published, which the relay dropped; the read says what the relay holds.
func TestReadCanSyncSlotIgnoresTheCache(t *testing.T) {
	c := slottest.Client(t, slottest.LyingRelay(t))
	key := slotdiscovery.CanSyncSlotKey([]byte(csPassphrase), 0)
	first, second := csID("first"), csID("second")
	for i, id := range []string{first, second} {
		p, err := pkarrclient.NewBuilder().Timestamp(pkarrclient.Timestamp(1_700_000_000_000_000+i)).
			TXT(slotdiscovery.CanSyncRecordName, 300, id).Sign(key)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Publish(t.Context(), p); err != nil {
			t.Fatal(err)
		}
	}
	if got, _, err := slotdiscovery.ReadCanSyncSlot(t.Context(), c, key.PublicKey()); err != nil || got != first {
		t.Fatalf("read %s, %v; want %s, which the relay kept, not %s, which it dropped", got, err, first, second)
	}
}

// goneCanSyncPeers returns a packet for each can-sync slot, an hour old,
// naming a peer long gone.
func goneCanSyncPeers(t *testing.T) []*pkarrclient.SignedPacket {
	t.Helper()
	old := pkarrclient.TimestampFromTime(time.Now().Add(-time.Hour))
	var out []*pkarrclient.SignedPacket
	for i := range slotdiscovery.CanSyncSlots {
		p, err := pkarrclient.NewBuilder().Timestamp(old).
			TXT(slotdiscovery.CanSyncRecordName, 300, csID(fmt.Sprint("gone ", i))).
			Sign(slotdiscovery.CanSyncSlotKey([]byte(csPassphrase), i))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// waitClaimed waits until a slot on the relay at url holds id.
func waitClaimed(t *testing.T, url, id string) {
	t.Helper()
	c := slottest.Client(t, url)
	ctx, cancel := context.WithTimeout(t.Context(), 40*time.Second)
	defer cancel()
	for {
		for i := range slotdiscovery.CanSyncSlots {
			key := slotdiscovery.CanSyncSlotKey([]byte(csPassphrase), i).PublicKey()
			if got, _, err := slotdiscovery.ReadCanSyncSlot(ctx, c, key); err == nil && got == id {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s claimed no slot on the honest relay within 40 s", id)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// watch follows d's events and returns what d knows now, by ID.
func watch(t *testing.T, d discovery.Discoverer) func() []string {
	t.Helper()
	events, err := d.Subscribe(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	ids := make(map[string]bool)
	go func() {
		for e := range events {
			mu.Lock()
			ids[e.Peer.ID] = e.Type != discovery.Lost
			mu.Unlock()
		}
	}()
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for id, ok := range ids {
			if ok {
				out = append(out, id)
			}
		}
		slices.Sort(out)
		return out
	}
}
