package suite

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/helpdeskgw/helpdesk/bench/internal/benchkit"
)

func TestGeneratorSizesAndHeaders(t *testing.T) {
	gen := NewGenerator("t")
	rng := rand.New(rand.NewPCG(1, 1))
	seen := map[string]bool{}
	for _, size := range []int{2 << 10, 8 << 10, 16 << 10, 300 << 10, 5 << 20} {
		t.Run(Count(float64(size)), func(t *testing.T) {
			m := gen.Mail(rng, "c", size)
			if got := len(m.Data); got < size*9/10 || got > size*11/10 {
				t.Errorf("mail of %d bytes asked, %d written", size, got)
			}
			msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
			if err != nil {
				t.Fatal(err)
			}
			if id := msg.Header.Get("Message-ID"); id != "<"+m.MessageID+">" {
				t.Errorf("Message-ID %q, want <%s>", id, m.MessageID)
			}
			from, err := mail.ParseAddress(msg.Header.Get("From"))
			if err != nil || from.Address != m.From {
				t.Errorf("From %q (%v), want %s", msg.Header.Get("From"), err, m.From)
			}
			if seen[m.MessageID] || seen[m.From] {
				t.Errorf("Message-ID %s or sender %s used twice", m.MessageID, m.From)
			}
			seen[m.MessageID], seen[m.From] = true, true
		})
	}
}

func TestPickStaysInItsClass(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	drawn := map[string]int{}
	for range 2000 {
		c, size := Pick(rng, MixedSizes())
		if size < c.Min || size > c.Max {
			t.Fatalf("size %d outside %s", size, c.Name)
		}
		drawn[c.Name]++
	}
	if small := drawn[MixedSizes()[0].Name]; small < 1600 || small > 1900 {
		t.Errorf("%d of 2000 drawn from the small class, want about 88%%", small)
	}
}

func TestWriteSection(t *testing.T) {
	tests := []struct {
		name, before, key, body string
		want, wantNot           []string
	}{
		{name: "new file", key: "load", body: "## Load\nA",
			want: []string{"# Load and fault suite", begin("load") + "\n## Load\nA\n" + end("load")}},
		{name: "a file of another program is replaced", before: "# Ingest benchmark\nold", key: "faults", body: "## Faults",
			want: []string{begin("faults")}, wantNot: []string{"Ingest"}},
		{name: "the other section is kept, in its place", key: "load", body: "## Load\nnew",
			before: resultsTitle + "\n" + begin("load") + "\nold load\n" + end("load") + "\n\n" + begin("faults") + "\nF\n" + end("faults") + "\n",
			want:   []string{"new\n" + end("load") + "\n\n" + begin("faults") + "\nF\n" + end("faults")}, wantNot: []string{"old load"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "RESULTS.md")
			if tt.before != "" {
				if err := os.WriteFile(path, []byte(tt.before), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := WriteSection(path, tt.key, tt.body); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(b), w) {
					t.Errorf("file lacks %q:\n%s", w, b)
				}
			}
			for _, w := range tt.wantNot {
				if strings.Contains(string(b), w) {
					t.Errorf("file still has %q:\n%s", w, b)
				}
			}
		})
	}
}

// sendOne speaks to the relay as the gateway does and returns the error of
// the step that failed.
func sendOne(addr string, raw []byte) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("gateway.localhost"); err != nil {
		return err
	}
	if err := c.Mail("support@example.com", nil); err != nil {
		return err
	}
	if err := c.Rcpt("ana@example.org", nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(raw); err != nil {
		return err
	}
	return w.Close()
}

func TestRelayRefusesThenRecords(t *testing.T) {
	r, err := StartRelay()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	ack := []byte("Message-ID: <ack-1@helpdesk>\r\nX-Helpdesk-Ticket: ABC-DEF-GHJK\r\nSubject: x\r\n\r\nbody\r\n")
	tests := []struct {
		refuse   int
		wantCode int // 0: accepted
	}{
		{refuse: 421, wantCode: 421},
		{refuse: 451, wantCode: 451},
		{refuse: 0},
		{refuse: 0}, // the same mail again: a copy, counted
	}
	for _, tt := range tests {
		r.Refuse(tt.refuse)
		err := sendOne(r.Addr(), ack)
		var smtpErr *smtp.SMTPError
		switch {
		case tt.wantCode == 0 && err != nil:
			t.Errorf("refuse %d: %v, want accepted", tt.refuse, err)
		case tt.wantCode != 0 && (!errors.As(err, &smtpErr) || smtpErr.Code != tt.wantCode):
			t.Errorf("refuse %d: %v, want %d", tt.refuse, err, tt.wantCode)
		}
	}
	if got := r.Refused(); got[421] != 1 || got[451] != 1 {
		t.Errorf("refusals %v, want one of each", got)
	}
	d := r.Deliveries()
	if len(d) != 2 || d[0].MessageID != "ack-1@helpdesk" || d[0].Ticket != "ABC-DEF-GHJK" || d[0].To != "ana@example.org" {
		t.Errorf("deliveries %+v, want ack-1 twice, for ABC-DEF-GHJK to ana@example.org", d)
	}
	if tk := r.AckedTickets(); len(tk) != 1 || tk[0] != (Ticket{TrackingID: "ABC-DEF-GHJK", Email: "ana@example.org"}) {
		t.Errorf("acked tickets %+v, want the one ticket once", tk)
	}
}

// flakyBackend refuses the first mails with the replies given, in order,
// then accepts.
type flakyBackend struct {
	mu       sync.Mutex
	replies  []error
	accepted []string
}

func (b *flakyBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return &flakySession{b: b}, nil }

type flakySession struct{ b *flakyBackend }

func (s *flakySession) Reset()                               {}
func (s *flakySession) Logout() error                        { return nil }
func (s *flakySession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *flakySession) Rcpt(string, *smtp.RcptOptions) error { return nil }

func (s *flakySession) Data(r io.Reader) error {
	msg, err := mail.ReadMessage(r)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, msg.Body) //nolint:errcheck // go-smtp drains it too
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	if len(s.b.replies) > 0 {
		err, s.b.replies = s.b.replies[0], s.b.replies[1:]
		return err
	}
	s.b.accepted = append(s.b.accepted, msg.Header.Get("Message-ID"))
	return nil
}

func TestSendersRetryTemporaryRefusalsOnly(t *testing.T) {
	temp := &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
	full := &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "no room"}
	perm := &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "no"}
	tests := []struct {
		name                    string
		replies                 []error
		wantAccepted, wantFinal int
		wantRefusals            map[string]int
	}{
		{name: "accepted at once", wantAccepted: 3, wantRefusals: map[string]int{}},
		{name: "4xx retried", replies: []error{temp, full}, wantAccepted: 3,
			wantRefusals: map[string]int{"451 4.3.0": 1, "452 4.3.1": 1}},
		{name: "5xx final", replies: []error{perm}, wantAccepted: 2, wantFinal: 1,
			wantRefusals: map[string]int{"554 5.6.0": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := &flakyBackend{replies: tt.replies}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv := benchkit.ServeSMTP(ln, be, 1<<20)
			t.Cleanup(func() { srv.Close() })
			res := RunSMTP(context.Background(), Stream(srv.Addr(), 1, NewGenerator("r"), SmallText(), 3, time.Time{}))
			if len(res.Accepted) != tt.wantAccepted || len(res.Rejected) != tt.wantFinal || len(res.GivenUp) != 0 {
				t.Errorf("accepted %d, rejected %d, given up %d; want %d, %d, 0", len(res.Accepted), len(res.Rejected),
					len(res.GivenUp), tt.wantAccepted, tt.wantFinal)
			}
			if got := res.Replies(); !equalCounts(got, tt.wantRefusals) {
				t.Errorf("refusals %v, want %v", got, tt.wantRefusals)
			}
			be.mu.Lock()
			defer be.mu.Unlock()
			if len(be.accepted) != tt.wantAccepted {
				t.Errorf("server accepted %d mails, senders counted %d", len(be.accepted), tt.wantAccepted)
			}
		})
	}
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
