package oauth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/helpdeskgw/helpdesk/tickets"
)

// DeviceCode is what the person authorizing a mailbox is shown: where to
// go, and the code to enter there.
type DeviceCode struct {
	URL  string
	Code string
	// CompleteURL, when the provider gives one, carries the code already.
	CompleteURL string
	// ExpiresIn is how long the code is valid, in whole minutes (0 when
	// the provider does not say).
	ExpiresIn int
}

// Prompt is the person authorizing a mailbox, at a terminal.
type Prompt struct {
	// DeviceCode shows where to sign in and the code to enter there.
	DeviceCode func(DeviceCode)
	// OpenURL shows the address to open in a browser, to sign in there.
	// The browser is then sent back to the gateway on 127.0.0.1; when it
	// runs on another machine it cannot reach it, and the person pastes
	// the address it was sent to instead.
	OpenURL func(url string)
	// Pasted delivers what the person types.
	Pasted <-chan string
	// Browser asks for the browser flow even where a device code would
	// do (an organization may forbid device codes).
	Browser bool
}

// Authorize obtains tokens for the mailbox and stores them, replacing any
// earlier ones (after a revocation, or to seal them under a new key). With
// client credentials it asks for an app-only token; otherwise a person
// signs in, with a device code (RFC 8628) or in a browser (authorization
// code with PKCE, Google's only way to Gmail), and Authorize waits until
// they have, or ctx ends, or the code expires.
func (s *Sources) Authorize(ctx context.Context, mb tickets.Mailbox, prompt Prompt) (Token, error) {
	if mb.Auth != tickets.AuthOAuth2 {
		return Token{}, fmt.Errorf("mailbox of %s logs in with a password, not OAuth2", mb.Department.Slug)
	}
	if s.opts.Key == nil {
		return Token{}, fmt.Errorf("%s is not set: tokens could not be stored; generate a key with: openssl rand -base64 32", KeyVariable)
	}
	p, err := s.provider(mb)
	if err != nil {
		return Token{}, err
	}
	hctx := s.httpContext(ctx)
	var ot *oauth2.Token
	switch {
	case mb.OAuth.ClientCredentials:
		if ot, err = p.clientCredentials(hctx); err != nil {
			return Token{}, fmt.Errorf("OAuth2 client credentials grant: %w", describe(err))
		}
	case prompt.Browser || p.browserFirst():
		if ot, err = browserFlow(hctx, p, prompt); err != nil {
			return Token{}, err
		}
	default:
		if ot, err = deviceFlow(hctx, p, prompt); err != nil {
			return Token{}, err
		}
	}
	if !mb.OAuth.ClientCredentials && ot.RefreshToken == "" {
		return Token{}, errors.New("the provider issued no refresh token, so the authorization would end within the hour (Microsoft needs the offline_access scope)")
	}
	tok, sealed := s.seal(mb, ot)
	if err := s.opts.Store.AuthorizeMailbox(ctx, mb.ID, sealed); err != nil {
		return Token{}, err
	}
	// Whoever holds the mailbox next reads the new tokens: storing them
	// made a new version of its settings.
	s.forget(mb.ID)
	s.log.Info("OAuth2 mailbox authorized", "mailbox", mb.ID, "department", mb.Department.Slug, "expires", tok.Expiry)
	return tok, nil
}

// deviceFlow has the person enter a code on another device.
func deviceFlow(ctx context.Context, p *provider, prompt Prompt) (*oauth2.Token, error) {
	if p.config.Endpoint.DeviceAuthURL == "" {
		return nil, errors.New("the provider has no device authorization URL: give it with --device-url")
	}
	da, err := p.config.DeviceAuth(ctx)
	if err != nil {
		return nil, fmt.Errorf("OAuth2 device authorization: %w", describe(err))
	}
	code := DeviceCode{URL: da.VerificationURI, Code: da.UserCode, CompleteURL: da.VerificationURIComplete}
	if !da.Expiry.IsZero() {
		code.ExpiresIn = int(time.Until(da.Expiry).Round(time.Minute).Minutes())
	}
	prompt.DeviceCode(code)
	ot, err := p.config.DeviceAccessToken(ctx, da)
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return nil, errors.New("OAuth2 device authorization: the code expired before it was entered; run the command again")
		}
		return nil, fmt.Errorf("OAuth2 device authorization: %w", describe(err))
	}
	return ot, nil
}

// browserFlow has the person sign in in a browser, which the provider then
// sends back to a listener on 127.0.0.1 with a code (or whose address the
// person pastes, when the browser runs elsewhere). PKCE binds the code to
// this process: a code intercepted on its way back is worthless.
func browserFlow(ctx context.Context, p *provider, prompt Prompt) (*oauth2.Token, error) {
	if p.config.Endpoint.AuthURL == "" {
		return nil, errors.New("the provider has no authorization URL: give it with --auth-url")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for the browser's return: %w", err)
	}
	cfg := *p.config
	cfg.RedirectURL = "http://" + ln.Addr().String() + "/"
	verifier := oauth2.GenerateVerifier()
	var b [16]byte
	rand.Read(b[:]) //nolint:errcheck // never fails since Go 1.24
	state := base64.RawURLEncoding.EncodeToString(b[:])
	returned := make(chan url.Values, 1)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("state") != state {
			http.Error(w, "This is not the answer the helpdesk is waiting for.", http.StatusBadRequest)
			return
		}
		// Answered before the flow goes on: it stops this server when done.
		fmt.Fprintln(w, "The helpdesk has the answer; you may close this window.")
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		select {
		case returned <- r.URL.Query():
		default:
		}
	})}
	go srv.Serve(ln) //nolint:errcheck // ends with Shutdown
	defer func() {
		// The browser gets the end of its answer; one that hangs does not
		// hold the command up.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			srv.Close()
		}
	}()
	prompt.OpenURL(cfg.AuthCodeURL(state, oauth2.AccessTypeOffline, oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("prompt", "consent")))
	pasted := prompt.Pasted
	var answer url.Values
	for answer == nil {
		select {
		case answer = <-returned:
		case line, ok := <-pasted:
			if !ok {
				pasted = nil // nothing more to read; wait for the browser
				continue
			}
			u, err := url.Parse(strings.TrimSpace(line))
			if err != nil || u.Query().Get("state") != state {
				return nil, errors.New("the address pasted is not the one the browser was sent back to for this authorization; run the command again")
			}
			answer = u.Query()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if e := answer.Get("error"); e != "" {
		return nil, fmt.Errorf("OAuth2 authorization: %s", describe(&oauth2.RetrieveError{ErrorCode: e, ErrorDescription: answer.Get("error_description")}))
	}
	ot, err := cfg.Exchange(ctx, answer.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		return nil, fmt.Errorf("OAuth2 authorization: %w", describe(err))
	}
	return ot, nil
}

// describe words a provider's error without its answer's body.
func describe(err error) error {
	err = classify(err)
	var refusal *providerRefusal
	if errors.As(err, &refusal) {
		if refusal.code == "access_denied" {
			return errors.New("access_denied (the sign-in was declined)")
		}
		if refusal.code == "expired_token" {
			return errors.New("expired_token (the code expired before it was entered; run the command again)")
		}
	}
	return err
}
