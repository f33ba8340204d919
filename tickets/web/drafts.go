package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/helpdeskgw/helpdesk/tickets"
)

// A reply to one of our mails is never added to its ticket as it comes:
// its From: may be forged. It is held as a draft, and the ticket's owner
// gets a link to review it on the ticket's page, edit it, and post or
// discard it.

// openDraftLink is where the notice of a held reply leads. Like a ticket's
// link, it gives the visitor's session the right to the ticket; the
// visitor goes on to the draft on the ticket's page.
func (s *Server) openDraftLink(w http.ResponseWriter, r *http.Request) {
	s.followToken(w, r, "error.draft_expired", func(ctx context.Context, token string) (tickets.Ticket, string, error) {
		t, d, err := s.store.DraftByToken(ctx, token)
		return t, fmt.Sprintf("/ticket/%s#draft-%d", t.TrackingID, d.ID), err
	})
}

// draftFile serves a file of a held reply, as the thread's files are.
func (s *Server) draftFile(w http.ResponseWriter, r *http.Request) {
	s.download(w, r, func(ctx context.Context, t tickets.Ticket) (storedFile, error) {
		draftID, err := strconv.ParseInt(r.PathValue("draft"), 10, 64)
		if err != nil {
			return storedFile{}, tickets.ErrNotFound
		}
		position, err := strconv.Atoi(r.PathValue("n"))
		if err != nil {
			return storedFile{}, tickets.ErrNotFound
		}
		a, err := s.store.DraftFile(ctx, t.ID, draftID, position)
		return storedFile{Name: a.Filename, Size: a.Size, SHA256: a.SHA256}, err
	})
}

// draftForm is a draft's form as the visitor sent it.
type draftForm struct {
	id      int64
	message string
	keep    []int
	errs    formErrors
}

// draftView is a held draft as its box on the ticket's page shows it.
type draftView struct {
	tickets.Draft
	// From is who the mail says it is from; Received and Expires are the
	// draft's times as the page writes them.
	From, Received, Expires string
	// Message and Keep are the form's: the draft's text and all its files,
	// or what the visitor sent.
	Message string
	Keep    map[int]bool
	Errors  formErrors
}

const pageTime = "2006-01-02 15:04 UTC"

// draftViews are the boxes of the held drafts, the one the visitor sent
// (if any) as sent. found says whether that one is among them.
func draftViews(drafts []tickets.Draft, sent *draftForm) (views []draftView, found bool) {
	views = make([]draftView, len(drafts))
	for i, d := range drafts {
		v := draftView{Draft: d, From: d.FromAddress, Received: d.CreatedAt.UTC().Format(pageTime),
			Expires: d.ExpiresAt.UTC().Format(pageTime), Message: d.Text, Keep: map[int]bool{}}
		if d.FromName != "" {
			v.From = d.FromName + " <" + d.FromAddress + ">"
		}
		for _, a := range d.Attachments {
			v.Keep[a.Position] = true
		}
		if sent != nil && sent.id == d.ID {
			found = true
			v.Message, v.Keep, v.Errors = sent.message, map[int]bool{}, formErrors{}
			for _, p := range sent.keep {
				v.Keep[p] = true
			}
			// The page has a form per draft besides the reply form: the
			// errors are named after this draft's fields.
			for field, e := range sent.errs {
				v.Errors.set(field, e.Key, e.Data)
				v.Errors[field].Field = fmt.Sprintf("draft-%d-%s", d.ID, field)
			}
		}
		views[i] = v
	}
	return views, found
}

// draftFields are the fields of a draft's form with the bytes read of each.
func draftFields() map[string]int64 {
	return map[string]int64{"message": 4 * tickets.MaxMessageLength, "keep": 20}
}

// postDraft adds a held reply to the ticket, with the text as the visitor
// edited it and the files they kept.
func (s *Server) postDraft(w http.ResponseWriter, r *http.Request) {
	t, locale, draftID, ok := s.draftRequest(w, r)
	if !ok {
		return
	}
	// The form is multipart, as the reply form is: the text may be long.
	p, ok := s.readUpload(w, r, locale, draftFields())
	if !ok {
		return
	}
	defer p.release()
	if p.tooLarge { // files, which this form has no field for
		s.renderTooLarge(w, r, locale)
		return
	}
	form := &draftForm{id: draftID, message: p.values.Get("message"), errs: p.errs}
	for _, v := range p.values["keep"] {
		position, err := strconv.Atoi(v)
		if err != nil || p.errs["keep"] != nil { // not from our page
			s.renderError(w, r, http.StatusBadRequest, "error.bad_request", locale)
			return
		}
		form.keep = append(form.keep, position)
	}
	if len(form.errs) > 0 {
		s.renderTicket(w, r, http.StatusUnprocessableEntity, locale, ticketPage{Ticket: t, sentDraft: form})
		return
	}
	err := s.store.PostDraft(r.Context(), t.ID, draftID, form.message, form.keep)
	s.draftDecided(w, r, t, locale, form, "draft_posted", err)
}

// discardDraft drops a held reply.
func (s *Server) discardDraft(w http.ResponseWriter, r *http.Request) {
	t, locale, draftID, ok := s.draftRequest(w, r)
	if !ok {
		return
	}
	if _, ok := s.readSmallForm(w, r, locale); !ok {
		return
	}
	err := s.store.DiscardDraft(r.Context(), t.ID, draftID)
	s.draftDecided(w, r, t, locale, &draftForm{id: draftID}, "draft_discarded", err)
}

// draftRequest checks a post about a draft: the visitor's right to the
// ticket and the draft ID the path names. On failure it has answered the
// request.
func (s *Server) draftRequest(w http.ResponseWriter, r *http.Request) (tickets.Ticket, string, int64, bool) {
	t, locale, ok := s.postTicket(w, r)
	if !ok {
		return t, locale, 0, false
	}
	draftID, ok := s.pathDraft(w, r, locale)
	return t, locale, draftID, ok
}

// pathDraft is the draft ID the path names. On failure it has answered the
// request.
func (s *Server) pathDraft(w http.ResponseWriter, r *http.Request, locale string) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("draft"), 10, 64)
	if err != nil {
		s.discardBody(w, r)
		s.renderError(w, r, http.StatusNotFound, "error.page_not_found", locale)
		return 0, false
	}
	return id, true
}

// draftDecided answers a post or discard of a draft as the store's verdict
// on it says; done is the notice of success.
func (s *Server) draftDecided(w http.ResponseWriter, r *http.Request, t tickets.Ticket, locale string, form *draftForm, done string, err error) {
	var fe tickets.FieldErrors
	switch {
	case err == nil:
		http.Redirect(w, r, "/ticket/"+t.TrackingID+"?notice="+done, http.StatusSeeOther)
	case errors.As(err, &fe):
		if form.errs == nil {
			form.errs = formErrors{}
		}
		form.errs.fromStore(fe)
		s.renderTicket(w, r, http.StatusUnprocessableEntity, locale, ticketPage{Ticket: t, sentDraft: form})
	case errors.Is(err, tickets.ErrExpired):
		// Posted or discarded meanwhile (in another tab, say), or past
		// its time: the page as it now is, saying so.
		s.renderTicket(w, r, http.StatusConflict, locale, ticketPage{Ticket: t, DraftGone: true})
	case errors.Is(err, tickets.ErrNotFound):
		s.renderError(w, r, http.StatusNotFound, "error.page_not_found", locale)
	default:
		s.internalError(w, r, locale, "decide draft", err, "ticket", t.TrackingID, "draft", form.id, "as", done)
	}
}
