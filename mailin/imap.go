package mailin

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-message/charset"

	"github.com/helpdeskgw/helpdesk/internal/oauth"
	"github.com/helpdeskgw/helpdesk/internal/xoauth2"
	"github.com/helpdeskgw/helpdesk/tickets"
)

// imapConn is a logged-in IMAP connection.
type imapConn struct {
	*imapclient.Client
	// wake receives a value when the server reports new mail.
	wake chan struct{}
	// renewAt is when the OAuth2 token the session logged in with is due
	// for renewal (zero for a password): the session then ends and logs in
	// again, as providers end sessions whose token has expired. renew
	// fires then, to end a wait.
	renewAt time.Time
	renew   <-chan time.Time
	// mechanism is how it logged in: LOGIN, XOAUTH2 or OAUTHBEARER.
	mechanism string
}

// credential is what a connection logs in with: a password, or an OAuth2
// access token.
type credential struct {
	password string
	token    string
}

// TokenSource gives OAuth2 mailboxes their access tokens (oauth.Sources).
// refused is a token the server has just refused, to be renewed rather
// than returned again.
type TokenSource interface {
	Token(ctx context.Context, mb tickets.Mailbox, refused string) (oauth.Token, error)
}

// Credentials find what mailboxes log in with.
type Credentials struct {
	// LookupEnv finds passwords given as variables. Default: os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// Tokens gives OAuth2 access tokens; without it OAuth2 mailboxes
	// cannot log in.
	Tokens TokenSource
}

// connect dials the mailbox's server and logs in, with its password or an
// OAuth2 access token. A token the server refuses (revoked, or expired
// before its time) is renewed and tried once more.
func connect(ctx context.Context, addr MailboxAddress, mb tickets.Mailbox, creds Credentials, tlsConfig *tls.Config) (*imapConn, error) {
	if mb.Auth != tickets.AuthOAuth2 {
		lookupEnv := creds.LookupEnv
		if lookupEnv == nil {
			lookupEnv = os.LookupEnv
		}
		password, err := ResolvePassword(mb.PasswordRef, lookupEnv)
		if err != nil {
			return nil, err
		}
		return dialIMAP(ctx, addr, credential{password: password}, tlsConfig)
	}
	if creds.Tokens == nil {
		return nil, errors.New("OAuth2 mailbox, but the gateway has no OAuth2 token source")
	}
	tok, err := creds.Tokens.Token(ctx, mb, "")
	if err != nil {
		return nil, err
	}
	c, err := dialIMAP(ctx, addr, credential{token: tok.Access}, tlsConfig)
	if errors.Is(err, errTokenRefused) {
		if tok, err = creds.Tokens.Token(ctx, mb, tok.Access); err != nil {
			return nil, err
		}
		c, err = dialIMAP(ctx, addr, credential{token: tok.Access}, tlsConfig)
	}
	if err != nil {
		return nil, err
	}
	c.renewAt, c.renew = tok.RenewAt, time.After(time.Until(tok.RenewAt))
	return c, nil
}

// renewDue reports whether the session's token is due for renewal.
func (c *imapConn) renewDue() bool { return !c.renewAt.IsZero() && !time.Now().Before(c.renewAt) }

// dialIMAP connects and logs in. Its errors say which step failed, in words
// an admin can act on.
func dialIMAP(ctx context.Context, addr MailboxAddress, cred credential, tlsConfig *tls.Config) (*imapConn, error) {
	c := &imapConn{wake: make(chan struct{}, 1)}
	opts := &imapclient.Options{
		WordDecoder: &mime.WordDecoder{CharsetReader: charset.Reader},
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(data *imapclient.UnilateralDataMailbox) {
				if data.NumMessages != nil {
					c.signal()
				}
			},
		},
	}
	if tlsConfig != nil {
		opts.TLSConfig = tlsConfig.Clone()
	} else {
		opts.TLSConfig = &tls.Config{}
	}
	opts.TLSConfig.ServerName = addr.ServerName
	opts.TLSConfig.MinVersion = tls.VersionTLS12
	dialer := &net.Dialer{Timeout: 30 * time.Second,
		// A peer that vanished while we idle is otherwise noticed only when
		// IDLE is restarted.
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 10 * time.Second, Count: 3}}
	raw, err := dialer.DialContext(ctx, "tcp", addr.Host)
	if err != nil {
		return nil, fmt.Errorf("cannot reach %s: %w", addr.Host, err)
	}
	switch addr.Security {
	case ImplicitTLS:
		tc := tls.Client(raw, opts.TLSConfig)
		hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			raw.Close()
			return nil, fmt.Errorf("TLS with %s failed: %w", addr.Host, err)
		}
		c.Client = imapclient.New(tc, opts)
	case StartTLS:
		if c.Client, err = imapclient.NewStartTLS(raw, opts); err != nil {
			return nil, fmt.Errorf("STARTTLS with %s failed (use imaps:// if the server speaks TLS at once): %w", addr.Host, err)
		}
	default:
		c.Client = imapclient.New(raw, opts)
	}
	// A cancelled context ends whatever the connection is doing.
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if err := c.WaitGreeting(); err != nil {
		c.Close()
		return nil, fmt.Errorf("no IMAP greeting from %s: %w", addr.Host, err)
	}
	if err := c.login(addr, cred); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// login logs in with the password, or with the token by OAUTHBEARER or
// XOAUTH2, whichever the server offers.
func (c *imapConn) login(addr MailboxAddress, cred credential) error {
	var err error
	var sc xoauth2.RefusingClient
	if cred.token == "" {
		c.mechanism = "LOGIN"
		err = c.Login(addr.User, cred.password).Wait()
	} else {
		_, portText, _ := net.SplitHostPort(addr.Host)
		port, _ := strconv.Atoi(portText)
		mechs := c.Caps().AuthMechanisms()
		sc = xoauth2.Choose(func(m string) bool {
			return slices.ContainsFunc(mechs, func(o string) bool { return strings.EqualFold(o, m) })
		}, addr.User, cred.token, addr.ServerName, port)
		if sc == nil {
			return fmt.Errorf("%s offers neither OAUTHBEARER nor XOAUTH2 (it offers %s): it cannot log in with OAuth2",
				addr.Host, strings.Join(mechs, " "))
		}
		c.mechanism, _, _ = sc.Start()
		if c.mechanism == xoauth2.Mechanism {
			sc = stopAtRefusal{sc}
		}
		err = c.Authenticate(sc)
	}
	if err == nil {
		return nil
	}
	var imapErr *imap.Error
	var refusal *xoauth2.ErrorChallenge
	switch {
	case sc == nil && errors.As(err, &imapErr):
		return fmt.Errorf("login as %s refused: %s: %w", addr.User, describeIMAPError(imapErr), errLoginRefused)
	case errors.As(err, &refusal):
		return fmt.Errorf("login as %s with %s refused: %s: %w", addr.User, c.mechanism, refusal, errTokenRefused)
	case errors.As(err, &imapErr):
		why := describeIMAPError(imapErr)
		if r := sc.Refusal(); r != nil {
			why += "; " + r.Error()
		}
		return fmt.Errorf("login as %s with %s refused: %s: %w", addr.User, c.mechanism, why, errTokenRefused)
	}
	return fmt.Errorf("login as %s at %s: %w", addr.User, addr.Host, err)
}

// stopAtRefusal ends an XOAUTH2 exchange at the server's error challenge.
// XOAUTH2 answers it with an empty response, but go-imap writes an empty
// response as "=", which servers reject as bad base64 (Dovecot does); the
// challenge says all there is to say, and the connection is closed after a
// failed login anyway.
type stopAtRefusal struct{ xoauth2.RefusingClient }

func (s stopAtRefusal) Next(challenge []byte) ([]byte, error) {
	if _, err := s.RefusingClient.Next(challenge); err != nil {
		return nil, err
	}
	return nil, s.Refusal()
}

// errLoginRefused marks a login the server refused (bad credentials, most
// likely): retrying at once will not help.
var errLoginRefused = errors.New("check the user and the password")

// errTokenRefused marks an OAuth2 login the server refused: with a fresh
// token too, the account may lack IMAP access, or the URL's user may not
// be the one who authorized the gateway.
var errTokenRefused = errors.New("check that the account may use IMAP and is the one that authorized the gateway")

// errRenewLogin ends a session whose OAuth2 token is due for renewal: the
// poller logs in again at once, with the renewed token.
var errRenewLogin = errors.New("the session's OAuth2 token is due for renewal")

// needsAdmin reports whether a session failed in a way only an admin
// mends (credentials, authorization): retrying soon will not help.
func needsAdmin(err error) bool {
	var authErr *oauth.AuthorizationError
	return errors.Is(err, errLoginRefused) || errors.Is(err, errTokenRefused) ||
		errors.Is(err, tickets.ErrNotAuthorized) || errors.As(err, &authErr)
}

func describeIMAPError(e *imap.Error) string {
	if e.Code != "" {
		return fmt.Sprintf("%s [%s]", strings.TrimSpace(e.Text), e.Code)
	}
	return strings.TrimSpace(e.Text)
}

func (c *imapConn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// selectFolder opens the folder, read-write unless readOnly.
func (c *imapConn) selectFolder(folder string, readOnly bool) (*imap.SelectData, error) {
	sel, err := c.Select(folder, &imap.SelectOptions{ReadOnly: readOnly}).Wait()
	if err != nil {
		var imapErr *imap.Error
		if errors.As(err, &imapErr) {
			return nil, fmt.Errorf("cannot open folder %q: %s", folder, describeIMAPError(imapErr))
		}
		return nil, fmt.Errorf("open folder %q: %w", folder, err)
	}
	return sel, nil
}

// folderExists reports whether the folder is on the server.
func (c *imapConn) folderExists(folder string) (bool, error) {
	list, err := c.List("", folder, nil).Collect()
	if err != nil {
		return false, fmt.Errorf("look for folder %q: %w", folder, err)
	}
	for _, d := range list {
		if d.Mailbox == folder || (strings.EqualFold(folder, "INBOX") && strings.EqualFold(d.Mailbox, "INBOX")) {
			return !slices.Contains(d.Attrs, imap.MailboxAttrNoSelect), nil
		}
	}
	return false, nil
}

// MailboxReport is what a check of a mailbox found.
type MailboxReport struct {
	Address MailboxAddress
	// Mechanism is how the check logged in (LOGIN, XOAUTH2, OAUTHBEARER).
	Mechanism   string
	Messages    uint32
	UIDValidity uint32
	UIDNext     uint32
	IDLE        bool
	MOVE        bool
	// MoveTo exists, when a folder to move processed mail to is set.
	MoveToExists bool
}

// CheckMailbox logs in to a password mailbox, opens its folder, and
// reports what it found. It changes nothing on the server.
func CheckMailbox(ctx context.Context, mb tickets.Mailbox, lookupEnv func(string) (string, bool), tlsConfig *tls.Config) (MailboxReport, error) {
	return CheckMailboxWith(ctx, mb, Credentials{LookupEnv: lookupEnv}, tlsConfig)
}

// CheckMailboxWith is CheckMailbox for any mailbox, OAuth2 ones included.
func CheckMailboxWith(ctx context.Context, mb tickets.Mailbox, creds Credentials, tlsConfig *tls.Config) (MailboxReport, error) {
	addr, err := ParseMailboxURL(mb.URL)
	if err != nil {
		return MailboxReport{}, err
	}
	r := MailboxReport{Address: addr}
	c, err := connect(ctx, addr, mb, creds, tlsConfig)
	if err != nil {
		return r, err
	}
	defer c.Close()
	r.Mechanism = c.mechanism
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	r.IDLE, r.MOVE = c.Caps().Has(imap.CapIdle), c.Caps().Has(imap.CapMove)
	sel, err := c.selectFolder(addr.Folder, true)
	if err != nil {
		return r, err
	}
	r.Messages, r.UIDValidity, r.UIDNext = sel.NumMessages, sel.UIDValidity, uint32(sel.UIDNext)
	if mb.MoveTo != "" {
		if r.MoveToExists, err = c.folderExists(mb.MoveTo); err != nil {
			return r, err
		}
		if !r.MoveToExists {
			return r, fmt.Errorf("folder %q to move processed mail to does not exist; create it or change --move-to", mb.MoveTo)
		}
	}
	c.Logout().Wait() //nolint:errcheck // closing anyway
	return r, nil
}

// fetched is one mail read from the folder.
type fetched struct {
	uid     imap.UID
	raw     tickets.Content
	release func()
}

// fetchBodies streams the mails with the given UIDs to the spool, one after
// the other, handing each to deliver as soon as it is read. Each body is read
// to its end before the next: go-imap discards what is left unread.
func fetchBodies(c *imapConn, uids imap.UIDSet, tmpDir string, deliver func(fetched)) error {
	cmd := c.Fetch(uids, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
	var spoolErr error
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		f := fetched{release: func() {}}
		haveBody := false
		for {
			item := msg.Next()
			if item == nil {
				break
			}
			switch item := item.(type) {
			case imapclient.FetchItemDataUID:
				f.uid = item.UID
			case imapclient.FetchItemDataBodySection:
				if item.Literal == nil {
					continue
				}
				raw, release, err := spool(item.Literal, tmpDir)
				if err != nil {
					release()
					io.Copy(io.Discard, item.Literal) //nolint:errcheck // the fetch reports a broken connection
					if errors.Is(err, errSpool) && spoolErr == nil {
						spoolErr = err
					}
					continue
				}
				f.raw, f.release, haveBody = raw, release, true
			}
		}
		switch {
		case f.uid == 0 || spoolErr != nil:
			f.release()
		case !haveBody:
			// The server has the mail but sends no body (it happens with
			// broken stores): record it empty rather than fetch it forever.
			f.raw = tickets.BytesContent(nil)
			deliver(f)
		default:
			deliver(f)
		}
	}
	if err := cmd.Close(); err != nil {
		return fmt.Errorf("fetch mail: %w", err)
	}
	if spoolErr != nil {
		return fmt.Errorf("keep fetched mail: %w", spoolErr)
	}
	return nil
}

// newUIDs lists the UIDs above after in the selected folder, oldest first,
// leaving out mail flagged \Deleted.
func newUIDs(c *imapConn, after imap.UID) ([]imap.UID, error) {
	msgs, err := c.Fetch(imap.UIDSet{{Start: after + 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil {
		return nil, fmt.Errorf("list new mail: %w", err)
	}
	uids := make([]imap.UID, 0, len(msgs))
	for _, m := range msgs {
		// "UID n:*" always answers with the last mail, even below n.
		if m.UID > after && !slices.Contains(m.Flags, imap.FlagDeleted) {
			uids = append(uids, m.UID)
		}
	}
	slices.Sort(uids)
	return uids, nil
}

// deliveries runs mail through the receiver on several goroutines, so
// that the store's group commit can write many at once while the next
// bodies arrive.
type deliveries struct {
	jobs chan fetched
	wg   sync.WaitGroup

	mu     sync.Mutex
	failed map[imap.UID]error
}

func startDeliveries(ctx context.Context, workers int, deliver func(ctx context.Context, f fetched) error) *deliveries {
	d := &deliveries{jobs: make(chan fetched, workers), failed: map[imap.UID]error{}}
	for range workers {
		d.wg.Go(func() {
			for f := range d.jobs {
				err := deliver(ctx, f)
				f.release()
				if err != nil {
					d.mu.Lock()
					d.failed[f.uid] = err
					d.mu.Unlock()
				}
			}
		})
	}
	return d
}

// wait waits for every delivery and returns the failed ones.
func (d *deliveries) wait() map[imap.UID]error {
	close(d.jobs)
	d.wg.Wait()
	return d.failed
}

// logLevel picks the level of a connection's error: a cancelled one is
// the gateway stopping.
func logLevel(ctx context.Context, err error) slog.Level {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) {
		return slog.LevelInfo
	}
	return slog.LevelWarn
}
