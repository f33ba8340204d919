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
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
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

// NewSender parses HELPDESK_MAIL_OUT: file://DIR, smtp://[user:pass@]host:port
// (STARTTLS when offered) or smtps://[user:pass@]host:port. It touches
// nothing: the spool directory is created when first written to.
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
	if r.user != "" {
		if err := c.Auth(sasl.NewPlainClient("", r.user, r.pass)); err != nil {
			c.Close()
			// Not permanent: mail waits while an admin mends the password.
			return nil, fmt.Errorf("authenticate to relay %s as %s: %w", r.addr, r.user, err)
		}
	}
	return &relayConn{c: c, addr: r.addr}, nil
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
