package libp2padapter

import (
	"errors"
	"fmt"

	"github.com/phrasemeet/discovery"
)

// Errors returned by this package, for errors.Is. Errors from the
// discoverers underneath pass through wrapped, so errors.Is also matches
// the discovery package's sentinels (discovery.ErrClosed and the rest).
var (
	// ErrClosed: the Adapter or Connector has been closed. It matches
	// discovery.ErrClosed as well.
	ErrClosed = fmt.Errorf("libp2padapter: %w", discovery.ErrClosed)
	// ErrInvalidOption: an option or a Config field has a value the
	// constructor refuses rather than silently replacing with a default.
	ErrInvalidOption = errors.New("libp2padapter: invalid option")
	// ErrNoAddrs: the host has no address to publish once the address
	// filter has run. Advertise returns it (wrapped, naming the
	// namespace) when the host listens on loopback only and WithLoopback
	// is not set: such a record reaches nobody, and two such hosts would
	// silently never meet. A host with no address yet (a private host
	// waiting for its relay reservation, listeners not up), or whose
	// every address a WithAddrFilter refuses, is still advertised, since
	// its addresses may appear later and the record follows them; the
	// adapter then logs this error once as a warning instead.
	ErrNoAddrs = errors.New("libp2padapter: no address to publish")
	// ErrStarted: Connector.Start was called a second time.
	ErrStarted = errors.New("libp2padapter: already started")
)

// OpenError reports that an Opener failed to open a namespace's
// discoverer, or that the discoverer refused a subscription.
type OpenError struct {
	// Namespace is the libp2p namespace being opened.
	Namespace string
	// Err is what went wrong.
	Err error
}

// Error implements error.
func (e *OpenError) Error() string {
	return fmt.Sprintf("libp2padapter: opening namespace %q: %v", e.Namespace, e.Err)
}

// Unwrap returns the underlying error.
func (e *OpenError) Unwrap() error { return e.Err }
