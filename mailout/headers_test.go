package mailout

import (
	"bytes"
	"context"
	"errors"
	"mime"
	netmail "net/mail"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/helpdeskgw/helpdesk/tickets"
)

const testTrackingID = "ABD-BDE-GHJL"

// composeWorker is a worker for tests that only compose: compose asks the
// store for nothing but the links' lifetime, so no database is needed.
func composeWorker(t *testing.T) *Worker {
	t.Helper()
	return newWorker(t, tickets.New(tickets.Options{}), "file://"+t.TempDir())
}

// outboxMail is a well-formed mail of kind about a ticket of the Soporte
// department, for the tests to spoil.
func outboxMail(kind tickets.MailKind) tickets.OutboxMail {
	tk := tickets.Ticket{
		ID: 1, TrackingID: testTrackingID, Subject: "Hola", CustomerName: "Ana", CustomerEmail: "ana@example.org",
		Status: tickets.StatusNew, Priority: "medium", Locale: "en",
		Department: tickets.Department{ID: 1, Slug: "soporte", Name: "Soporte", Address: "soporte@example.com", Locale: "en"},
	}
	m := tickets.OutboxMail{
		ID: 1, Kind: kind, Recipient: "ana@example.org", MessageID: "notice-1.20260302140500@example.com",
		InReplyTo: "irt@example.org", References: []string{"good-1@example.org", "good-2@example.org"},
		Ticket: tk, Token: "tok",
	}
	switch kind {
	case tickets.KindReminder:
		m.Listed = []tickets.ListedTicket{{Ticket: tk, Token: "tok"}}
	case tickets.KindDraftNotice:
		m.Draft = &tickets.Draft{ID: 1, TicketID: 1, FromAddress: "mallory@example.net",
			CreatedAt: time.Date(2026, 3, 2, 14, 5, 0, 0, time.UTC), ExpiresAt: time.Date(2026, 3, 9, 14, 5, 0, 0, time.UTC)}
	}
	return m
}

// Customer-written text ends up in the To: name, the Subject:, and the
// In-Reply-To: and References: of the mails we send (and the department's
// name in From:). Whatever it holds, the header keeps its fields.
func TestComposedHeadersCannotBeSplitOrSpoofed(t *testing.T) {
	w := composeWorker(t)
	// The header fields compose writes; anything else was injected.
	composedFields := []string{"Date", "From", "To", "Subject", "Message-Id", "In-Reply-To", "References",
		"Auto-Submitted", "X-Auto-Response-Suppress", "X-Helpdesk-Ticket", "Mime-Version", "Content-Type"}
	long := strings.Repeat("x", 2000)
	type hostile struct {
		name string
		// text ends the customer's name, the department's name and the
		// ticket's subject, and goes into a referenced Message-ID.
		text string
		// shown is what a reader sees of text.
		shown string
		// subject, when set, is the ticket's subject instead.
		subject string
	}
	for _, h := range []hostile{
		{name: "CRLF Bcc", text: "\r\nBcc: victim@example.org", shown: " Bcc: victim@example.org"},
		{name: "LF Subject", text: "\nSubject: fake", shown: " Subject: fake"},
		{name: "encoded line break", text: "=?utf-8?q?=0D=0ABcc:_x?=", shown: "=?utf-8?q?=0D=0ABcc:_x?="},
		{name: "bidi override", text: "\u202egnp.exe\u202c", shown: "gnp.exe"},
		{name: "NUL", text: "\x00Bcc: x@example.org", shown: "Bcc: x@example.org"},
		{name: "2000-character subject", subject: "Hola " + long},
	} {
		for _, kind := range []struct {
			kind    tickets.MailKind
			subject string
			tagged  bool
		}{
			{tickets.KindAck, "[" + testTrackingID + "] We received your request: ", true},
			{tickets.KindReminder, "Your open tickets", false},
			{tickets.KindDraftNotice, "[" + testTrackingID + "] We received your mail: review it to add it", true},
		} {
			t.Run(h.name+"/"+string(kind.kind), func(t *testing.T) {
				m := outboxMail(kind.kind)
				m.Ticket.CustomerName += h.text
				m.Ticket.Department.Name += h.text
				m.Ticket.Subject += h.text
				shownSubject := "Hola" + h.shown
				if h.subject != "" {
					m.Ticket.Subject, shownSubject = h.subject, h.subject
				}
				for i := range m.Listed {
					m.Listed[i].Ticket = m.Ticket // a reminder lists the ticket
				}
				m.InReplyTo = "irt" + h.text + "@example.org"
				m.References = []string{"good-1@example.org", "ref" + h.text + "@example.org", "sp ace@example.org",
					"a@example.org> <b@example.org", "<angle@example.org>", "crlf@example.org\r\nBcc: victim@example.org",
					"good-2@example.org"}
				wantRefs, wantInReplyTo := []string{"good-1@example.org", "good-2@example.org"}, []string(nil)
				if h.text == "" {
					wantRefs = []string{"good-1@example.org", "ref@example.org", "good-2@example.org"}
					wantInReplyTo = []string{"irt@example.org"}
				}
				wantSubject := kind.subject
				if kind.kind == tickets.KindAck {
					wantSubject += shownSubject
				}

				raw, _, err := w.compose(m, m.Token)
				if err != nil {
					t.Fatal(err)
				}
				checkHeaderLines(t, raw)

				std, err := netmail.ReadMessage(bytes.NewReader(raw))
				if err != nil {
					t.Fatalf("net/mail cannot read the mail: %v", err)
				}
				for k := range std.Header {
					if !slices.Contains(composedFields, k) {
						t.Errorf("header field %q = %q was not written by compose", k, std.Header[k])
					}
				}
				for field, want := range map[string]int{"From": 1, "To": 1, "Subject": 1, "Bcc": 0, "Cc": 0} {
					if got := len(std.Header[field]); got != want {
						t.Errorf("%d %s: fields %q, want %d", got, field, std.Header[field], want)
					}
				}
				checkAddressField(t, std.Header, "From", "Soporte"+h.shown, "soporte@example.com")
				checkAddressField(t, std.Header, "To", "Ana"+h.shown, "ana@example.org")
				stdSubject, err := new(mime.WordDecoder).DecodeHeader(std.Header.Get("Subject"))
				if err != nil {
					t.Errorf("net/mail subject %q: %v", std.Header.Get("Subject"), err)
				}

				parsed := readMail(t, raw)
				subject, err := parsed.header.Subject()
				if err != nil {
					t.Errorf("go-message subject: %v", err)
				}
				for reader, got := range map[string]string{"net/mail": stdSubject, "go-message": subject} {
					if strings.ContainsAny(got, "\r\n") || kind.tagged && !strings.HasPrefix(got, "["+testTrackingID+"] ") ||
						strings.ReplaceAll(got, "\u200b", "") != wantSubject {
						t.Errorf("%s reads the subject as %q, want %q", reader, got, wantSubject)
					}
				}
				if n := len(parsed.header.Values("Subject")); n != 1 {
					t.Errorf("%d Subject fields, want 1", n)
				}
				for field, want := range map[string][]string{"References": wantRefs, "In-Reply-To": wantInReplyTo} {
					if got, err := parsed.header.MsgIDList(field); err != nil || !slices.Equal(got, want) {
						t.Errorf("%s: %q (%v), want %q", field, got, err, want)
					}
				}
				wantTicket := ""
				if kind.tagged {
					wantTicket = testTrackingID
				}
				if got := parsed.header.Get("X-Helpdesk-Ticket"); got != wantTicket {
					t.Errorf("X-Helpdesk-Ticket %q, want %q", got, wantTicket)
				}
				// The body is where it belongs: both parts, after the header.
				if !slices.Equal(parsed.parts, []string{"text/plain", "text/html"}) {
					t.Errorf("parts %v, want the text and the HTML", parsed.parts)
				}
			})
		}
	}
}

// checkHeaderLines checks that every line of the header is printable ASCII
// of at most 998 bytes, ended by CRLF.
func checkHeaderLines(t *testing.T, raw []byte) {
	t.Helper()
	end := bytes.Index(raw, []byte("\r\n\r\n"))
	if end < 0 {
		t.Fatalf("no end of header in:\n%q", raw)
	}
	for i, line := range strings.Split(string(raw[:end]), "\r\n") {
		if len(line) > 998 {
			t.Errorf("header line %d is %d bytes long", i, len(line))
		}
		for _, b := range []byte(line) {
			if (b < ' ' || b > '~') && b != '\t' {
				t.Errorf("header line %d holds byte %#x: %q", i, b, line)
				break
			}
		}
	}
}

func checkAddressField(t *testing.T, h netmail.Header, field, name, address string) {
	t.Helper()
	list, err := h.AddressList(field)
	if err != nil || len(list) != 1 || list[0].Address != address || list[0].Name != name {
		t.Errorf("%s: %q parses as %v (%v), want one address %q named %q", field, h.Get(field), list, err, address, name)
	}
}

// What cannot be written safely is not sent, and not retried either.
func TestComposeRefusesWhatItCannotWriteSafely(t *testing.T) {
	w := composeWorker(t)
	for _, c := range []struct {
		name  string
		kind  tickets.MailKind
		spoil func(*tickets.OutboxMail)
	}{
		{"recipient with a header after it", tickets.KindAck, func(m *tickets.OutboxMail) {
			m.Recipient = "ana@example.org\r\nBcc: victim@example.org"
		}},
		{"recipient with a name", tickets.KindAck, func(m *tickets.OutboxMail) { m.Recipient = "Ana <ana@example.org>" }},
		{"recipient with a bidi override", tickets.KindAck, func(m *tickets.OutboxMail) { m.Recipient = "ana\u202e@example.org" }},
		{"department address with a header after it", tickets.KindReminder, func(m *tickets.OutboxMail) {
			m.Ticket.Department.Address = "soporte@example.com\nBcc: victim@example.org"
		}},
		{"our Message-ID with a space", tickets.KindAck, func(m *tickets.OutboxMail) { m.MessageID = "notice 1@example.com" }},
		{"draft notice without its draft", tickets.KindDraftNotice, func(m *tickets.OutboxMail) { m.Draft = nil }},
		{"draft notice without its link", tickets.KindDraftNotice, func(m *tickets.OutboxMail) { m.Token = "" }},
		{"draft notice to the reply's sender", tickets.KindDraftNotice, func(m *tickets.OutboxMail) {
			m.Recipient = m.Draft.FromAddress
		}},
	} {
		t.Run(c.name, func(t *testing.T) { refusesSpoiled(t, w, outboxMail(c.kind), c.spoil) })
	}
}

// refusesSpoiled checks that m composes, and that once spoiled, sending it
// fails for good. compose fails before the connection is used; were it to
// succeed, the nil connection would fail the send otherwise.
func refusesSpoiled(t *testing.T, w *Worker, m tickets.OutboxMail, spoil func(*tickets.OutboxMail)) {
	t.Helper()
	if _, _, err := w.compose(m, m.Token); err != nil {
		t.Fatalf("the mail before spoiling it: %v", err)
	}
	spoil(&m)
	err := w.send(context.Background(), nil, m)
	var perm *PermanentError
	if !errors.As(err, &perm) {
		t.Errorf("send: %v, want a permanent error", err)
	}
}

func TestMailDate(t *testing.T) {
	for _, c := range []struct {
		at     time.Time
		locale string
		want   string
	}{
		{time.Date(2026, 3, 2, 14, 5, 0, 0, time.UTC), "es", "2 de marzo de 2026, 14:05 UTC"},
		{time.Date(2026, 3, 2, 14, 5, 0, 0, time.UTC), "en", "2 March 2026, 14:05 UTC"},
		{time.Date(2026, 3, 2, 15, 5, 0, 0, time.FixedZone("CET", 3600)), "es", "2 de marzo de 2026, 14:05 UTC"},
		{time.Date(2026, 12, 31, 23, 59, 0, 0, time.FixedZone("EST", -5*3600)), "en", "1 January 2027, 04:59 UTC"},
		{time.Date(2026, 9, 30, 8, 0, 0, 0, time.UTC), "es", "30 de septiembre de 2026, 08:00 UTC"},
		{time.Date(2026, 9, 30, 8, 0, 0, 0, time.UTC), "fr", "30 de septiembre de 2026, 08:00 UTC"},
	} {
		t.Run(c.locale+"/"+c.want, func(t *testing.T) {
			if got := mailDate(c.at, c.locale); got != c.want {
				t.Errorf("mailDate(%s, %s) = %q, want %q", c.at, c.locale, got, c.want)
			}
		})
	}
}

// A reply to our mail is held; its notice goes to the ticket's owner, in
// the ticket's language, with a link that confirms that draft.
func TestDraftNoticeInBothLanguages(t *testing.T) {
	db.Reset(t)
	pool := db.Pool(t)
	store := tickets.New(tickets.Options{Pool: pool})
	ctx := context.Background()
	ingest := func(d tickets.Department, msgID, from, subject, inReplyTo string) tickets.IngestResult {
		t.Helper()
		raw := "From: " + from + "\r\nMessage-ID: <" + msgID + ">\r\n\r\nhello"
		res, err := store.IngestMail(ctx, &tickets.InboundMail{
			Source: "smtp", Department: d, MessageID: msgID, EnvelopeFrom: from, From: tickets.Address{Name: "Zoë", Email: from},
			Subject: subject, Text: "hello", NewText: "hello", InReplyTo: inReplyTo, Raw: tickets.BytesContent([]byte(raw)),
		})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	type notice struct {
		owner, subject, ackID string
		dept                  tickets.Department
		ticket                tickets.IngestResult
		draft                 tickets.IngestResult
		texts, html           []string
	}
	notices := map[string]*notice{}
	for _, c := range []struct {
		locale, owner, subject string
		dept                   tickets.Department
		texts, html            []string
	}{
		{"es", "ana@example.org", "No puedo entrar",
			tickets.Department{Slug: "soporte", Name: "Soporte Técnico", Address: "soporte@example.com", Locale: "es"},
			[]string{"Hemos recibido un correo sobre tu ticket", "(No puedo entrar), enviado desde mallory@example.net el 2 de marzo de 2026, 14:05 UTC.",
				"Todavía NO lo hemos añadido", "(enlace válido hasta el 9 de noviembre de 2099, 08:07 UTC)", "se descartará el 9 de noviembre de 2099, 08:07 UTC.",
				"usa la página de tu ticket"},
			[]string{"<strong>mallory@example.net</strong> el 2 de marzo de 2026, 14:05 UTC", "válido hasta el 9 de noviembre de 2099, 08:07 UTC", "Revisar y publicar"}},
		{"en", "zoe@example.org", "Invoice <twice>",
			tickets.Department{Slug: "billing", Name: "Billing", Address: "billing@example.com", Locale: "en"},
			[]string{"We received a mail about your ticket", "(Invoice <twice>), sent from mallory@example.net on 2 March 2026, 14:05 UTC.",
				"It has NOT been added", "(link valid until 9 November 2099, 08:07 UTC)", "it will be discarded on 9 November 2099, 08:07 UTC.",
				"use your ticket's page"},
			[]string{"Invoice &lt;twice&gt;", "<strong>mallory@example.net</strong> on 2 March 2026, 14:05 UTC", "valid until 9 November 2099, 08:07 UTC", "Review and post"}},
	} {
		d, err := store.AddDepartment(ctx, c.dept)
		if err != nil {
			t.Fatal(err)
		}
		n := &notice{owner: c.owner, subject: c.subject, dept: d, texts: c.texts, html: c.html}
		n.ticket = ingest(d, "first-"+c.locale+"@example.org", c.owner, c.subject, "")
		out, err := store.OutboxForTicket(ctx, n.ticket.TicketID)
		if err != nil || len(out) != 1 {
			t.Fatalf("outbox of the new ticket: %+v %v", out, err)
		}
		n.ackID = out[0].MessageID
		notices[c.locale] = n
	}
	drainAll(t, newWorker(t, store, "file://"+t.TempDir())) // the acknowledgements
	for locale, n := range notices {
		n.draft = ingest(n.dept, "reply-"+locale+"@example.net", "mallory@example.net", "Re: x", n.ackID)
		if n.draft.Disposition != tickets.DispositionDraft || n.draft.TicketID != n.ticket.TicketID {
			t.Fatalf("reply: %+v, want a draft of ticket %d", n.draft, n.ticket.TicketID)
		}
	}
	if _, err := pool.Exec(ctx, `UPDATE drafts SET created_at = '2026-03-02 14:05:00+00', expires_at = '2099-11-09 08:07:00+00'`); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	drainAll(t, newWorker(t, store, "file://"+dir))
	mails := readSpooled(t, dir)
	link := regexp.MustCompile(`https://help\.example\.com/d/([A-Za-z0-9_-]{43})\b`)
	for locale, n := range notices {
		t.Run(locale, func(t *testing.T) {
			subject := map[string]string{
				"es": "[" + n.ticket.TrackingID + "] Hemos recibido tu correo: revísalo para añadirlo",
				"en": "[" + n.ticket.TrackingID + "] We received your mail: review it to add it",
			}[locale]
			m, ok := mails[n.owner+" | "+subject]
			if !ok {
				t.Fatalf("no mail to %s with subject %q among %d", n.owner, subject, len(mails))
			}
			for _, want := range n.texts {
				if !strings.Contains(strings.Join(strings.Fields(m.text), " "), want) {
					t.Errorf("text lacks %q:\n%s", want, m.text)
				}
			}
			for _, want := range n.html {
				if !strings.Contains(strings.Join(strings.Fields(m.html), " "), want) {
					t.Errorf("HTML lacks %q:\n%s", want, m.html)
				}
			}
			if refs, _ := m.header.MsgIDList("In-Reply-To"); !slices.Equal(refs, []string{n.ackID}) {
				t.Errorf("In-Reply-To %q, want the acknowledgement %q", refs, n.ackID)
			}
			if got := m.header.Get("X-Helpdesk-Ticket"); got != n.ticket.TrackingID {
				t.Errorf("X-Helpdesk-Ticket %q, want %s", got, n.ticket.TrackingID)
			}
			for part, body := range map[string]string{"text": m.text, "HTML": m.html} {
				found := link.FindAllStringSubmatch(body, -1)
				if len(found) != 1 {
					t.Fatalf("%s part has links %q, want one /d/ link", part, found)
				}
				tk, d, err := store.DraftByToken(ctx, found[0][1])
				if err != nil || tk.ID != n.ticket.TicketID || d.ID != n.draft.DraftID {
					t.Errorf("%s link opens ticket %d draft %d (%v), want ticket %d draft %d", part, tk.ID, d.ID, err,
						n.ticket.TicketID, n.draft.DraftID)
				}
			}
			if strings.Contains(m.text, "/t/") || strings.Contains(m.html, "/t/") {
				t.Errorf("the notice carries a ticket link; it should confirm the draft only")
			}
		})
	}
	for key := range mails {
		if strings.HasPrefix(key, "mallory@") {
			t.Errorf("mail sent to the reply's sender: %s", key)
		}
	}
}
