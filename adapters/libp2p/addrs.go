package libp2padapter

import (
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/phrasemeet/discovery"
)

// maxAddrsPerPeer bounds how many addresses of one found record are kept.
// A slot entry cannot hold more than a handful anyway; the bound is for
// mechanisms without a size limit, so one record cannot make every
// FindPeers answer huge.
const maxAddrsPerPeer = 32

// maxAddrLen bounds the length of an address worth parsing, and
// maxAddrsTried how many of a record's addresses are looked at, so a
// hostile record costs little to reject.
const (
	maxAddrLen    = 1024
	maxAddrsTried = 4 * maxAddrsPerPeer
)

// maxIDLen bounds the length of a peer ID worth parsing. A real one is 46
// to about 60 characters (as a CID, about 65): libp2p inlines keys of up
// to 42 bytes and hashes larger ones. Base58 decoding takes time
// quadratic in the length, so a megabyte of digits would stall the
// goroutine that parses it for seconds.
const maxIDLen = 128

// addrFilter decides which of the host's addresses are published.
type addrFilter struct {
	loopback bool
	custom   func(ma.Multiaddr) bool
}

// allow reports whether a is published. An unspecified address (0.0.0.0,
// ::) is never published: it names no host to others. Loopback only
// reaches peers on the same machine, so it is left out unless asked for,
// lest remote peers waste dials on their own loopback.
func (f addrFilter) allow(a ma.Multiaddr) bool {
	if len(a) == 0 || manet.IsIPUnspecified(a) {
		return false
	}
	if !f.loopback && manet.IsIPLoopback(a) {
		return false
	}
	return f.custom == nil || f.custom(a)
}

// publish returns the addresses of addrs the filter allows, as strings, in
// the host's order and without duplicates.
func (f addrFilter) publish(addrs []ma.Multiaddr) []string {
	out := make([]string, 0, len(addrs))
	seen := make(map[string]struct{}, len(addrs))
	for _, a := range addrs {
		if !f.allow(a) {
			continue
		}
		s := a.String()
		if _, dup := seen[s]; dup {
			continue
		}
		seen[s] = struct{}{}
		out = append(out, s)
	}
	return out
}

// addrInfo turns a found record into something libp2p can dial. Records
// come from anyone who holds the passphrase, so nothing in them is
// trusted: the ID must be a valid peer ID, addresses that do not parse are
// dropped, an address naming another peer (a trailing /p2p/ component) is
// dropped, and a record left with no address is refused. A false record
// can only cost failed dials: libp2p's handshake proves the peer ID.
func addrInfo(rec discovery.Record) (peer.AddrInfo, bool) {
	id, ok := decodeID(rec.ID)
	if !ok {
		return peer.AddrInfo{}, false
	}
	info := peer.AddrInfo{ID: id}
	seen := make(map[string]struct{})
	for i, s := range rec.Addrs {
		if len(info.Addrs) == maxAddrsPerPeer || i == maxAddrsTried {
			break
		}
		if len(s) > maxAddrLen {
			continue
		}
		m, err := ma.NewMultiaddr(s)
		if err != nil {
			continue
		}
		transport, pid := peer.SplitAddr(m)
		if len(transport) == 0 || (pid != "" && pid != id) {
			continue
		}
		key := transport.String()
		if _, dup := seen[key]; dup {
			continue
		}
		seen[key] = struct{}{}
		info.Addrs = append(info.Addrs, transport)
	}
	if len(info.Addrs) == 0 {
		return peer.AddrInfo{}, false
	}
	return info, true
}

// decodeID parses a record's ID as a peer ID in its canonical (base58)
// text only. peer.Decode also takes the CID forms, in several bases, so
// without this one peer could hold any number of records, each cached and
// dialed as the same peer, and the Lost of one would drop the others.
func decodeID(s string) (peer.ID, bool) {
	if len(s) > maxIDLen {
		return "", false
	}
	id, err := peer.Decode(s)
	if err != nil || id == "" || id.String() != s {
		return "", false
	}
	return id, true
}
