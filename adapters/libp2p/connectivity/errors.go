package connectivity

import "errors"

// Errors returned by this package, for errors.Is.
var (
	// ErrInvalidOption: an option, or a string parsed for one, has a
	// value New refuses rather than silently replacing with a default.
	ErrInvalidOption = errors.New("connectivity: invalid option")
	// ErrInUse is returned (by libp2p.New) when the options of a Manager
	// that already serves a host are used for another.
	ErrInUse = errors.New("connectivity: this Manager already serves a host")
)
