package libp2padapter

import (
	"cmp"
	"slices"

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

// loopbackOnly reports whether addrs has a loopback address, nothing
// else that names a host (unspecified addresses name none), and the
// filter leaves loopback out: a host that publishes nothing only because
// WithLoopback is missing.
func (f addrFilter) loopbackOnly(addrs []ma.Multiaddr) bool {
	if f.loopback {
		return false
	}
	found := false
	for _, a := range addrs {
		switch {
		case len(a) == 0 || manet.IsIPUnspecified(a):
		case manet.IsIPLoopback(a):
			found = true
		default:
			return false
		}
	}
	return found
}

// publish returns the addresses of addrs the filter allows, as strings,
// without duplicates, ranked by kind (see rankAddr): the adapter trims a
// record that does not fit from the end, so the least useful addresses go
// first, and a relay circuit never pushes out a direct address.
func (f addrFilter) publish(addrs []ma.Multiaddr) []string {
	type ranked struct {
		s    string
		rank addrRank
	}
	out := make([]ranked, 0, len(addrs))
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
		out = append(out, ranked{s: s, rank: rankAddr(a)})
	}
	// The text breaks ties, so the order depends on the addresses alone,
	// not on the order the host lists them in: a record changes only when
	// the addresses do.
	slices.SortFunc(out, func(x, y ranked) int {
		if c := x.rank.compare(y.rank); c != 0 {
			return c
		}
		return cmp.Compare(x.s, y.s)
	})
	strs := make([]string, len(out))
	for i, r := range out {
		strs[i] = r.s
	}
	return strs
}

// addrRank orders published addresses, lowest first.
type addrRank struct {
	// class: 0 a direct QUIC or TCP address, 1 another direct transport
	// (WebTransport, WebSocket, WebRTC...), which fewer peers speak, 2 a
	// relay circuit, which costs a relay's bandwidth and a hop and is
	// only worth it when nothing direct works.
	class int
	// scope: 0 public, 1 private (reaches the same network only), 2
	// loopback (the same machine only). Public is as go-multiaddr judges
	// it, so connectivity.TreatAsPublic applies.
	scope int
	// transport: 0 QUIC, which connects in one round trip and is the one
	// that hole punching uses when both are there, 1 TCP, 2 other.
	transport int
	// family: 0 IPv4, 1 IPv6, 2 other (DNS...). More peers can reach
	// IPv4.
	family int
}

func (r addrRank) compare(o addrRank) int {
	return cmp.Or(cmp.Compare(r.class, o.class), cmp.Compare(r.scope, o.scope),
		cmp.Compare(r.transport, o.transport), cmp.Compare(r.family, o.family))
}

// rankAddr returns a's rank. A circuit address
// (<relay>/p2p/<relay ID>/p2p-circuit) is ranked by its relay's address
// within the circuit class.
func rankAddr(a ma.Multiaddr) addrRank {
	var r addrRank
	last := a[len(a)-1].Code()
	switch {
	case isCircuit(a):
		r.class = 2
		// The transport to the relay is the component before its /p2p.
		if rel, _ := ma.SplitFunc(a, func(c ma.Component) bool { return c.Code() == ma.P_P2P }); len(rel) > 0 {
			last = rel[len(rel)-1].Code()
		}
	case last != ma.P_QUIC_V1 && last != ma.P_TCP:
		r.class = 1
	}
	switch last {
	case ma.P_QUIC_V1:
		r.transport = 0
	case ma.P_TCP:
		r.transport = 1
	default:
		r.transport = 2
	}
	switch {
	case manet.IsIPLoopback(a):
		r.scope = 2
	case manet.IsPublicAddr(a):
		r.scope = 0
	default:
		r.scope = 1
	}
	switch a[0].Code() {
	case ma.P_IP4:
		r.family = 0
	case ma.P_IP6:
		r.family = 1
	default:
		r.family = 2
	}
	return r
}

// isCircuit reports whether a goes through a relay (has /p2p-circuit).
func isCircuit(a ma.Multiaddr) bool {
	for _, c := range a {
		if c.Code() == ma.P_CIRCUIT {
			return true
		}
	}
	return false
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
