package mailout

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/helpdeskgw/helpdesk/internal/xoauth2"
)

// Envelope is one mail ready to go.
type Envelope struct {
	// ID is the outbox row; the spool names its file after it, so a mail
	// written twice (a crash between writing and recording) is one file.
	ID   int64
	From string
	To   string
	Data []byte
}

// sender delivers mail: to a spool directory or through an SMTP relay.
type sender interface {
	// Open starts a batch (one relay connection for several mails).
	Open(ctx context.Context) (conn, error)
	// Describe names the destination in logs, without secrets.
	Describe() string
}

type conn interface {
	Send(ctx context.Context, e Envelope) error
	Close() error
}

// PermanentError is a failure that retrying will not mend (a 5xx reply).
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// RelayTokens gives the relay OAuth2 access tokens: those of a
// department's mailbox, which the relay shares (the same account usually
// receives and sends). refused is a token the relay has just refused.
type RelayTokens interface {
	RelayToken(ctx context.Context, department, refused string) (string, error)
}

// NewSender parses HELPDESK_MAIL_OUT: file://DIR, smtp://[user:pass@]host:port
// (STARTTLS when offered) or smtps://[user:pass@]host:port. A relay that
// takes OAuth2 instead of a password is smtp://user@host:port?auth=oauth2&mailbox=SLUG:
// it logs in as user with the tokens of the department SLUG's mailbox, by
// OAUTHBEARER or XOAUTH2, whichever it offers (auth=xoauth2 or
// auth=oauthbearer insist on one). It touches nothing: the spool directory
// is created when first written to.
func NewSender(raw string) (sender, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("mail out %q: %w", redactURL(raw), err)
	}
	switch u.Scheme {
	case "file":
		dir := u.Path
		if u.Host != "" { // file://./.data/outbox parses "." as the host
			dir = u.Host + u.Path
		}
		if dir == "" {
			return nil, fmt.Errorf("mail out %q: file:// needs a directory", raw)
		}
		return &spoolSender{dir: dir}, nil
	case "smtp", "smtps":
		host := u.Hostname()
		if host == "" {
			return nil, fmt.Errorf("mail out %q: no host", redactURL(raw))
		}
		port := u.Port()
		if port == "" {
			port = map[string]string{"smtp": "587", "smtps": "465"}[u.Scheme]
		}
		r := &relaySender{addr: net.JoinHostPort(host, port), implicitTLS: u.Scheme == "smtps", host: host}
		if u.User != nil {
			r.user = u.User.Username()
			r.pass, _ = u.User.Password()
		}
		if err := r.parseAuth(u.Query()); err != nil {
			return nil, fmt.Errorf("mail out %q: %w", redactURL(raw), err)
		}
		return r, nil
	default:
		return nil, fmt.Errorf("mail out %q: want file://, smtp:// or smtps://", redactURL(raw))
	}
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// spoolSender writes each mail as DIR/<outbox id>.eml. Files appear whole
// (written aside, then renamed), and a batch's files are on disk before its
// Close returns: one sync for the batch rather than two per mail.
type spoolSender struct{ dir string }

func (s *spoolSender) Describe() string { return "spool " + s.dir }

func (s *spoolSender) Open(context.Context) (conn, error) {
	if err := os.MkdirAll(s.dir, 0o750); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	return &spoolBatch{dir: s.dir}, nil
}

type spoolBatch struct {
	dir     string
	written []string
}

func (b *spoolBatch) Send(_ context.Context, e Envelope) error {
	name := filepath.Join(b.dir, fmt.Sprintf("%012d.eml", e.ID))
	tmp, err := os.CreateTemp(b.dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("spool mail %d: %w", e.ID, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(e.Data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o640)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), name)
	}
	if err != nil {
		return fmt.Errorf("spool mail %d: %w", e.ID, err)
	}
	b.written = append(b.written, name)
	return nil
}

// Close syncs what the batch wrote, renames included.
func (b *spoolBatch) Close() error {
	if len(b.written) == 0 {
		return nil
	}
	if err := syncFiles(b.dir, b.written); err != nil {
		return fmt.Errorf("spool: sync %s: %w", b.dir, err)
	}
	return nil
}

// relaySender hands mail to an SMTP relay, one connection per batch.
type relaySender struct {
	addr        string
	host        string
	implicitTLS bool
	user, pass  string
	// hello is the name the gateway gives itself in EHLO; relays look
	// askance at "localhost".
	hello string
	// tlsConfig is for tests with their own certificate authority.
	tlsConfig *tls.Config
	// oauth is the OAuth2 mechanism ("oauth2" for whichever the relay
	// offers, "xoauth2", "oauthbearer"), "" for a password; the tokens are
	// those of the mailbox of department oauthMailbox.
	oauth        string
	oauthMailbox string
	tokens       RelayTokens
}

// parseAuth reads the query of a relay's URL.
func (r *relaySender) parseAuth(q url.Values) error {
	for k := range q {
		if k != "auth" && k != "mailbox" {
			return fmt.Errorf("unknown parameter %q (want auth=oauth2&mailbox=SLUG)", k)
		}
	}
	switch auth := strings.ToLower(q.Get("auth")); auth {
	case "":
		if q.Has("mailbox") {
			return errors.New("mailbox= goes with auth=oauth2")
		}
		return nil
	case "oauth2", "xoauth2", "oauthbearer":
		r.oauth = auth
	default:
		return fmt.Errorf("auth=%s: want oauth2, xoauth2 or oauthbearer", auth)
	}
	switch {
	case r.user == "":
		return errors.New("auth=oauth2 needs the user to log in as: smtp://USER@host:587?auth=oauth2&mailbox=SLUG")
	case r.pass != "":
		return errors.New("auth=oauth2 takes no password")
	case q.Get("mailbox") == "":
		return errors.New("auth=oauth2 needs mailbox=SLUG, the department whose mailbox's OAuth2 authorization the relay uses")
	}
	r.oauthMailbox = q.Get("mailbox")
	return nil
}

// RelayOAuthMailbox returns the department whose mailbox's OAuth2 tokens
// the relay of mailOut (HELPDESK_MAIL_OUT) logs in with, or "" when it
// takes a password, nothing, or is no relay.
func RelayOAuthMailbox(mailOut string) string {
	s, err := NewSender(mailOut)
	if r, ok := s.(*relaySender); ok && err == nil {
		return r.oauthMailbox
	}
	return ""
}

func (r *relaySender) Describe() string {
	scheme := "smtp"
	if r.implicitTLS {
		scheme = "smtps"
	}
	return scheme + "://" + r.addr
}

const dialTimeout = 30 * time.Second

func (r *relaySender) Open(ctx context.Context) (conn, error) {
	cfg := r.tlsConfig
	if cfg == nil {
		cfg = &tls.Config{ServerName: r.host}
	}
	var c *smtp.Client
	if r.implicitTLS {
		nc, err := (&tls.Dialer{NetDialer: &net.Dialer{Timeout: dialTimeout}, Config: cfg}).DialContext(ctx, "tcp", r.addr)
		if err != nil {
			return nil, fmt.Errorf("connect to relay %s: %w", r.addr, err)
		}
		c = smtp.NewClient(nc)
	} else {
		nc, err := (&net.Dialer{Timeout: dialTimeout}).DialContext(ctx, "tcp", r.addr)
		if err != nil {
			return nil, fmt.Errorf("connect to relay %s: %w", r.addr, err)
		}
		c, err = smtp.NewClientStartTLS(nc, cfg)
		if err != nil && strings.Contains(err.Error(), "doesn't support STARTTLS") {
			// Not offered: carry on in the clear, but never with a password
			// unless the relay is on this machine.
			if r.user != "" && !isLoopback(r.host) {
				return nil, fmt.Errorf("relay %s offers no STARTTLS; refusing to send the password in the clear", r.addr)
			}
			nc, err = (&net.Dialer{Timeout: dialTimeout}).DialContext(ctx, "tcp", r.addr)
			if err != nil {
				return nil, fmt.Errorf("connect to relay %s: %w", r.addr, err)
			}
			c = smtp.NewClient(nc)
		} else if err != nil {
			return nil, fmt.Errorf("STARTTLS with relay %s: %w", r.addr, err)
		}
	}
	if r.hello != "" {
		if err := c.Hello(r.hello); err != nil {
			c.Close()
			return nil, fmt.Errorf("EHLO to relay %s: %w", r.addr, err)
		}
	}
	switch {
	case r.oauth != "":
		if err := r.authOAuth(ctx, c); err != nil {
			c.Close()
			// Not permanent: mail waits while an admin authorizes again.
			return nil, err
		}
	case r.user != "":
		if err := c.Auth(sasl.NewPlainClient("", r.user, r.pass)); err != nil {
			c.Close()
			// Not permanent: mail waits while an admin mends the password.
			return nil, fmt.Errorf("authenticate to relay %s as %s: %w", r.addr, r.user, err)
		}
	}
	return &relayConn{c: c, addr: r.addr}, nil
}

// authOAuth logs in with the mailbox's access token; a token the relay
// refuses is renewed and tried once more.
func (r *relaySender) authOAuth(ctx context.Context, c *smtp.Client) error {
	if r.tokens == nil {
		return fmt.Errorf("relay %s: no OAuth2 tokens for the mailbox of %s", r.addr, r.oauthMailbox)
	}
	token, err := r.tokens.RelayToken(ctx, r.oauthMailbox, "")
	if err != nil {
		return fmt.Errorf("relay %s: %w", r.addr, err)
	}
	err = r.authWith(c, token)
	var smtpErr *smtp.SMTPError
	if errors.As(err, &smtpErr) && (smtpErr.Code == 535 || smtpErr.Code == 454) {
		// Refused (535), or failed on the relay's side (454, as some
		// answer a bad token): a renewed token may pass.
		if token, err = r.tokens.RelayToken(ctx, r.oauthMailbox, token); err != nil {
			return fmt.Errorf("relay %s: %w", r.addr, err)
		}
		err = r.authWith(c, token)
	}
	return err
}

func (r *relaySender) authWith(c *smtp.Client, token string) error {
	_, portText, _ := net.SplitHostPort(r.addr)
	port, _ := strconv.Atoi(portText)
	var sc sasl.Client
	switch r.oauth {
	case "xoauth2":
		sc = xoauth2.NewClient(r.user, token)
	case "oauthbearer":
		sc = xoauth2.NewBearerClient(r.user, token, r.host, port)
	default:
		if chosen := xoauth2.Choose(c.SupportsAuth, r.user, token, r.host, port); chosen != nil {
			sc = chosen
		}
	}
	if sc == nil {
		return fmt.Errorf("relay %s offers neither OAUTHBEARER nor XOAUTH2", r.addr)
	}
	mech, _, _ := sc.Start()
	if err := c.Auth(sc); err != nil {
		return fmt.Errorf("authenticate to relay %s as %s with %s: %w", r.addr, r.user, mech, err)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

type relayConn struct {
	c      *smtp.Client
	addr   string
	broken error
}

func (rc *relayConn) Send(ctx context.Context, e Envelope) error {
	if rc.broken != nil {
		return fmt.Errorf("relay %s: connection unusable after: %w", rc.addr, rc.broken)
	}
	if dl, ok := ctx.Deadline(); ok {
		rc.c.CommandTimeout = min(time.Until(dl), 5*time.Minute)
		rc.c.SubmissionTimeout = min(time.Until(dl), 12*time.Minute)
	}
	err := rc.transaction(e)
	if err != nil {
		// A refusal leaves a transaction open; end it so that the next mail
		// can start, or give up on this connection.
		if rerr := rc.c.Reset(); rerr != nil {
			rc.broken = err
		}
	}
	return err
}

// transaction sends one mail. A refusal of the sender (MAIL) is the relay
// refusing us (policy, authentication, our address), which mending the
// configuration cures, so it is retried; a refusal of the recipient or of
// the content is final for this mail, unless it is a 5.7.x policy refusal.
func (rc *relayConn) transaction(e Envelope) error {
	if err := rc.c.Mail(e.From, nil); err != nil {
		return fmt.Errorf("relay %s refused sender %s: %w", rc.addr, e.From, err)
	}
	if err := rc.c.Rcpt(e.To, nil); err != nil {
		return classify(fmt.Errorf("relay %s refused recipient %s: %w", rc.addr, e.To, err))
	}
	w, err := rc.c.Data()
	if err != nil {
		return classify(fmt.Errorf("relay %s: %w", rc.addr, err))
	}
	if _, err := w.Write(e.Data); err != nil {
		w.Close()
		return fmt.Errorf("relay %s: %w", rc.addr, err)
	}
	if err := w.Close(); err != nil {
		return classify(fmt.Errorf("relay %s refused the mail: %w", rc.addr, err))
	}
	return nil
}

// Close ends the session. Its error does not matter: every mail sent was
// accepted with its own reply.
func (rc *relayConn) Close() error {
	if err := rc.c.Quit(); err != nil {
		rc.c.Close()
	}
	return nil
}

// classify marks 5xx replies permanent, but for 5.7.x (security and
// policy: mended by configuration, not by giving up); everything else is
// worth a retry.
func classify(err error) error {
	var smtpErr *smtp.SMTPError
	if errors.As(err, &smtpErr) && smtpErr.Code >= 500 && smtpErr.EnhancedCode[1] != 7 {
		return &PermanentError{err}
	}
	return err
}
