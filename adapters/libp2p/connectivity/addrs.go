package connectivity

import ma "github.com/multiformats/go-multiaddr"

// maxAddrLen bounds the length of an address worth parsing, so a hostile
// or mistyped relay address costs little to reject.
const maxAddrLen = 1024

// isCircuit reports whether a goes through a relay (has /p2p-circuit).
func isCircuit(a ma.Multiaddr) bool {
	for _, c := range a {
		if c.Code() == ma.P_CIRCUIT {
			return true
		}
	}
	return false
}
