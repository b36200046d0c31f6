package meshbench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/phrasemeet/discovery/pkarrrelay"
)

// limitModel is the per-IP request limit the benchmark's relay applies,
// modelled on a deployed relay (see shared/notes/pkarr.md).
type limitModel string

const (
	// limitN0 is n0's relay (dns.iroh.link): PUTs limited per IP to a
	// burst of 2, then 1 per 4 s; GETs unlimited. pkarrrelay's own write
	// limiter applies it.
	limitN0 limitModel = "n0"
	// limitPkarr is pkarr's relay (pkarr.pubky.app): every request, GET or
	// PUT, counts against one per-IP bucket of about 2 per second, burst
	// 10. pkarrrelay keeps separate buckets for reads and writes, which
	// would allow twice the budget, so the shared bucket is applied in
	// front of it (sharedLimit), as internal/relaysim.PkarrRelay models it.
	limitPkarr limitModel = "pkarr"
	// limitOff has no limit at all.
	limitOff limitModel = "off"
)

func parseLimitModel(s string) (limitModel, error) {
	switch m := limitModel(s); m {
	case limitN0, limitPkarr, limitOff:
		return m, nil
	}
	return "", fmt.Errorf("unknown relay limit model %q: want n0, pkarr or off", s)
}

func (m limitModel) String() string {
	switch m {
	case limitN0:
		return "n0 (PUT burst 2, then 1 per 4 s per IP; GET unlimited)"
	case limitPkarr:
		return "pkarr-relay (every request: 2 per s per IP, burst 10)"
	default:
		return "off (no per-IP limit)"
	}
}

// counts is what the relay answered, over all peers.
type counts struct {
	Gets, Puts, TooMany int
}

// relay is one real pkarrrelay.Handler on 127.0.0.1 behind a counter.
// It is served by a plain http.Server rather than pkarrrelay.Server: every
// peer connects from 127.0.0.1, and the Server's per-IP connection limit
// would throttle them as one client.
type relay struct {
	url string
	srv *http.Server
	ln  net.Listener

	mu       sync.Mutex
	counting bool
	c        counts
}

func startRelay(model limitModel) (*relay, error) {
	opts := []pkarrrelay.Option{
		// Peers are told apart by X-Forwarded-For, which they set in
		// their netdelay.Transport; the relay trusts it from loopback only.
		pkarrrelay.WithTrustedProxies(netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128")),
		pkarrrelay.WithReadRateLimit(rate.Inf, 1),
		pkarrrelay.WithWriteRateLimit(rate.Inf, 1),
	}
	if model == limitN0 {
		opts = append(opts, pkarrrelay.WithWriteRateLimit(0.25, 2))
	}
	h, err := pkarrrelay.NewHandler(pkarrrelay.NewMemoryStore(0), opts...)
	if err != nil {
		return nil, err
	}
	var inner http.Handler = h
	if model == limitPkarr {
		inner = &sharedLimit{next: h, per: map[string]*rate.Limiter{}}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &relay{url: "http://" + ln.Addr().String(), ln: ln}
	r.srv = &http.Server{Handler: r.count(inner), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

// count counts every answer while counting is on.
func (r *relay) count(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, req)
		r.mu.Lock()
		defer r.mu.Unlock()
		if !r.counting {
			return
		}
		switch req.Method {
		case http.MethodGet, http.MethodHead:
			r.c.Gets++
		case http.MethodPut:
			r.c.Puts++
		}
		if sw.status == http.StatusTooManyRequests {
			r.c.TooMany++
		}
	})
}

// setCounting turns counting on or off and returns the counts so far.
func (r *relay) setCounting(on bool) counts {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counting = on
	return r.c
}

func (r *relay) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := r.srv.Shutdown(ctx); err != nil {
		_ = r.srv.Close()
	}
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// sharedLimit is pkarr-relay's limit: one token bucket per client IP (the
// rightmost X-Forwarded-For entry, which only the benchmark's own peers
// set) for every request, answered 429 with Retry-After when empty.
type sharedLimit struct {
	next http.Handler
	mu   sync.Mutex
	per  map[string]*rate.Limiter
}

func (s *sharedLimit) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	ip := req.Header.Get("X-Forwarded-For")
	if ip == "" {
		ip, _, _ = net.SplitHostPort(req.RemoteAddr)
	}
	s.mu.Lock()
	l := s.per[ip]
	if l == nil {
		l = rate.NewLimiter(2, 10)
		s.per[ip] = l
	}
	res := l.Reserve()
	delay := res.Delay()
	if delay > 0 {
		res.Cancel()
	}
	s.mu.Unlock()
	if delay > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(delay/time.Second)+1))
		http.Error(w, "rate limited", http.StatusTooManyRequests)
		return
	}
	s.next.ServeHTTP(w, req)
}
