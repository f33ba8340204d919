package tickets_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/helpdeskgw/helpdesk/tickets"
)

func webTicket(email string) tickets.WebTicket {
	return tickets.WebTicket{Department: "soporte", Name: "Ana", Email: email, Subject: "No puedo entrar",
		Message: "Sale un error.\r\n", Priority: tickets.PriorityLow}
}

func TestSubmitTicketValidates(t *testing.T) {
	s, pool, _ := newStore(t, tickets.Options{})
	ctx := context.Background()
	_, err := s.SubmitTicket(ctx, tickets.WebTicket{Department: "nope", Name: " ", Email: "ana@", Subject: strings.Repeat("x", 301),
		Message: "\n", Priority: tickets.PriorityCritical})
	var fe tickets.FieldErrors
	if !errors.As(err, &fe) || !errors.Is(err, tickets.ErrInvalid) {
		t.Fatalf("error %v: want FieldErrors, ErrInvalid", err)
	}
	want := tickets.FieldErrors{"department": tickets.FieldDepartment, "name": tickets.FieldRequired, "email": tickets.FieldBadEmail,
		"subject": tickets.FieldTooLong, "message": tickets.FieldRequired, "priority": tickets.FieldPriority}
	if len(fe) != len(want) {
		t.Errorf("field errors %v, want %v", fe, want)
	}
	for f, key := range want {
		if fe[f] != key {
			t.Errorf("%s: %q, want %q", f, fe[f], key)
		}
	}
	if n := count(t, pool, `SELECT count(*) FROM tickets`); n != 0 {
		t.Errorf("%d tickets of an invalid form", n)
	}
}

func TestSubmitTicket(t *testing.T) {
	s, pool, _ := newStore(t, tickets.Options{})
	ctx := context.Background()
	in := webTicket("Ana@Example.ORG")
	in.Priority = ""
	in.Attachments = []tickets.InboundAttachment{{Filename: "a\r\nb.txt", Content: tickets.BytesContent([]byte("file"))}}
	res, err := s.SubmitTicket(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := s.Ticket(ctx, res.TicketID)
	if err != nil {
		t.Fatal(err)
	}
	if tk.TrackingID != res.TrackingID || tk.Source != "web" || tk.Locale != "es" || tk.Priority != tickets.PriorityMedium ||
		tk.CustomerEmail != "Ana@example.org" || res.Email != tk.CustomerEmail || tk.Status != tickets.StatusNew {
		t.Errorf("ticket %+v, result %+v", tk, res)
	}
	msgs, _ := s.Thread(ctx, tk.ID, false)
	if len(msgs) != 1 || msgs[0].Text != "Sale un error." || len(msgs[0].Attachments) != 1 ||
		msgs[0].Attachments[0].Filename != "a b.txt" || msgs[0].Attachments[0].ContentType != "application/octet-stream" {
		t.Errorf("thread %+v", msgs)
	}
	if n := count(t, pool, `SELECT count(*) FROM outbox WHERE kind = 'ack' AND ticket_id = $1 AND recipient = 'Ana@example.org'`, tk.ID); n != 1 {
		t.Errorf("%d acknowledgements queued, want 1", n)
	}
	// Found by its ID typed any way and its address in any case.
	got, err := s.LookupTicket(ctx, strings.ToLower(strings.ReplaceAll(res.TrackingID, "-", " ")), " ana@EXAMPLE.org ")
	if err != nil || got.ID != tk.ID {
		t.Errorf("lookup: %v %v", got.ID, err)
	}
	for _, pair := range [][2]string{{res.TrackingID, "otra@example.org"}, {"AAA-AAA-AAAA", "ana@example.org"}, {"bad", "ana@example.org"}} {
		if _, err := s.LookupTicket(ctx, pair[0], pair[1]); !errors.Is(err, tickets.ErrNotFound) {
			t.Errorf("lookup %v: %v, want ErrNotFound", pair, err)
		}
	}
}

func TestSessions(t *testing.T) {
	s, pool, _ := newStore(t, tickets.Options{})
	ctx := context.Background()
	a, _ := s.SubmitTicket(ctx, webTicket("ana@example.org"))
	b, _ := s.SubmitTicket(ctx, webTicket("bea@example.org"))
	tokenB, err := s.IssueToken(ctx, b.TicketID, tickets.ScopeTicket)
	if err != nil {
		t.Fatal(err)
	}
	sees := func(session, tracking string) bool {
		_, err := s.SessionTicket(ctx, session, tracking, time.Hour)
		if err != nil && !errors.Is(err, tickets.ErrNotFound) {
			t.Fatal(err)
		}
		return err == nil
	}
	first, err := s.OpenSession(ctx, "", tickets.Grant{TicketID: a.TicketID, Via: tickets.GrantSubmit}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !sees(first, a.TrackingID) || sees(first, b.TrackingID) || sees("", a.TrackingID) || sees(strings.Repeat("x", 43), a.TrackingID) {
		t.Fatal("a session sees exactly what it was granted")
	}
	// A second grant moves the session: the old ID opens nothing, the new
	// one both tickets.
	second, err := s.OpenSession(ctx, first, tickets.Grant{TicketID: b.TicketID, Via: tickets.GrantToken, Token: tokenB}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if sees(first, a.TrackingID) || !sees(second, a.TrackingID) || !sees(second, b.TrackingID) {
		t.Error("rights did not move to the new session ID")
	}
	// A right given by a link ends with the link.
	if err := s.RevokeToken(ctx, tokenB); err != nil {
		t.Fatal(err)
	}
	if sees(second, b.TrackingID) || !sees(second, a.TrackingID) {
		t.Error("revoking the link did not end the right it gave, or ended others")
	}
	// An unknown old ID is no obstacle; an expired session sees nothing.
	third, err := s.OpenSession(ctx, "made-up", tickets.Grant{TicketID: a.TicketID, Via: tickets.GrantLookup}, time.Hour)
	if err != nil || !sees(third, a.TrackingID) {
		t.Fatalf("session from an unknown old ID: %v", err)
	}
	if _, err := pool.Exec(ctx, `UPDATE sessions SET expires_at = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	if sees(third, a.TrackingID) {
		t.Error("an expired session still sees its ticket")
	}
	// Expired sessions are cleared on the way.
	if _, err := s.OpenSession(ctx, "", tickets.Grant{TicketID: a.TicketID, Via: tickets.GrantLookup}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if n := count(t, pool, `SELECT count(*) FROM sessions WHERE expires_at < now()`); n != 0 {
		t.Errorf("%d expired sessions left", n)
	}
	// Using a session keeps it alive.
	fourth, _ := s.OpenSession(ctx, "", tickets.Grant{TicketID: a.TicketID, Via: tickets.GrantLookup}, time.Hour)
	pool.Exec(ctx, `UPDATE sessions SET last_seen = now() - interval '10 minutes', expires_at = now() + interval '1 minute'`)
	sees(fourth, a.TrackingID)
	if n := count(t, pool, `SELECT count(*) FROM sessions WHERE expires_at > now() + interval '50 minutes'`); n != 1 {
		t.Error("a used session's lifetime was not extended")
	}
}

func TestCustomerReplyResolveReopen(t *testing.T) {
	s, _, _ := newStore(t, tickets.Options{})
	ctx := context.Background()
	res, _ := s.SubmitTicket(ctx, webTicket("ana@example.org"))
	if err := s.ReplyByCustomer(ctx, res.TicketID, tickets.CustomerReply{Message: " \r\n"}); !errors.Is(err, tickets.ErrInvalid) {
		t.Errorf("empty reply: %v, want ErrInvalid", err)
	}
	if err := s.ReplyByCustomer(ctx, 999999, tickets.CustomerReply{Message: "hola"}); !errors.Is(err, tickets.ErrNotFound) {
		t.Errorf("reply to no ticket: %v, want ErrNotFound", err)
	}
	if err := s.ResolveByCustomer(ctx, 999999); !errors.Is(err, tickets.ErrNotFound) {
		t.Errorf("resolve no ticket: %v, want ErrNotFound", err)
	}
	before, _ := s.Ticket(ctx, res.TicketID)
	steps := []func() error{
		func() error { return s.ReopenByCustomer(ctx, res.TicketID) }, // open already: nothing
		func() error { return s.ResolveByCustomer(ctx, res.TicketID) },
		func() error { return s.ResolveByCustomer(ctx, res.TicketID) }, // nothing
		func() error { return s.ReopenByCustomer(ctx, res.TicketID) },
		func() error { return s.ResolveByCustomer(ctx, res.TicketID) },
		func() error {
			return s.ReplyByCustomer(ctx, res.TicketID, tickets.CustomerReply{
				Attachments: []tickets.InboundAttachment{{Filename: "log.txt", ContentType: "text/plain", Content: tickets.BytesContent([]byte("log"))}}})
		},
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	hist, _ := s.TicketHistory(ctx, res.TicketID)
	var got []string
	for _, h := range hist {
		got = append(got, h.Action+":"+h.OldValue+">"+h.NewValue)
	}
	msgs, _ := s.Thread(ctx, res.TicketID, false)
	want := []string{"created:>web", "status:new>resolved", "status:resolved>waiting_reply", "status:waiting_reply>resolved",
		"message:>" + strconv.FormatInt(msgs[1].ID, 10), "status:resolved>waiting_reply"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("history\n%v\nwant\n%v", got, want)
	}
	after, _ := s.Ticket(ctx, res.TicketID)
	if after.Status != tickets.StatusWaitingReply || !after.UpdatedAt.After(before.UpdatedAt) {
		t.Errorf("after: %s, updated %v (before %v)", after.Status, after.UpdatedAt, before.UpdatedAt)
	}
	if len(msgs) != 2 || msgs[1].Text != "" || len(msgs[1].Attachments) != 1 || msgs[1].AuthorName != "Ana" {
		t.Errorf("thread %+v", msgs)
	}
}

func TestQueueReminder(t *testing.T) {
	s, pool, _ := newStore(t, tickets.Options{})
	ctx := context.Background()
	billing, err := s.AddDepartment(ctx, tickets.Department{Slug: "billing", Name: "Billing", Address: "billing@example.com", Locale: "en"})
	if err != nil {
		t.Fatal(err)
	}
	queued, err := s.QueueReminder(ctx, "ana@example.org", "es")
	if err != nil || queued {
		t.Fatalf("no tickets: queued %v, %v; want nothing", queued, err)
	}
	es1, _ := s.SubmitTicket(ctx, webTicket("ana@example.org"))
	closed, _ := s.SubmitTicket(ctx, webTicket("ana@example.org"))
	s.ResolveByCustomer(ctx, closed.TicketID)
	s.SubmitTicket(ctx, webTicket("bea@example.org"))
	en := webTicket("ANA@example.org")
	en.Department = billing.Slug
	en1, _ := s.SubmitTicket(ctx, en)
	// Only the reminders are of interest here.
	pool.Exec(ctx, `UPDATE outbox SET state = 'sent'`)

	queued, err = s.QueueReminder(ctx, " Ana@Example.org ", "es")
	if err != nil || !queued {
		t.Fatalf("queued %v, %v", queued, err)
	}
	if queued, _ := s.QueueReminder(ctx, "ana@example.org", "en"); queued {
		t.Error("a second reminder at once was queued")
	}
	mails, err := s.ClaimOutbox(ctx, 10, time.Minute)
	if err != nil || len(mails) != 1 {
		t.Fatalf("claimed %d mails, %v", len(mails), err)
	}
	m := mails[0]
	// Newest activity first; the resolved ticket and another's left out.
	if m.Kind != tickets.KindReminder || m.Locale != "es" || m.Recipient != "ANA@example.org" || m.Ticket.ID != en1.TicketID ||
		m.Ticket.Department.ID != billing.ID || len(m.Listed) != 2 || m.Listed[0].Ticket.ID != en1.TicketID || m.Listed[1].Ticket.ID != es1.TicketID {
		t.Fatalf("reminder %+v", m)
	}
	for _, l := range m.Listed {
		tk, err := s.TicketByToken(ctx, l.Token, tickets.ScopeTicket)
		if err != nil || tk.ID != l.Ticket.ID {
			t.Errorf("the link to %s opens %v, %v", l.Ticket.TrackingID, tk.TrackingID, err)
		}
	}

	// The language: the page's when a listed ticket is in it, else the
	// latest ticket's.
	pool.Exec(ctx, `UPDATE outbox SET created_at = now() - interval '1 hour'`)
	if queued, _ := s.QueueReminder(ctx, "bea@example.org", "en"); !queued {
		t.Fatal("bea's reminder")
	}
	var locale string
	pool.QueryRow(ctx, `SELECT locale FROM outbox WHERE kind = 'reminder' AND recipient = 'bea@example.org'`).Scan(&locale)
	if locale != "es" {
		t.Errorf("bea's reminder in %q, want es: her only ticket's, not the page's", locale)
	}
	// At most a few a day.
	for range 5 {
		pool.Exec(ctx, `UPDATE outbox SET created_at = created_at - interval '20 minutes' WHERE kind = 'reminder'`)
		s.QueueReminder(ctx, "ana@example.org", "es")
	}
	if n := count(t, pool, `SELECT count(*) FROM outbox WHERE kind = 'reminder' AND lower(recipient) = 'ana@example.org'`); n != 4 {
		t.Errorf("%d reminders to one address in a day, want 4", n)
	}
}

func TestContentWriter(t *testing.T) {
	dir := t.TempDir()
	for _, size := range []int{0, 1000, 300 << 10} {
		data := bytes.Repeat([]byte("0123456789abcdef"), size/16)
		w := tickets.NewContentWriter(dir)
		for off := 0; off < len(data); off += 7000 {
			if _, err := w.Write(data[off:min(off+7000, len(data))]); err != nil {
				t.Fatal(err)
			}
		}
		c := w.Content()
		got, err := io.ReadAll(io.NewSectionReader(c.Data, 0, c.Size))
		if err != nil || !bytes.Equal(got, data) || c.SHA256 != sha256.Sum256(data) || c.Size != int64(len(data)) || w.Size() != c.Size {
			t.Errorf("%d bytes: got %d back, %v", size, len(got), err)
		}
		files, _ := filepath.Glob(filepath.Join(dir, "*"))
		if spilled := len(files) > 0; spilled != (size > 256<<10) {
			t.Errorf("%d bytes: temporary files %v", size, files)
		}
		if err := w.Close(); err != nil {
			t.Error(err)
		}
		if files, _ := filepath.Glob(filepath.Join(dir, "*")); len(files) != 0 {
			t.Errorf("%d bytes: %v left after Close", size, files)
		}
	}
	if _, err := tickets.NewContentWriter(filepath.Join(dir, "missing")).Write(make([]byte, 300<<10)); !errors.Is(err, tickets.ErrSpool) {
		t.Errorf("spooling into a missing directory: %v, want ErrSpool", err)
	}
}

// Anyone can type anyone's address into the form: an address gets a few
// acknowledgements of web tickets an hour, however many are submitted (in
// parallel too); the tickets themselves are all kept.
func TestWebAcknowledgementsPerAddressAreBounded(t *testing.T) {
	s, pool, _ := newStore(t, tickets.Options{})
	ctx := context.Background()
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			_, err := s.SubmitTicket(ctx, webTicket("victim@example.org"))
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, pool, `SELECT count(*) FROM tickets`); n != 8 {
		t.Errorf("%d tickets, want all 8 kept", n)
	}
	limit := tickets.DefaultLimits().AcksPerAddress
	if n := count(t, pool, `SELECT count(*) FROM outbox WHERE kind = 'ack'`); n != limit {
		t.Errorf("%d acknowledgements to one address, want %d", n, limit)
	}
	if n := count(t, pool, `SELECT count(*) FROM ticket_history WHERE action = 'acknowledgement_suppressed'`); n != 8-limit {
		t.Errorf("%d suppressed acknowledgements recorded, want %d", n, 8-limit)
	}
	if _, err := s.SubmitTicket(ctx, webTicket("someone.else@example.org")); err != nil {
		t.Fatal(err)
	}
	if n := count(t, pool, `SELECT count(*) FROM outbox WHERE kind = 'ack' AND recipient = 'someone.else@example.org'`); n != 1 {
		t.Error("another address is not acknowledged")
	}
}
