// Package idp is a small OAuth2 identity provider for tests, served on
// loopback: a token endpoint (refresh tokens, rotated on use if asked,
// revocable; the device code, authorization code with PKCE and client
// credentials grants), a device authorization endpoint (RFC 8628), an
// authorization endpoint where a browser signs in, and a token
// introspection endpoint (RFC 7662) for servers such as Dovecot to check
// the access tokens they are given. The test plays the person who signs
// in, and the provider's admin who revokes.
package idp

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Options configures the provider.
type Options struct {
	// ClientID is the one client the provider knows.
	ClientID string
	// ClientSecret, when set, must come with every token request (a
	// confidential client); clients without it are refused.
	ClientSecret string
	// AppUser is whose mail a client credentials token opens.
	AppUser string
	// AccessTokenLifetime is how long access tokens last. Default: 1h.
	AccessTokenLifetime time.Duration
	// Rotate issues a new refresh token with every refresh and retires
	// the one used, as Microsoft does for some clients.
	Rotate bool
}

// Provider is a running identity provider.
type Provider struct {
	srv  *httptest.Server
	opts Options

	mu      sync.Mutex
	access  map[string]*grant // access token → grant
	refresh map[string]string // live refresh token → user
	devices map[string]*device
	codes   map[string]*authCode
	// browserUser is who the browser that comes to sign in is.
	browserUser string
	counts      map[string]int
}

type authCode struct {
	user, redirectURI, challenge string
}

type grant struct {
	user    string
	expires time.Time
}

type device struct {
	userCode string
	user     string // set when approved
	denied   bool
	expires  time.Time
}

// Start serves a provider on 127.0.0.1 until Close.
func Start(opts Options) *Provider {
	if opts.AccessTokenLifetime <= 0 {
		opts.AccessTokenLifetime = time.Hour
	}
	p := &Provider{opts: opts, access: map[string]*grant{}, refresh: map[string]string{},
		devices: map[string]*device{}, codes: map[string]*authCode{}, counts: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", p.token)
	mux.HandleFunc("POST /device", p.deviceAuthorization)
	mux.HandleFunc("GET /authorize", p.authorize)
	mux.HandleFunc("POST /introspect", p.introspect)
	p.srv = httptest.NewServer(mux)
	return p
}

// Close stops the server.
func (p *Provider) Close() { p.srv.Close() }

// TokenURL, DeviceURL, AuthURL and IntrospectionURL are the endpoints.
func (p *Provider) TokenURL() string         { return p.srv.URL + "/token" }
func (p *Provider) AuthURL() string          { return p.srv.URL + "/authorize" }
func (p *Provider) DeviceURL() string        { return p.srv.URL + "/device" }
func (p *Provider) IntrospectionURL() string { return p.srv.URL + "/introspect" }

// Issue grants user tokens directly, as if they had signed in.
func (p *Provider) Issue(user string) (access, refresh string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.issueLocked(user, true)
}

func (p *Provider) issueLocked(user string, withRefresh bool) (access, refresh string) {
	access = "at-" + random()
	p.access[access] = &grant{user: user, expires: time.Now().Add(p.opts.AccessTokenLifetime)}
	if withRefresh {
		refresh = "rt-" + random()
		p.refresh[refresh] = user
	}
	return access, refresh
}

// Approve signs the user in for a pending device authorization, as the
// person who entered the code would. It reports whether the code was
// pending.
func (p *Provider) Approve(userCode, user string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, d := range p.devices {
		if d.userCode == userCode && d.user == "" && !d.denied {
			d.user = user
			return true
		}
	}
	return false
}

// SignIn has the browsers that come to the authorization endpoint signed
// in as user, consenting to whatever they are asked.
func (p *Provider) SignIn(user string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.browserUser = user
}

// ExpireAccessTokens makes every access token issued so far expired.
func (p *Provider) ExpireAccessTokens() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, g := range p.access {
		g.expires = time.Time{}
	}
}

// Revoke revokes every refresh token and access token of user, as an
// admin does when an account's sessions are ended or its password reset.
func (p *Provider) Revoke(user string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for t, u := range p.refresh {
		if u == user {
			delete(p.refresh, t)
		}
	}
	for t, g := range p.access {
		if g.user == user {
			delete(p.access, t)
		}
	}
}

// RefreshTokens returns the live refresh tokens of user.
func (p *Provider) RefreshTokens(user string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for t, u := range p.refresh {
		if u == user {
			out = append(out, t)
		}
	}
	return out
}

// Count says how many requests of a kind were answered with a token or a
// verdict: "refresh_token", "device_code", "client_credentials",
// "introspect" (active tokens) or "introspect_inactive".
func (p *Provider) Count(kind string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[kind]
}

func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	if !p.clientOK(r) {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var user string
	withRefresh := true
	kind := r.PostForm.Get("grant_type")
	switch kind {
	case "refresh_token":
		rt := r.PostForm.Get("refresh_token")
		var ok bool
		if user, ok = p.refresh[rt]; !ok {
			oauthError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		if p.opts.Rotate {
			delete(p.refresh, rt)
		} else {
			withRefresh = false
		}
	case "urn:ietf:params:oauth:grant-type:device_code":
		kind = "device_code"
		d, ok := p.devices[r.PostForm.Get("device_code")]
		switch {
		case !ok:
			oauthError(w, http.StatusBadRequest, "invalid_grant")
			return
		case time.Now().After(d.expires):
			oauthError(w, http.StatusBadRequest, "expired_token")
			return
		case d.denied:
			oauthError(w, http.StatusBadRequest, "access_denied")
			return
		case d.user == "":
			oauthError(w, http.StatusBadRequest, "authorization_pending")
			return
		}
		user = d.user
		delete(p.devices, r.PostForm.Get("device_code"))
	case "authorization_code":
		c, ok := p.codes[r.PostForm.Get("code")]
		delete(p.codes, r.PostForm.Get("code"))
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		switch {
		case !ok || c.redirectURI != r.PostForm.Get("redirect_uri"):
			oauthError(w, http.StatusBadRequest, "invalid_grant")
			return
		case base64.RawURLEncoding.EncodeToString(sum[:]) != c.challenge:
			oauthError(w, http.StatusBadRequest, "invalid_grant") // PKCE
			return
		}
		user = c.user
	case "client_credentials":
		if p.opts.ClientSecret == "" || p.opts.AppUser == "" {
			oauthError(w, http.StatusBadRequest, "unauthorized_client")
			return
		}
		user, withRefresh = p.opts.AppUser, false
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	p.counts[kind]++
	access, refresh := p.issueLocked(user, withRefresh)
	resp := map[string]any{"access_token": access, "token_type": "Bearer",
		"expires_in": int(p.opts.AccessTokenLifetime / time.Second)}
	if refresh != "" {
		resp["refresh_token"] = refresh
	}
	writeJSON(w, http.StatusOK, resp)
}

func (p *Provider) deviceAuthorization(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.PostForm.Get("client_id") != p.opts.ClientID {
		oauthError(w, http.StatusBadRequest, "invalid_client")
		return
	}
	code := random()
	userCode := strings.ToUpper(code[:4] + "-" + code[4:8])
	p.mu.Lock()
	p.devices[code] = &device{userCode: userCode, expires: time.Now().Add(10 * time.Minute)}
	p.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"device_code": code, "user_code": userCode,
		"verification_uri": p.srv.URL + "/device/verify", "expires_in": 600, "interval": 1})
}

// authorize signs the browser's user in and sends the browser back to the
// client with a code, as a provider does once the person has consented.
// PKCE (S256) is required.
func (p *Provider) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("client_id") != p.opts.ClientID || q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" ||
		q.Get("code_challenge") == "" || !strings.HasPrefix(q.Get("redirect_uri"), "http://127.0.0.1:") {
		http.Error(w, "bad authorization request", http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	user := p.browserUser
	code := "code-" + random()
	if user != "" {
		p.codes[code] = &authCode{user: user, redirectURI: q.Get("redirect_uri"), challenge: q.Get("code_challenge")}
	}
	p.mu.Unlock()
	back := url.Values{"state": {q.Get("state")}}
	if user == "" {
		back.Set("error", "access_denied")
	} else {
		back.Set("code", code)
	}
	http.Redirect(w, r, q.Get("redirect_uri")+"?"+back.Encode(), http.StatusFound)
}

func (p *Provider) introspect(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	g, ok := p.access[r.PostForm.Get("token")]
	if !ok || time.Now().After(g.expires) {
		p.counts["introspect_inactive"]++
		writeJSON(w, http.StatusOK, map[string]any{"active": false})
		return
	}
	p.counts["introspect"]++
	writeJSON(w, http.StatusOK, map[string]any{"active": true, "username": g.user, "exp": g.expires.Unix(),
		"client_id": p.opts.ClientID})
}

// clientOK checks the client's ID, and its secret if it has one, given in
// the form or with HTTP basic authentication.
func (p *Provider) clientOK(r *http.Request) bool {
	id, secret, basic := r.BasicAuth()
	if !basic {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	return id == p.opts.ClientID && (p.opts.ClientSecret == "" || secret == p.opts.ClientSecret)
}

func oauthError(w http.ResponseWriter, status int, code string) {
	writeJSON(w, status, map[string]string{"error": code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v) //nolint:errcheck // the client reads what arrived
}

func random() string {
	var b [15]byte
	rand.Read(b[:]) //nolint:errcheck // never fails since Go 1.24
	return strings.ToLower(base32.StdEncoding.EncodeToString(b[:]))
}
