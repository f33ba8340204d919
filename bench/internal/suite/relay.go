package suite

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/helpdeskgw/helpdesk/bench/internal/benchkit"
)

// Delivery is one mail the relay accepted.
type Delivery struct {
	MessageID string // without angle brackets
	Ticket    string // X-Helpdesk-Ticket: the tracking ID
	To        string // the envelope recipient
	At        time.Time
}

// Relay is the SMTP relay the gateway sends its mail to: it records every
// mail it accepts, and can be told to refuse for a while or to answer
// slowly.
type Relay struct {
	srv *benchkit.SMTPServer

	mu         sync.Mutex
	refuse     int // 0: accept; 421: at the greeting, then hang up; 451: MAIL FROM
	delay      time.Duration
	deliveries []Delivery
	refused    map[int]int // refusals by code
	// tickets are the tickets acknowledged, each once: the web visitors
	// pick from them.
	tickets    []Ticket
	ticketSeen map[string]bool
}

// relayMaxBytes is far above any acknowledgement.
const relayMaxBytes = 64 << 20

// StartRelay starts a relay on a free loopback port.
func StartRelay() (*Relay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	r := &Relay{refused: map[int]int{}, ticketSeen: map[string]bool{}}
	r.srv = benchkit.ServeSMTP(&refusingListener{Listener: ln, relay: r}, r, relayMaxBytes)
	return r, nil
}

// Addr is the relay's host:port.
func (r *Relay) Addr() string { return r.srv.Addr() }

// Close stops the relay.
func (r *Relay) Close() error { return r.srv.Close() }

// Refuse makes the relay refuse with code until Accept: 421 greets new
// connections with 421 and hangs up (a relay shutting down); 451 refuses
// every MAIL FROM (a relay with a local problem). Connections already
// open with 421 keep being served, as a real relay's would.
func (r *Relay) Refuse(code int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refuse = code
}

// Accept ends a refusal.
func (r *Relay) Accept() { r.Refuse(0) }

// SetDelay makes the relay hold each mail that long before its 250.
func (r *Relay) SetDelay(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delay = d
}

// Deliveries returns the mails accepted so far, in order.
func (r *Relay) Deliveries() []Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Delivery(nil), r.deliveries...)
}

// Delivered is how many mails the relay accepted, copies included.
func (r *Relay) Delivered() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.deliveries)
}

// Refused counts the refusals by code.
func (r *Relay) Refused() map[int]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[int]int, len(r.refused))
	for k, v := range r.refused {
		out[k] = v
	}
	return out
}

// refusal says whether to refuse with code now, and counts it.
func (r *Relay) refusal(code int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refuse != code {
		return false
	}
	r.refused[code]++
	return true
}

// NewSession implements smtp.Backend.
func (r *Relay) NewSession(*smtp.Conn) (smtp.Session, error) { return &relaySession{relay: r}, nil }

type relaySession struct {
	relay *Relay
	to    string
}

func (s *relaySession) Reset()        { s.to = "" }
func (s *relaySession) Logout() error { return nil }

func (s *relaySession) Mail(string, *smtp.MailOptions) error {
	if s.relay.refusal(451) {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Local problem; try again later"}
	}
	return nil
}

func (s *relaySession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = to
	return nil
}

// Data reads the mail's header, discards the rest, waits the delay and
// records the mail as accepted: from then on it counts as delivered, even
// if the client is gone before reading the 250.
func (s *relaySession) Data(body io.Reader) error {
	br := bufio.NewReader(body)
	h, err := textproto.NewReader(br).ReadMIMEHeader()
	if err != nil {
		return fmt.Errorf("relay: read header: %w", err)
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return err
	}
	s.relay.mu.Lock()
	delay := s.relay.delay
	s.relay.mu.Unlock()
	time.Sleep(delay)
	d := Delivery{MessageID: strings.Trim(strings.TrimSpace(h.Get("Message-Id")), "<>"), Ticket: strings.TrimSpace(h.Get("X-Helpdesk-Ticket")),
		To: s.to, At: time.Now()}
	s.relay.mu.Lock()
	defer s.relay.mu.Unlock()
	s.relay.deliveries = append(s.relay.deliveries, d)
	if d.Ticket != "" && !s.relay.ticketSeen[d.Ticket] {
		s.relay.ticketSeen[d.Ticket] = true
		s.relay.tickets = append(s.relay.tickets, Ticket{TrackingID: d.Ticket, Email: d.To})
	}
	return nil
}

// refusingListener greets connections with 421 and hangs up while the
// relay refuses with 421.
type refusingListener struct {
	net.Listener
	relay *Relay
}

func (l *refusingListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil || !l.relay.refusal(421) {
			return c, err
		}
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))                       //nolint:errcheck // best effort
		io.WriteString(c, "421 4.3.2 Service shutting down; try again later\r\n") //nolint:errcheck // hanging up anyway
		c.Close()
	}
}
