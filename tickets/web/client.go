package web

import (
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/text/language"
	"golang.org/x/time/rate"

	"github.com/helpdeskgw/helpdesk/templates"
	"github.com/helpdeskgw/helpdesk/tickets"
)

// Cookies the site sets.
const (
	langCookie    = "lang"
	sessionCookie = "helpdesk_session"
	// Over HTTPS the session cookie carries the __Host- prefix: browsers
	// then refuse it unless it is Secure, for this host alone and for the
	// whole site, so a sibling subdomain cannot plant one.
	secureSessionCookie = "__Host-" + sessionCookie
)

// localeMatcher picks one of the page languages from Accept-Language.
var localeMatcher = language.NewMatcher([]language.Tag{language.Spanish, language.English})

// locale is the language to show a page in: the one just chosen with
// ?lang= (remembered in a cookie), else the one chosen before, else the
// browser's, else the default.
func (s *Server) locale(w http.ResponseWriter, r *http.Request) string {
	l, _ := s.visitorLocale(w, r)
	return l
}

// visitorLocale is locale, and whether the visitor stated it (by choice or
// through the browser) rather than it being the default.
func (s *Server) visitorLocale(w http.ResponseWriter, r *http.Request) (string, bool) {
	if l := r.URL.Query().Get("lang"); tickets.ValidLocale(l) {
		http.SetCookie(w, &http.Cookie{Name: langCookie, Value: l, Path: "/", MaxAge: 365 * 24 * 3600,
			HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: s.secure(r)})
		return l, true
	}
	if c, err := r.Cookie(langCookie); err == nil && tickets.ValidLocale(c.Value) {
		return c.Value, true
	}
	tags, _, _ := language.ParseAcceptLanguage(r.Header.Get("Accept-Language"))
	_, i, conf := localeMatcher.Match(tags...)
	if len(tags) == 0 || conf == language.No {
		return templates.DefaultLocale, false
	}
	return []string{tickets.LocaleSpanish, tickets.LocaleEnglish}[i], true
}

// secure reports whether the visitor reached us over HTTPS: directly, by
// way of a trusted proxy that says so, or by the configured base URL.
func (s *Server) secure(r *http.Request) bool {
	if r.TLS != nil || s.httpsBase {
		return true
	}
	if peer, ok := peerAddr(r); ok && s.trusted(peer) {
		protos := r.Header.Values("X-Forwarded-Proto")
		if len(protos) > 0 {
			last := protos[len(protos)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			return strings.EqualFold(strings.TrimSpace(last), "https")
		}
	}
	return false
}

func (s *Server) sessionCookieName(r *http.Request) string {
	if s.secure(r) {
		return secureSessionCookie
	}
	return sessionCookie
}

// sessionID is the visitor's session cookie, or "".
func (s *Server) sessionID(r *http.Request) string {
	if c, err := r.Cookie(s.sessionCookieName(r)); err == nil {
		return c.Value
	}
	return ""
}

// setSession gives the visitor the session's cookie. It lasts until the
// browser is closed; the session itself ends earlier when unused.
func (s *Server) setSession(w http.ResponseWriter, r *http.Request, id string) {
	http.SetCookie(w, &http.Cookie{Name: s.sessionCookieName(r), Value: id, Path: "/",
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: s.secure(r)})
}

func peerAddr(r *http.Request) (netip.Addr, bool) {
	addr, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, false
	}
	return addr.Addr().Unmap(), true
}

// clientKey names the client a request comes from, for rate limits: its
// address (the one X-Forwarded-For gives when the peer is a trusted proxy),
// and for IPv6 its /64, which one host usually has whole.
func (s *Server) clientKey(r *http.Request) string {
	ip, ok := s.clientAddr(r)
	if !ok {
		return r.RemoteAddr
	}
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// clientAddr is the address a request comes from: the peer's, or the one
// X-Forwarded-For gives when the peer is a trusted proxy.
func (s *Server) clientAddr(r *http.Request) (netip.Addr, bool) {
	ip, ok := peerAddr(r)
	if !ok {
		return ip, false
	}
	if s.trusted(ip) {
		// The last address not of a trusted proxy is the client's; the
		// ones before it are the client's own say.
		hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
		for i := len(hops) - 1; i >= 0; i-- {
			hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
			if err != nil {
				break
			}
			ip = hop.Unmap()
			if !s.trusted(ip) {
				break
			}
		}
	}
	return ip, true
}

func (s *Server) trusted(ip netip.Addr) bool {
	for _, p := range s.proxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// limiter keeps a token bucket per key (a client, a tracking ID). A bucket
// that has filled up again is dropped: a new one is the same.
type limiter struct {
	limit rate.Limit
	burst int

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
	swept   time.Time
}

func newLimiter(limit rate.Limit, burst int) *limiter {
	return &limiter{limit: limit, burst: burst, buckets: map[string]*rate.Limiter{}, swept: time.Now()}
}

func (l *limiter) bucket(key string, now time.Time) *rate.Limiter {
	if now.Sub(l.swept) > time.Minute {
		for k, b := range l.buckets {
			if b.TokensAt(now) >= float64(l.burst) {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	b, ok := l.buckets[key]
	if !ok {
		b = rate.NewLimiter(l.limit, l.burst)
		l.buckets[key] = b
	}
	return b
}

// take spends one event of key's budget, if there is one left, before the
// work it guards: requests in flight at the same time cannot all pass on
// the same budget. refund gives the event back, for outcomes that should
// not count (a successful lookup, a failure on our side).
func (l *limiter) take(key string) (refund func(), ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	res := l.bucket(key, now).ReserveN(now, 1)
	if !res.OK() || res.DelayFrom(now) > 0 {
		res.CancelAt(now)
		return func() {}, false
	}
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		// At the time of the reservation: rate treats a reservation whose
		// time has passed as used and would restore nothing.
		res.CancelAt(now)
	}, true
}

// allow spends one event of key's budget if there is one left.
func (l *limiter) allow(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	return l.bucket(key, now).AllowN(now, 1)
}
