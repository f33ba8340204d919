package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/helpdeskgw/helpdesk/internal/dovecot"
	"github.com/helpdeskgw/helpdesk/internal/smtptest"
)

// An admin attaches a Dovecot mailbox with the commands; the running gateway
// picks it up, and mail appended there is acknowledged like mail sent to the
// SMTP listener.
func TestMailboxCommandsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Dovecot")
	}
	const password = "correct horse battery staple"
	srv := dovecot.StartT(t, dovecot.Options{Users: map[string]string{"support": password}})
	ctx := context.Background()
	if err := srv.CreateMailbox(ctx, "support", "Procesados"); err != nil {
		t.Fatal(err)
	}
	_, spool := startApp(t)
	t.Setenv("SUPPORT_IMAP_PASSWORD", password) // the gateway's environment
	environ := []string{"HELPDESK_DATABASE_URL=" + db.ConnString(t), "SUPPORT_IMAP_PASSWORD=" + password,
		"WRONG_PASSWORD=nope"}
	url := "imap://support@" + srv.Addr() + "/INBOX"
	var out bytes.Buffer
	mailbox := func(args ...string) error {
		out.Reset()
		return run(ctx, append([]string{"mailbox"}, args...), environ, &out)
	}

	err := mailbox("add", "--department", "soporte", "--url", url, "--password-env", "WRONG_PASSWORD")
	if err == nil || !strings.Contains(err.Error(), "login as support refused") || !strings.Contains(err.Error(), "nothing was attached") {
		t.Errorf("add with a wrong password: %v, want a refused login and nothing attached", err)
	}
	if err := mailbox("add", "--department", "soporte", "--url", "imaps://support:"+password+"@example.com/INBOX", "--password-env", "X"); err == nil ||
		strings.Contains(err.Error(), password) {
		t.Errorf("password in the URL: %v, want a refusal that does not repeat it", err)
	}
	if err := mailbox("add", "--department", "soporte", "--url", url, "--password-env", "SUPPORT_IMAP_PASSWORD", "--move-to", "Procesados"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "logged in") || !strings.Contains(out.String(), "IDLE: yes") {
		t.Errorf("add output:\n%s", out.String())
	}
	if err := mailbox("add", "--department", "soporte", "--url", url, "--password-env", "SUPPORT_IMAP_PASSWORD", "--no-check"); err == nil ||
		!strings.Contains(err.Error(), "has a mailbox already") {
		t.Errorf("second mailbox for the department: %v", err)
	}

	// waitList waits for `mailbox list` to match the pattern.
	waitList := func(pattern string) string {
		t.Helper()
		return waitForMatch(t, "mailbox list", pattern, func() string {
			if err := mailbox("list"); err != nil {
				t.Fatal(err)
			}
			return out.String()
		})
	}
	list := waitList("idling")
	if strings.Contains(list, password) {
		t.Errorf("mailbox list shows the password:\n%s", list)
	}
	if !strings.Contains(list, "env:SUPPORT_IMAP_PASSWORD") && !strings.Contains(list, url) {
		t.Errorf("mailbox list lacks the mailbox:\n%s", list)
	}

	raw := smtptest.CRLF("From: Ana <ana@example.org>\nTo: support@localhost\nSubject: Por IMAP\nMessage-ID: <imap-e2e@example.org>\n\nHola\n")
	if _, err := srv.Append(ctx, "support", "INBOX", raw); err != nil {
		t.Fatal(err)
	}
	ack := waitForFile(t, spool, 1)
	if !bytes.Contains(ack, []byte("Por IMAP")) || !bytes.Contains(ack, []byte("ana@example.org")) {
		t.Errorf("acknowledgement:\n%s", ack)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		moved, err := srv.Messages(ctx, "support", "Procesados")
		if err != nil {
			t.Fatal(err)
		}
		if len(moved) == 1 && moved[0].Has(`\Seen`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("mail not moved to Procesados and flagged: %+v", moved)
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitList(`\d+/1\s+1\s`) // UIDVALIDITY/last UID, then mails ingested

	if err := mailbox("test", "--department", "soporte"); err != nil || !strings.Contains(out.String(), `folder "INBOX" has 0 messages`) {
		t.Errorf("mailbox test: %v\n%s", err, out.String())
	}
	if err := mailbox("disable", "--department", "soporte"); err != nil {
		t.Fatal(err)
	}
	waitList("disabled")
	if err := mailbox("remove", "--department", "soporte"); err != nil {
		t.Fatal(err)
	}
	if err := mailbox("test", "--department", "soporte"); err == nil || !strings.Contains(err.Error(), "has no mailbox") {
		t.Errorf("test after remove: %v", err)
	}
	files, _ := filepath.Glob(filepath.Join(spool, "*.eml"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if bytes.Contains(b, []byte(password)) {
			t.Errorf("%s contains the password", f)
		}
	}
}

// waitForMatch runs read until what it returns matches pattern, for 20 s
// at most, and returns that.
func waitForMatch(t *testing.T, what, pattern string, read func() string) string {
	t.Helper()
	re := regexp.MustCompile(pattern)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		got := read()
		if re.MatchString(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never matched %q:\n%s", what, pattern, got)
		}
	}
}
