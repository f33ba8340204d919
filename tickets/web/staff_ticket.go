package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/helpdeskgw/helpdesk/tickets"
)

// answerForm is what the agent typed into the answer form.
type answerForm struct {
	Message  string
	Internal bool
	Canned   string
	HadFiles bool
}

// answerBox is the answer form with its errors and the upload limits, as
// the "upload" template wants them.
type answerBox struct {
	Form   answerForm
	Errors formErrors
	Limits limits
}

// changeForm is the change form: the ticket's status, priority, department
// and assignee (an agent's ID, "0" for none).
type changeForm struct {
	Status, Priority, Department, Assignee string
	Errors                                 formErrors
}

// cannedOption is a canned response filled in for the ticket.
type cannedOption struct {
	ID    int64
	Title string
	Text  string
}

// staffMessage is a message of the thread with the mail it came in.
type staffMessage struct {
	tickets.Message
	Mail *tickets.InboundEntry
}

// shown is something a page shows: a message key, or a text as it is.
type shown struct {
	Key  string
	Text string
}

// historyLine is a change of the ticket as the page writes it.
type historyLine struct {
	At       time.Time
	Who      shown
	Action   shown
	From, To shown
}

type staffTicketPage struct {
	staffBase
	Ticket   tickets.Ticket
	Assignee string
	Messages []staffMessage
	Mails    []tickets.InboundEntry
	Drafts   []tickets.Draft
	History  []historyLine
	// Bounce is set when mail to the customer has bounced.
	Bounce *tickets.AddressBounce
	Notice string

	Answer      answerBox
	Canned      []cannedOption
	Change      changeForm
	Statuses    []tickets.Status
	Priorities  []tickets.Priority
	Departments []tickets.Department
	Assignees   []tickets.Agent
}

// staffTicket is the ticket the path names when the agent may work it. On
// failure it has answered the request.
func (s *Server) staffTicket(w http.ResponseWriter, r *http.Request, a tickets.Agent) (tickets.Ticket, string, bool) {
	locale := s.locale(w, r)
	t, err := s.staff.StaffTicket(r.Context(), a, r.PathValue("id"))
	if err != nil {
		s.discardBody(w, r)
		if errors.Is(err, tickets.ErrNotFound) {
			s.renderError(w, r, http.StatusNotFound, "error.page_not_found", locale)
		} else {
			s.internalError(w, r, locale, "staff ticket", err)
		}
		return t, locale, false
	}
	return t, locale, true
}

func (s *Server) staffTicketPage(w http.ResponseWriter, r *http.Request, a tickets.Agent) {
	t, locale, ok := s.staffTicket(w, r, a)
	if !ok {
		return
	}
	s.renderStaffTicket(w, r, http.StatusOK, locale, a, staffTicketPage{Ticket: t, Notice: staffNotice(r.URL.Query().Get("notice"))})
}

// ticketChange is the change form as the ticket now is.
func ticketChange(t tickets.Ticket) changeForm {
	return changeForm{Status: string(t.Status), Priority: string(t.Priority),
		Department: strconv.FormatInt(t.Department.ID, 10), Assignee: strconv.FormatInt(t.AssigneeID, 10)}
}

// renderStaffTicket shows the ticket's page; page has the ticket and the
// forms as sent, if any.
func (s *Server) renderStaffTicket(w http.ResponseWriter, r *http.Request, status int, locale string, a tickets.Agent, page staffTicketPage) {
	ctx := r.Context()
	t := page.Ticket
	fail := func(what string, err error) { s.internalError(w, r, locale, what, err, "ticket", t.TrackingID) }
	msgs, err := s.store.Thread(ctx, t.ID, true)
	if err != nil {
		fail("read thread", err)
		return
	}
	if page.Mails, err = s.staff.InboundOfTicket(ctx, t.ID); err != nil {
		fail("read ticket's mail", err)
		return
	}
	if page.Drafts, err = s.staff.Drafts(ctx, t.ID); err != nil {
		fail("read drafts", err)
		return
	}
	history, err := s.staff.StaffHistory(ctx, t.ID)
	if err != nil {
		fail("read history", err)
		return
	}
	bounce, bouncing, err := s.staff.Bouncing(ctx, t.CustomerEmail)
	if err != nil {
		fail("read bounces", err)
		return
	}
	if bouncing {
		page.Bounce = &bounce
	}
	canned, err := s.staff.CannedFor(ctx, t.Department.ID)
	if err != nil {
		fail("read canned responses", err)
		return
	}
	if page.Assignees, err = s.staff.AgentsOf(ctx, t.Department.ID); err != nil {
		fail("read agents", err)
		return
	}
	if page.Departments, err = s.departmentsOf(ctx, a); err != nil {
		fail("read departments", err)
		return
	}
	// Names for the history: every agent and department, those of other
	// departments too, as changes may have come from or gone to them.
	agents, err := s.staff.Agents(ctx)
	if err != nil {
		fail("read agents", err)
		return
	}
	depts, err := s.store.Departments(ctx)
	if err != nil {
		fail("read departments", err)
		return
	}
	names := historyNames{agents: map[int64]string{}, departments: map[int64]string{}}
	for _, ag := range agents {
		names.agents[ag.ID] = ag.Name
	}
	for _, d := range depts {
		names.departments[d.ID] = d.Name
	}

	page.staffBase = staffBase{base: base{Title: "staff.ticket.title", TitleData: t}, Agent: a, Section: "queue"}
	page.Assignee = names.agents[t.AssigneeID]
	mails := make(map[int64]*tickets.InboundEntry, len(page.Mails))
	for i := range page.Mails {
		mails[page.Mails[i].ID] = &page.Mails[i]
	}
	page.Messages = make([]staffMessage, len(msgs))
	for i, m := range msgs {
		page.Messages[i] = staffMessage{Message: m, Mail: mails[m.InboundID]}
	}
	page.History = make([]historyLine, len(history))
	for i, h := range history {
		page.History[i] = names.line(h)
	}
	page.Canned = make([]cannedOption, len(canned))
	for i, c := range canned {
		page.Canned[i] = cannedOption{ID: c.ID, Title: c.Title, Text: tickets.FillCanned(c.Body, t)}
	}
	page.Answer.Limits = s.limits
	if page.Change.Status == "" {
		page.Change = ticketChange(t)
	}
	page.Statuses, page.Priorities = staffStatuses(), staffPriorities()
	s.render(w, r, status, pageStaffTicket, locale, page)
}

// historyNames name the agents and departments a history refers to by ID.
type historyNames struct {
	agents, departments map[int64]string
}

// historyActions are the changes the page has words for.
func historyAction(action string) shown {
	switch action {
	case "created", "acknowledgement_suppressed", "message", "status", "priority", "department", "assignee",
		"answer", "note", "reply_held", "draft_posted", "draft_discarded", "draft_expired", "auto_reply",
		"delivery_failed", "released_from_quarantine":
		return shown{Key: "staff.history." + action}
	}
	return shown{Text: action}
}

func (n historyNames) line(h tickets.HistoryEntry) historyLine {
	l := historyLine{At: h.At, Who: n.actor(h.Actor), Action: historyAction(h.Action)}
	l.From, l.To = n.value(h.Action, h.OldValue), n.value(h.Action, h.NewValue)
	return l
}

// actor names who made a change: "agent:3 ana@example.com" is the agent's
// name, "customer:<address>" the address.
func (n historyNames) actor(actor string) shown {
	switch {
	case actor == "system":
		return shown{Key: "staff.history.system"}
	case strings.HasPrefix(actor, "customer:"):
		return shown{Text: strings.TrimPrefix(actor, "customer:")}
	case strings.HasPrefix(actor, "agent:"):
		idText, email, _ := strings.Cut(strings.TrimPrefix(actor, "agent:"), " ")
		if id, err := strconv.ParseInt(idText, 10, 64); err == nil && n.agents[id] != "" {
			return shown{Text: n.agents[id]}
		}
		if email != "" {
			return shown{Text: email}
		}
	}
	return shown{Text: actor}
}

// value writes a value of a change as people read it.
func (n historyNames) value(action, v string) shown {
	switch action {
	case "created":
		if v == "web" || v == "email" {
			return shown{Key: "staff.history.via_" + v}
		}
	case "status":
		if validStatus(tickets.Status(v)) {
			return shown{Key: "status." + v}
		}
	case "priority":
		if validPriority(tickets.Priority(v)) {
			return shown{Key: "priority." + v}
		}
	case "department":
		if id, err := strconv.ParseInt(v, 10, 64); err == nil && n.departments[id] != "" {
			return shown{Text: n.departments[id]}
		}
	case "assignee":
		id, err := strconv.ParseInt(v, 10, 64)
		if err == nil && id == 0 {
			return shown{Key: "staff.unassigned"}
		}
		if n.agents[id] != "" {
			return shown{Text: n.agents[id]}
		}
	case "answer", "note", "message", "draft_posted":
		if v != "" {
			return shown{Text: "#" + v}
		}
	}
	return shown{Text: v}
}

// answerFields are the fields of the answer form with the bytes read of
// each.
func answerFields() map[string]int64 {
	return map[string]int64{"message": 4 * tickets.MaxMessageLength, "internal": 10, "canned": 20, "action": 20}
}

// staffAnswer adds an answer or an internal note to the ticket, or, asked
// to insert a canned response, shows the form again with its text added.
func (s *Server) staffAnswer(w http.ResponseWriter, r *http.Request, a tickets.Agent) {
	t, locale, ok := s.staffTicket(w, r, a)
	if !ok {
		return
	}
	p, ok := s.readUpload(w, r, locale, answerFields())
	if !ok {
		return
	}
	defer p.release()
	v := p.values
	page := staffTicketPage{Ticket: t, Answer: answerBox{
		Form:   answerForm{Message: v.Get("message"), Internal: v.Get("internal") != "", Canned: v.Get("canned"), HadFiles: p.hadFiles},
		Errors: p.errs,
	}}
	if v.Get("action") == "insert" {
		s.insertCanned(w, r, locale, a, page)
		return
	}
	if p.tooLarge {
		s.renderStaffTicket(w, r, http.StatusRequestEntityTooLarge, locale, a, page)
		return
	}
	if len(p.errs) > 0 {
		s.renderStaffTicket(w, r, http.StatusUnprocessableEntity, locale, a, page)
		return
	}
	_, err := s.staff.AnswerTicket(r.Context(), a, t.ID, tickets.Answer{Text: page.Answer.Form.Message, Attachments: p.attachments(), Internal: page.Answer.Form.Internal})
	var fe tickets.FieldErrors
	switch {
	case errors.As(err, &fe):
		page.Answer.Errors.fromStore(fe)
		s.renderStaffTicket(w, r, http.StatusUnprocessableEntity, locale, a, page)
		return
	case errors.Is(err, tickets.ErrNotFound):
		s.renderError(w, r, http.StatusNotFound, "error.page_not_found", locale)
		return
	case err != nil:
		s.internalError(w, r, locale, "answer ticket", err, "ticket", t.TrackingID)
		return
	}
	done := "answered"
	if page.Answer.Form.Internal {
		done = "noted"
	}
	s.log.Info("ticket answered", "ticket", t.TrackingID, "agent", a.ID, "internal", page.Answer.Form.Internal, "attachments", len(p.files))
	http.Redirect(w, r, staffPath+"/tickets/"+t.TrackingID+"?notice="+done, http.StatusSeeOther)
}

// insertCanned shows the answer form again with the chosen canned
// response's text added to what was typed: the page's script does the
// same without a round trip.
func (s *Server) insertCanned(w http.ResponseWriter, r *http.Request, locale string, a tickets.Agent, page staffTicketPage) {
	canned, err := s.staff.CannedFor(r.Context(), page.Ticket.Department.ID)
	if err != nil {
		s.internalError(w, r, locale, "read canned responses", err, "ticket", page.Ticket.TrackingID)
		return
	}
	form := &page.Answer.Form
	for _, c := range canned {
		if strconv.FormatInt(c.ID, 10) != form.Canned {
			continue
		}
		text := tickets.FillCanned(c.Body, page.Ticket)
		if strings.TrimSpace(form.Message) != "" {
			text = strings.TrimRightFunc(form.Message, unicode.IsSpace) + "\n\n" + text
		}
		form.Message = text
		s.renderStaffTicket(w, r, http.StatusOK, locale, a, page)
		return
	}
	page.Answer.Errors.set("canned", "staff.answer.choose_canned", nil)
	s.renderStaffTicket(w, r, http.StatusUnprocessableEntity, locale, a, page)
}

// staffUpdate changes the ticket's status, priority, department or
// assignee: those the agent changed on the form, so that a change someone
// else made meanwhile to another of them stays.
func (s *Server) staffUpdate(w http.ResponseWriter, r *http.Request, a tickets.Agent) {
	t, locale, ok := s.staffTicket(w, r, a)
	if !ok {
		return
	}
	v, ok := s.readSmallForm(w, r, locale)
	if !ok {
		return
	}
	form := changeForm{Status: v.Get("status"), Priority: v.Get("priority"), Department: v.Get("department"),
		Assignee: v.Get("assignee"), Errors: formErrors{}}
	if form.Assignee == "" {
		form.Assignee = "0"
	}
	now := ticketChange(t)
	// was is the form as the page showed it; a form from elsewhere is
	// compared with the ticket as it is.
	changed := func(field, value, current string) bool {
		if v.Has("was_" + field) {
			return value != v.Get("was_"+field)
		}
		return value != current
	}
	var c tickets.TicketChange
	if changed("status", form.Status, now.Status) {
		st := tickets.Status(form.Status)
		if !validStatus(st) {
			form.Errors.set("status", "staff.change.bad_value", nil)
		}
		c.Status = &st
	}
	if changed("priority", form.Priority, now.Priority) {
		p := tickets.Priority(form.Priority)
		if !validPriority(p) {
			form.Errors.set("priority", "staff.change.bad_value", nil)
		}
		c.Priority = &p
	}
	if changed("department", form.Department, now.Department) {
		id, err := strconv.ParseInt(form.Department, 10, 64)
		if err != nil || !a.Sees(id) {
			form.Errors.set("department", "staff.change.bad_value", nil)
		}
		c.DepartmentID = &id
	}
	if changed("assignee", form.Assignee, now.Assignee) {
		id, err := strconv.ParseInt(form.Assignee, 10, 64)
		if err != nil || id < 0 {
			form.Errors.set("assignee", "staff.change.bad_value", nil)
		}
		c.AssigneeID = &id
	}
	again := func(status int) {
		s.renderStaffTicket(w, r, status, locale, a, staffTicketPage{Ticket: t, Change: form})
	}
	if len(form.Errors) > 0 {
		again(http.StatusUnprocessableEntity)
		return
	}
	if c == (tickets.TicketChange{}) {
		http.Redirect(w, r, staffPath+"/tickets/"+t.TrackingID+"?notice=unchanged", http.StatusSeeOther)
		return
	}
	err := s.staff.UpdateTicket(r.Context(), a, t.ID, c)
	switch {
	case errors.Is(err, tickets.ErrInvalid):
		// The values were checked above: what is left is an assignee who
		// does not work the (new) department.
		form.Errors.set("assignee", "staff.change.assignee_elsewhere", nil)
		again(http.StatusUnprocessableEntity)
		return
	case errors.Is(err, tickets.ErrNotFound):
		s.renderError(w, r, http.StatusNotFound, "error.page_not_found", locale)
		return
	case err != nil:
		s.internalError(w, r, locale, "update ticket", err, "ticket", t.TrackingID)
		return
	}
	http.Redirect(w, r, staffPath+"/tickets/"+t.TrackingID+"?notice=updated", http.StatusSeeOther)
}

// staffAttachment serves a file of the ticket's thread, internal notes'
// files too.
func (s *Server) staffAttachment(w http.ResponseWriter, r *http.Request, a tickets.Agent) {
	t, locale, ok := s.staffTicket(w, r, a)
	if !ok {
		return
	}
	s.sendFile(w, r, locale, t.TrackingID, func(ctx context.Context) (storedFile, error) {
		id, err := strconv.ParseInt(r.PathValue("n"), 10, 64)
		if err != nil {
			return storedFile{}, tickets.ErrNotFound
		}
		f, err := s.staff.StaffAttachment(ctx, t.ID, id)
		return storedFile{Name: f.Filename, Size: f.Size, SHA256: f.SHA256}, err
	})
}

// staffRawSource serves a received mail as it arrived, as a text file:
// to admins, and to the agents who work the ticket it concerns.
func (s *Server) staffRawSource(w http.ResponseWriter, r *http.Request, a tickets.Agent) {
	locale := s.locale(w, r)
	s.sendFile(w, r, locale, "inbound "+r.PathValue("inbound"), func(ctx context.Context) (storedFile, error) {
		id, err := strconv.ParseInt(r.PathValue("inbound"), 10, 64)
		if err != nil {
			return storedFile{}, tickets.ErrNotFound
		}
		e, err := s.staff.InboundMailEntry(ctx, id)
		if err != nil {
			return storedFile{}, err
		}
		if !a.IsAdmin() {
			if e.TrackingID == "" {
				return storedFile{}, fmt.Errorf("inbound mail %d of no ticket: %w", id, tickets.ErrNotFound)
			}
			if _, err := s.staff.StaffTicket(ctx, a, e.TrackingID); err != nil {
				return storedFile{}, err
			}
		}
		if e.RawSHA256 == nil { // pruned past its retention
			return storedFile{}, fmt.Errorf("raw source of inbound mail %d: %w", id, tickets.ErrNotFound)
		}
		return storedFile{Name: fmt.Sprintf("mail-%d.eml.txt", id), Size: e.RawSize, SHA256: e.RawSHA256,
			ContentType: "text/plain; charset=utf-8"}, nil
	})
}
