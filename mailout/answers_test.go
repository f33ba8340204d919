package mailout

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	netmail "net/mail"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/helpdeskgw/helpdesk/tickets"
)

var customerLink = regexp.MustCompile(`https://help\.example\.com/t/([A-Za-z0-9_-]{43})\b`)

// oneSpaced joins s's words with single spaces, so that expectations do
// not depend on where a template breaks its lines.
func oneSpaced(s string) string { return strings.Join(strings.Fields(s), " ") }

// An agent's answer, the auto-resolve notice and the notices to agents, as
// the store queues them, in the department's language.
func TestAnswersAndNoticesInBothLanguages(t *testing.T) {
	db.Reset(t)
	pool := db.Pool(t)
	store := tickets.New(tickets.Options{Pool: pool})
	ctx := context.Background()

	// The customer's reply is longer than a notice quotes.
	var reply strings.Builder
	for i := 1; i <= 25; i++ {
		fmt.Fprintf(&reply, "renglón %d <i>\n", i)
	}
	type want struct {
		// subjects of the answer, the auto-resolve notice, the new-ticket
		// notice and the reply notice.
		answer, resolved, newTicket, customerWrote string
		answerText, resolvedText                   []string
		newTicketText, customerWroteText           []string
		answerHTML                                 []string
	}
	type scenario struct {
		locale, customer, customerName, subject string
		dept                                    tickets.Department
		agent                                   tickets.NewAgent
		want                                    func(id string) want

		ticket    tickets.IngestResult
		agentID   int64
		customerM string // the customer's mail's Message-ID
		ackID     string
		answerID  string
	}
	scenarios := []*scenario{
		{locale: "es", customer: "ana@example.org", customerName: "Ana", subject: "No puedo entrar",
			dept:  tickets.Department{Slug: "soporte", Name: "Soporte Técnico", Address: "soporte@example.com", Locale: "es"},
			agent: tickets.NewAgent{Email: "luis@example.com", Name: "Luis Pérez", Role: tickets.RoleAgent, Password: "long enough pw"},
			want: func(id string) want {
				return want{
					answer: "[" + id + "] Re: No puedo entrar", resolved: "[" + id + "] Ticket resuelto: No puedo entrar",
					newTicket:     "[" + id + "] Nuevo ticket en Soporte Técnico: No puedo entrar",
					customerWrote: "[" + id + "] Ana ha escrito: No puedo entrar",
					answerText: []string{"Luis Pérez ha respondido a tu ticket " + id, "<b>sin HTML</b>",
						"Archivos adjuntos (descárgalos en la página de tu ticket): - factura marzo.pdf - captura <1>.png",
						"(válido 90 días)", "si contestas a este correo, tu mensaje quedará retenido hasta que lo revises"},
					resolvedText: []string{"Hemos dado por resuelto tu ticket " + id + " (No puedo entrar) tras 3 días sin noticias tuyas",
						"puedes leer el ticket, reabrirlo y respondernos"},
					newTicketText: []string{"Hola Luis Pérez:", "Ha llegado un ticket nuevo a Soporte Técnico", "Cliente: Ana <ana@example.org>",
						"Prioridad: Media", "Departamento: Soporte Técnico"},
					customerWroteText: []string{"Ana <ana@example.org> ha escrito en el ticket " + id, "que tienes asignado"},
					answerHTML:        []string{"<strong>Luis Pérez</strong> ha respondido", "descárgalos en la página de tu ticket", "<li>captura &lt;1&gt;.png</li>"},
				}
			}},
		{locale: "en", customer: "zoe@example.org", customerName: "Zoë", subject: "Invoice <twice>",
			dept:  tickets.Department{Slug: "billing", Name: "Billing", Address: "billing@example.com", Locale: "en"},
			agent: tickets.NewAgent{Email: "kate@example.com", Name: "Kate Smith", Role: tickets.RoleAgent, Password: "long enough pw"},
			want: func(id string) want {
				return want{
					answer: "[" + id + "] Re: Invoice <twice>", resolved: "[" + id + "] Ticket resolved: Invoice <twice>",
					newTicket:     "[" + id + "] New ticket in Billing: Invoice <twice>",
					customerWrote: "[" + id + "] Zoë wrote: Invoice <twice>",
					answerText: []string{"Kate Smith answered your ticket " + id, "<b>sin HTML</b>",
						"Attached files (download them on your ticket page): - factura marzo.pdf - captura <1>.png",
						"(valid for 90 days)", "if you answer this mail, your message is held until you review"},
					resolvedText: []string{"We marked your ticket " + id + " (Invoice <twice>) resolved after 3 days without news from you",
						"you can read the ticket, reopen it and reply"},
					newTicketText: []string{"Hello Kate Smith,", "A new ticket arrived in Billing", "Customer: Zoë <zoe@example.org>",
						"Priority: Medium", "Department: Billing"},
					customerWroteText: []string{"Zoë <zoe@example.org> wrote on ticket " + id, "which is assigned to you"},
					answerHTML:        []string{"<strong>Kate Smith</strong> answered", "download them on your ticket page", "<li>captura &lt;1&gt;.png</li>"},
				}
			}},
	}
	// queued returns the Message-IDs of the mail queued about a ticket, by
	// kind.
	queued := func(ticketID int64) map[tickets.MailKind][]string {
		t.Helper()
		out, err := store.OutboxForTicket(ctx, ticketID)
		if err != nil {
			t.Fatal(err)
		}
		ids := map[tickets.MailKind][]string{}
		for _, o := range out {
			ids[o.Kind] = append(ids[o.Kind], o.MessageID)
		}
		return ids
	}
	kindsOf := func(ticketID int64) []tickets.MailKind {
		t.Helper()
		var kinds []tickets.MailKind
		for k := range queued(ticketID) {
			kinds = append(kinds, k)
		}
		slices.Sort(kinds)
		return kinds
	}
	for _, s := range scenarios {
		d, err := store.AddDepartment(ctx, s.dept)
		if err != nil {
			t.Fatal(err)
		}
		s.dept = d
		s.agent.DepartmentSlugs = []string{d.Slug}
		agent, err := store.AddAgent(ctx, "test", s.agent)
		if err != nil {
			t.Fatal(err)
		}
		s.agentID = agent.ID
		// The ticket arrives after the agent joined its department: the
		// agent hears of it.
		s.customerM = "first-" + s.locale + "@example.org"
		raw := "From: " + s.customer + "\r\nMessage-ID: <" + s.customerM + ">\r\n\r\nhello"
		s.ticket, err = store.IngestMail(ctx, &tickets.InboundMail{
			Source: "smtp", Department: d, MessageID: s.customerM, EnvelopeFrom: s.customer,
			From: tickets.Address{Name: s.customerName, Email: s.customer}, Subject: s.subject,
			Text: "hello", NewText: "hello", Raw: tickets.BytesContent([]byte(raw)),
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := kindsOf(s.ticket.TicketID); !slices.Equal(got, []tickets.MailKind{tickets.KindAck, tickets.KindAgentNewTicket}) ||
			len(queued(s.ticket.TicketID)[tickets.KindAgentNewTicket]) != 1 {
			t.Fatalf("queued for the new ticket: %v, want the acknowledgement and the agent's notice", got)
		}
		_, err = store.AnswerTicket(ctx, agent, s.ticket.TicketID, tickets.Answer{
			Text: "Hola {{link}}\n<b>sin HTML</b>\n\nSaludos",
			Attachments: []tickets.InboundAttachment{
				{Filename: "factura marzo.pdf", ContentType: "application/pdf", Content: tickets.BytesContent([]byte("%PDF"))},
				{Filename: "captura <1>.png", ContentType: "image/png", Content: tickets.BytesContent([]byte("png"))},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		// An internal note is the staff's: no mail.
		before := queued(s.ticket.TicketID)
		if _, err := store.AnswerTicket(ctx, agent, s.ticket.TicketID, tickets.Answer{Text: "nota interna: no mandar", Internal: true}); err != nil {
			t.Fatal(err)
		}
		after := queued(s.ticket.TicketID)
		if !maps.EqualFunc(after, before, slices.Equal) {
			t.Fatalf("an internal note queued mail: %v, was %v", after, before)
		}
		if len(after[tickets.KindAnswer]) != 1 {
			t.Fatalf("queued %v, want one answer", after)
		}
		s.ackID, s.answerID = after[tickets.KindAck][0], after[tickets.KindAnswer][0]
		d.AutoResolveDays = 3
		if err := store.UpdateDepartment(ctx, "test", d); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `UPDATE tickets SET updated_at = now() - interval '10 days'`); err != nil {
		t.Fatal(err)
	}
	if n, err := store.AutoResolve(ctx); err != nil || n != len(scenarios) {
		t.Fatalf("auto-resolve: %d tickets (%v), want %d", n, err, len(scenarios))
	}
	for _, s := range scenarios {
		agent, err := store.Agent(ctx, s.agentID)
		if err != nil {
			t.Fatal(err)
		}
		if err := store.UpdateTicket(ctx, agent, s.ticket.TicketID, tickets.TicketChange{AssigneeID: &s.agentID}); err != nil {
			t.Fatal(err)
		}
		if err := store.ReplyByCustomer(ctx, s.ticket.TicketID, tickets.CustomerReply{Message: reply.String()}); err != nil {
			t.Fatal(err)
		}
	}

	dir := t.TempDir()
	drainAll(t, newWorker(t, store, "file://"+dir))
	mails := readSpooled(t, dir)
	// Per ticket: the acknowledgement, the answer, the auto-resolve notice
	// and the two notices to the agent.
	if len(mails) != 5*len(scenarios) {
		keys := make([]string, 0, len(mails))
		for k := range mails {
			keys = append(keys, k)
		}
		t.Fatalf("spooled %d mails, want %d: %q", len(mails), 5*len(scenarios), keys)
	}
	for key, m := range mails {
		if strings.Contains(m.text+m.html, "nota interna") {
			t.Errorf("%s carries the internal note", key)
		}
	}

	for _, s := range scenarios {
		id := s.ticket.TrackingID
		w := s.want(id)
		staffLink := "https://help.example.com/staff/tickets/" + id
		get := func(t *testing.T, to, subject string) spooledMail {
			t.Helper()
			m, ok := mails[to+" | "+subject]
			if !ok {
				t.Fatalf("no mail to %s with subject %q", to, subject)
			}
			// The text part is sent with CRLF line ends.
			m.text = strings.ReplaceAll(m.text, "\r\n", "\n")
			if got := m.header.Get("X-Helpdesk-Ticket"); got != id {
				t.Errorf("X-Helpdesk-Ticket %q, want %s", got, id)
			}
			return m
		}
		contains := func(t *testing.T, part, body string, wants []string) {
			t.Helper()
			for _, want := range wants {
				if !strings.Contains(oneSpaced(body), want) {
					t.Errorf("%s part lacks %q:\n%s", part, want, body)
				}
			}
		}
		// opensTicket checks that every link of the part is one customer
		// link and that it opens the ticket.
		opensTicket := func(t *testing.T, part, body string) string {
			t.Helper()
			found := customerLink.FindAllStringSubmatch(body, -1)
			if len(found) == 0 {
				t.Fatalf("%s part has no link to the ticket:\n%s", part, body)
			}
			for _, f := range found[1:] {
				if f[1] != found[0][1] {
					t.Errorf("%s part has two links: %s and %s", part, found[0][0], f[0])
				}
			}
			tk, err := store.TicketByToken(ctx, found[0][1], tickets.ScopeTicket)
			if err != nil || tk.ID != s.ticket.TicketID {
				t.Errorf("%s link opens ticket %d (%v), want %d", part, tk.ID, err, s.ticket.TicketID)
			}
			if strings.Contains(body, "/staff/") {
				t.Errorf("%s part of a customer's mail carries a staff link", part)
			}
			return found[0][0]
		}
		threads := func(t *testing.T, m spooledMail, refs ...string) {
			t.Helper()
			if got, _ := m.header.MsgIDList("In-Reply-To"); !slices.Equal(got, []string{s.customerM}) {
				t.Errorf("In-Reply-To %q, want the customer's mail %q", got, s.customerM)
			}
			got, _ := m.header.MsgIDList("References")
			for _, r := range append(refs, s.customerM) {
				if !slices.Contains(got, r) {
					t.Errorf("References %q lack %q", got, r)
				}
			}
		}
		staffNotice := func(t *testing.T, m spooledMail) {
			t.Helper()
			checkTo(t, m, s.agent.Name, s.agent.Email)
			for part, body := range map[string]string{"text": m.text, "HTML": m.html} {
				if !strings.Contains(body, staffLink) {
					t.Errorf("%s part lacks the staff link %s:\n%s", part, staffLink, body)
				}
				if strings.Contains(body, "/t/") {
					t.Errorf("%s part of a notice to an agent carries a customer's link:\n%s", part, body)
				}
			}
		}

		t.Run(s.locale+"/answer", func(t *testing.T) {
			m := get(t, s.customer, w.answer)
			checkTo(t, m, s.customerName, s.customer)
			if from, _ := m.header.AddressList("From"); len(from) != 1 || from[0].Name != s.agent.Name+" ("+s.dept.Name+")" || from[0].Address != s.dept.Address {
				t.Errorf("From %v, want the agent on behalf of %s <%s>", from, s.dept.Name, s.dept.Address)
			}
			contains(t, "text", m.text, w.answerText)
			contains(t, "HTML", m.html, w.answerHTML)
			link := opensTicket(t, "text", m.text)
			if htmlLink := opensTicket(t, "HTML", m.html); htmlLink != link {
				t.Errorf("the parts carry different links: %s and %s", link, htmlLink)
			}
			// The placeholder became the link, in the text as written...
			if !strings.Contains(m.text, "Hola "+link+"\n<b>sin HTML</b>\n\nSaludos") {
				t.Errorf("text part lacks the answer with its link:\n%s", m.text)
			}
			// ...and, escaped and line by line, in the HTML, where only
			// the link is a link.
			if !strings.Contains(m.html, `Hola <a href="`+link+`" style="color:#1d4ed8;">`+link+`</a><br>&lt;b&gt;sin HTML&lt;/b&gt;<br><br>Saludos`) {
				t.Errorf("HTML part lacks the escaped answer with its line breaks and link:\n%s", m.html)
			}
			if strings.Contains(m.text+m.html, "{{link}}") || strings.Contains(m.html, "<b>") {
				t.Errorf("the answer kept its placeholder or its markup")
			}
			threads(t, m, s.ackID)
		})
		t.Run(s.locale+"/auto_resolved", func(t *testing.T) {
			m := get(t, s.customer, w.resolved)
			checkTo(t, m, s.customerName, s.customer)
			contains(t, "text", m.text, w.resolvedText)
			opensTicket(t, "text", m.text)
			opensTicket(t, "HTML", m.html)
			threads(t, m, s.ackID, s.answerID)
		})
		t.Run(s.locale+"/agent_new_ticket", func(t *testing.T) {
			m := get(t, s.agent.Email, w.newTicket)
			staffNotice(t, m)
			contains(t, "text", m.text, w.newTicketText)
			contains(t, "HTML", m.html, []string{s.customerName + " &lt;" + s.customer + "&gt;"})
		})
		t.Run(s.locale+"/agent_customer_reply", func(t *testing.T) {
			m := get(t, s.agent.Email, w.customerWrote)
			staffNotice(t, m)
			contains(t, "text", m.text, w.customerWroteText)
			// The first twenty lines, then a mark that there is more.
			if !strings.Contains(m.text, "renglón 1 <i>\n") || !strings.Contains(m.text, "renglón 20 <i>\n[…]") || strings.Contains(m.text, "renglón 21") {
				t.Errorf("text part does not quote the first 20 lines:\n%s", m.text)
			}
			if !strings.Contains(m.html, "renglón 19 &lt;i&gt;<br>renglón 20 &lt;i&gt;</div>") || strings.Contains(m.html, "renglón 21") {
				t.Errorf("HTML part does not quote the first 20 lines, escaped:\n%s", m.html)
			}
		})
	}
	// Staff notices go to the agents, nothing else does; each agent hears
	// only of their own department's ticket.
	for key := range mails {
		to, subject, _ := strings.Cut(key, " | ")
		for _, s := range scenarios {
			w := s.want(s.ticket.TrackingID)
			staff := subject == w.newTicket || subject == w.customerWrote
			if staff && to != s.agent.Email || !staff && to == s.agent.Email {
				t.Errorf("mail %q", key)
			}
		}
	}
}

func checkTo(t *testing.T, m spooledMail, name, address string) {
	t.Helper()
	if to, _ := m.header.AddressList("To"); len(to) != 1 || to[0].Name != name || to[0].Address != address {
		t.Errorf("To %v, want %s <%s> alone", to, name, address)
	}
	for _, field := range []string{"Cc", "Bcc"} {
		if m.header.Has(field) {
			t.Errorf("%s: %q", field, m.header.Get(field))
		}
	}
}

// answerMail is a well-formed mail of kind, with what that kind carries.
func answerMail(kind tickets.MailKind) tickets.OutboxMail {
	m := outboxMail(kind)
	m.InReplyTo, m.References = "", nil
	msg := &tickets.Message{AuthorKind: "agent", AuthorName: "Luis", Text: "Hola {{link}}",
		Attachments: []tickets.Attachment{{Filename: "a.pdf"}}, CreatedAt: time.Date(2026, 3, 2, 14, 5, 0, 0, time.UTC)}
	switch kind {
	case tickets.KindAnswer:
		m.Message = msg
	case tickets.KindAutoResolved:
		m.Ticket.Department.AutoResolveDays = 1
	case tickets.KindAgentNewTicket, tickets.KindAgentCustomerReply:
		m.Recipient, m.AgentName, m.Token = "luis@example.com", "Luis", ""
		if kind == tickets.KindAgentCustomerReply {
			msg.AuthorKind, msg.AuthorName, msg.Text = "customer", "Ana", "my {{link}} stays"
			m.Message = msg
		}
	}
	return m
}

// Compose alone: headers, language and links of each new kind, whatever
// the stored text holds.
func TestComposeAnswersAndNotices(t *testing.T) {
	w := composeWorker(t)
	const token = "customer-token-0123456789"
	for _, c := range []struct {
		name  string
		kind  tickets.MailKind
		spoil func(*tickets.OutboxMail)
		// subject and from name wanted; texts the text part holds.
		subject, fromName, toName string
		texts                     []string
		absent                    []string
	}{
		{name: "answer by an agent whose name breaks lines", kind: tickets.KindAnswer,
			spoil: func(m *tickets.OutboxMail) {
				m.Message.AuthorName = "Luis\r\nBcc: victim@example.org\u202e"
				m.Token = token
			},
			subject: "[" + testTrackingID + "] Re: Hola", fromName: "Luis Bcc: victim@example.org (Soporte)", toName: "Ana",
			texts:  []string{"Luis Bcc: victim@example.org answered", "Hola https://help.example.com/t/" + token, "- a.pdf"},
			absent: []string{"{{link}}", "\u202e"}},
		{name: "answer in the ticket's language, not the department's", kind: tickets.KindAnswer,
			spoil:   func(m *tickets.OutboxMail) { m.Ticket.Locale, m.Token = "es", token },
			subject: "[" + testTrackingID + "] Re: Hola", fromName: "Luis (Soporte)", toName: "Ana",
			texts: []string{"Luis ha respondido a tu ticket", "descárgalos en la página de tu ticket"}},
		{name: "auto-resolved after one day", kind: tickets.KindAutoResolved,
			spoil:   func(m *tickets.OutboxMail) { m.Token = token },
			subject: "[" + testTrackingID + "] Ticket resolved: Hola", fromName: "Soporte", toName: "Ana",
			texts: []string{"resolved after 1 day without news", "https://help.example.com/t/" + token}},
		{name: "auto-resolved when the department no longer says after how long", kind: tickets.KindAutoResolved,
			spoil:   func(m *tickets.OutboxMail) { m.Token, m.Ticket.Department.AutoResolveDays = token, 0 },
			subject: "[" + testTrackingID + "] Ticket resolved: Hola", fromName: "Soporte", toName: "Ana",
			texts: []string{"(Hola) resolved. If the problem persists"}, absent: []string{"after 0"}},
		{name: "new ticket notice in the department's language, not the ticket's", kind: tickets.KindAgentNewTicket,
			spoil: func(m *tickets.OutboxMail) {
				m.Ticket.Locale = "es"
				m.AgentName = "Luis\nBcc: victim@example.org"
			},
			subject: "[" + testTrackingID + "] New ticket in Soporte: Hola", fromName: "Soporte", toName: "Luis Bcc: victim@example.org",
			texts: []string{"https://help.example.com/staff/tickets/" + testTrackingID}},
		{name: "staff notice of a row that carries a token anyway", kind: tickets.KindAgentNewTicket,
			spoil:   func(m *tickets.OutboxMail) { m.Token = token },
			subject: "[" + testTrackingID + "] New ticket in Soporte: Hola", fromName: "Soporte", toName: "Luis",
			texts: []string{"Customer: Ana <ana@example.org>"}, absent: []string{token, "/t/"}},
		{name: "customer's message quoted as written", kind: tickets.KindAgentCustomerReply,
			spoil:   func(m *tickets.OutboxMail) { m.Token = token },
			subject: "[" + testTrackingID + "] Ana wrote: Hola", fromName: "Soporte", toName: "Luis",
			texts: []string{"my {{link}} stays", "- a.pdf"}, absent: []string{token, "/t/", "[…]"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := answerMail(c.kind)
			c.spoil(&m)
			raw, _, err := w.compose(m, m.Token)
			if err != nil {
				t.Fatal(err)
			}
			checkHeaderLines(t, raw)
			std, err := netmail.ReadMessage(bytes.NewReader(raw))
			if err != nil {
				t.Fatalf("net/mail cannot read the mail: %v", err)
			}
			if len(std.Header["Bcc"]) != 0 || len(std.Header["Cc"]) != 0 {
				t.Errorf("header holds Bcc %q, Cc %q", std.Header["Bcc"], std.Header["Cc"])
			}
			checkAddressField(t, std.Header, "From", c.fromName, "soporte@example.com")
			checkAddressField(t, std.Header, "To", c.toName, m.Recipient)
			parsed := readMail(t, raw)
			if subject, _ := parsed.header.Subject(); subject != c.subject {
				t.Errorf("subject %q, want %q", subject, c.subject)
			}
			if got := parsed.header.Get("X-Helpdesk-Ticket"); got != testTrackingID {
				t.Errorf("X-Helpdesk-Ticket %q, want %s", got, testTrackingID)
			}
			for _, want := range c.texts {
				if !strings.Contains(oneSpaced(parsed.text), want) {
					t.Errorf("text part lacks %q:\n%s", want, parsed.text)
				}
			}
			for _, bad := range c.absent {
				if strings.Contains(parsed.text+parsed.html, bad) {
					t.Errorf("mail holds %q:\n%s\n%s", bad, parsed.text, parsed.html)
				}
			}
		})
	}
}

// A mail that would carry a customer's link to anyone else, or lacks what
// it shows, is not sent, and not retried either.
func TestComposeRefusesAnswersAndNoticesItCannotWrite(t *testing.T) {
	w := composeWorker(t)
	for _, c := range []struct {
		name  string
		kind  tickets.MailKind
		spoil func(*tickets.OutboxMail)
	}{
		{"answer without its message", tickets.KindAnswer, func(m *tickets.OutboxMail) { m.Message = nil }},
		{"answer without its link", tickets.KindAnswer, func(m *tickets.OutboxMail) { m.Token = "" }},
		{"answer to someone else", tickets.KindAnswer, func(m *tickets.OutboxMail) { m.Recipient = "mallory@example.net" }},
		{"auto-resolve notice without its link", tickets.KindAutoResolved, func(m *tickets.OutboxMail) { m.Token = "" }},
		{"auto-resolve notice to someone else", tickets.KindAutoResolved, func(m *tickets.OutboxMail) { m.Recipient = "mallory@example.net" }},
		{"reply notice without the message", tickets.KindAgentCustomerReply, func(m *tickets.OutboxMail) { m.Message = nil }},
		{"staff notice to an address with a header after it", tickets.KindAgentNewTicket, func(m *tickets.OutboxMail) {
			m.Recipient = "luis@example.com\r\nBcc: victim@example.org"
		}},
	} {
		t.Run(c.name, func(t *testing.T) { refusesSpoiled(t, w, answerMail(c.kind), c.spoil) })
	}
}

func TestWrittenText(t *testing.T) {
	const link = "https://help.example.com/t/tok"
	for _, c := range []struct {
		name, in, link, text string
		lines                [][]textPiece
	}{
		{"placeholder becomes the link", "Hola {{link}}.", link, "Hola " + link + ".",
			[][]textPiece{{{Text: "Hola "}, {Text: link, Link: true}, {Text: "."}}}},
		{"every placeholder, at either end of a line", "{{link}}\r\nx {{link}}", link, link + "\nx " + link,
			[][]textPiece{{{Text: link, Link: true}}, {{Text: "x "}, {Text: link, Link: true}}}},
		{"no link: the placeholder stays as written", "see {{link}}", "", "see {{link}}",
			[][]textPiece{{{Text: "see {{link}}"}}}},
		{"markup is text, blank lines stay, the ends are trimmed", "\n<b>a</b>\n\n  b\n\n", "", "<b>a</b>\n\n  b",
			[][]textPiece{{{Text: "<b>a</b>"}}, nil, {{Text: "  b"}}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := newWrittenText(c.in, c.link)
			if got.Text != c.text {
				t.Errorf("text %q, want %q", got.Text, c.text)
			}
			if !slices.EqualFunc(got.Lines, c.lines, slices.Equal) {
				t.Errorf("lines %+v, want %+v", got.Lines, c.lines)
			}
		})
	}
}

func TestExcerpt(t *testing.T) {
	lines := func(n int) string {
		var b strings.Builder
		for i := 1; i <= n; i++ {
			fmt.Fprintf(&b, "line %d\n", i)
		}
		return b.String()
	}
	long := strings.Repeat("ñ", excerptRunes+1)
	for _, c := range []struct {
		name, in, want string
		cut            bool
	}{
		{"short", "hola\n\n", "hola", false},
		{"twenty lines", lines(20), strings.TrimSuffix(lines(20), "\n"), false},
		{"twenty-one lines", lines(21), strings.TrimSuffix(lines(20), "\n"), true},
		{"one long line", long, long[:len(long)-len("ñ")], true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, cut := excerpt(c.in)
			if got != c.want || cut != c.cut {
				t.Errorf("excerpt = %q, %v; want %q, %v", got, cut, c.want, c.cut)
			}
		})
	}
}
