// Package discovery defines what every phrasemeet discovery mechanism is:
// a [Discoverer], which announces this peer and reports the peers it finds
// as a stream of [Event]s. The passphrase slot rendezvous, mDNS and the
// in-memory [Memory] all implement it, [Combine] runs several as one, and
// the adapters (go-libp2p's core/discovery, the chat) consume it.
//
// The interface departs from go-libp2p's in two ways, both on purpose. An
// announcement keeps itself alive until its context ends or the peer
// leaves, so no caller can forget to repeat it and silently vanish. And
// results are a stream of Found, Updated and Lost events for every
// subscriber, a late subscriber first receiving the peers already known,
// so departures and address changes are news rather than something each
// caller must infer by polling.
//
// Every implementation proves itself with one call to the conformance
// suite in package discoverytest.
package discovery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Record is what a peer announces about itself.
type Record struct {
	// ID identifies the peer, stable for its lifetime and unique in the
	// group: an endpoint's public key in hex, a libp2p peer ID's string.
	// It must not be empty.
	ID string
	// Addrs are how to reach the peer (multiaddrs, host:port pairs, URLs),
	// in order of preference.
	Addrs []string
	// Meta is small opaque application data. Mechanisms bound its size
	// (the slot rendezvous fits a record into a pkarr packet).
	Meta []byte
}

// Validate reports whether r can be announced: an ID is required.
func (r Record) Validate() error {
	if r.ID == "" {
		return fmt.Errorf("%w: empty ID", ErrInvalidRecord)
	}
	return nil
}

// Clone returns a deep copy, so a receiver can keep a record its sender
// goes on modifying.
func (r Record) Clone() Record {
	return Record{ID: r.ID, Addrs: slices.Clone(r.Addrs), Meta: slices.Clone(r.Meta)}
}

// Equal reports whether two records announce the same thing.
func (r Record) Equal(o Record) bool {
	return r.ID == o.ID && slices.Equal(r.Addrs, o.Addrs) && string(r.Meta) == string(o.Meta)
}

// Peer is a record as a discoverer found it.
type Peer struct {
	Record
	// Sources names the discoverers that currently know the peer, by
	// [Discoverer.Name]: one for a single mechanism, possibly several
	// under [Combine].
	Sources []string
	// Seen is when the peer was last known to be alive: the signed time
	// of its newest record, for mechanisms that have one.
	Seen time.Time
}

// Clone returns a deep copy of p.
func (p Peer) Clone() Peer {
	return Peer{Record: p.Record.Clone(), Sources: slices.Clone(p.Sources), Seen: p.Seen}
}

// EventType says what happened to a peer.
type EventType uint8

// The event types.
const (
	// Found: a peer not known before (or lost since) is known now.
	Found EventType = iota + 1
	// Updated: a known peer announced a different record (addresses or
	// metadata), or, under Combine, another member found it too.
	Updated
	// Lost: the peer left, or its announcement aged out.
	Lost
)

// String is the event's name as logs and the command line print it
// ("found", "updated", "lost").
func (t EventType) String() string {
	switch t {
	case Found:
		return "found"
	case Updated:
		return "updated"
	case Lost:
		return "lost"
	}
	return fmt.Sprintf("EventType(%d)", uint8(t))
}

// Event is one change in what a discoverer knows.
type Event struct {
	// Type says what changed: Found, Updated or Lost.
	Type EventType
	// Peer is the peer as known after the change; for Lost, as it was
	// last known.
	Peer Peer
	// Time is when the discoverer noticed the change.
	Time time.Time
}

// Discoverer announces this peer to a group and reports the group's other
// members. Implementations are safe for concurrent use.
//
// A Discoverer never reports a record it announces itself.
type Discoverer interface {
	// Name identifies the mechanism in [Peer.Sources] and in logs.
	Name() string

	// Announce starts announcing rec and keeps the announcement alive by
	// itself (republishing as its mechanism needs) until ctx ends, the
	// returned Announcement's Leave is called, or the Discoverer is
	// closed. When ctx ends the peer stops announcing; depending on the
	// mechanism others see it Lost at once or once its record ages out.
	// Leave is the graceful exit: others see Lost as soon as the
	// mechanism can tell them.
	//
	// Announce returns once the announcement has started, not when others
	// have seen it. A second Announce with the same ID is refused with
	// ErrAlreadyAnnounced; use Announcement.Update to change a record.
	Announce(ctx context.Context, rec Record) (Announcement, error)

	// Subscribe returns a stream of events. A new subscriber first
	// receives a Found for every peer already known. The channel is
	// closed when ctx ends or the Discoverer is closed.
	//
	// A slow subscriber delays no one, and costs memory bounded by the
	// number of peers, not of events: what it has not read yet is kept
	// as at most one pending change per peer. Reading late, it may miss
	// intermediate records (Found then Updated arrives as Found with the
	// newest record, several Updated as the newest) and peers that came
	// and went meanwhile (it sees neither their Found nor their Lost); a
	// peer it knew that left and came back arrives as Lost then Found.
	// Whatever it reads is consistent: never Updated or Lost for a peer
	// it was not told was Found, never Found for one it knows, never an
	// Updated that changes nothing it was told; each peer's events come
	// in order, and once it has read everything its view is the
	// Discoverer's. Peers come in the order their pending change began.
	Subscribe(ctx context.Context) (<-chan Event, error)

	// Close ends every announcement as Leave would, stops the mechanism
	// and closes every subscription. It returns when all of that is done,
	// or soon after ctx ends, with an error wrapping ctx's. Either way,
	// when it returns every subscription is closed and Announce and
	// Subscribe fail with ErrClosed; only the telling of the others that
	// was still under way goes on in the background, within the
	// mechanism's own leave bound (as after a Leave cut short), because a
	// short ctx means "do not wait", not "do not tell the others".
	//
	// Close is idempotent: a later call waits for the same work, bounded
	// by its own ctx.
	Close(ctx context.Context) error
}

// Announcement is a running announcement.
type Announcement interface {
	// Record returns the record being announced.
	Record() Record
	// Update replaces the announced record, for instance when the peer's
	// addresses change; others see Updated. The ID cannot change.
	Update(ctx context.Context, rec Record) error
	// Leave stops announcing and tells others the peer is gone. It
	// returns once they have been told as far as the mechanism can, or
	// soon after ctx ends, then with nil or an error wrapping ctx's; the
	// telling goes on in the background within the mechanism's leave
	// bound, as for Close. It is idempotent.
	Leave(ctx context.Context) error
}

// Errors shared by every implementation, for errors.Is.
var (
	// ErrInvalidRecord: the record cannot be announced (empty ID, too
	// large for the mechanism).
	ErrInvalidRecord = errors.New("discovery: invalid record")
	// ErrAlreadyAnnounced: this Discoverer already announces that ID.
	ErrAlreadyAnnounced = errors.New("discovery: ID already announced")
	// ErrLeft: the announcement has ended (Leave, its context, Close).
	ErrLeft = errors.New("discovery: announcement ended")
	// ErrClosed: the Discoverer is closed.
	ErrClosed = errors.New("discovery: closed")
)
