package pkarrclient

import (
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// packetCache holds the most recent packet the Client has seen per key,
// with the time it was stored, in a bounded LRU. It exists for two reasons:
// answering repeated resolves without network (pkarr's TTL rules decide for
// how long), and remembering the newest version of each key so that a relay
// replaying an older, validly signed packet cannot roll a caller back.
type packetCache struct {
	mu  sync.Mutex // serializes compare-and-put; lru locks itself for the rest
	lru *lru.Cache[PublicKey, cacheEntry]
}

// cacheEntry is one cached packet and when it was last stored or confirmed.
type cacheEntry struct {
	packet *SignedPacket
	stored time.Time
}

// newPacketCache returns a cache of at most size packets, or nil (no cache)
// when size is 0.
func newPacketCache(size int) *packetCache {
	if size <= 0 {
		return nil
	}
	c, err := lru.New[PublicKey, cacheEntry](size)
	if err != nil { // only for size <= 0, excluded above
		panic(err)
	}
	return &packetCache{lru: c}
}

// get returns the entry for key, marking it recently used. A nil cache
// holds nothing.
func (c *packetCache) get(key PublicKey) (cacheEntry, bool) {
	if c == nil {
		return cacheEntry{}, false
	}
	return c.lru.Get(key)
}

// put stores p as seen at now unless the cache already holds a more recent
// packet for its key: the cache never goes back in time. Storing the same
// packet again refreshes its time, since a backend has just confirmed it.
func (c *packetCache) put(p *SignedPacket, now time.Time) {
	if c == nil || p == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	key := p.PublicKey()
	if old, ok := c.lru.Peek(key); ok {
		switch {
		case old.packet.MoreRecentThan(p):
			return
		case old.packet.Equal(p):
			if now.After(old.stored) {
				c.lru.Add(key, cacheEntry{packet: old.packet, stored: now})
			}
			return
		}
	}
	c.lru.Add(key, cacheEntry{packet: p, stored: now})
}

// len returns the number of cached packets.
func (c *packetCache) len() int {
	if c == nil {
		return 0
	}
	return c.lru.Len()
}
