package pkarrrelay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/phrasemeet/discovery/pkarrclient"
	"github.com/prometheus/client_golang/prometheus"
)

// PayloadContentType is the media type of relay payloads in GET answers.
const PayloadContentType = "application/pkarr.org/relays#payload"

// HeaderDHTStoredNodes carries, in a PUT's answer, how many DHT nodes the
// upstream stored the packet on (pkarr relays since version 7 send it).
// This relay publishes after answering, so it reports the last publish of
// the same packet: the header comes with a republish, not with a packet's
// first PUT (see WithUpstream).
const HeaderDHTStoredNodes = "Pkarr-Dht-Stored-Nodes"

// Header values that never change, as ready-made slices so the GET path does
// not allocate them per request. The three-index slices make any append by
// a later wrapper copy instead of writing into the shared array.
var (
	hdrContentType  = []string{PayloadContentType}[:1:1]
	hdrAllowOrigin  = []string{"*"}[:1:1]
	hdrAllowMethods = []string{"GET, HEAD, PUT, OPTIONS"}[:1:1]
	hdrExpose       = []string{"Retry-After, " + HeaderDHTStoredNodes}[:1:1]
)

// Handler serves the pkarr relay API from a Store:
//
//	PUT     <base>/<key>   store a relay payload (204, 400, 409, 413, 429)
//	GET     <base>/<key>   fetch it (200, 304, 400, 404, 429)
//	HEAD    <base>/<key>   as GET, without the body
//	OPTIONS <base>/<key>   CORS preflight (204)
//	GET     <base>         a short text page about the relay
//
// where <key> is a public key in z-base-32. With an upstream (see
// WithUpstream) a GET may also answer 502, 503 (with Retry-After when the
// upstream budget is spent) or 504; a PUT does not wait for the upstream.
//
// A Handler is safe for concurrent use. Without an upstream it holds no
// goroutines; with one it runs upstream lookups and publishes in the
// background until Close. The Store's lifetime belongs to the caller.
type Handler struct {
	cfg       handlerConfig
	store     Store
	metrics   *metrics
	gatherer  prometheus.Gatherer
	writeLim  *limiterTable // nil when writes are unlimited
	readLim   *limiterTable // nil when reads are unlimited
	keyPrefix string        // base path with a trailing slash
	started   time.Time
	up        *upstreamState // nil without an upstream
}

// NewHandler returns a Handler serving store. It fails with an error
// matching ErrInvalidConfig for a bad option, or with the registry's error if
// the metrics cannot be registered (for example twice on one registry).
func NewHandler(store Store, opts ...Option) (*Handler, error) {
	if store == nil {
		return nil, fmt.Errorf("%w: nil store", ErrInvalidConfig)
	}
	cfg := defaultHandlerConfig()
	for _, opt := range opts {
		if opt == nil { // lets callers build option lists conditionally
			continue
		}
		if err := opt(&cfg); err != nil {
			return nil, err
		}
	}
	h := &Handler{cfg: cfg, store: store, started: cfg.clock.Now()}
	h.keyPrefix = cfg.basePath
	if !strings.HasSuffix(h.keyPrefix, "/") {
		h.keyPrefix += "/"
	}
	reg := cfg.registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	h.gatherer, _ = reg.(prometheus.Gatherer)
	if cfg.upstream != nil {
		h.up = newUpstreamState(&cfg)
	}
	m, err := newMetrics(reg, store, h.up)
	if err != nil {
		return nil, fmt.Errorf("pkarrrelay: registering metrics: %w", err)
	}
	h.metrics = m
	if cfg.write.enabled() {
		if h.writeLim, err = newLimiterTable(cfg.write, cfg.tableSize); err != nil {
			return nil, err
		}
	}
	if cfg.read.enabled() {
		if h.readLim, err = newLimiterTable(cfg.read, cfg.tableSize); err != nil {
			return nil, err
		}
	}
	// Last: from here on the Handler holds goroutines until Close.
	if h.up != nil {
		u := h.up
		u.pub = newPublisher(publisherConfig{
			backend: cfg.upstream,
			clock:   cfg.clock,
			workers: cfg.pubWorkers,
			maxKeys: cfg.pubQueue,
			retries: cfg.pubRetries,
			backoff: cfg.pubBackoff,
			timeout: cfg.pubTimeout,
			acquire: func(ctx context.Context) (func(), error) { return u.acquireWait(ctx, cfg.clock) },
			report:  h.publishDone,
		})
	}
	return h, nil
}

// BasePath returns the path the API is mounted under, such as "/" or
// "/pkarr" (never with a trailing slash, except "/").
func (h *Handler) BasePath() string { return h.cfg.basePath }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := h.cfg.clock.Now()
	code := h.route(w, r)
	elapsed := h.cfg.clock.Since(start)
	h.metrics.observe(r.Method, code, elapsed)
	if h.cfg.logger.Enabled(r.Context(), slog.LevelDebug) {
		h.cfg.logger.LogAttrs(r.Context(), slog.LevelDebug, "pkarr relay request",
			slog.String("method", r.Method),
			slog.String("path", truncate(r.URL.Path, 120)),
			slog.Int("status", code),
			slog.String("client", clientAddr(r, h.cfg.trusted).String()),
			slog.Duration("duration", elapsed))
	}
}

// route dispatches a request and returns the status code it answered with,
// which saves wrapping every ResponseWriter to learn it.
func (h *Handler) route(w http.ResponseWriter, r *http.Request) int {
	path := r.URL.Path
	base := h.cfg.basePath
	if path == base || path == h.keyPrefix {
		return h.index(w, r)
	}
	key, ok := strings.CutPrefix(path, h.keyPrefix)
	if !ok || key == "" || strings.Contains(key, "/") {
		return fail(w, http.StatusNotFound, "not found")
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return h.get(w, r, key)
	case http.MethodPut:
		return h.put(w, r, key)
	case http.MethodOptions:
		return preflight(w, r)
	}
	setCORS(w.Header())
	w.Header().Set("Allow", "GET, HEAD, PUT, OPTIONS")
	return fail(w, http.StatusMethodNotAllowed, "method not allowed")
}

func (h *Handler) index(w http.ResponseWriter, r *http.Request) int {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions:
		return preflight(w, r)
	default:
		setCORS(w.Header())
		w.Header().Set("Allow", "GET, HEAD, OPTIONS")
		return fail(w, http.StatusMethodNotAllowed, "method not allowed")
	}
	if code, limited := h.limit(w, r, h.readLim, "read"); limited {
		return code
	}
	uptime := h.cfg.clock.Since(h.started).Truncate(time.Second)
	body := fmt.Sprintf("pkarr relay\nsoftware: phrasemeet pkarrrelay\nversion: %s\npackets: %d\nuptime: %s\n"+
		"usage: PUT or GET %s<z-base-32 public key>\n",
		h.cfg.version, h.store.Len(), uptime, h.keyPrefix)
	hdr := w.Header()
	setCORS(hdr)
	hdr.Set("Content-Type", "text/plain; charset=utf-8")
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	hdr.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		io.WriteString(w, body)
	}
	return http.StatusOK
}

// get answers GET and HEAD for one key.
func (h *Handler) get(w http.ResponseWriter, r *http.Request, keyText string) int {
	if code, limited := h.limit(w, r, h.readLim, "read"); limited {
		return code
	}
	// Only the z-base-32 decoding here, not the curve-point check: a key the
	// store knows was verified when its packet was stored, and the point
	// check costs as much as the rest of a GET. Misses get the full check
	// below, so a malformed key is still 400, not 404.
	key, ok := decodeKeyText(keyText)
	if !ok {
		return fail(w, http.StatusBadRequest, "invalid public key")
	}
	ctx := r.Context()
	rec, err := h.store.Get(ctx, key)
	switch {
	case err == nil:
		if h.up != nil {
			h.refreshIfStale(ctx, key, &rec)
		}
	case errors.Is(err, ErrNotFound):
		if _, err := pkarrclient.PublicKeyFromBytes(key[:]); err != nil {
			return fail(w, http.StatusBadRequest, "invalid public key")
		}
		if h.up == nil {
			return fail(w, http.StatusNotFound, "not found")
		}
		var code int
		if rec, code = h.resolve(ctx, w, key); code != 0 {
			return code
		}
	default:
		return h.storeFailure(ctx, w, "get", key, err)
	}
	return h.writeRecord(w, r, &rec)
}

// writeRecord answers 200 (or 304) with a stored packet.
func (h *Handler) writeRecord(w http.ResponseWriter, r *http.Request, rec *Record) int {
	hdr := w.Header()
	setCORS(hdr)
	hdr["Content-Type"] = hdrContentType
	ttl := h.clampTTL(rec.TTL)
	hdr["Cache-Control"] = []string{"public, max-age=" + strconv.FormatUint(uint64(ttl), 10)}
	if lm, ok := httpDate(rec.Timestamp); ok {
		hdr["Last-Modified"] = []string{lm}
	}
	if notModified(r.Header["If-Modified-Since"], rec.Timestamp) {
		w.WriteHeader(http.StatusNotModified)
		return http.StatusNotModified
	}
	hdr["Content-Length"] = []string{strconv.Itoa(len(rec.Payload))}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(rec.Payload)
	}
	return http.StatusOK
}

// notModified reports whether an If-Modified-Since header covers a packet
// stamped ts. HTTP dates have whole seconds, and Last-Modified shows the
// packet's second (rounded down), so the packet's time is compared at that
// resolution too, as net/http and pkarr-relay do: a client echoing
// Last-Modified revalidates with 304. The price is that a second packet
// stamped within the same second as the header is not sent; pkarr writers
// rarely change a key twice in one second, and the next GET without the
// header (or after the client's cache expires) gets it. A header that does
// not parse is ignored, as RFC 9110 asks.
func notModified(values []string, ts pkarrclient.Timestamp) bool {
	if len(values) == 0 {
		return false
	}
	t, err := http.ParseTime(values[0])
	if err != nil {
		return false
	}
	sec := t.Unix()
	return sec >= 0 && uint64(ts)/1e6 <= uint64(sec)
}

// httpDate formats ts for Last-Modified. Timestamps beyond year 9999 have no
// HTTP date; the header is then left out.
func httpDate(ts pkarrclient.Timestamp) (string, bool) {
	if uint64(ts) > math.MaxInt64 {
		return "", false
	}
	t := time.UnixMicro(int64(ts)).UTC()
	if t.Year() > 9999 {
		return "", false
	}
	return t.Format(http.TimeFormat), true
}

// put stores one packet.
func (h *Handler) put(w http.ResponseWriter, r *http.Request, keyText string) int {
	if code, limited := h.limit(w, r, h.writeLim, "write"); limited {
		return code
	}
	if r.ContentLength > pkarrclient.MaxPayloadSize {
		h.countPut(outcomeTooLarge)
		return fail(w, http.StatusRequestEntityTooLarge, "payload larger than 1072 bytes")
	}
	key, ok := decodeKeyText(keyText)
	if ok {
		_, err := pkarrclient.PublicKeyFromBytes(key[:])
		ok = err == nil
	}
	if !ok {
		h.countPut(outcomeBad)
		return fail(w, http.StatusBadRequest, "invalid public key")
	}
	// One byte more than the limit tells "exactly full" from "too large";
	// MaxBytesReader also makes the server close the connection instead of
	// draining an oversized body.
	buf := make([]byte, pkarrclient.MaxPayloadSize+1)
	n, err := io.ReadFull(http.MaxBytesReader(w, r.Body, pkarrclient.MaxPayloadSize), buf)
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge) || err == nil:
		h.countPut(outcomeTooLarge)
		return fail(w, http.StatusRequestEntityTooLarge, "payload larger than 1072 bytes")
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
	default:
		h.countPut(outcomeBad)
		return fail(w, http.StatusBadRequest, "could not read body")
	}
	ctx := r.Context()
	p, err := pkarrclient.ParseRelayPayload(key, buf[:n])
	if err != nil {
		h.countPut(outcomeBad)
		return fail(w, http.StatusBadRequest, packetErrorText(err))
	}
	if h.tooFarAhead(p.Timestamp()) {
		h.countPut(outcomeRejectedFuture)
		return fail(w, http.StatusBadRequest, "timestamp too far in the future")
	}
	outcome, err := h.store.Put(ctx, p)
	if err != nil {
		h.countPut(outcomeError)
		return h.storeFailure(ctx, w, "put", key, err)
	}
	h.countPut(outcome.String())
	if outcome == PutNotMostRecent {
		return fail(w, http.StatusConflict, "a more recent packet is stored")
	}
	if h.up != nil {
		h.noteStored(p)
		h.publish(ctx, w, p)
	}
	setCORS(w.Header())
	w.WriteHeader(http.StatusNoContent)
	return http.StatusNoContent
}

// tooFarAhead reports whether ts is beyond the relay's clock plus the margin.
func (h *Handler) tooFarAhead(ts pkarrclient.Timestamp) bool {
	return ts > pkarrclient.TimestampFromTime(h.cfg.clock.Now().Add(h.cfg.futureMargin))
}

func (h *Handler) countPut(outcome string) {
	h.metrics.putOutcomes.WithLabelValues(outcome).Inc()
}

// limit applies a rate limiter; when it refuses, it answers 429 (and
// closes the connection) and returns true.
func (h *Handler) limit(w http.ResponseWriter, r *http.Request, table *limiterTable, kind string) (int, bool) {
	if table == nil {
		return 0, false
	}
	ok, wait := table.allow(clientAddr(r, h.cfg.trusted), h.cfg.clock.Now())
	if ok {
		return 0, false
	}
	h.metrics.rateLimited.WithLabelValues(kind).Inc()
	w.Header().Set("Retry-After", strconv.FormatInt(retryAfterSeconds(wait), 10))
	// A client told to wait has no use for its connection meanwhile, and
	// one that does not wait should pay a handshake per request: net/http
	// closes the connection after this answer instead of keeping it idle.
	w.Header().Set("Connection", "close")
	return fail(w, http.StatusTooManyRequests, "rate limited"), true
}

// storeFailure answers a store error: 503 once the store is closed (the
// relay is shutting down), 500 otherwise.
func (h *Handler) storeFailure(ctx context.Context, w http.ResponseWriter, op string, key pkarrclient.PublicKey, err error) int {
	if errors.Is(err, ErrClosed) {
		return fail(w, http.StatusServiceUnavailable, "relay is shutting down")
	}
	if ctx.Err() == nil { // a client that went away is not the store's fault
		h.cfg.logger.LogAttrs(ctx, slog.LevelWarn, "pkarr relay: store failed",
			slog.String("op", op), slog.String("key", key.String()), slog.Any("err", err))
	}
	return fail(w, http.StatusInternalServerError, "storage error")
}

// packetErrorText turns a verification error into a short client message
// that does not echo input.
func packetErrorText(err error) string {
	switch {
	case errors.Is(err, pkarrclient.ErrPacketTooShort):
		return "payload too short"
	case errors.Is(err, pkarrclient.ErrBadSignature):
		return "bad signature"
	case errors.Is(err, pkarrclient.ErrInvalidDNS):
		return "invalid DNS message"
	}
	return "invalid packet"
}

// decodeKeyText decodes a z-base-32 key without checking that it is a curve
// point.
func decodeKeyText(s string) (pkarrclient.PublicKey, bool) {
	var key pkarrclient.PublicKey
	if len(s) != 52 {
		return key, false
	}
	b, err := pkarrclient.DecodeZBase32(s)
	if err != nil || len(b) != len(key) {
		return key, false
	}
	copy(key[:], b)
	return key, true
}

// preflightHeaders are allowed when a preflight asks for none we can echo:
// what pkarr clients send, Cache-Control included (pkarr 7's client sends
// it on NetworkOnly resolves, and it is not CORS-safelisted).
const preflightHeaders = "Content-Type, If-Modified-Since, Cache-Control"

// preflight answers a CORS preflight. It allows the headers the browser
// asks for, as pkarr-relay does: the API uses no credentials, so no request
// header needs to be kept from a page. The echo is limited to well-formed
// header-name lists, so nothing hostile lands in a response header.
func preflight(w http.ResponseWriter, r *http.Request) int {
	hdr := w.Header()
	setCORS(hdr)
	allow := preflightHeaders
	if req := r.Header.Get("Access-Control-Request-Headers"); req != "" && len(req) <= 512 && isHeaderList(req) {
		allow = req
	}
	hdr.Set("Access-Control-Allow-Headers", allow)
	hdr.Set("Access-Control-Max-Age", "86400")
	w.WriteHeader(http.StatusNoContent)
	return http.StatusNoContent
}

// isHeaderList reports whether s is a comma-separated list of HTTP header
// names (RFC 9110 tokens), optionally with spaces.
func isHeaderList(s string) bool {
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			return false
		}
		for i := 0; i < len(name); i++ {
			if !isTokenChar(name[i]) {
				return false
			}
		}
	}
	return true
}

func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// setCORS marks a response readable by any web page. Errors carry it too, so
// a browser client can tell a 409 or a 429 from a network failure.
func setCORS(hdr http.Header) {
	hdr["Access-Control-Allow-Origin"] = hdrAllowOrigin
	hdr["Access-Control-Allow-Methods"] = hdrAllowMethods
	hdr["Access-Control-Expose-Headers"] = hdrExpose
}

// fail answers with a one-line plain-text error.
func fail(w http.ResponseWriter, code int, msg string) int {
	setCORS(w.Header())
	http.Error(w, msg, code)
	return code
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
