package mailin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/helpdeskgw/helpdesk/internal/smtptest"
	"github.com/helpdeskgw/helpdesk/tickets"
)

// memIMAP is go-imap's in-memory server on a loopback port.
type memIMAP struct {
	addr string
	user *imapmemserver.User
}

func startMemIMAP(t *testing.T, caps ...imap.Cap) *memIMAP {
	t.Helper()
	mem := imapmemserver.New()
	user := imapmemserver.NewUser("support", "s3cret")
	for _, name := range []string{"INBOX", "Processed"} {
		if err := user.Create(name, nil); err != nil {
			t.Fatal(err)
		}
	}
	mem.AddUser(user)
	set := imap.CapSet{imap.CapIMAP4rev1: {}}
	for _, c := range caps {
		set[c] = struct{}{}
	}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps:         set,
		InsecureAuth: true,
		Logger:       discardLogger{},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	t.Cleanup(func() { srv.Close() })
	return &memIMAP{addr: ln.Addr().String(), user: user}
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}

func (m *memIMAP) append(t *testing.T, folder string, raw []byte) {
	t.Helper()
	if _, err := m.user.Append(folder, literal(raw), &imap.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
}

type literalReader struct {
	*bytes.Reader
}

func (l literalReader) Size() int64 { return int64(l.Len()) }

func literal(b []byte) imap.LiteralReader { return literalReader{bytes.NewReader(b)} }

// folder lists a folder's mail as the server has it.
func (m *memIMAP) folder(t *testing.T, name string) []*imapclient.FetchMessageBuffer {
	t.Helper()
	c, err := imapclient.DialInsecure(m.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("support", "s3cret").Wait(); err != nil {
		t.Fatal(err)
	}
	sel, err := c.Select(name, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages == 0 {
		return nil
	}
	msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

// mailboxSite is a store with one department whose mailbox is on srv.
type mailboxSite struct {
	store *tickets.Store
	mb    tickets.Mailbox
	rcv   *Receiver
	// tokens, for an OAuth2 mailbox.
	tokens TokenSource
}

func newMailboxSite(t *testing.T, addr, moveTo, password string) *mailboxSite {
	t.Helper()
	db.Reset(t)
	ctx := context.Background()
	store := tickets.New(tickets.Options{Pool: db.Pool(t)})
	if _, err := store.AddDepartment(ctx, tickets.Department{Slug: "soporte", Name: "Soporte", Address: "support@example.com"}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TEST_IMAP_PASSWORD", password)
	mb, err := store.AddMailbox(ctx, tickets.Mailbox{Department: tickets.Department{Slug: "soporte"},
		URL: "imap://support@" + addr + "/INBOX", PasswordRef: "env:TEST_IMAP_PASSWORD", MoveTo: moveTo,
		PollInterval: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return &mailboxSite{store: store, mb: mb,
		rcv: NewReceiver(ReceiverOptions{Store: store, TempDir: t.TempDir()})}
}

// run starts pollers for the site until the test ends; stop stops them.
func (s *mailboxSite) run(t *testing.T, holder string) (p *Pollers, stop func()) {
	t.Helper()
	p = NewPollers(PollerOptions{Store: s.store, Receiver: s.rcv, Holder: holder, Refresh: 100 * time.Millisecond,
		Batch: 7, MaxBackoff: 200 * time.Millisecond, Tokens: s.tokens})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return p, stop
}

func (s *mailboxSite) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.Pool(t).QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// eventually waits up to 20 s for cond, failing with what it last said.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %s", what, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func numbered(i int) []byte {
	return plainMail(fmt.Sprintf("customer%d@example.org", i), "support@example.com", fmt.Sprintf("m%d@example.org", i),
		fmt.Sprintf("Question %d", i), "Hello")
}

func hasFlag(m *imapclient.FetchMessageBuffer, f imap.Flag) bool {
	for _, g := range m.Flags {
		if g == f {
			return true
		}
	}
	return false
}

func TestPollerIdlesIngestsAndMoves(t *testing.T) {
	srv := startMemIMAP(t, imap.CapIdle, imap.CapMove, imap.CapUIDPlus)
	site := newMailboxSite(t, srv.addr, "Processed", "s3cret")
	srv.append(t, "INBOX", numbered(1))
	p, _ := site.run(t, "one")
	eventually(t, "backlog mail becomes a ticket", func() (bool, string) {
		n := site.count(t, `SELECT count(*) FROM tickets`)
		return n == 1, fmt.Sprintf("%d tickets", n)
	})
	eventually(t, "poller idles", func() (bool, string) {
		mb, err := site.store.MailboxOf(context.Background(), "soporte")
		return err == nil && mb.State == tickets.MailboxIdling, fmt.Sprintf("%s %v", mb.State, err)
	})
	// New mail while idling arrives through the server's notification.
	srv.append(t, "INBOX", numbered(2))
	srv.append(t, "INBOX", numbered(3))
	eventually(t, "mail appended while idling becomes tickets", func() (bool, string) {
		n := site.count(t, `SELECT count(*) FROM tickets`)
		return n == 3, fmt.Sprintf("%d tickets", n)
	})
	eventually(t, "processed mail moved", func() (bool, string) {
		inbox, done := srv.folder(t, "INBOX"), srv.folder(t, "Processed")
		return len(inbox) == 0 && len(done) == 3, fmt.Sprintf("%d in INBOX, %d in Processed", len(inbox), len(done))
	})
	for _, m := range srv.folder(t, "Processed") {
		if !hasFlag(m, imap.FlagSeen) {
			t.Errorf("moved mail %d not flagged \\Seen: %v", m.UID, m.Flags)
		}
	}
	if n := site.count(t, `SELECT count(*) FROM inbound WHERE source = 'imap' AND source_ref LIKE 'mailbox %' AND disposition = 'ticket'`); n != 3 {
		t.Errorf("%d inbound rows from IMAP, want 3", n)
	}
	if n := site.count(t, `SELECT count(*) FROM outbox WHERE kind = 'ack'`); n != 3 {
		t.Errorf("%d acknowledgements queued, want 3", n)
	}
	eventually(t, "progress recorded", func() (bool, string) {
		mb, _ := site.store.MailboxOf(context.Background(), "soporte")
		return mb.Ingested == 3 && mb.LastUID == 3 && !mb.LastSuccessAt.IsZero(), fmt.Sprintf("%+v", mb)
	})
	eventually(t, "poller counts the mail", func() (bool, string) {
		got := p.Stats(site.mb.ID).Ingested.Load()
		return got == 3, fmt.Sprintf("%d counted", got)
	})
}

func TestPollerWithoutMoveCopiesAndExpunges(t *testing.T) {
	// No MOVE and no UIDPLUS: COPY, \Deleted and EXPUNGE. (This server
	// always offers IDLE; polling is tested against Dovecot.)
	srv := startMemIMAP(t)
	site := newMailboxSite(t, srv.addr, "Processed", "s3cret")
	for i := range 20 {
		srv.append(t, "INBOX", numbered(i))
	}
	site.run(t, "one")
	eventually(t, "backlog drained", func() (bool, string) {
		inbox, done := srv.folder(t, "INBOX"), srv.folder(t, "Processed")
		return len(inbox) == 0 && len(done) == 20, fmt.Sprintf("%d in INBOX, %d in Processed", len(inbox), len(done))
	})
	if n := site.count(t, `SELECT count(*) FROM tickets`); n != 20 {
		t.Errorf("%d tickets, want 20", n)
	}
	for _, m := range srv.folder(t, "Processed") {
		if !hasFlag(m, imap.FlagSeen) || hasFlag(m, imap.FlagDeleted) {
			t.Errorf("moved mail %d has flags %v, want \\Seen and not \\Deleted", m.UID, m.Flags)
		}
	}
}

func TestPollerKeepsMailInPlaceWhenNoFolderIsSet(t *testing.T) {
	srv := startMemIMAP(t, imap.CapIdle)
	site := newMailboxSite(t, srv.addr, "", "s3cret")
	srv.append(t, "INBOX", numbered(1))
	site.run(t, "one")
	eventually(t, "mail flagged in place", func() (bool, string) {
		inbox := srv.folder(t, "INBOX")
		return len(inbox) == 1 && hasFlag(inbox[0], imap.FlagSeen), fmt.Sprintf("%d in INBOX", len(inbox))
	})
	if n := site.count(t, `SELECT count(*) FROM tickets`); n != 1 {
		t.Errorf("%d tickets, want 1", n)
	}
}

// A crash after the commit and before the flag leaves the mail unflagged
// and the progress behind: the mail is fetched again and logged as a
// duplicate, never made a second ticket.
func TestPollerRecognizesMailCommittedBeforeACrash(t *testing.T) {
	srv := startMemIMAP(t, imap.CapIdle, imap.CapMove)
	site := newMailboxSite(t, srv.addr, "Processed", "s3cret")
	raw := numbered(1)
	srv.append(t, "INBOX", raw)
	srv.append(t, "INBOX", numbered(2))
	env := Envelope{Source: "imap", SourceRef: "before the crash", To: []string{"support@example.com"},
		Departments: []tickets.Department{site.mb.Department}}
	if _, err := site.rcv.Deliver(context.Background(), env, tickets.BytesContent(raw)); err != nil {
		t.Fatal(err)
	}
	site.run(t, "one")
	eventually(t, "both mails processed", func() (bool, string) {
		done := srv.folder(t, "Processed")
		return len(done) == 2, fmt.Sprintf("%d in Processed", len(done))
	})
	if n := site.count(t, `SELECT count(*) FROM tickets`); n != 2 {
		t.Errorf("%d tickets, want 2", n)
	}
	if n := site.count(t, `SELECT count(*) FROM inbound WHERE disposition = 'duplicate'`); n != 1 {
		t.Errorf("%d duplicates logged, want 1", n)
	}
}

// A poller stopped while it stores a batch finishes the batch: its mail is
// moved and its progress recorded, not left for the next holder to fetch
// again.
func TestStoppedPollerFinishesTheBatchAtHand(t *testing.T) {
	srv := startMemIMAP(t, imap.CapIdle, imap.CapMove)
	site := newMailboxSite(t, srv.addr, "Processed", "s3cret")
	ctx := context.Background()
	// Mail is stored while this transaction holds the inbound log: the
	// poller waits on it with the mail fetched.
	tx, err := db.Pool(t).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // committed below
	if _, err := tx.Exec(ctx, `LOCK TABLE inbound IN EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	srv.append(t, "INBOX", numbered(1))
	_, stop := site.run(t, "one")
	eventually(t, "the mail waiting to be stored", func() (bool, string) {
		n := site.count(t, `SELECT count(*) FROM pg_locks WHERE relation = 'inbound'::regclass AND NOT granted`)
		return n > 0, fmt.Sprintf("%d waiting", n)
	})
	stopped := make(chan struct{})
	go func() { defer close(stopped); stop() }()
	time.Sleep(200 * time.Millisecond)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	<-stopped
	if done := srv.folder(t, "Processed"); len(done) != 1 {
		t.Errorf("%d mails moved, want the one stored", len(done))
	}
	if n := site.count(t, `SELECT count(*) FROM mailboxes WHERE last_uid > 0`); n != 1 {
		t.Error("the progress was not recorded")
	}
	if n := site.count(t, `SELECT count(*) FROM tickets`); n != 1 {
		t.Errorf("%d tickets, want 1", n)
	}
}

func TestPollerRescansWhenUIDValidityChanges(t *testing.T) {
	srv := startMemIMAP(t, imap.CapIdle)
	site := newMailboxSite(t, srv.addr, "", "s3cret")
	for i := range 3 {
		srv.append(t, "INBOX", numbered(i))
	}
	_, stop := site.run(t, "one")
	eventually(t, "mail ingested", func() (bool, string) {
		mb, _ := site.store.MailboxOf(context.Background(), "soporte")
		return mb.LastUID == 3, fmt.Sprint(mb.LastUID)
	})
	stop()
	// As if the server had renumbered the folder: the stored progress is
	// of another generation, and its last UID beyond every mail there.
	if _, err := db.Pool(t).Exec(context.Background(),
		`UPDATE mailboxes SET uid_validity = uid_validity + 1, last_uid = 1000`); err != nil {
		t.Fatal(err)
	}
	srv.append(t, "INBOX", numbered(3))
	site.run(t, "two")
	eventually(t, "new mail found after the rescan", func() (bool, string) {
		n := site.count(t, `SELECT count(*) FROM tickets`)
		return n == 4, fmt.Sprintf("%d tickets", n)
	})
	eventually(t, "old mail recognized", func() (bool, string) {
		n := site.count(t, `SELECT count(*) FROM inbound WHERE disposition = 'duplicate'`)
		return n == 3, fmt.Sprintf("%d duplicates", n)
	})
	eventually(t, "progress of the new generation recorded", func() (bool, string) {
		mb, _ := site.store.MailboxOf(context.Background(), "soporte")
		return mb.LastUID == 4, fmt.Sprintf("last UID %d", mb.LastUID)
	})
}

func TestPollerReportsARefusedLogin(t *testing.T) {
	srv := startMemIMAP(t, imap.CapIdle)
	site := newMailboxSite(t, srv.addr, "", "wrong")
	srv.append(t, "INBOX", numbered(1))
	site.run(t, "one")
	eventually(t, "error state", func() (bool, string) {
		mb, _ := site.store.MailboxOf(context.Background(), "soporte")
		return mb.State == tickets.MailboxError && strings.Contains(mb.LastError, "login as support refused"),
			fmt.Sprintf("%s %q", mb.State, mb.LastError)
	})
	if n := site.count(t, `SELECT count(*) FROM tickets`); n != 0 {
		t.Errorf("%d tickets with a refused login", n)
	}
	mb, _ := site.store.MailboxOf(context.Background(), "soporte")
	if strings.Contains(mb.LastError, "wrong") {
		t.Errorf("the password shows in the error: %q", mb.LastError)
	}
}

func TestOnePollerPerMailboxAndTakeover(t *testing.T) {
	srv := startMemIMAP(t, imap.CapIdle, imap.CapMove)
	site := newMailboxSite(t, srv.addr, "Processed", "s3cret")
	first, stopFirst := site.run(t, "first")
	eventually(t, "first instance idles", func() (bool, string) {
		mb, _ := site.store.MailboxOf(context.Background(), "soporte")
		return mb.State == tickets.MailboxIdling && mb.Holder == "first", fmt.Sprintf("%s by %q", mb.State, mb.Holder)
	})
	second, _ := site.run(t, "second")
	for i := range 10 {
		srv.append(t, "INBOX", numbered(i))
	}
	eventually(t, "mail ingested", func() (bool, string) {
		n := site.count(t, `SELECT count(*) FROM tickets`)
		return n == 10, fmt.Sprintf("%d tickets", n)
	})
	if got := second.Stats(site.mb.ID).Sessions.Load(); got != 0 {
		t.Errorf("the second instance connected %d times while the first held the mailbox", got)
	}
	// The count follows the flags and the recorded progress.
	eventually(t, "first instance counts the mail", func() (bool, string) {
		got := first.Stats(site.mb.ID).Ingested.Load()
		return got == 10, fmt.Sprintf("%d ingested", got)
	})
	stopFirst()
	eventually(t, "second instance takes over", func() (bool, string) {
		mb, _ := site.store.MailboxOf(context.Background(), "soporte")
		return mb.State == tickets.MailboxIdling && mb.Holder == "second", fmt.Sprintf("%s by %q", mb.State, mb.Holder)
	})
	srv.append(t, "INBOX", numbered(10))
	eventually(t, "mail after the takeover ingested", func() (bool, string) {
		n := site.count(t, `SELECT count(*) FROM tickets`)
		return n == 11, fmt.Sprintf("%d tickets", n)
	})
	if n := site.count(t, `SELECT count(*) FROM inbound WHERE disposition = 'duplicate'`); n != 0 {
		t.Errorf("%d duplicates: both instances fetched", n)
	}
}

func TestDisablingStopsThePoller(t *testing.T) {
	srv := startMemIMAP(t, imap.CapIdle)
	site := newMailboxSite(t, srv.addr, "", "s3cret")
	site.run(t, "one")
	eventually(t, "idling", func() (bool, string) {
		mb, _ := site.store.MailboxOf(context.Background(), "soporte")
		return mb.State == tickets.MailboxIdling, string(mb.State)
	})
	ctx := context.Background()
	if err := site.store.SetMailboxEnabled(ctx, "soporte", false); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // several refreshes
	srv.append(t, "INBOX", numbered(1))
	time.Sleep(300 * time.Millisecond)
	if n := site.count(t, `SELECT count(*) FROM tickets`); n != 0 {
		t.Fatalf("a disabled mailbox was polled: %d tickets", n)
	}
	mb, _ := site.store.MailboxOf(ctx, "soporte")
	if mb.State != tickets.MailboxDisabled {
		t.Errorf("state %s, want disabled", mb.State)
	}
	if err := site.store.SetMailboxEnabled(ctx, "soporte", true); err != nil {
		t.Fatal(err)
	}
	eventually(t, "mail ingested once enabled again", func() (bool, string) {
		n := site.count(t, `SELECT count(*) FROM tickets`)
		return n == 1, fmt.Sprintf("%d tickets", n)
	})
}

func TestParseMailboxURL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want MailboxAddress
		err  string
	}{
		{in: "imaps://support@mail.example.com/INBOX", want: MailboxAddress{Host: "mail.example.com:993", ServerName: "mail.example.com", User: "support", Folder: "INBOX", Security: ImplicitTLS}},
		{in: "imaps://support@example.com@mail.example.com:1993", want: MailboxAddress{Host: "mail.example.com:1993", ServerName: "mail.example.com", User: "support@example.com", Folder: "INBOX", Security: ImplicitTLS}},
		{in: "imap://support%40example.com@mail.example.com/Soporte/Nuevos", want: MailboxAddress{Host: "mail.example.com:143", ServerName: "mail.example.com", User: "support@example.com", Folder: "Soporte/Nuevos", Security: StartTLS}},
		{in: "imap://u@127.0.0.1:1143/INBOX", want: MailboxAddress{Host: "127.0.0.1:1143", ServerName: "127.0.0.1", User: "u", Folder: "INBOX", Security: Plain}},
		{in: "imap://u@[::1]:1143/INBOX", want: MailboxAddress{Host: "[::1]:1143", ServerName: "::1", User: "u", Folder: "INBOX", Security: Plain}},
		{in: "imaps://u:secret@mail.example.com/INBOX", err: "remove the password"},
		{in: "pop3://u@mail.example.com", err: "scheme"},
		{in: "imaps://mail.example.com/INBOX", err: "no user"},
		{in: "imaps://u@/INBOX", err: "no host"},
		{in: "imaps://u:my secret@mail.example.com/INBOX", err: "not a URL"},
		{in: "pop3://u:secret@mail.example.com", err: "remove the password"},
	} {
		got, err := ParseMailboxURL(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want one saying %q", tc.in, err, tc.err)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("%s: the error shows the password: %v", tc.in, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: got %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestResolvePassword(t *testing.T) {
	env := func(k string) (string, bool) {
		if k == "SET" {
			return "p4ss", true
		}
		return "", false
	}
	dir := t.TempDir()
	file := dir + "/pw"
	if err := writeFile(file, "from-file\n"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ref, want, err string
	}{
		{ref: "env:SET", want: "p4ss"},
		{ref: "env:UNSET", err: "UNSET is not set"},
		{ref: "file:" + file, want: "from-file"},
		{ref: "file:" + dir + "/missing", err: "no such file"},
		{ref: "vault:x", err: "want env:VAR or file:PATH"},
	} {
		got, err := ResolvePassword(tc.ref, env)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.ref, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: got %q, %v; want %q", tc.ref, got, err, tc.want)
		}
	}
}

func TestCheckMailbox(t *testing.T) {
	srv := startMemIMAP(t, imap.CapIdle, imap.CapMove)
	srv.append(t, "INBOX", numbered(1))
	env := func(k string) (string, bool) { return map[string]string{"GOOD": "s3cret", "BAD": "nope"}[k], true }
	mb := tickets.Mailbox{URL: "imap://support@" + srv.addr + "/INBOX", PasswordRef: "env:GOOD", MoveTo: "Processed"}
	r, err := CheckMailbox(context.Background(), mb, env, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Messages != 1 || !r.IDLE || !r.MOVE || !r.MoveToExists || r.UIDValidity == 0 {
		t.Errorf("report %+v", r)
	}
	for _, tc := range []struct {
		mb   tickets.Mailbox
		want string
	}{
		{tickets.Mailbox{URL: mb.URL, PasswordRef: "env:BAD"}, "login as support refused"},
		{tickets.Mailbox{URL: "imap://support@" + srv.addr + "/Nope", PasswordRef: "env:GOOD"}, `cannot open folder "Nope"`},
		{tickets.Mailbox{URL: mb.URL, PasswordRef: "env:GOOD", MoveTo: "Archive"}, `folder "Archive" to move processed mail to does not exist`},
		{tickets.Mailbox{URL: "imap://support@127.0.0.1:1/INBOX", PasswordRef: "env:GOOD"}, "cannot reach 127.0.0.1:1"},
		{tickets.Mailbox{URL: "imaps://support@" + srv.addr + "/INBOX", PasswordRef: "env:GOOD"}, "TLS with"},
	} {
		_, err := CheckMailbox(context.Background(), tc.mb, env, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s (%s): error %v, want one saying %q", tc.mb.URL, tc.mb.PasswordRef, err, tc.want)
		}
		if err != nil && errors.Is(err, errLoginRefused) != strings.Contains(tc.want, "refused") {
			t.Errorf("%s: error %v marked wrongly as a refused login", tc.mb.URL, err)
		}
	}
}

func writeFile(name, content string) error { return os.WriteFile(name, []byte(content), 0o600) }

// A large mail goes through the spool file, not memory, and arrives whole.
func TestPollerTakesALargeMail(t *testing.T) {
	srv := startMemIMAP(t, imap.CapIdle, imap.CapMove)
	site := newMailboxSite(t, srv.addr, "Processed", "s3cret")
	attachment := bytes.Repeat([]byte("0123456789abcdef"), 3<<16) // 3 MiB
	raw := smtptest.CRLF("From: ana@example.org\nTo: support@example.com\nSubject: Big\nMessage-ID: <big@example.org>\n" +
		"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nSee attached.\n" +
		"--b\nContent-Type: application/octet-stream\nContent-Disposition: attachment; filename=dump.bin\n" +
		"Content-Transfer-Encoding: base64\n\n" + smtptest.Base64Lines(attachment) + "--b--\n")
	srv.append(t, "INBOX", raw)
	site.run(t, "one")
	eventually(t, "large mail moved", func() (bool, string) {
		done := srv.folder(t, "Processed")
		return len(done) == 1, fmt.Sprintf("%d in Processed", len(done))
	})
	if n := site.count(t, `SELECT count(*) FROM attachments WHERE filename = 'dump.bin' AND size = $1`, len(attachment)); n != 1 {
		t.Errorf("attachment of %d bytes not stored whole", len(attachment))
	}
	if n := site.count(t, `SELECT count(*) FROM inbound WHERE raw_size = $1`, len(raw)); n != 1 {
		t.Errorf("raw mail of %d bytes not kept whole", len(raw))
	}
}
