package mainline

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/anacrolix/dht/v2"

	"github.com/phrasemeet/discovery/pkarrclient"
)

// BackendName is the name a [DHT] backend reports in outcomes and errors.
const BackendName = "mainline-dht"

// DHT is a [pkarrclient.Backend] on the BitTorrent Mainline DHT: a signed
// packet is a BEP44 mutable item with k = the public key, seq = the
// packet's timestamp, v = its raw DNS message, no salt and no cas, stored
// at target SHA-1(k). That is exactly the buffer pkarr signs, so packets
// travel unchanged between relays, this backend and pkarr's own clients.
//
// Publish and Resolve run their own lookups on the library's traversal
// and single-query calls rather than anacrolix's exts/getput, which waits
// for a whole traversal before answering, reports no acknowledgements and
// dereferences a missing seq (see the package notes). Every answer is
// verified here: its key, its seq and its Ed25519 signature.
//
// A DHT is passive by default: it asks, it never answers, which is what a
// client behind NAT should be. [WithServing] makes it a full node that
// answers queries and stores items for others (the dht-node command).
type DHT struct {
	srv    *dht.Server
	conn   net.PacketConn
	cfg    dhtConfig
	logger *slog.Logger

	ctx    context.Context // cancelled by Close; bounds background work
	cancel context.CancelFunc
	wg     sync.WaitGroup // background goroutines and finishing traversals

	// mu guards closed; wg.Add happens only under mu while !closed, so
	// Close's Wait never races a new registration.
	mu     sync.Mutex
	closed bool

	closeOnce sync.Once
	closeErr  error
}

var _ pkarrclient.Backend = (*DHT)(nil)

// Name returns [BackendName].
func (d *DHT) Name() string { return BackendName }

// Addr is the node's UDP address.
func (d *DHT) Addr() net.Addr { return d.conn.LocalAddr() }

// AddrPort is the node's UDP address as a netip.AddrPort.
func (d *DHT) AddrPort() netip.AddrPort {
	if ua, ok := d.conn.LocalAddr().(*net.UDPAddr); ok {
		return ua.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(d.conn.LocalAddr().String())
	return ap
}

// ID is the node's 20-byte DHT node ID.
func (d *DHT) ID() [20]byte { return d.srv.ID() }

// RoutingTableSize is the number of nodes in the routing table.
func (d *DHT) RoutingTableSize() int { return d.srv.NumNodes() }

// Serving reports whether the node answers queries ([WithServing]).
func (d *DHT) Serving() bool { return d.cfg.serve }

// opContext bounds one publish or resolve by the DHT's timeout and ends it
// when the DHT is closed.
func (d *DHT) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.timeout)
	stop := context.AfterFunc(d.ctx, cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}

// remaining is the time left before ctx's deadline.
func remaining(ctx context.Context) time.Duration {
	dl, ok := ctx.Deadline()
	if !ok {
		return defaultDHTTimeout
	}
	return max(time.Until(dl), 0)
}

func (d *DHT) fail(op string, err error) error {
	return &pkarrclient.BackendError{Backend: BackendName, Op: op, Err: err}
}
