package mailin

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helpdeskgw/helpdesk/internal/smtptest"
	"github.com/helpdeskgw/helpdesk/internal/testdb"
	"github.com/helpdeskgw/helpdesk/tickets"
)

var db *testdb.DB

func TestMain(m *testing.M) { testdb.Main(m, &db) }

// listener is an SMTP server over a real store, on a loopback port.
type listener struct {
	addr  string
	pool  *pgxpool.Pool
	store *tickets.Store
}

func startListener(t *testing.T, pool *pgxpool.Pool, maxBytes int64) *listener {
	t.Helper()
	store := tickets.New(tickets.Options{Pool: pool})
	ctx := context.Background()
	for _, d := range []tickets.Department{
		{Slug: "soporte", Name: "Soporte Técnico", Address: "support@example.com", Locale: "es"},
		{Slug: "billing", Name: "Billing", Address: "billing@example.com", Locale: "en"},
	} {
		if _, err := store.AddDepartment(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	rcv := NewReceiver(ReceiverOptions{Store: store, TempDir: t.TempDir(), OwnAddresses: []string{"noreply@example.com"}})
	srv := NewSMTPServer(SMTPOptions{Receiver: rcv, MaxMessageBytes: maxBytes, Domain: "mx.example.com"})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	t.Cleanup(func() { srv.Close() })
	return &listener{addr: ln.Addr().String(), pool: pool, store: store}
}

func (l *listener) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	if err := l.pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func plainMail(from, to, msgID, subject, body string) []byte {
	idHeader := ""
	if msgID != "" {
		idHeader = "Message-ID: <" + msgID + ">\n"
	}
	return smtptest.CRLF(fmt.Sprintf("From: %s\nTo: %s\nSubject: %s\n%sDate: Fri, 27 Nov 2026 10:00:00 +0100\n\n%s\n",
		from, to, subject, idHeader, body))
}

func TestSMTPRefusesUnknownRecipients(t *testing.T) {
	db.Reset(t)
	l := startListener(t, db.Pool(t), 0)
	c := smtptest.Dial(t, l.addr)
	c.Cmd("MAIL FROM:<ana@example.org>", 250)
	for _, rcpt := range []string{"nobody@example.com", "support@example.org", "someone@elsewhere.net"} {
		code, msg := c.Reply("RCPT TO:<" + rcpt + ">")
		if code != 550 || !strings.Contains(msg, "5.1.1") || !strings.Contains(msg, "no helpdesk department") {
			t.Errorf("RCPT %s: got %d %q, want 550 5.1.1 with a reason", rcpt, code, msg)
		}
	}
	// With no accepted recipient there is nothing to send.
	if code, _ := c.Reply("DATA"); code < 500 {
		t.Errorf("DATA without recipients: got %d, want a 5xx", code)
	}
	if n := l.count(t, `SELECT count(*) FROM inbound`); n != 0 {
		t.Errorf("inbound log has %d rows, want 0", n)
	}
}

func TestSMTPLimits(t *testing.T) {
	db.Reset(t)
	store := tickets.New(tickets.Options{Pool: db.Pool(t)})
	if _, err := store.AddDepartment(context.Background(), tickets.Department{Slug: "s", Name: "S", Address: "support@example.com"}); err != nil {
		t.Fatal(err)
	}
	srv := NewSMTPServer(SMTPOptions{Receiver: NewReceiver(ReceiverOptions{Store: store}), MaxConns: 2, MaxRecipients: 3})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	defer srv.Close()

	a := smtptest.Dial(t, ln.Addr().String())
	a.Cmd("MAIL FROM:<ana@example.org>", 250)
	for range 3 {
		a.Cmd("RCPT TO:<support@example.com>", 250)
	}
	if code, msg := a.Reply("RCPT TO:<support@example.com>"); code != 452 {
		t.Errorf("fourth recipient of at most 3: %d %q, want 452", code, msg)
	}
	smtptest.Dial(t, ln.Addr().String()) // the second of 2 slots
	third, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	third.SetReadDeadline(time.Now().Add(5 * time.Second))
	greeting := make([]byte, 100)
	n, _ := third.Read(greeting)
	if !strings.HasPrefix(string(greeting[:n]), "421 4.3.2") {
		t.Errorf("connection past the limit got %q, want 421 4.3.2", greeting[:n])
	}
	// A slot that frees up is given to the next client.
	a.Quit()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _ := c.Read(greeting)
		c.Close()
		if strings.HasPrefix(string(greeting[:n]), "220") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no slot after a session ended: %q", greeting[:n])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSMTPAcceptsTaggedAndMixedCaseAddresses(t *testing.T) {
	db.Reset(t)
	l := startListener(t, db.Pool(t), 0)
	c := smtptest.Dial(t, l.addr)
	code, msg := c.Send("ana@example.org", []string{"Support+Urgente@Example.COM"}, plainMail("ana@example.org", "support+urgente@example.com", "tag-1@example.org", "Hola", "texto"))
	if code != 250 {
		t.Fatalf("got %d %q, want 250", code, msg)
	}
	if n := l.count(t, `SELECT count(*) FROM tickets t JOIN departments d ON d.id = t.department_id WHERE d.slug = 'soporte'`); n != 1 {
		t.Fatalf("soporte has %d tickets, want 1", n)
	}
}

func TestSMTPRefusesOversizeMail(t *testing.T) {
	db.Reset(t)
	l := startListener(t, db.Pool(t), 64<<10)
	c := smtptest.Dial(t, l.addr)

	// Declared too large: refused at MAIL.
	if code, msg := c.Reply("MAIL FROM:<ana@example.org> SIZE=100000"); code != 552 {
		t.Errorf("MAIL with SIZE over the limit: got %d %q, want 552", code, msg)
	}
	c.Cmd("RSET", 250)

	// Not declared: refused after the data, and nothing is stored.
	big := plainMail("ana@example.org", "support@example.com", "big-1@example.org", "big", strings.Repeat("x", 100<<10))
	code, msg := c.Send("ana@example.org", []string{"support@example.com"}, big)
	if code != 552 || !strings.Contains(msg, "size") {
		t.Errorf("oversize DATA: got %d %q, want 552 naming the size", code, msg)
	}
	// The session goes on: a mail under the limit still gets through.
	code, msg = c.Send("ana@example.org", []string{"support@example.com"}, plainMail("ana@example.org", "support@example.com", "small-1@example.org", "small", "ok"))
	if code != 250 {
		t.Fatalf("mail under the limit after a refused one: got %d %q", code, msg)
	}
	if n := l.count(t, `SELECT count(*) FROM tickets`); n != 1 {
		t.Errorf("%d tickets, want 1 (the small mail only)", n)
	}
}

func TestSMTPDuplicateMessageIDGivesOneTicket(t *testing.T) {
	db.Reset(t)
	l := startListener(t, db.Pool(t), 0)
	mail := plainMail("Ana <ana@example.org>", "support@example.com", "dup-1@example.org", "Factura", "¿Dónde está mi factura?")
	for i := range 3 {
		c := smtptest.Dial(t, l.addr)
		if code, msg := c.Send("ana@example.org", []string{"support@example.com"}, mail); code != 250 {
			t.Fatalf("delivery %d: got %d %q, want 250", i+1, code, msg)
		}
	}
	// A retransmission with different bytes (another relay's headers) but
	// the same Message-ID is the same mail too.
	c := smtptest.Dial(t, l.addr)
	resent := append([]byte("Received: from relay2.example.net\r\n"), mail...)
	if code, _ := c.Send("ana@example.org", []string{"support@example.com"}, resent); code != 250 {
		t.Fatalf("resent copy refused")
	}
	if n := l.count(t, `SELECT count(*) FROM tickets`); n != 1 {
		t.Errorf("%d tickets, want 1", n)
	}
	if n := l.count(t, `SELECT count(*) FROM outbox`); n != 1 {
		t.Errorf("%d acknowledgements queued, want 1", n)
	}
	if n := l.count(t, `SELECT count(*) FROM inbound WHERE disposition = 'duplicate' AND ticket_id IS NOT NULL`); n != 3 {
		t.Errorf("%d duplicates logged against the ticket, want 3", n)
	}
	// The same Message-ID to another department is that department's mail.
	c = smtptest.Dial(t, l.addr)
	if code, _ := c.Send("ana@example.org", []string{"billing@example.com"}, mail); code != 250 {
		t.Fatalf("copy to billing refused")
	}
	if n := l.count(t, `SELECT count(*) FROM tickets`); n != 2 {
		t.Errorf("%d tickets after the copy to billing, want 2", n)
	}
}

func TestSMTPMailWithoutMessageIDIsDedupedByContent(t *testing.T) {
	db.Reset(t)
	l := startListener(t, db.Pool(t), 0)
	mail := plainMail("ana@example.org", "support@example.com", "", "Sin ID", "mismo contenido")
	other := plainMail("ana@example.org", "support@example.com", "", "Sin ID", "otro contenido")
	c := smtptest.Dial(t, l.addr)
	for _, m := range [][]byte{mail, mail, other} {
		if code, msg := c.Send("ana@example.org", []string{"support@example.com"}, m); code != 250 {
			t.Fatalf("got %d %q", code, msg)
		}
	}
	if n := l.count(t, `SELECT count(*) FROM tickets`); n != 2 {
		t.Errorf("%d tickets, want 2 (one per distinct mail, none dropped)", n)
	}
}

func TestSMTPOneMailToTwoDepartments(t *testing.T) {
	db.Reset(t)
	l := startListener(t, db.Pool(t), 0)
	c := smtptest.Dial(t, l.addr)
	mail := plainMail("ana@example.org", "support@example.com, billing@example.com", "two-1@example.org", "Both", "x")
	if code, _ := c.Send("ana@example.org", []string{"support@example.com", "billing@example.com", "SUPPORT@example.com"}, mail); code != 250 {
		t.Fatal("refused")
	}
	if n := l.count(t, `SELECT count(DISTINCT department_id) FROM tickets`); n != 2 {
		t.Errorf("tickets in %d departments, want 2", n)
	}
	if n := l.count(t, `SELECT count(*) FROM tickets`); n != 2 {
		t.Errorf("%d tickets, want 2", n)
	}
}

func TestSMTPAutomaticSendersAreNotAcknowledged(t *testing.T) {
	db.Reset(t)
	l := startListener(t, db.Pool(t), 0)
	for i, tc := range []struct {
		envFrom string
		headers string
	}{
		{"bot@example.org", "Auto-Submitted: auto-replied\n"},
		{"bot@example.org", "Auto-Submitted: Auto-Generated; owner=x\n"},
		{"list@example.org", "Precedence: bulk\n"},
		{"list@example.org", "List-Id: <news.example.org>\n"},
		{"", ""}, // null return path: a bounce
		{"MAILER-DAEMON@example.org", ""},
		{"noreply@example.com", ""}, // our own sending address
	} {
		t.Run(fmt.Sprintf("%d %s", i, strings.TrimSpace(tc.headers+tc.envFrom)), func(t *testing.T) {
			c := smtptest.Dial(t, l.addr)
			from := tc.envFrom
			if from == "" {
				from = "someone@example.org"
			}
			msg := smtptest.CRLF(fmt.Sprintf("From: %s\nTo: support@example.com\nSubject: auto %d\nMessage-ID: <auto-%d@example.org>\n%s\nbody\n", from, i, i, tc.headers))
			if code, text := c.Send(tc.envFrom, []string{"support@example.com"}, msg); code != 250 {
				t.Fatalf("got %d %q, want 250: automatic mail is kept", code, text)
			}
			id := fmt.Sprintf("auto-%d@example.org", i)
			if n := l.count(t, `SELECT count(*) FROM inbound WHERE message_id = $1 AND ticket_id IS NOT NULL`, id); n != 1 {
				t.Fatalf("mail not recorded with a ticket")
			}
			if n := l.count(t, `SELECT count(*) FROM outbox o JOIN inbound i ON i.ticket_id = o.ticket_id WHERE i.message_id = $1`, id); n != 0 {
				t.Errorf("an acknowledgement was queued for an automatic sender")
			}
			if n := l.count(t, `SELECT count(*) FROM ticket_history h JOIN inbound i ON i.ticket_id = h.ticket_id
				WHERE i.message_id = $1 AND h.action = 'acknowledgement_suppressed' AND h.new_value <> ''`, id); n != 1 {
				t.Errorf("the suppressed acknowledgement is not in the ticket's history with its reason")
			}
		})
	}
	// A person's mail is acknowledged.
	c := smtptest.Dial(t, l.addr)
	c.Send("ana@example.org", []string{"support@example.com"}, plainMail("ana@example.org", "support@example.com", "person-1@example.org", "hola", "x"))
	if n := l.count(t, `SELECT count(*) FROM outbox`); n != 1 {
		t.Errorf("%d acknowledgements, want 1 (the person's)", n)
	}
}

func TestSMTPCharsetsAndFilenamesComeOutRight(t *testing.T) {
	db.Reset(t)
	l := startListener(t, db.Pool(t), 0)
	raw := smtptest.CRLF("From: =?ISO-8859-1?Q?Jos=E9_Mu=F1oz?= <jose@example.org>\n" +
		"To: support@example.com\n" +
		"Subject: =?ISO-8859-1?Q?Facturaci=F3n_de_septiembre?=\n" +
		"Message-ID: <latin1-1@example.org>\n" +
		"MIME-Version: 1.0\n" +
		"Content-Type: multipart/mixed; boundary=\"b1\"\n\n" +
		"--b1\n" +
		"Content-Type: text/plain; charset=iso-8859-1\n" +
		"Content-Transfer-Encoding: quoted-printable\n\n" +
		"No encuentro la factura del a=F1o pasado. =BFPueden ayudarme?\n" +
		"--b1\n" +
		"Content-Type: application/pdf\n" +
		"Content-Disposition: attachment;\n filename*=iso-8859-1''factura%20a%F1o%202025.pdf\n" +
		"Content-Transfer-Encoding: base64\n\n" +
		"JVBERi0xLjQKJcOkw7zDtsOfCg==\n" +
		"--b1--\n")
	c := smtptest.Dial(t, l.addr)
	if code, msg := c.Send("jose@example.org", []string{"support@example.com"}, raw); code != 250 {
		t.Fatalf("got %d %q", code, msg)
	}
	var ticketID int64
	var subject, name string
	err := l.pool.QueryRow(context.Background(), `SELECT id, subject, customer_name FROM tickets`).Scan(&ticketID, &subject, &name)
	if err != nil {
		t.Fatal(err)
	}
	if subject != "Facturación de septiembre" || name != "José Muñoz" {
		t.Errorf("subject %q, name %q; want Facturación de septiembre, José Muñoz", subject, name)
	}
	msgs, err := l.store.Thread(context.Background(), ticketID, false)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("thread: %v, %d messages", err, len(msgs))
	}
	if want := "No encuentro la factura del año pasado. ¿Pueden ayudarme?"; !strings.Contains(msgs[0].Text, want) {
		t.Errorf("text %q, want it to contain %q", msgs[0].Text, want)
	}
	if len(msgs[0].Attachments) != 1 || msgs[0].Attachments[0].Filename != "factura año 2025.pdf" {
		t.Fatalf("attachments %+v, want one named %q", msgs[0].Attachments, "factura año 2025.pdf")
	}
	var b strings.Builder
	if err := l.store.WriteBlob(context.Background(), msgs[0].Attachments[0].SHA256, &b); err != nil {
		t.Fatal(err)
	}
	if b.String() != "%PDF-1.4\n%äüöß\n" {
		t.Errorf("attachment bytes %q", b.String())
	}
}

// A mail past the size that is committed with others is committed on its
// own, whole.
func TestSMTPLargeMail(t *testing.T) {
	db.Reset(t)
	l := startListener(t, db.Pool(t), 0)
	payload := make([]byte, 400<<10)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	var b64 strings.Builder
	enc := base64.StdEncoding.EncodeToString(payload)
	for len(enc) > 76 {
		b64.WriteString(enc[:76] + "\n")
		enc = enc[76:]
	}
	b64.WriteString(enc + "\n")
	raw := smtptest.CRLF("From: ana@example.org\nTo: support@example.com\nSubject: grande\nMessage-ID: <big-1@example.org>\n" +
		"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nadjunto\n" +
		"--b\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\nContent-Disposition: attachment; filename=datos.bin\n\n" +
		b64.String() + "--b--\n")
	c := smtptest.Dial(t, l.addr)
	if code, msg := c.Send("ana@example.org", []string{"support@example.com"}, raw); code != 250 {
		t.Fatalf("got %d %q", code, msg)
	}
	var ticketID int64
	if err := l.pool.QueryRow(context.Background(), `SELECT id FROM tickets`).Scan(&ticketID); err != nil {
		t.Fatal(err)
	}
	msgs, err := l.store.Thread(context.Background(), ticketID, false)
	if err != nil || len(msgs) != 1 || len(msgs[0].Attachments) != 1 {
		t.Fatalf("thread: %v %+v", err, msgs)
	}
	var got bytes.Buffer
	if err := l.store.WriteBlob(context.Background(), msgs[0].Attachments[0].SHA256, &got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), payload) {
		t.Errorf("attachment: %d bytes back, differing from the %d sent", got.Len(), len(payload))
	}
}

// TestSMTPDatabaseDownGives451ThenOneTicket stops PostgreSQL under the
// listener: the sender is told to retry, and the retry, once the database
// is back, makes exactly one ticket.
func TestSMTPDatabaseDownGives451ThenOneTicket(t *testing.T) {
	if testing.Short() {
		t.Skip("starts its own PostgreSQL")
	}
	ctx := context.Background()
	own, err := testdb.Open(ctx, testdb.Options{Own: true})
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	l := startListener(t, own.Pool(t), 0)
	c := smtptest.Dial(t, l.addr)
	if code, _ := c.Send("ana@example.org", []string{"support@example.com"}, plainMail("ana@example.org", "support@example.com", "before@example.org", "antes", "x")); code != 250 {
		t.Fatal("first mail refused")
	}

	if err := own.Cluster.Stop(ctx, true); err != nil {
		t.Fatal(err)
	}
	mail := plainMail("ana@example.org", "support@example.com", "during@example.org", "durante", "¿me reciben?")
	code, msg := c.Send("ana@example.org", []string{"support@example.com"}, mail)
	if code != 451 || !strings.Contains(msg, "4.3.0") {
		t.Fatalf("with the database down: got %d %q, want 451 4.3.0", code, msg)
	}
	// A listener that has not yet learned the departments cannot tell a
	// department's address from a stranger's: it asks to retry, it does
	// not refuse.
	cold := NewSMTPServer(SMTPOptions{Receiver: NewReceiver(ReceiverOptions{Store: l.store, TempDir: t.TempDir()})})
	coldLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go cold.Serve(coldLn) //nolint:errcheck // ends with Close
	defer cold.Close()
	cc := smtptest.Dial(t, coldLn.Addr().String())
	cc.Cmd("MAIL FROM:<ana@example.org>", 250)
	if code, msg := cc.Reply("RCPT TO:<support@example.com>"); code != 451 {
		t.Errorf("RCPT with a cold cache and the database down: %d %q, want 451", code, msg)
	}

	if err := own.Cluster.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	// The sender retries, as a real MTA would, until it gets an answer.
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, msg = smtptest.Dial(t, l.addr).Send("ana@example.org", []string{"support@example.com"}, mail)
		if code == 250 || time.Now().After(deadline) {
			break
		}
		if code != 451 {
			t.Fatalf("retry: got %d %q, want 250 or 451", code, msg)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code != 250 {
		t.Fatalf("retry after the database came back: got %d %q", code, msg)
	}
	// A second retry (the sender never saw our 250, say) changes nothing.
	smtptest.Dial(t, l.addr).Send("ana@example.org", []string{"support@example.com"}, mail)
	if n := l.count(t, `SELECT count(*) FROM tickets t JOIN messages m ON m.ticket_id = t.id WHERE m.mail_message_id = 'during@example.org'`); n != 1 {
		t.Errorf("%d tickets for the retried mail, want exactly 1", n)
	}
	if n := l.count(t, `SELECT count(*) FROM tickets`); n != 2 {
		t.Errorf("%d tickets in all, want 2", n)
	}
}
