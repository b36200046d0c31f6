package mainline

import (
	"net/netip"
	"testing"

	"github.com/anacrolix/dht/v2/krpc"
)

// ParseNodesSnapshot gives the external tests the routing table snapshot
// parser.
func ParseNodesSnapshot(b []byte) ([]krpc.NodeInfo, error) { return parseNodesSnapshot(b) }

// EncodeNodesSnapshot writes a snapshot of nodes at addrs, node i with the
// ID of twenty bytes i+1.
func EncodeNodesSnapshot(t testing.TB, addrs []netip.AddrPort) []byte {
	t.Helper()
	var nodes []krpc.NodeInfo
	for i, a := range addrs {
		var id krpc.ID
		for j := range id {
			id[j] = byte(i + 1)
		}
		nodes = append(nodes, krpc.NodeInfo{ID: id, Addr: krpc.NodeAddr{IP: a.Addr().AsSlice(), Port: int(a.Port())}})
	}
	return encodeNodesSnapshot(nodes)
}
