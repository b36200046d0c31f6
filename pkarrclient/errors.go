package pkarrclient

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Errors about keys and encodings.
var (
	// ErrInvalidZBase32 reports text that is not canonical z-base-32.
	ErrInvalidZBase32 = errors.New("pkarr: invalid z-base-32")
	// ErrInvalidKey reports a public key that is malformed or not a valid
	// Ed25519 curve point.
	ErrInvalidKey = errors.New("pkarr: invalid public key")
	// ErrInvalidSecretKey reports a secret key (seed) that cannot be used.
	ErrInvalidSecretKey = errors.New("pkarr: invalid secret key")
)

// Errors about signed packets. Every specific packet error matches
// ErrInvalidPacket with errors.Is, so callers that only care whether bytes
// were acceptable test for that one.
var (
	// ErrInvalidPacket is the parent of every reason a signed packet or relay
	// payload is rejected.
	ErrInvalidPacket = errors.New("pkarr: invalid signed packet")
	// ErrPacketTooShort reports input shorter than the fixed header.
	ErrPacketTooShort = fmt.Errorf("%w: too short", ErrInvalidPacket)
	// ErrPacketTooLarge reports a packet, payload or DNS message over the
	// pkarr size limits (1104, 1072 and 1000 bytes).
	ErrPacketTooLarge = fmt.Errorf("%w: too large", ErrInvalidPacket)
	// ErrBadSignature reports a signature that does not verify under the
	// packet's key.
	ErrBadSignature = fmt.Errorf("%w: bad signature", ErrInvalidPacket)
	// ErrInvalidDNS reports a DNS message that cannot be encoded or decoded.
	ErrInvalidDNS = fmt.Errorf("%w: invalid DNS message", ErrInvalidPacket)
	// ErrKeyMismatch reports a packet signed by a key other than the one
	// that was asked for.
	ErrKeyMismatch = fmt.Errorf("%w: signed by a different key", ErrInvalidPacket)
)

// Errors from backends (relays, the DHT) and from the Client. A
// *BackendError wraps one of these, so errors.Is works on anything a Client
// returns.
var (
	// ErrNotFound reports that no backend holds a packet for the key.
	ErrNotFound = errors.New("pkarr: not found")
	// ErrNotMostRecent reports that a backend already holds a newer packet
	// for the key (HTTP 409, BEP44 error 302).
	ErrNotMostRecent = errors.New("pkarr: a more recent packet exists")
	// ErrRateLimited reports that a backend refused the request for rate
	// limiting (HTTP 429). The error is a *RateLimitError carrying the
	// backend's Retry-After.
	ErrRateLimited = errors.New("pkarr: rate limited")
	// ErrBadRequest reports that a backend rejected the request as malformed
	// (HTTP 400, 413, or another 4xx that retrying cannot fix).
	ErrBadRequest = errors.New("pkarr: rejected as bad request")
	// ErrUnavailable reports a backend that could not be reached or failed
	// (network errors, timeouts, 5xx) after the allowed retries.
	ErrUnavailable = errors.New("pkarr: backend unavailable")
	// ErrInvalidResponse reports a backend answer that failed verification:
	// a bad signature, the wrong key, an oversized or malformed body. Such an
	// answer is discarded, never used.
	ErrInvalidResponse = errors.New("pkarr: invalid response from backend")
	// ErrNoBackends reports a Client configured without any backend.
	ErrNoBackends = errors.New("pkarr: no backends configured")
)

// RateLimitError is returned when a backend answered 429 Too Many Requests,
// or when an earlier 429 from it has not expired yet.
type RateLimitError struct {
	// RetryAfter is how long until the backend will be asked again: its
	// Retry-After, or the client's own backoff when it gave none.
	RetryAfter time.Duration
}

// Error implements error.
func (e *RateLimitError) Error() string {
	if e.RetryAfter <= 0 {
		return ErrRateLimited.Error()
	}
	return ErrRateLimited.Error() + ", retry after " + e.RetryAfter.Round(time.Millisecond).String()
}

// Unwrap makes errors.Is(err, ErrRateLimited) hold.
func (e *RateLimitError) Unwrap() error { return ErrRateLimited }

// The operations a BackendError names in Op. They are exported so that a
// backend in another package (the Mainline DHT's, or a user's) reports its
// failures in the same words as the relays.
const (
	OpPublish = "publish"
	OpResolve = "resolve"
)

// BackendError is the outcome of one failed request to one backend: which
// backend, the HTTP status when there was one, and the cause, which wraps one
// of the sentinel errors above.
type BackendError struct {
	// Backend is the backend's name (for a relay, its base URL).
	Backend string
	// Op is OpPublish or OpResolve.
	Op string
	// Status is the HTTP status code, or 0 when none was received.
	Status int
	// Err is the cause.
	Err error
}

// Error implements error.
func (e *BackendError) Error() string {
	s := e.Op + " " + e.Backend
	if e.Status != 0 {
		s += " (HTTP " + strconv.Itoa(e.Status) + ")"
	}
	return s + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *BackendError) Unwrap() error { return e.Err }

// PublishError is returned by Client.Publish when too few backends accepted
// the packet for the success policy. It carries every backend's outcome and
// matches each backend's error with errors.Is and errors.As, so
// errors.Is(err, ErrNotMostRecent) tells that some backend holds a newer
// packet and errors.As(err, &rateLimitErr) finds a rate limit.
type PublishError struct {
	// Outcomes has one entry per backend, in the Client's backend order.
	Outcomes []Outcome
	// Accepted is the number of backends that accepted the packet.
	Accepted int
}

// Error implements error.
func (e *PublishError) Error() string {
	return fmt.Sprintf("pkarr: publish accepted by %d of %d backends", e.Accepted, len(e.Outcomes)) +
		outcomeErrors(e.Outcomes)
}

// Unwrap returns the backends' errors.
func (e *PublishError) Unwrap() []error { return outcomeErrorList(e.Outcomes) }

// ResolveError is returned by Client.Resolve and ResolveMostRecent when no
// backend returned a valid packet and nothing usable was cached. It carries
// every backend's outcome and matches each backend's error with errors.Is:
// errors.Is(err, ErrNotFound) holds when at least one backend said it has no
// packet for the key.
type ResolveError struct {
	// Key is the key that was resolved.
	Key PublicKey
	// Outcomes has one entry per backend, in the Client's backend order.
	Outcomes []Outcome
}

// Error implements error.
func (e *ResolveError) Error() string {
	return fmt.Sprintf("pkarr: resolve %s: no valid answer from %d backends", e.Key, len(e.Outcomes)) +
		outcomeErrors(e.Outcomes)
}

// Unwrap returns the backends' errors.
func (e *ResolveError) Unwrap() []error { return outcomeErrorList(e.Outcomes) }

func outcomeErrorList(outcomes []Outcome) []error {
	var errs []error
	for _, o := range outcomes {
		if o.Err != nil {
			errs = append(errs, o.Err)
		}
	}
	return errs
}

// outcomeErrors formats the failed outcomes as "; <backend>: <error>",
// without repeating the backend name a *BackendError already carries.
func outcomeErrors(outcomes []Outcome) string {
	var s string
	for _, o := range outcomes {
		if o.Err == nil {
			continue
		}
		var be *BackendError
		if errors.As(o.Err, &be) {
			s += "; " + o.Err.Error()
		} else {
			s += "; " + o.Backend + ": " + o.Err.Error()
		}
	}
	return s
}
