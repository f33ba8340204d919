package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/helpdeskgw/helpdesk/tickets"
)

// The staff's pages live under /staff: the queue, a ticket's page with its
// answer and change forms, and the admins' page. They have their own
// session, opened by logging in with an address and a password.

// staffStore is what the staff's pages need of the store.
type staffStore interface {
	staffKBStore
	Login(ctx context.Context, email, password string, ttl time.Duration) (string, tickets.Agent, error)
	StaffSession(ctx context.Context, sessionID string, idle time.Duration) (tickets.Agent, error)
	Logout(ctx context.Context, sessionID string) error

	Queue(ctx context.Context, a tickets.Agent, f tickets.QueueFilter) ([]tickets.QueueItem, int, error)
	StaffTicket(ctx context.Context, a tickets.Agent, trackingID string) (tickets.Ticket, error)
	StaffAttachment(ctx context.Context, ticketID, attachmentID int64) (tickets.Attachment, error)
	StaffHistory(ctx context.Context, ticketID int64) ([]tickets.HistoryEntry, error)
	InboundOfTicket(ctx context.Context, ticketID int64) ([]tickets.InboundEntry, error)
	InboundMailEntry(ctx context.Context, id int64) (tickets.InboundEntry, error)
	Drafts(ctx context.Context, ticketID int64) ([]tickets.Draft, error)
	Bouncing(ctx context.Context, address string) (tickets.AddressBounce, bool, error)
	AnswerTicket(ctx context.Context, a tickets.Agent, ticketID int64, ans tickets.Answer) (int64, error)
	UpdateTicket(ctx context.Context, a tickets.Agent, ticketID int64, c tickets.TicketChange) error
	Agents(ctx context.Context) ([]tickets.Agent, error)
	AgentsOf(ctx context.Context, departmentID int64) ([]tickets.Agent, error)
	CannedFor(ctx context.Context, departmentID int64) ([]tickets.Canned, error)

	AddDepartment(ctx context.Context, d tickets.Department) (tickets.Department, error)
	UpdateDepartment(ctx context.Context, actor string, d tickets.Department) error
	Mailboxes(ctx context.Context) ([]tickets.Mailbox, error)
	SetMailboxEnabled(ctx context.Context, slug string, enabled bool) error
	AddAgent(ctx context.Context, actor string, n tickets.NewAgent) (tickets.Agent, error)
	UpdateAgent(ctx context.Context, actor string, id int64, c tickets.AgentChange) error
	SaveCanned(ctx context.Context, actor string, c tickets.Canned) (int64, error)
	DeleteCanned(ctx context.Context, actor string, id int64) error
	Audit(ctx context.Context, actor, action, target, detail string) error
	AuditLog(ctx context.Context, limit int) ([]tickets.AuditEntry, error)
	JobRuns(ctx context.Context) ([]tickets.JobRun, error)
	Inbound(ctx context.Context, f tickets.InboundFilter) ([]tickets.InboundEntry, error)
}

// Staff pages.
const (
	pageStaffLogin    = "staff_login"
	pageStaffContinue = "staff_continue"
	pageStaffQueue    = "staff_queue"
	pageStaffTicket   = "staff_ticket"
	pageStaffAdmin    = "staff_admin"
)

// The staff's session cookie. Over HTTPS it carries the __Host- prefix
// (and so the path /); over plain HTTP it is sent to the staff's pages
// alone.
const (
	staffCookie       = "helpdesk_staff"
	secureStaffCookie = "__Host-staff"
	staffPath         = "/staff"
)

// staffLoginRate is how many failed logins a client may make per minute;
// the account itself locks after a few failures in a row.
const staffLoginRate = 10

// staffBase is what every staff page has.
type staffBase struct {
	base
	// Agent is who is logged in; its zero value on the login page.
	Agent tickets.Agent
	// Section is the part of the staff pages shown: "queue", "kb" or "admin".
	Section string
}

func (s *Server) setStaffCookie(w http.ResponseWriter, r *http.Request, value string, maxAge int) {
	c := &http.Cookie{Name: staffCookie, Value: value, Path: staffPath, MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode}
	if s.secure(r) {
		c.Name, c.Path, c.Secure = secureStaffCookie, "/", true
	}
	http.SetCookie(w, c)
}

func (s *Server) staffSessionID(r *http.Request) string {
	name := staffCookie
	if s.secure(r) {
		name = secureStaffCookie
	}
	if c, err := r.Cookie(name); err == nil {
		return c.Value
	}
	return ""
}

// staffHandler serves a staff page for a logged-in agent.
type staffHandler func(w http.ResponseWriter, r *http.Request, a tickets.Agent)

// asStaff lets logged-in staff through to h; anyone else is sent to the
// login page, which brings them back here afterwards.
func (s *Server) asStaff(h staffHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a, err := s.staff.StaffSession(r.Context(), s.staffSessionID(r), s.staffSessionTTL)
		if err == nil {
			h(w, r, a)
			return
		}
		s.discardBody(w, r)
		if !errors.Is(err, tickets.ErrNotFound) {
			s.internalError(w, r, s.locale(w, r), "staff session", err)
			return
		}
		if r.Method == http.MethodGet && r.Header.Get("Sec-Fetch-Site") == "cross-site" {
			// A link followed from another site (a webmail's notice)
			// comes without the session cookie, which is SameSite=Strict.
			// Going on from our own page brings it along.
			s.render(w, r, http.StatusOK, pageStaffContinue, s.locale(w, r), struct {
				staffBase
				Next string
			}{staffBase{base: base{Title: "staff.continue.title"}}, r.URL.RequestURI()})
			return
		}
		next := ""
		if r.Method == http.MethodGet {
			next = "?next=" + url.QueryEscape(r.URL.RequestURI())
		}
		http.Redirect(w, r, staffPath+"/login"+next, http.StatusSeeOther)
	}
}

// asAdmin lets admins through to h; to anyone else the page does not
// exist.
func (s *Server) asAdmin(h staffHandler) http.HandlerFunc {
	return s.asStaff(func(w http.ResponseWriter, r *http.Request, a tickets.Agent) {
		if !a.IsAdmin() {
			s.discardBody(w, r)
			s.renderError(w, r, http.StatusNotFound, "error.page_not_found", s.locale(w, r))
			return
		}
		h(w, r, a)
	})
}

// staffNext is where to go after logging in: next when it is a staff page
// of this site, else the queue.
func staffNext(next string) string {
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || strings.HasPrefix(next, "//") || strings.ContainsRune(next, '\\') {
		return staffPath
	}
	if p := path.Clean(u.Path); p != u.Path || (p != staffPath && !strings.HasPrefix(p, staffPath+"/")) || p == staffPath+"/login" {
		return staffPath
	}
	return u.RequestURI()
}

type staffLoginForm struct{ Email, Next string }

type staffLoginPage struct {
	staffBase
	Form   staffLoginForm
	Errors formErrors
	Notice string
}

func (s *Server) staffLoginPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.render(w, r, http.StatusOK, pageStaffLogin, s.locale(w, r), staffLoginPage{
		staffBase: staffBase{base: base{Title: "staff.login.title"}}, Form: staffLoginForm{Next: staffNext(q.Get("next"))}, Notice: staffNotice(q.Get("notice"))})
}

// staffNotice is the message key of what a staff member just did, as the
// page they are sent to is told.
func staffNotice(key string) string {
	switch key {
	case "logged_out", "answered", "noted", "updated", "unchanged",
		"department_added", "department_updated", "mailbox_enabled", "mailbox_disabled",
		"agent_added", "agent_updated", "password_reset", "canned_saved", "canned_deleted":
		return "staff.notice." + key
	}
	return ""
}

// staffLogin opens a staff session. A wrong address and a wrong password
// get the same answer; failures are limited per client, and the account
// locks after a few in a row.
func (s *Server) staffLogin(w http.ResponseWriter, r *http.Request) {
	locale := s.locale(w, r)
	values, ok := s.readSmallForm(w, r, locale)
	if !ok {
		return
	}
	form := staffLoginForm{Email: values.Get("email"), Next: staffNext(values.Get("next"))}
	errs := formErrors{}
	again := func(status int) {
		s.render(w, r, status, pageStaffLogin, locale, staffLoginPage{staffBase: staffBase{base: base{Title: "staff.login.title"}}, Form: form, Errors: errs})
	}
	password := values.Get("password")
	if strings.TrimSpace(form.Email) == "" {
		errs.set("email", tickets.FieldRequired, nil)
	}
	if password == "" {
		errs.set("password", tickets.FieldRequired, nil)
	}
	if len(errs) > 0 {
		again(http.StatusUnprocessableEntity)
		return
	}
	refund, ok := s.staffLogins.take(s.clientKey(r))
	if !ok {
		w.Header().Set("Retry-After", "60")
		errs.set("form", "error.rate_limited", nil)
		again(http.StatusTooManyRequests)
		return
	}
	id, a, err := s.staff.Login(r.Context(), form.Email, password, s.staffSessionTTL)
	switch {
	case errors.Is(err, tickets.ErrNotFound):
		errs.set("form", "staff.login.wrong", nil)
		again(http.StatusUnprocessableEntity)
		return
	case errors.Is(err, tickets.ErrLocked):
		errs.set("form", "staff.login.locked", nil)
		again(http.StatusForbidden)
		return
	case err != nil:
		refund()
		s.internalError(w, r, locale, "staff login", err)
		return
	}
	refund()
	s.log.Info("staff login", "agent", a.ID)
	s.setStaffCookie(w, r, id, 0)
	http.Redirect(w, r, form.Next, http.StatusSeeOther)
}

// staffLogout ends the session, if there is one, and forgets its cookie.
func (s *Server) staffLogout(w http.ResponseWriter, r *http.Request) {
	locale := s.locale(w, r)
	if _, ok := s.readSmallForm(w, r, locale); !ok {
		return
	}
	if id := s.staffSessionID(r); id != "" {
		if err := s.staff.Logout(r.Context(), id); err != nil {
			s.internalError(w, r, locale, "staff logout", err)
			return
		}
	}
	s.setStaffCookie(w, r, "", -1)
	http.Redirect(w, r, staffPath+"/login?notice=logged_out", http.StatusSeeOther)
}

// staffKBStore is what the staff's knowledge base pages need.
type staffKBStore interface {
	StaffArticles(ctx context.Context, a tickets.Agent, days int) ([]tickets.ArticleStats, error)
	StaffArticle(ctx context.Context, a tickets.Agent, id int64) (tickets.Article, error)
	SaveArticle(ctx context.Context, a tickets.Agent, id int64, in tickets.ArticleInput) (tickets.Article, error)
	DeleteArticle(ctx context.Context, a tickets.Agent, id int64) error
}
