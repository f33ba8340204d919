package main

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/helpdeskgw/helpdesk/internal/smtptest"
)

// Shutting down (SIGTERM) stops taking connections at once but lets a mail
// in transfer finish: its sender gets 250 only with the ticket committed,
// and its acknowledgement is queued, sent now or at the next start.
func TestShutdownFinishesTheMailInTransfer(t *testing.T) {
	app, _, stop := runApp(t)
	c := smtptest.Dial(t, app.SMTPAddr())
	c.Cmd("MAIL FROM:<ana@example.org>", 250)
	c.Cmd("RCPT TO:<support@localhost>", 250)
	c.Cmd("DATA", 354)
	finish := c.StartData(customerMail())

	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	// New connections are refused once shutdown has begun.
	deadline := time.Now().Add(5 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", app.SMTPAddr(), time.Second)
		if err != nil {
			break
		}
		conn.Close()
		if time.Now().After(deadline) {
			t.Fatal("the SMTP listener still takes connections 5s into shutdown")
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case err := <-stopped:
		t.Fatalf("stopped (%v) with a mail in transfer", err)
	default:
	}
	if code, msg := finish(); code != 250 {
		t.Fatalf("the mail in transfer got %d %s, want 250", code, msg)
	}
	c.Quit()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	case <-time.After(app.cfg.ShutdownTimeout + 5*time.Second):
		t.Fatal("shutdown took longer than its deadline")
	}
	var tickets, acks int
	err := db.Pool(t).QueryRow(context.Background(),
		`SELECT (SELECT count(*) FROM tickets), (SELECT count(*) FROM outbox WHERE kind = 'ack')`).Scan(&tickets, &acks)
	if err != nil || tickets != 1 || acks != 1 {
		t.Errorf("%d tickets and %d acknowledgements queued (%v), want 1 and 1", tickets, acks, err)
	}
}
