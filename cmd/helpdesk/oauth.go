package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/helpdeskgw/helpdesk/internal/oauth"
	"github.com/helpdeskgw/helpdesk/mailin"
	"github.com/helpdeskgw/helpdesk/tickets"
)

// tokenSources returns the process's OAuth2 token sources, sealing tokens
// with the key given (HELPDESK_SECRET_KEY). Without a key they still
// exist, and say what is missing when an OAuth2 mailbox needs them.
func tokenSources(store *tickets.Store, secretKey string, lookupEnv func(string) (string, bool), log *slog.Logger) (*oauth.Sources, error) {
	var key *oauth.Key
	if secretKey != "" {
		var err error
		if key, err = oauth.ParseKey(secretKey); err != nil {
			return nil, err
		}
	}
	return oauth.New(oauth.Options{Store: store, Key: key, Logger: log,
		ResolveSecret: func(ref string) (string, error) { return mailin.ResolveClientSecret(ref, lookupEnv) }}), nil
}

// cliTokenSources are the token sources of a command, with the key and
// client secrets from its environment.
func cliTokenSources(s *tickets.Store, environ []string) (*oauth.Sources, error) {
	lookupEnv := lookupIn(environ)
	key, _ := lookupEnv(oauth.KeyVariable)
	return tokenSources(s, key, lookupEnv, nil)
}

// relayTokens lends the relay the OAuth2 tokens of a department's mailbox.
type relayTokens struct {
	store   *tickets.Store
	sources *oauth.Sources
}

func (r relayTokens) RelayToken(ctx context.Context, department, refused string) (string, error) {
	mb, err := r.store.MailboxOf(ctx, department)
	if err != nil {
		return "", err
	}
	if mb.Auth != tickets.AuthOAuth2 {
		return "", fmt.Errorf("the mailbox of %s logs in with a password: the relay has no OAuth2 tokens to use", department)
	}
	tok, err := r.sources.Token(ctx, mb, refused)
	return tok.Access, err
}

// cmdMailboxOAuth authorizes an OAuth2 mailbox: a person signs in with a
// code on another device, or in a browser; or the client credentials grant
// gets an app-only token. Then it logs in once to check.
func cmdMailboxOAuth(ctx context.Context, args, environ []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("mailbox oauth", flag.ContinueOnError)
	dept := fs.String("department", "", "slug of the department whose mailbox to authorize")
	browser := fs.Bool("browser", false, "sign in in a browser even where a device code would do")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dept == "" {
		return usageError{"mailbox oauth: --department is required"}
	}
	return withStore(ctx, environ, func(s *tickets.Store) error {
		mb, err := s.MailboxOf(ctx, *dept)
		if err != nil {
			return err
		}
		if mb.Auth != tickets.AuthOAuth2 {
			return fmt.Errorf("the mailbox of %s logs in with a password; attach it with --oauth to use OAuth2", *dept)
		}
		sources, err := cliTokenSources(s, environ)
		if err != nil {
			return err
		}
		pctx, cancel := context.WithCancel(ctx)
		defer cancel()
		return authorize(ctx, s, sources, mb, oauth.Prompt{Browser: *browser, Pasted: lines(pctx, stdin)}, environ, stdout)
	})
}

// lines delivers what is typed, line by line, until the input or ctx ends.
func lines(ctx context.Context, r io.Reader) <-chan string {
	out := make(chan string)
	go func() {
		defer close(out)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			select {
			case out <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// authorize obtains and stores the mailbox's tokens, prompting the person
// at the terminal, then logs in with them to check.
func authorize(ctx context.Context, s *tickets.Store, sources *oauth.Sources, mb tickets.Mailbox, prompt oauth.Prompt,
	environ []string, stdout io.Writer) error {
	user := "the mailbox"
	if addr, err := mailin.ParseMailboxURL(mb.URL); err == nil {
		user = addr.User
	}
	prompt.DeviceCode = func(c oauth.DeviceCode) {
		fmt.Fprintf(stdout, "To let the helpdesk read the mail of %s, sign in as %s at\n\n    %s\n\nand enter the code\n\n    %s\n\n",
			mb.Department.Slug, user, c.URL, c.Code)
		if c.CompleteURL != "" {
			fmt.Fprintf(stdout, "(or open %s, which carries the code)\n", c.CompleteURL)
		}
		if c.ExpiresIn > 0 {
			fmt.Fprintf(stdout, "The code is valid for %d minutes. Waiting…\n", c.ExpiresIn)
		} else {
			fmt.Fprintln(stdout, "Waiting…")
		}
	}
	prompt.OpenURL = func(url string) {
		fmt.Fprintf(stdout, "To let the helpdesk read the mail of %s, open this address in a browser and sign in as %s:\n\n    %s\n\n"+
			"The browser is then sent back to this machine (http://127.0.0.1:…). If it runs on another machine, that\n"+
			"page does not load: copy its address from the browser's address bar and paste it here.\nWaiting…\n",
			mb.Department.Slug, user, url)
	}
	tok, err := sources.Authorize(ctx, mb, prompt)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "authorized: tokens stored, sealed with %s; running instances log in with them within seconds\n", oauth.KeyVariable)
	if mb, err = s.MailboxOf(ctx, mb.Department.Slug); err != nil {
		return err
	}
	r, err := checkMailbox(ctx, mb, environ, sources)
	if err != nil {
		return fmt.Errorf("the tokens are stored, but logging in with them failed: %w", err)
	}
	printReport(stdout, r)
	fmt.Fprintf(stdout, "access token valid until %s; it is renewed before then\n", tok.Expiry.Round(time.Second).Format(time.RFC3339))
	return nil
}

// oauthFlags are the flags of `mailbox add` that attach an OAuth2 mailbox.
type oauthFlags struct {
	provider, tenant, clientID                       string
	secretEnv, secretFile, tokenURL, devURL, authURL string
	clientCredentials                                bool
	scopes                                           stringList
}

func (o *oauthFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&o.provider, "oauth", "", "log in with OAuth2 instead of a password: microsoft, google or generic")
	fs.StringVar(&o.tenant, "tenant", "", "Microsoft directory (tenant ID or domain; default organizations)")
	fs.StringVar(&o.clientID, "client-id", "", "OAuth2 client (application) ID registered with the provider")
	fs.StringVar(&o.secretEnv, "client-secret-env", "", "variable holding the client secret (in the gateway's environment too)")
	fs.StringVar(&o.secretFile, "client-secret-file", "", "file holding the client secret")
	fs.BoolVar(&o.clientCredentials, "client-credentials", false, "app-only access with the client credentials grant (Microsoft, generic)")
	fs.StringVar(&o.tokenURL, "token-url", "", "token endpoint of a generic provider")
	fs.StringVar(&o.devURL, "device-url", "", "device authorization endpoint of a generic provider")
	fs.StringVar(&o.authURL, "auth-url", "", "authorization endpoint of a generic provider, for signing in in a browser")
	fs.Var(&o.scopes, "scope", "scope to ask for, instead of the provider's defaults (repeat for several)")
}

// settings returns the mailbox's OAuth2 settings; ok is false without
// --oauth, when none of the other flags may be given either.
func (o *oauthFlags) settings() (tickets.OAuthSettings, bool, error) {
	if o.provider == "" {
		if o.tenant != "" || o.clientID != "" || o.secretEnv != "" || o.secretFile != "" || o.clientCredentials ||
			o.tokenURL != "" || o.devURL != "" || o.authURL != "" || len(o.scopes) > 0 {
			return tickets.OAuthSettings{}, false, errors.New("the OAuth2 flags go with --oauth microsoft|google|generic")
		}
		return tickets.OAuthSettings{}, false, nil
	}
	secretRef := ""
	switch {
	case o.secretEnv != "" && o.secretFile != "":
		return tickets.OAuthSettings{}, true, errors.New("give the client secret with --client-secret-env or --client-secret-file, not both")
	case o.secretEnv != "":
		secretRef = "env:" + o.secretEnv
	case o.secretFile != "":
		secretRef = "file:" + o.secretFile
	}
	return tickets.OAuthSettings{Provider: tickets.OAuthProvider(o.provider), Tenant: o.tenant, ClientID: o.clientID,
		ClientSecretRef: secretRef, ClientCredentials: o.clientCredentials, TokenURL: o.tokenURL, DeviceURL: o.devURL,
		AuthURL: o.authURL, Scopes: o.scopes}, true, nil
}

// authSummary says in `mailbox list` how a mailbox logs in.
func authSummary(m tickets.Mailbox) string {
	if m.Auth != tickets.AuthOAuth2 {
		return "password"
	}
	s := "oauth2/" + string(m.OAuth.Provider)
	if m.OAuth.ClientCredentials {
		s += " app-only"
	}
	if !m.OAuthStatus.Authorized {
		s += " (not authorized)"
	}
	return s
}
