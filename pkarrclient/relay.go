package pkarrclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jonboulle/clockwork"

	"github.com/phrasemeet/discovery/internal/backoff"
)

// DefaultRelays returns the base URLs of the public relays this project
// knows to speak the pkarr relay API: n0's (iroh-dns-server, no DHT) and the
// two run by pkarr's maintainers (pkarr-relay, backed by the DHT). Publishing
// to relays of both kinds keeps a record reachable if either operator goes
// away. The slice is new on every call; callers may modify it.
func DefaultRelays() []string {
	return []string{
		"https://dns.iroh.link/pkarr",
		"https://pkarr.pubky.app",
		"https://pkarr.pubky.org",
	}
}

// Relay protocol constants.
const (
	// RelayContentType is the media type of a relay payload, sent with every
	// PUT and answered by relays on GET.
	RelayContentType = "application/pkarr.org/relays#payload"
	// headerDHTStoredNodes is the v7 relay's count of DHT nodes that
	// stored a published packet.
	headerDHTStoredNodes = "Pkarr-Dht-Stored-Nodes"
)

// Relay defaults and bounds.
const (
	defaultRelayTimeout     = 2 * time.Second
	defaultRelayRetries     = 2
	defaultRelayBackoffBase = 100 * time.Millisecond
	defaultRelayBackoffMax  = 2 * time.Second
	defaultRelayUserAgent   = "phrasemeet-pkarrclient"

	// maxRetryAfter bounds what a relay can make us wait with Retry-After,
	// so a hostile or buggy header cannot shut a relay out for days.
	maxRetryAfter = time.Hour
	// rateLimitBackoffMin and rateLimitBackoffMax bound our own wait after
	// a 429 that carried no usable Retry-After.
	rateLimitBackoffMin = time.Second
	rateLimitBackoffMax = time.Minute

	// maxDrain is how much of an uninteresting body we read so the
	// connection can be reused; past it, closing the connection is cheaper.
	maxDrain = 4 << 10
	// maxMessageRead and maxMessageLen bound the relay's error text we read
	// and quote in errors.
	maxMessageRead = 512
	maxMessageLen  = 120
	// maxResponseHeaderBytes bounds the headers a relay may send: ours are a
	// few hundred bytes.
	maxResponseHeaderBytes = 64 << 10
)

// Relay is a [Backend] speaking the pkarr relay HTTP API to one relay:
// PUT <base>/<z32> to publish and GET <base>/<z32> to resolve.
//
// A Relay is built for relays it does not control. Every answer is verified
// against the key asked for; bodies are read only up to the 1072-byte
// payload limit; failures are retried with jittered exponential backoff only
// when retrying can help (network errors, timeouts, 408, 5xx); and a 429 is
// remembered, per operation, so later calls fail fast with a
// *[RateLimitError] until the relay's Retry-After has passed instead of
// spending the small per-IP budget deployed relays allow (see
// DefaultRelays).
//
// Every error is a *[BackendError] wrapping one of the package's sentinels.
// A Relay is safe for concurrent use.
type Relay struct {
	base        string // normalized base URL, no trailing slash
	name        string // base with any password redacted
	hc          *http.Client
	timeout     time.Duration
	retries     int
	backoffBase time.Duration
	backoffMax  time.Duration
	clock       clockwork.Clock
	maxWait     time.Duration
	userAgent   string

	mu sync.Mutex
	// limits remembers 429s per operation: deployed relays budget them
	// differently (n0's relay limits only PUTs; pkarr-relay limits all
	// requests), so a full PUT budget must not stop resolves.
	limits map[string]*rateMemory // keyed by OpPublish, OpResolve; fixed at NewRelay
}

// rateMemory is what a Relay remembers of 429s for one operation.
type rateMemory struct {
	// notBefore is when the operation may be sent again.
	notBefore time.Time
	// backoff is the next wait after a 429 without Retry-After; zero means
	// the minimum. It doubles on each such 429 that arrives after the
	// previous wait ended, and resets when the relay answers anything but
	// 429.
	backoff time.Duration
}

// relayConfig collects RelayOptions before NewRelay builds the Relay.
type relayConfig struct {
	hc          *http.Client
	timeout     time.Duration
	retries     int
	backoffBase time.Duration
	backoffMax  time.Duration
	clock       clockwork.Clock
	maxWait     time.Duration
	userAgent   string
}

// RelayOption configures a Relay. Options are applied in order; an invalid
// value makes NewRelay fail rather than silently picking a default.
type RelayOption func(*relayConfig) error

// RelayHTTPClient makes the relay send its requests through hc, for proxies,
// custom TLS roots or instrumentation. Its Timeout, if any, applies on top
// of RelayTimeout. By default each Relay has its own client whose transport
// limits response headers to 64 KiB.
func RelayHTTPClient(hc *http.Client) RelayOption {
	return func(c *relayConfig) error {
		if hc == nil {
			return errors.New("pkarr: RelayHTTPClient: nil client")
		}
		c.hc = hc
		return nil
	}
}

// RelayTimeout bounds each HTTP request, including reading the answer
// (default 2 s, as pkarr's client). A whole call can take longer: retries
// each get a fresh timeout. Zero disables the per-request bound, leaving
// only the caller's context. The timeout runs on the real clock, because it
// bounds real network I/O; RelayClock does not affect it.
func RelayTimeout(d time.Duration) RelayOption {
	return func(c *relayConfig) error {
		if d < 0 {
			return fmt.Errorf("pkarr: RelayTimeout: negative duration %v", d)
		}
		c.timeout = d
		return nil
	}
}

// RelayRetries sets how many times a request that failed transiently
// (network error, timeout, 408, 5xx) is repeated (default 2, so at most
// three attempts). Zero disables retries.
func RelayRetries(n int) RelayOption {
	return func(c *relayConfig) error {
		if n < 0 {
			return fmt.Errorf("pkarr: RelayRetries: negative count %d", n)
		}
		c.retries = n
		return nil
	}
}

// RelayBackoff sets the wait before a retry: base doubled for each failed
// attempt, capped at max, then jittered to between half and all of it so
// clients that failed together do not retry together (default 100 ms to
// 2 s).
func RelayBackoff(base, max time.Duration) RelayOption {
	return func(c *relayConfig) error {
		if base <= 0 || max < base {
			return fmt.Errorf("pkarr: RelayBackoff: want 0 < base <= max, got %v, %v", base, max)
		}
		c.backoffBase, c.backoffMax = base, max
		return nil
	}
}

// RelayClock sets the clock used for rate-limit memory, Retry-After dates
// and waits between attempts, so tests can drive them without sleeping.
// Default: the real clock.
func RelayClock(clock clockwork.Clock) RelayOption {
	return func(c *relayConfig) error {
		if clock == nil {
			return errors.New("pkarr: RelayClock: nil clock")
		}
		c.clock = clock
		return nil
	}
}

// RelayMaxRetryAfterWait lets a call that hits a rate limit wait it out once
// and try again, when the wait is at most d and fits before the context's
// deadline. The default, zero, never waits: the call fails at once with a
// *RateLimitError, which suits callers that fan out to several relays and
// need only one answer.
func RelayMaxRetryAfterWait(d time.Duration) RelayOption {
	return func(c *relayConfig) error {
		if d < 0 {
			return fmt.Errorf("pkarr: RelayMaxRetryAfterWait: negative duration %v", d)
		}
		c.maxWait = d
		return nil
	}
}

// RelayUserAgent sets the User-Agent header, so relay operators can tell
// who is calling (default "phrasemeet-pkarrclient"). An empty string sends
// Go's default.
func RelayUserAgent(s string) RelayOption {
	return func(c *relayConfig) error {
		c.userAgent = s
		return nil
	}
}

// NewRelay returns a Relay for the relay at baseURL, which may carry a path
// (https://dns.iroh.link/pkarr): packets live at <baseURL>/<z32 key>. The
// scheme must be http or https; a trailing slash is removed; a query or a
// fragment is rejected, since the key is appended to the path.
func NewRelay(baseURL string, opts ...RelayOption) (*Relay, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		// url.Error quotes the whole URL, password included; keep only
		// the reason.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("pkarr: invalid relay URL: %v", err)
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
	default:
		return nil, fmt.Errorf("pkarr: invalid relay URL %q: scheme must be http or https", u.Redacted())
	}
	if u.Host == "" {
		return nil, fmt.Errorf("pkarr: invalid relay URL %q: no host", u.Redacted())
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return nil, fmt.Errorf("pkarr: invalid relay URL %q: query and fragment are not allowed", u.Redacted())
	}
	cfg := relayConfig{
		timeout:     defaultRelayTimeout,
		retries:     defaultRelayRetries,
		backoffBase: defaultRelayBackoffBase,
		backoffMax:  defaultRelayBackoffMax,
		userAgent:   defaultRelayUserAgent,
	}
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.hc == nil {
		cfg.hc = newRelayHTTPClient()
	}
	if cfg.clock == nil {
		cfg.clock = clockwork.NewRealClock()
	}
	return &Relay{
		base:        strings.TrimRight(u.String(), "/"),
		name:        strings.TrimRight(u.Redacted(), "/"),
		hc:          cfg.hc,
		timeout:     cfg.timeout,
		retries:     cfg.retries,
		backoffBase: cfg.backoffBase,
		backoffMax:  cfg.backoffMax,
		clock:       cfg.clock,
		maxWait:     cfg.maxWait,
		userAgent:   cfg.userAgent,
		limits:      map[string]*rateMemory{OpPublish: {}, OpResolve: {}},
	}, nil
}

// newRelayHTTPClient returns a client of the relay's own, so no global
// transport is shared or mutated; it follows net/http's defaults except for
// a tighter bound on response headers and redirects (see noRewrittenRedirect).
func newRelayHTTPClient() *http.Client {
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Client{CheckRedirect: noRewrittenRedirect, Transport: &http.Transport{
		Proxy:                  http.ProxyFromEnvironment,
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           10,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
	}}
}

// noRewrittenRedirect stops net/http from following a redirect that changes
// the method: on 301, 302 and 303 it would resend a PUT as a body-less GET,
// and the GET's 200 would pass for an accepted publish. The relay's 3xx is
// returned instead, and reported as a misconfigured URL. 307 and 308 keep
// the method and body and are followed.
func noRewrittenRedirect(req *http.Request, via []*http.Request) error {
	if req.Method != via[0].Method {
		return http.ErrUseLastResponse
	}
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	return nil
}

// Name returns the relay's base URL (password redacted), which identifies
// it in outcomes and errors.
func (r *Relay) Name() string { return r.name }

// URL returns the relay's normalized base URL, without a trailing slash.
func (r *Relay) URL() string { return r.base }

// String returns the relay's name, so a Relay prints usefully in logs.
func (r *Relay) String() string { return r.name }

// Publish PUTs p's relay payload to the relay.
//
// A 2xx answer is success; the receipt carries the relay's
// Pkarr-Dht-Stored-Nodes count when present and well formed. A 2xx does not
// prove the packet was kept: n0's relay answers 204 to an older packet and
// drops it. The other answers map to errors wrapping ErrNotMostRecent (409),
// ErrBadRequest (other 4xx, with the relay's message), *RateLimitError (429)
// and, once retries are spent, ErrUnavailable (network errors, timeouts,
// 408, 5xx).
func (r *Relay) Publish(ctx context.Context, p *SignedPacket) (PublishReceipt, error) {
	if p == nil {
		return PublishReceipt{}, r.fail(OpPublish, 0, fmt.Errorf("%w: nil packet", ErrBadRequest))
	}
	target := r.base + "/" + p.PublicKey().String()
	payload := p.RelayPayload()
	var receipt PublishReceipt
	err := r.exchange(ctx, OpPublish, func(ctx context.Context) attempt {
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, target, bytes.NewReader(payload))
		if err != nil {
			return attempt{class: attemptFinal, err: fmt.Errorf("%w: %v", ErrBadRequest, err)}
		}
		req.Header.Set("Content-Type", RelayContentType)
		r.setHeaders(req)
		resp, err := r.hc.Do(req)
		if err != nil {
			return attempt{class: attemptTransient, err: err}
		}
		defer drainClose(resp.Body)
		switch s := resp.StatusCode; {
		case resp.Request.Method != http.MethodPut:
			// A client given through RelayHTTPClient followed a redirect
			// that turned the PUT into a GET: whatever it answered, the
			// packet was not stored.
			return attempt{class: attemptFinal, status: s, err: fmt.Errorf(
				"%w: the relay redirected the PUT to %s, which turned it into a %s; configure that URL",
				ErrInvalidResponse, sanitizeURL(resp.Request.URL), resp.Request.Method)}
		case s >= 200 && s < 300:
			receipt = PublishReceipt{DHTNodes: parseStoredNodes(resp.Header)}
			return attempt{class: attemptOK, status: s}
		case s == http.StatusConflict, s == http.StatusPreconditionRequired:
			// 428 is how relays of versions 4 to 6 reported a concurrent
			// write to the same key; pkarr's client reads it as 409.
			return attempt{class: attemptFinal, status: s, err: withRelayMessage(ErrNotMostRecent, resp.Body)}
		}
		return r.classifyFailure(resp)
	})
	return receipt, err
}

// Resolve GETs the packet for q.Key and verifies it under q.Key.
//
// q.NewerThan is ignored (no If-Modified-Since is sent: relays up to v6
// answer it with an empty 200); q.Fresh sends "Cache-Control: no-cache".
// A 404, a 304 and an empty 200 all mean ErrNotFound. A body over 1072
// bytes, or one that does not verify under q.Key (garbage, a forged
// signature, another key's packet), is ErrInvalidResponse and is never
// returned. Failures otherwise map as in Publish.
func (r *Relay) Resolve(ctx context.Context, q Query) (*SignedPacket, error) {
	target := r.base + "/" + q.Key.String()
	var packet *SignedPacket
	err := r.exchange(ctx, OpResolve, func(ctx context.Context) attempt {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return attempt{class: attemptFinal, err: fmt.Errorf("%w: %v", ErrBadRequest, err)}
		}
		if q.Fresh {
			req.Header.Set("Cache-Control", "no-cache")
		}
		r.setHeaders(req)
		resp, err := r.hc.Do(req)
		if err != nil {
			return attempt{class: attemptTransient, err: err}
		}
		s := resp.StatusCode
		switch {
		case s >= 200 && s < 300:
			p, a := readPacket(q.Key, resp)
			packet = p
			return a
		case s == http.StatusNotFound:
			drainClose(resp.Body)
			return attempt{class: attemptFinal, status: s, err: ErrNotFound}
		case s == http.StatusNotModified:
			// We never send If-Modified-Since, so a 304 comes from a
			// confused cache on the way; it carries no packet.
			drainClose(resp.Body)
			return attempt{class: attemptFinal, status: s, err: fmt.Errorf("%w: unsolicited 304 Not Modified", ErrNotFound)}
		}
		defer drainClose(resp.Body)
		return r.classifyFailure(resp)
	})
	if err != nil {
		return nil, err
	}
	return packet, nil
}

// readPacket reads and verifies a 2xx resolve answer, reading at most one
// byte past the payload limit so a hostile endless body costs nothing.
func readPacket(key PublicKey, resp *http.Response) (*SignedPacket, attempt) {
	s := resp.StatusCode
	if resp.ContentLength > MaxPayloadSize {
		resp.Body.Close() // unread: the connection is dropped, not drained
		return nil, attempt{class: attemptFinal, status: s, err: fmt.Errorf(
			"%w: body of %d bytes exceeds the %d-byte relay payload limit", ErrInvalidResponse, resp.ContentLength, MaxPayloadSize)}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxPayloadSize+1))
	resp.Body.Close()
	switch {
	case err != nil:
		// The connection broke mid-answer: a network failure, worth a retry.
		return nil, attempt{class: attemptTransient, status: s, err: fmt.Errorf("reading body: %w", err)}
	case len(body) > MaxPayloadSize:
		return nil, attempt{class: attemptFinal, status: s, err: fmt.Errorf(
			"%w: body exceeds the %d-byte relay payload limit", ErrInvalidResponse, MaxPayloadSize)}
	case len(body) == 0:
		// Relays up to v6 answer an empty 200 when they have nothing newer.
		return nil, attempt{class: attemptFinal, status: s, err: fmt.Errorf("%w: empty answer", ErrNotFound)}
	}
	p, err := ParseRelayPayload(key, body)
	if err != nil {
		return nil, attempt{class: attemptFinal, status: s, err: fmt.Errorf("%w: %w", ErrInvalidResponse, err)}
	}
	return p, attempt{class: attemptOK, status: s}
}

// classifyFailure maps a status that is neither success nor one of the
// operation's own cases. The caller closes the body.
func (r *Relay) classifyFailure(resp *http.Response) attempt {
	s := resp.StatusCode
	switch {
	case s == http.StatusTooManyRequests:
		return attempt{class: attemptRateLimited, status: s,
			retryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), r.clock.Now())}
	case s == http.StatusRequestTimeout || s >= 500:
		return attempt{class: attemptTransient, status: s, err: withRelayMessage(
			fmt.Errorf("HTTP %d %s", s, http.StatusText(s)), resp.Body)}
	case s >= 400:
		return attempt{class: attemptFinal, status: s, err: withRelayMessage(ErrBadRequest, resp.Body)}
	case s >= 300:
		loc := "elsewhere"
		if u, err := resp.Location(); err == nil {
			loc = sanitizeURL(u)
		}
		return attempt{class: attemptFinal, status: s, err: fmt.Errorf(
			"%w: the relay redirects to %s; configure that URL", ErrInvalidResponse, loc)}
	}
	// 1xx the HTTP client did not handle: not the relay API.
	return attempt{class: attemptFinal, status: s, err: fmt.Errorf("%w: unexpected HTTP status %d", ErrInvalidResponse, s)}
}

func (r *Relay) setHeaders(req *http.Request) {
	if r.userAgent != "" {
		req.Header.Set("User-Agent", r.userAgent)
	}
}

// attemptClass tells exchange what to do after one HTTP request.
type attemptClass int

const (
	attemptOK          attemptClass = iota // done, success
	attemptFinal                           // done: an answer retrying cannot change
	attemptTransient                       // network error, timeout, 408, 5xx: retry
	attemptRateLimited                     // 429: remember, do not retry
)

// attempt is the result of one HTTP request.
type attempt struct {
	class      attemptClass
	status     int           // HTTP status, 0 when none was received
	err        error         // cause, nil for attemptOK and attemptRateLimited
	retryAfter time.Duration // attemptRateLimited: the relay's Retry-After, 0 if none usable
}

// exchange runs one call: it checks the rate-limit memory, makes attempts
// through try (each under its own timeout) and retries transient failures
// with backoff. It returns nil or a *BackendError.
func (r *Relay) exchange(ctx context.Context, op string, try func(context.Context) attempt) error {
	waited := false // a call sleeps off a rate limit at most once
	failures := 0
	for {
		if wait := r.rateLimitRemaining(op); wait > 0 {
			if !waited && r.mayWait(ctx, wait) {
				waited = true
				if err := r.sleep(ctx, wait); err != nil {
					return r.fail(op, 0, err)
				}
				continue
			}
			return r.fail(op, 0, &RateLimitError{RetryAfter: wait})
		}
		if err := ctx.Err(); err != nil {
			return r.fail(op, 0, err)
		}
		a := r.once(ctx, try)
		switch a.class {
		case attemptOK:
			r.resetLimitBackoff(op)
			return nil
		case attemptFinal:
			r.resetLimitBackoff(op)
			return r.fail(op, a.status, a.err)
		case attemptRateLimited:
			wait := r.noteRateLimit(op, a.retryAfter)
			if !waited && r.mayWait(ctx, wait) {
				waited = true
				if err := r.sleep(ctx, wait); err != nil {
					return r.fail(op, a.status, err)
				}
				continue
			}
			return r.fail(op, a.status, &RateLimitError{RetryAfter: wait})
		default: // attemptTransient
			if err := ctx.Err(); err != nil {
				// The caller gave up (or another backend answered first);
				// that is not the relay's fault.
				return r.fail(op, a.status, err)
			}
			if failures >= r.retries {
				return r.fail(op, a.status, fmt.Errorf("%w: %w", ErrUnavailable, a.err))
			}
			if err := r.sleep(ctx, r.backoff(failures)); err != nil {
				return r.fail(op, a.status, err)
			}
			failures++
		}
	}
}

// once makes one attempt under the per-request timeout.
func (r *Relay) once(ctx context.Context, try func(context.Context) attempt) attempt {
	if r.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.timeout)
		defer cancel()
	}
	return try(ctx)
}

func (r *Relay) fail(op string, status int, err error) error {
	return &BackendError{Backend: r.name, Op: op, Status: status, Err: err}
}

// backoff returns the jittered wait before retry number n+1: between
// half and all of the doubled, capped wait.
func (r *Relay) backoff(n int) time.Duration {
	d := backoff.Exp(r.backoffBase, r.backoffMax, n)
	return backoff.Between(backoff.Runtime, d/2, d)
}

// sleep waits d on the relay's clock, or until ctx is done.
func (r *Relay) sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := r.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.Chan():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// mayWait reports whether a call may sleep off a rate limit of wait.
func (r *Relay) mayWait(ctx context.Context, wait time.Duration) bool {
	if r.maxWait <= 0 || wait > r.maxWait {
		return false
	}
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) <= wait {
		return false
	}
	return true
}

// rateLimitRemaining returns how long op must still be left alone.
func (r *Relay) rateLimitRemaining(op string) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.limits[op]
	if m.notBefore.IsZero() {
		return 0
	}
	return max(m.notBefore.Sub(r.clock.Now()), 0)
}

// noteRateLimit records a 429 for op and returns how long to stay away: the
// relay's Retry-After if it gave a usable one, else our own backoff, which
// doubles from 1 s up to 1 min while 429s keep coming. Calls that were in
// flight together are refused together: their 429s share the window the
// first one opened instead of doubling it once each.
func (r *Relay) noteRateLimit(op string, retryAfter time.Duration) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.limits[op]
	now := r.clock.Now()
	wait := retryAfter
	if wait <= 0 {
		if now.Before(m.notBefore) {
			return m.notBefore.Sub(now)
		}
		wait = max(m.backoff, rateLimitBackoffMin)
		m.backoff = min(2*wait, rateLimitBackoffMax)
	}
	if until := now.Add(wait); until.After(m.notBefore) {
		m.notBefore = until
	}
	return wait
}

func (r *Relay) resetLimitBackoff(op string) {
	r.mu.Lock()
	r.limits[op].backoff = 0
	r.mu.Unlock()
}

// sanitizeURL renders a URL a relay sent us for an error message: password
// redacted, control characters escaped, length bounded.
func sanitizeURL(u *url.URL) string {
	s := strconv.Quote(u.Redacted())
	if len(s) > maxMessageLen {
		s = s[:maxMessageLen] + "…"
	}
	return s
}

// parseRetryAfter reads a Retry-After header, delta-seconds or HTTP-date,
// clamped to maxRetryAfter. It returns 0 when the header is absent,
// malformed, or asks for no wait at all: the caller then backs off on its
// own, which avoids a hot loop on "Retry-After: 0". A number too large to
// parse is a (very long) wait, so it gets the cap.
func parseRetryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if strings.Trim(h, "0123456789") == "" {
		n, err := strconv.ParseUint(h, 10, 64)
		if err != nil || n >= uint64(maxRetryAfter/time.Second) {
			return maxRetryAfter // only ErrRange is possible: all digits
		}
		return time.Duration(n) * time.Second
	}
	t, err := http.ParseTime(h)
	if err != nil {
		return 0
	}
	return min(max(t.Sub(now), 0), maxRetryAfter)
}

// parseStoredNodes reads Pkarr-Dht-Stored-Nodes; a missing or malformed
// value counts as unknown (0): the publish itself succeeded.
func parseStoredNodes(h http.Header) int {
	v := strings.TrimSpace(h.Get(headerDHTStoredNodes))
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// withRelayMessage wraps cause with the first line of the relay's error
// text, sanitized and truncated, when there is any.
func withRelayMessage(cause error, body io.Reader) error {
	if msg := relayMessage(body); msg != "" {
		return fmt.Errorf("%w: relay says %q", cause, msg)
	}
	return cause
}

// relayMessage reads at most maxMessageRead bytes of an error body and
// returns its first line that has printable text, printable characters
// only, at most maxMessageLen bytes.
func relayMessage(body io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(body, maxMessageRead))
	text := strings.ToValidUTF8(string(b), "\uFFFD")
	var s string
	for line := range strings.FieldsFuncSeq(text, func(c rune) bool { return c == '\r' || c == '\n' }) {
		s = strings.TrimSpace(strings.Map(func(c rune) rune {
			if unicode.IsPrint(c) {
				return c
			}
			return -1
		}, line))
		if s != "" {
			break
		}
	}
	if len(s) > maxMessageLen {
		cut := maxMessageLen
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = strings.TrimRightFunc(s[:cut], unicode.IsSpace) + "…"
	}
	return s
}

// drainClose reads a little of what is left of body, so the connection can
// be reused, and closes it.
func drainClose(body io.ReadCloser) {
	_, _ = io.CopyN(io.Discard, body, maxDrain)
	_ = body.Close()
}

// NewRelayClient returns a Client over one Relay per URL, each built with
// relayOpts: the usual client for programs that only use HTTP relays,
// such as pkarrclient.NewRelayClient(pkarrclient.DefaultRelays()). An
// error about a URL names it by position ("relay 2 of 3").
func NewRelayClient(urls []string, relayOpts ...RelayOption) (*Client, error) {
	if len(urls) == 0 {
		return nil, errors.New("pkarr: no relay URL")
	}
	backends := make([]Backend, 0, len(urls))
	for i, u := range urls {
		r, err := NewRelay(u, relayOpts...)
		if err != nil {
			// By position, not by URL: a URL may carry a password,
			// and NewRelay's error shows what it safely can (for a
			// URL that does not parse, not even which one).
			return nil, fmt.Errorf("pkarr: relay %d of %d: %w", i+1, len(urls), err)
		}
		backends = append(backends, r)
	}
	return NewClient(backends)
}
