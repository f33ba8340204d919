package tickets_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/helpdeskgw/helpdesk/tickets"
)

func oauthMailbox(o tickets.OAuthSettings) tickets.Mailbox {
	return tickets.Mailbox{Department: tickets.Department{Slug: "soporte"}, URL: "imaps://support@example.com@outlook.office365.com/INBOX",
		Auth: tickets.AuthOAuth2, OAuth: o}
}

func TestAddOAuthMailboxChecksItsSettings(t *testing.T) {
	s, _, _ := newStore(t, tickets.Options{})
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		mb   tickets.Mailbox
		want string // in the error; "" for success
	}{
		{"no provider", oauthMailbox(tickets.OAuthSettings{ClientID: "c"}), "want microsoft, google or generic"},
		{"no client", oauthMailbox(tickets.OAuthSettings{Provider: "microsoft"}), "client ID"},
		{"password too", func() tickets.Mailbox {
			m := oauthMailbox(tickets.OAuthSettings{Provider: "google", ClientID: "c"})
			m.PasswordRef = "env:X"
			return m
		}(), "no password"},
		{"google app-only", oauthMailbox(tickets.OAuthSettings{Provider: "google", ClientID: "c", ClientSecretRef: "env:S", ClientCredentials: true}), "service accounts"},
		{"app-only without secret", oauthMailbox(tickets.OAuthSettings{Provider: "microsoft", ClientID: "c", ClientCredentials: true}), "needs a client secret"},
		{"bad secret ref", oauthMailbox(tickets.OAuthSettings{Provider: "microsoft", ClientID: "c", ClientSecretRef: "S"}), "env:VAR or file:PATH"},
		{"generic without URL", oauthMailbox(tickets.OAuthSettings{Provider: "generic", ClientID: "c"}), "token URL"},
		{"generic without a way to sign in", oauthMailbox(tickets.OAuthSettings{Provider: "generic", ClientID: "c", TokenURL: "https://idp.example/token"}),
			"device authorization URL or an authorization URL"},
		{"preset with URL", oauthMailbox(tickets.OAuthSettings{Provider: "google", ClientID: "c", TokenURL: "https://idp.example/token"}), "generic provider"},
		{"tenant off Microsoft", oauthMailbox(tickets.OAuthSettings{Provider: "google", ClientID: "c", Tenant: "contoso"}), "tenant"},
		{"password without ref", tickets.Mailbox{Department: tickets.Department{Slug: "soporte"}, URL: "imaps://a@b/INBOX"}, "password reference"},
		{"microsoft", oauthMailbox(tickets.OAuthSettings{Provider: "microsoft", Tenant: "contoso.onmicrosoft.com", ClientID: "c",
			Scopes: []string{"https://outlook.office.com/IMAP.AccessAsUser.All", "offline_access"}}), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mb, err := s.AddMailbox(ctx, tc.mb)
			if tc.want != "" {
				if err == nil || !errors.Is(err, tickets.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %v, want ErrInvalid saying %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if mb.Auth != tickets.AuthOAuth2 || mb.OAuth.Provider != "microsoft" || mb.OAuth.Tenant != "contoso.onmicrosoft.com" ||
				len(mb.OAuth.Scopes) != 2 || mb.OAuthStatus.Authorized {
				t.Errorf("stored %+v %+v", mb.OAuth, mb.OAuthStatus)
			}
		})
	}
}

func authorizedMailbox(t *testing.T, s *tickets.Store) tickets.Mailbox {
	t.Helper()
	ctx := context.Background()
	mb, err := s.AddMailbox(ctx, oauthMailbox(tickets.OAuthSettings{Provider: "microsoft", ClientID: "c"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AuthorizeMailbox(ctx, mb.ID, tickets.SealedTokens{Refresh: []byte("r1"), Access: []byte("a1"), Expiry: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	got, err := s.MailboxOf(ctx, "soporte")
	if err != nil {
		t.Fatal(err)
	}
	if !got.OAuthStatus.Authorized || got.Version != mb.Version+1 || got.OAuthStatus.ExpiresAt.IsZero() || got.OAuthStatus.RefreshedAt.IsZero() {
		t.Fatalf("after authorizing: %+v, version %d (was %d): want authorized and the poller restarted", got.OAuthStatus, got.Version, mb.Version)
	}
	return got
}

// Processes refreshing at once refresh once: the others find the tokens
// renewed and use them, so a rotating provider never sees a refresh token
// twice.
func TestConcurrentRefreshesRefreshOnce(t *testing.T) {
	s, _, _ := newStore(t, tickets.Options{})
	mb := authorizedMailbox(t, s)
	ctx := context.Background()
	var calls atomic.Int64
	var wg sync.WaitGroup
	got := make([]tickets.SealedTokens, 8)
	errs := make([]error, len(got))
	for i := range got {
		wg.Go(func() {
			got[i], errs[i] = s.RefreshMailboxTokens(ctx, mb.ID, func(cur tickets.SealedTokens) (tickets.SealedTokens, error) {
				if string(cur.Refresh) != "r1" {
					return cur, nil // renewed by another meanwhile
				}
				calls.Add(1)
				return tickets.SealedTokens{Refresh: []byte("r2"), Access: []byte("a2"), Expiry: time.Now().Add(time.Hour)}, nil
			})
		})
	}
	wg.Wait()
	if calls.Load() != 1 {
		t.Errorf("%d refreshes, want 1", calls.Load())
	}
	for i := range got {
		if errs[i] != nil || string(got[i].Refresh) != "r2" || string(got[i].Access) != "a2" {
			t.Errorf("refresher %d: %q/%q, %v", i, got[i].Refresh, got[i].Access, errs[i])
		}
	}
	// A failed refresh stores nothing.
	_, err := s.RefreshMailboxTokens(ctx, mb.ID, func(tickets.SealedTokens) (tickets.SealedTokens, error) {
		return tickets.SealedTokens{Access: []byte("lost")}, errors.New("provider down")
	})
	if err == nil || err.Error() != "provider down" {
		t.Errorf("failed refresh: %v", err)
	}
	after, _ := s.RefreshMailboxTokens(ctx, mb.ID, func(cur tickets.SealedTokens) (tickets.SealedTokens, error) { return cur, nil })
	if string(after.Access) != "a2" || string(after.Refresh) != "r2" {
		t.Errorf("after a failed refresh the tokens are %q/%q", after.Refresh, after.Access)
	}
}

// A failed refresh puts the mailbox in error and mails each active admin
// once, however often it fails; tokens obtained again re-arm the alert.
func TestAuthFailureAlertsAdminsOnce(t *testing.T) {
	s, pool, _ := newStore(t, tickets.Options{})
	ctx := context.Background()
	for _, a := range []tickets.NewAgent{
		{Email: "boss@example.com", Name: "Boss", Role: tickets.RoleAdmin, Password: "long enough password"},
		{Email: "gone@example.com", Name: "Gone", Role: tickets.RoleAdmin, Password: "long enough password"},
		{Email: "agent@example.com", Name: "Agent", Role: tickets.RoleAgent, Password: "long enough password", DepartmentSlugs: []string{"soporte"}},
	} {
		ag, err := s.AddAgent(ctx, "test", a)
		if err != nil {
			t.Fatal(err)
		}
		if a.Name == "Gone" {
			disabled := true
			if err := s.UpdateAgent(ctx, "test", ag.ID, tickets.AgentChange{Disabled: &disabled}); err != nil {
				t.Fatal(err)
			}
		}
	}
	mb := authorizedMailbox(t, s)
	const reason = "OAuth2 refresh failed: invalid_grant (refresh token revoked or expired); run helpdesk mailbox oauth --department soporte"
	for i := range 3 {
		n, err := s.RecordMailboxAuthFailure(ctx, mb.ID, reason, true)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{true: 1, false: 0}[i == 0]; n != want {
			t.Errorf("failure %d mailed %d admins, want %d", i+1, n, want)
		}
	}
	got, err := s.MailboxOf(ctx, "soporte")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != tickets.MailboxError || got.LastError != reason || got.OAuthStatus.Error != reason || got.OAuthStatus.AlertedAt.IsZero() {
		t.Errorf("mailbox after the failure: state %s, last error %q, status %+v", got.State, got.LastError, got.OAuthStatus)
	}
	if n := count(t, pool, `SELECT count(*) FROM outbox WHERE kind = 'admin_alert' AND recipient = 'boss@example.com' AND detail = $1`, reason); n != 1 {
		t.Errorf("%d alerts to the admin, want 1", n)
	}
	if n := count(t, pool, `SELECT count(*) FROM outbox WHERE kind = 'admin_alert'`); n != 1 {
		t.Errorf("%d alerts in all, want 1 (not to agents, not to disabled admins)", n)
	}

	mails, err := s.ClaimOutbox(ctx, 10, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(mails) != 1 || mails[0].Alert == nil || mails[0].Kind != tickets.KindAdminAlert {
		t.Fatalf("claimed %+v, want the alert", mails)
	}
	m := mails[0]
	if m.Alert.Reason != reason || m.Alert.MailboxID != mb.ID || m.Alert.URL != mb.URL || m.Ticket.Department.Slug != "soporte" ||
		m.AgentName != "Boss" || m.Token != "" || m.Locale != "es" {
		t.Errorf("claimed alert %+v (about %+v)", m, *m.Alert)
	}

	// A refresh that works clears the failure; the next failure alerts again.
	if _, err := s.RefreshMailboxTokens(ctx, mb.ID, func(tickets.SealedTokens) (tickets.SealedTokens, error) {
		return tickets.SealedTokens{Refresh: []byte("r9"), Access: []byte("a9"), Expiry: time.Now().Add(time.Hour)}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.MailboxOf(ctx, "soporte"); got.OAuthStatus.Error != "" || !got.OAuthStatus.AlertedAt.IsZero() {
		t.Errorf("after a good refresh: %+v", got.OAuthStatus)
	}
	if n, err := s.RecordMailboxAuthFailure(ctx, mb.ID, reason, true); err != nil || n != 1 {
		t.Errorf("failure after a recovery mailed %d admins (%v), want 1", n, err)
	}
	// A failure that is not the provider's refusal is recorded, unmailed.
	s2, _, _ := newStore(t, tickets.Options{})
	mb2 := authorizedMailbox(t, s2)
	if n, err := s2.RecordMailboxAuthFailure(ctx, mb2.ID, "token endpoint unreachable", false); err != nil || n != 0 {
		t.Errorf("unalerted failure: %d mailed, %v", n, err)
	}
}
