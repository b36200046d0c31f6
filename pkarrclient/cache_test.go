package pkarrclient

import (
	"testing"
	"time"
)

func TestCacheNeverGoesBack(t *testing.T) {
	sk := newSecretKey(t)
	v1 := txtPacket(t, sk, testEpoch, "v1", 300)
	v2 := txtPacket(t, sk, testEpoch+1, "v2", 300)
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	c := newPacketCache(10)

	c.put(v2, t0)
	c.put(v1, t0.Add(time.Minute))
	e, ok := c.get(sk.PublicKey())
	if !ok || !e.packet.Equal(v2) || !e.stored.Equal(t0) {
		t.Fatalf("after putting an older packet: %v at %v", e.packet, e.stored)
	}

	// The same packet again refreshes the stored time, never backwards.
	c.put(v2, t0.Add(2*time.Minute))
	if e, _ := c.get(sk.PublicKey()); !e.stored.Equal(t0.Add(2 * time.Minute)) {
		t.Fatalf("stored %v, want refreshed", e.stored)
	}
	c.put(v2, t0)
	if e, _ := c.get(sk.PublicKey()); !e.stored.Equal(t0.Add(2 * time.Minute)) {
		t.Fatalf("stored %v went backwards", e.stored)
	}

	// Equal timestamps: the larger DNS message wins, as in pkarr.
	a := txtPacket(t, sk, testEpoch+5, "a", 300)
	b := txtPacket(t, sk, testEpoch+5, "b", 300)
	hi, lo := a, b
	if b.MoreRecentThan(a) {
		hi, lo = b, a
	}
	c.put(hi, t0)
	c.put(lo, t0.Add(time.Hour))
	if e, _ := c.get(sk.PublicKey()); !e.packet.Equal(hi) {
		t.Fatal("equal timestamps: the smaller DNS message replaced the larger")
	}
}

func TestCacheLRUAndDisabled(t *testing.T) {
	t0 := time.Now()
	c := newPacketCache(2)
	var keys []PublicKey
	for i := range 3 {
		sk := newSecretKey(t)
		keys = append(keys, sk.PublicKey())
		c.put(txtPacket(t, sk, testEpoch, "x", 300), t0)
		if i == 1 {
			c.get(keys[0]) // make the first key recently used
		}
	}
	if c.len() != 2 {
		t.Fatalf("len %d, want 2", c.len())
	}
	if _, ok := c.get(keys[1]); ok {
		t.Error("the least recently used key was not evicted")
	}
	if _, ok := c.get(keys[0]); !ok {
		t.Error("a recently used key was evicted")
	}

	var off *packetCache = newPacketCache(0)
	if off != nil {
		t.Fatal("size 0 should disable the cache")
	}
	off.put(txtPacket(t, newSecretKey(t), testEpoch, "x", 300), t0) // no panic
	if _, ok := off.get(keys[0]); ok || off.len() != 0 {
		t.Fatal("a disabled cache holds something")
	}
}
