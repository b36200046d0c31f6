package meshbench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

// newHost is a libp2p host as every system of the benchmark gets it: an
// Ed25519 identity (can-sync IDs are Ed25519 keys), TCP on 127.0.0.1 only,
// dialing through slowDialer (the injected rtt, loopback only), no circuit
// relay. Everything else is go-libp2p's default.
func newHost(rtt time.Duration) (host.Host, error) {
	priv, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, err
	}
	quietKeepAlive()
	sd := slowDialer{rtt: rtt}
	return libp2p.New(
		libp2p.Identity(priv),
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.Transport(tcp.NewTCPTransport, tcp.WithDialerForAddr(sd.forAddr)),
		libp2p.DisableRelay(),
	)
}

// tracker times one run: when every host's discovery had reported every
// other host ("found"), and when every pair of hosts was connected
// ("mesh"), counted from start.
type tracker struct {
	hosts []host.Host
	index map[peer.ID]int
	start time.Time

	mu       sync.Mutex
	found    []map[int]bool // found[i] holds the hosts i's discovery reported
	nFound   int
	foundAt  time.Duration // 0 until everyone found everyone
	meshAt   time.Duration // 0 until the full mesh
	finished chan struct{}
	once     sync.Once
}

func newTracker(hosts []host.Host) *tracker {
	t := &tracker{hosts: hosts, index: map[peer.ID]int{}, finished: make(chan struct{})}
	for i, h := range hosts {
		t.index[h.ID()] = i
		t.found = append(t.found, map[int]bool{})
	}
	return t
}

// begin starts the clock.
func (t *tracker) begin() {
	t.mu.Lock()
	t.start = time.Now()
	t.mu.Unlock()
}

// sawPeer records that host i's discovery reported id.
func (t *tracker) sawPeer(i int, id peer.ID) {
	j, ok := t.index[id]
	if !ok || j == i {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.start.IsZero() || t.found[i][j] {
		return
	}
	t.found[i][j] = true
	t.nFound++
	n := len(t.hosts)
	if t.nFound == n*(n-1) {
		t.foundAt = max(time.Since(t.start), time.Nanosecond)
		t.checkDone()
	}
}

func (t *tracker) checkDone() {
	if t.foundAt > 0 && t.meshAt > 0 {
		t.once.Do(func() { close(t.finished) })
	}
}

// watchMesh polls the hosts' connections until the full mesh or ctx ends.
// Polling (every 10 ms) rather than notifications: a connection reported
// may have closed since (one of two made at once), and the mesh counts
// only pairs connected at the same moment.
func (t *tracker) watchMesh(ctx context.Context) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if t.fullMesh() {
			t.mu.Lock()
			t.meshAt = max(time.Since(t.start), time.Nanosecond)
			t.checkDone()
			t.mu.Unlock()
			return
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

func (t *tracker) fullMesh() bool {
	for i, h := range t.hosts {
		for _, o := range t.hosts[i+1:] {
			if h.Network().Connectedness(o.ID()) != network.Connected {
				return false
			}
		}
	}
	return true
}

// wait returns when both times are known or ctx ends, with the times (0
// for one not reached).
func (t *tracker) wait(ctx context.Context) (found, mesh time.Duration) {
	select {
	case <-t.finished:
	case <-ctx.Done():
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.foundAt, t.meshAt
}

// closeAll runs each function in parallel and waits for all.
func closeAll(fs []func()) {
	var wg sync.WaitGroup
	for _, f := range fs {
		wg.Go(f)
	}
	wg.Wait()
}

func hostErr(i int, err error) error { return fmt.Errorf("host %d: %w", i, err) }
