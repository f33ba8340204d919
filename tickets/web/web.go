// Package web is the customer's web portal, the web face of the ticket
// store: the home page, submitting a ticket, finding one by tracking ID and
// address (or having the list mailed), the ticket's page with its thread,
// replies, attachments and status, and the health endpoints; and the
// staff's pages under /staff: the queue, tickets with their answers,
// notes and changes, and the administration.
package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/helpdeskgw/helpdesk/templates"
	"github.com/helpdeskgw/helpdesk/tickets"
)

// portalStore is what the pages need of the store.
type portalStore interface {
	Ping(ctx context.Context) error
	Departments(ctx context.Context) ([]tickets.Department, error)
	SubmitTicket(ctx context.Context, in tickets.WebTicket) (tickets.Submitted, error)
	LookupTicket(ctx context.Context, trackingID, email string) (tickets.Ticket, error)
	TicketByToken(ctx context.Context, token string, scope tickets.Scope) (tickets.Ticket, error)
	OpenSession(ctx context.Context, oldID string, g tickets.Grant, idle time.Duration) (string, error)
	SessionTicket(ctx context.Context, sessionID, trackingID string, idle time.Duration) (tickets.Ticket, error)
	Thread(ctx context.Context, ticketID int64, withInternal bool) ([]tickets.Message, error)
	Attachment(ctx context.Context, ticketID, attachmentID int64) (tickets.Attachment, error)
	WriteBlob(ctx context.Context, sum []byte, w io.Writer) error
	ReplyByCustomer(ctx context.Context, ticketID int64, r tickets.CustomerReply) error
	ResolveByCustomer(ctx context.Context, ticketID int64) error
	ReopenByCustomer(ctx context.Context, ticketID int64) error
	QueueReminder(ctx context.Context, email, pageLocale string) (bool, error)
	DraftByToken(ctx context.Context, token string) (tickets.Ticket, tickets.Draft, error)
	HeldDrafts(ctx context.Context, ticketID int64) ([]tickets.Draft, error)
	DraftFile(ctx context.Context, ticketID, draftID int64, position int) (tickets.DraftAttachment, error)
	PostDraft(ctx context.Context, ticketID, draftID int64, text string, keep []int) error
	DiscardDraft(ctx context.Context, ticketID, draftID int64) error
	kbStore
}

// kbStore is what the knowledge base's public pages, the submit form's
// suggestions and the ticket page's "this article solved it" need.
type kbStore interface {
	PublishedArticles(ctx context.Context, language string) ([]tickets.Article, error)
	PublishedArticle(ctx context.Context, department, language, slug string) (tickets.Article, error)
	SearchArticles(ctx context.Context, query, language string, limit int) ([]tickets.ArticleHit, error)
	SuggestArticles(ctx context.Context, text, language, department string, limit int) ([]tickets.ArticleHit, error)
	ArticlesForTicket(ctx context.Context, ticketID int64, limit int) ([]tickets.ArticleHit, error)
	CountArticles(ctx context.Context, event tickets.ArticleEvent, ids []int64) error
	ResolveByArticle(ctx context.Context, ticketID, articleID int64) error
}

// store is what the customer's and the staff's pages need of the store.
type store interface {
	portalStore
	staffStore
}

// Options configures the handler. Zero values take the defaults named.
type Options struct {
	Store     store
	Templates *templates.Set
	Logger    *slog.Logger
	// Ready reports whether the service can serve (database reachable,
	// schema current); /readyz answers 503 with its error otherwise.
	Ready func(ctx context.Context) error
	// BaseURL is how customers reach the site (HELPDESK_BASE_URL). When it
	// is https, cookies are marked Secure; its origin is trusted to post
	// forms even when a proxy changes the Host header.
	BaseURL string
	// TrustedProxies are the reverse proxies whose X-Forwarded-For names
	// the client (without them every visitor behind a proxy would share
	// one rate limit) and whose X-Forwarded-Proto says whether the
	// visitor came over HTTPS.
	TrustedProxies []netip.Prefix
	// TempDir holds uploads while they are stored ("" for the system's).
	TempDir string

	// MaxAttachments a form may carry. Default: 5.
	MaxAttachments int
	// MaxAttachmentBytes is the largest file accepted. Default: 10 MiB.
	MaxAttachmentBytes int64
	// MaxUploadBytes bounds a whole form with its files. Default: 25 MiB.
	MaxUploadBytes int64
	// SessionTTL is how long a visitor's access to tickets lasts after
	// their last visit. Default: 72 hours.
	SessionTTL time.Duration
	// StaffSessionTTL is how long a staff member stays logged in after
	// their last request. Default: 12 hours.
	StaffSessionTTL time.Duration

	// TokenRate is how many failed link openings a client may make per
	// minute. Default: 30.
	TokenRate int
	// LookupRate is how many failed lookups a client may make per minute.
	// Default: 10.
	LookupRate int
	// LookupRatePerTicket is how many failed lookups of one tracking ID are
	// allowed per hour, from all clients together. Default: 10.
	LookupRatePerTicket int
	// SubmitRate is how many tickets a client may submit per hour.
	// Default: 10.
	SubmitRate int
	// ForgotRate is how many lists of tickets a client may ask to be mailed
	// per hour. Default: 5.
	ForgotRate int

	// Metrics, when set, counts requests by route and status.
	Metrics *Metrics
	// MetricsHandler serves GET /metrics, to the clients in MetricsAllow
	// (default: DefaultMetricsAllow); without it /metrics is not found.
	MetricsHandler http.Handler
	MetricsAllow   []netip.Prefix
}

// Server serves the pages.
type Server struct {
	store     portalStore
	staff     staffStore
	tmpl      *templates.Set
	log       *slog.Logger
	ready     func(ctx context.Context) error
	proxies   []netip.Prefix
	httpsBase bool
	tempDir   string
	limits    limits
	// drainBytes is how much of an oversized body is read and discarded,
	// so that the browser, still sending, gets the answer rather than a
	// reset connection.
	drainBytes int64
	// uploadSlots holds a value per upload in progress.
	uploadSlots chan struct{}
	// pending is work started after answering a request.
	pending         sync.WaitGroup
	sessionTTL      time.Duration
	staffSessionTTL time.Duration

	tokenFailures  *limiter // per client
	lookupFailures *limiter // per client
	ticketFailures *limiter // per tracking ID
	submits        *limiter // per client
	kbLimiter      *limiter // knowledge base searches and votes, per client
	suggestLimiter *limiter // knowledge base suggestions, per client
	reminders      *limiter // per client
	staffLogins    *limiter // failed staff logins, per client

	handler        http.Handler
	counters       *Metrics
	metricsHandler http.Handler
	metricsAllow   []netip.Prefix
}

// limits are the upload limits, as the forms show them.
type limits struct {
	MaxFiles      int
	MaxFileBytes  int64
	MaxTotalBytes int64
	FileSize      string
	TotalSize     string
}

func orDefault[T int | int64 | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// New returns the web server's handler.
func New(opts Options) *Server {
	s := &Server{
		store: opts.Store, staff: opts.Store, tmpl: opts.Templates, log: opts.Logger, ready: opts.Ready,
		proxies: opts.TrustedProxies, tempDir: opts.TempDir,
		sessionTTL:      orDefault(opts.SessionTTL, 72*time.Hour),
		staffSessionTTL: orDefault(opts.StaffSessionTTL, 12*time.Hour),
		counters:        opts.Metrics, metricsHandler: opts.MetricsHandler, metricsAllow: opts.MetricsAllow,
	}
	if s.metricsAllow == nil {
		s.metricsAllow = DefaultMetricsAllow()
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.ready == nil {
		s.ready = opts.Store.Ping
	}
	s.limits.MaxFiles = orDefault(opts.MaxAttachments, 5)
	s.limits.MaxFileBytes = orDefault(opts.MaxAttachmentBytes, 10<<20)
	s.limits.MaxTotalBytes = orDefault(opts.MaxUploadBytes, 25<<20)
	s.limits.FileSize, s.limits.TotalSize = templates.HumanSize(s.limits.MaxFileBytes), templates.HumanSize(s.limits.MaxTotalBytes)
	s.drainBytes = 2*s.limits.MaxTotalBytes + 1<<20
	s.uploadSlots = make(chan struct{}, maxUploads)

	perMinute := func(n int) (rate.Limit, int) { return rate.Limit(float64(n) / 60), n }
	perHour := func(n int) (rate.Limit, int) { return rate.Limit(float64(n) / 3600), n }
	s.tokenFailures = newLimiter(perMinute(orDefault(opts.TokenRate, 30)))
	s.lookupFailures = newLimiter(perMinute(orDefault(opts.LookupRate, 10)))
	s.ticketFailures = newLimiter(perHour(orDefault(opts.LookupRatePerTicket, 10)))
	s.submits = newLimiter(perHour(orDefault(opts.SubmitRate, 10)))
	s.kbLimiter = newLimiter(perMinute(60))
	s.suggestLimiter = newLimiter(perMinute(120))
	s.reminders = newLimiter(perHour(orDefault(opts.ForgotRate, 5)))
	s.staffLogins = newLimiter(perMinute(staffLoginRate))

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("GET /metrics", s.metrics)
	mux.Handle("GET /static/", s.static())
	mux.HandleFunc("GET /{$}", s.home)
	mux.HandleFunc("GET /submit", s.submitPage)
	mux.HandleFunc("POST /submit", s.submit)
	mux.HandleFunc("GET /lookup", s.lookupPage)
	mux.HandleFunc("POST /lookup", s.lookup)
	mux.HandleFunc("GET /forgot", s.forgotPage)
	mux.HandleFunc("POST /forgot", s.forgot)
	mux.HandleFunc("GET /t/{token}", s.openLink)
	mux.HandleFunc("GET /ticket/{id}", s.ticketPage)
	mux.HandleFunc("GET /ticket/{id}/attachments/{n}", s.attachment)
	mux.HandleFunc("POST /ticket/{id}/reply", s.reply)
	mux.HandleFunc("POST /ticket/{id}/resolve", s.resolve)
	mux.HandleFunc("POST /ticket/{id}/reopen", s.reopen)
	mux.HandleFunc("GET /d/{token}", s.openDraftLink)
	mux.HandleFunc("GET /ticket/{id}/drafts/{draft}/files/{n}", s.draftFile)
	mux.HandleFunc("POST /ticket/{id}/drafts/{draft}/post", s.postDraft)
	mux.HandleFunc("POST /ticket/{id}/drafts/{draft}/discard", s.discardDraft)
	mux.HandleFunc("GET /staff/login", s.staffLoginPage)
	mux.HandleFunc("POST /staff/login", s.staffLogin)
	mux.HandleFunc("POST /staff/logout", s.staffLogout)
	mux.HandleFunc("GET /staff", s.asStaff(s.staffQueue))
	mux.HandleFunc("GET /staff/tickets/{id}", s.asStaff(s.staffTicketPage))
	mux.HandleFunc("GET /staff/tickets/{id}/attachments/{n}", s.asStaff(s.staffAttachment))
	mux.HandleFunc("POST /staff/tickets/{id}/answer", s.asStaff(s.staffAnswer))
	mux.HandleFunc("POST /staff/tickets/{id}/update", s.asStaff(s.staffUpdate))
	mux.HandleFunc("GET /staff/inbound/{inbound}/raw", s.asStaff(s.staffRawSource))
	mux.HandleFunc("GET /staff/admin", s.asAdmin(s.adminPage))
	mux.HandleFunc("POST /staff/admin/departments", s.asAdmin(s.adminAddDepartment))
	mux.HandleFunc("POST /staff/admin/departments/{dept}", s.asAdmin(s.adminUpdateDepartment))
	mux.HandleFunc("POST /staff/admin/mailboxes/{slug}", s.asAdmin(s.adminSetMailbox))
	mux.HandleFunc("POST /staff/admin/agents", s.asAdmin(s.adminAddAgent))
	mux.HandleFunc("POST /staff/admin/agents/{agent}", s.asAdmin(s.adminUpdateAgent))
	mux.HandleFunc("POST /staff/admin/agents/{agent}/password", s.asAdmin(s.adminResetPassword))
	mux.HandleFunc("POST /staff/admin/canned", s.asAdmin(s.adminSaveCanned))
	mux.HandleFunc("POST /staff/admin/canned/{canned}", s.asAdmin(s.adminSaveCanned))
	mux.HandleFunc("POST /staff/admin/canned/{canned}/delete", s.asAdmin(s.adminDeleteCanned))
	s.kbRoutes(mux)
	s.kbSuggestRoutes(mux)
	s.staffKBRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.discardBody(w, r)
		s.renderError(w, r, http.StatusNotFound, "error.page_not_found", s.locale(w, r))
	})

	// Forms may be posted from our own pages only: browsers say where a
	// request comes from, and a post from another site is refused.
	csrf := http.NewCrossOriginProtection()
	if u, err := url.Parse(opts.BaseURL); err == nil && u.Host != "" {
		s.httpsBase = u.Scheme == "https"
		if err := csrf.AddTrustedOrigin(u.Scheme + "://" + u.Host); err != nil {
			s.log.Warn("base URL not usable as a trusted origin", "base_url", opts.BaseURL, "err", err)
		}
	}
	csrf.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.discardBody(w, r)
		s.renderError(w, r, http.StatusForbidden, "error.cross_origin", s.locale(w, r))
	}))
	s.handler = csrf.Handler(mux)
	return s
}

// contentSecurityPolicy allows our own style sheet, script and images and
// nothing else: no inline script or style, no framing, forms posted here.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// Wait waits for the work the pages started after answering (reminders
// being queued): call it after the HTTP server has shut down.
func (s *Server) Wait() { s.pending.Wait() }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	if s.secure(r) {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
	s.counters.count(s.handler, w, r)
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

// static serves the style sheet and the script. Their URLs carry a hash of
// their contents, so they may be cached for long.
func (s *Server) static() http.Handler {
	files := http.StripPrefix("/static/", http.FileServerFS(templates.Static()))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			s.renderError(w, r, http.StatusNotFound, "error.page_not_found", s.locale(w, r))
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		files.ServeHTTP(w, r)
	})
}

// base is what every page has.
type base struct {
	// Title is the message key of the page's title.
	Title     string
	TitleData any
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, page, locale string, data any) {
	var b strings.Builder
	if err := s.tmpl.RenderPage(&b, page, locale, data); err != nil {
		s.log.Error("render page", "page", page, "path", logPath(r), "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	// Pages show what a customer typed or their tickets: keep them out of
	// shared caches and the browser's disk.
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	io.WriteString(w, b.String()) //nolint:errcheck // the client went away
}

type errorPage struct {
	base
	Message     string
	MessageData any
	// Lookup offers the lookup form.
	Lookup bool
}

func (s *Server) renderError(w http.ResponseWriter, r *http.Request, status int, message, locale string) {
	s.render(w, r, status, templates.PageError, locale, errorPage{base: base{Title: "error.title"}, Message: message,
		Lookup: status == http.StatusForbidden || status == http.StatusGone})
}

// internalError logs err and tells the visitor something failed on our side.
func (s *Server) internalError(w http.ResponseWriter, r *http.Request, locale, what string, err error, args ...any) {
	s.logFailure(r, what, err, args...)
	s.renderError(w, r, http.StatusInternalServerError, "error.internal", locale)
}

// logFailure logs what failed with the request's path. A visitor who went
// away (as the submit form does with each suggestion it no longer waits
// for) is no error of ours.
func (s *Server) logFailure(r *http.Request, what string, err error, args ...any) {
	level := slog.LevelError
	if errors.Is(err, context.Canceled) {
		level = slog.LevelInfo
	}
	s.log.Log(r.Context(), level, what, append(args, "path", logPath(r), "err", err)...)
}

// logPath is the request's path as it may be logged: a link's token opens
// a ticket, and logs are read by more people than tickets are.
func logPath(r *http.Request) string {
	for _, prefix := range []string{"/t/", "/d/"} {
		if strings.HasPrefix(r.URL.Path, prefix) {
			return prefix + "…"
		}
	}
	return r.URL.Path
}
