package pkarrrelay

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric names, exported so dashboards and tests need not repeat strings.
const (
	MetricRequests        = "pkarr_relay_requests_total"
	MetricRequestDuration = "pkarr_relay_request_duration_seconds"
	MetricPacketsStored   = "pkarr_relay_packets_stored"
	MetricPutOutcomes     = "pkarr_relay_put_outcomes_total"
	MetricRateLimited     = "pkarr_relay_rate_limited_total"
	MetricUpstreamErrors  = "pkarr_relay_upstream_errors_total"
	// MetricUpstreamCalls counts what became of each upstream operation a
	// request wanted, labelled op (resolve, refresh, publish) and result:
	// hit, miss, error, shared, negative_cache_hit or budget_exhausted for
	// resolve and refresh; ok, conflict, error (each failed try, retried
	// or not) or dropped (the publish queue had no room) for publish. Only
	// hit, miss, error, ok and conflict are actual calls.
	MetricUpstreamCalls = "pkarr_relay_upstream_calls_total"
	// MetricUpstreamInFlight is the number of upstream calls running.
	MetricUpstreamInFlight = "pkarr_relay_upstream_in_flight"
	// MetricConnections is the number of connections a Server holds open;
	// MetricConnectionsRefused counts those it refused at a cap (labelled
	// reason: per_ip or total) and MetricConnectionsEvicted those it
	// closed, idle, to make room (see ServerMaxConns). They stay at zero
	// for a Handler that no Server runs.
	MetricConnections        = "pkarr_relay_connections"
	MetricConnectionsRefused = "pkarr_relay_connections_refused_total"
	MetricConnectionsEvicted = "pkarr_relay_connections_evicted_total"
)

// PUT outcome labels beyond the Store outcomes.
const (
	outcomeRejectedFuture = "rejected_future"
	outcomeBad            = "bad"
	outcomeTooLarge       = "too_large"
	outcomeError          = "error"
)

type metrics struct {
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	putOutcomes *prometheus.CounterVec
	rateLimited *prometheus.CounterVec
	upstreamErr *prometheus.CounterVec
	// upstreamCalls is MetricUpstreamCalls.
	upstreamCalls *prometheus.CounterVec

	connsOpen    prometheus.Gauge
	connsRefused *prometheus.CounterVec
	connsEvicted prometheus.Counter
}

// newMetrics registers the handler's metrics on reg; up is nil without an
// upstream.
func newMetrics(reg prometheus.Registerer, store Store, up *upstreamState) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricRequests,
			Help: "HTTP requests to the relay API, by method and status code.",
		}, []string{"method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: MetricRequestDuration,
			Help: "Time to answer relay API requests, by method.",
			// From a memory-store GET (tens of µs) through a bolt PUT
			// waiting for its batch's commit (milliseconds) to an upstream
			// call (seconds).
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"method"}),
		putOutcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricPutOutcomes,
			Help: "PUT requests by outcome: stored, unchanged, conflict, rejected_future, bad, too_large, error.",
		}, []string{"outcome"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricRateLimited,
			Help: "Requests refused with 429, by bucket (read or write).",
		}, []string{"bucket"}),
		upstreamErr: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricUpstreamErrors,
			Help: "Failed upstream calls, by operation (publish, resolve or refresh).",
		}, []string{"op"}),
		upstreamCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricUpstreamCalls,
			Help: "Upstream operations by op (resolve, refresh, publish) and result (hit, miss, error, shared, " +
				"negative_cache_hit, budget_exhausted, ok, conflict, dropped); shared, negative_cache_hit, " +
				"budget_exhausted and dropped made no call.",
		}, []string{"op", "result"}),
	}
	m.connsOpen = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: MetricConnections,
		Help: "Connections the relay's server holds open.",
	})
	m.connsRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricConnectionsRefused,
		Help: "Connections refused at a cap, by reason (per_ip or total).",
	}, []string{"reason"})
	m.connsEvicted = prometheus.NewCounter(prometheus.CounterOpts{
		Name: MetricConnectionsEvicted,
		Help: "Idle connections closed to make room for new ones.",
	})
	stored := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: MetricPacketsStored,
		Help: "Packets held by the relay's store.",
	}, func() float64 { return float64(store.Len()) })
	collectors := []prometheus.Collector{m.requests, m.duration, m.putOutcomes, m.rateLimited, m.upstreamErr, stored,
		m.connsOpen, m.connsRefused, m.connsEvicted}
	if up != nil {
		collectors = append(collectors, m.upstreamCalls, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: MetricUpstreamInFlight,
			Help: "Upstream calls running (lookups and publishes).",
		}, func() float64 { return float64(up.inFlight()) }))
	}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Pre-create the label sets a dashboard expects to see at zero.
	for _, o := range []string{PutStored.String(), PutUnchanged.String(), PutNotMostRecent.String(),
		outcomeRejectedFuture, outcomeBad, outcomeTooLarge, outcomeError} {
		m.putOutcomes.WithLabelValues(o)
	}
	m.rateLimited.WithLabelValues("read")
	m.rateLimited.WithLabelValues("write")
	m.connsRefused.WithLabelValues("per_ip")
	m.connsRefused.WithLabelValues("total")
	if up != nil {
		for _, r := range []string{resultHit, resultMiss, resultError, resultShared, resultBudget} {
			m.upstreamCalls.WithLabelValues(opResolve, r)
			m.upstreamCalls.WithLabelValues(opRefresh, r)
		}
		m.upstreamCalls.WithLabelValues(opResolve, resultNegative)
		for _, r := range []string{resultOK, resultConflict, resultError, resultDropped} {
			m.upstreamCalls.WithLabelValues(opPublish, r)
		}
	}
	return m, nil
}

// methodLabel bounds the method label to the methods the API knows, so a
// client inventing methods cannot create unbounded time series.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodOptions:
		return method
	}
	return "other"
}

func (m *metrics) observe(method string, code int, d time.Duration) {
	label := methodLabel(method)
	m.requests.WithLabelValues(label, strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(label).Observe(d.Seconds())
}
