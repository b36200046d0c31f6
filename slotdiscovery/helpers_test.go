package slotdiscovery_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/phrasemeet/discovery"
	"github.com/phrasemeet/discovery/internal/slottest"
	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/slotdiscovery"
)

// newPeers starts n default-profile peers over the relays at urls, each
// with a client of its own.
func newPeers(t *testing.T, g *slotdiscovery.Group, urls []string, n int) []*slotdiscovery.Discoverer {
	ds, _ := newPeersClients(t, g, urls, n)
	return ds
}

// newPeersClients is newPeers, and returns each peer's client too.
func newPeersClients(t *testing.T, g *slotdiscovery.Group, urls []string, n int) ([]*slotdiscovery.Discoverer, []*pkarrclient.Client) {
	t.Helper()
	ds := make([]*slotdiscovery.Discoverer, n)
	cs := make([]*pkarrclient.Client, n)
	for i := range ds {
		// A relay timeout in proportion to the fast schedule's stale
		// bound, as the defaults' 2 s is to 150 s.
		c := slottest.ClientWith(t, urls, pkarrclient.RelayTimeout(250*time.Millisecond), pkarrclient.RelayRetries(1))
		d, err := slotdiscovery.New(c, g, slottest.FastSchedule()...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close(context.Background()) })
		ds[i], cs[i] = d, c
	}
	return ds, cs
}

// announceAll announces peer-i on the i-th discoverer and returns the IDs.
func announceAll(t *testing.T, ds []*slotdiscovery.Discoverer) []string {
	t.Helper()
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = fmt.Sprintf("peer-%d", i)
		rec := discovery.Record{ID: ids[i], Addrs: []string{fmt.Sprintf("/ip4/192.0.2.1/udp/%d/quic-v1", 4000+i)}}
		if _, err := d.Announce(t.Context(), rec); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

// waitAllKnow waits until every peer knows every other, or fails the test
// after timeout with what each knows.
func waitAllKnow(t *testing.T, ds []*slotdiscovery.Discoverer, ids []string, timeout time.Duration) {
	t.Helper()
	known := make([]func() []string, len(ds))
	for i, d := range ds {
		known[i] = func() []string { return peerIDs(d.Peers()) }
	}
	waitKnown(t, known, ids, timeout, func(i int) string {
		return fmt.Sprintf("slot %d, stats %+v", ds[i].Slot(ids[i]), ds[i].Stats())
	})
}

// waitKnown waits until the i-th peer knows every ID but ids[i], as known[i]
// tells, or fails the test after timeout, describing each peer with
// describe (if not nil).
func waitKnown(t *testing.T, known []func() []string, ids []string, timeout time.Duration, describe func(i int) string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	for {
		missing := 0
		for i := range known {
			k := known[i]()
			for j, id := range ids {
				if j != i && !slices.Contains(k, id) {
					missing++
				}
			}
		}
		if missing == 0 {
			return
		}
		select {
		case <-ctx.Done():
			for i := range known {
				line := fmt.Sprintf("peer %d knows %v", i, known[i]())
				if describe != nil {
					line += "; " + describe(i)
				}
				t.Error(line)
			}
			t.Fatalf("%d of %d peer pairs still apart after %v", missing, len(ids)*(len(ids)-1), timeout)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// lockedAhead returns packets for g's first n slots stamped a year ahead:
// what a passphrase holder writes to lock them, to a relay that takes it.
func lockedAhead(t *testing.T, g *slotdiscovery.Group, n int) []*pkarrclient.SignedPacket {
	t.Helper()
	ahead := pkarrclient.TimestampFromTime(time.Now().AddDate(1, 0, 0))
	out := make([]*pkarrclient.SignedPacket, 0, n)
	for i := range n {
		p, err := pkarrclient.NewBuilder().Timestamp(ahead).TXT("@", 300, "a year ahead").Sign(g.SlotKey(i))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func peerIDs(ps []discovery.Peer) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.ID
	}
	return out
}
