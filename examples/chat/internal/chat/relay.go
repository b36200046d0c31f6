package chat

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.uber.org/fx"
	"golang.org/x/time/rate"

	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/phrasemeet/discovery/pkarrrelay"
)

// localRelayCheck is how often a chat using a local relay checks that one
// still answers, and takes over serving it when the chat that served it
// has quit. The room's members stay connected meanwhile; the relay only
// matters to newcomers.
const localRelayCheck = 5 * time.Second

// newClient returns the pkarr client over the configured relays, the
// local relay included.
func newClient(cfg Config, local *LocalRelay) (*pkarrclient.Client, error) {
	urls := cfg.Relays
	if local != nil {
		urls = append(urls[:len(urls):len(urls)], local.URL())
	}
	if len(urls) == 0 {
		urls = pkarrclient.DefaultRelays()
	}
	backends := make([]pkarrclient.Backend, 0, len(urls))
	for _, u := range urls {
		var opts []pkarrclient.RelayOption
		if local != nil && u == local.URL() {
			// A relay on this machine answers in microseconds or not at
			// all; waiting long for it only delays finding that out.
			opts = append(opts, pkarrclient.RelayTimeout(3*time.Second))
		}
		r, err := pkarrclient.NewRelay(u, opts...)
		if err != nil {
			return nil, err // names the URL without its password
		}
		backends = append(backends, r)
	}
	return pkarrclient.NewClient(backends)
}

// LocalRelay is the relay of "--relay local": it uses the relay answering
// at a loopback address, and when none does it serves one in this process,
// so several chats on one machine need nothing else running. A chat that
// quits takes its relay with it; another chat notices within
// localRelayCheck and serves a fresh one, which the members' next
// republish fills again.
type LocalRelay struct {
	addr string
	con  *Console
	hc   *http.Client

	mu       sync.Mutex
	serving  bool
	stopServ context.CancelFunc
	served   chan struct{} // closed when the relay this process serves has stopped

	stop chan struct{} // ends the watch
	wg   sync.WaitGroup
}

// newLocalRelay returns the local relay, or nil when none is configured.
// Start probes and, if needed, serves; Stop stops serving.
func newLocalRelay(lc fx.Lifecycle, cfg Config, con *Console) (*LocalRelay, error) {
	if cfg.LocalRelay == "" {
		return nil, nil
	}
	host, _, err := net.SplitHostPort(cfg.LocalRelay)
	if err != nil {
		return nil, fmt.Errorf("local relay address %q: %w", cfg.LocalRelay, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		// The relay it serves has no rate limits: it must not be
		// reachable from other machines.
		return nil, fmt.Errorf("local relay address %q: must be a loopback address", cfg.LocalRelay)
	}
	r := &LocalRelay{
		addr: cfg.LocalRelay,
		con:  con,
		hc:   &http.Client{Timeout: time.Second},
		stop: make(chan struct{}),
	}
	lc.Append(fx.Hook{OnStart: r.start, OnStop: r.close})
	return r, nil
}

// URL is the relay's base URL.
func (r *LocalRelay) URL() string { return "http://" + r.addr }

// Serving reports whether this process serves the relay now.
func (r *LocalRelay) Serving() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.serving
}

func (r *LocalRelay) start(ctx context.Context) error {
	if err := r.ensure(ctx, true); err != nil {
		return err
	}
	r.wg.Add(1)
	go r.watch()
	return nil
}

// watch takes over serving when the relay stops answering.
func (r *LocalRelay) watch() {
	defer r.wg.Done()
	t := time.NewTicker(localRelayCheck)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-r.stop:
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := r.ensure(ctx, false); err != nil {
			r.con.Statusf("local relay: %v", err)
		}
		cancel()
	}
}

// ensure makes sure a relay answers at the address: one already there,
// else one served here. first says whether this is the first check, which
// reports what it found either way.
func (r *LocalRelay) ensure(ctx context.Context, first bool) error {
	if r.Serving() {
		return nil
	}
	if r.answers(ctx) {
		if first {
			r.con.Statusf("using the relay at %s", r.addr)
		}
		return nil
	}
	err := r.serve()
	if err == nil {
		if first {
			r.con.Statusf("no relay answered at %s: serving one in this process (it stops when this chat quits)", r.addr)
		} else {
			r.con.Statusf("the relay at %s went away: serving one in this process", r.addr)
		}
		return nil
	}
	// Another chat may have started one between our probe and our listen.
	if r.answers(ctx) {
		return nil
	}
	return fmt.Errorf("no pkarr relay answers at %s, and none can be served there: %w", r.addr, err)
}

// answers reports whether a pkarr relay answers at the address: its index
// page starts with "pkarr relay".
func (r *LocalRelay) answers(ctx context.Context) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.URL()+"/", nil)
	if err != nil {
		return false
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	return resp.StatusCode == http.StatusOK && strings.HasPrefix(line, "pkarr relay")
}

// serve starts a relay on the address. It keeps packets in memory and has
// no rate limits: every chat on the machine comes from the same address,
// and only this machine can reach it.
func (r *LocalRelay) serve() error {
	store := pkarrrelay.NewMemoryStore(10_000)
	h, err := pkarrrelay.NewHandler(store,
		pkarrrelay.WithWriteRateLimit(rate.Inf, 0),
		pkarrrelay.WithReadRateLimit(rate.Inf, 0),
		pkarrrelay.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		store.Close()
		return err
	}
	srv, err := pkarrrelay.NewServer(h, pkarrrelay.ServerMetrics("", nil))
	if err != nil {
		store.Close()
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := srv.Listen(ctx, r.addr)
	if err != nil {
		cancel()
		store.Close()
		return err
	}
	done := make(chan struct{})
	r.mu.Lock()
	r.serving, r.stopServ, r.served = true, cancel, done
	r.mu.Unlock()
	go func() {
		defer close(done)
		err := srv.Serve(ctx, ln)
		store.Close()
		r.mu.Lock()
		r.serving = false
		r.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			r.con.Statusf("local relay stopped: %v", err)
		}
	}()
	return nil
}

func (r *LocalRelay) close(ctx context.Context) error {
	close(r.stop)
	r.wg.Wait()
	r.mu.Lock()
	stop, served := r.stopServ, r.served
	r.mu.Unlock()
	if stop == nil {
		return nil
	}
	stop()
	select {
	case <-served:
		return nil
	case <-ctx.Done():
		return errors.New("local relay: shutdown did not finish in time")
	}
}
