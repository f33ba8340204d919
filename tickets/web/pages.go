package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/helpdeskgw/helpdesk/templates"
	"github.com/helpdeskgw/helpdesk/tickets"
)

func (s *Server) home(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, templates.PageHome, s.locale(w, r), struct{ base }{})
}

// submitForm is what the visitor typed into the submit form.
type submitForm struct {
	Department, Name, Email, Subject, Message, Priority string
	HadFiles                                            bool
}

type submitPage struct {
	base
	Departments []tickets.Department
	Priorities  []tickets.Priority
	Form        submitForm
	Errors      formErrors
	Limits      limits
	MaxName     int
	MaxSubject  int
	// Step asks for the department and subject first, to suggest articles
	// before the rest (the script shows it all at once instead).
	Step bool
	// Suggestions are the articles that may answer the subject.
	Suggestions []suggestion
}

// submitFields are the fields of the submit form with the bytes read of
// each: generous, so that the store, which counts characters, is the one
// to say a text is too long.
func submitFields() map[string]int64 {
	return map[string]int64{
		"department": 200, "name": 4 * tickets.MaxNameLength, "email": 1000, "subject": 4 * tickets.MaxSubjectLength,
		"message": 4 * tickets.MaxMessageLength, "priority": 100,
	}
}

// renderSubmit shows the submit form of page, whose Form, Errors, Step and
// Suggestions are set.
func (s *Server) renderSubmit(w http.ResponseWriter, r *http.Request, status int, locale string, page submitPage) {
	depts, err := s.store.Departments(r.Context())
	if err != nil {
		s.internalError(w, r, locale, "list departments", err)
		return
	}
	if page.Form.Priority == "" {
		page.Form.Priority = string(tickets.PriorityMedium)
	}
	page.base = base{Title: "submit.title"}
	page.Departments, page.Limits = depts, s.limits
	page.Priorities = []tickets.Priority{tickets.PriorityLow, tickets.PriorityMedium, tickets.PriorityHigh}
	page.MaxName, page.MaxSubject = tickets.MaxNameLength, tickets.MaxSubjectLength
	s.render(w, r, status, templates.PageSubmit, locale, page)
}

// submitPage asks first for the department and subject; once they come
// (?subject=), it lists the articles that may answer it above the whole
// form, filled in with what came.
func (s *Server) submitPage(w http.ResponseWriter, r *http.Request) {
	locale := s.locale(w, r)
	q := r.URL.Query()
	form := submitForm{Department: q.Get("department"), Name: q.Get("name"), Email: q.Get("email"),
		Subject: q.Get("subject"), Message: q.Get("message"), Priority: q.Get("priority")}
	if !q.Has("subject") {
		s.renderSubmit(w, r, http.StatusOK, locale, submitPage{Form: form, Step: true})
		return
	}
	s.renderSubmit(w, r, http.StatusOK, locale, submitPage{Form: form,
		Suggestions: s.submitSuggestions(r, form.Subject, locale, form.Department)})
}

func (s *Server) submit(w http.ResponseWriter, r *http.Request) {
	locale := s.locale(w, r)
	p, ok := s.readUpload(w, r, locale, submitFields())
	if !ok {
		return
	}
	defer p.release()
	v := p.values
	form := submitForm{Department: v.Get("department"), Name: v.Get("name"), Email: v.Get("email"), Subject: v.Get("subject"),
		Message: v.Get("message"), Priority: v.Get("priority"), HadFiles: p.hadFiles}
	if p.tooLarge {
		s.renderSubmit(w, r, http.StatusRequestEntityTooLarge, locale, submitPage{Form: form, Errors: p.errs})
		return
	}
	refund, ok := s.submits.take(s.clientKey(r))
	if !ok {
		w.Header().Set("Retry-After", "600")
		errs := formErrors{}
		errs.set("form", "form.rate_limited", nil)
		s.renderSubmit(w, r, http.StatusTooManyRequests, locale, submitPage{Form: form, Errors: errs})
		return
	}
	res, err := s.store.SubmitTicket(r.Context(), tickets.WebTicket{
		Department: form.Department, Name: form.Name, Email: form.Email, Subject: form.Subject,
		Message: form.Message, Priority: tickets.Priority(form.Priority), Attachments: p.attachments(),
	})
	var fe tickets.FieldErrors
	if errors.As(err, &fe) {
		refund()
		p.errs.fromStore(fe)
		s.renderSubmit(w, r, http.StatusUnprocessableEntity, locale, submitPage{Form: form, Errors: p.errs})
		return
	}
	if err != nil {
		refund()
		s.internalError(w, r, locale, "submit ticket", err)
		return
	}
	s.log.Info("ticket submitted", "ticket", res.TrackingID, "attachments", len(p.files))
	if !s.grant(w, r, locale, tickets.Grant{TicketID: res.TicketID, Via: tickets.GrantSubmit}) {
		return
	}
	http.Redirect(w, r, "/ticket/"+res.TrackingID+"?created=1", http.StatusSeeOther)
}

// grant gives the visitor's session the right to a ticket and sets its
// cookie. On failure it has answered the request.
func (s *Server) grant(w http.ResponseWriter, r *http.Request, locale string, g tickets.Grant) bool {
	id, err := s.store.OpenSession(r.Context(), s.sessionID(r), g, s.sessionTTL)
	if err != nil {
		s.internalError(w, r, locale, "open session", err, "ticket_id", g.TicketID)
		return false
	}
	s.setSession(w, r, id)
	return true
}

type lookupForm struct{ TrackingID, Email string }

type lookupPage struct {
	base
	Form   lookupForm
	Errors formErrors
}

func (s *Server) lookupPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, templates.PageLookup, s.locale(w, r), lookupPage{
		base: base{Title: "lookup.title"}, Form: lookupForm{TrackingID: r.URL.Query().Get("tracking_id")}})
}

// lookup opens a ticket for whoever knows its tracking ID and its
// customer's address. A failure says the same whichever was wrong, and
// failures are limited per client and per tracking ID.
func (s *Server) lookup(w http.ResponseWriter, r *http.Request) {
	locale := s.locale(w, r)
	values, ok := s.readSmallForm(w, r, locale)
	if !ok {
		return
	}
	form := lookupForm{TrackingID: values.Get("tracking_id"), Email: values.Get("email")}
	again := func(status int, errs formErrors) {
		s.render(w, r, status, templates.PageLookup, locale, lookupPage{base: base{Title: "lookup.title"}, Form: form, Errors: errs})
	}
	errs := formErrors{}
	if form.TrackingID == "" {
		errs.set("tracking_id", tickets.FieldRequired, nil)
	}
	if form.Email == "" {
		errs.set("email", tickets.FieldRequired, nil)
	}
	if len(errs) > 0 {
		again(http.StatusUnprocessableEntity, errs)
		return
	}
	// Both budgets are spent before the lookup and refunded when it
	// succeeds: only failures count, and parallel guesses cannot share
	// one unspent budget.
	refundClient, ok := s.lookupFailures.take(s.clientKey(r))
	refundTicket := func() {}
	if trackingID, err := tickets.ParseTrackingID(form.TrackingID); ok && err == nil {
		if refundTicket, ok = s.ticketFailures.take(trackingID); !ok {
			refundClient()
		}
	}
	if !ok {
		w.Header().Set("Retry-After", "60")
		errs.set("form", "error.rate_limited", nil)
		again(http.StatusTooManyRequests, errs)
		return
	}
	t, err := s.store.LookupTicket(r.Context(), form.TrackingID, form.Email)
	if errors.Is(err, tickets.ErrNotFound) {
		errs.set("form", "lookup.not_found", nil)
		again(http.StatusUnprocessableEntity, errs)
		return
	}
	refundClient()
	refundTicket()
	if err != nil {
		s.internalError(w, r, locale, "look up ticket", err)
		return
	}
	if !s.grant(w, r, locale, tickets.Grant{TicketID: t.ID, Via: tickets.GrantLookup}) {
		return
	}
	http.Redirect(w, r, "/ticket/"+t.TrackingID, http.StatusSeeOther)
}

type forgotForm struct{ Email string }

type forgotPage struct {
	base
	Form   forgotForm
	Errors formErrors
}

func (s *Server) forgotPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, templates.PageForgot, s.locale(w, r), forgotPage{base: base{Title: "forgot.title"}})
}

// forgot mails an address the list of its open tickets. The page says the
// same whether or not there are any.
func (s *Server) forgot(w http.ResponseWriter, r *http.Request) {
	locale := s.locale(w, r)
	values, ok := s.readSmallForm(w, r, locale)
	if !ok {
		return
	}
	form := forgotForm{Email: values.Get("email")}
	page := forgotPage{base: base{Title: "forgot.title"}, Form: form, Errors: formErrors{}}
	email, err := tickets.ParseEmail(form.Email)
	switch {
	case form.Email == "":
		page.Errors.set("email", tickets.FieldRequired, nil)
	case err != nil:
		page.Errors.set("email", tickets.FieldBadEmail, nil)
	case !s.reminders.allow(s.clientKey(r)):
		w.Header().Set("Retry-After", "600")
		page.Errors.set("form", "form.rate_limited", nil)
		s.render(w, r, http.StatusTooManyRequests, templates.PageForgot, locale, page)
		return
	}
	if len(page.Errors) > 0 {
		s.render(w, r, http.StatusUnprocessableEntity, templates.PageForgot, locale, page)
		return
	}
	// The reminder is queued after the answer: an address with tickets
	// takes a write and a flush to disk, one without none, and the time
	// the answer took would tell them apart.
	s.pending.Go(func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 30*time.Second)
		defer cancel()
		queued, err := s.store.QueueReminder(ctx, email, locale)
		if err != nil {
			s.log.Error("queue reminder", "err", err)
			return
		}
		s.log.Debug("tickets reminder asked for", "queued", queued)
	})
	s.render(w, r, http.StatusOK, templates.PageForgotSent, locale, forgotPage{base: base{Title: "forgot.title"}, Form: forgotForm{Email: email}})
}

// toLookup sends a visitor without the right to a ticket to the lookup
// form, the tracking ID filled in.
func toLookup(w http.ResponseWriter, r *http.Request, trackingID string) {
	http.Redirect(w, r, "/lookup?tracking_id="+url.QueryEscape(trackingID), http.StatusSeeOther)
}
