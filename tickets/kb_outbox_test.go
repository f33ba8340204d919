package tickets_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/helpdeskgw/helpdesk/tickets"
)

// claimAll claims every due mail, by kind.
func claimAll(t *testing.T, s *tickets.Store) map[tickets.MailKind][]tickets.OutboxMail {
	t.Helper()
	mails, err := s.ClaimOutbox(context.Background(), 100, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	byKind := map[tickets.MailKind][]tickets.OutboxMail{}
	for _, m := range mails {
		byKind[m.Kind] = append(byKind[m.Kind], m)
	}
	return byKind
}

func suggestedCount(t *testing.T, d *staffDesk) int {
	t.Helper()
	return count(t, d.pool, `SELECT coalesce(sum(suggested), 0)::int FROM kb_article_stats`)
}

// An acknowledgement carries the published articles its ticket matches,
// counted as suggested once however often the mail is tried.
func TestClaimedAcknowledgementsSuggestArticles(t *testing.T) {
	d := kbDesk(t)
	ctx := context.Background()
	// "facturas" would match the draft "Borrador sobre facturas" too.
	d.mailTicket(t, d.billing, "kb-ack-1@example.org", "cliente@example.org", "Facturas de marzo", "No encuentro el recibo.")
	d.mailTicket(t, d.soporte, "kb-ack-2@example.org", "otro@example.org", "Impresora", "No imprime.")

	first := claimAll(t, d.s)
	if len(first[tickets.KindAck]) != 2 {
		t.Fatalf("claimed %d acknowledgements, want 2", len(first[tickets.KindAck]))
	}
	var matching tickets.OutboxMail
	for _, m := range first[tickets.KindAck] {
		switch m.Ticket.Subject {
		case "Facturas de marzo":
			matching = m
		default:
			if len(m.Articles) != 0 {
				t.Errorf("the ack of %q suggests %+v", m.Ticket.Subject, m.Articles)
			}
		}
	}
	if len(matching.Articles) != 1 {
		t.Fatalf("the matching ack suggests %+v, want the one published article", matching.Articles)
	}
	a := matching.Articles[0]
	if a.Title != "Cómo descargar la factura" || a.Path != "/kb/facturacion/es/como-descargar-la-factura" || a.ID == 0 ||
		!strings.HasPrefix(a.Excerpt, "Entre en Mi cuenta") || strings.ContainsAny(a.Excerpt, tickets.MarkStart+tickets.MarkEnd) {
		t.Errorf("suggested %+v", a)
	}
	for kind, mails := range first {
		for _, m := range mails {
			if kind != tickets.KindAck && len(m.Articles) != 0 {
				t.Errorf("a %s mail suggests %+v", kind, m.Articles)
			}
		}
	}
	if n := suggestedCount(t, d); n != 1 {
		t.Fatalf("suggested counted %d times, want 1", n)
	}

	// Tried and failed: due again, its articles again, not counted again.
	outcomes := make([]tickets.Outcome, 0, len(first[tickets.KindAck]))
	for _, m := range first[tickets.KindAck] {
		outcomes = append(outcomes, tickets.Outcome{ID: m.ID, State: "pending", RetryAt: time.Now().Add(-time.Second), Reason: "421 later"})
	}
	if err := d.s.RecordOutbox(ctx, outcomes); err != nil {
		t.Fatal(err)
	}
	second := claimAll(t, d.s)
	retried := slices.IndexFunc(second[tickets.KindAck], func(m tickets.OutboxMail) bool { return m.ID == matching.ID })
	if retried < 0 || second[tickets.KindAck][retried].Attempts != 1 ||
		!slices.Equal(second[tickets.KindAck][retried].Articles, matching.Articles) {
		t.Fatalf("retry: %+v", second[tickets.KindAck])
	}
	if n := suggestedCount(t, d); n != 1 {
		t.Fatalf("suggested counted %d times after a retry, want 1", n)
	}
}

// With nothing published, acknowledgements go without articles.
func TestAcknowledgementsWithoutPublishedArticles(t *testing.T) {
	d := kbDesk(t)
	if _, err := d.pool.Exec(context.Background(), `UPDATE kb_articles SET state = 'draft'`); err != nil {
		t.Fatal(err)
	}
	d.mailTicket(t, d.billing, "kb-ack-3@example.org", "cliente@example.org", "Factura", "¿Y el recibo?")
	acks := claimAll(t, d.s)[tickets.KindAck]
	if len(acks) != 1 || len(acks[0].Articles) != 0 {
		t.Fatalf("acks %+v", acks)
	}
	if n := suggestedCount(t, d); n != 0 {
		t.Fatalf("suggested counted %d times", n)
	}
}
