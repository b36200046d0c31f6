package pkarrclient

import "context"

// Backend is one place signed packets live: an HTTP relay ([Relay]), or
// the Mainline DHT (subpackage mainline). A [Client] fans every publish
// and resolve out to all of its backends, so a backend only has to speak
// for itself: it never caches across calls, never compares its answer with
// other backends', and never retries forever.
//
// Implementations must be safe for concurrent use and must return promptly
// once ctx is done: the Client cancels the backends it no longer needs (a
// first valid answer arrived elsewhere) and waits for them to return.
//
// Errors should wrap one of the package's sentinels (ErrNotFound,
// ErrNotMostRecent, ErrRateLimited, ErrBadRequest, ErrUnavailable,
// ErrInvalidResponse), preferably inside a *[BackendError] whose Op is
// [OpPublish] or [OpResolve], so callers can tell a missing record from a
// broken relay with errors.Is.
type Backend interface {
	// Name identifies the backend in outcomes, errors and logs. A relay's
	// name is its base URL.
	Name() string
	// Publish stores p. A nil error means the backend accepted the packet,
	// which for some deployed relays does not prove it was kept: a relay
	// may silently drop a packet older than the one it holds.
	Publish(ctx context.Context, p *SignedPacket) (PublishReceipt, error)
	// Resolve returns a verified packet signed by q.Key, or an error
	// wrapping ErrNotFound when the backend has none (or, if it honours
	// q.NewerThan, none newer than that). A backend must never return a
	// packet for another key; the Client checks anyway.
	Resolve(ctx context.Context, q Query) (*SignedPacket, error)
}

// PublishReceipt is what a backend tells about a successful publish beyond
// "accepted". It is a struct so later backends can report more without
// changing the interface.
type PublishReceipt struct {
	// DHTNodes is the number of DHT nodes that stored the packet, when the
	// backend reports it (a v7 relay's Pkarr-Dht-Stored-Nodes header, or
	// the DHT backend's own count); 0 when unknown.
	DHTNodes int
}

// Query is one resolve request. It is a struct rather than a bare key so
// that hints can be added without changing the Backend interface.
type Query struct {
	// Key is the public key whose packet is wanted.
	Key PublicKey
	// NewerThan is a hint: the caller already holds a packet with this
	// timestamp, so a backend may skip (and report as not found) packets
	// that are not newer, as the DHT does with BEP44's seq. Zero means no
	// hint. Relays ignore it: they are never sent If-Modified-Since,
	// because deployed relays up to version 6 answer that header with an
	// empty 200.
	NewerThan Timestamp
	// Fresh asks the backend to bypass intermediate caches (a relay sends
	// "Cache-Control: no-cache"), for callers who suspect a stale answer.
	Fresh bool
	// MostRecent asks a backend that gathers answers from many sources
	// (the DHT) to wait for all of them, within its time bound, and return
	// the newest, instead of the first valid one. A relay gives one answer
	// either way.
	MostRecent bool
}

// MayServeOlder is implemented by a Backend that can honestly serve a
// packet older than one it accepted, and says so by returning true: the
// Mainline DHT (subpackage mainline), where every node keeps its own copy
// and a lookup may reach nodes a publish did not. The Client never distrusts such a
// backend for going back (see WithDistrustTTL). A relay keeps the newest
// packet per key, so relays do not implement it.
type MayServeOlder interface {
	// MayServeOlder reports whether the backend may serve a packet
	// older than one it accepted without being at fault.
	MayServeOlder() bool
}
