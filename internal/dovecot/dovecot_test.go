package dovecot

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/helpdeskgw/helpdesk/internal/idp"
	"github.com/helpdeskgw/helpdesk/internal/xoauth2"
)

const (
	alice = "alice@example.org"
	// A colon and a space test the passwd-file encoding.
	alicePass = "s3cr:et pass"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func startAlice(t *testing.T, opts Options) *Server {
	t.Helper()
	opts.Users = map[string]string{alice: alicePass, "bob": "bob-pass"}
	return StartT(t, opts)
}

func rawMail(id string) []byte {
	return []byte("From: Customer <customer@example.com>\r\n" +
		"To: support@example.org\r\n" +
		"Subject: Help with " + id + "\r\n" +
		"Message-ID: <" + id + ">\r\n" +
		"\r\n" +
		"Body of " + id + ".\r\n")
}

func TestLoginAppendAndList(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	s := startAlice(t, Options{})

	c, err := s.Login(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Noop().Wait(); err != nil {
		t.Fatalf("NOOP after login: %v", err)
	}

	bad, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	badClient := imapclient.New(bad, nil)
	defer badClient.Close()
	if err := badClient.Login(alice, "wrong").Wait(); err == nil {
		t.Error("login with a wrong password succeeded")
	}

	if err := s.CreateMailbox(ctx, alice, "Processed"); err != nil {
		t.Fatal(err)
	}
	uid1, err := s.Append(ctx, alice, "INBOX", rawMail("one@example.com"), `\Seen`)
	if err != nil {
		t.Fatal(err)
	}
	uid2, err := s.Append(ctx, alice, "INBOX", rawMail("two@example.com"))
	if err != nil {
		t.Fatal(err)
	}
	noID := []byte("From: a@example.com\r\nSubject: no id\r\n\r\nbody\r\n")
	uid3, err := s.Append(ctx, alice, "Processed", noID, `\Flagged`)
	if err != nil {
		t.Fatal(err)
	}
	if uid1 != 1 || uid2 != 2 || uid3 != 1 {
		t.Errorf("UIDs %d, %d, %d; want 1, 2 in INBOX and 1 in Processed", uid1, uid2, uid3)
	}

	inbox, err := s.Messages(ctx, alice, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if got := summary(inbox); got != "1 one@example.com seen; 2 two@example.com unseen" {
		t.Errorf("INBOX: %s", got)
	}
	processed, err := s.Messages(ctx, alice, "Processed")
	if err != nil {
		t.Fatal(err)
	}
	if len(processed) != 1 || processed[0].MessageID != "" || !processed[0].Has(`\flagged`) {
		t.Errorf("Processed: %+v, want one flagged message without Message-ID", processed)
	}

	// The client logged in first sees what the others appended.
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if n := sel.NumMessages; n != 2 {
		t.Errorf("SELECT INBOX: %d messages, want 2", n)
	}
	boxes, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range boxes {
		names = append(names, b.Mailbox)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"INBOX", "Processed"}) {
		t.Errorf("LIST: %v", names)
	}

	// Users are separate.
	bobs, err := s.Messages(ctx, "bob", "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if len(bobs) != 0 {
		t.Errorf("bob's INBOX has %d messages", len(bobs))
	}
}

func summary(msgs []Message) string {
	var parts []string
	for _, m := range msgs {
		seen := "unseen"
		if m.Has(`\Seen`) {
			seen = "seen"
		}
		parts = append(parts, fmt.Sprintf("%d %s %s", m.UID, m.MessageID, seen))
	}
	return strings.Join(parts, "; ")
}

func TestSeed(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	s := startAlice(t, Options{})

	if _, err := s.Append(ctx, alice, "INBOX", rawMail("appended@example.com")); err != nil {
		t.Fatal(err)
	}
	// Dovecot has indexed INBOX already; seeded mail must follow.
	const n = 300
	var raws [][]byte
	for i := range n {
		raws = append(raws, rawMail(fmt.Sprintf("seed-%d@example.com", i)))
	}
	if err := s.Seed(alice, "INBOX", raws[:n/2]); err != nil {
		t.Fatal(err)
	}
	if err := s.Seed(alice, "INBOX", raws[n/2:]); err != nil {
		t.Fatal(err)
	}
	msgs, err := s.Messages(ctx, alice, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != n+1 {
		t.Fatalf("%d messages, want %d", len(msgs), n+1)
	}
	for i, m := range msgs {
		want := "appended@example.com"
		if i > 0 {
			want = fmt.Sprintf("seed-%d@example.com", i-1)
		}
		if m.UID != uint32(i+1) || m.MessageID != want {
			t.Fatalf("message %d: UID %d %q, want UID %d %q", i, m.UID, m.MessageID, i+1, want)
		}
	}

	// Dovecot can change seeded mail (rename it in the maildir), so it
	// owns the files.
	c, err := s.Login(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	store := c.Store(imap.UIDSetNum(2, 3), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}}, nil)
	if err := store.Close(); err != nil {
		t.Fatalf("flag seeded mail: %v", err)
	}
	msgs, err = s.Messages(ctx, alice, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if !msgs[1].Has(`\Seen`) || !msgs[2].Has(`\Seen`) || msgs[3].Has(`\Seen`) {
		t.Errorf("after flagging UIDs 2 and 3: %s", summary(msgs[:4]))
	}

	// A mailbox that does not exist yet is created.
	if err := s.Seed(alice, "Archive/2026", [][]byte{rawMail("a@example.com"), rawMail("b@example.com")}); err != nil {
		t.Fatal(err)
	}
	fresh, err := s.Login(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	boxes, err := fresh.List("", "Archive/*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(boxes) != 1 || boxes[0].Mailbox != "Archive/2026" {
		t.Errorf("LIST Archive/*: %+v", boxes)
	}
	archived, err := s.Messages(ctx, alice, "Archive/2026")
	if err != nil {
		t.Fatal(err)
	}
	if got := summary(archived); got != "1 a@example.com unseen; 2 b@example.com unseen" {
		t.Errorf("Archive/2026: %s", got)
	}

	if err := s.Seed(alice, "Caf\u00e9", raws[:1]); err == nil {
		t.Error("Seed accepted a mailbox name it cannot map to a directory")
	}
	if err := s.Seed("nobody@example.org", "INBOX", raws[:1]); err == nil {
		t.Error("Seed accepted an unknown user")
	}
}

// TestSeedTenThousand is the size of the IMAP benchmark's mailbox.
func TestSeedTenThousand(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds 10,000 mails")
	}
	t.Parallel()
	ctx := testCtx(t)
	s := startAlice(t, Options{})
	const n = 10_000
	raws := make([][]byte, n)
	for i := range raws {
		raws[i] = rawMail(fmt.Sprintf("bulk-%d@example.com", i))
	}
	if err := s.Seed(alice, "INBOX", raws); err != nil {
		t.Fatal(err)
	}
	msgs, err := s.Messages(ctx, alice, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != n {
		t.Fatalf("%d messages, want %d", len(msgs), n)
	}
	for i, m := range msgs {
		if want := fmt.Sprintf("bulk-%d@example.com", i); m.UID != uint32(i+1) || m.MessageID != want {
			t.Fatalf("message %d: UID %d %q, want UID %d %q", i, m.UID, m.MessageID, i+1, want)
		}
	}
}

func TestRestartKeepsMailAndPort(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	s := startAlice(t, Options{})
	if _, err := s.Append(ctx, alice, "INBOX", rawMail("kept@example.com")); err != nil {
		t.Fatal(err)
	}
	addr := s.Addr()

	c, err := s.Login(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// Shutting down disconnects clients and closes the port.
	if err := c.Noop().Wait(); err == nil {
		t.Error("NOOP succeeded on a stopped server")
	}
	if conn, err := net.Dial("tcp", addr); err == nil {
		conn.Close()
		t.Fatalf("%s still accepts connections after Stop", addr)
	}
	if pids := instanceProcesses(t, s); len(pids) > 0 {
		t.Fatalf("processes left after Stop: %v", pids)
	}

	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Addr() != addr {
		t.Errorf("restarted on %s, was %s", s.Addr(), addr)
	}
	if err := s.Restart(ctx); err != nil { // from running, too
		t.Fatal(err)
	}
	msgs, err := s.Messages(ctx, alice, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if got := summary(msgs); got != "1 kept@example.com unseen" {
		t.Errorf("after restarts: %s", got)
	}
}

func TestKillDropsConnectedClient(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	s := startAlice(t, Options{})
	if _, err := s.Append(ctx, alice, "INBOX", rawMail("before-kill@example.com")); err != nil {
		t.Fatal(err)
	}
	c, err := s.Login(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}

	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := c.Noop().Wait(); err == nil {
		t.Fatal("NOOP succeeded after Kill: the imap process survived")
	}
	<-c.Closed()
	if pids := instanceProcesses(t, s); len(pids) > 0 {
		t.Fatalf("processes left after Kill: %v", pids)
	}

	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	msgs, err := s.Messages(ctx, alice, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if got := summary(msgs); got != "1 before-kill@example.com unseen" {
		t.Errorf("after Kill and Restart: %s", got)
	}
}

func TestHiddenCapabilities(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	s := startAlice(t, Options{Capabilities: "IMAP4rev1 LITERAL+"})

	c, err := s.Login(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	caps := c.Caps()
	if !caps.Has(imap.CapIMAP4rev1) {
		t.Errorf("IMAP4rev1 not announced: %v", caps)
	}
	for _, hidden := range []imap.Cap{imap.CapMove, imap.CapIdle, imap.CapUIDPlus} {
		if caps.Has(hidden) {
			t.Errorf("%s announced despite Capabilities: %v", hidden, caps)
		}
	}
	// Dovecot still reports APPENDUID, so Append works without UIDPLUS.
	if err := s.CreateMailbox(ctx, alice, "Processed"); err != nil {
		t.Fatal(err)
	}
	if uid, err := s.Append(ctx, alice, "INBOX", rawMail("m@example.com")); err != nil || uid != 1 {
		t.Fatalf("Append: UID %d, %v", uid, err)
	}

	// Hiding is all Dovecot does: it still executes MOVE and IDLE for a
	// client that ignores the announcement (Options.Capabilities says so).
	raw := dialRaw(t, s.Addr())
	raw.cmd(t, "a LOGIN "+alice+" \""+alicePass+"\"", "a OK")
	raw.cmd(t, "b SELECT INBOX", "b OK")
	raw.cmd(t, "c UID MOVE 1 Processed", "c OK")
	raw.cmd(t, "d IDLE", "+ ")
	raw.cmd(t, "DONE", "d OK")
	processed, err := s.Messages(ctx, alice, "Processed")
	if err != nil {
		t.Fatal(err)
	}
	if got := summary(processed); got != "1 m@example.com unseen" {
		t.Errorf("Processed after MOVE: %s", got)
	}
}

// rawConn speaks IMAP line by line, for commands imapclient would not send.
type rawConn struct {
	conn net.Conn
	r    *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(time.Minute)) //nolint:errcheck // a test bound
	rc := &rawConn{conn: conn, r: bufio.NewReader(conn)}
	rc.expect(t, "* OK")
	return rc
}

// cmd sends line and reads until a line starting with want, failing on a
// tagged NO or BAD first.
func (rc *rawConn) cmd(t *testing.T, line, want string) {
	t.Helper()
	if _, err := fmt.Fprintf(rc.conn, "%s\r\n", line); err != nil {
		t.Fatalf("send %q: %v", line, err)
	}
	rc.expect(t, want)
}

func (rc *rawConn) expect(t *testing.T, want string) {
	t.Helper()
	for {
		got, err := rc.r.ReadString('\n')
		if err != nil {
			t.Fatalf("waiting for %q: %v", want, err)
		}
		if strings.HasPrefix(got, want) {
			return
		}
		if f := strings.Fields(got); len(f) > 1 && f[0] != "*" && (f[1] == "NO" || f[1] == "BAD") {
			t.Fatalf("waiting for %q: %s", want, strings.TrimSpace(got))
		}
	}
}

func TestTLS(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	s := startAlice(t, Options{TLS: true})
	if s.TLSAddr() == "" || s.Certificate() == nil {
		t.Fatal("no TLS listener")
	}

	_, err := imapclient.DialTLS(s.TLSAddr(), nil)
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("TLS to a self-signed server: %v, want an unknown-authority error", err)
	}

	roots := x509.NewCertPool()
	roots.AddCert(s.Certificate())
	c, err := imapclient.DialTLS(s.TLSAddr(), &imapclient.Options{TLSConfig: &tls.Config{RootCAs: roots}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(alice, alicePass).Wait(); err != nil {
		t.Fatalf("login over TLS: %v", err)
	}
	// The plain listener offers STARTTLS and stays usable without it.
	plain, err := imapclient.DialInsecure(s.Addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if !plain.Caps().Has(imap.CapStartTLS) {
		t.Errorf("plain listener does not offer STARTTLS: %v", plain.Caps())
	}
	if _, err := s.Append(ctx, alice, "INBOX", rawMail("plain@example.com")); err != nil {
		t.Fatal(err)
	}
}

func TestRejectedConfig(t *testing.T) {
	t.Parallel()
	if _, err := findBinary(); err != nil {
		t.Skip(err)
	}
	_, err := Start(testCtx(t), Options{ExtraConfig: "no_such_setting = 1"})
	if err == nil || !strings.Contains(err.Error(), "no_such_setting") {
		t.Errorf("Start with a bad setting: %v, want Dovecot's complaint about it", err)
	}
	_, err = Start(testCtx(t), Options{Users: map[string]string{"a:b": "x"}})
	if err == nil {
		t.Error("Start accepted a user name with a colon")
	}
}

func TestCloseLeavesNothing(t *testing.T) {
	t.Parallel()
	if _, err := findBinary(); err != nil {
		t.Skip(err)
	}
	ctx := testCtx(t)
	s, err := Start(ctx, Options{Users: map[string]string{alice: alicePass}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Login(ctx, alice) // a logged-in imap process must go too
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	defer c.Close()
	if pids := instanceProcesses(t, s); len(pids) < 3 {
		t.Errorf("found %d processes of the running server, want master, services and imap", len(pids))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if pids := instanceProcesses(t, s); len(pids) > 0 {
		t.Errorf("processes left after Close: %v", pids)
	}
	if _, err := os.Stat(s.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("directory %s left after Close: %v", s.dir, err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// instanceProcesses lists the live processes of this server: the master's
// command line names its config, the services' titles its instance name.
func instanceProcesses(t *testing.T, s *Server) []string {
	t.Helper()
	marks := []string{filepath.Join(s.dir, confName), "dovecot-" + filepath.Base(s.dir) + "/"}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(cmdline) == 0 { // zombies have none
			continue
		}
		line := strings.ReplaceAll(string(cmdline), "\x00", " ")
		for _, m := range marks {
			if strings.Contains(line, m) {
				found = append(found, e.Name()+": "+line)
				break
			}
		}
	}
	return found
}

// Dovecot checks access tokens at the test's identity provider: a live
// token logs in with either mechanism, an expired or another user's token
// does not, and passwords still work beside them.
func TestOAuth2(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	provider := idp.Start(idp.Options{ClientID: "helpdesk"})
	t.Cleanup(provider.Close)
	s := startAlice(t, Options{OAuth2: &OAuth2{IntrospectionURL: provider.IntrospectionURL()}})
	access, _ := provider.Issue(alice)

	authenticate := func(mech, user, token string) error {
		t.Helper()
		conn, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		c := imapclient.New(conn, nil)
		defer c.Close()
		if err := c.WaitGreeting(); err != nil {
			t.Fatal(err)
		}
		if !c.Caps().Has(imap.Cap("AUTH=" + mech)) {
			t.Fatalf("AUTH=%s not offered: %v", mech, c.Caps())
		}
		var sc sasl.Client = xoauth2.NewClient(user, token)
		if mech == "OAUTHBEARER" {
			sc = xoauth2.NewBearerClient(user, token, "127.0.0.1", 0)
		}
		if err := c.Authenticate(sc); err != nil {
			return err
		}
		_, err = c.Select("INBOX", nil).Wait()
		return err
	}
	for _, mech := range []string{"XOAUTH2", "OAUTHBEARER"} {
		t.Run(mech, func(t *testing.T) {
			if err := authenticate(mech, alice, access); err != nil {
				t.Errorf("live token: %v", err)
			}
			if err := authenticate(mech, "bob", access); err == nil {
				t.Error("alice's token logged bob in")
			}
			if err := authenticate(mech, alice, "at-forged"); err == nil {
				t.Error("an unknown token logged in")
			}
		})
	}
	if c, err := s.Login(ctx, alice); err != nil {
		t.Errorf("password login beside OAuth2: %v", err)
	} else {
		c.Close()
	}
	provider.ExpireAccessTokens()
	if err := authenticate("XOAUTH2", alice, access); err == nil {
		t.Error("an expired token logged in")
	}
	if provider.Count("introspect") == 0 || provider.Count("introspect_inactive") == 0 {
		t.Errorf("introspections: %d active, %d inactive", provider.Count("introspect"), provider.Count("introspect_inactive"))
	}
}
