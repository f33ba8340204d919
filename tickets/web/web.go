// Package web is the web face of the ticket store: the customer's ticket
// page reached through a mailed link, attachment downloads, and the health
// endpoints.
package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/text/language"
	"golang.org/x/time/rate"

	"github.com/helpdeskgw/helpdesk/templates"
	"github.com/helpdeskgw/helpdesk/tickets"
)

// ticketStore is what the pages need of the store.
type ticketStore interface {
	Ping(ctx context.Context) error
	TicketByToken(ctx context.Context, token string, scope tickets.Scope) (tickets.Ticket, error)
	Thread(ctx context.Context, ticketID int64, withInternal bool) ([]tickets.Message, error)
	Attachment(ctx context.Context, ticketID, attachmentID int64) (tickets.Attachment, error)
	WriteBlob(ctx context.Context, sum []byte, w io.Writer) error
}

// Options configures the handler.
type Options struct {
	Store     ticketStore
	Templates *templates.Set
	Logger    *slog.Logger
	// Ready reports whether the service can serve (database reachable,
	// schema current); /readyz answers 503 with its error otherwise.
	Ready func(ctx context.Context) error
	// TokenRate is how many failed token lookups a client may make per
	// minute. Default: 30.
	TokenRate int
	// TrustedProxies are the reverse proxies whose X-Forwarded-For names
	// the client; without them every visitor behind a proxy would share
	// one rate limit.
	TrustedProxies []netip.Prefix
}

// Server serves the pages.
type Server struct {
	store   ticketStore
	tmpl    *templates.Set
	log     *slog.Logger
	ready   func(ctx context.Context) error
	limiter *clientLimiter
	proxies []netip.Prefix
	mux     *http.ServeMux
}

// New returns the web server's handler.
func New(opts Options) *Server {
	s := &Server{store: opts.Store, tmpl: opts.Templates, log: opts.Logger, ready: opts.Ready, proxies: opts.TrustedProxies}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.ready == nil {
		s.ready = opts.Store.Ping
	}
	perMinute := opts.TokenRate
	if perMinute <= 0 {
		perMinute = 30
	}
	s.limiter = newClientLimiter(rate.Limit(float64(perMinute)/60), perMinute)
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.HandleFunc("GET /t/{token}", s.ticketPage)
	s.mux.HandleFunc("GET /t/{token}/attachments/{id}", s.attachment)
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	s.mux.ServeHTTP(w, r)
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := s.ready(ctx); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "not ready:", err)
		return
	}
	fmt.Fprintln(w, "ready")
}

// ticketByToken resolves the token of the request, answering the request
// itself when it cannot.
func (s *Server) ticketByToken(w http.ResponseWriter, r *http.Request) (tickets.Ticket, bool) {
	locale := requestLocale(r)
	// Only failures count: a customer opening their links is never held
	// back, while someone trying tokens soon is.
	client := s.clientKey(r)
	if !s.limiter.ok(client) {
		w.Header().Set("Retry-After", "60")
		s.renderError(w, r, http.StatusTooManyRequests, "error.rate_limited", locale)
		return tickets.Ticket{}, false
	}
	t, err := s.store.TicketByToken(r.Context(), r.PathValue("token"), tickets.ScopeTicket)
	if errors.Is(err, tickets.ErrNotFound) || errors.Is(err, tickets.ErrExpired) {
		s.limiter.failed(client)
	}
	switch {
	case err == nil:
		return t, true
	case errors.Is(err, tickets.ErrNotFound):
		s.renderError(w, r, http.StatusNotFound, "error.not_found", locale)
	case errors.Is(err, tickets.ErrExpired):
		s.renderError(w, r, http.StatusGone, "error.expired", locale)
	default:
		s.log.Error("look up token", "err", err)
		s.renderError(w, r, http.StatusInternalServerError, "error.internal", locale)
	}
	return t, false
}

type ticketPage struct {
	Ticket         tickets.Ticket
	Messages       []tickets.Message
	AttachmentBase string
}

func (s *Server) ticketPage(w http.ResponseWriter, r *http.Request) {
	t, ok := s.ticketByToken(w, r)
	if !ok {
		return
	}
	msgs, err := s.store.Thread(r.Context(), t.ID, false)
	if err != nil {
		s.log.Error("read thread", "ticket", t.TrackingID, "err", err)
		s.renderError(w, r, http.StatusInternalServerError, "error.internal", t.Locale)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	s.render(w, r, http.StatusOK, templates.PageTicket, t.Locale, ticketPage{
		Ticket: t, Messages: msgs, AttachmentBase: "/t/" + r.PathValue("token") + "/attachments/",
	})
}

// attachment serves a file as a download, never inline: a customer's HTML or
// SVG must not run in our origin.
func (s *Server) attachment(w http.ResponseWriter, r *http.Request) {
	t, ok := s.ticketByToken(w, r)
	if !ok {
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		s.renderError(w, r, http.StatusNotFound, "error.not_found", t.Locale)
		return
	}
	a, err := s.store.Attachment(r.Context(), t.ID, id)
	if errors.Is(err, tickets.ErrNotFound) {
		s.renderError(w, r, http.StatusNotFound, "error.not_found", t.Locale)
		return
	}
	if err != nil {
		s.log.Error("read attachment", "ticket", t.TrackingID, "attachment", id, "err", err)
		s.renderError(w, r, http.StatusInternalServerError, "error.internal", t.Locale)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	disposition := mime.FormatMediaType("attachment", map[string]string{"filename": a.Filename})
	if disposition == "" { // a name FormatMediaType cannot express
		disposition = "attachment"
	}
	h.Set("Content-Disposition", disposition)
	h.Set("Content-Length", strconv.FormatInt(a.Size, 10))
	h.Set("Cache-Control", "private, no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	if err := s.store.WriteBlob(r.Context(), a.SHA256, w); err != nil {
		// Headers are gone; the client sees a short body and gives up.
		s.log.Error("send attachment", "ticket", t.TrackingID, "attachment", id, "err", err)
	}
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, page, locale string, data any) {
	var b strings.Builder
	if err := s.tmpl.RenderPage(&b, page, locale, data); err != nil {
		s.log.Error("render page", "page", page, "path", r.URL.Path, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, b.String()) //nolint:errcheck // the client went away
}

type errorPage struct{ Message string }

func (s *Server) renderError(w http.ResponseWriter, r *http.Request, status int, message, locale string) {
	s.render(w, r, status, templates.PageError, locale, errorPage{Message: message})
}

// localeMatcher picks one of the page languages from Accept-Language.
var localeMatcher = language.NewMatcher([]language.Tag{language.Spanish, language.English})

// requestLocale is the language a request asks for, where no ticket says.
func requestLocale(r *http.Request) string {
	tags, _, _ := language.ParseAcceptLanguage(r.Header.Get("Accept-Language"))
	_, i, conf := localeMatcher.Match(tags...)
	if conf == language.No {
		return templates.DefaultLocale
	}
	return []string{"es", "en"}[i]
}

// clientKey names the client a request comes from, for rate limits: its
// address (the one X-Forwarded-For gives when the peer is a trusted proxy),
// and for IPv6 its /64, which one host usually has whole.
func (s *Server) clientKey(r *http.Request) string {
	addr, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	ip := addr.Addr().Unmap()
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
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

func (s *Server) trusted(ip netip.Addr) bool {
	for _, p := range s.proxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// clientLimiter keeps a token bucket per client; buckets unused for ten
// minutes are dropped.
type clientLimiter struct {
	limit rate.Limit
	burst int

	mu      sync.Mutex
	clients map[string]*clientBucket
	swept   time.Time
}

type clientBucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newClientLimiter(limit rate.Limit, burst int) *clientLimiter {
	return &clientLimiter{limit: limit, burst: burst, clients: map[string]*clientBucket{}, swept: time.Now()}
}

func (l *clientLimiter) bucket(client string, now time.Time) *clientBucket {
	if now.Sub(l.swept) > time.Minute {
		for k, b := range l.clients {
			if now.Sub(b.seen) > 10*time.Minute {
				delete(l.clients, k)
			}
		}
		l.swept = now
	}
	b, ok := l.clients[client]
	if !ok {
		b = &clientBucket{lim: rate.NewLimiter(l.limit, l.burst)}
		l.clients[client] = b
	}
	b.seen = now
	return b
}

// ok reports whether the client may try a lookup now.
func (l *clientLimiter) ok(client string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	return l.bucket(client, now).lim.TokensAt(now) >= 1
}

// failed counts a failed lookup against the client.
func (l *clientLimiter) failed(client string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	l.bucket(client, now).lim.AllowN(now, 1)
}
