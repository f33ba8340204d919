package web

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/helpdeskgw/helpdesk/tickets"
)

// status is a ticket's status and the changes of status in its history.
func (s *site) status(t *testing.T, ticketID int64) (tickets.Status, []string) {
	t.Helper()
	tk, err := s.store.Ticket(context.Background(), ticketID)
	if err != nil {
		t.Fatal(err)
	}
	hist, err := s.store.TicketHistory(context.Background(), ticketID)
	if err != nil {
		t.Fatal(err)
	}
	var changes []string
	for _, h := range hist {
		if h.Action == "status" {
			changes = append(changes, h.OldValue+">"+h.NewValue+" by "+h.Actor)
		}
	}
	return tk.Status, changes
}

func TestReply(t *testing.T) {
	s := newSite(t, Options{MaxAttachments: 1})
	v := s.visitor(t)
	v.open(s.token)
	path := "/ticket/" + s.ticket.TrackingID
	p := v.postMultipart(path+"/reply", map[string]string{"message": "Here is the <b>receipt</b>."}, file{"receipt.pdf", []byte("%PDF-1.7")})
	if p.status != http.StatusSeeOther || p.location() != path+"?notice=replied" {
		t.Fatalf("reply: %d to %q\n%s", p.status, p.location(), p.body)
	}
	page := v.get(p.location())
	for _, want := range []string{`id="notice"`, "Your message was added", "Here is the &lt;b&gt;receipt&lt;/b&gt;.", "receipt.pdf", `id="status">Waiting reply<`} {
		if !strings.Contains(page.body, want) {
			t.Errorf("page after the reply lacks %q", want)
		}
	}
	// In order, after the first message, with its file to download.
	if strings.Index(page.body, "I was charged twice.") > strings.Index(page.body, "Here is the") {
		t.Error("the thread is out of order")
	}
	msgs, _ := s.store.Thread(context.Background(), s.ticket.ID, false)
	last := msgs[len(msgs)-1]
	if len(msgs) != 2 || last.AuthorKind != "customer" || last.AuthorEmail != "zoe@example.org" || len(last.Attachments) != 1 {
		t.Fatalf("thread %+v", msgs)
	}
	if d := v.get(fmt.Sprintf("%s/attachments/%d", path, last.Attachments[0].ID)); d.status != 200 || d.body != "%PDF-1.7" {
		t.Errorf("the reply's file: %d %q", d.status, d.body)
	}
	status, changes := s.status(t, s.ticket.ID)
	if status != tickets.StatusWaitingReply || fmt.Sprint(changes) != "[new>waiting_reply by customer:zoe@example.org]" {
		t.Errorf("status %s, changes %v", status, changes)
	}
	hist, _ := s.store.TicketHistory(context.Background(), s.ticket.ID)
	if h := hist[len(hist)-2]; h.Action != "message" || h.NewValue != fmt.Sprint(last.ID) || h.Actor != "customer:zoe@example.org" {
		t.Errorf("history of the reply %+v", h)
	}

	// Errors come back next to the field, with the text kept.
	p = v.postMultipart(path+"/reply", map[string]string{"message": "  "})
	if p.status != http.StatusUnprocessableEntity || !p.has("error-message") {
		t.Errorf("empty reply: %d", p.status)
	}
	p = v.postMultipart(path+"/reply", map[string]string{"message": "two files"}, file{"a.txt", []byte("a")}, file{"b.txt", []byte("b")})
	if p.status != http.StatusRequestEntityTooLarge || !p.has("error-attachments") || !strings.Contains(p.body, "two files</textarea>") {
		t.Errorf("too many files: %d", p.status)
	}
	// A file alone is a reply.
	if p := v.postMultipart(path+"/reply", map[string]string{"message": ""}, file{"only.txt", []byte("x")}); p.status != http.StatusSeeOther {
		t.Errorf("a file without text: %d", p.status)
	}
	if n := s.count(t, `SELECT count(*) FROM messages WHERE ticket_id = $1`, s.ticket.ID); n != 3 {
		t.Errorf("%d messages, want 3", n)
	}
}

func TestResolveAndReopen(t *testing.T) {
	s := newSite(t, Options{})
	v := s.visitor(t)
	v.header.Set("Accept-Language", "es")
	v.open(s.token)
	path := "/ticket/" + s.ticket.TrackingID
	for range 2 { // resolving twice is harmless
		if p := v.post(path+"/resolve", nil); p.status != http.StatusSeeOther || p.location() != path+"?notice=resolved" {
			t.Fatalf("resolve: %d to %q", p.status, p.location())
		}
	}
	page := v.get(path + "?notice=resolved")
	if !strings.Contains(page.body, `id="status">Resuelto<`) || !page.has("reopen") || page.has("resolve") || !strings.Contains(page.body, "Reabrir") {
		t.Error("a resolved ticket's page should show Resuelto and offer Reabrir only")
	}
	if !strings.Contains(page.body, "si respondes, se reabrirá") {
		t.Error("the reply form does not say a reply reopens the ticket")
	}
	status, changes := s.status(t, s.ticket.ID)
	if status != tickets.StatusResolved || fmt.Sprint(changes) != "[new>resolved by customer:zoe@example.org]" {
		t.Errorf("after resolving twice: %s %v", status, changes)
	}
	for range 2 { // and so is reopening an open ticket
		if p := v.post(path+"/reopen", nil); p.status != http.StatusSeeOther {
			t.Fatalf("reopen: %d", p.status)
		}
	}
	status, changes = s.status(t, s.ticket.ID)
	if status != tickets.StatusWaitingReply || len(changes) != 2 || changes[1] != "resolved>waiting_reply by customer:zoe@example.org" {
		t.Errorf("after reopening twice: %s %v", status, changes)
	}
	if p := v.get(path); !p.has("resolve") || p.has("reopen") || !strings.Contains(p.body, "Marcar como resuelto") {
		t.Error("a reopened ticket should offer Marcar como resuelto")
	}
	// A reply reopens a resolved ticket.
	v.post(path+"/resolve", nil)
	v.postMultipart(path+"/reply", map[string]string{"message": "It happened again."})
	status, changes = s.status(t, s.ticket.ID)
	if status != tickets.StatusWaitingReply || changes[len(changes)-1] != "resolved>waiting_reply by customer:zoe@example.org" {
		t.Errorf("after a reply to a resolved ticket: %s %v", status, changes)
	}
}

func TestActionsNeedTheSession(t *testing.T) {
	s := newSite(t, Options{})
	anon := s.visitor(t)
	path := "/ticket/" + s.ticket.TrackingID
	if p := anon.postMultipart(path+"/reply", map[string]string{"message": "hi"}, file{"x.bin", bytes.Repeat([]byte("x"), 300<<10)}); p.status != http.StatusForbidden || !strings.Contains(p.body, `href="/lookup"`) {
		t.Errorf("reply without a session: %d, want 403 pointing to the lookup", p.status)
	}
	if p := anon.post(path+"/resolve", nil); p.status != http.StatusForbidden {
		t.Errorf("resolve without a session: %d", p.status)
	}
	if p := anon.post("/ticket/not-an-id/resolve", nil); p.status != http.StatusForbidden {
		t.Errorf("resolve of a malformed ID: %d", p.status)
	}
	if status, _ := s.status(t, s.ticket.ID); status != tickets.StatusNew {
		t.Errorf("status %s", status)
	}
}
