package mailin

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/helpdeskgw/helpdesk/internal/dovecot"
	"github.com/helpdeskgw/helpdesk/tickets"
)

// Integration tests against a real Dovecot (Debian's dovecot-imapd), started
// on loopback with a throwaway configuration.

const dovecotUser, dovecotPassword = "support", "s3cret"

func startDovecot(t *testing.T, opts dovecot.Options) *dovecot.Server {
	t.Helper()
	if testing.Short() {
		t.Skip("starts Dovecot")
	}
	opts.Users = map[string]string{dovecotUser: dovecotPassword}
	srv := dovecot.StartT(t, opts)
	if err := srv.CreateMailbox(context.Background(), dovecotUser, "Processed"); err != nil {
		t.Fatal(err)
	}
	return srv
}

func folderOf(t *testing.T, srv *dovecot.Server, name string) []dovecot.Message {
	t.Helper()
	msgs, err := srv.Messages(context.Background(), dovecotUser, name)
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

func appendMail(t *testing.T, srv *dovecot.Server, raw []byte) {
	t.Helper()
	if _, err := srv.Append(context.Background(), dovecotUser, "INBOX", raw); err != nil {
		t.Fatal(err)
	}
}

func mailboxState(t *testing.T, site *mailboxSite) tickets.Mailbox {
	t.Helper()
	mb, err := site.store.MailboxOf(context.Background(), "soporte")
	if err != nil {
		t.Fatal(err)
	}
	return mb
}

// drained waits until INBOX is empty and Processed holds n mails, all \Seen.
func drained(t *testing.T, srv *dovecot.Server, n int) {
	t.Helper()
	eventually(t, "mail processed and moved", func() (bool, string) {
		inbox, done := folderOf(t, srv, "INBOX"), folderOf(t, srv, "Processed")
		return len(inbox) == 0 && len(done) == n, fmt.Sprintf("%d in INBOX, %d in Processed", len(inbox), len(done))
	})
	for _, m := range folderOf(t, srv, "Processed") {
		if !m.Has(`\Seen`) {
			t.Fatalf("moved mail %s not flagged \\Seen: %v", m.MessageID, m.Flags)
		}
	}
}

func TestDovecotMailWhileIdlingBecomesATicketAndIsMoved(t *testing.T) {
	srv := startDovecot(t, dovecot.Options{})
	site := newMailboxSite(t, srv.Addr(), "Processed", dovecotPassword)
	site.run(t, "one")
	eventually(t, "idling", func() (bool, string) {
		mb := mailboxState(t, site)
		return mb.State == tickets.MailboxIdling, string(mb.State)
	})
	appendMail(t, srv, numbered(1))
	drained(t, srv, 1)
	if n := site.count(t, `SELECT count(*) FROM tickets t JOIN outbox o ON o.ticket_id = t.id WHERE t.customer_email = 'customer1@example.org'`); n != 1 {
		t.Errorf("%d acknowledged tickets for the mail, want 1", n)
	}
	// The progress is recorded once the mail is moved.
	eventually(t, "progress recorded", func() (bool, string) {
		mb := mailboxState(t, site)
		return mb.Ingested == 1 && mb.UIDValidity != 0 && mb.LastUID != 0, fmt.Sprintf("%+v", mb)
	})
}

func TestDovecotBacklogIsDrainedExactlyOnce(t *testing.T) {
	srv := startDovecot(t, dovecot.Options{})
	const n = 500
	raws := make([][]byte, n)
	for i := range raws {
		raws[i] = numbered(i)
	}
	if err := srv.Seed(dovecotUser, "INBOX", raws); err != nil {
		t.Fatal(err)
	}
	site := newMailboxSite(t, srv.Addr(), "Processed", dovecotPassword)
	site.run(t, "one")
	drained(t, srv, n)
	if got := site.count(t, `SELECT count(*) FROM tickets`); got != n {
		t.Errorf("%d tickets, want %d", got, n)
	}
	if got := site.count(t, `SELECT count(DISTINCT message_id) FROM inbound WHERE disposition = 'ticket'`); got != n {
		t.Errorf("%d distinct mails made tickets, want %d", got, n)
	}
	if got := site.count(t, `SELECT count(*) FROM inbound WHERE disposition <> 'ticket'`); got != 0 {
		t.Errorf("%d mails logged otherwise than as tickets", got)
	}
}

// Dovecot dies in the middle of a backlog (no goodbye on the connection)
// and comes back: every mail ends up as exactly one ticket, and moved.
func TestDovecotKilledMidFetchLosesAndDuplicatesNothing(t *testing.T) {
	srv := startDovecot(t, dovecot.Options{})
	const n = 400
	raws := make([][]byte, n)
	padding := strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n", 300)
	for i := range raws {
		raws[i] = append(numbered(i), padding...)
	}
	if err := srv.Seed(dovecotUser, "INBOX", raws); err != nil {
		t.Fatal(err)
	}
	site := newMailboxSite(t, srv.Addr(), "Processed", dovecotPassword)
	site.run(t, "one")
	eventually(t, "fetch under way", func() (bool, string) {
		got := site.count(t, `SELECT count(*) FROM tickets`)
		return got > 0, fmt.Sprintf("%d tickets", got)
	})
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	if got := site.count(t, `SELECT count(*) FROM tickets`); got >= n {
		t.Fatalf("the backlog was done before the server was killed (%d tickets); the test proves nothing", got)
	}
	eventually(t, "the poller notices", func() (bool, string) {
		mb := mailboxState(t, site)
		return mb.State == tickets.MailboxError, string(mb.State)
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	// A MOVE cut by the kill can leave a mail both copied to Processed and
	// still in INBOX (maildir has no atomic move); it is taken again as a
	// duplicate and moved again, so Processed may hold it twice. What
	// counts: INBOX drained and every mail there once at least.
	eventually(t, "mail processed and moved", func() (bool, string) {
		inbox, done := folderOf(t, srv, "INBOX"), folderOf(t, srv, "Processed")
		ids := map[string]bool{}
		for _, m := range done {
			ids[m.MessageID] = true
		}
		return len(inbox) == 0 && len(ids) == n, fmt.Sprintf("%d in INBOX, %d distinct in Processed", len(inbox), len(ids))
	})
	if got := site.count(t, `SELECT count(*) FROM tickets`); got != n {
		t.Errorf("%d tickets, want %d", got, n)
	}
	if got := site.count(t, `SELECT count(*) FROM outbox`); got != n {
		t.Errorf("%d acknowledgements queued, want %d", got, n)
	}
}

func TestDovecotTwoPollersNeverBothIngest(t *testing.T) {
	srv := startDovecot(t, dovecot.Options{})
	site := newMailboxSite(t, srv.Addr(), "Processed", dovecotPassword)
	first, _ := site.run(t, "first")
	second, _ := site.run(t, "second")
	for i := range 30 {
		appendMail(t, srv, numbered(i))
	}
	drained(t, srv, 30)
	a, b := first.Stats(site.mb.ID), second.Stats(site.mb.ID)
	// The counts follow the moves and the recorded progress.
	eventually(t, "all mail counted", func() (bool, string) {
		n := a.Ingested.Load() + b.Ingested.Load()
		return n == 30, fmt.Sprintf("%d counted", n)
	})
	if a.Ingested.Load()+b.Ingested.Load() != 30 || (a.Sessions.Load() > 0 && b.Sessions.Load() > 0) {
		t.Errorf("first: %d sessions, %d mails; second: %d sessions, %d mails; want one of them to do it all",
			a.Sessions.Load(), a.Ingested.Load(), b.Sessions.Load(), b.Ingested.Load())
	}
	if got := site.count(t, `SELECT count(*) FROM inbound`); got != 30 {
		t.Errorf("%d inbound rows for 30 mails", got)
	}
}

func TestDovecotWrongPasswordGivesAClearState(t *testing.T) {
	srv := startDovecot(t, dovecot.Options{})
	site := newMailboxSite(t, srv.Addr(), "Processed", "not-the-password")
	site.run(t, "one")
	eventually(t, "error state", func() (bool, string) {
		mb := mailboxState(t, site)
		return mb.State == tickets.MailboxError && strings.Contains(mb.LastError, "login as support refused") &&
			strings.Contains(mb.LastError, "AUTHENTICATIONFAILED"), fmt.Sprintf("%s %q", mb.State, mb.LastError)
	})
}

// A server that announces neither IDLE nor MOVE is polled on the mailbox's
// interval, and processed mail is copied and expunged.
func TestDovecotWithoutIdleIsPolled(t *testing.T) {
	srv := startDovecot(t, dovecot.Options{Capabilities: "IMAP4rev1 LITERAL+ UIDPLUS"})
	site := newMailboxSite(t, srv.Addr(), "Processed", dovecotPassword)
	appendMail(t, srv, numbered(1))
	site.run(t, "one")
	drained(t, srv, 1)
	eventually(t, "polling", func() (bool, string) {
		mb := mailboxState(t, site)
		return mb.State == tickets.MailboxPolling, string(mb.State)
	})
	appendMail(t, srv, numbered(2))
	drained(t, srv, 2) // the next poll, within the 5 s interval
	if got := site.count(t, `SELECT count(*) FROM tickets`); got != 2 {
		t.Errorf("%d tickets, want 2", got)
	}
}

func TestDovecotTLS(t *testing.T) {
	srv := startDovecot(t, dovecot.Options{TLS: true})
	env := func(string) (string, bool) { return dovecotPassword, true }
	mb := tickets.Mailbox{URL: "imaps://support@" + srv.TLSAddr() + "/INBOX", PasswordRef: "env:PW"}
	_, err := CheckMailbox(context.Background(), mb, env, nil)
	if err == nil || !strings.Contains(err.Error(), "TLS with") || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusted certificate: %v, want a TLS error about the certificate", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	r, err := CheckMailbox(context.Background(), mb, env, &tls.Config{RootCAs: roots})
	if err != nil {
		t.Fatalf("trusted certificate: %v", err)
	}
	if !r.IDLE || r.Address.Security != ImplicitTLS {
		t.Errorf("report %+v", r)
	}
}

// Dovecot restarted while the poller idles: the poller reconnects and mail
// appended afterwards is taken.
func TestDovecotRestartedUnderIdle(t *testing.T) {
	srv := startDovecot(t, dovecot.Options{})
	site := newMailboxSite(t, srv.Addr(), "Processed", dovecotPassword)
	site.run(t, "one")
	idling := func() (bool, string) {
		mb := mailboxState(t, site)
		return mb.State == tickets.MailboxIdling, string(mb.State)
	}
	eventually(t, "idling", idling)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	appendMail(t, srv, numbered(1))
	drained(t, srv, 1)
	eventually(t, "idling again", idling)
	if got := site.count(t, `SELECT count(*) FROM tickets`); got != 1 {
		t.Errorf("%d tickets, want 1", got)
	}
}
