package web

import (
	"context"
	"errors"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/helpdeskgw/helpdesk/templates"
	"github.com/helpdeskgw/helpdesk/tickets"
)

// openLink is where the links in our mails lead. The token gives the
// visitor's session the right to its ticket, and the visitor goes on to
// the ticket's page: the token stays out of the address bar, the history
// and any Referer. The link keeps working until it expires or is revoked.
func (s *Server) openLink(w http.ResponseWriter, r *http.Request) {
	s.followToken(w, r, "error.expired", func(ctx context.Context, token string) (tickets.Ticket, string, error) {
		t, err := s.store.TicketByToken(ctx, token, tickets.ScopeTicket)
		return t, "/ticket/" + t.TrackingID, err
	})
}

// followToken serves a link whose token opens a ticket: resolve looks the
// token up and names the page to go on to. expired is the message key of
// the page for a link past its time.
func (s *Server) followToken(w http.ResponseWriter, r *http.Request, expired string,
	resolve func(ctx context.Context, token string) (t tickets.Ticket, next string, err error)) {
	locale := s.locale(w, r)
	// Only failures count: a customer opening their links is never held
	// back, while someone trying tokens soon is.
	refund, ok := s.tokenFailures.take(s.clientKey(r))
	if !ok {
		w.Header().Set("Retry-After", "60")
		s.renderError(w, r, http.StatusTooManyRequests, "error.rate_limited", locale)
		return
	}
	token := r.PathValue("token")
	t, next, err := resolve(r.Context(), token)
	switch {
	case errors.Is(err, tickets.ErrNotFound):
		s.renderError(w, r, http.StatusNotFound, "error.not_found", locale)
		return
	case errors.Is(err, tickets.ErrExpired):
		s.renderError(w, r, http.StatusGone, expired, locale)
		return
	case err != nil:
		refund()
		s.internalError(w, r, locale, "look up token", err)
		return
	}
	refund()
	if !s.grant(w, r, locale, tickets.Grant{TicketID: t.ID, Via: tickets.GrantToken, Token: token}) {
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// sessionTicket returns the ticket the path names when the visitor's
// session may see it: ErrNotFound otherwise, whatever the reason.
func (s *Server) sessionTicket(r *http.Request) (tickets.Ticket, error) {
	id, err := tickets.ParseTrackingID(r.PathValue("id"))
	if err != nil {
		return tickets.Ticket{}, tickets.ErrNotFound
	}
	return s.store.SessionTicket(r.Context(), s.sessionID(r), id, s.sessionTTL)
}

// ticketLocale is the language of a ticket's page: the visitor's when they
// stated one, else the ticket's.
func (s *Server) ticketLocale(w http.ResponseWriter, r *http.Request, t tickets.Ticket) string {
	if l, stated := s.visitorLocale(w, r); stated {
		return l
	}
	return t.Locale
}

type replyForm struct {
	Message  string
	HadFiles bool
}

type ticketPage struct {
	base
	Ticket   tickets.Ticket
	Messages []tickets.Message
	// Created: the visitor has just submitted the ticket.
	Created bool
	// Notice is the message key of what the visitor just did.
	Notice string
	// Form and Errors are the reply form's.
	Form   replyForm
	Errors formErrors
	Limits limits
	// Drafts are the replies by mail waiting for the visitor to post or
	// discard them.
	Drafts []draftView
	// DraftGone: the draft the visitor acted on no longer waits.
	DraftGone bool
	// sentDraft is a draft's form as the visitor sent it, shown again
	// with its errors.
	sentDraft *draftForm
	// Articles may answer the ticket while it is open: its customer can
	// say one did, which resolves it.
	Articles []suggestion
}

// notices are what a page may be told the visitor just did.
func notice(key string) string {
	switch key {
	case "replied", "resolved", "reopened", "draft_posted", "draft_discarded":
		return "notice." + key
	}
	return ""
}

func (s *Server) renderTicket(w http.ResponseWriter, r *http.Request, status int, locale string, page ticketPage) {
	msgs, err := s.store.Thread(r.Context(), page.Ticket.ID, false)
	if err != nil {
		s.internalError(w, r, locale, "read thread", err, "ticket", page.Ticket.TrackingID)
		return
	}
	drafts, err := s.store.HeldDrafts(r.Context(), page.Ticket.ID)
	if err != nil {
		s.internalError(w, r, locale, "read held drafts", err, "ticket", page.Ticket.TrackingID)
		return
	}
	page.base = base{Title: "ticket.title", TitleData: page.Ticket}
	page.Messages, page.Limits = msgs, s.limits
	page.Articles = s.ticketSuggestions(r, page.Ticket)
	var found bool
	page.Drafts, found = draftViews(drafts, page.sentDraft)
	if page.sentDraft != nil && !found {
		// Its form came back with an error, but it no longer waits.
		page.DraftGone = true
	}
	s.render(w, r, status, templates.PageTicket, locale, page)
}

func (s *Server) ticketPage(w http.ResponseWriter, r *http.Request) {
	id, err := tickets.ParseTrackingID(r.PathValue("id"))
	if err != nil {
		s.renderError(w, r, http.StatusNotFound, "error.page_not_found", s.locale(w, r))
		return
	}
	if id != r.PathValue("id") {
		u := *r.URL
		u.Path = "/ticket/" + id
		http.Redirect(w, r, u.RequestURI(), http.StatusMovedPermanently)
		return
	}
	t, err := s.sessionTicket(r)
	if errors.Is(err, tickets.ErrNotFound) {
		toLookup(w, r, id)
		return
	}
	locale := s.ticketLocale(w, r, t)
	if err != nil {
		s.internalError(w, r, locale, "session ticket", err, "ticket", id)
		return
	}
	q := r.URL.Query()
	s.renderTicket(w, r, http.StatusOK, locale, ticketPage{Ticket: t, Created: q.Get("created") == "1", Notice: notice(q.Get("notice"))})
}

// postTicket checks that the visitor may act on the ticket the path names.
// On failure it has answered the request.
func (s *Server) postTicket(w http.ResponseWriter, r *http.Request) (tickets.Ticket, string, bool) {
	t, err := s.sessionTicket(r)
	if err != nil {
		locale := s.locale(w, r)
		s.discardBody(w, r)
		if errors.Is(err, tickets.ErrNotFound) {
			s.render(w, r, http.StatusForbidden, templates.PageError, locale, errorPage{
				base: base{Title: "error.title"}, Message: "error.no_access", Lookup: true})
		} else {
			s.internalError(w, r, locale, "session ticket", err)
		}
		return t, "", false
	}
	return t, s.ticketLocale(w, r, t), true
}

func (s *Server) reply(w http.ResponseWriter, r *http.Request) {
	t, locale, ok := s.postTicket(w, r)
	if !ok {
		return
	}
	p, ok := s.readUpload(w, r, locale, map[string]int64{"message": 4 * tickets.MaxMessageLength})
	if !ok {
		return
	}
	defer p.release()
	page := ticketPage{Ticket: t, Form: replyForm{Message: p.values.Get("message"), HadFiles: p.hadFiles}, Errors: p.errs}
	if p.tooLarge {
		s.renderTicket(w, r, http.StatusRequestEntityTooLarge, locale, page)
		return
	}
	err := s.store.ReplyByCustomer(r.Context(), t.ID, tickets.CustomerReply{Message: page.Form.Message, Attachments: p.attachments()})
	var fe tickets.FieldErrors
	if errors.As(err, &fe) {
		page.Errors.fromStore(fe)
		s.renderTicket(w, r, http.StatusUnprocessableEntity, locale, page)
		return
	}
	if err != nil {
		s.internalError(w, r, locale, "add reply", err, "ticket", t.TrackingID)
		return
	}
	http.Redirect(w, r, "/ticket/"+t.TrackingID+"?notice=replied", http.StatusSeeOther)
}

func (s *Server) resolve(w http.ResponseWriter, r *http.Request) {
	s.setStatus(w, r, "resolved", func(t tickets.Ticket) error { return s.store.ResolveByCustomer(r.Context(), t.ID) })
}

func (s *Server) reopen(w http.ResponseWriter, r *http.Request) {
	s.setStatus(w, r, "reopened", func(t tickets.Ticket) error { return s.store.ReopenByCustomer(r.Context(), t.ID) })
}

func (s *Server) setStatus(w http.ResponseWriter, r *http.Request, done string, change func(tickets.Ticket) error) {
	t, locale, ok := s.postTicket(w, r)
	if !ok {
		return
	}
	if _, ok := s.readSmallForm(w, r, locale); !ok {
		return
	}
	if err := change(t); err != nil {
		s.internalError(w, r, locale, "change status", err, "ticket", t.TrackingID, "to", done)
		return
	}
	http.Redirect(w, r, "/ticket/"+t.TrackingID+"?notice="+done, http.StatusSeeOther)
}

// attachment serves a file of the ticket's thread.
func (s *Server) attachment(w http.ResponseWriter, r *http.Request) {
	s.download(w, r, func(ctx context.Context, t tickets.Ticket) (storedFile, error) {
		id, err := strconv.ParseInt(r.PathValue("n"), 10, 64)
		if err != nil {
			return storedFile{}, tickets.ErrNotFound
		}
		a, err := s.store.Attachment(ctx, t.ID, id)
		return storedFile{Name: a.Filename, Size: a.Size, SHA256: a.SHA256}, err
	})
}

// storedFile is a file to download: its name, size and blob, and its
// type when it is not to be any ("" for application/octet-stream).
type storedFile struct {
	Name        string
	Size        int64
	SHA256      []byte
	ContentType string
}

// download serves a file of the ticket the path names, which find picks
// (ErrNotFound when there is no such file), as a download.
func (s *Server) download(w http.ResponseWriter, r *http.Request, find func(ctx context.Context, t tickets.Ticket) (storedFile, error)) {
	t, err := s.sessionTicket(r)
	if errors.Is(err, tickets.ErrNotFound) {
		s.renderError(w, r, http.StatusNotFound, "error.page_not_found", s.locale(w, r))
		return
	}
	if err != nil {
		s.internalError(w, r, s.locale(w, r), "session ticket", err)
		return
	}
	s.sendFile(w, r, s.ticketLocale(w, r, t), t.TrackingID, func(ctx context.Context) (storedFile, error) { return find(ctx, t) })
}

// sendFile serves the file find picks (ErrNotFound when there is no such
// file) as a download, never inline: a customer's HTML or SVG must not run
// in our origin. about names what the file belongs to, for the log.
func (s *Server) sendFile(w http.ResponseWriter, r *http.Request, locale, about string, find func(ctx context.Context) (storedFile, error)) {
	f, err := find(r.Context())
	if errors.Is(err, tickets.ErrNotFound) {
		s.renderError(w, r, http.StatusNotFound, "error.page_not_found", locale)
		return
	}
	if err != nil {
		s.internalError(w, r, locale, "read attachment", err, "ticket", about)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	if f.ContentType != "" {
		h.Set("Content-Type", f.ContentType)
	}
	disposition := mime.FormatMediaType("attachment", map[string]string{"filename": f.Name})
	if disposition == "" { // a name FormatMediaType cannot express
		disposition = "attachment"
	}
	h.Set("Content-Disposition", disposition)
	h.Set("Content-Length", strconv.FormatInt(f.Size, 10))
	h.Set("Cache-Control", "private, no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	if err := s.store.WriteBlob(r.Context(), f.SHA256, &deadlineWriter{w: w, rc: http.NewResponseController(w)}); err != nil {
		// Headers are gone; the client sees a short body and gives up.
		s.log.Error("send attachment", "ticket", about, "path", logPath(r), "err", err)
	}
}

// deadlineWriter gives each write its own deadline, so that a client that
// stops reading is cut off instead of holding the download open forever,
// however large the file.
type deadlineWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

const writeStall = 30 * time.Second

func (d *deadlineWriter) Write(p []byte) (int, error) {
	d.rc.SetWriteDeadline(time.Now().Add(writeStall)) //nolint:errcheck // unsupported by test recorders only
	return d.w.Write(p)
}
