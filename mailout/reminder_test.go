package mailout

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	gomail "github.com/emersion/go-message/mail"

	"github.com/helpdeskgw/helpdesk/tickets"
)

// spooledMail is a sent mail as a reader sees it.
type spooledMail struct {
	from, text, html string
	header           gomail.Header
	// parts are the body parts' content types, in order.
	parts []string
}

// readMail parses a mail as go-message reads it.
func readMail(t *testing.T, raw []byte) spooledMail {
	t.Helper()
	r, err := gomail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("go-message cannot read the mail: %v", err)
	}
	m := spooledMail{header: r.Header}
	if from, _ := r.Header.AddressList("From"); len(from) > 0 {
		m.from = from[0].Address
	}
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p.Body)
		ct, _, _ := p.Header.(*gomail.InlineHeader).ContentType()
		m.parts = append(m.parts, ct)
		if ct == "text/plain" {
			m.text = string(b)
		} else {
			m.html = string(b)
		}
	}
	return m
}

// readSpooled parses the spooled mails, by "recipient | subject".
func readSpooled(t *testing.T, dir string) map[string]spooledMail {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
	out := map[string]spooledMail{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m := readMail(t, raw)
		subject, _ := m.header.Subject()
		to, _ := m.header.AddressList("To")
		out[to[0].Address+" | "+subject] = m
	}
	return out
}

// The mail listing a customer's open tickets, in either language.
func TestReminderRendersInBothLanguages(t *testing.T) {
	db.Reset(t)
	pool := db.Pool(t)
	store := tickets.New(tickets.Options{Pool: pool})
	ctx := context.Background()
	for _, d := range []tickets.Department{
		{Slug: "billing", Name: "Billing", Address: "billing@example.com", Locale: "en"},
		{Slug: "soporte", Name: "Soporte Técnico", Address: "soporte@example.com", Locale: "es"},
	} {
		if _, err := store.AddDepartment(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	submit := func(dept, email, subject string) tickets.Submitted {
		res, err := store.SubmitTicket(ctx, tickets.WebTicket{Department: dept, Name: "Zoë", Email: email, Subject: subject, Message: "help"})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	en := submit("billing", "zoe@example.org", "Invoice <twice>")
	es := submit("soporte", "ana@example.org", "No puedo entrar")
	es2 := submit("soporte", "ana@example.org", "Factura")
	if _, err := pool.Exec(ctx, `UPDATE outbox SET state = 'sent'`); err != nil { // the acknowledgements
		t.Fatal(err)
	}
	for _, q := range [][2]string{{"zoe@example.org", "es"}, {"ana@example.org", "en"}} {
		if queued, err := store.QueueReminder(ctx, q[0], q[1]); err != nil || !queued {
			t.Fatalf("reminder to %s: %v %v", q[0], queued, err)
		}
	}
	dir := t.TempDir()
	w := newWorker(t, store, "file://"+dir)
	drainAll(t, w)
	mails := readSpooled(t, dir)
	if len(mails) != 2 {
		t.Fatalf("spooled %v", mails)
	}
	link := regexp.MustCompile(`https://help\.example\.com/t/([A-Za-z0-9_-]{43})`)
	for key, want := range map[string]struct {
		from    string
		texts   []string
		html    []string
		tickets []tickets.Submitted
	}{
		// Zoë's one ticket is in English; the page's Spanish is not hers.
		"zoe@example.org | Your open tickets": {"billing@example.com", []string{"You asked for the list of your open tickets",
			"[" + en.TrackingID + "] Invoice <twice>", "Status: New · Billing", "valid for 90 days"},
			[]string{en.TrackingID, "Invoice &lt;twice&gt;", "View the ticket"}, []tickets.Submitted{en}},
		"ana@example.org | Tus tickets abiertos": {"soporte@example.com", []string{"Nos has pedido la lista de tus tickets abiertos",
			"[" + es2.TrackingID + "] Factura", "[" + es.TrackingID + "] No puedo entrar", "Estado: Nuevo · Soporte Técnico"},
			[]string{es.TrackingID, es2.TrackingID, "Ver el ticket"}, []tickets.Submitted{es2, es}},
	} {
		got, ok := mails[key]
		if !ok {
			t.Errorf("no mail %q among %v", key, mails)
			continue
		}
		if got.from != want.from {
			t.Errorf("%s: from %s, want %s", key, got.from, want.from)
		}
		for _, text := range want.texts {
			if !strings.Contains(got.text, text) {
				t.Errorf("%s lacks %q:\n%s", key, text, got.text)
			}
		}
		for _, text := range want.html {
			if !strings.Contains(got.html, text) {
				t.Errorf("%s: HTML part lacks %q:\n%s", key, text, got.html)
			}
		}
		// The text part lists each ticket's link once, in order, and each
		// opens its ticket.
		found := link.FindAllStringSubmatch(got.text, -1)
		if len(found) != len(want.tickets) {
			t.Fatalf("%s: %d links, want %d", key, len(found), len(want.tickets))
		}
		for i, m := range found {
			tk, err := store.TicketByToken(ctx, m[1], tickets.ScopeTicket)
			if err != nil || tk.ID != want.tickets[i].TicketID {
				t.Errorf("%s: link %d opens %d (%v), want ticket %d", key, i, tk.ID, err, want.tickets[i].TicketID)
			}
		}
	}
}

// The acknowledgement says what the link allows.
func TestAckPromisesWhatThePageDoes(t *testing.T) {
	store, _ := fixture(t, 1)
	dir := t.TempDir()
	drainAll(t, newWorker(t, store, "file://"+dir))
	mails := readSpooled(t, dir)
	if len(mails) != 1 {
		t.Fatalf("spooled %v", mails)
	}
	for _, m := range mails {
		for _, part := range []string{m.text, m.html} {
			if !strings.Contains(strings.Join(strings.Fields(part), " "), "read our agents' answers, reply, attach files and mark it resolved") {
				t.Errorf("acknowledgement does not say what the link allows:\n%s", part)
			}
		}
	}
}
