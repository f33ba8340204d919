package tickets_test

import (
	"context"
	"errors"
	"testing"

	"github.com/helpdeskgw/helpdesk/tickets"
)

func TestStaffAttachmentIncludesInternalNotesFiles(t *testing.T) {
	d := newStaffDesk(t)
	ctx := context.Background()
	mine := d.mailTicket(t, d.soporte, "m1@example.org", "cliente@example.org", "Ayuda", "hola")
	other := d.mailTicket(t, d.billing, "m2@example.org", "otro@example.org", "Factura", "hola")
	file := func(name string) []tickets.InboundAttachment {
		return []tickets.InboundAttachment{{Filename: name, ContentType: "text/plain", Content: tickets.BytesContent([]byte(name))}}
	}
	if _, err := d.s.AnswerTicket(ctx, d.ana, mine.TicketID, tickets.Answer{Text: "para ti", Attachments: file("answer.txt")}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.s.AnswerTicket(ctx, d.ana, mine.TicketID, tickets.Answer{Text: "entre nosotros", Attachments: file("note.txt"), Internal: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.s.AnswerTicket(ctx, d.bob, other.TicketID, tickets.Answer{Text: "x", Attachments: file("other.txt")}); err != nil {
		t.Fatal(err)
	}
	ids := map[string]int64{}
	for _, ticketID := range []int64{mine.TicketID, other.TicketID} {
		msgs, err := d.s.Thread(ctx, ticketID, true)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			for _, a := range m.Attachments {
				ids[a.Filename] = a.ID
			}
		}
	}
	for _, tc := range []struct {
		name      string
		ticket    int64
		file      string
		staff     bool // the staff get it
		customers bool // the customer gets it
	}{
		{"answer's file", mine.TicketID, "answer.txt", true, true},
		{"internal note's file", mine.TicketID, "note.txt", true, false},
		{"another ticket's file", mine.TicketID, "other.txt", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := d.s.StaffAttachment(ctx, tc.ticket, ids[tc.file])
			if tc.staff && (err != nil || a.Filename != tc.file || a.Size != int64(len(tc.file))) {
				t.Errorf("staff: %+v %v, want %s", a, err, tc.file)
			}
			if !tc.staff && !errors.Is(err, tickets.ErrNotFound) {
				t.Errorf("staff: %+v %v, want ErrNotFound", a, err)
			}
			_, err = d.s.Attachment(ctx, tc.ticket, ids[tc.file])
			if got := err == nil; got != tc.customers {
				t.Errorf("customer: %v, want found=%v", err, tc.customers)
			}
		})
	}
}

func TestStaffHistoryHasWhoWhatAndWhen(t *testing.T) {
	d := newStaffDesk(t)
	ctx := context.Background()
	res := d.mailTicket(t, d.soporte, "h1@example.org", "cliente@example.org", "Ayuda", "hola")
	high := tickets.PriorityHigh
	if err := d.s.UpdateTicket(ctx, d.ana, res.TicketID, tickets.TicketChange{Priority: &high, AssigneeID: &d.ana.ID}); err != nil {
		t.Fatal(err)
	}
	list, err := d.s.StaffHistory(ctx, res.TicketID)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ actor, action, from, to string }{
		{"customer:cliente@example.org", "created", "", "email"},
		{d.ana.Actor(), "priority", "medium", "high"},
		{d.ana.Actor(), "assignee", "0", ""},
	}
	if len(list) != len(want) {
		t.Fatalf("history: %+v, want %d entries", list, len(want))
	}
	for i, w := range want {
		h := list[i]
		if h.Actor != w.actor || h.Action != w.action || h.OldValue != w.from || (w.to != "" && h.NewValue != w.to) || h.At.IsZero() {
			t.Errorf("entry %d: %+v, want %+v with a time", i, h, w)
		}
	}
	if list[2].NewValue == "0" || list[2].NewValue == "" {
		t.Errorf("assignee change to %q, want ana's ID", list[2].NewValue)
	}
	if list[1].At.Before(list[0].At) {
		t.Errorf("entries out of order: %v before %v", list[1].At, list[0].At)
	}
}
