package slotdiscovery

import (
	"cmp"
	"slices"

	"github.com/phrasemeet/discovery/pkarrclient"
)

const (
	// typicalEntry is the wire size assumed for a stranger's entry when
	// judging whether a slot has room for one more: a key ID with its
	// 65-byte proof and two addresses.
	typicalEntry = 213
)

// room holds the rules of what a slot's packet keeps and whether it has
// room for one more: the merge order a full slot keeps, and the checks a
// claim, a write and a scan make. Its one piece of state is the largest
// entry seen in the group. It is plain data: the Discoverer's lock
// guards it, and the slot views it judges are passed in.
type room struct {
	largest int // the largest entry seen, in wire bytes: what a claimer may need
}

// see notes an entry of size wire bytes seen in the group.
func (r *room) see(size int) { r.largest = max(r.largest, size) }

// need is the entry size a slot must still have room for to take any
// member of the group: the largest seen, or a typical one before any.
func (r *room) need() int { return max(typicalEntry, r.largest) }

// merge returns what a write of self into sv should hold: every fresh
// live entry and tombstone we know there, ours replacing any older
// version of our own, oldest claim first, cut where the packet is full.
// It reports whether ours made the cut. Every peer orders the same way,
// so all writers agree on who a full slot keeps; the newest claimant is
// the one that moves on.
func (r *room) merge(sv *slotView, self sealedEntry) ([]sealedEntry, bool) {
	all := make([]sealedEntry, 0, len(sv.entries)+1)
	for id, e := range sv.entries {
		if id != self.rec.ID {
			all = append(all, e)
		}
	}
	all = append(all, self)
	slices.SortFunc(all, func(a, b sealedEntry) int {
		// Tombstones go last: they only matter until the leaver's peers
		// have seen them, and must never displace a live peer.
		if a.kind != b.kind {
			return cmp.Compare(a.kind, b.kind)
		}
		return cmp.Or(a.since.Compare(b.since), cmp.Compare(a.rec.ID, b.rec.ID))
	})
	size := packetOverhead
	kept := all[:0]
	in := false
	for _, e := range all {
		if size+e.wireSize() > pkarrclient.MaxDNSSize {
			continue
		}
		size += e.wireSize()
		kept = append(kept, e)
		in = in || e.rec.ID == self.rec.ID
	}
	return kept, in
}

// free reports whether sv has room for self and extra bytes more beside
// every fresh entry we know there. A claim asks for free room, never for
// the place of a younger entry: the oldest-first order of merge only
// settles races, it is not a licence to push a live peer out.
func (r *room) free(sv *slotView, self sealedEntry, extra int) bool {
	size := packetOverhead + self.wireSize() + extra
	for id, e := range sv.entries {
		if id != self.rec.ID {
			size += e.wireSize()
		}
	}
	return size <= pkarrclient.MaxDNSSize
}

// cutsLive reports whether a write of kept would leave out a live entry
// of another peer than self that sv holds. A writer never pushes out a
// live entry it just read.
func (r *room) cutsLive(sv *slotView, kept []sealedEntry, self string) bool {
	in := make(map[string]bool, len(kept))
	for _, e := range kept {
		in[e.rec.ID] = true
	}
	for id, e := range sv.entries {
		if id != self && e.kind == kindLive && !in[id] {
			return true
		}
	}
	return false
}

// full reports whether sv may have turned a claimer away: it has no room
// for an entry as large as the largest we have seen in the group, or is
// locked. Judging by the largest size allowed instead would send every
// scan a level deeper than the group reaches, at a steady cost in GETs; a
// newcomer whose entry is larger than any before it is found by the probe
// one level further (see scan) instead.
func (r *room) full(sv *slotView) bool {
	if sv.locked {
		return true
	}
	size := packetOverhead + r.need()
	for _, e := range sv.entries {
		size += e.wireSize()
	}
	return size > pkarrclient.MaxDNSSize
}
