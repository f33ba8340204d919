package oauth

import (
	"context"
	"fmt"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"golang.org/x/oauth2/endpoints"

	"github.com/helpdeskgw/helpdesk/tickets"
)

// Scopes the presets ask for unless a mailbox names its own.
var (
	// Delegated access to IMAP and SMTP of the person's mailbox; without
	// offline_access Microsoft issues no refresh token.
	microsoftScopes = []string{"https://outlook.office.com/IMAP.AccessAsUser.All",
		"https://outlook.office.com/SMTP.Send", "offline_access"}
	// App-only access (client credentials): whatever the application was
	// granted, which for IMAP is IMAP.AccessAsApp.
	microsoftAppScopes = []string{"https://outlook.office365.com/.default"}
	// IMAP, POP and SMTP of Gmail take this one scope.
	googleScopes = []string{"https://mail.google.com/"}
)

// DefaultScopes returns the scopes a provider's preset asks for; a generic
// provider has none.
func DefaultScopes(p tickets.OAuthProvider, clientCredentials bool) []string {
	switch {
	case p == tickets.ProviderMicrosoft && clientCredentials:
		return microsoftAppScopes
	case p == tickets.ProviderMicrosoft:
		return microsoftScopes
	case p == tickets.ProviderGoogle:
		return googleScopes
	}
	return nil
}

// provider is a mailbox's OAuth2 client, ready to talk to its provider.
type provider struct {
	settings tickets.OAuthSettings
	config   *oauth2.Config
}

// newProvider builds the client of settings, with the client secret
// already read ("" for a public client).
func newProvider(s tickets.OAuthSettings, clientSecret string) (*provider, error) {
	cfg := &oauth2.Config{ClientID: s.ClientID, ClientSecret: clientSecret, Scopes: s.Scopes}
	switch s.Provider {
	case tickets.ProviderMicrosoft:
		tenant := s.Tenant
		if tenant == "" {
			// Work and school accounts: IMAP with OAuth2 is Exchange
			// Online's, which personal accounts do not reach this way.
			tenant = "organizations"
		}
		cfg.Endpoint = endpoints.AzureAD(tenant)
		cfg.Endpoint.AuthStyle = oauth2.AuthStyleInParams
	case tickets.ProviderGoogle:
		cfg.Endpoint = endpoints.Google
		cfg.Endpoint.AuthStyle = oauth2.AuthStyleInParams
	case tickets.ProviderGeneric:
		cfg.Endpoint = oauth2.Endpoint{TokenURL: s.TokenURL, DeviceAuthURL: s.DeviceURL, AuthURL: s.AuthURL}
	default:
		return nil, fmt.Errorf("OAuth2 provider %q: want microsoft, google or generic", s.Provider)
	}
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = DefaultScopes(s.Provider, s.ClientCredentials)
	}
	return &provider{settings: s, config: cfg}, nil
}

// browserFirst reports whether a person authorizes in a browser rather than
// with a device code: Google grants Gmail's scope to browsers only, and a
// generic provider may have no device authorization endpoint.
func (p *provider) browserFirst() bool {
	return p.settings.Provider == tickets.ProviderGoogle || p.config.Endpoint.DeviceAuthURL == ""
}

// clientCredentials obtains an app-only token.
func (p *provider) clientCredentials(ctx context.Context) (*oauth2.Token, error) {
	cc := clientcredentials.Config{ClientID: p.config.ClientID, ClientSecret: p.config.ClientSecret,
		TokenURL: p.config.Endpoint.TokenURL, Scopes: p.config.Scopes, AuthStyle: p.config.Endpoint.AuthStyle}
	return cc.Token(ctx)
}

// refresh redeems a refresh token. The token returned carries the refresh
// token to keep: the provider's new one when it rotates them, the same one
// otherwise.
func (p *provider) refresh(ctx context.Context, refreshToken string) (*oauth2.Token, error) {
	return p.config.TokenSource(ctx, &oauth2.Token{RefreshToken: refreshToken}).Token()
}

// renew obtains a new access token: by the client credentials grant, or
// with the refresh token.
func (p *provider) renew(ctx context.Context, refreshToken string) (*oauth2.Token, error) {
	if p.settings.ClientCredentials {
		return p.clientCredentials(ctx)
	}
	return p.refresh(ctx, refreshToken)
}
