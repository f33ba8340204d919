package mailin

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/helpdeskgw/helpdesk/internal/dovecot"
	"github.com/helpdeskgw/helpdesk/internal/idp"
	"github.com/helpdeskgw/helpdesk/internal/oauth"
	"github.com/helpdeskgw/helpdesk/tickets"
)

// OAuth2 against a real Dovecot whose oauth2 passdb asks a local identity
// provider (internal/idp) whether each access token is live.

type oauthSite struct {
	*mailboxSite
	srv      *dovecot.Server
	provider *idp.Provider
	sources  *oauth.Sources
}

// newOAuthSite starts the provider and Dovecot (offering the given
// mechanisms, both by default), attaches the mailbox with OAuth2 and
// authorizes it with the device flow, the test entering the code.
func newOAuthSite(t *testing.T, opts idp.Options, mechanisms ...string) *oauthSite {
	t.Helper()
	opts.ClientID = "helpdesk"
	provider := idp.Start(opts)
	t.Cleanup(provider.Close)
	srv := startDovecot(t, dovecot.Options{OAuth2: &dovecot.OAuth2{IntrospectionURL: provider.IntrospectionURL(), Mechanisms: mechanisms}})
	site := newMailboxSite(t, srv.Addr(), "Processed", "unused")
	ctx := context.Background()
	if err := site.store.RemoveMailbox(ctx, "soporte"); err != nil {
		t.Fatal(err)
	}
	mb, err := site.store.AddMailbox(ctx, tickets.Mailbox{Department: tickets.Department{Slug: "soporte"},
		URL: site.mb.URL, MoveTo: "Processed", PollInterval: site.mb.PollInterval, Auth: tickets.AuthOAuth2,
		OAuth: tickets.OAuthSettings{Provider: tickets.ProviderGeneric, ClientID: "helpdesk",
			TokenURL: provider.TokenURL(), DeviceURL: provider.DeviceURL()}})
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 32)
	rand.Read(raw) //nolint:errcheck // never fails
	key, err := oauth.ParseKey(base64.StdEncoding.EncodeToString(raw))
	if err != nil {
		t.Fatal(err)
	}
	sources := oauth.New(oauth.Options{Store: site.store, Key: key})
	if _, err := sources.Authorize(ctx, mb, oauth.Prompt{DeviceCode: func(c oauth.DeviceCode) { provider.Approve(c.Code, dovecotUser) }}); err != nil {
		t.Fatal(err)
	}
	site.mb, site.tokens = mailboxState(t, site), sources
	return &oauthSite{mailboxSite: site, srv: srv, provider: provider, sources: sources}
}

func TestDovecotOAuth2Login(t *testing.T) {
	for _, tc := range []struct {
		offered []string
		want    string
	}{
		{nil, "OAUTHBEARER"},
		{[]string{"xoauth2"}, "XOAUTH2"},
		{[]string{"oauthbearer"}, "OAUTHBEARER"},
	} {
		t.Run(tc.want+" of "+strings.Join(tc.offered, ","), func(t *testing.T) {
			s := newOAuthSite(t, idp.Options{}, tc.offered...)
			ctx := context.Background()
			creds := Credentials{Tokens: s.sources}
			r, err := CheckMailboxWith(ctx, s.mb, creds, nil)
			if err != nil {
				t.Fatalf("valid token: %v", err)
			}
			if r.Mechanism != tc.want {
				t.Errorf("logged in with %s, want %s", r.Mechanism, tc.want)
			}

			// The provider expires the token early: Dovecot refuses it,
			// plainly, and the gateway renews it and logs in.
			tok, err := s.sources.Token(ctx, s.mb, "")
			if err != nil {
				t.Fatal(err)
			}
			s.provider.ExpireAccessTokens()
			addr, _ := ParseMailboxURL(s.mb.URL)
			_, err = dialIMAP(ctx, addr, credential{token: tok.Access}, nil)
			if !errors.Is(err, errTokenRefused) || !strings.Contains(err.Error(), "login as support with "+tc.want+" refused") {
				t.Errorf("expired token: %v, want a refusal", err)
			}
			if _, err := CheckMailboxWith(ctx, s.mb, creds, nil); err != nil {
				t.Fatalf("after the expiry: %v", err)
			}
			if n := s.provider.Count("refresh_token"); n != 1 {
				t.Errorf("%d refreshes, want 1", n)
			}
		})
	}
}

// The session ends as its token falls due and logs in again with a renewed
// one, while mail keeps arriving: every mail becomes one ticket, and no
// error is ever recorded. The provider rotates refresh tokens, so a second
// renewal works only if the first one's refresh token was kept.
func TestDovecotOAuth2RenewalKeepsTheMailFlowing(t *testing.T) {
	s := newOAuthSite(t, idp.Options{AccessTokenLifetime: 2 * time.Second, Rotate: true})
	p, _ := s.run(t, "one")
	stats := p.Stats(s.mb.ID)
	for i := range 3 {
		// Each mail arrives in a later session than the one before.
		sessions := stats.Sessions.Load()
		eventually(t, "a new session", func() (bool, string) {
			return stats.Sessions.Load() > sessions, fmt.Sprintf("%d sessions", stats.Sessions.Load())
		})
		appendMail(t, s.srv, numbered(i))
		drained(t, s.srv, i+1)
	}
	// The first session used the authorized token; each later one a
	// renewed token.
	if n := s.provider.Count("refresh_token"); n < 2 {
		t.Errorf("%d refreshes, want at least 2", n)
	}
	if got := s.count(t, `SELECT count(*) FROM tickets`); got != 3 {
		t.Errorf("%d tickets, want 3", got)
	}
	if mb := mailboxState(t, s.mailboxSite); mb.LastError != "" || mb.OAuthStatus.Error != "" {
		t.Errorf("an error was recorded: %q / %q", mb.LastError, mb.OAuthStatus.Error)
	}
	if live := s.provider.RefreshTokens(dovecotUser); len(live) != 1 {
		t.Errorf("%d live refresh tokens, want the one rotated last", len(live))
	}
}

// A revoked refresh token puts the mailbox in error, with what to do, and
// queues one mail to each admin however often it fails; authorizing again
// brings the mailbox back.
func TestDovecotOAuth2RevokedRefreshToken(t *testing.T) {
	s := newOAuthSite(t, idp.Options{AccessTokenLifetime: 2 * time.Second, Rotate: true})
	ctx := context.Background()
	for _, a := range []tickets.NewAgent{
		{Email: "admin@example.com", Name: "Admin", Role: tickets.RoleAdmin, Password: "long enough password"},
		{Email: "agent@example.com", Name: "Agent", Password: "long enough password", DepartmentSlugs: []string{"soporte"}},
	} {
		if _, err := s.store.AddAgent(ctx, "test", a); err != nil {
			t.Fatal(err)
		}
	}
	s.run(t, "one")
	eventually(t, "idling", func() (bool, string) {
		mb := mailboxState(t, s.mailboxSite)
		return mb.State == tickets.MailboxIdling, string(mb.State)
	})
	s.provider.Revoke(dovecotUser)
	const want = "OAuth2 refresh failed: invalid_grant (refresh token revoked or expired); run helpdesk mailbox oauth --department soporte"
	eventually(t, "error state", func() (bool, string) {
		mb := mailboxState(t, s.mailboxSite)
		return mb.State == tickets.MailboxError && strings.HasPrefix(mb.LastError, want), fmt.Sprintf("%s %q", mb.State, mb.LastError)
	})
	// Another attempt (a check from the command line) fails the same way,
	// and mails no one again.
	if _, err := CheckMailboxWith(ctx, mailboxState(t, s.mailboxSite), Credentials{Tokens: s.sources}, nil); err == nil || err.Error() != want {
		t.Errorf("check after the revocation: %v", err)
	}
	if n := s.count(t, `SELECT count(*) FROM outbox WHERE kind = 'admin_alert'`); n != 1 {
		t.Errorf("%d admin alerts, want 1", n)
	}
	if n := s.count(t, `SELECT count(*) FROM outbox WHERE kind = 'admin_alert' AND recipient = 'admin@example.com' AND detail = $1`, want); n != 1 {
		t.Errorf("the alert is not the admin's, or does not say what failed")
	}

	// The admin authorizes the mailbox again: the poller restarts with the
	// new tokens and mail flows.
	if _, err := s.sources.Authorize(ctx, s.mb, oauth.Prompt{DeviceCode: func(c oauth.DeviceCode) { s.provider.Approve(c.Code, dovecotUser) }}); err != nil {
		t.Fatal(err)
	}
	appendMail(t, s.srv, numbered(1))
	drained(t, s.srv, 1)
	if mb := mailboxState(t, s.mailboxSite); mb.OAuthStatus.Error != "" || !mb.OAuthStatus.AlertedAt.IsZero() {
		t.Errorf("after authorizing again: %+v", mb.OAuthStatus)
	}
}

// An OAuth2 mailbox not yet authorized says what to run.
func TestOAuth2MailboxNotAuthorized(t *testing.T) {
	site := newMailboxSite(t, "127.0.0.1:1", "", "unused")
	ctx := context.Background()
	if err := site.store.RemoveMailbox(ctx, "soporte"); err != nil {
		t.Fatal(err)
	}
	mb, err := site.store.AddMailbox(ctx, tickets.Mailbox{Department: tickets.Department{Slug: "soporte"},
		URL: site.mb.URL, Auth: tickets.AuthOAuth2,
		OAuth: tickets.OAuthSettings{Provider: tickets.ProviderMicrosoft, ClientID: "helpdesk"}})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := oauth.ParseKey(base64.StdEncoding.EncodeToString(make([]byte, 32)))
	_, err = CheckMailboxWith(ctx, mb, Credentials{Tokens: oauth.New(oauth.Options{Store: site.store, Key: key})}, nil)
	if !errors.Is(err, tickets.ErrNotAuthorized) || !strings.Contains(err.Error(), "run helpdesk mailbox oauth --department soporte") || !needsAdmin(err) {
		t.Errorf("error %v", err)
	}
	if _, err := CheckMailboxWith(ctx, mb, Credentials{}, nil); err == nil {
		t.Error("an OAuth2 mailbox logged in without a token source")
	}
}
