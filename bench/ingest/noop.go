package main

import (
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/emersion/go-smtp"
)

// noopServer is the first ceiling: a go-smtp server that accepts every mail
// and discards it, configured as the gateway's listener is.
type noopServer struct {
	srv *smtp.Server
	ln  net.Listener
	err chan error
}

func startNoop() (*noopServer, error) {
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return noopSession{}, nil }))
	srv.Domain = "noop.localhost"
	srv.MaxMessageBytes = hugeLimit
	srv.MaxLineLength = 0
	srv.EnableSMTPUTF8 = true
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("no-op SMTP server: %w", err)
	}
	s := &noopServer{srv: srv, ln: ln, err: make(chan error, 1)}
	go func() { s.err <- srv.Serve(ln) }()
	return s, nil
}

func (s *noopServer) addr() string { return s.ln.Addr().String() }

func (s *noopServer) close() error {
	s.srv.Close() //nolint:errcheck // Serve reports how it ended
	if err := <-s.err; err != nil && !errors.Is(err, smtp.ErrServerClosed) {
		return fmt.Errorf("no-op SMTP server: %w", err)
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
