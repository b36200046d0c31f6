//go:build !unix

package regularfile

// openFlags: nothing extra where there are no FIFOs to block on.
const openFlags = 0
