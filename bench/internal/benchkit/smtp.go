package benchkit

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net"

	"github.com/emersion/go-smtp"
)

// SMTPServer is a go-smtp server on a loopback port, configured as the
// gateway's listener is: the no-op ceiling of the benchmarks, and the base
// of the relays they send acknowledgements to.
type SMTPServer struct {
	srv *smtp.Server
	ln  net.Listener
	err chan error
}

// ServeSMTP serves be on ln until Close. Mails up to maxBytes are taken.
func ServeSMTP(ln net.Listener, be smtp.Backend, maxBytes int64) *SMTPServer {
	srv := smtp.NewServer(be)
	srv.Domain = "bench.localhost"
	srv.MaxMessageBytes = maxBytes
	srv.MaxLineLength = 0
	srv.EnableSMTPUTF8 = true
	// Clients that vanish mid-session (a gateway killed on purpose) are
	// no news here.
	srv.ErrorLog = log.New(io.Discard, "", 0)
	s := &SMTPServer{srv: srv, ln: ln, err: make(chan error, 1)}
	go func() { s.err <- srv.Serve(ln) }()
	return s
}

// StartNoopSMTP starts a server on a free loopback port that accepts every
// mail of up to maxBytes and discards it.
func StartNoopSMTP(maxBytes int64) (*SMTPServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("no-op SMTP server: %w", err)
	}
	be := smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return noopSession{}, nil })
	return ServeSMTP(ln, be, maxBytes), nil
}

// Addr is the server's host:port.
func (s *SMTPServer) Addr() string { return s.ln.Addr().String() }

// Close stops the server, dropping its sessions.
func (s *SMTPServer) Close() error {
	s.srv.Close() //nolint:errcheck // Serve reports how it ended
	if err := <-s.err; err != nil && !errors.Is(err, smtp.ErrServerClosed) {
		return fmt.Errorf("SMTP server %s: %w", s.Addr(), err)
	}
	return nil
}

type noopSession struct{}

func (noopSession) Reset()                               {}
func (noopSession) Logout() error                        { return nil }
func (noopSession) Mail(string, *smtp.MailOptions) error { return nil }
func (noopSession) Rcpt(string, *smtp.RcptOptions) error { return nil }

func (noopSession) Data(r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	return err
}
