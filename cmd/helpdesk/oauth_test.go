package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-message/mail"

	"github.com/helpdeskgw/helpdesk/internal/dovecot"
	"github.com/helpdeskgw/helpdesk/internal/idp"
	"github.com/helpdeskgw/helpdesk/internal/smtptest"
	"github.com/helpdeskgw/helpdesk/tickets"
)

// codeApprover is the person at the other screen: it reads what the
// command prints, and enters the code at the provider, or opens the
// address in a browser that cannot reach the gateway and pastes the
// address the browser was sent back to.
type codeApprover struct {
	provider *idp.Provider
	user     string
	// paste, when set, is the command's input.
	paste    io.Writer
	mu       sync.Mutex
	out      bytes.Buffer
	approved bool
}

var (
	deviceCode  = regexp.MustCompile(`enter the code\s+([A-Z0-9]{4}-[A-Z0-9]{4})`)
	signInURL   = regexp.MustCompile(`open this address in a browser[^\n]*\n\s+(\S+)`)
	noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
)

func (a *codeApprover) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.out.Write(p)
	if a.approved {
		return len(p), nil
	}
	if m := deviceCode.FindStringSubmatch(a.out.String()); m != nil {
		a.approved = a.provider.Approve(m[1], a.user)
	}
	if m := signInURL.FindStringSubmatch(a.out.String()); m != nil && a.paste != nil {
		a.approved = true
		go func() {
			resp, err := noRedirects.Get(m[1])
			if err != nil {
				return // the command then waits in vain, and the test says so
			}
			resp.Body.Close()
			io.WriteString(a.paste, resp.Header.Get("Location")+"\n") //nolint:errcheck // the command reports what it got
		}()
	}
	return len(p), nil
}

func (a *codeApprover) String() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.out.String()
}

// An admin attaches a mailbox with OAuth2 and authorizes it from the
// terminal; mail flows. The provider then revokes the authorization: the
// mailbox shows the error in `mailbox list` and /metrics, the admin gets
// one mail, and authorizing again brings the mailbox back.
func TestMailboxOAuth2EndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Dovecot")
	}
	provider := idp.Start(idp.Options{ClientID: "helpdesk", Rotate: true})
	t.Cleanup(provider.Close)
	srv := dovecot.StartT(t, dovecot.Options{Users: map[string]string{"support": "unused password"},
		OAuth2: &dovecot.OAuth2{IntrospectionURL: provider.IntrospectionURL()}})
	ctx := context.Background()
	if err := srv.CreateMailbox(ctx, "support", "Procesados"); err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 32)
	rand.Read(raw) //nolint:errcheck // never fails
	key := "HELPDESK_SECRET_KEY=" + base64.StdEncoding.EncodeToString(raw)
	app, spool := startApp(t, key)
	if _, err := app.store.AddAgent(ctx, "test", tickets.NewAgent{Email: "admin@example.com", Name: "Admin", Role: tickets.RoleAdmin,
		Password: "long enough password"}); err != nil {
		t.Fatal(err)
	}
	environ := []string{"HELPDESK_DATABASE_URL=" + db.ConnString(t), key}
	var out bytes.Buffer
	var outputs []string
	mailbox := func(args ...string) error {
		out.Reset()
		err := run(ctx, append([]string{"mailbox"}, args...), environ, &out)
		outputs = append(outputs, out.String())
		return err
	}
	// authorize runs `mailbox oauth` with a device code, or in a browser
	// on another machine, whose address the person pastes.
	authorize := func(browser bool) {
		t.Helper()
		args := []string{"mailbox", "oauth", "--department", "soporte"}
		var stdin io.Reader = strings.NewReader("")
		a := &codeApprover{provider: provider, user: "support"}
		if browser {
			args = append(args, "--browser")
			r, w := io.Pipe()
			defer w.Close()
			stdin, a.paste = r, w
			provider.SignIn("support")
		}
		err := runIO(ctx, args, environ, stdin, a)
		outputs = append(outputs, a.String())
		if err != nil {
			t.Fatalf("mailbox oauth: %v\n%s", err, a.String())
		}
		if !strings.Contains(a.String(), "authorized: tokens stored") || !strings.Contains(a.String(), "with OAUTHBEARER") ||
			strings.Contains(a.String(), "/device/verify") == browser {
			t.Errorf("mailbox oauth said:\n%s", a.String())
		}
	}
	waitList := func(pattern string) string {
		t.Helper()
		return waitForMatch(t, "mailbox list", pattern, func() string {
			if err := mailbox("list"); err != nil {
				t.Fatal(err)
			}
			return out.String()
		})
	}

	if err := mailbox("add", "--department", "soporte", "--url", "imap://support@"+srv.Addr()+"/INBOX", "--move-to", "Procesados",
		"--oauth", "generic", "--client-id", "helpdesk", "--token-url", provider.TokenURL(), "--device-url", provider.DeviceURL(),
		"--auth-url", provider.AuthURL()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "authorize it now with: helpdesk mailbox oauth --department soporte") {
		t.Errorf("add said:\n%s", out.String())
	}
	waitList(`oauth2/generic \(not authorized\)\s+error .*not authorized yet: run helpdesk mailbox oauth --department soporte`)

	authorize(false)
	waitList(`oauth2/generic\s+idling`)
	incoming := smtptest.CRLF("From: Ana <ana@example.org>\nTo: support@localhost\nSubject: Por OAuth2\nMessage-ID: <oauth-e2e@example.org>\n\nHola\n")
	if _, err := srv.Append(ctx, "support", "INBOX", incoming); err != nil {
		t.Fatal(err)
	}
	if ack := waitForFile(t, spool, 1); !bytes.Contains(ack, []byte("Por OAuth2")) {
		t.Errorf("acknowledgement:\n%s", ack)
	}
	secrets := provider.RefreshTokens("support")

	// The provider revokes everything; the session ends (the server
	// restarts) and the next login needs a renewal, which is refused.
	provider.Revoke("support")
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := srv.Restart(rctx); err != nil {
		t.Fatal(err)
	}
	const reason = "OAuth2 refresh failed: invalid_grant (refresh token revoked or expired); run helpdesk mailbox oauth --department soporte"
	waitList(`error .*` + regexp.QuoteMeta(reason))
	page := get(t, http.DefaultClient, "http://"+app.HTTPAddr()+"/metrics", http.StatusOK)
	if !strings.Contains(page, `helpdesk_imap_mailbox_state{department="soporte",state="error"} 1`) {
		t.Errorf("/metrics does not show the mailbox in error")
	}
	alert := waitForFile(t, spool, 2)
	mr, err := mail.CreateReader(bytes.NewReader(alert))
	if err != nil {
		t.Fatal(err)
	}
	if subject, _ := mr.Header.Subject(); subject != "El buzón de Soporte Técnico se ha detenido: hay que volver a autorizarlo" {
		t.Errorf("alert subject %q: want it in the department's Spanish", subject)
	}
	for _, want := range []string{"To: \"Admin\" <admin@example.com>", "invalid_grant", "mailbox oauth --department soporte"} {
		if !bytes.Contains(bytes.ReplaceAll(alert, []byte("=\r\n"), nil), []byte(want)) {
			t.Errorf("the alert lacks %q:\n%s", want, alert)
		}
	}
	if err := mailbox("test", "--department", "soporte"); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Errorf("mailbox test after the revocation: %v", err)
	}

	// Authorized again, in a browser this time: the mailbox is back, and
	// no second alert went.
	authorize(true)
	waitList(`oauth2/generic\s+idling`)
	if _, err := srv.Append(ctx, "support", "INBOX", bytes.ReplaceAll(incoming, []byte("oauth-e2e@"), []byte("oauth-e2e-2@"))); err != nil {
		t.Fatal(err)
	}
	waitForFile(t, spool, 3)
	var alerts int
	if err := app.pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE kind = 'admin_alert'`).Scan(&alerts); err != nil || alerts != 1 {
		t.Errorf("%d admin alerts (%v), want 1", alerts, err)
	}
	for _, o := range outputs {
		for _, s := range append(secrets, provider.RefreshTokens("support")...) {
			if strings.Contains(o, s) {
				t.Errorf("a command printed a refresh token:\n%s", o)
			}
		}
	}
}

// App-only mailboxes get their token when attached; one that cannot log in
// is not attached. Flags that do not go together are refused.
func TestMailboxAddWithClientCredentials(t *testing.T) {
	db.Reset(t)
	provider := idp.Start(idp.Options{ClientID: "helpdesk", ClientSecret: "s3cret", AppUser: "support"})
	t.Cleanup(provider.Close)
	raw := make([]byte, 32)
	rand.Read(raw) //nolint:errcheck // never fails
	environ := []string{"HELPDESK_DATABASE_URL=" + db.ConnString(t), "HELPDESK_SECRET_KEY=" + base64.StdEncoding.EncodeToString(raw),
		"GOOD_SECRET=s3cret", "BAD_SECRET=nope"}
	ctx := context.Background()
	var out bytes.Buffer
	cmd := func(args ...string) error {
		out.Reset()
		return run(ctx, args, environ, &out)
	}
	if err := cmd("department", "add", "--slug", "soporte", "--name", "Soporte", "--address", "support@example.com"); err != nil {
		t.Fatal(err)
	}
	add := func(extra ...string) error {
		return cmd(append([]string{"mailbox", "add", "--department", "soporte", "--url", "imap://support@127.0.0.1:1/INBOX",
			"--oauth", "generic", "--client-id", "helpdesk", "--token-url", provider.TokenURL(), "--client-credentials"}, extra...)...)
	}
	for _, tc := range []struct {
		name  string
		extra []string
		want  string
	}{
		{"wrong secret", []string{"--client-secret-env", "BAD_SECRET"}, "invalid_client"},
		// The token is granted, but no server answers at the URL.
		{"server unreachable", []string{"--client-secret-env", "GOOD_SECRET"}, "cannot reach 127.0.0.1:1"},
		{"password too", []string{"--client-secret-env", "GOOD_SECRET", "--password-env", "X"}, "without a password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := add(tc.extra...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if err := cmd("mailbox", "list"); err != nil || strings.Contains(out.String(), "soporte") {
				t.Errorf("a mailbox was attached:\n%s (%v)", out.String(), err)
			}
		})
	}
	if n := provider.Count("client_credentials"); n != 1 {
		t.Errorf("%d client credentials grants, want 1 (the good secret)", n)
	}
	err := cmd("mailbox", "add", "--department", "soporte", "--url", "imap://support@127.0.0.1:1/INBOX", "--password-env", "X", "--tenant", "contoso")
	if err == nil || !strings.Contains(err.Error(), "go with --oauth") {
		t.Errorf("OAuth2 flags without --oauth: %v", err)
	}
}
