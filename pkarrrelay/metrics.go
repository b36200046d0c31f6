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
}

func newMetrics(reg prometheus.Registerer, store Store) (*metrics, error) {
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
			Help: "Failed upstream calls, by operation (publish or resolve).",
		}, []string{"op"}),
	}
	stored := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: MetricPacketsStored,
		Help: "Packets held by the relay's store.",
	}, func() float64 { return float64(store.Len()) })
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.putOutcomes, m.rateLimited, m.upstreamErr, stored} {
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
