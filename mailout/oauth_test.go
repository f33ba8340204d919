package mailout

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/helpdeskgw/helpdesk/templates"
	"github.com/helpdeskgw/helpdesk/tickets"
)

// oauthRelay is an SMTP relay on loopback that takes OAuth2 bearer tokens
// the way Microsoft 365 and Gmail do: a refused XOAUTH2 token gets the JSON
// error challenge, which must be answered with an empty line before the
// 535.
type oauthRelay struct {
	addr  string
	mechs []string
	// token is the one access token accepted, for user.
	user, token string

	mu        sync.Mutex
	used      []string // mechanisms of the successful logins
	refusals  int
	badAnswer bool // an error challenge answered with something else
	received  int
}

func startOAuthRelay(t *testing.T, mechs ...string) (*oauthRelay, *tls.Config) {
	t.Helper()
	serverTLS, clientTLS := selfSigned(t)
	r := &oauthRelay{mechs: mechs, user: "support@example.com", token: "fresh-token"}
	srv := smtp.NewServer(r)
	srv.Domain = "relay.test"
	srv.TLSConfig = serverTLS
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	t.Cleanup(func() { srv.Close() })
	r.addr = ln.Addr().String()
	return r, clientTLS
}

func (r *oauthRelay) NewSession(*smtp.Conn) (smtp.Session, error) { return &oauthSession{r: r}, nil }

type oauthSession struct {
	r      *oauthRelay
	authed bool
}

func (s *oauthSession) AuthMechanisms() []string { return s.r.mechs }

func (s *oauthSession) Auth(mech string) (sasl.Server, error) {
	if mech == sasl.OAuthBearer {
		return sasl.NewOAuthBearerServer(func(o sasl.OAuthBearerOptions) *sasl.OAuthBearerError {
			if o.Username != s.r.user || o.Token != s.r.token {
				s.r.refused()
				return &sasl.OAuthBearerError{Status: "invalid_token", Schemes: "bearer"}
			}
			s.login(mech)
			return nil
		}), nil
	}
	return &xoauth2Server{session: s}, nil
}

func (s *oauthSession) login(mech string) {
	s.authed = true
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	s.r.used = append(s.r.used, mech)
}

func (r *oauthRelay) refused() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refusals++
}

// xoauth2Server checks the initial response byte for byte.
type xoauth2Server struct {
	session *oauthSession
	failed  bool
}

func (x *xoauth2Server) Next(resp []byte) ([]byte, bool, error) {
	refusal := &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Username and Password not accepted"}
	if x.failed {
		if len(resp) != 0 {
			x.session.r.mu.Lock()
			x.session.r.badAnswer = true
			x.session.r.mu.Unlock()
		}
		return nil, true, refusal
	}
	if resp == nil {
		return []byte{}, false, nil
	}
	r := x.session.r
	if string(resp) != "user="+r.user+"\x01auth=Bearer "+r.token+"\x01\x01" {
		r.refused()
		x.failed = true
		return []byte(`{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}`), false, nil
	}
	x.session.login("XOAUTH2")
	return nil, true, nil
}

func (s *oauthSession) Mail(string, *smtp.MailOptions) error {
	if !s.authed {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	}
	return nil
}
func (s *oauthSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *oauthSession) Data(rd io.Reader) error {
	if _, err := io.Copy(io.Discard, rd); err != nil {
		return err
	}
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	s.r.received++
	return nil
}
func (s *oauthSession) Reset()        {}
func (s *oauthSession) Logout() error { return nil }

// relayTokens hands out a stale token first, and the fresh one when the
// stale one is reported refused, as oauth.Sources does after a revocation.
type relayTokens struct {
	mu      sync.Mutex
	asked   []string // "department/refused" per call
	fresh   string
	failure error
}

func (f *relayTokens) RelayToken(_ context.Context, department, refused string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, department+"/"+refused)
	if f.failure != nil {
		return "", f.failure
	}
	if refused == "" {
		return "stale-token", nil
	}
	return f.fresh, nil
}

func oauthWorker(t *testing.T, store *tickets.Store, r *oauthRelay, clientTLS *tls.Config, auth string, tokens RelayTokens) *Worker {
	t.Helper()
	tmpl, err := templates.Load()
	if err != nil {
		t.Fatal(err)
	}
	w, err := New(Options{Store: store, Templates: tmpl, BaseURL: "https://help.example.com/", BatchSize: 10,
		MailOut: "smtp://support%40example.com@" + r.addr + "?auth=" + auth + "&mailbox=billing", RelayTokens: tokens})
	if err != nil {
		t.Fatal(err)
	}
	w.sender.(*relaySender).tlsConfig = clientTLS
	return w
}

// The relay refuses the stale token; the worker asks for a fresh one and
// sends with it, by the mechanism the relay offers (or the one insisted on).
func TestRelayWithOAuth2(t *testing.T) {
	for _, tc := range []struct {
		auth    string
		offered []string
		want    string
	}{
		{"oauth2", []string{"XOAUTH2"}, "XOAUTH2"},
		{"oauth2", []string{"XOAUTH2", "OAUTHBEARER"}, "OAUTHBEARER"},
		{"xoauth2", []string{"XOAUTH2", "OAUTHBEARER"}, "XOAUTH2"},
		{"oauthbearer", []string{"OAUTHBEARER"}, "OAUTHBEARER"},
	} {
		t.Run(tc.auth+" offered "+strings.Join(tc.offered, ","), func(t *testing.T) {
			store, pool := fixture(t, 2)
			r, clientTLS := startOAuthRelay(t, tc.offered...)
			tokens := &relayTokens{fresh: r.token}
			drainAll(t, oauthWorker(t, store, r, clientTLS, tc.auth, tokens))
			if got := states(t, pool); got["sent"] != 2 {
				t.Fatalf("outbox %v, want 2 sent", got)
			}
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.received != 2 || r.refusals != 1 || r.badAnswer || len(r.used) != 1 || r.used[0] != tc.want {
				t.Errorf("relay: %d received, %d refusals, bad answer %v, logins %v; want 2, 1, false, [%s]",
					r.received, r.refusals, r.badAnswer, r.used, tc.want)
			}
			tokens.mu.Lock()
			defer tokens.mu.Unlock()
			if strings.Join(tokens.asked, " ") != "billing/ billing/stale-token" {
				t.Errorf("tokens asked: %q", tokens.asked)
			}
		})
	}
}

// Without a token (the authorization was revoked), mail waits, saying why.
func TestRelayWithoutOAuth2TokenKeepsMailPending(t *testing.T) {
	store, pool := fixture(t, 1)
	r, clientTLS := startOAuthRelay(t, "XOAUTH2")
	tokens := &relayTokens{failure: errors.New("OAuth2 refresh failed: invalid_grant (refresh token revoked or expired); run helpdesk mailbox oauth --department billing")}
	w := oauthWorker(t, store, r, clientTLS, "oauth2", tokens)
	if _, err := w.drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := states(t, pool); got["pending"] != 1 {
		t.Errorf("outbox %v: mail must wait for the authorization", got)
	}
	var lastErr string
	pool.QueryRow(context.Background(), `SELECT last_error FROM outbox`).Scan(&lastErr)
	if !strings.Contains(lastErr, "invalid_grant") {
		t.Errorf("last_error %q", lastErr)
	}
}

func TestOAuth2RelayURL(t *testing.T) {
	for _, tc := range []struct {
		url, err, mailbox string
	}{
		{"smtp://support@smtp.office365.com:587?auth=oauth2&mailbox=soporte", "", "soporte"},
		{"smtp://gateway:s3cret@relay.example.com", "", ""},
		{"smtp://smtp.office365.com?auth=oauth2&mailbox=soporte", "needs the user", ""},
		{"smtp://u:p@smtp.office365.com?auth=oauth2&mailbox=soporte", "takes no password", ""},
		{"smtp://u@smtp.office365.com?auth=oauth2", "needs mailbox=SLUG", ""},
		{"smtp://u@smtp.office365.com?auth=kerberos&mailbox=x", "want oauth2, xoauth2 or oauthbearer", ""},
		{"smtp://u@smtp.office365.com?mailbox=x", "goes with auth=oauth2", ""},
		{"smtp://u@smtp.office365.com?auth=oauth2&mailbox=x&tenant=y", `unknown parameter "tenant"`, ""},
	} {
		_, err := NewSender(tc.url)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: error %v, want %q", tc.url, err, tc.err)
		}
		if got := RelayOAuthMailbox(tc.url); got != tc.mailbox {
			t.Errorf("%s: mailbox %q, want %q", tc.url, got, tc.mailbox)
		}
	}
	if _, err := New(Options{MailOut: "smtp://u@h?auth=oauth2&mailbox=x"}); err == nil || !strings.Contains(err.Error(), "HELPDESK_SECRET_KEY") {
		t.Errorf("a relay with OAuth2 and no tokens: %v", err)
	}
}

// The alert about a failing mailbox goes to each admin, from the
// department, in its language, saying what failed and what to run.
func TestAdminAlertIsComposed(t *testing.T) {
	store, pool := fixture(t, 0)
	ctx := context.Background()
	if _, err := store.AddAgent(ctx, "test", tickets.NewAgent{Email: "boss@example.com", Name: "Bo Ss", Role: tickets.RoleAdmin,
		Password: "long enough password"}); err != nil {
		t.Fatal(err)
	}
	mb, err := store.AddMailbox(ctx, tickets.Mailbox{Department: tickets.Department{Slug: "billing"},
		URL: "imaps://billing%40example.com@outlook.office365.com:993/INBOX", Auth: tickets.AuthOAuth2,
		OAuth: tickets.OAuthSettings{Provider: tickets.ProviderMicrosoft, ClientID: "c"}})
	if err != nil {
		t.Fatal(err)
	}
	const reason = "OAuth2 refresh failed: invalid_grant (refresh token revoked or expired); run helpdesk mailbox oauth --department billing"
	if n, err := store.RecordMailboxAuthFailure(ctx, mb.ID, reason, true); err != nil || n != 1 {
		t.Fatalf("alert queued for %d admins: %v", n, err)
	}
	dir := t.TempDir()
	drainAll(t, newWorker(t, store, "file://"+dir))
	if got := states(t, pool); got["sent"] != 1 {
		t.Fatalf("outbox %v", got)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
	if len(files) != 1 {
		t.Fatalf("%d mails spooled", len(files))
	}
	raw, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	text := string(bytes.ReplaceAll(bytes.ReplaceAll(raw, []byte("=\r\n"), nil), []byte("\r\n "), []byte(" ")))
	for _, want := range []string{
		"From: \"Billing\" <billing@example.com>", "To: \"Bo Ss\" <boss@example.com>",
		"Subject: Mailbox of Billing stopped: it needs authorizing again", "Auto-Submitted: auto-generated",
		"invalid_grant (refresh token revoked or expired)", "helpdesk mailbox oauth --department billing",
		"imaps://billing%40example.com@outlook.office365.com:993/INBOX",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("alert lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "X-Helpdesk-Ticket") {
		t.Error("the alert names a ticket")
	}
}
