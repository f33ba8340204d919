package mailin

import (
	"context"
	"fmt"
	"net"
	"testing"

	"github.com/helpdeskgw/helpdesk/tickets"
)

// The verdicts on who sent a mail are stored with it, and a DMARC failure
// is never answered: from the internet they are checked here, from a relay
// on our network or a mailbox they are read from a trusted header only.
func TestSenderVerdictsAreStoredAndDMARCFailuresNotAnswered(t *testing.T) {
	db.Reset(t)
	pool := db.Pool(t)
	ctx := context.Background()
	store := tickets.New(tickets.Options{Pool: pool})
	d, err := store.AddDepartment(ctx, tickets.Department{Slug: "soporte", Name: "Soporte", Address: "support@helpdesk.example"})
	if err != nil {
		t.Fatal(err)
	}
	rcv := NewReceiver(ReceiverOptions{Store: store, TempDir: t.TempDir(),
		Authenticator: NewAuthenticator(authDNSTable().options()), TrustedAuthServIDs: []string{"mx.trusted.example"}})
	for i, tc := range []struct {
		name     string
		source   string
		ip       string
		from     string
		header   string
		wantSPF  string
		wantDMRC string
		wantAck  bool
	}{
		{"forged from the internet", "smtp", "198.51.100.7", "alice@example.com", "", "fail", "fail", false},
		{"genuine from the internet", "smtp", "192.0.2.10", "alice@example.com", "", "pass", "pass", true},
		{"relayed, trusted header says fail", "smtp", "127.0.0.1", "bob@example.com",
			"Authentication-Results: mx.trusted.example; spf=fail smtp.mailfrom=example.com; dmarc=fail header.from=example.com\r\n", "fail", "fail", false},
		{"relayed, only an untrusted header", "smtp", "10.1.2.3", "carol@example.com",
			"Authentication-Results: mx.evil.example; spf=pass smtp.mailfrom=example.com; dmarc=pass header.from=example.com\r\n", "", "", true},
		{"mailbox, trusted header says pass", "imap", "", "dave@example.com",
			"Authentication-Results: mx.trusted.example; spf=pass smtp.mailfrom=example.com; dmarc=pass header.from=example.com\r\n", "pass", "pass", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := tc.header + fmt.Sprintf("From: <%s>\r\nTo: support@helpdesk.example\r\nSubject: Hola\r\nMessage-ID: <auth-%d@example.com>\r\n\r\nHola\r\n", tc.from, i)
			env := Envelope{Source: tc.source, SourceRef: "test", From: tc.from, To: []string{d.Address},
				ClientIP: net.ParseIP(tc.ip), Helo: "mail.example.com", Departments: []tickets.Department{d}}
			res, err := rcv.Deliver(ctx, env, tickets.BytesContent([]byte(raw)))
			if err != nil {
				t.Fatal(err)
			}
			if res[0].Disposition != tickets.DispositionTicket || res[0].AckQueued != tc.wantAck {
				t.Errorf("result %+v, want a ticket with ack %v", res[0], tc.wantAck)
			}
			e, err := store.InboundMailEntry(ctx, res[0].InboundID)
			if err != nil {
				t.Fatal(err)
			}
			if e.AuthSPF != tc.wantSPF || e.AuthDMARC != tc.wantDMRC {
				t.Errorf("stored spf=%q dmarc=%q (%s), want spf=%q dmarc=%q", e.AuthSPF, e.AuthDMARC, e.AuthDetail, tc.wantSPF, tc.wantDMRC)
			}
		})
	}
}
