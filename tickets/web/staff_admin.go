package web

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/helpdeskgw/helpdesk/tickets"
)

// The admins' page: departments, mailboxes, agents, canned responses, the
// quarantine, the audit log and the scheduled jobs. Each form posts to its
// own address; a form with errors comes back with what was typed, the
// rest of the page as it is.

// adminSent is a form of the admins' page as it was sent, with its
// errors: the page shows it so in place of the stored values.
type adminSent struct {
	// form names the form: "new_department", "department", "new_agent",
	// "agent", "password", "new_canned", "canned"; id is the row's.
	form   string
	id     int64
	values url.Values
	errs   formErrors
}

func (sent *adminSent) is(form string, id int64) bool {
	return sent != nil && sent.form == form && sent.id == id
}

// errorsAs are the sent form's errors, named after the fields of the form
// with that prefix (the page has many forms with the same fields).
func (sent *adminSent) errorsAs(prefix string) formErrors {
	out := formErrors{}
	for field, e := range sent.errs {
		out.set(field, e.Key, e.Data)
		out[field].Field = prefix + "-" + field
	}
	return out
}

type departmentForm struct {
	Slug, Name, Address, Locale, Days string
}

type departmentRow struct {
	tickets.Department
	Form   departmentForm
	Errors formErrors
}

type agentForm struct {
	Email, Name, Role string
	Departments       map[string]bool // by slug
	NotifyNew         bool
	Disabled          bool
}

type agentRow struct {
	tickets.Agent
	Form           agentForm
	Errors         formErrors
	PasswordErrors formErrors
}

type cannedForm struct {
	Department, Title, Body string
}

type cannedRow struct {
	tickets.Canned
	Department string // its name, "" for every department
	// Prefix names the form's fields on the page.
	Prefix string
	Form   cannedForm
	Errors formErrors
	// Choices are the departments it may be for.
	Choices []tickets.Department
}

type adminPage struct {
	staffBase
	Notice string

	Departments    []departmentRow
	NewDepartment  departmentRow
	Mailboxes      []tickets.Mailbox
	Agents         []agentRow
	NewAgent       agentRow
	Canned         []cannedRow
	NewCanned      cannedRow
	Quarantine     []tickets.InboundEntry
	Audit          []tickets.AuditEntry
	Jobs           []tickets.JobRun
	AllDepartments []tickets.Department
	Locales        []string
	Roles          []tickets.Role
	MinPassword    int
}

// Lengths of the admins' lists.
const (
	adminQuarantineRows = 50
	adminAuditRows      = 100
)

func (s *Server) adminPage(w http.ResponseWriter, r *http.Request, a tickets.Agent) {
	s.renderAdmin(w, r, http.StatusOK, s.locale(w, r), a, nil, staffNotice(r.URL.Query().Get("notice")))
}

// renderAdmin shows the admins' page, with sent (if not nil) as it was
// sent.
func (s *Server) renderAdmin(w http.ResponseWriter, r *http.Request, status int, locale string, a tickets.Agent, sent *adminSent, notice string) {
	ctx := r.Context()
	page := adminPage{
		staffBase: staffBase{base: base{Title: "staff.admin.title"}, Agent: a, Section: "admin"},
		Notice:    notice, Locales: []string{tickets.LocaleSpanish, tickets.LocaleEnglish},
		Roles: []tickets.Role{tickets.RoleAgent, tickets.RoleAdmin}, MinPassword: tickets.MinPasswordLength,
	}
	var err error
	fail := func(what string, err error) { s.internalError(w, r, locale, what, err) }
	if page.AllDepartments, err = s.store.Departments(ctx); err != nil {
		fail("list departments", err)
		return
	}
	if page.Mailboxes, err = s.staff.Mailboxes(ctx); err != nil {
		fail("list mailboxes", err)
		return
	}
	agents, err := s.staff.Agents(ctx)
	if err != nil {
		fail("list agents", err)
		return
	}
	canned, err := s.staff.CannedFor(ctx, 0)
	if err != nil {
		fail("list canned responses", err)
		return
	}
	if page.Quarantine, err = s.staff.Inbound(ctx, tickets.InboundFilter{Disposition: tickets.DispositionQuarantined, Limit: adminQuarantineRows}); err != nil {
		fail("list quarantine", err)
		return
	}
	if page.Audit, err = s.staff.AuditLog(ctx, adminAuditRows); err != nil {
		fail("read audit log", err)
		return
	}
	if page.Jobs, err = s.staff.JobRuns(ctx); err != nil {
		fail("read job runs", err)
		return
	}

	page.NewDepartment = departmentRow{Form: departmentForm{Locale: tickets.LocaleSpanish}}
	if sent.is("new_department", 0) {
		page.NewDepartment = departmentRow{Form: sentDepartment(sent.values), Errors: sent.errorsAs("new-department")}
	}
	deptNames := map[int64]string{}
	for _, d := range page.AllDepartments {
		deptNames[d.ID] = d.Name
		row := departmentRow{Department: d, Form: departmentForm{Name: d.Name, Locale: d.Locale, Days: strconv.Itoa(d.AutoResolveDays)}}
		if sent.is("department", d.ID) {
			row.Form, row.Errors = sentDepartment(sent.values), sent.errorsAs(fmt.Sprintf("department-%d", d.ID))
		}
		page.Departments = append(page.Departments, row)
	}

	page.NewAgent = agentRow{Form: agentForm{Role: string(tickets.RoleAgent), Departments: map[string]bool{}, NotifyNew: true}}
	if sent.is("new_agent", 0) {
		page.NewAgent = agentRow{Form: sentAgent(sent.values), Errors: sent.errorsAs("new-agent")}
	}
	for _, ag := range agents {
		row := agentRow{Agent: ag, Form: agentForm{Name: ag.Name, Role: string(ag.Role), Departments: map[string]bool{},
			NotifyNew: ag.NotifyNew, Disabled: ag.Disabled}}
		for _, d := range ag.Departments {
			row.Form.Departments[d.Slug] = true
		}
		prefix := fmt.Sprintf("agent-%d", ag.ID)
		if sent.is("agent", ag.ID) {
			row.Form, row.Errors = sentAgent(sent.values), sent.errorsAs(prefix)
		}
		if sent.is("password", ag.ID) {
			row.PasswordErrors = sent.errorsAs(prefix + "-password")
		}
		page.Agents = append(page.Agents, row)
	}

	page.NewCanned = cannedRow{Prefix: "new-canned", Form: cannedForm{Department: "0"}, Choices: page.AllDepartments}
	if sent.is("new_canned", 0) {
		page.NewCanned.Form, page.NewCanned.Errors = sentCanned(sent.values), sent.errorsAs(page.NewCanned.Prefix)
	}
	for _, c := range canned {
		row := cannedRow{Canned: c, Department: deptNames[c.DepartmentID], Prefix: fmt.Sprintf("canned-%d", c.ID),
			Form: cannedForm{Department: strconv.FormatInt(c.DepartmentID, 10), Title: c.Title, Body: c.Body}, Choices: page.AllDepartments}
		if sent.is("canned", c.ID) {
			row.Form, row.Errors = sentCanned(sent.values), sent.errorsAs(row.Prefix)
		}
		page.Canned = append(page.Canned, row)
	}
	s.render(w, r, status, pageStaffAdmin, locale, page)
}

func sentDepartment(v url.Values) departmentForm {
	return departmentForm{Slug: v.Get("slug"), Name: v.Get("name"), Address: v.Get("address"), Locale: v.Get("locale"), Days: v.Get("auto_resolve_days")}
}

func sentAgent(v url.Values) agentForm {
	f := agentForm{Email: v.Get("email"), Name: v.Get("name"), Role: v.Get("role"), Departments: map[string]bool{},
		NotifyNew: v.Get("notify_new") != "", Disabled: v.Get("disabled") != ""}
	for _, slug := range v["departments"] {
		f.Departments[slug] = true
	}
	return f
}

func sentCanned(v url.Values) cannedForm {
	return cannedForm{Department: v.Get("department"), Title: v.Get("title"), Body: v.Get("body")}
}

// adminForm reads a form of the admins' page. On failure it has answered
// the request.
func (s *Server) adminForm(w http.ResponseWriter, r *http.Request, form, idName string) (*adminSent, string, bool) {
	locale := s.locale(w, r)
	sent := &adminSent{form: form, errs: formErrors{}}
	if idName != "" {
		id, err := strconv.ParseInt(r.PathValue(idName), 10, 64)
		if err != nil || id <= 0 {
			s.discardBody(w, r)
			s.renderError(w, r, http.StatusNotFound, "error.page_not_found", locale)
			return nil, locale, false
		}
		sent.id = id
	}
	v, ok := s.readSmallForm(w, r, locale)
	sent.values = v
	return sent, locale, ok
}

// adminDone answers an admin's form as the store's verdict err says:
// back to the page with notice (at anchor) when it is nil, the form again
// with its errors when it is the form's fault (ErrInvalid, ErrConflict,
// or errors found before).
func (s *Server) adminDone(w http.ResponseWriter, r *http.Request, locale string, a tickets.Agent, sent *adminSent, err error, notice, anchor string) {
	switch {
	case err == nil && len(sent.errs) == 0:
		http.Redirect(w, r, staffPath+"/admin?notice="+notice+"#"+anchor, http.StatusSeeOther)
	case err == nil, errors.Is(err, tickets.ErrInvalid), errors.Is(err, tickets.ErrConflict):
		if err != nil && len(sent.errs) == 0 {
			key := "staff.admin.invalid"
			if errors.Is(err, tickets.ErrConflict) {
				key = "staff.admin.conflict"
			}
			sent.errs.set("form", key, nil)
		}
		s.renderAdmin(w, r, http.StatusUnprocessableEntity, locale, a, sent, "")
	case errors.Is(err, tickets.ErrNotFound):
		s.renderError(w, r, http.StatusNotFound, "error.page_not_found", locale)
	default:
		s.internalError(w, r, locale, "admin "+sent.form, err)
	}
}

func required(sent *adminSent, fields ...string) {
	for _, f := range fields {
		if strings.TrimSpace(sent.values.Get(f)) == "" {
			sent.errs.set(f, tickets.FieldRequired, nil)
		}
	}
}

func (s *Server) adminAddDepartment(w http.ResponseWriter, r *http.Request, a tickets.Agent) {
	sent, locale, ok := s.adminForm(w, r, "new_department", "")
	if !ok {
		return
	}
	required(sent, "slug", "name", "address")
	if len(sent.errs) > 0 {
		s.adminDone(w, r, locale, a, sent, nil, "", "")
		return
	}
	f := sentDepartment(sent.values)
	d, err := s.staff.AddDepartment(r.Context(), tickets.Department{Slug: f.Slug, Name: f.Name, Address: f.Address, Locale: f.Locale})
	if errors.Is(err, tickets.ErrConflict) {
		sent.errs.set("slug", "staff.admin.department_taken", nil)
	}
	if err == nil {
		// The store audits the changes it is asked for by name; a new
		// department is audited here.
		err = s.staff.Audit(r.Context(), a.Actor(), "department.add", d.Slug, fmt.Sprintf("name=%q address=%s locale=%s", d.Name, d.Address, d.Locale))
	}
	s.adminDone(w, r, locale, a, sent, err, "department_added", "departments")
}

func (s *Server) adminUpdateDepartment(w http.ResponseWriter, r *http.Request, a tickets.Agent) {
	sent, locale, ok := s.adminForm(w, r, "department", "dept")
	if !ok {
		return
	}
	required(sent, "name")
	f := sentDepartment(sent.values)
	days, err := strconv.Atoi(strings.TrimSpace(f.Days))
	if f.Days == "" {
		days, err = 0, nil
	}
	if err != nil || days < 0 {
		sent.errs.set("auto_resolve_days", "staff.admin.bad_days", nil)
	}
	if !tickets.ValidLocale(f.Locale) {
		sent.errs.set("locale", "staff.change.bad_value", nil)
	}
	if len(sent.errs) > 0 {
		s.adminDone(w, r, locale, a, sent, nil, "", "")
		return
	}
	err = s.staff.UpdateDepartment(r.Context(), a.Actor(), tickets.Department{ID: sent.id, Name: f.Name, Locale: f.Locale, AutoResolveDays: days})
	s.adminDone(w, r, locale, a, sent, err, "department_updated", "departments")
}

// adminSetMailbox starts or stops the polling of a department's mailbox.
func (s *Server) adminSetMailbox(w http.ResponseWriter, r *http.Request, a tickets.Agent) {
	locale := s.locale(w, r)
	v, ok := s.readSmallForm(w, r, locale)
	if !ok {
		return
	}
	slug := r.PathValue("slug")
	enabled := v.Get("enabled") == "true"
	err := s.staff.SetMailboxEnabled(r.Context(), slug, enabled)
	action, notice := "mailbox.disable", "mailbox_disabled"
	if enabled {
		action, notice = "mailbox.enable", "mailbox_enabled"
	}
	if err == nil {
		err = s.staff.Audit(r.Context(), a.Actor(), action, slug, "")
	}
	s.adminDone(w, r, locale, a, &adminSent{form: "mailbox"}, err, notice, "mailboxes")
}

// checkAgent checks the fields of an agent's form that the store would
// refuse with one error for all; it returns the role.
func checkAgent(sent *adminSent) tickets.Role {
	required(sent, "name")
	role := tickets.Role(sent.values.Get("role"))
	if role != tickets.RoleAgent && role != tickets.RoleAdmin {
		sent.errs.set("role", "staff.change.bad_value", nil)
	}
	return role
}

func checkNewPassword(sent *adminSent) string {
	pw := sent.values.Get("password")
	if len([]rune(pw)) < tickets.MinPasswordLength {
		sent.errs.set("password", "staff.admin.password_short", map[string]int{"Min": tickets.MinPasswordLength})
	}
	return pw
}

func (s *Server) adminAddAgent(w http.ResponseWriter, r *http.Request, a tickets.Agent) {
	sent, locale, ok := s.adminForm(w, r, "new_agent", "")
	if !ok {
		return
	}
	email, err := tickets.ParseEmail(sent.values.Get("email"))
	if err != nil {
		sent.errs.set("email", tickets.FieldBadEmail, nil)
	}
	role := checkAgent(sent)
	pw := checkNewPassword(sent)
	if len(sent.errs) > 0 {
		s.adminDone(w, r, locale, a, sent, nil, "", "")
		return
	}
	_, err = s.staff.AddAgent(r.Context(), a.Actor(), tickets.NewAgent{Email: email, Name: sent.values.Get("name"), Role: role,
		Password: pw, DepartmentSlugs: sent.values["departments"]})
	if errors.Is(err, tickets.ErrConflict) {
		sent.errs.set("email", "staff.admin.agent_taken", nil)
	}
	s.adminDone(w, r, locale, a, sent, err, "agent_added", "agents")
}

func (s *Server) adminUpdateAgent(w http.ResponseWriter, r *http.Request, a tickets.Agent) {
	sent, locale, ok := s.adminForm(w, r, "agent", "agent")
	if !ok {
		return
	}
	role := checkAgent(sent)
	f := sentAgent(sent.values)
	// An admin who locked themselves out could leave the desk without one.
	if sent.id == a.ID && (f.Disabled || role != tickets.RoleAdmin) {
		sent.errs.set("form", "staff.admin.not_yourself", nil)
	}
	if len(sent.errs) > 0 {
		s.adminDone(w, r, locale, a, sent, nil, "", "")
		return
	}
	slugs := slices.Sorted(maps.Keys(f.Departments))
	err := s.staff.UpdateAgent(r.Context(), a.Actor(), sent.id, tickets.AgentChange{Name: &f.Name, Role: &role,
		DepartmentSlugs: &slugs, NotifyNew: &f.NotifyNew, Disabled: &f.Disabled})
	s.adminDone(w, r, locale, a, sent, err, "agent_updated", fmt.Sprintf("agent-%d", sent.id))
}

// adminResetPassword gives an agent a new password, which ends their
// sessions and lifts a lock.
func (s *Server) adminResetPassword(w http.ResponseWriter, r *http.Request, a tickets.Agent) {
	sent, locale, ok := s.adminForm(w, r, "password", "agent")
	if !ok {
		return
	}
	pw := checkNewPassword(sent)
	if len(sent.errs) > 0 {
		s.adminDone(w, r, locale, a, sent, nil, "", "")
		return
	}
	err := s.staff.UpdateAgent(r.Context(), a.Actor(), sent.id, tickets.AgentChange{Password: &pw})
	s.adminDone(w, r, locale, a, sent, err, "password_reset", fmt.Sprintf("agent-%d", sent.id))
}

// adminSaveCanned creates a canned response or, with its ID in the path,
// changes one.
func (s *Server) adminSaveCanned(w http.ResponseWriter, r *http.Request, a tickets.Agent) {
	form, idName := "new_canned", ""
	if r.PathValue("canned") != "" {
		form, idName = "canned", "canned"
	}
	sent, locale, ok := s.adminForm(w, r, form, idName)
	if !ok {
		return
	}
	required(sent, "title", "body")
	f := sentCanned(sent.values)
	dept, err := strconv.ParseInt(f.Department, 10, 64)
	if f.Department == "" {
		dept, err = 0, nil
	}
	if err != nil || dept < 0 {
		sent.errs.set("department", "staff.change.bad_value", nil)
	}
	if dept > 0 {
		depts, err := s.store.Departments(r.Context())
		if err != nil {
			s.internalError(w, r, locale, "list departments", err)
			return
		}
		if !slices.ContainsFunc(depts, func(d tickets.Department) bool { return d.ID == dept }) {
			sent.errs.set("department", "staff.change.bad_value", nil)
		}
	}
	if len(sent.errs) > 0 {
		s.adminDone(w, r, locale, a, sent, nil, "", "")
		return
	}
	_, err = s.staff.SaveCanned(r.Context(), a.Actor(), tickets.Canned{ID: sent.id, DepartmentID: dept, Title: f.Title, Body: f.Body})
	if errors.Is(err, tickets.ErrConflict) {
		sent.errs.set("title", "staff.admin.canned_taken", nil)
	}
	s.adminDone(w, r, locale, a, sent, err, "canned_saved", "canned")
}

func (s *Server) adminDeleteCanned(w http.ResponseWriter, r *http.Request, a tickets.Agent) {
	sent, locale, ok := s.adminForm(w, r, "delete_canned", "canned")
	if !ok {
		return
	}
	err := s.staff.DeleteCanned(r.Context(), a.Actor(), sent.id)
	s.adminDone(w, r, locale, a, sent, err, "canned_deleted", "canned")
}
