package web

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/helpdeskgw/helpdesk/tickets"
)

// queuePerPage is how many tickets a page of the queue lists.
const queuePerPage = 25

// queueForm is the queue's filters as the address gives them.
type queueForm struct {
	// Status: "open" (the default: all but Resolved), "all", or a status.
	Status   string
	Priority string
	// Department is a department's ID, "" for all the agent works.
	Department string
	// Assignee: "" any, "me", "none", or an agent's ID.
	Assignee string
	Query    string
	Page     int
}

func readQueueForm(q url.Values) queueForm {
	f := queueForm{Status: q.Get("status"), Priority: q.Get("priority"), Department: q.Get("department"),
		Assignee: q.Get("assignee"), Query: strings.TrimSpace(q.Get("q"))}
	f.Page, _ = strconv.Atoi(q.Get("page"))
	f.Page = max(f.Page, 1)
	return f
}

// values are the filters as an address's query, on page n.
func (f queueForm) values(page int) string {
	v := url.Values{}
	for k, s := range map[string]string{"status": f.Status, "priority": f.Priority, "department": f.Department,
		"assignee": f.Assignee, "q": f.Query} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if page > 1 {
		v.Set("page", strconv.Itoa(page))
	}
	if len(v) == 0 {
		return staffPath
	}
	return staffPath + "?" + v.Encode()
}

// filter is the store's filter for the form; what the agent may not choose
// is left out.
func (f queueForm) filter(a tickets.Agent, depts []tickets.Department) tickets.QueueFilter {
	qf := tickets.QueueFilter{Query: f.Query, Page: f.Page, PerPage: queuePerPage}
	switch st := tickets.Status(f.Status); {
	case f.Status == "all":
		qf.AllStatuses = true
	case validStatus(st):
		qf.Statuses = []tickets.Status{st}
	}
	if p := tickets.Priority(f.Priority); validPriority(p) {
		qf.Priority = p
	}
	if id, err := strconv.ParseInt(f.Department, 10, 64); err == nil {
		for _, d := range depts {
			if d.ID == id {
				qf.DepartmentID = id
			}
		}
	}
	switch f.Assignee {
	case "me":
		qf.AssigneeID = a.ID
	case "none":
		qf.AssigneeID = -1
	default:
		if id, err := strconv.ParseInt(f.Assignee, 10, 64); err == nil && id > 0 {
			qf.AssigneeID = id
		}
	}
	return qf
}

// staffStatuses are the statuses, in the order of their work.
func staffStatuses() []tickets.Status {
	return []tickets.Status{tickets.StatusNew, tickets.StatusWaitingReply, tickets.StatusReplied,
		tickets.StatusInProgress, tickets.StatusOnHold, tickets.StatusResolved}
}

// staffPriorities are the priorities staff may set.
func staffPriorities() []tickets.Priority {
	return []tickets.Priority{tickets.PriorityLow, tickets.PriorityMedium, tickets.PriorityHigh, tickets.PriorityCritical}
}

func validStatus(st tickets.Status) bool {
	for _, v := range staffStatuses() {
		if v == st {
			return true
		}
	}
	return false
}

func validPriority(p tickets.Priority) bool {
	for _, v := range staffPriorities() {
		if v == p {
			return true
		}
	}
	return false
}

type queuePage struct {
	staffBase
	Form        queueForm
	Items       []tickets.QueueItem
	Total       int
	Page, Pages int
	// PrevURL and NextURL lead to the pages around, "" at either end.
	PrevURL, NextURL string
	Statuses         []tickets.Status
	Priorities       []tickets.Priority
	Departments      []tickets.Department
	Agents           []tickets.Agent
}

// staffQueue lists the tickets of the agent's departments, filtered.
func (s *Server) staffQueue(w http.ResponseWriter, r *http.Request, a tickets.Agent) {
	locale := s.locale(w, r)
	ctx := r.Context()
	depts, err := s.departmentsOf(ctx, a)
	if err != nil {
		s.internalError(w, r, locale, "list departments", err)
		return
	}
	agents, err := s.colleagues(ctx, a)
	if err != nil {
		s.internalError(w, r, locale, "list agents", err)
		return
	}
	form := readQueueForm(r.URL.Query())
	items, total, err := s.staff.Queue(ctx, a, form.filter(a, depts))
	if err != nil {
		s.internalError(w, r, locale, "read queue", err)
		return
	}
	page := queuePage{
		staffBase: staffBase{base: base{Title: "staff.queue.title"}, Agent: a, Section: "queue"},
		Form:      form, Items: items, Total: total, Page: form.Page, Pages: max(1, (total+queuePerPage-1)/queuePerPage),
		Statuses: staffStatuses(), Priorities: staffPriorities(), Departments: depts, Agents: agents,
	}
	if page.Page > 1 {
		page.PrevURL = form.values(min(page.Page-1, page.Pages))
	}
	if page.Page < page.Pages {
		page.NextURL = form.values(page.Page + 1)
	}
	s.render(w, r, http.StatusOK, pageStaffQueue, locale, page)
}

// departmentsOf are the departments the agent works: every one for an
// admin.
func (s *Server) departmentsOf(ctx context.Context, a tickets.Agent) ([]tickets.Department, error) {
	if a.IsAdmin() {
		return s.store.Departments(ctx)
	}
	return a.Departments, nil
}

// colleagues are the enabled agents who work a department the agent works,
// admins included: those the agent may find tickets assigned to.
func (s *Server) colleagues(ctx context.Context, a tickets.Agent) ([]tickets.Agent, error) {
	all, err := s.staff.Agents(ctx)
	if err != nil {
		return nil, err
	}
	var out []tickets.Agent
	for _, b := range all {
		if b.Disabled {
			continue
		}
		shares := a.IsAdmin() || b.IsAdmin()
		for _, d := range b.Departments {
			shares = shares || a.Sees(d.ID)
		}
		if shares {
			out = append(out, b)
		}
	}
	return out, nil
}
