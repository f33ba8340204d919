package mailin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// SMTPOptions configures the SMTP listener.
type SMTPOptions struct {
	Receiver *Receiver
	Logger   *slog.Logger
	// Domain is the name the server greets with.
	Domain string
	// MaxMessageBytes is the largest mail accepted. Default: 25 MiB.
	MaxMessageBytes int64
	// MaxRecipients per mail. Default: 50.
	MaxRecipients int
	// ReadTimeout bounds every read, the whole DATA transfer included: it
	// must let the largest mail arrive over a slow link. Default: 10 minutes.
	ReadTimeout time.Duration
	// WriteTimeout bounds every reply. Default: 1 minute.
	WriteTimeout time.Duration
	// MaxConns bounds the sessions at once; beyond it a client is told
	// 421 and retries later. Default: 500.
	MaxConns int
}

// DefaultMaxMessageBytes is the default size limit of a mail: 25 MiB.
const DefaultMaxMessageBytes = 25 << 20

// SMTPServer accepts mail for the departments' addresses and nothing else.
type SMTPServer struct {
	srv      *smtp.Server
	rcv      *Receiver
	log      *slog.Logger
	maxConns int
}

// NewSMTPServer returns a server; Serve starts it.
func NewSMTPServer(opts SMTPOptions) *SMTPServer {
	s := &SMTPServer{rcv: opts.Receiver, log: opts.Logger, maxConns: opts.MaxConns}
	if s.maxConns <= 0 {
		s.maxConns = 500
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	srv := smtp.NewServer(&backend{s})
	srv.Domain = opts.Domain
	if srv.Domain == "" {
		srv.Domain = "localhost"
	}
	srv.MaxMessageBytes = opts.MaxMessageBytes
	if srv.MaxMessageBytes <= 0 {
		srv.MaxMessageBytes = DefaultMaxMessageBytes
	}
	srv.MaxRecipients = opts.MaxRecipients
	if srv.MaxRecipients <= 0 {
		srv.MaxRecipients = 50
	}
	srv.ReadTimeout = opts.ReadTimeout
	if srv.ReadTimeout <= 0 {
		srv.ReadTimeout = 10 * time.Minute
	}
	srv.WriteTimeout = opts.WriteTimeout
	if srv.WriteTimeout <= 0 {
		srv.WriteTimeout = time.Minute
	}
	// Real HTML mail has lines far longer than SMTP's 1000; the size limit
	// bounds memory instead.
	srv.MaxLineLength = 0
	srv.EnableSMTPUTF8 = true
	srv.ErrorLog = slogErrorLog{s.log}
	s.srv = srv
	return s
}

// Serve accepts connections on l until Shutdown or Close.
func (s *SMTPServer) Serve(l net.Listener) error {
	err := s.srv.Serve(&limitListener{Listener: l, slots: make(chan struct{}, s.maxConns), log: s.log, metrics: s.rcv.metrics})
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting connections and waits for the sessions in
// progress to end (a mail in DATA is finished and answered) or ctx to end.
func (s *SMTPServer) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

// Close stops at once, dropping sessions; their senders retry.
func (s *SMTPServer) Close() error { return s.srv.Close() }

type backend struct{ s *SMTPServer }

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	ss := &session{s: b.s, remote: c.Conn().RemoteAddr().String(), helo: c.Hostname()}
	if tcp, ok := c.Conn().RemoteAddr().(*net.TCPAddr); ok {
		ss.clientIP = tcp.IP
	}
	return ss, nil
}

// Replies the sender can act on. go-smtp keeps the code of an error only
// when Data returns a bare *smtp.SMTPError.
var (
	errUnavailable = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0},
		Message: "Mail could not be stored just now; nothing was kept, please try again later"}
	errNoStorage = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1},
		Message: "Insufficient system storage; please try again later"}
)

type session struct {
	s        *SMTPServer
	remote   string
	clientIP net.IP
	helo     string

	from       string
	nullSender bool
	to         []string
	depts      map[int64]bool
	env        Envelope
}

func (ss *session) Reset() {
	ss.from, ss.nullSender, ss.to, ss.depts = "", false, nil, nil
	ss.env = Envelope{}
}

func (ss *session) Logout() error { return nil }

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	ss.Reset()
	ss.from, ss.nullSender = from, from == ""
	return nil
}

func (ss *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	err := ss.rcpt(to)
	ss.s.rcv.metrics.smtpReply("rcpt", err)
	return err
}

func (ss *session) rcpt(to string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, ok, err := ss.s.rcv.Department(ctx, to)
	if err != nil {
		ss.s.log.Error("look up recipient", "conn", ss.remote, "rcpt", to, "err", err)
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0},
			Message: "Recipient cannot be checked just now; please try again later"}
	}
	if !ok {
		ss.s.log.Info("recipient refused", "conn", ss.remote, "from", ss.from, "rcpt", to)
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1},
			Message: fmt.Sprintf("<%s>: no helpdesk department has this address; this server only accepts mail for its departments", to)}
	}
	ss.to = append(ss.to, to)
	if ss.depts == nil {
		ss.depts = map[int64]bool{}
	}
	if !ss.depts[d.ID] {
		ss.depts[d.ID] = true
		ss.env.Departments = append(ss.env.Departments, d)
	}
	return nil
}

func (ss *session) Data(r io.Reader) error {
	err := ss.data(r)
	ss.s.rcv.metrics.smtpReply("data", err)
	return err
}

func (ss *session) data(r io.Reader) error {
	raw, release, err := spool(r, ss.s.rcv.tmpDir)
	defer release()
	if err != nil {
		var smtpErr *smtp.SMTPError
		switch {
		case errors.As(err, &smtpErr): // too large: go-smtp's own 552
			ss.s.log.Info("mail refused", "conn", ss.remote, "from", ss.from, "reason", smtpErr.Message)
			return smtpErr
		case errors.Is(err, errSpool):
			ss.s.log.Error("spool mail", "conn", ss.remote, "from", ss.from, "err", err)
			return errNoStorage
		default: // the client went away mid-DATA; nothing was accepted
			ss.s.log.Info("mail transfer broken", "conn", ss.remote, "from", ss.from, "err", err)
			return err
		}
	}
	env := ss.env
	env.Source, env.SourceRef, env.From, env.NullSender, env.To = "smtp", ss.remote, ss.from, ss.nullSender, ss.to
	env.ClientIP, env.Helo = ss.clientIP, ss.helo
	// The sender waits for our answer; bound the work, but give a slow
	// database time before asking it to retry.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := ss.s.rcv.Deliver(ctx, env, raw); err != nil {
		ss.s.log.Error("store mail", "conn", ss.remote, "from", ss.from, "size", raw.Size, "err", err)
		if errors.Is(err, errSpool) {
			return errNoStorage
		}
		return errUnavailable
	}
	return nil
}

// slogErrorLog routes go-smtp's own messages (accept errors, panics) to slog.
type slogErrorLog struct{ log *slog.Logger }

func (l slogErrorLog) Printf(format string, v ...any) {
	l.log.Warn("smtp server", "msg", fmt.Sprintf(format, v...))
}

func (l slogErrorLog) Println(v ...any) { l.log.Warn("smtp server", "msg", fmt.Sprint(v...)) }

// limitListener answers connections past its slots with 421 and closes
// them, rather than letting them wait unanswered in the backlog.
type limitListener struct {
	net.Listener
	slots   chan struct{}
	log     *slog.Logger
	metrics *Metrics
}

var errTooManyConns = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Too many connections; please try again later"}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			return &slotConn{Conn: c, release: func() { <-l.slots }}, nil
		default:
			l.log.Warn("SMTP connection refused: too many at once", "conn", c.RemoteAddr().String(), "max", cap(l.slots))
			l.metrics.smtpReply("connect", errTooManyConns)
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))            //nolint:errcheck // best effort
			io.WriteString(c, "421 4.3.2 "+errTooManyConns.Message+"\r\n") //nolint:errcheck // closing anyway
			c.Close()
		}
	}
}

type slotConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *slotConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}
