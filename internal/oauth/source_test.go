package oauth

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/helpdeskgw/helpdesk/internal/idp"
	"github.com/helpdeskgw/helpdesk/tickets"
)

// memStore keeps one mailbox's tokens as the ticket store does: renewals
// one at a time, failures recorded, the admins alerted once.
type memStore struct {
	mu       sync.Mutex
	tokens   tickets.SealedTokens
	failures []string
	alerts   int
	alerted  bool
}

func (m *memStore) AuthorizeMailbox(_ context.Context, _ int64, t tickets.SealedTokens) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tokens, m.alerted = t, false
	return nil
}

func (m *memStore) RefreshMailboxTokens(_ context.Context, _ int64, refresh func(tickets.SealedTokens) (tickets.SealedTokens, error)) (tickets.SealedTokens, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	next, err := refresh(m.tokens)
	if err != nil {
		return next, err
	}
	if string(next.Access) != string(m.tokens.Access) {
		m.tokens, m.alerted = next, false
	}
	return next, nil
}

func (m *memStore) RecordMailboxAuthFailure(_ context.Context, _ int64, reason string, alert bool) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failures = append(m.failures, reason)
	if alert && !m.alerted {
		m.alerted = true
		m.alerts++
		return 1, nil
	}
	return 0, nil
}

func (m *memStore) state() (tickets.SealedTokens, []string, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.tokens, append([]string(nil), m.failures...), m.alerts
}

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

type fixture struct {
	idp     *idp.Provider
	store   *memStore
	clock   *clock
	key     *Key
	sources *Sources
	mb      tickets.Mailbox
}

func newFixture(t *testing.T, opts idp.Options) *fixture {
	t.Helper()
	if opts.ClientID == "" {
		opts.ClientID = "helpdesk"
	}
	p := idp.Start(opts)
	t.Cleanup(p.Close)
	key, _ := newKey(t)
	f := &fixture{idp: p, store: &memStore{}, clock: &clock{now: time.Now()}, key: key}
	f.mb = tickets.Mailbox{ID: 7, Department: tickets.Department{Slug: "soporte"}, Auth: tickets.AuthOAuth2,
		OAuth: tickets.OAuthSettings{Provider: tickets.ProviderGeneric, ClientID: opts.ClientID, TokenURL: p.TokenURL(), DeviceURL: p.DeviceURL()}}
	f.sources = f.newSources(key)
	return f
}

func (f *fixture) newSources(key *Key) *Sources {
	return New(Options{Store: f.store, Key: key, Now: f.clock.Now,
		ResolveSecret: func(ref string) (string, error) {
			if ref == "env:CLIENT_SECRET" {
				return "the secret", nil
			}
			return "", errors.New("no such secret")
		}})
}

// authorize runs the device flow, the test entering the code as the
// person would.
func (f *fixture) authorize(t *testing.T) Token {
	t.Helper()
	var shown DeviceCode
	tok, err := f.sources.Authorize(context.Background(), f.mb, Prompt{DeviceCode: func(c DeviceCode) {
		shown = c
		if !f.idp.Approve(c.Code, "support") {
			t.Errorf("code %q not pending at the provider", c.Code)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(shown.URL, "http://127.0.0.1") || shown.ExpiresIn != 10 {
		t.Errorf("shown %+v", shown)
	}
	return tok
}

// seed stores tokens the provider issued to support directly, as a
// finished authorization would, and returns the access token.
func (f *fixture) seed(t *testing.T) Token {
	t.Helper()
	access, refresh := f.idp.Issue("support")
	tok, sealed := f.sources.seal(f.mb, &oauth2.Token{AccessToken: access, RefreshToken: refresh,
		Expiry: time.Now().Add(time.Hour), ExpiresIn: 3600})
	if err := f.store.AuthorizeMailbox(context.Background(), f.mb.ID, sealed); err != nil {
		t.Fatal(err)
	}
	return tok
}

// introspect asks the provider about a token, as Dovecot does.
func (f *fixture) introspect(t *testing.T, token string) bool {
	t.Helper()
	resp, err := http.PostForm(f.idp.IntrospectionURL(), url.Values{"token": {token}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(string(body), `"active":true`)
}

func TestAuthorizeWithTheDeviceFlowStoresSealedTokens(t *testing.T) {
	f := newFixture(t, idp.Options{Rotate: true})
	tok := f.authorize(t)
	if !f.introspect(t, tok.Access) {
		t.Fatal("the access token is not active at the provider")
	}
	stored, _, _ := f.store.state()
	refreshLabel, accessLabel := labels(f.mb.ID)
	rt, err := f.key.Open(stored.Refresh, refreshLabel)
	if err != nil {
		t.Fatal(err)
	}
	if live := f.idp.RefreshTokens("support"); len(live) != 1 || live[0] != string(rt) {
		t.Errorf("stored refresh token is not the provider's live one")
	}
	at, err := f.key.Open(stored.Access, accessLabel)
	if err != nil || string(at) != tok.Access {
		t.Errorf("stored access token does not open to the one returned (%v)", err)
	}
	if f.idp.Count("device_code") != 1 {
		t.Errorf("%d device code grants", f.idp.Count("device_code"))
	}
	if !tok.RenewAt.Equal(tok.Expiry.Add(-5 * time.Minute)) {
		t.Errorf("renew at %v, want 5 minutes before %v", tok.RenewAt, tok.Expiry)
	}
}

func TestAuthorizeRefusedOrWithoutRefreshToken(t *testing.T) {
	f := newFixture(t, idp.Options{})
	// The person never enters the code and the context ends: nothing is
	// stored.
	ctx, cancel := context.WithCancel(context.Background())
	_, err := f.sources.Authorize(ctx, f.mb, Prompt{DeviceCode: func(DeviceCode) { cancel() }})
	if err == nil {
		t.Fatal("authorized without the code entered")
	}
	if stored, _, _ := f.store.state(); stored.Access != nil {
		t.Error("tokens stored after a failed authorization")
	}
	// A wrong client ID is refused by the device endpoint.
	bad := f.mb
	bad.OAuth.ClientID = "stranger"
	if _, err := f.sources.Authorize(context.Background(), bad, Prompt{DeviceCode: func(DeviceCode) {}}); err == nil || !strings.Contains(err.Error(), "invalid_client") {
		t.Errorf("wrong client: %v", err)
	}
}

func TestTokenIsRenewedBeforeItExpiresAndRotationKept(t *testing.T) {
	f := newFixture(t, idp.Options{Rotate: true})
	first := f.seed(t)
	ctx := context.Background()

	f.clock.Set(first.RenewAt.Add(-time.Second))
	tok, err := f.sources.Token(ctx, f.mb, "")
	if err != nil || tok.Access != first.Access || f.idp.Count("refresh_token") != 0 {
		t.Fatalf("before the margin: renewed=%v refreshes=%d err=%v", tok.Access != first.Access, f.idp.Count("refresh_token"), err)
	}
	oldRefresh := f.idp.RefreshTokens("support")

	f.clock.Set(first.RenewAt)
	tok, err = f.sources.Token(ctx, f.mb, "")
	if err != nil {
		t.Fatal(err)
	}
	if tok.Access == first.Access || f.idp.Count("refresh_token") != 1 || !f.introspect(t, tok.Access) {
		t.Fatalf("at the margin: renewed=%v refreshes=%d", tok.Access != first.Access, f.idp.Count("refresh_token"))
	}
	// The provider rotated the refresh token: the stored one is the new,
	// live one, and the old one is dead.
	stored, _, _ := f.store.state()
	refreshLabel, _ := labels(f.mb.ID)
	rt, _ := f.key.Open(stored.Refresh, refreshLabel)
	live := f.idp.RefreshTokens("support")
	if len(live) != 1 || live[0] != string(rt) || live[0] == oldRefresh[0] {
		t.Errorf("stored refresh token is not the rotated one")
	}
	// Another process (new Sources, same store) uses the renewed token
	// without renewing it again.
	again, err := f.newSources(f.key).Token(ctx, f.mb, "")
	if err != nil || again.Access != tok.Access || f.idp.Count("refresh_token") != 1 {
		t.Errorf("second process: same token %v, refreshes %d, %v", again.Access == tok.Access, f.idp.Count("refresh_token"), err)
	}
}

func TestRefusedTokenIsRenewedAtOnce(t *testing.T) {
	f := newFixture(t, idp.Options{})
	first := f.seed(t)
	f.idp.ExpireAccessTokens()
	tok, err := f.sources.Token(context.Background(), f.mb, first.Access)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Access == first.Access || !f.introspect(t, tok.Access) {
		t.Error("the refused token was returned again, or its successor is not active")
	}
	// Without rotation the provider keeps the refresh token, and so do we.
	if stored, _, _ := f.store.state(); stored.Refresh == nil || len(f.idp.RefreshTokens("support")) != 1 {
		t.Error("the refresh token was lost when the provider did not rotate it")
	}
}

func TestRevokedRefreshTokenAlertsOnce(t *testing.T) {
	f := newFixture(t, idp.Options{Rotate: true})
	first := f.seed(t)
	f.idp.Revoke("support")
	f.clock.Set(first.RenewAt)
	const want = "OAuth2 refresh failed: invalid_grant (refresh token revoked or expired); run helpdesk mailbox oauth --department soporte"
	for range 3 {
		_, err := f.sources.Token(context.Background(), f.mb, "")
		var authErr *AuthorizationError
		if !errors.As(err, &authErr) || err.Error() != want {
			t.Fatalf("error %v, want an AuthorizationError %q", err, want)
		}
	}
	_, failures, alerts := f.store.state()
	if len(failures) != 3 || failures[0] != want || alerts != 1 {
		t.Errorf("failures %q, alerts %d: want 3 recorded, 1 alert", failures, alerts)
	}
	// Authorizing again mends it.
	f.seed(t)
	if _, err := f.sources.Token(context.Background(), f.mb, ""); err != nil {
		t.Errorf("after authorizing again: %v", err)
	}
}

func TestProviderOutageKeepsTheValidToken(t *testing.T) {
	f := newFixture(t, idp.Options{})
	first := f.seed(t)
	f.idp.Close()
	f.clock.Set(first.RenewAt.Add(time.Second))
	tok, err := f.sources.Token(context.Background(), f.mb, "")
	if err != nil || tok.Access != first.Access {
		t.Fatalf("during an outage before expiry: same token %v, %v", tok.Access == first.Access, err)
	}
	// Sessions logged in with it last a minute before trying again, not
	// a moment.
	if want := first.RenewAt.Add(time.Second + time.Minute); !tok.RenewAt.Equal(want) {
		t.Errorf("renew at %v, want a minute later, %v", tok.RenewAt, want)
	}
	f.clock.Set(first.Expiry.Add(time.Second))
	_, err = f.sources.Token(context.Background(), f.mb, "")
	var authErr *AuthorizationError
	if err == nil || errors.As(err, &authErr) {
		t.Fatalf("after expiry during an outage: %v, want a plain error", err)
	}
	if _, failures, alerts := f.store.state(); len(failures) != 0 || alerts != 0 {
		t.Errorf("an outage recorded %q and alerted %d times", failures, alerts)
	}
}

func TestChangedKeyAlerts(t *testing.T) {
	f := newFixture(t, idp.Options{})
	first := f.seed(t)
	other, _ := newKey(t)
	f.clock.Set(first.RenewAt)
	_, err := f.newSources(other).Token(context.Background(), f.mb, "")
	var authErr *AuthorizationError
	if !errors.As(err, &authErr) || !strings.Contains(err.Error(), "HELPDESK_SECRET_KEY changed?") ||
		!strings.HasSuffix(err.Error(), "run helpdesk mailbox oauth --department soporte") {
		t.Fatalf("error %v", err)
	}
	if _, _, alerts := f.store.state(); alerts != 1 {
		t.Errorf("%d alerts", alerts)
	}
	if _, err := f.newSources(nil).Token(context.Background(), f.mb, ""); err == nil || !strings.Contains(err.Error(), "HELPDESK_SECRET_KEY is not set") {
		t.Errorf("without a key: %v", err)
	}
}

func TestNotAuthorizedYet(t *testing.T) {
	f := newFixture(t, idp.Options{})
	_, err := f.sources.Token(context.Background(), f.mb, "")
	if !errors.Is(err, tickets.ErrNotAuthorized) || !strings.Contains(err.Error(), "run helpdesk mailbox oauth --department soporte") {
		t.Errorf("error %v", err)
	}
	if _, failures, _ := f.store.state(); len(failures) != 0 {
		t.Errorf("recorded %q", failures)
	}
}

func TestClientCredentials(t *testing.T) {
	f := newFixture(t, idp.Options{ClientSecret: "the secret", AppUser: "support"})
	f.mb.OAuth.ClientCredentials = true
	f.mb.OAuth.ClientSecretRef = "env:CLIENT_SECRET"
	tok, err := f.sources.Token(context.Background(), f.mb, "")
	if err != nil {
		t.Fatal(err)
	}
	if !f.introspect(t, tok.Access) || f.idp.Count("client_credentials") != 1 {
		t.Errorf("app-only token active %v, grants %d", f.introspect(t, tok.Access), f.idp.Count("client_credentials"))
	}
	if stored, _, _ := f.store.state(); stored.Refresh != nil || stored.Access == nil {
		t.Errorf("stored %+v: want an access token and no refresh token", stored)
	}
	f.clock.Set(tok.RenewAt)
	if next, err := f.sources.Token(context.Background(), f.mb, ""); err != nil || next.Access == tok.Access {
		t.Errorf("renewal: %v", err)
	}
}

func TestClientCredentialsRefused(t *testing.T) {
	for _, tc := range []struct {
		name, secretRef, want string
		alerted               int
	}{
		{"unreadable secret", "env:OTHER", "OAuth2 client secret: no such secret", 0},
		{"wrong secret", "env:CLIENT_SECRET", "OAuth2 token request failed: invalid_client (the provider does not accept the client ID or secret)", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, idp.Options{ClientSecret: "another secret", AppUser: "support"})
			f.mb.OAuth.ClientCredentials = true
			f.mb.OAuth.ClientSecretRef = tc.secretRef
			_, err := f.sources.Token(context.Background(), f.mb, "")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
			if _, _, alerts := f.store.state(); alerts != tc.alerted {
				t.Errorf("%d alerts, want %d", alerts, tc.alerted)
			}
		})
	}
}

func TestShortLivedTokensRenewHalfWay(t *testing.T) {
	f := newFixture(t, idp.Options{AccessTokenLifetime: 4 * time.Second})
	tok := f.authorize(t)
	if got := tok.Expiry.Sub(tok.RenewAt); got != 2*time.Second {
		t.Errorf("renewed %v before expiry, want half of the 4 s lifetime", got)
	}
}

// A mailbox authorized again (its settings' version moves on) logs in with
// the new tokens at once, not with those cached from before.
func TestNewAuthorizationReplacesTheCachedToken(t *testing.T) {
	f := newFixture(t, idp.Options{})
	f.seed(t)
	ctx := context.Background()
	before, err := f.sources.Token(ctx, f.mb, "")
	if err != nil {
		t.Fatal(err)
	}
	again := f.seed(t)
	f.mb.Version++
	after, err := f.sources.Token(ctx, f.mb, "")
	if err != nil || after.Access != again.Access || after.Access == before.Access {
		t.Errorf("after a new authorization: new token %v, %v", after.Access == again.Access, err)
	}
}

// A person signs in in a browser: on this machine, the browser comes back
// to the gateway by itself; on another, the person pastes the address it
// was sent to. PKCE ties the code to the authorization that asked for it.
func TestAuthorizeInABrowser(t *testing.T) {
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct {
		name   string
		signIn string
		// browse plays the browser, and what is pasted.
		browse func(t *testing.T, url string, paste chan<- string)
		want   string // in the error; "" for success
	}{
		{"same machine", "support", func(t *testing.T, url string, _ chan<- string) {
			resp, err := http.Get(url)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
		}, ""},
		{"another machine", "support", func(t *testing.T, url string, paste chan<- string) {
			resp, err := noRedirect.Get(url)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			paste <- "  " + resp.Header.Get("Location") + "\n"
		}, ""},
		{"declined", "", func(t *testing.T, url string, _ chan<- string) {
			resp, err := http.Get(url)
			if err == nil {
				resp.Body.Close()
			}
		}, "access_denied"},
		{"wrong address pasted", "support", func(_ *testing.T, _ string, paste chan<- string) {
			paste <- "http://127.0.0.1:1/?code=x&state=y"
		}, "not the one the browser was sent back to"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, idp.Options{})
			f.mb.OAuth.DeviceURL, f.mb.OAuth.AuthURL = "", f.idp.AuthURL()
			f.idp.SignIn(tc.signIn)
			paste := make(chan string, 1)
			var browsing sync.WaitGroup
			defer browsing.Wait()
			tok, err := f.sources.Authorize(context.Background(), f.mb, Prompt{Pasted: paste, OpenURL: func(url string) {
				browsing.Go(func() { tc.browse(t, url, paste) })
			}})
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("error %v, want %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !f.introspect(t, tok.Access) || f.idp.Count("authorization_code") != 1 || len(f.idp.RefreshTokens("support")) != 1 {
				t.Errorf("token active %v, code grants %d", f.introspect(t, tok.Access), f.idp.Count("authorization_code"))
			}
		})
	}
}
