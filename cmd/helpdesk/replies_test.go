package main

import (
	"bytes"
	"context"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message/mail"

	"github.com/helpdeskgw/helpdesk/internal/smtptest"
	"github.com/helpdeskgw/helpdesk/mailin"
	"github.com/helpdeskgw/helpdesk/tickets"
)

// A customer answers the acknowledgement by mail, from a forged address
// too: nothing is added to the ticket until the owner posts it through the
// link mailed to the ticket's address; an out-of-office answer is only
// recorded.
func TestReplyByMailIsHeldUntilTheOwnerPostsIt(t *testing.T) {
	app, spool := startApp(t)
	c := smtptest.Dial(t, app.SMTPAddr())
	defer c.Quit()
	if code, msg := c.Send("ana@example.org", []string{"support@localhost"}, customerMail()); code != 250 {
		t.Fatalf("mail refused: %d %s", code, msg)
	}
	ack, err := mail.CreateReader(bytes.NewReader(waitForFile(t, spool, 1)))
	if err != nil {
		t.Fatal(err)
	}
	ackID, _ := ack.Header.MessageID()
	subject, _ := ack.Header.Subject()
	tracking := regexp.MustCompile(`^\[([A-Z1-9-]{12})\]`).FindStringSubmatch(subject)[1]

	reply := smtptest.CRLF(`From: Mallory <mallory@example.net>
To: support@localhost
Subject: Re: ` + subject + `
Message-ID: <reply-1@example.net>
In-Reply-To: <` + ackID + `>
References: <e2e-1@mail.example.org> <` + ackID + `>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b"

--b
Content-Type: text/plain; charset=utf-8

Ya funciona, gracias.

El vie, 27 nov 2026 a las 10:00, Soporte <support@localhost> escribió:
> Hemos recibido tu solicitud
--b
Content-Type: application/pdf
Content-Disposition: attachment; filename="factura.pdf"
Content-Transfer-Encoding: base64

` + smtptest.Base64Lines(pdfBytes) + `--b--
`)
	if code, msg := c.Send("mallory@example.net", []string{"support@localhost"}, reply); code != 250 {
		t.Fatalf("reply refused: %d %s", code, msg)
	}
	noticeRaw := waitForFile(t, spool, 2)
	notice, err := mail.CreateReader(bytes.NewReader(noticeRaw))
	if err != nil {
		t.Fatal(err)
	}
	to, _ := notice.Header.AddressList("To")
	if len(to) != 1 || to[0].Address != "ana@example.org" {
		t.Errorf("notice to %v, want the ticket's owner only", to)
	}
	if irt := notice.Header.Get("In-Reply-To"); irt != "<"+ackID+">" {
		t.Errorf("notice In-Reply-To %q, want the acknowledgement", irt)
	}
	link := mailLink(t, noticeRaw, "d")

	// An out-of-office answer to the acknowledgement is only recorded.
	ooo := smtptest.CRLF(`From: ana@example.org
To: support@localhost
Subject: Fuera de la oficina
Auto-Submitted: auto-replied
Message-ID: <ooo-1@example.org>
In-Reply-To: <` + ackID + `>

Vuelvo el lunes.
`)
	if code, msg := c.Send("ana@example.org", []string{"support@localhost"}, ooo); code != 250 {
		t.Fatalf("out-of-office refused: %d %s", code, msg)
	}
	ctx := context.Background()
	pool := db.Pool(t)
	var dispositions string
	err = pool.QueryRow(ctx, `SELECT string_agg(disposition, ',' ORDER BY id) FROM inbound`).Scan(&dispositions)
	if err != nil || dispositions != "ticket,draft,auto_reply" {
		t.Errorf("inbound dispositions %q (%v), want ticket,draft,auto_reply", dispositions, err)
	}

	// The owner follows the link, edits the text and posts it with its file.
	base := "http://" + app.HTTPAddr()
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	page := get(t, browser, base+strings.TrimPrefix(link, testBaseURL), http.StatusOK)
	for _, want := range []string{"mallory@example.net", "Ya funciona, gracias.", "factura.pdf"} {
		if !strings.Contains(page, want) {
			t.Errorf("ticket page lacks %q", want)
		}
	}
	action := regexp.MustCompile(`action="(/ticket/` + tracking + `/drafts/\d+/post)"`).FindStringSubmatch(page)
	if action == nil {
		t.Fatalf("no form to post the draft on the page:\n%s", page)
	}
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	w.WriteField("message", "Ya funciona, gracias (enviado por mí).") //nolint:errcheck // in memory
	w.WriteField("keep", "0")                                         //nolint:errcheck // in memory
	w.Close()
	resp, err := browser.Post(base+action[1], w.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("post draft: %d", resp.StatusCode)
	}
	var messages, files int
	var status string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		err = pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM attachments WHERE filename = 'factura.pdf'),
			(SELECT status FROM tickets)`).Scan(&messages, &files, &status)
		if err != nil || messages == 2 {
			break
		}
	}
	if messages != 2 || files != 1 || status != "waiting_reply" {
		t.Errorf("after posting: %d messages, %d copies of the file, status %s; want 2, 1, waiting_reply", messages, files, status)
	}
	var history int
	pool.QueryRow(ctx, `SELECT count(*) FROM ticket_history WHERE action IN ('reply_held', 'auto_reply', 'draft_posted')`).Scan(&history) //nolint:errcheck // checked below
	if history != 3 {
		t.Errorf("%d history rows for the held reply, the automatic answer and the posting, want 3", history)
	}
}

// What did not become a ticket is listed with its reason, shown raw and
// released into a ticket from the command line.
func TestInboundCommands(t *testing.T) {
	db.Reset(t)
	ctx := context.Background()
	environ := []string{"HELPDESK_DATABASE_URL=" + db.ConnString(t)}
	var out bytes.Buffer
	if err := run(ctx, []string{"department", "add", "--slug", "soporte", "--name", "Soporte", "--address", "support@example.com"}, environ, &out); err != nil {
		t.Fatal(err)
	}
	store := tickets.New(tickets.Options{Pool: db.Pool(t), Limits: tickets.Limits{TicketsPerSender: 1}})
	rcv := mailin.NewReceiver(mailin.ReceiverOptions{Store: store})
	env := mailin.Envelope{Source: "smtp", SourceRef: "127.0.0.1:1", From: "ana@example.org", To: []string{"support@example.com"}}
	env.Departments, _ = store.Departments(ctx)
	var quarantined int64
	for i := range 2 {
		raw := smtptest.CRLF(fmt.Sprintf("From: ana@example.org\nTo: support@example.com\nSubject: Pedido %d\nMessage-ID: <q-%d@example.org>\n\nHola %d\n", i, i, i))
		res, err := rcv.Deliver(ctx, env, tickets.BytesContent(raw))
		if err != nil {
			t.Fatal(err)
		}
		quarantined = res[0].InboundID
	}
	id := strconv.FormatInt(quarantined, 10)

	out.Reset()
	if err := run(ctx, []string{"inbound", "list", "--disposition", "quarantined"}, environ, &out); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(out.String()), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[1], id+" ") ||
		!strings.Contains(lines[1], "more than 1 new tickets from this address") {
		t.Errorf("quarantine list:\n%s", out.String())
	}
	out.Reset()
	if err := run(ctx, []string{"inbound", "show", "--raw", id}, environ, &out); err != nil || !strings.Contains(out.String(), "Message-ID: <q-1@example.org>\r\n") {
		t.Errorf("raw source (%v):\n%s", err, out.String())
	}
	out.Reset()
	if err := run(ctx, []string{"inbound", "show", id}, environ, &out); err != nil || !strings.Contains(out.String(), "quarantined") {
		t.Errorf("show (%v):\n%s", err, out.String())
	}
	out.Reset()
	if err := run(ctx, []string{"inbound", "release", id}, environ, &out); err != nil || !strings.Contains(out.String(), "acknowledgement queued") {
		t.Fatalf("release (%v):\n%s", err, out.String())
	}
	var subject string
	if err := db.Pool(t).QueryRow(ctx, `SELECT t.subject FROM inbound i JOIN tickets t ON t.id = i.ticket_id WHERE i.id = $1`, quarantined).Scan(&subject); err != nil || subject != "Pedido 1" {
		t.Errorf("released mail's ticket: %q, %v", subject, err)
	}
	if err := run(ctx, []string{"inbound", "release", id}, environ, &out); err == nil {
		t.Error("released twice")
	}
	for _, bad := range [][]string{{"inbound", "list", "--disposition", "lost"}, {"inbound", "show"}, {"inbound", "release", "x"}, {"inbound", "fly"}} {
		if err := run(ctx, bad, environ, &out); err == nil {
			t.Errorf("%v: accepted, want an error", bad)
		}
	}
	out.Reset()
	if err := run(ctx, []string{"inbound", "bounces"}, environ, &out); err != nil || !strings.HasPrefix(out.String(), "ADDRESS") {
		t.Errorf("bounces (%v):\n%s", err, out.String())
	}
}
