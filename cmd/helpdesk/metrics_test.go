package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/helpdeskgw/helpdesk/internal/smtptest"
)

// /metrics tells what the gateway did: mail received and refused, mail
// sent, the outbox, the pages served; and only to the machine itself.
func TestMetricsCountWhatHappened(t *testing.T) {
	app, spool := startApp(t)
	c := smtptest.Dial(t, app.SMTPAddr())
	c.Cmd("MAIL FROM:<ana@example.org>", 250)
	c.Cmd("RCPT TO:<nobody@example.com>", 550)
	c.Cmd("RSET", 250)
	if code, msg := c.Send("ana@example.org", []string{"support@localhost"}, customerMail()); code != 250 {
		t.Fatalf("mail refused: %d %s", code, msg)
	}
	c.Quit()
	waitForFile(t, spool, 1)
	base := "http://" + app.HTTPAddr()
	get(t, http.DefaultClient, base+"/healthz", http.StatusOK)

	want := []string{
		`helpdesk_mail_received_total{disposition="ticket",source="smtp"} 1`,
		`helpdesk_smtp_replies_total{code="250",command="data"} 1`,
		`helpdesk_smtp_replies_total{code="550",command="rcpt"} 1`,
		`helpdesk_smtp_replies_total{code="250",command="rcpt"} 1`,
		`helpdesk_mail_ingest_seconds_count{source="smtp"} 1`,
		`helpdesk_mail_sent_total{kind="ack"} 1`,
		`helpdesk_outbox_pending 0`,
		`helpdesk_outbox_scrape_error 0`,
		`helpdesk_imap_mailbox_scrape_error 0`,
		`helpdesk_http_requests_total{code="200",route="GET /healthz"} 1`,
		`go_goroutines `,
	}
	var page string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		page = get(t, http.DefaultClient, base+"/metrics", http.StatusOK)
		missing := 0
		for _, w := range want {
			if !strings.Contains(page, w) {
				missing++
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, w := range want {
		if !strings.Contains(page, w) {
			t.Errorf("metrics lack %s", w)
		}
	}

	// A proxy not trusted to name the client forwards a visitor: refused.
	req, _ := http.NewRequest("GET", base+"/metrics", nil)
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("forwarded request for /metrics: %d, want 404", resp.StatusCode)
	}
}
