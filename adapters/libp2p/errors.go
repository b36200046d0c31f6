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
