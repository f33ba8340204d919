package web

import (
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts the requests the pages answer. A nil *Metrics counts
// nothing.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics creates the web server's metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "helpdesk_http_requests_total",
			Help: "HTTP requests answered, by route (the pattern matched, \"other\" when none) and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "helpdesk_http_request_seconds",
			Help:    "Time to answer an HTTP request, by route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10, 60},
		}, []string{"route"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

// statusRecorder remembers the status a handler answered with.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (deadlines).
func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// count serves r through h and counts it under the route the mux matched
// (which it records on the request).
func (m *Metrics) count(h http.Handler, w http.ResponseWriter, r *http.Request) {
	if m == nil {
		h.ServeHTTP(w, r)
		return
	}
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w}
	h.ServeHTTP(rec, r)
	route := r.Pattern
	if route == "" || route == "/" {
		route = "other"
	}
	status := rec.status
	if status == 0 {
		status = http.StatusOK
	}
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
}

// DefaultMetricsAllow are the clients /metrics answers unless configured:
// the machine itself.
func DefaultMetricsAllow() []netip.Prefix {
	return []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
}

// metrics serves the Prometheus metrics to the allowed clients, and to
// others the page every unknown address gets. A request a proxy forwarded
// (it says so in X-Forwarded-For or Forwarded) from a proxy not trusted to
// name the client is refused: the proxy's own address says nothing.
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	ip, ok := s.clientAddr(r)
	peer, _ := peerAddr(r)
	forwarded := r.Header.Get("X-Forwarded-For") != "" || r.Header.Get("Forwarded") != ""
	allowed := ok && !(forwarded && !s.trusted(peer))
	if allowed {
		allowed = false
		for _, p := range s.metricsAllow {
			if p.Contains(ip) {
				allowed = true
				break
			}
		}
	}
	if !allowed || s.metricsHandler == nil {
		s.renderError(w, r, http.StatusNotFound, "error.page_not_found", s.locale(w, r))
		return
	}
	s.metricsHandler.ServeHTTP(w, r)
}
