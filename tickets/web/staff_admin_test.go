package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/helpdeskgw/helpdesk/tickets"
)

// auditRows counts the audit log's rows of an action.
func (ss *staffSite) auditRows(t *testing.T, action, target string) int {
	t.Helper()
	return ss.count(t, `SELECT count(*) FROM audit_log WHERE action = $1 AND target = $2 AND actor = $3`, action, target, ss.root.Actor())
}

func TestAdminPagesAreRefusedToAgents(t *testing.T) {
	ss := newStaffSite(t, Options{})
	ana := ss.as(t, ss.ana)
	if p := ana.get("/staff"); strings.Contains(p.body, `href="/staff/admin"`) {
		t.Error("an agent's pages link to the admin page")
	}
	auditBefore := ss.count(t, `SELECT count(*) FROM audit_log`)
	dept := fmt.Sprint(ss.billing.ID)
	for _, tc := range []struct {
		method, path string
		form         url.Values
	}{
		{"GET", "/staff/admin", nil},
		{"POST", "/staff/admin/departments", url.Values{"slug": {"x"}, "name": {"X"}, "address": {"x@example.com"}, "locale": {"es"}}},
		{"POST", "/staff/admin/departments/" + dept, url.Values{"name": {"Mine"}, "locale": {"es"}, "auto_resolve_days": {"1"}}},
		{"POST", "/staff/admin/mailboxes/billing", url.Values{"enabled": {"false"}}},
		{"POST", "/staff/admin/agents", url.Values{"email": {"new@example.com"}, "name": {"N"}, "role": {"admin"}, "password": {staffPassword}}},
		{"POST", fmt.Sprint("/staff/admin/agents/", ss.ana.ID), url.Values{"name": {"Ana"}, "role": {"admin"}}},
		{"POST", fmt.Sprint("/staff/admin/agents/", ss.root.ID, "/password"), url.Values{"password": {"taken over at last"}}},
		{"POST", "/staff/admin/canned", url.Values{"title": {"T"}, "body": {"B"}, "department": {"0"}}},
		{"POST", "/staff/admin/canned/1", url.Values{"title": {"T"}, "body": {"B"}, "department": {"0"}}},
		{"POST", "/staff/admin/canned/1/delete", nil},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			var p page
			if tc.method == "GET" {
				p = ana.get(tc.path)
			} else {
				p = ana.post(tc.path, tc.form)
			}
			if p.status != http.StatusNotFound || strings.Contains(p.body, "Registro de auditoría") {
				t.Errorf("%d, want 404", p.status)
			}
		})
	}
	if n := ss.count(t, `SELECT count(*) FROM audit_log`); n != auditBefore {
		t.Errorf("an agent's posts wrote %d audit rows", n-auditBefore)
	}
	if n := ss.count(t, `SELECT count(*) FROM agents WHERE role = 'admin'`); n != 1 {
		t.Errorf("%d admins after an agent's posts", n)
	}
	if _, _, err := ss.store.Login(context.Background(), "root@example.com", staffPassword, time.Hour); err != nil {
		t.Errorf("the admin's password changed: %v", err)
	}
}

func TestAdminActionsAreAudited(t *testing.T) {
	ss := newStaffSite(t, Options{})
	ctx := context.Background()
	if _, err := ss.store.AddMailbox(ctx, tickets.Mailbox{Department: tickets.Department{Slug: "billing"}, URL: "imaps://billing@imap.example.com:993/INBOX", PasswordRef: "env:BILLING_PW"}); err != nil {
		t.Fatal(err)
	}
	canned, err := ss.store.SaveCanned(ctx, "test", tickets.Canned{Title: "Gracias", Body: "Gracias por escribirnos."})
	if err != nil {
		t.Fatal(err)
	}
	root := ss.as(t, ss.root)
	for _, tc := range []struct {
		name         string
		path         string
		form         url.Values
		notice       string
		action       string
		target       string
		check        func(t *testing.T)
		detailToHave string
	}{
		{"add a department", "/staff/admin/departments",
			url.Values{"slug": {"ventas"}, "name": {"Ventas"}, "address": {"ventas@example.com"}, "locale": {"es"}},
			"department_added", "department.add", "ventas", func(t *testing.T) {
				if d, err := ss.store.DepartmentBySlug(ctx, "ventas"); err != nil || d.Name != "Ventas" {
					t.Errorf("department: %+v %v", d, err)
				}
			}, "ventas@example.com"},
		{"change a department", fmt.Sprint("/staff/admin/departments/", ss.billing.ID),
			url.Values{"name": {"Facturación"}, "locale": {"es"}, "auto_resolve_days": {"7"}},
			"department_updated", "department.update", "billing", func(t *testing.T) {
				if d, _ := ss.store.DepartmentBySlug(ctx, "billing"); d.Name != "Facturación" || d.Locale != "es" || d.AutoResolveDays != 7 {
					t.Errorf("department: %+v", d)
				}
			}, "auto_resolve_days=7"},
		{"disable a mailbox", "/staff/admin/mailboxes/billing", url.Values{"enabled": {"false"}},
			"mailbox_disabled", "mailbox.disable", "billing", func(t *testing.T) {
				if m, _ := ss.store.MailboxOf(ctx, "billing"); m.Enabled || m.State != tickets.MailboxDisabled {
					t.Errorf("mailbox: enabled %v, state %s", m.Enabled, m.State)
				}
			}, ""},
		{"enable a mailbox", "/staff/admin/mailboxes/billing", url.Values{"enabled": {"true"}},
			"mailbox_enabled", "mailbox.enable", "billing", func(t *testing.T) {
				if m, _ := ss.store.MailboxOf(ctx, "billing"); !m.Enabled {
					t.Error("mailbox still disabled")
				}
			}, ""},
		{"add an agent", "/staff/admin/agents",
			url.Values{"email": {"Carla@Example.com"}, "name": {"Carla"}, "role": {"agent"}, "password": {"a long enough password"}, "departments": {"billing", "soporte"}},
			"agent_added", "agent.add", "carla@example.com", func(t *testing.T) {
				if _, a, err := ss.store.Login(ctx, "carla@example.com", "a long enough password", time.Hour); err != nil || len(a.Departments) != 2 {
					t.Errorf("new agent: %+v %v", a, err)
				}
			}, "departments=billing,soporte"},
		{"change an agent", fmt.Sprint("/staff/admin/agents/", ss.beto.ID),
			url.Values{"name": {"Beto B."}, "role": {"agent"}, "departments": {"billing"}},
			"agent_updated", "agent.update", "beto@example.com", func(t *testing.T) {
				a, err := ss.store.Agent(ctx, ss.beto.ID)
				if err != nil || a.Name != "Beto B." || a.NotifyNew || a.Disabled || len(a.Departments) != 1 || a.Departments[0].Slug != "billing" {
					t.Errorf("agent: %+v %v", a, err)
				}
			}, "departments=billing"},
		{"disable an agent", fmt.Sprint("/staff/admin/agents/", ss.ana.ID),
			url.Values{"name": {"Ana Agente"}, "role": {"agent"}, "departments": {"billing"}, "notify_new": {"1"}, "disabled": {"1"}},
			"agent_updated", "agent.update", "ana@example.com", func(t *testing.T) {
				if a, _ := ss.store.Agent(ctx, ss.ana.ID); !a.Disabled || !a.NotifyNew {
					t.Errorf("agent: %+v", a)
				}
			}, "disabled=true"},
		{"reset a password", fmt.Sprint("/staff/admin/agents/", ss.beto.ID, "/password"), url.Values{"password": {"brand new password"}},
			"password_reset", "agent.update", "beto@example.com", func(t *testing.T) {
				if _, _, err := ss.store.Login(ctx, "beto@example.com", "brand new password", time.Hour); err != nil {
					t.Errorf("login with the new password: %v", err)
				}
			}, "password"},
		{"add a canned response", "/staff/admin/canned",
			url.Values{"title": {"Reembolso"}, "body": {"Hola {{customer_name}}, ya está."}, "department": {fmt.Sprint(ss.billing.ID)}},
			"canned_saved", "canned.save", "Reembolso", func(t *testing.T) {
				list, _ := ss.store.CannedFor(ctx, ss.billing.ID)
				if len(list) != 2 || list[1].Title != "Reembolso" || list[1].DepartmentID != ss.billing.ID {
					t.Errorf("canned: %+v", list)
				}
			}, ""},
		{"change a canned response", fmt.Sprint("/staff/admin/canned/", canned),
			url.Values{"title": {"Gracias"}, "body": {"Muchas gracias."}, "department": {"0"}},
			"canned_saved", "canned.save", "Gracias", func(t *testing.T) {
				list, _ := ss.store.CannedFor(ctx, ss.soporte.ID)
				if len(list) != 1 || list[0].Body != "Muchas gracias." {
					t.Errorf("canned: %+v", list)
				}
			}, ""},
		{"delete a canned response", fmt.Sprint("/staff/admin/canned/", canned, "/delete"), nil,
			"canned_deleted", "canned.delete", "Gracias", func(t *testing.T) {
				if list, _ := ss.store.CannedFor(ctx, ss.soporte.ID); len(list) != 0 {
					t.Errorf("canned: %+v", list)
				}
			}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := ss.auditRows(t, tc.action, tc.target)
			p := root.post(tc.path, tc.form)
			if p.status != http.StatusSeeOther || !strings.HasPrefix(p.location(), "/staff/admin?notice="+tc.notice+"#") {
				t.Fatalf("%d to %q\n%s", p.status, p.location(), p.body)
			}
			if n := ss.auditRows(t, tc.action, tc.target); n != before+1 {
				t.Errorf("%d new audit rows %s %s, want 1", n-before, tc.action, tc.target)
			}
			if tc.detailToHave != "" {
				if n := ss.count(t, `SELECT count(*) FROM audit_log WHERE action = $1 AND target = $2 AND detail LIKE '%' || $3 || '%'`, tc.action, tc.target, tc.detailToHave); n == 0 {
					t.Errorf("no audit row saying %q", tc.detailToHave)
				}
			}
			tc.check(t)
			if p := root.get(p.location()); p.status != 200 || !p.has("notice") {
				t.Errorf("admin page after: %d", p.status)
			}
		})
	}
	// The audit log shows it all, latest first.
	root.header.Set("Accept-Language", "en")
	p := root.get("/staff/admin")
	for _, want := range []string{"canned.delete", "mailbox.enable", "department.add", ss.root.Actor()} {
		if !strings.Contains(p.body, want) {
			t.Errorf("audit log on the page lacks %q", want)
		}
	}
	if strings.Index(p.body, "canned.delete") > strings.Index(p.body, "department.add") {
		t.Error("the audit log is not latest first")
	}
}

func TestAdminFormErrorsKeepWhatWasTyped(t *testing.T) {
	ss := newStaffSite(t, Options{})
	root := ss.as(t, ss.root)
	root.header.Set("Accept-Language", "en")
	auditBefore := ss.count(t, `SELECT count(*) FROM audit_log`)
	for _, tc := range []struct {
		name    string
		path    string
		form    url.Values
		errorID string
		kept    []string
	}{
		{"short password", "/staff/admin/agents",
			url.Values{"email": {"dana@example.com"}, "name": {"Dana Nueva"}, "role": {"agent"}, "password": {"short"}, "departments": {"soporte"}},
			"error-new-agent-password", []string{`value="dana@example.com"`, `value="Dana Nueva"`, fmt.Sprintf(`id="new-agent-dept-%d" name="departments" value="soporte" checked`, ss.soporte.ID)}},
		{"address taken", "/staff/admin/agents",
			url.Values{"email": {"ana@example.com"}, "name": {"Ana Dos"}, "role": {"agent"}, "password": {staffPassword}},
			"error-new-agent-email", []string{`value="Ana Dos"`}},
		{"bad address", "/staff/admin/agents",
			url.Values{"email": {"not an address"}, "name": {"X"}, "role": {"agent"}, "password": {staffPassword}},
			"error-new-agent-email", []string{`value="not an address"`}},
		{"unknown role", "/staff/admin/agents",
			url.Values{"email": {"e@example.com"}, "name": {"E"}, "role": {"boss"}, "password": {staffPassword}},
			"error-new-agent-role", []string{`value="e@example.com"`}},
		{"department slug taken", "/staff/admin/departments",
			url.Values{"slug": {"billing"}, "name": {"Otra"}, "address": {"otra@example.com"}, "locale": {"es"}},
			"error-new-department-slug", []string{`value="Otra"`, `value="otra@example.com"`}},
		{"department slug malformed", "/staff/admin/departments",
			url.Values{"slug": {"No Vale"}, "name": {"Otra"}, "address": {"otra@example.com"}, "locale": {"es"}},
			"error-new-department-form", []string{`value="No Vale"`}},
		{"negative days", fmt.Sprint("/staff/admin/departments/", ss.billing.ID),
			url.Values{"name": {"Billing typed"}, "locale": {"en"}, "auto_resolve_days": {"-1"}},
			fmt.Sprintf("error-department-%d-auto_resolve_days", ss.billing.ID), []string{`value="Billing typed"`}},
		{"canned without text", "/staff/admin/canned",
			url.Values{"title": {"Sin texto"}, "body": {""}, "department": {"0"}},
			"error-new-canned-body", []string{`value="Sin texto"`}},
		{"canned of no department", "/staff/admin/canned",
			url.Values{"title": {"Perdida"}, "body": {"x"}, "department": {"999999"}},
			"error-new-canned-department", []string{`value="Perdida"`}},
		{"disabling oneself", fmt.Sprint("/staff/admin/agents/", ss.root.ID),
			url.Values{"name": {"Root typed"}, "role": {"admin"}, "disabled": {"1"}},
			fmt.Sprintf("error-agent-%d-form", ss.root.ID), []string{`value="Root typed"`}},
		{"giving up one's admin role", fmt.Sprint("/staff/admin/agents/", ss.root.ID),
			url.Values{"name": {"Root"}, "role": {"agent"}},
			fmt.Sprintf("error-agent-%d-form", ss.root.ID), nil},
		{"short password reset", fmt.Sprint("/staff/admin/agents/", ss.beto.ID, "/password"), url.Values{"password": {"short"}},
			fmt.Sprintf("error-agent-%d-password-password", ss.beto.ID), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := root.post(tc.path, tc.form)
			if p.status != http.StatusUnprocessableEntity || !p.has(tc.errorID) {
				t.Fatalf("%d, want 422 with %s\n%s", p.status, tc.errorID, p.body)
			}
			for _, want := range tc.kept {
				if !strings.Contains(p.body, want) {
					t.Errorf("the page lacks %s", want)
				}
			}
			if strings.Contains(p.body, staffPassword) || strings.Contains(p.body, `value="short"`) {
				t.Error("a password typed came back in the page")
			}
		})
	}
	if n := ss.count(t, `SELECT count(*) FROM audit_log`); n != auditBefore {
		t.Errorf("refused forms wrote %d audit rows", n-auditBefore)
	}
	if a, _ := ss.store.Agent(context.Background(), ss.root.ID); a.Disabled || !a.IsAdmin() {
		t.Error("the admin locked themselves out")
	}
	for _, path := range []string{"/staff/admin/departments/999999", "/staff/admin/agents/999999", "/staff/admin/canned/999999", "/staff/admin/canned/x/delete", "/staff/admin/mailboxes/nope"} {
		if p := root.post(path, url.Values{"name": {"X"}, "locale": {"es"}, "role": {"agent"}, "title": {"T"}, "body": {"B"}, "enabled": {"true"}}); p.status != http.StatusNotFound {
			t.Errorf("POST %s: %d, want 404", path, p.status)
		}
	}
}

func TestAdminPageShowsMailboxesQuarantineAndJobs(t *testing.T) {
	ss := newStaffSite(t, Options{})
	ctx := context.Background()
	mb, err := ss.store.AddMailbox(ctx, tickets.Mailbox{Department: tickets.Department{Slug: "soporte"}, URL: "imaps://soporte@imap.example.com:993/INBOX", PasswordRef: "env:SOPORTE_PW"})
	if err != nil {
		t.Fatal(err)
	}
	if err := ss.store.SetMailboxState(ctx, mb.ID, tickets.MailboxError, "host-1", "login failed: AUTHENTICATIONFAILED"); err != nil {
		t.Fatal(err)
	}
	// A delivery report about no mail of ours is quarantined.
	q, err := ss.store.IngestMail(ctx, &tickets.InboundMail{Source: "smtp", Department: ss.billing, MessageID: "dsn@mx.example.net",
		From: tickets.Address{Email: "mailer-daemon@mx.example.net"}, Subject: "Undelivered Mail", Raw: tickets.BytesContent([]byte("raw dsn")),
		Bounce: &tickets.Bounce{OriginalMessageID: "unknown@example.com"}})
	if err != nil || q.Disposition != tickets.DispositionQuarantined {
		t.Fatalf("bounce: %+v %v", q, err)
	}
	if _, err := ss.store.RunJob(ctx, "auto_resolve", "host-1:42", func(context.Context) (int, error) { return 3, nil }); err != nil {
		t.Fatal(err)
	}
	root := ss.as(t, ss.root)
	root.header.Set("Accept-Language", "en")
	p := root.get("/staff/admin")
	if p.status != 200 {
		t.Fatalf("admin page: %d", p.status)
	}
	for _, want := range []string{
		"imaps://soporte@imap.example.com:993/INBOX", ">Error<", "login failed: AUTHENTICATIONFAILED", `id="mailbox-soporte-disable"`,
		fmt.Sprintf(`id="quarantined-%d"`, q.InboundID), "delivery report about no mail", fmt.Sprintf(`href="/staff/inbound/%d/raw"`, q.InboundID),
		`id="job-auto_resolve"`, "host-1:42",
		`id="department-` + fmt.Sprint(ss.billing.ID) + `"`, `id="agent-` + fmt.Sprint(ss.beto.ID) + `"`, `id="new-canned"`,
	} {
		if !strings.Contains(p.body, want) {
			t.Errorf("admin page lacks %q", want)
		}
	}
	if m := strings.Contains(p.body, "<script>") || strings.Contains(p.body, " style="); m {
		t.Error("admin page has inline code, which the CSP forbids")
	}
	// The quarantined mail belongs to no ticket: the admin may read it,
	// agents not.
	raw := fmt.Sprintf("/staff/inbound/%d/raw", q.InboundID)
	if r := root.get(raw); r.status != 200 || r.body != "raw dsn" {
		t.Errorf("admin reading quarantined mail: %d %q", r.status, r.body)
	}
	if r := ss.as(t, ss.ana).get(raw); r.status != 404 {
		t.Errorf("agent reading quarantined mail of no ticket: %d, want 404", r.status)
	}
}
