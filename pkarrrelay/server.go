package pkarrrelay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Timeouts bounds how long the Server waits for each phase of a request, so
// that slow or stalled clients cannot hold connections open. A zero field
// keeps its default.
type Timeouts struct {
	// ReadHeader limits reading the request headers (default 5s); this is
	// the defence against slow-loris clients.
	ReadHeader time.Duration
	// Read limits reading a whole request, body included (default 10s; a
	// body is at most 1072 bytes).
	Read time.Duration
	// Write limits the time from the end of the request headers to the end
	// of the response (default 10s). With an upstream, keep it above the
	// upstream timeout (WithUpstreamTimeout, default 5s), or a GET that
	// waits for a slow upstream is cut off before it can answer.
	Write time.Duration
	// Idle limits how long a keep-alive connection waits for its next
	// request (default 60s).
	Idle time.Duration
	// Shutdown is the grace period for requests in flight when the
	// server's context ends (default 10s); connections still busy after it
	// are closed.
	Shutdown time.Duration
}

// defaultTimeouts are the Server's timeouts when none are configured; each
// field's documentation in Timeouts names its default.
var defaultTimeouts = Timeouts{
	ReadHeader: 5 * time.Second,
	Read:       10 * time.Second,
	Write:      10 * time.Second,
	Idle:       60 * time.Second,
	Shutdown:   10 * time.Second,
}

// DefaultMaxHeaderBytes limits request headers. pkarr requests carry a
// handful of short headers; 16 KiB leaves room for proxies' additions.
const DefaultMaxHeaderBytes = 16 << 10

// ServerOption configures NewServer.
type ServerOption func(*serverConfig) error

type serverConfig struct {
	timeouts       Timeouts
	maxHeaderBytes int
	metricsPath    string
	gatherer       prometheus.Gatherer
	maxConns       int // 0: the default
	maxConnsPerIP  int // 0: the default
}

// ServerTimeouts overrides the defaults with the non-zero fields of t.
func ServerTimeouts(t Timeouts) ServerOption {
	return func(c *serverConfig) error {
		for _, d := range []time.Duration{t.ReadHeader, t.Read, t.Write, t.Idle, t.Shutdown} {
			if d < 0 {
				return fmt.Errorf("%w: negative timeout %v", ErrInvalidConfig, d)
			}
		}
		set := func(dst *time.Duration, v time.Duration) {
			if v > 0 {
				*dst = v
			}
		}
		set(&c.timeouts.ReadHeader, t.ReadHeader)
		set(&c.timeouts.Read, t.Read)
		set(&c.timeouts.Write, t.Write)
		set(&c.timeouts.Idle, t.Idle)
		set(&c.timeouts.Shutdown, t.Shutdown)
		return nil
	}
}

// ServerMaxConns caps the connections the Server holds open: total in
// all, and perIP from one client address (IPv6 addresses by /64, as the
// rate limits count them). Zero keeps a default: DefaultMaxConns, or three
// quarters of the process's open-file limit when that is lower, and
// DefaultMaxConnsPerIP, or a quarter of the total when that is lower.
// Connections from trusted proxies (WithTrustedProxies) count only toward
// the total, since they carry many clients.
//
// A new connection over a cap takes the place of the connection idle
// longest, the address's own for the per-address cap and anyone's for the
// total; when all of those are in the middle of a request it is answered
// 429 (per address) or 503 (in all) and closed.
func ServerMaxConns(total, perIP int) ServerOption {
	return func(c *serverConfig) error {
		if total < 0 || perIP < 0 || total > 0 && perIP > total {
			return fmt.Errorf("%w: connection limits %d in all, %d per address", ErrInvalidConfig, total, perIP)
		}
		c.maxConns, c.maxConnsPerIP = total, perIP
		return nil
	}
}

// defaultConnLimits fills in the limits left at zero.
func defaultConnLimits(total, perIP int) (int, int) {
	if total == 0 {
		total = DefaultMaxConns
		if files, ok := openFileLimit(); ok && files/4*3 < uint64(total) {
			total = max(int(files/4*3), 1)
		}
	}
	if perIP == 0 {
		perIP = min(DefaultMaxConnsPerIP, max(total/4, 1))
	}
	return total, min(perIP, total)
}

// ServerMaxHeaderBytes limits the size of request headers (default
// DefaultMaxHeaderBytes).
func ServerMaxHeaderBytes(n int) ServerOption {
	return func(c *serverConfig) error {
		if n < 1 {
			return fmt.Errorf("%w: max header bytes %d", ErrInvalidConfig, n)
		}
		c.maxHeaderBytes = n
		return nil
	}
}

// ServerMetrics serves g in the Prometheus text format at path (default: the
// Handler's registry at "/metrics"). An empty path turns the endpoint off.
// A nil g keeps the Handler's registry.
func ServerMetrics(path string, g prometheus.Gatherer) ServerOption {
	return func(c *serverConfig) error {
		if path != "" && !strings.HasPrefix(path, "/") {
			return fmt.Errorf("%w: metrics path %q must start with /", ErrInvalidConfig, path)
		}
		c.metricsPath = path
		if g != nil {
			c.gatherer = g
		}
		return nil
	}
}

// Server runs a Handler on a listener with the timeouts a public relay
// needs, serves Prometheus metrics beside the API, and shuts down gracefully.
// A Server serves once: after its context ends it cannot be restarted.
type Server struct {
	handler *Handler
	http    *http.Server
	grace   time.Duration
	conns   *connLimiter

	mu  sync.Mutex
	url string
}

// NewServer returns a Server for h. The metrics path must differ from the
// index page's; beside keys it is harmless, since no key is named "metrics".
func NewServer(h *Handler, opts ...ServerOption) (*Server, error) {
	if h == nil {
		return nil, fmt.Errorf("%w: nil handler", ErrInvalidConfig)
	}
	cfg := serverConfig{
		timeouts:       defaultTimeouts,
		maxHeaderBytes: DefaultMaxHeaderBytes,
		metricsPath:    "/metrics",
		gatherer:       h.gatherer,
	}
	for _, opt := range opts {
		if opt == nil { // lets callers build option lists conditionally
			continue
		}
		if err := opt(&cfg); err != nil {
			return nil, err
		}
	}
	var handler http.Handler = h
	if cfg.metricsPath != "" && cfg.gatherer != nil {
		// Any other path under the API is a key path that can never hold a
		// valid key, so only the index page can be shadowed.
		if cfg.metricsPath == h.cfg.basePath || cfg.metricsPath == h.keyPrefix {
			return nil, fmt.Errorf("%w: metrics path %q collides with the index page at %q",
				ErrInvalidConfig, cfg.metricsPath, h.cfg.basePath)
		}
		metrics := promhttp.HandlerFor(cfg.gatherer, promhttp.HandlerOpts{
			ErrorLog: slog.NewLogLogger(h.cfg.logger.Handler(), slog.LevelWarn),
		})
		metricsPath := cfg.metricsPath
		handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// An exact match rather than a ServeMux, so every other path
			// reaches the API as sent, never cleaned or redirected.
			if r.URL.Path == metricsPath {
				metrics.ServeHTTP(w, r)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	t := cfg.timeouts
	total, perIP := defaultConnLimits(cfg.maxConns, cfg.maxConnsPerIP)
	conns := newConnLimiter(total, perIP, h.cfg.trusted, h.metrics)
	return &Server{
		handler: h,
		http: &http.Server{
			Handler:           handler,
			ReadHeaderTimeout: t.ReadHeader,
			ReadTimeout:       t.Read,
			WriteTimeout:      t.Write,
			IdleTimeout:       t.Idle,
			MaxHeaderBytes:    cfg.maxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(h.cfg.logger.Handler(), slog.LevelWarn),
			ConnState:         conns.connState,
		},
		grace: t.Shutdown,
		conns: conns,
	}, nil
}

// ConnLimits returns the connection caps in force: in all, and per client
// address (see ServerMaxConns).
func (s *Server) ConnLimits() (total, perIP int) { return s.conns.total, s.conns.perIP }

// Listen opens a TCP listener on addr (such as ":8080" or "127.0.0.1:0")
// and records its URL, so a caller can print URL and then call Serve. The
// kernel queues connections from the moment Listen returns.
func (s *Server) Listen(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pkarrrelay: listening on %s: %w", addr, err)
	}
	s.setURL(ln)
	return ln, nil
}

// URL returns the base URL of the API on the most recent listener given to
// Listen or Serve, such as "http://127.0.0.1:8080/pkarr", or "" before
// either. An unspecified listening address (":8080") is shown as loopback,
// the one address certain to reach it.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}

func (s *Server) setURL(ln net.Listener) {
	host := ln.Addr().String()
	if ap, err := netip.ParseAddrPort(host); err == nil {
		a := ap.Addr()
		switch {
		case a.IsUnspecified() && a.Is4():
			a = netip.AddrFrom4([4]byte{127, 0, 0, 1})
		case a.IsUnspecified():
			a = netip.IPv6Loopback()
		}
		host = net.JoinHostPort(a.String(), strconv.Itoa(int(ap.Port())))
	}
	u := "http://" + host
	if base := s.handler.BasePath(); base != "/" {
		u += base
	}
	s.mu.Lock()
	s.url = u
	s.mu.Unlock()
}

// Serve accepts connections on ln until ctx ends, then stops accepting,
// waits up to the shutdown grace period for requests in flight, closes what
// is left, closes the Handler (stopping its background upstream lookups,
// see Handler.Close) and returns. It returns nil after a shutdown caused by
// ctx, and the error otherwise (for example when ln fails; the Handler is
// then left open). Serve closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.setURL(ln)
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(s.conns.listener(ln)) }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("pkarrrelay: serving: %w", err)
	case <-ctx.Done():
	}
	grace, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.grace)
	defer cancel()
	err := s.http.Shutdown(grace)
	if err != nil {
		// The grace period ran out: cut the remaining connections.
		s.http.Close()
		err = fmt.Errorf("pkarrrelay: shutdown grace period exceeded, closed busy connections: %w", err)
	}
	<-errc
	// After the requests, so none of them finds its upstream gone; a
	// request still running after the grace period sees its lookup
	// cancelled and answers at once.
	s.handler.Close()
	return err
}

// ListenAndServe is Listen followed by Serve.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	ln, err := s.Listen(ctx, addr)
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln)
}
