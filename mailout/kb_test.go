package mailout

import (
	"context"
	"strings"
	"testing"

	"github.com/helpdeskgw/helpdesk/tickets"
)

// The acknowledgement lists the articles it was given, each with its
// page's link, in both parts and both languages; without articles it says
// nothing of them.
func TestAckListsSuggestedArticles(t *testing.T) {
	w := composeWorker(t)
	articles := []tickets.ArticleLink{
		{ID: 1, Title: "Cómo descargar la factura", Path: "/kb/soporte/es/como-descargar-la-factura"},
		{ID: 2, Title: "Devoluciones <b>y</b>\r\nreembolsos\u202e", Path: "/kb/soporte/es/devoluciones"},
	}
	const base = "https://help.example.com"
	for _, c := range []struct{ locale, heading string }{
		{"es", "Quizás estos artículos ya respondan a tu pregunta:"},
		{"en", "These articles may already answer your question:"},
	} {
		t.Run(c.locale, func(t *testing.T) {
			m := outboxMail(tickets.KindAck)
			m.Ticket.Locale = c.locale
			bare := composed(t, w, m)
			m.Articles = articles
			listed := composed(t, w, m)

			for _, want := range []string{
				c.heading,
				"  - Cómo descargar la factura\n    " + base + "/kb/soporte/es/como-descargar-la-factura?from=mail\n",
				"  - Devoluciones <b>y</b> reembolsos\n    " + base + "/kb/soporte/es/devoluciones?from=mail\n",
			} {
				if !strings.Contains(listed.text, want) {
					t.Errorf("text part lacks %q:\n%s", want, listed.text)
				}
			}
			for _, want := range []string{
				c.heading,
				`<a href="` + base + `/kb/soporte/es/como-descargar-la-factura?from=mail" style="color:#1d4ed8;">Cómo descargar la factura</a>`,
				`<a href="` + base + `/kb/soporte/es/devoluciones?from=mail" style="color:#1d4ed8;">Devoluciones &lt;b&gt;y&lt;/b&gt; reembolsos</a>`,
			} {
				if !strings.Contains(listed.html, want) {
					t.Errorf("HTML part lacks %q:\n%s", want, listed.html)
				}
			}
			if strings.Contains(listed.text+listed.html, "\u202e") {
				t.Error("a title's control character reached the mail")
			}
			// The rest of the mail is the same, with or without articles.
			if !strings.Contains(listed.text, "/t/tok") || !strings.Contains(listed.html, "/t/tok") {
				t.Errorf("the ticket's link is gone:\n%s", listed.text)
			}
			for _, part := range []string{bare.text, bare.html} {
				if strings.Contains(part, c.heading) || strings.Contains(part, "/kb/") {
					t.Errorf("an acknowledgement without articles mentions them:\n%s", part)
				}
			}
			if got := strings.Count(listed.text, "\n") - strings.Count(bare.text, "\n"); got != 7 {
				t.Errorf("the list adds %d lines to the text, want 7 (a blank line, the heading, a blank line, two per article):\n%s", got, listed.text)
			}
		})
	}
}

func composed(t *testing.T, w *Worker, m tickets.OutboxMail) spooledMail {
	t.Helper()
	raw, _, err := w.compose(m, m.Token)
	if err != nil {
		t.Fatal(err)
	}
	mail := readMail(t, raw)
	mail.text = strings.ReplaceAll(mail.text, "\r\n", "\n")
	return mail
}

// Sent through the outbox, the acknowledgement of a ticket a published
// article matches links to it.
func TestSpooledAckLinksToMatchingArticles(t *testing.T) {
	store, _ := fixture(t, 1)
	_, err := store.ImportArticles(context.Background(), "test", []tickets.ArticleInput{
		{Department: "billing", Language: "en", Title: "Where to find your invoice", Keywords: []string{"receipt"},
			Body: "Open *Billing*.", State: tickets.ArticlePublished},
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	drainAll(t, newWorker(t, store, "file://"+dir))
	mails := readSpooled(t, dir)
	if len(mails) != 1 {
		t.Fatalf("spooled %d mails, want the acknowledgement", len(mails))
	}
	for _, m := range mails {
		link := "https://help.example.com/kb/billing/en/where-to-find-your-invoice?from=mail"
		if !strings.Contains(strings.ReplaceAll(m.text, "\r\n", "\n"), "  - Where to find your invoice\n    "+link+"\n") || !strings.Contains(m.html, `href="`+link+`"`) {
			t.Errorf("the acknowledgement does not link to the article:\n%s\n%s", m.text, m.html)
		}
	}
}
