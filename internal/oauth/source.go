package oauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/helpdeskgw/helpdesk/tickets"
)

// tokenStore is what the sources need of the ticket store.
type tokenStore interface {
	AuthorizeMailbox(ctx context.Context, id int64, t tickets.SealedTokens) error
	RefreshMailboxTokens(ctx context.Context, id int64, refresh func(tickets.SealedTokens) (tickets.SealedTokens, error)) (tickets.SealedTokens, error)
	RecordMailboxAuthFailure(ctx context.Context, id int64, reason string, alert bool) (int, error)
}

// Options configures Sources.
type Options struct {
	Store tokenStore
	// Key seals and opens the stored tokens; nil when HELPDESK_SECRET_KEY
	// is not set, which leaves OAuth2 mailboxes unusable.
	Key *Key
	// ResolveSecret reads a client secret reference (env:VAR, file:PATH).
	ResolveSecret func(ref string) (string, error)
	// HTTPClient talks to the providers. Default: one with a 30 s timeout.
	HTTPClient *http.Client
	Logger     *slog.Logger
	// Margin is how long before its expiry a token is renewed. Default:
	// 5 minutes (at most half of the token's lifetime).
	Margin time.Duration
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// Sources give each OAuth2 mailbox a valid access token, renewing it before
// it expires. One Sources serves a process: its pollers, its relay and its
// commands share the tokens it holds.
type Sources struct {
	opts Options
	log  *slog.Logger

	mu sync.Mutex // guards cache
	// cache holds the token of each mailbox, by its settings' version: a
	// mailbox authorized anew (a new version) reads its new tokens.
	cache map[cacheKey]Token
}

type cacheKey struct {
	mailbox int64
	version int
}

// forget drops what is cached of the mailbox.
func (s *Sources) forget(mailboxID int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.cache {
		if k.mailbox == mailboxID {
			delete(s.cache, k)
		}
	}
}

// retryRenewal is how soon a renewal that failed for want of an answer is
// tried again, while the current token lasts.
const retryRenewal = time.Minute

// Token is an access token.
type Token struct {
	Access string
	Expiry time.Time
	// RenewAt is when the token should be renewed: before Expiry by the
	// margin. A session logged in with it ends by then, and logs in again
	// with the next one.
	RenewAt time.Time
}

// New returns the sources.
func New(opts Options) *Sources {
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Margin <= 0 {
		opts.Margin = 5 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ResolveSecret == nil {
		opts.ResolveSecret = func(ref string) (string, error) { return "", fmt.Errorf("client secret %s: cannot be read here", ref) }
	}
	return &Sources{opts: opts, log: opts.Logger, cache: map[cacheKey]Token{}}
}

// labels bind each sealed token to its mailbox and kind.
func labels(mailboxID int64) (refresh, access string) {
	return fmt.Sprintf("mailbox %d refresh token", mailboxID), fmt.Sprintf("mailbox %d access token", mailboxID)
}

// Token returns a valid access token for the mailbox, renewed if it is due.
// refused, when set, is a token the server has just refused (revoked, or
// expired early): it is renewed rather than returned again.
//
// When the provider refuses the renewal (the refresh token was revoked or
// has expired), or the stored tokens cannot be opened, the mailbox is put
// in error and the admins are mailed, once: nothing but an admin running
// `helpdesk mailbox oauth` again will mend it.
func (s *Sources) Token(ctx context.Context, mb tickets.Mailbox, refused string) (Token, error) {
	if mb.Auth != tickets.AuthOAuth2 {
		return Token{}, fmt.Errorf("mailbox of %s logs in with a password, not OAuth2", mb.Department.Slug)
	}
	now := s.opts.Now()
	s.mu.Lock()
	cached, ok := s.cache[cacheKey{mb.ID, mb.Version}]
	s.mu.Unlock()
	if ok && cached.Access != refused && now.Before(cached.RenewAt) {
		return cached, nil
	}
	if s.opts.Key == nil {
		return Token{}, fmt.Errorf("%s is not set: the OAuth2 tokens of the mailbox cannot be read", KeyVariable)
	}
	var transient error
	var tok Token
	_, err := s.opts.Store.RefreshMailboxTokens(ctx, mb.ID, func(cur tickets.SealedTokens) (tickets.SealedTokens, error) {
		current, err := s.open(mb, cur)
		if err != nil {
			return cur, err
		}
		if current.Access != "" && current.Access != refused && now.Before(current.RenewAt) {
			tok = current // another process renewed it meanwhile
			return cur, nil
		}
		next, sealed, err := s.renew(ctx, mb, cur)
		if err != nil {
			var refusal *providerRefusal
			if !errors.As(err, &refusal) && current.Access != "" && current.Access != refused && now.Before(current.Expiry) {
				// The provider is unreachable, but the token still works:
				// use it, and try again in a minute (sessions logged in
				// with it end then, rather than at once).
				transient, tok = err, current
				tok.RenewAt = now.Add(retryRenewal)
				if tok.RenewAt.After(current.Expiry) {
					tok.RenewAt = current.Expiry
				}
				return cur, nil
			}
			return cur, err
		}
		tok = next
		return sealed, nil
	})
	if transient != nil {
		s.log.Warn("cannot renew the OAuth2 token yet; the current one is still valid", "mailbox", mb.ID,
			"department", mb.Department.Slug, "expires", tok.Expiry, "err", transient)
	}
	if err != nil {
		return Token{}, s.failed(ctx, mb, err)
	}
	s.mu.Lock()
	s.cache[cacheKey{mb.ID, mb.Version}] = tok
	s.mu.Unlock()
	return tok, nil
}

// open reads the stored tokens: the access token in the clear (""
// if there is none yet).
func (s *Sources) open(mb tickets.Mailbox, cur tickets.SealedTokens) (Token, error) {
	if cur.Access == nil && cur.Refresh == nil {
		if mb.OAuth.ClientCredentials {
			return Token{}, nil // the first token is just requested
		}
		return Token{}, tickets.ErrNotAuthorized
	}
	_, accessLabel := labels(mb.ID)
	access, err := s.opts.Key.Open(cur.Access, accessLabel)
	if err != nil {
		return Token{}, &unsealError{err}
	}
	return s.token(string(access), cur.Expiry, cur.Obtained), nil
}

// token dates an access token: it is renewed a margin before it expires,
// and at most half-way through its life.
func (s *Sources) token(access string, expiry, obtained time.Time) Token {
	margin := s.opts.Margin
	if life := expiry.Sub(obtained); !obtained.IsZero() && life > 0 && life/2 < margin {
		margin = life / 2
	}
	return Token{Access: access, Expiry: expiry, RenewAt: expiry.Add(-margin)}
}

// renew obtains a new access token from the provider and seals what is to
// be stored.
func (s *Sources) renew(ctx context.Context, mb tickets.Mailbox, cur tickets.SealedTokens) (Token, tickets.SealedTokens, error) {
	p, err := s.provider(mb)
	if err != nil {
		return Token{}, cur, err
	}
	refreshLabel, _ := labels(mb.ID)
	refreshToken := ""
	if !mb.OAuth.ClientCredentials {
		plain, err := s.opts.Key.Open(cur.Refresh, refreshLabel)
		if err != nil {
			return Token{}, cur, &unsealError{err}
		}
		refreshToken = string(plain)
	}
	ot, err := p.renew(s.httpContext(ctx), refreshToken)
	if err != nil {
		return Token{}, cur, classify(err)
	}
	tok, sealed := s.seal(mb, ot)
	s.log.Info("OAuth2 token renewed", "mailbox", mb.ID, "department", mb.Department.Slug, "expires", tok.Expiry,
		"refresh_token_rotated", ot.RefreshToken != "" && ot.RefreshToken != refreshToken)
	return tok, sealed, nil
}

// seal turns what the provider issued into the token to use and what is
// stored. A provider that gives no expiry is taken to mean an hour, the
// usual lifetime, so that the token is renewed in time anyway. (The
// library dates tokens by the wall clock, and so does this.)
func (s *Sources) seal(mb tickets.Mailbox, ot *oauth2.Token) (Token, tickets.SealedTokens) {
	expiry, obtained := ot.Expiry, time.Now()
	if ot.ExpiresIn > 0 && !expiry.IsZero() {
		obtained = expiry.Add(-time.Duration(ot.ExpiresIn) * time.Second)
	}
	if expiry.IsZero() {
		expiry = obtained.Add(time.Hour)
	}
	refreshLabel, accessLabel := labels(mb.ID)
	sealed := tickets.SealedTokens{Access: s.opts.Key.Seal([]byte(ot.AccessToken), accessLabel), Expiry: expiry, Obtained: obtained}
	if ot.RefreshToken != "" {
		sealed.Refresh = s.opts.Key.Seal([]byte(ot.RefreshToken), refreshLabel)
	}
	return s.token(ot.AccessToken, expiry, obtained), sealed
}

func (s *Sources) provider(mb tickets.Mailbox) (*provider, error) {
	secret := ""
	if ref := mb.OAuth.ClientSecretRef; ref != "" {
		var err error
		if secret, err = s.opts.ResolveSecret(ref); err != nil {
			return nil, fmt.Errorf("OAuth2 client secret: %w", err)
		}
	}
	return newProvider(mb.OAuth, secret)
}

func (s *Sources) httpContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, s.opts.HTTPClient)
}

// failed records a failure that needs an admin, and words every failure
// so that the admin knows what to do.
func (s *Sources) failed(ctx context.Context, mb tickets.Mailbox, err error) error {
	again := "run helpdesk mailbox oauth --department " + mb.Department.Slug
	var refusal *providerRefusal
	var unseal *unsealError
	var reason string
	switch {
	case errors.Is(err, tickets.ErrNotAuthorized):
		return fmt.Errorf("OAuth2 mailbox not authorized yet: %s: %w", again, err)
	case errors.As(err, &refusal) && mb.OAuth.ClientCredentials:
		reason = fmt.Sprintf("OAuth2 token request failed: %s; check the client ID, the client secret and the application's permissions", refusal)
	case errors.As(err, &refusal):
		reason = fmt.Sprintf("OAuth2 refresh failed: %s; %s", refusal, again)
	case errors.As(err, &unseal):
		reason = fmt.Sprintf("OAuth2 tokens unreadable: %s; %s", unseal, again)
	default:
		return fmt.Errorf("OAuth2 token renewal: %w", err)
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	mailed, rerr := s.opts.Store.RecordMailboxAuthFailure(rctx, mb.ID, reason, true)
	if rerr != nil {
		s.log.Error("cannot record the OAuth2 failure", "mailbox", mb.ID, "err", rerr)
	}
	s.log.Error("OAuth2 authorization of the mailbox failed", "mailbox", mb.ID, "department", mb.Department.Slug,
		"reason", reason, "admins_alerted", mailed)
	s.forget(mb.ID)
	return &AuthorizationError{Reason: reason, err: err}
}

// AuthorizationError is a mailbox whose tokens cannot be renewed until an
// admin authorizes it again: retrying soon will not help.
type AuthorizationError struct {
	Reason string
	err    error
}

func (e *AuthorizationError) Error() string { return e.Reason }
func (e *AuthorizationError) Unwrap() error { return e.err }

// providerRefusal is the provider answering a token request with an error
// of the client's (4xx): the grant is refused, and asking again will not
// change that. Outages (5xx, no answer) are not refusals.
type providerRefusal struct {
	code, description string
	status            int
}

func (r *providerRefusal) Error() string {
	s := r.code
	if s == "" {
		s = fmt.Sprintf("HTTP status %d", r.status)
	}
	if d := explain(r.code); d != "" {
		s += " (" + d + ")"
	} else if r.description != "" {
		s += " (" + oneLine(r.description) + ")"
	}
	return s
}

// explain says in words what the usual refusals mean.
func explain(code string) string {
	switch code {
	case "invalid_grant":
		return "refresh token revoked or expired"
	case "invalid_client", "unauthorized_client":
		return "the provider does not accept the client ID or secret"
	case "invalid_scope":
		return "the provider refuses the scopes"
	}
	return ""
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// classify tells refusals from outages. The provider's answer body is left
// out: it is no business of logs.
func classify(err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return err
	}
	status := 0
	if re.Response != nil {
		status = re.Response.StatusCode
	}
	if status >= 500 || (status == 0 && re.ErrorCode == "") {
		return fmt.Errorf("token endpoint answered HTTP %d", status)
	}
	return &providerRefusal{code: re.ErrorCode, description: re.ErrorDescription, status: status}
}

type unsealError struct{ err error }

func (e *unsealError) Error() string { return e.err.Error() }
func (e *unsealError) Unwrap() error { return e.err }
