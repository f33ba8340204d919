package tickets_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helpdeskgw/helpdesk/tickets"
)

const agentPassword = "correct horse battery"

// staffDesk is a store with two departments and an agent in each, and an
// admin.
type staffDesk struct {
	s                *tickets.Store
	pool             *pgxpool.Pool
	soporte, billing tickets.Department
	ana, bob, admin  tickets.Agent
}

func newStaffDesk(t *testing.T) *staffDesk {
	t.Helper()
	s, pool, soporte := newStore(t, tickets.Options{})
	ctx := context.Background()
	billing, err := s.AddDepartment(ctx, tickets.Department{Slug: "facturacion", Name: "Facturación", Address: "billing@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	d := &staffDesk{s: s, pool: pool, soporte: soporte, billing: billing}
	add := func(email, name string, role tickets.Role, depts ...string) tickets.Agent {
		a, err := s.AddAgent(ctx, "test", tickets.NewAgent{Email: email, Name: name, Role: role, Password: agentPassword, DepartmentSlugs: depts})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	d.ana = add("Ana@Example.com", "Ana", tickets.RoleAgent, "soporte")
	d.bob = add("bob@example.com", "Bob", tickets.RoleAgent, "facturacion")
	d.admin = add("root@example.com", "Root", tickets.RoleAdmin)
	return d
}

// mailTicket opens a ticket by mail in a department.
func (d *staffDesk) mailTicket(t *testing.T, dept tickets.Department, msgID, from, subject, body string) tickets.IngestResult {
	t.Helper()
	in := inbound(dept, msgID, body)
	in.From, in.EnvelopeFrom, in.Subject = tickets.Address{Name: "Cliente", Email: from}, from, subject
	res, err := d.s.IngestMail(context.Background(), in)
	if err != nil || res.Disposition != tickets.DispositionTicket {
		t.Fatalf("mail ticket: %+v %v", res, err)
	}
	return res
}

func TestAgentAccountsAndLogin(t *testing.T) {
	d := newStaffDesk(t)
	ctx := context.Background()
	if d.ana.Email != "ana@example.com" || len(d.ana.Departments) != 1 || d.ana.Departments[0].Slug != "soporte" {
		t.Errorf("agent: %+v", d.ana)
	}
	if _, err := d.s.AddAgent(ctx, "test", tickets.NewAgent{Email: "ana@example.com", Name: "Otra", Password: agentPassword}); !errors.Is(err, tickets.ErrConflict) {
		t.Errorf("same address twice: %v", err)
	}
	for _, bad := range []tickets.NewAgent{
		{Email: "x@example.com", Name: "X", Password: "short"},
		{Email: "not an address", Name: "X", Password: agentPassword},
		{Email: "y@example.com", Name: "Y", Password: agentPassword, DepartmentSlugs: []string{"nope"}},
		{Email: "z@example.com", Name: "Z", Password: agentPassword, Role: "boss"},
	} {
		if _, err := d.s.AddAgent(ctx, "test", bad); !errors.Is(err, tickets.ErrInvalid) {
			t.Errorf("AddAgent(%+v): %v, want ErrInvalid", bad, err)
		}
	}

	id, a, err := d.s.Login(ctx, " ANA@example.com ", agentPassword, time.Hour)
	if err != nil || a.ID != d.ana.ID || id == "" {
		t.Fatalf("login: %v", err)
	}
	if got, err := d.s.StaffSession(ctx, id, time.Hour); err != nil || got.ID != d.ana.ID {
		t.Errorf("session: %+v %v", got, err)
	}
	if err := d.s.Logout(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := d.s.StaffSession(ctx, id, time.Hour); !errors.Is(err, tickets.ErrNotFound) {
		t.Errorf("session after logout: %v", err)
	}
	if _, _, err := d.s.Login(ctx, "nobody@example.com", agentPassword, time.Hour); !errors.Is(err, tickets.ErrNotFound) {
		t.Errorf("unknown address: %v", err)
	}

	// Five wrong passwords lock the account, even against the right one.
	for i := range 5 {
		if _, _, err := d.s.Login(ctx, "ana@example.com", "wrong password!", time.Hour); !errors.Is(err, tickets.ErrNotFound) {
			t.Fatalf("wrong password %d: %v", i, err)
		}
	}
	if _, _, err := d.s.Login(ctx, "ana@example.com", agentPassword, time.Hour); !errors.Is(err, tickets.ErrLocked) {
		t.Errorf("right password on a locked account: %v, want ErrLocked", err)
	}
	// A new password (an admin's reset) unlocks it and ends other sessions.
	other, _, err := d.s.Login(ctx, "bob@example.com", agentPassword, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pw := "another long password"
	if err := d.s.UpdateAgent(ctx, d.admin.Actor(), d.ana.ID, tickets.AgentChange{Password: &pw}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.s.Login(ctx, "ana@example.com", pw, time.Hour); err != nil {
		t.Errorf("login after reset: %v", err)
	}
	yes := true
	if err := d.s.UpdateAgent(ctx, d.admin.Actor(), d.bob.ID, tickets.AgentChange{Disabled: &yes}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.s.StaffSession(ctx, other, time.Hour); !errors.Is(err, tickets.ErrNotFound) {
		t.Errorf("session of a disabled agent: %v", err)
	}
	if _, _, err := d.s.Login(ctx, "bob@example.com", agentPassword, time.Hour); !errors.Is(err, tickets.ErrLocked) {
		t.Errorf("login of a disabled agent: %v", err)
	}
	entries, err := d.s.AuditLog(ctx, 10)
	if err != nil || len(entries) != 5 || entries[0].Action != "agent.update" || entries[0].Actor != d.admin.Actor() {
		t.Errorf("audit log: %+v %v", entries, err)
	}
}

func TestQueueShowsTheAgentsDepartmentsAndFinds(t *testing.T) {
	d := newStaffDesk(t)
	ctx := context.Background()
	printer := d.mailTicket(t, d.soporte, "p@x", "eva@example.org", "La impresora no imprime", "Sale una hoja en blanco.")
	invoice := d.mailTicket(t, d.billing, "i@x", "leo@example.org", "Factura duplicada", "Me cobraron dos veces la factura de marzo.")
	d.mailTicket(t, d.soporte, "w@x", "eva@example.org", "Wifi", "No connection since Monday.")

	items, total, err := d.s.Queue(ctx, d.ana, tickets.QueueFilter{})
	if err != nil || total != 2 || queueIDs(items)[invoice.TicketID] {
		t.Errorf("ana's queue: %d tickets %v (%v); want soporte's 2", total, queueIDs(items), err)
	}
	if !items[0].New {
		t.Error("a ticket nobody answered is not marked new")
	}
	// Found alike before and after the job indexes the bodies.
	for _, indexed := range []bool{false, true} {
		if indexed {
			if n, err := d.s.IndexMessages(ctx); err != nil || n != 3 {
				t.Fatalf("indexed %d messages (%v), want 3", n, err)
			}
		}
		d.checkSearches(t, printer, invoice)
	}
	if _, err := d.s.StaffTicket(ctx, d.ana, invoice.TrackingID); !errors.Is(err, tickets.ErrNotFound) {
		t.Errorf("ana opening billing's ticket: %v", err)
	}
	if _, err := d.s.StaffTicket(ctx, d.admin, invoice.TrackingID); err != nil {
		t.Errorf("admin opening it: %v", err)
	}
	// Paging and filters.
	items, total, err = d.s.Queue(ctx, d.admin, tickets.QueueFilter{PerPage: 2, Page: 2})
	if err != nil || total != 3 || len(items) != 1 {
		t.Errorf("page 2 of 3 by 2: %d items of %d (%v)", len(items), total, err)
	}
	high := tickets.PriorityHigh
	if err := d.s.UpdateTicket(ctx, d.ana, printer.TicketID, tickets.TicketChange{Priority: &high}); err != nil {
		t.Fatal(err)
	}
	items, _, _ = d.s.Queue(ctx, d.admin, tickets.QueueFilter{Priority: tickets.PriorityHigh})
	if len(items) != 1 || items[0].ID != printer.TicketID {
		t.Errorf("high priority filter: %v", queueIDs(items))
	}
}

func TestAnswerNotesAndChanges(t *testing.T) {
	d := newStaffDesk(t)
	ctx := context.Background()
	tk := d.mailTicket(t, d.soporte, "q@x", "eva@example.org", "Consulta", "Hola")
	att := tickets.InboundAttachment{Filename: "guia.pdf", ContentType: "application/pdf", Content: tickets.BytesContent([]byte("%PDF guía"))}
	if _, err := d.s.AnswerTicket(ctx, d.bob, tk.TicketID, tickets.Answer{Text: "No es mío"}); !errors.Is(err, tickets.ErrNotFound) {
		t.Errorf("bob answering soporte's ticket: %v", err)
	}
	if _, err := d.s.AnswerTicket(ctx, d.ana, tk.TicketID, tickets.Answer{Text: "nota interna", Internal: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.s.AnswerTicket(ctx, d.ana, tk.TicketID, tickets.Answer{Text: "Pruebe esto {{link}}", Attachments: []tickets.InboundAttachment{att}}); err != nil {
		t.Fatal(err)
	}
	got, _ := d.s.Ticket(ctx, tk.TicketID)
	if got.Status != tickets.StatusReplied {
		t.Errorf("status %s after an answer, want replied", got.Status)
	}
	customer, _ := d.s.Thread(ctx, tk.TicketID, false)
	staff, _ := d.s.Thread(ctx, tk.TicketID, true)
	if len(customer) != 2 || len(staff) != 3 || customer[1].AuthorName != "Ana" || len(customer[1].Attachments) != 1 {
		t.Errorf("thread: customer sees %d, staff %d", len(customer), len(staff))
	}
	out, _ := d.s.OutboxForTicket(ctx, tk.TicketID)
	var kinds []tickets.MailKind
	for _, o := range out {
		kinds = append(kinds, o.Kind)
	}
	if fmt.Sprint(kinds) != "[agent_new_ticket ack answer]" && fmt.Sprint(kinds) != "[ack agent_new_ticket answer]" {
		t.Errorf("outbox kinds %v, want the ack, ana's notice and one answer (the note mails nothing)", kinds)
	}
	mails, err := d.s.ClaimOutbox(ctx, 10, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mails {
		switch m.Kind {
		case tickets.KindAnswer:
			if m.Message == nil || m.Message.Text != "Pruebe esto {{link}}" || len(m.Message.Attachments) != 1 || m.Token == "" ||
				m.InReplyTo != "q@x" || m.Recipient != "eva@example.org" {
				t.Errorf("answer mail: %+v", m)
			}
		case tickets.KindAgentNewTicket:
			if m.Recipient != "ana@example.com" || m.AgentName != "Ana" || m.Token != "" {
				t.Errorf("staff notice: %+v", m)
			}
		}
	}

	// Changes: each a history row; assignee must work the department.
	if err := d.s.UpdateTicket(ctx, d.ana, tk.TicketID, tickets.TicketChange{AssigneeID: &d.bob.ID}); !errors.Is(err, tickets.ErrInvalid) {
		t.Errorf("assigning to bob of billing: %v", err)
	}
	if err := d.s.UpdateTicket(ctx, d.ana, tk.TicketID, tickets.TicketChange{DepartmentID: &d.billing.ID}); !errors.Is(err, tickets.ErrInvalid) {
		t.Errorf("ana moving it to a department not hers: %v", err)
	}
	onHold := tickets.StatusOnHold
	if err := d.s.UpdateTicket(ctx, d.ana, tk.TicketID, tickets.TicketChange{Status: &onHold, AssigneeID: &d.ana.ID}); err != nil {
		t.Fatal(err)
	}
	if err := d.s.UpdateTicket(ctx, d.admin, tk.TicketID, tickets.TicketChange{DepartmentID: &d.billing.ID, AssigneeID: new(int64)}); err != nil {
		t.Fatal(err)
	}
	got, _ = d.s.Ticket(ctx, tk.TicketID)
	if got.Status != tickets.StatusOnHold || got.Department.ID != d.billing.ID || got.AssigneeID != 0 {
		t.Errorf("after changes: %+v", got)
	}
	if n := count(t, d.pool, `SELECT count(*) FROM ticket_history WHERE ticket_id = $1 AND action IN ('status', 'assignee', 'department')`, tk.TicketID); n != 5 {
		t.Errorf("%d history rows for the changes, want 5 (replied, on hold, assigned, moved, unassigned)", n)
	}
	if _, err := d.s.StaffTicket(ctx, d.ana, tk.TrackingID); !errors.Is(err, tickets.ErrNotFound) {
		t.Errorf("ana still sees the ticket moved to billing: %v", err)
	}
}

func TestAssigneeHearsOfTheCustomersReply(t *testing.T) {
	d := newStaffDesk(t)
	ctx := context.Background()
	tk := d.mailTicket(t, d.soporte, "r@x", "eva@example.org", "Consulta", "Hola")
	if err := d.s.UpdateTicket(ctx, d.ana, tk.TicketID, tickets.TicketChange{AssigneeID: &d.ana.ID}); err != nil {
		t.Fatal(err)
	}
	if err := d.s.ReplyByCustomer(ctx, tk.TicketID, tickets.CustomerReply{Message: "más datos"}); err != nil {
		t.Fatal(err)
	}
	if n := count(t, d.pool, `SELECT count(*) FROM outbox WHERE kind = 'agent_customer_reply' AND recipient = 'ana@example.com' AND message_ref IS NOT NULL`); n != 1 {
		t.Errorf("%d notices to the assignee, want 1", n)
	}
	// An agent who answers the notice by mail is told to use the page: the
	// mail is not offered to the customer as a draft.
	var noticeID string
	if err := d.pool.QueryRow(ctx, `SELECT message_id FROM outbox WHERE kind = 'agent_new_ticket'`).Scan(&noticeID); err != nil {
		t.Fatal(err)
	}
	in := inbound(d.soporte, "agent-reply@x", "Le respondo por correo")
	in.From, in.InReplyTo = tickets.Address{Email: "ana@example.com"}, noticeID
	res, err := d.s.IngestMail(ctx, in)
	if err != nil || res.Disposition != tickets.DispositionQuarantined || res.DraftID != 0 {
		t.Errorf("agent's mail answer: %+v %v", res, err)
	}
}

func TestAutoResolveAndJobs(t *testing.T) {
	d := newStaffDesk(t)
	ctx := context.Background()
	tk := d.mailTicket(t, d.soporte, "a@x", "eva@example.org", "Consulta", "Hola")
	if _, err := d.s.AnswerTicket(ctx, d.ana, tk.TicketID, tickets.Answer{Text: "Listo"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.pool.Exec(ctx, `UPDATE tickets SET updated_at = now() - interval '4 days'`); err != nil {
		t.Fatal(err)
	}
	if n, err := d.s.AutoResolve(ctx); err != nil || n != 0 {
		t.Errorf("auto-resolve while off: %d %v", n, err)
	}
	dept := d.soporte
	dept.AutoResolveDays = 3
	if err := d.s.UpdateDepartment(ctx, d.admin.Actor(), dept); err != nil {
		t.Fatal(err)
	}
	n, err := d.s.RunJob(ctx, "auto_resolve", "test", d.s.AutoResolve)
	if err != nil || n != 1 {
		t.Fatalf("auto-resolve: %d %v", n, err)
	}
	got, _ := d.s.Ticket(ctx, tk.TicketID)
	if got.Status != tickets.StatusResolved || count(t, d.pool, `SELECT count(*) FROM outbox WHERE kind = 'auto_resolved'`) != 1 {
		t.Errorf("after auto-resolve: %s", got.Status)
	}
	runs, err := d.s.JobRuns(ctx)
	if err != nil || len(runs) != 1 || runs[0].Items != 1 || runs[0].FinishedAt == nil {
		t.Errorf("job runs: %+v %v", runs, err)
	}

	// Only one instance runs a job at a time.
	release := make(chan struct{})
	started := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		d.s.RunJob(ctx, "slow", "a", func(context.Context) (int, error) { close(started); <-release; return 0, nil }) //nolint:errcheck // checked by the other
	})
	<-started
	if _, err := d.s.RunJob(ctx, "slow", "b", func(context.Context) (int, error) { return 0, nil }); !errors.Is(err, tickets.ErrBusy) {
		t.Errorf("second instance: %v, want ErrBusy", err)
	}
	close(release)
	wg.Wait()
	if _, err := d.s.RunJob(ctx, "slow", "b", func(context.Context) (int, error) { return 0, nil }); err != nil {
		t.Errorf("after the first ended: %v", err)
	}

	// Raw sources past retention go; the log row and the ticket stay.
	if _, err := d.pool.Exec(ctx, `UPDATE inbound SET received_at = now() - interval '100 days'; UPDATE blobs SET created_at = now() - interval '100 days'`); err != nil {
		t.Fatal(err)
	}
	blobs := count(t, d.pool, `SELECT count(*) FROM blobs`)
	if n, err := d.s.PruneRawSources(ctx, 90*24*time.Hour); err != nil || n != 1 {
		t.Fatalf("pruned %d raw sources (%v), want 1", n, err)
	}
	if count(t, d.pool, `SELECT count(*) FROM blobs`) != blobs-1 || count(t, d.pool, `SELECT count(*) FROM inbound WHERE raw_pruned_at IS NOT NULL`) != 1 {
		t.Error("the raw source's content was not dropped, or the log row not marked")
	}
	if n, err := d.s.ExpireTokens(ctx); err != nil || n != 0 {
		t.Errorf("expire tokens: %d %v", n, err)
	}
}

func TestCannedResponses(t *testing.T) {
	d := newStaffDesk(t)
	ctx := context.Background()
	if _, err := d.s.SaveCanned(ctx, "test", tickets.Canned{Title: "Saludo", Body: "Hola {{customer_name}}, su ticket {{tracking_id}}: {{link}}"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.s.SaveCanned(ctx, "test", tickets.Canned{DepartmentID: d.billing.ID, Title: "IVA", Body: "El IVA…"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.s.SaveCanned(ctx, "test", tickets.Canned{Title: "Saludo", Body: "otra"}); !errors.Is(err, tickets.ErrConflict) {
		t.Errorf("same title twice: %v", err)
	}
	list, err := d.s.CannedFor(ctx, d.soporte.ID)
	if err != nil || len(list) != 1 || list[0].Title != "Saludo" {
		t.Fatalf("soporte's canned responses: %+v %v", list, err)
	}
	tk := tickets.Ticket{TrackingID: "ABC-DEF-GHJL", CustomerName: "Eva"}
	if got := tickets.FillCanned(list[0].Body, tk); got != "Hola Eva, su ticket ABC-DEF-GHJL: {{link}}" {
		t.Errorf("filled: %q", got)
	}
	if err := d.s.DeleteCanned(ctx, "test", list[0].ID); err != nil {
		t.Fatal(err)
	}
	if n := count(t, d.pool, `SELECT count(*) FROM audit_log WHERE action LIKE 'canned.%'`); n != 3 {
		t.Errorf("%d audit rows for canned responses, want 3", n)
	}
}

// checkSearches searches the queue as each agent and checks what is found.
func (d *staffDesk) checkSearches(t *testing.T, printer, invoice tickets.IngestResult) {
	t.Helper()
	ctx := context.Background()
	for _, tc := range []struct {
		agent tickets.Agent
		q     string
		want  []int64 // the tickets found; nil: none, or only how many (n)
		n     int
	}{
		{d.bob, "facturas", []int64{invoice.TicketID}, 1}, // Spanish stem
		{d.ana, "facturas", nil, 0},                       // another department's
		{d.admin, "facturas", []int64{invoice.TicketID}, 1},
		{d.ana, "impresoras", []int64{printer.TicketID}, 1},
		{d.ana, printer.TrackingID, []int64{printer.TicketID}, 1},
		{d.bob, printer.TrackingID, nil, 0},
		{d.ana, "EVA@example", nil, 2},
		{d.admin, "connections", nil, 1}, // English stem
	} {
		items, _, err := d.s.Queue(ctx, tc.agent, tickets.QueueFilter{Query: tc.q})
		if err != nil {
			t.Fatal(err)
		}
		got := queueIDs(items)
		if len(got) != tc.n {
			t.Errorf("%s searching %q: %v, want %d tickets", tc.agent.Name, tc.q, got, tc.n)
		}
		for _, id := range tc.want {
			if !got[id] {
				t.Errorf("%s searching %q: %v lacks %d", tc.agent.Name, tc.q, got, id)
			}
		}
	}
}

func queueIDs(items []tickets.QueueItem) map[int64]bool {
	m := map[int64]bool{}
	for _, it := range items {
		m[it.ID] = true
	}
	return m
}
