// Package smtptest speaks SMTP to a server under test one command at a
// time, so that tests can assert every reply code.
package smtptest

import (
	"bytes"
	"encoding/base64"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"
)

// Conn is a client connection to an SMTP server.
type Conn struct {
	t  testing.TB
	tp *textproto.Conn
}

// Dial connects to addr, expects the 220 greeting and says EHLO.
func Dial(t testing.TB, addr string) *Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial SMTP %s: %v", addr, err)
	}
	nc.SetDeadline(time.Now().Add(2 * time.Minute)) //nolint:errcheck // a test bound
	c := &Conn{t: t, tp: textproto.NewConn(nc)}
	t.Cleanup(func() { c.tp.Close() })
	c.Expect(220)
	c.Cmd("EHLO client.example.com", 250)
	return c
}

// Expect reads one reply and fails the test unless it has the code. It
// returns the reply text.
func (c *Conn) Expect(code int) string {
	c.t.Helper()
	got, msg, err := c.tp.ReadResponse(0)
	if err != nil && got == 0 {
		c.t.Fatalf("read SMTP reply: %v", err)
	}
	if got != code {
		c.t.Fatalf("SMTP reply %d %q, want %d", got, msg, code)
	}
	return msg
}

// Reply sends a command and returns the reply's code and text.
func (c *Conn) Reply(cmd string) (int, string) {
	c.t.Helper()
	if err := c.tp.PrintfLine("%s", cmd); err != nil {
		c.t.Fatalf("send %q: %v", cmd, err)
	}
	code, msg, err := c.tp.ReadResponse(0)
	if err != nil && code == 0 {
		c.t.Fatalf("read reply to %q: %v", cmd, err)
	}
	return code, msg
}

// Cmd sends a command and expects the code; it returns the reply text.
func (c *Conn) Cmd(cmd string, code int) string {
	c.t.Helper()
	got, msg := c.Reply(cmd)
	if got != code {
		c.t.Fatalf("%q: reply %d %q, want %d", cmd, got, msg, code)
	}
	return msg
}

// Send runs a whole transaction (MAIL, RCPT for each recipient, DATA) and
// returns the code and text of the reply to the data.
func (c *Conn) Send(from string, to []string, msg []byte) (int, string) {
	c.t.Helper()
	c.Cmd("MAIL FROM:<"+from+">", 250)
	for _, r := range to {
		c.Cmd("RCPT TO:<"+r+">", 250)
	}
	c.Cmd("DATA", 354)
	return c.Data(msg)
}

// Data sends a message body after a 354 and reads the final reply.
func (c *Conn) Data(msg []byte) (int, string) {
	c.t.Helper()
	w := c.tp.DotWriter()
	if _, err := w.Write(bytes.ReplaceAll(msg, []byte("\r\n"), []byte("\n"))); err != nil {
		c.t.Fatalf("write data: %v", err)
	}
	if err := w.Close(); err != nil {
		c.t.Fatalf("end data: %v", err)
	}
	code, text, err := c.tp.ReadResponse(0)
	if err != nil && code == 0 {
		c.t.Fatalf("read reply to data: %v", err)
	}
	return code, text
}

// StartData sends the first half of a message body after a 354 and returns
// what sends the rest and reads the final reply: a test can act while a
// mail is in transfer.
func (c *Conn) StartData(msg []byte) (finish func() (int, string)) {
	c.t.Helper()
	w := c.tp.DotWriter()
	msg = bytes.ReplaceAll(msg, []byte("\r\n"), []byte("\n"))
	half := len(msg) / 2
	if _, err := w.Write(msg[:half]); err != nil {
		c.t.Fatalf("write data: %v", err)
	}
	if err := c.tp.W.Flush(); err != nil {
		c.t.Fatalf("write data: %v", err)
	}
	return func() (int, string) {
		c.t.Helper()
		if _, err := w.Write(msg[half:]); err != nil {
			c.t.Fatalf("write data: %v", err)
		}
		if err := w.Close(); err != nil {
			c.t.Fatalf("end data: %v", err)
		}
		code, text, err := c.tp.ReadResponse(0)
		if err != nil && code == 0 {
			c.t.Fatalf("read reply to data: %v", err)
		}
		return code, text
	}
}

// Quit ends the session.
func (c *Conn) Quit() { c.Cmd("QUIT", 221) }

// CRLF turns a message written with \n line ends into one with \r\n.
func CRLF(s string) []byte {
	return []byte(strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n"))
}

// Base64Lines encodes b as a mail body part does: base64 in lines of 76
// characters, each ended by \n (CRLF turns them into \r\n).
func Base64Lines(b []byte) string {
	s := base64.StdEncoding.EncodeToString(b)
	var out strings.Builder
	for len(s) > 76 {
		out.WriteString(s[:76] + "\n")
		s = s[76:]
	}
	return out.String() + s + "\n"
}
