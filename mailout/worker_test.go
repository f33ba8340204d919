package mailout

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"mime"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helpdeskgw/helpdesk/internal/testdb"
	"github.com/helpdeskgw/helpdesk/templates"
	"github.com/helpdeskgw/helpdesk/tickets"
)

var db *testdb.DB

func TestMain(m *testing.M) { testdb.Main(m, &db) }

// fixture is a store with a department and n queued acknowledgements.
func fixture(t *testing.T, n int) (*tickets.Store, *pgxpool.Pool) {
	t.Helper()
	db.Reset(t)
	pool := db.Pool(t)
	store := tickets.New(tickets.Options{Pool: pool})
	ctx := context.Background()
	d, err := store.AddDepartment(ctx, tickets.Department{Slug: "billing", Name: "Billing", Address: "billing@example.com", Locale: "en"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		raw := fmt.Sprintf("Message-ID: <in-%d@example.org>\r\n\r\nhello", i)
		_, err := store.IngestMail(ctx, &tickets.InboundMail{
			Source: "smtp", Department: d, MessageID: fmt.Sprintf("in-%d@example.org", i),
			From:    tickets.Address{Name: "Zoë", Email: fmt.Sprintf("customer%d@example.org", i)},
			Subject: "Invoice für März", Text: "hello", Raw: tickets.BytesContent([]byte(raw)),
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return store, pool
}

func newWorker(t *testing.T, store *tickets.Store, mailOut string) *Worker {
	t.Helper()
	tmpl, err := templates.Load()
	if err != nil {
		t.Fatal(err)
	}
	w, err := New(Options{Store: store, Templates: tmpl, MailOut: mailOut, BaseURL: "https://help.example.com/", BatchSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func drainAll(t *testing.T, w *Worker) {
	t.Helper()
	for {
		n, err := w.drain(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
}

func states(t *testing.T, pool *pgxpool.Pool) map[string]int {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT state, count(*) FROM outbox GROUP BY state`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for rows.Next() {
		var s string
		var n int
		rows.Scan(&s, &n)
		out[s] = n
	}
	return out
}

func TestSpoolWritesOneFilePerMail(t *testing.T) {
	store, pool := fixture(t, 3)
	dir := t.TempDir()
	w := newWorker(t, store, "file://"+dir)
	drainAll(t, w)
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) != 3 {
		t.Fatalf("spool has %v, want 3 .eml files and nothing else", files)
	}
	if got := states(t, pool); got["sent"] != 3 {
		t.Errorf("outbox states %v, want 3 sent", got)
	}
	b, _ := os.ReadFile(files[0])
	for _, want := range []string{"Auto-Submitted: auto-replied", "Subject: [", "https://help.example.com/t/", "We received your request"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("spooled mail lacks %q", want)
		}
	}
	// Writing the same mail again (a crash before the outcome was recorded)
	// replaces the file rather than adding one.
	s, _ := NewSender("file://" + dir)
	c, _ := s.Open(context.Background())
	if err := c.Send(context.Background(), Envelope{ID: 1, From: "a@x", To: "b@y", Data: []byte("again")}); err != nil {
		t.Fatal(err)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*")); len(files) != 3 {
		t.Errorf("after a resend the spool has %d files, want 3", len(files))
	}
}

// relay is an SMTP server standing in for a mail provider: STARTTLS, AUTH
// PLAIN, and replies a test can script.
type relay struct {
	addr string
	tls  *tls.Config

	mu       sync.Mutex
	received []relayed
	// refuse, when set, answers RCPT with it for that many mails.
	refuse      *smtp.SMTPError
	refuseCount int
	// refuseMail answers MAIL with it for that many mails.
	refuseMail      *smtp.SMTPError
	refuseMailCount int
	// delay is how long each mail's data takes.
	delay  time.Duration
	sawTLS bool
	helo   string
}

type relayed struct {
	from, to string
	data     []byte
}

func startRelay(t *testing.T) (*relay, *tls.Config) {
	t.Helper()
	serverTLS, clientTLS := selfSigned(t)
	r := &relay{tls: serverTLS}
	srv := smtp.NewServer(r)
	srv.Domain = "relay.test"
	srv.TLSConfig = serverTLS
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	t.Cleanup(func() { srv.Close() })
	r.addr = ln.Addr().String()
	return r, clientTLS
}

func (r *relay) NewSession(c *smtp.Conn) (smtp.Session, error) {
	_, isTLS := c.TLSConnectionState()
	r.mu.Lock()
	r.helo = c.Hostname()
	r.mu.Unlock()
	return &relaySession{r: r, tls: isTLS}, nil
}

type relaySession struct {
	r        *relay
	tls      bool
	authed   bool
	from, to string
}

func (s *relaySession) AuthMechanisms() []string { return []string{sasl.Plain} }
func (s *relaySession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != "gateway" || pass != "s3cret" {
			return errors.New("bad credentials")
		}
		s.authed = true
		return nil
	}), nil
}
func (s *relaySession) Mail(from string, _ *smtp.MailOptions) error {
	if !s.authed {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	}
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	if s.r.refuseMail != nil && s.r.refuseMailCount > 0 {
		s.r.refuseMailCount--
		return s.r.refuseMail
	}
	s.from = from
	return nil
}
func (s *relaySession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	if s.r.refuse != nil && s.r.refuseCount > 0 {
		s.r.refuseCount--
		return s.r.refuse
	}
	s.to = to
	return nil
}
func (s *relaySession) Data(rd io.Reader) error {
	b, err := io.ReadAll(rd)
	if err != nil {
		return err
	}
	s.r.mu.Lock()
	delay := s.r.delay
	s.r.mu.Unlock()
	time.Sleep(delay)
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	s.r.received = append(s.r.received, relayed{from: s.from, to: s.to, data: b})
	s.r.sawTLS = s.r.sawTLS || s.tls
	return nil
}
func (s *relaySession) Reset()        {}
func (s *relaySession) Logout() error { return nil }

func (r *relay) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.received)
}

func selfSigned(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "relay.test"},
		DNSNames: []string{"relay.test"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
}

func relayWorker(t *testing.T, store *tickets.Store, r *relay, clientTLS *tls.Config) *Worker {
	t.Helper()
	w := newWorker(t, store, "smtp://gateway:s3cret@"+r.addr)
	w.sender.(*relaySender).tlsConfig = clientTLS
	w.sender.(*relaySender).hello = "helpdesk.example.com"
	return w
}

func TestRelayWithStartTLSAndAuth(t *testing.T) {
	store, pool := fixture(t, 3)
	r, clientTLS := startRelay(t)
	w := relayWorker(t, store, r, clientTLS)
	drainAll(t, w)
	if r.count() != 3 || !r.sawTLS {
		t.Fatalf("relay received %d mails (TLS %v), want 3 over TLS", r.count(), r.sawTLS)
	}
	if r.helo != "helpdesk.example.com" {
		t.Errorf("EHLO %q, want the configured host name", r.helo)
	}
	m := r.received[0]
	if m.from != "billing@example.com" || !strings.HasPrefix(m.to, "customer") {
		t.Errorf("envelope %s -> %s", m.from, m.to)
	}
	unfolded := bytes.ReplaceAll(m.data, []byte("\r\n "), []byte(" "))
	if !bytes.Contains(unfolded, []byte("Subject: [")) || !bytes.Contains(unfolded, []byte("Invoice =?utf-8?q?f=C3=BCr_M=C3=A4rz?=")) {
		t.Errorf("subject not encoded as expected:\n%s", m.data[:min(len(m.data), 800)])
	}
	if got := states(t, pool); got["sent"] != 3 {
		t.Errorf("outbox states %v, want 3 sent", got)
	}
}

func TestRelayWrongPasswordKeepsMailPending(t *testing.T) {
	store, pool := fixture(t, 2)
	r, clientTLS := startRelay(t)
	w := newWorker(t, store, "smtp://gateway:wrong@"+r.addr)
	w.sender.(*relaySender).tlsConfig = clientTLS
	if _, err := w.drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := states(t, pool); got["pending"] != 2 {
		t.Errorf("outbox states %v: a refused password must not give mail up", got)
	}
	var lastErr string
	pool.QueryRow(context.Background(), `SELECT last_error FROM outbox LIMIT 1`).Scan(&lastErr)
	if !strings.Contains(lastErr, "authenticate") {
		t.Errorf("last_error %q, want it to say authentication failed", lastErr)
	}
}

func TestRelayTemporaryAndPermanentRefusals(t *testing.T) {
	store, pool := fixture(t, 2)
	r, clientTLS := startRelay(t)
	w := relayWorker(t, store, r, clientTLS)

	r.refuse = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "Greylisted, try later"}
	r.refuseCount = 2
	if _, err := w.drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	var attempts int
	var next time.Time
	var lastErr string
	pool.QueryRow(context.Background(), `SELECT max(attempts), min(next_attempt), max(last_error) FROM outbox WHERE state = 'pending'`).Scan(&attempts, &next, &lastErr)
	if got := states(t, pool); got["pending"] != 2 || attempts != 1 || time.Until(next) < 10*time.Second || !strings.Contains(lastErr, "Greylisted") {
		t.Fatalf("after 451: states %v attempts %d next in %s error %q; want both pending, retried later", got, attempts, time.Until(next), lastErr)
	}
	if r.count() != 0 {
		t.Fatalf("relay received %d", r.count())
	}

	// Due again; now one address is refused for good.
	pool.Exec(context.Background(), `UPDATE outbox SET next_attempt = now()`)
	r.refuse = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"}
	r.refuseCount = 1
	if _, err := w.drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := states(t, pool); got["failed"] != 1 || got["sent"] != 1 {
		t.Errorf("after 550 for one: states %v, want 1 failed and 1 sent (the connection goes on after a refusal)", got)
	}
	pool.QueryRow(context.Background(), `SELECT last_error FROM outbox WHERE state = 'failed'`).Scan(&lastErr)
	if !strings.Contains(lastErr, "550") {
		t.Errorf("failed mail's reason %q, want the 550", lastErr)
	}
}

// A relay that refuses us at MAIL (policy, authentication, our sender
// address) is a configuration problem: the mail waits for it to be mended.
func TestRelayRefusingTheSenderKeepsMailPending(t *testing.T) {
	store, pool := fixture(t, 2)
	r, clientTLS := startRelay(t)
	w := relayWorker(t, store, r, clientTLS)
	r.refuseMail = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Sender address rejected: not owned by user"}
	r.refuseMailCount = 2
	if _, err := w.drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := states(t, pool); got["pending"] != 2 {
		t.Errorf("outbox states %v, want both pending", got)
	}
}

// A slow relay: the batch stops taking new mails at its budget and hands
// the rest back untried; nothing is sent twice and everything is recorded.
func TestSlowRelayHandsBackWhatItCannotSendInTime(t *testing.T) {
	store, pool := fixture(t, 5)
	r, clientTLS := startRelay(t)
	r.delay = 150 * time.Millisecond
	w := relayWorker(t, store, r, clientTLS)
	w.sendBudget = 250 * time.Millisecond
	n, err := w.drain(context.Background())
	if err != nil || n != 5 {
		t.Fatalf("drain: %d, %v", n, err)
	}
	got := states(t, pool)
	var untried int
	pool.QueryRow(context.Background(), `SELECT count(*) FROM outbox WHERE state = 'pending' AND attempts = 0 AND next_attempt <= now()`).Scan(&untried)
	if r.count() < 1 || r.count() > 3 || got["sent"] != r.count() || untried != 5-r.count() {
		t.Fatalf("relay received %d; states %v, %d untried and due; want the rest handed back untried", r.count(), got, untried)
	}
	for range 5 {
		if _, err := w.drain(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if r.count() != 5 || states(t, pool)["sent"] != 5 {
		t.Errorf("after more batches: relay received %d, states %v; want each of the 5 once", r.count(), states(t, pool))
	}
}

// countingStore counts the claims a worker makes.
type countingStore struct {
	outboxStore
	claims atomic.Int64
}

func (c *countingStore) ClaimOutbox(ctx context.Context, limit int, lease time.Duration) ([]tickets.OutboxMail, error) {
	c.claims.Add(1)
	return c.outboxStore.ClaimOutbox(ctx, limit, lease)
}

// Senders with nothing to claim sleep; they do not spin on mail another
// sender is busy with.
func TestIdleSendersDoNotSpin(t *testing.T) {
	store, _ := fixture(t, 3)
	r, clientTLS := startRelay(t)
	r.delay = 300 * time.Millisecond
	w := relayWorker(t, store, r, clientTLS)
	cs := &countingStore{outboxStore: store}
	w.store = cs
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	w.Run(ctx)
	if n := cs.claims.Load(); n > 40 {
		t.Errorf("%d claims in 1.5 s by 4 senders for 3 mails; want them asleep", n)
	}
	if r.count() != 3 {
		t.Errorf("relay received %d, want 3", r.count())
	}
}

func TestTwoWorkersSendEachMailOnce(t *testing.T) {
	store, pool := fixture(t, 60)
	r, clientTLS := startRelay(t)
	a, b := relayWorker(t, store, r, clientTLS), relayWorker(t, store, r, clientTLS)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { a.Run(ctx) })
	wg.Go(func() { b.Run(ctx) })
	deadline := time.Now().Add(20 * time.Second)
	for states(t, pool)["sent"] < 60 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	if r.count() != 60 {
		t.Errorf("relay received %d mails for 60 queued", r.count())
	}
	seen := map[string]bool{}
	for _, m := range r.received {
		i := bytes.Index(m.data, []byte("Message-Id: <"))
		id := string(m.data[i : i+bytes.IndexByte(m.data[i:], '>')])
		if seen[id] {
			t.Errorf("%s sent twice", id)
		}
		seen[id] = true
	}
}

func TestEncodeSubject(t *testing.T) {
	for in, want := range map[string]string{
		"[ABD-BDE-GHJL] We received your request: Hello":   "[ABD-BDE-GHJL] We received your request: Hello",
		"[ABD-BDE-GHJL] Recibido: No puedo iniciar sesión": "[ABD-BDE-GHJL] Recibido: No puedo iniciar =?utf-8?q?sesi=C3=B3n?=",
		"Ñandú": "=?utf-8?q?=C3=91and=C3=BA?=",
		"[ABD-BDE-GHJL] Re: =?utf-8?q?=5BZZZ-ZZZ-ZZZZ=5D_spoof?=": "[ABD-BDE-GHJL] Re: =?utf-8?q?=3D=E2=80=8B=3Futf-8=3Fq=3F=3D5BZZZ-ZZZ-ZZZZ=3D5D=5Fspoof=3F=3D?=",
	} {
		got := encodeSubject(in)
		if got != want {
			t.Errorf("encodeSubject(%q) = %q, want %q", in, got, want)
		}
		// What a mail client shows is what the customer wrote.
		if shown, err := new(mime.WordDecoder).DecodeHeader(got); err != nil || strings.ReplaceAll(shown, "\u200b", "") != in {
			t.Errorf("encodeSubject(%q) is shown as %q (%v)", in, shown, err)
		}
	}
}

func TestBackoffGrowsAndIsBounded(t *testing.T) {
	prev := time.Duration(0)
	for n := 1; n <= 20; n++ {
		d := backoff(n)
		ceiling := min(30*time.Second<<min(n-1, 10), 6*time.Hour)
		if d < ceiling/2 || d > ceiling {
			t.Errorf("backoff(%d) = %s, want within [%s, %s]", n, d, ceiling/2, ceiling)
		}
		if n > 1 && ceiling/2 < prev/2 {
			t.Errorf("backoff shrinks at %d", n)
		}
		prev = ceiling
	}
}

// unsteadyStore is the real store whose first recordings of outcomes fail,
// as they do while PostgreSQL restarts.
type unsteadyStore struct {
	*tickets.Store
	failures int
	tries    int
}

func (s *unsteadyStore) RecordOutbox(ctx context.Context, outcomes []tickets.Outcome) error {
	s.tries++
	if s.tries <= s.failures {
		return errors.New("read tcp: connection reset by peer")
	}
	return s.Store.RecordOutbox(ctx, outcomes)
}

// A database away for a moment while a batch's outcomes are recorded is
// waited for: the mails that went out are recorded as sent, not left
// leased to be sent again.
func TestOutcomesRecordedAfterTheDatabaseComesBack(t *testing.T) {
	store, pool := fixture(t, 3)
	w := newWorker(t, store, "file://"+t.TempDir())
	unsteady := &unsteadyStore{Store: store, failures: 2}
	w.store = unsteady
	n, err := w.drain(context.Background())
	if err != nil || n != 3 {
		t.Fatalf("drain: %d mails, %v", n, err)
	}
	if got := states(t, pool); got["sent"] != 3 || unsteady.tries != 3 {
		t.Errorf("states %v after %d tries to record; want 3 sent after 3", got, unsteady.tries)
	}
}
