package web

import (
	"net/http"
	"net/netip"
	"testing"
)

// /metrics answers the allowed clients only: by their address, or the one
// a trusted proxy names; a request forwarded by a proxy not trusted to name
// the client gets the page any unknown address gets.
func TestMetricsOnlyForAllowedClients(t *testing.T) {
	served := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("metrics\n")) }) //nolint:errcheck // test
	for _, tc := range []struct {
		name    string
		opts    Options
		forward string
		want    int
	}{
		{"loopback by default", Options{MetricsHandler: served}, "", 200},
		{"no handler", Options{}, "", 404},
		{"not in the list", Options{MetricsHandler: served, MetricsAllow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, "", 404},
		{"forwarded by an untrusted proxy", Options{MetricsHandler: served}, "127.0.0.1", 404},
		{"trusted proxy names an outsider", Options{MetricsHandler: served, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, "203.0.113.7", 404},
		{"trusted proxy names an allowed client", Options{MetricsHandler: served, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
			MetricsAllow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, "10.1.2.3", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSite(t, tc.opts)
			v := s.visitor(t)
			if tc.forward != "" {
				v.header.Set("X-Forwarded-For", tc.forward)
			}
			p := v.get("/metrics")
			if p.status != tc.want || (tc.want == 200) != (p.body == "metrics\n") {
				t.Errorf("GET /metrics: %d %q, want %d", p.status, p.body, tc.want)
			}
		})
	}
}
