package pkarrrelay

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/phrasemeet/discovery/pkarrclient"
)

// DefaultCapacity is the number of packets a store holds when no capacity is
// given: pkarr's relay keeps the same number.
const DefaultCapacity = 1_000_000

// Errors returned by stores. They work with errors.Is.
var (
	// ErrNotFound reports that a store holds no packet for a key. It wraps
	// pkarrclient.ErrNotFound, so code that speaks pkarrclient's errors
	// (such as an upstream pkarrclient.Backend) and code that speaks
	// this package's agree on what "missing" means.
	ErrNotFound = fmt.Errorf("pkarrrelay: %w", pkarrclient.ErrNotFound)
	// ErrClosed reports use of a store after Close.
	ErrClosed = errors.New("pkarrrelay: store closed")
	// ErrCorrupt reports a stored value that does not decode. The packet it
	// belonged to is lost, but the store stays usable: a later Put for the
	// same key replaces the damaged value.
	ErrCorrupt = errors.New("pkarrrelay: corrupt stored value")
)

// PutOutcome says what a Store did with a packet.
type PutOutcome int

// The outcomes of Store.Put.
const (
	// PutStored means the packet is now the one held for its key.
	PutStored PutOutcome = iota + 1
	// PutUnchanged means the store already held exactly these bytes.
	PutUnchanged
	// PutNotMostRecent means the store holds a more recent packet for the
	// key (see pkarrclient.SignedPacket.MoreRecentThan) and kept it.
	PutNotMostRecent
)

// String returns a short lower-case name, used as a metric label.
func (o PutOutcome) String() string {
	switch o {
	case PutStored:
		return "stored"
	case PutUnchanged:
		return "unchanged"
	case PutNotMostRecent:
		return "conflict"
	}
	return fmt.Sprintf("PutOutcome(%d)", int(o))
}

// Store holds at most one signed packet per public key: the most recent one
// it was given. Implementations must be safe for concurrent use.
//
// A Store trusts its callers: it keeps only packets that arrive as verified
// *pkarrclient.SignedPacket values, and for that reason never verifies
// anything again on Get, which is what makes serving a GET cheap.
type Store interface {
	// Put stores p unless the store holds a packet for the same key that is
	// more recent (PutNotMostRecent) or byte-identical (PutUnchanged). The
	// comparison and the write are one atomic step, so concurrent Puts to one
	// key leave the newest packet stored whatever order they run in. When Put
	// returns PutStored or PutUnchanged without error, the packet is as
	// durable as the store promises to be.
	Put(ctx context.Context, p *pkarrclient.SignedPacket) (PutOutcome, error)
	// Get returns the record held for key, or an error matching ErrNotFound.
	Get(ctx context.Context, key pkarrclient.PublicKey) (Record, error)
	// Len returns the number of packets held, cheaply: metrics read it on
	// every scrape.
	Len() int
	// Close releases the store's resources. Calls after the first do nothing
	// and return nil.
	Close() error
}

// Record is a stored packet in the form a GET needs: the bytes to send and
// the values its headers are computed from, so that answering a GET does no
// DNS parsing and no signature check.
type Record struct {
	// Payload is the relay payload (signature, timestamp, DNS message). It
	// may be shared with the store: callers must not modify it.
	Payload []byte
	// Timestamp is the packet's timestamp, copied out of Payload.
	Timestamp pkarrclient.Timestamp
	// TTL is the smallest TTL among the packet's records, not clamped; zero
	// when the packet has no records.
	TTL uint32
	// Stored is when the store last accepted the packet (as new or
	// unchanged).
	Stored time.Time
}

// newRecord extracts what a GET needs from a verified packet.
func newRecord(p *pkarrclient.SignedPacket, stored time.Time) Record {
	return Record{
		Payload:   p.RelayPayload(),
		Timestamp: p.Timestamp(),
		// TTL(0, MaxUint32) is the unclamped minimum; a packet without
		// records reports 0, which every clamp then lifts to its minimum.
		TTL:    p.TTL(0, math.MaxUint32),
		Stored: stored,
	}
}

// compare decides what Put does with a new packet given the held record.
func compare(ts pkarrclient.Timestamp, payload []byte, held *Record) PutOutcome {
	switch {
	case bytes.Equal(payload, held.Payload):
		return PutUnchanged
	// Raw bytes, not packets: rebuilding a SignedPacket from a stored
	// record would mean verifying its signature again.
	case pkarrclient.MoreRecent(ts, payload[pkarrclient.PayloadHeaderSize:],
		held.Timestamp, held.Payload[pkarrclient.PayloadHeaderSize:]):
		return PutStored
	}
	return PutNotMostRecent
}

// checkPayload validates a payload read back from storage, so that damaged
// bytes become an error instead of a slice-bounds panic later.
func checkPayload(payload []byte) (pkarrclient.Timestamp, error) {
	if len(payload) < pkarrclient.PayloadHeaderSize || len(payload) > pkarrclient.MaxPayloadSize {
		return 0, fmt.Errorf("%w: payload of %d bytes", ErrCorrupt, len(payload))
	}
	return pkarrclient.Timestamp(binary.BigEndian.Uint64(payload[pkarrclient.SignatureSize:])), nil
}
