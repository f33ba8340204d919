package main

import (
	"bytes"
	"context"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message/mail"

	"github.com/helpdeskgw/helpdesk/internal/smtptest"
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
	w.WriteField("keep", "0")                                          //nolint:errcheck // in memory
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
