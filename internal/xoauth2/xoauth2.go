// Package xoauth2 authenticates to IMAP and SMTP servers with an OAuth2
// access token: the XOAUTH2 SASL mechanism of Gmail and Microsoft 365, which
// go-sasl lacks, and OAUTHBEARER (RFC 7628) for servers that offer it.
package xoauth2

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-sasl"
)

// Mechanism is the SASL name of XOAUTH2.
const Mechanism = "XOAUTH2"

// ErrorChallenge is what a server sends, as a JSON challenge, when it
// refuses a token: Gmail's {"status":"401","schemes":"bearer mac",
// "scope":"https://mail.google.com/"}, or OAUTHBEARER's equivalent.
type ErrorChallenge struct {
	Status  string `json:"status"`
	Schemes string `json:"schemes"`
	Scope   string `json:"scope"`
}

func (e *ErrorChallenge) Error() string {
	if e.Scope != "" {
		return fmt.Sprintf("the server refused the access token (status %s, scope %s)", e.Status, e.Scope)
	}
	return fmt.Sprintf("the server refused the access token (status %s)", e.Status)
}

// Client is an XOAUTH2 SASL client. After a failed exchange, Refusal says
// what the server's error challenge held.
type Client struct {
	user, token string
	refusal     *ErrorChallenge
}

// NewClient returns an XOAUTH2 client logging in as user with an access
// token.
func NewClient(user, token string) *Client { return &Client{user: user, token: token} }

// InitialResponse is the XOAUTH2 initial client response, before base64:
// "user=" user "\x01auth=Bearer " token "\x01\x01".
func InitialResponse(user, token string) []byte {
	return []byte("user=" + user + "\x01auth=Bearer " + token + "\x01\x01")
}

// Start sends the whole credential as the initial response.
func (c *Client) Start() (string, []byte, error) {
	if strings.ContainsAny(c.user, "\x01") || strings.ContainsAny(c.token, "\x01") {
		return "", nil, errors.New("xoauth2: user or token holds a ^A, which would end its field")
	}
	return Mechanism, InitialResponse(c.user, c.token), nil
}

// Next answers the only challenge XOAUTH2 has: the server's error, sent as
// JSON. The answer is an empty response, after which the server fails the
// exchange with its own error (Gmail and Microsoft require it; a client that
// cancels instead gets a protocol error rather than the reason).
func (c *Client) Next(challenge []byte) ([]byte, error) {
	if c.refusal != nil {
		return nil, errors.New("xoauth2: unexpected second challenge")
	}
	c.refusal = parseRefusal(challenge)
	return []byte{}, nil
}

// Refusal is the server's error challenge, or nil if there was none.
func (c *Client) Refusal() *ErrorChallenge { return c.refusal }

// parseRefusal reads an error challenge. One that is not JSON is still a
// refusal, of unknown status.
func parseRefusal(challenge []byte) *ErrorChallenge {
	var e ErrorChallenge
	if err := json.Unmarshal(challenge, &e); err != nil || e.Status == "" {
		e.Status = "unknown"
	}
	return &e
}

// BearerClient is an OAUTHBEARER client (go-sasl's) that answers the
// server's error challenge with the dummy response RFC 7628 §3.2.3 asks for
// (a single ^A), so that the server ends the exchange with its error rather
// than waiting for an answer that never comes.
type BearerClient struct {
	inner   sasl.Client
	refusal *ErrorChallenge
}

// NewBearerClient returns an OAUTHBEARER client for user at host:port (the
// server's name and port, which RFC 7628 has the client repeat).
func NewBearerClient(user, token, host string, port int) *BearerClient {
	return &BearerClient{inner: sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{
		Username: user, Token: token, Host: host, Port: port,
	})}
}

// Start sends the credential as the initial response.
func (c *BearerClient) Start() (string, []byte, error) { return c.inner.Start() }

// Next answers the server's error challenge.
func (c *BearerClient) Next(challenge []byte) ([]byte, error) {
	if c.refusal != nil {
		return nil, errors.New("oauthbearer: unexpected second challenge")
	}
	c.refusal = parseRefusal(challenge)
	return []byte{0x01}, nil
}

// Refusal is the server's error challenge, or nil if there was none.
func (c *BearerClient) Refusal() *ErrorChallenge { return c.refusal }

// Choose picks the mechanism a server offers (offers reports whether it
// announces one): OAUTHBEARER, the standard, when offered, otherwise
// XOAUTH2, which Microsoft 365 alone speaks. It returns nil when the server
// offers neither.
func Choose(offers func(mech string) bool, user, token, host string, port int) RefusingClient {
	switch {
	case offers(sasl.OAuthBearer):
		return NewBearerClient(user, token, host, port)
	case offers(Mechanism):
		return NewClient(user, token)
	}
	return nil
}

// RefusingClient is a SASL client that records the server's refusal.
type RefusingClient interface {
	sasl.Client
	Refusal() *ErrorChallenge
}
