package mainline

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anacrolix/dht/v2/krpc"
	alog "github.com/anacrolix/log"
	"github.com/anacrolix/torrent/bencode"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/jonboulle/clockwork"
	"golang.org/x/time/rate"
)

// bridgeLogger forwards the library's warnings and errors to slog. Its
// debug output (a line per datagram) is dropped before formatting.
func bridgeLogger(l *slog.Logger) alog.Logger {
	al := alog.NewLogger("dht")
	al.SetHandlers(slogHandler{l})
	return al.WithFilterLevel(alog.Warning)
}

type slogHandler struct{ l *slog.Logger }

func (h slogHandler) Handle(r alog.Record) {
	level := slog.LevelWarn
	if !r.Level.LessThan(alog.Error) {
		level = slog.LevelError
	}
	h.l.Log(context.Background(), level, "anacrolix dht: "+r.Msg.String())
}

// writeFileAtomic writes b to path through a temporary file in the same
// directory and a rename, so readers see the old file or the new one.
func writeFileAtomic(path string, b []byte, perm os.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err = f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err = f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// filterConn drops datagrams before the library sees them when they are
// not a KRPC dictionary or carry a query name BEP5 and BEP44 do not define.
// The library logs every undecodable datagram through its process-wide
// logger and keeps a counter per query name it receives, forever, so
// strangers could otherwise fill the log and the memory of a process.
//
// On a serving node it also drops queries from a source that has spent
// its answer budget (limits; nil on a passive node, which answers
// nothing). The library has one send budget for the whole node, which
// whoever asks most used to take: one source pinging at 1000/s left
// another source answered for about 60% of its pings.
type filterConn struct {
	net.PacketConn
	limits *sourceLimits
}

func (c *filterConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(b)
		if err != nil {
			return n, addr, err
		}
		ok, query := classifyDatagram(b[:n])
		if !ok || (query && c.limits != nil && !c.limits.allow(addr)) {
			continue
		}
		return n, addr, err
	}
}

func acceptDatagram(b []byte) bool {
	ok, _ := classifyDatagram(b)
	return ok
}

// classifyDatagram tells whether b is a message for the library, and
// whether it is a query (which the node answers, as opposed to a reply or
// an error answering one of its own queries).
func classifyDatagram(b []byte) (ok, query bool) {
	if len(b) < 2 || b[0] != 'd' {
		return false, false
	}
	// The full message, as the library will decode it: a head that
	// decodes with a broken body would still reach its logger.
	var h krpc.Msg
	if err := bencode.Unmarshal(b, &h); err != nil {
		var trailing bencode.ErrUnusedTrailingBytes
		if !errors.As(err, &trailing) {
			return false, false
		}
	}
	switch h.Y {
	case "r", "e":
		return true, false
	case "q":
		switch h.Q {
		case "ping", "find_node", "get_peers", "announce_peer", "get", "put":
			return true, true
		}
	}
	return false, false
}

// maxLimitedSources bounds how many sources' budgets a node remembers; the
// least recently heard from is forgotten first (and starts afresh with a
// full burst if it comes back, which the node-wide send budget still caps).
const maxLimitedSources = 10_000

// sourceLimits gives each source of queries its own answer budget. A
// source is an IPv4 address or an IPv6 /64: one host commonly holds a
// whole /64, so counting IPv6 addresses one by one would let it spread a
// flood over as many budgets as it likes.
type sourceLimits struct {
	limit  rate.Limit
	burst  int
	clock  clockwork.Clock
	logger *slog.Logger

	mu      sync.Mutex
	budgets *lru.Cache[netip.Prefix, *rate.Limiter]

	dropped atomic.Uint64
	report  rate.Sometimes // logs drops at most once a minute
}

func newSourceLimits(perSecond float64, burst int, clock clockwork.Clock, logger *slog.Logger) (*sourceLimits, error) {
	c, err := lru.New[netip.Prefix, *rate.Limiter](maxLimitedSources)
	if err != nil {
		return nil, err
	}
	return &sourceLimits{limit: rate.Limit(perSecond), burst: burst, clock: clock, logger: logger,
		budgets: c, report: rate.Sometimes{Interval: time.Minute}}, nil
}

// sourceOf is the budget a datagram from addr is counted against.
func sourceOf(addr net.Addr) (netip.Prefix, bool) {
	var ap netip.AddrPort
	if ua, ok := addr.(*net.UDPAddr); ok {
		ap = ua.AddrPort()
	} else {
		var err error
		if ap, err = netip.ParseAddrPort(addr.String()); err != nil {
			return netip.Prefix{}, false
		}
	}
	ip := ap.Addr().Unmap().WithZone("")
	if ip.Is4() {
		return netip.PrefixFrom(ip, 32), true
	}
	p, err := ip.Prefix(64)
	return p, err == nil
}

// allow spends one unit of the budget of addr's source, if there is one
// left.
func (s *sourceLimits) allow(addr net.Addr) bool {
	src, ok := sourceOf(addr)
	if !ok {
		return true // not a UDP address: nothing to count it against
	}
	s.mu.Lock()
	budget, found := s.budgets.Get(src)
	if !found {
		budget = rate.NewLimiter(s.limit, s.burst)
		s.budgets.Add(src, budget)
	}
	allowed := budget.AllowN(s.clock.Now(), 1)
	s.mu.Unlock()
	if !allowed {
		total := s.dropped.Add(1)
		s.report.Do(func() {
			s.logger.Info("pkarr DHT: dropping queries from sources over their answer budget",
				slog.String("source", src.String()), slog.Uint64("dropped_total", total))
		})
	}
	return allowed
}
