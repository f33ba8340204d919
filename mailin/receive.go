// Package mailin turns received mail into tickets: it parses what arrives
// over SMTP (and from IMAP mailboxes), decides what it is, and hands it to
// the ticket store. It acknowledges its source only after the store has
// committed.
package mailin

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"regexp"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-message/textproto"
	"golang.org/x/sync/singleflight"

	"github.com/helpdeskgw/helpdesk/tickets"
)

// ticketStore is what mailin needs of the ticket store.
type ticketStore interface {
	Departments(ctx context.Context) ([]tickets.Department, error)
	IngestMail(ctx context.Context, in *tickets.InboundMail) (tickets.IngestResult, error)
}

// Receiver records received mail: one ticket (or log entry) per department
// it is addressed to.
type Receiver struct {
	store       ticketStore
	log         *slog.Logger
	tmpDir      string
	ownAddrs    []string
	departments departmentCache
	auth        *Authenticator
	trustedAuth []string
	metrics     *Metrics
}

// ReceiverOptions configures a Receiver.
type ReceiverOptions struct {
	Store  ticketStore
	Logger *slog.Logger
	// TempDir holds large mails and attachments while they are stored.
	// Default: the system's temporary directory.
	TempDir string
	// OwnAddresses are addresses the helpdesk sends from besides the
	// departments' (HELPDESK_FROM): mail from them is never acknowledged.
	OwnAddresses []string
	// Authenticator, when set, checks SPF, DKIM and DMARC of mail received
	// over SMTP.
	Authenticator *Authenticator
	// TrustedAuthServIDs name the servers whose Authentication-Results
	// headers are believed for mail taken from mailboxes (the provider that
	// received it, e.g. "mx.google.com").
	TrustedAuthServIDs []string
	// Metrics, when set, counts what is received (shared with the SMTP
	// listener and the pollers that deliver to this Receiver).
	Metrics *Metrics
}

// NewReceiver returns a Receiver.
func NewReceiver(opts ReceiverOptions) *Receiver {
	r := &Receiver{store: opts.Store, log: opts.Logger, tmpDir: opts.TempDir, auth: opts.Authenticator, trustedAuth: opts.TrustedAuthServIDs, metrics: opts.Metrics}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.tmpDir == "" {
		r.tmpDir = os.TempDir()
	}
	for _, a := range opts.OwnAddresses {
		if a = tickets.NormalizeAddress(a); a != "" {
			r.ownAddrs = append(r.ownAddrs, a)
		}
	}
	r.departments.store = opts.Store
	return r
}

// Envelope is how a mail reached us.
type Envelope struct {
	Source    string // "smtp" or "imap"
	SourceRef string
	// From is the envelope sender; NullSender is set when it was "<>".
	From       string
	NullSender bool
	To         []string
	// ClientIP and Helo are the SMTP client's address and EHLO name.
	ClientIP net.IP
	Helo     string
	// Departments the mail is for, each once.
	Departments []tickets.Department
}

// Department returns the department an address belongs to. It reports
// false for an address no department uses.
func (r *Receiver) Department(ctx context.Context, addr string) (tickets.Department, bool, error) {
	return r.departments.lookup(ctx, addr)
}

// Deliver parses a mail and records it for each of env's departments. When
// it returns nil, every department's copy is committed.
func (r *Receiver) Deliver(ctx context.Context, env Envelope, raw tickets.Content) ([]tickets.IngestResult, error) {
	start := time.Now()
	// Mail from a mailbox arrives without a recipient lookup: the
	// departments' addresses must be known to recognize our own mail.
	r.departments.freshen(ctx)
	m, err := r.read(&env, raw)
	if err != nil {
		return nil, err
	}
	defer m.parsed.Close()
	m.auth = r.authenticate(ctx, env, raw, m.parsed)
	results := make([]tickets.IngestResult, 0, len(env.Departments))
	for _, d := range env.Departments {
		res, err := r.store.IngestMail(ctx, m.inbound(env, d, raw))
		if err != nil {
			return results, err
		}
		results = append(results, res)
		r.metrics.mailStored(env.Source, res)
		r.log.Info("mail received",
			"source", env.Source, "department", d.Slug, "message_id", m.parsed.MessageID, "from", m.parsed.From.Email,
			"disposition", res.Disposition, "ticket", res.TrackingID, "reason", res.Reason,
			"ack", res.AckQueued, "automatic", m.automatic, "size", raw.Size, "attachments", len(m.parsed.Attachments),
			"problems", len(m.parsed.Problems), "dmarc", m.auth.DMARC, "draft", res.DraftID, "elapsed", time.Since(start))
	}
	r.metrics.ingestTook(env.Source, time.Since(start))
	return results, nil
}

// reading is what is learnt of a mail before it is stored, the same for
// every department it is for.
type reading struct {
	parsed    *Parsed
	automatic string
	bounce    *tickets.Bounce
	auth      tickets.Auth
	newText   string
	tracking  string
}

// read parses a mail and classifies it. The caller closes m.parsed.
func (r *Receiver) read(env *Envelope, raw tickets.Content) (*reading, error) {
	parsed, err := r.parse(raw)
	if err != nil {
		return nil, fmt.Errorf("parse mail: %w", err)
	}
	if env.From == "" && !env.NullSender {
		// Mail taken from a mailbox has no envelope of ours; the delivering
		// server wrote the sender it saw in Return-Path.
		env.From, env.NullSender = returnPath(parsed.Header)
	}
	m := &reading{parsed: parsed, automatic: r.automaticReason(parsed, *env),
		newText: StripQuoted(parsed.Text), tracking: subjectTrackingID(parsed.Subject)}
	if report, ok := ParseDeliveryReport(parsed); ok {
		m.bounce = report.bounce()
		if m.automatic == "" {
			m.automatic = "delivery status notification"
		}
	}
	return m, nil
}

// inbound is the mail as the store records it for department d.
func (m *reading) inbound(env Envelope, d tickets.Department, raw tickets.Content) *tickets.InboundMail {
	p := m.parsed
	return &tickets.InboundMail{
		Source:          env.Source,
		SourceRef:       env.SourceRef,
		Department:      d,
		EnvelopeFrom:    env.From,
		EnvelopeTo:      strings.Join(env.To, ", "),
		MessageID:       p.MessageID,
		InReplyTo:       p.InReplyTo,
		References:      p.References,
		From:            p.From,
		Subject:         p.Subject,
		Text:            p.Text,
		HTML:            p.HTML,
		Attachments:     p.Attachments,
		Raw:             raw,
		ParseProblems:   p.Problems,
		Automatic:       m.automatic,
		NewText:         m.newText,
		SubjectTracking: m.tracking,
		Bounce:          m.bounce,
		Auth:            m.auth,
	}
}

// authenticate says who really sent the mail: checked here for mail
// received over SMTP from the internet, read from a trusted server's
// Authentication-Results for mail taken from a mailbox or handed on by a
// relay on our own network (whose address says nothing of the sender: SPF
// against it would fail every mail).
func (r *Receiver) authenticate(ctx context.Context, env Envelope, raw tickets.Content, p *Parsed) tickets.Auth {
	var res AuthResults
	ip := env.ClientIP
	relayed := ip == nil || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast()
	if env.Source == "smtp" && r.auth != nil && !relayed {
		res = r.auth.Check(ctx, reader(raw), env.ClientIP, env.Helo, env.From, p.From.Email)
	} else {
		res = TrustedResults(p.Header, r.trustedAuth)
	}
	detail := res.Detail
	if res.Source != "" && detail != "" {
		detail = res.Source + ": " + detail
	}
	return tickets.Auth{SPF: res.SPF, DKIM: res.DKIM, DMARC: res.DMARC, Detail: detail}
}

// subjectTag finds a tracking ID tag in a subject: "[ABC-DEF-GHIJ]", with or
// without "#", in any case, with spaces for dashes.
var subjectTag = regexp.MustCompile(`\[\s*#?\s*([A-Za-z0-9]{3}[\s-]?[A-Za-z0-9]{3}[\s-]?[A-Za-z0-9]{4})\s*\]`)

// subjectTrackingID returns the tracking ID a subject's tag names, in its
// canonical form, or "".
func subjectTrackingID(subject string) string {
	for _, m := range subjectTag.FindAllStringSubmatch(subject, 5) {
		if id, err := tickets.ParseTrackingID(m[1]); err == nil {
			return id
		}
	}
	return ""
}

// bounce is the report as the ticket store records it.
func (d *DeliveryReport) bounce() *tickets.Bounce {
	b := &tickets.Bounce{OriginalMessageID: d.OriginalMessageID}
	for _, rc := range d.Recipients {
		b.Recipients = append(b.Recipients, tickets.BouncedRecipient{Address: rc.Address, Action: rc.Action, Status: rc.Status, Diagnostic: rc.Diagnostic})
	}
	return b
}

// parse reads the mail. Should the parser ever fail on some input, the mail
// still becomes a ticket: its text is the raw mail, which is kept anyway,
// and the failure is one of its problems.
func (r *Receiver) parse(raw tickets.Content) (p *Parsed, err error) {
	defer func() {
		if v := recover(); v != nil {
			r.log.Error("parser failed; keeping the mail as raw text", "panic", v, "stack", string(debug.Stack()))
			text, _, _ := readLimited(reader(raw), maxTextBytes)
			p, err = &Parsed{Text: toUTF8(text), Problems: []string{fmt.Sprintf("the parser failed (%v); the mail is kept as it came", v)}}, nil
		}
	}()
	return Parse(reader(raw), r.tmpDir)
}

// automaticReason says why a mail comes from a machine rather than a person
// (RFC 3834), or "" when it does not. Machines are never acknowledged, which
// is what keeps two auto-responders from mailing each other forever.
func (r *Receiver) automaticReason(p *Parsed, env Envelope) string {
	h := p.Header
	if env.NullSender {
		return "null return path"
	}
	if v := headerToken(h, "Auto-Submitted"); v != "" && v != "no" {
		return "Auto-Submitted: " + v
	}
	switch v := headerToken(h, "Precedence"); v {
	case "bulk", "junk", "list":
		return "Precedence: " + v
	}
	for _, k := range []string{"List-Id", "List-Unsubscribe", "X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress"} {
		if h.Has(k) {
			return k + " header"
		}
	}
	for _, a := range []string{p.From.Email, env.From} {
		if isDaemonAddress(a) {
			return "sender " + a
		}
		if a != "" && r.isOwnAddress(a) {
			return "mail from the helpdesk's own address " + a
		}
	}
	return ""
}

func (r *Receiver) isOwnAddress(addr string) bool {
	addr = tickets.NormalizeAddress(addr)
	for _, a := range r.ownAddrs {
		if a == addr {
			return true
		}
	}
	_, ok := r.departments.cached(addr)
	return ok
}

// returnPath reads the envelope sender a delivering server recorded:
// "<>" is the null sender of bounces and other automatic mail.
func returnPath(h textproto.Header) (from string, null bool) {
	v := strings.TrimSpace(h.Get("Return-Path"))
	if v == "" {
		return "", false
	}
	v = strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(v, "<"), ">"))
	return v, v == ""
}

// headerToken is a header's first word, lower-cased ("auto-replied" of
// "Auto-Replied; owner=x").
func headerToken(h textproto.Header, key string) string {
	v, _, _ := strings.Cut(h.Get(key), ";")
	return strings.ToLower(strings.TrimSpace(v))
}

// departmentCache keeps the address → department map in memory: it is read
// for every recipient and changes seldom. An unknown address reloads it, at
// most once a second, so a new department is served at once. One reload
// runs at a time, outside the lock; while the database is away, known
// addresses are served from memory and unknown ones get an error (a 451:
// the sender retries) rather than a refusal.
type departmentCache struct {
	store ticketStore
	load  singleflight.Group

	mu       sync.Mutex
	byAddr   map[string]tickets.Department
	loadedAt time.Time // last successful load
	triedAt  time.Time // last attempt
	lastErr  error     // of the last attempt
}

const (
	departmentCacheTTL = 30 * time.Second
	departmentReload   = time.Second
)

func (c *departmentCache) lookup(ctx context.Context, addr string) (tickets.Department, bool, error) {
	addr = tickets.NormalizeAddress(addr)
	if addr == "" {
		return tickets.Department{}, false, nil
	}
	c.mu.Lock()
	d, ok := c.byAddr[addr]
	now := time.Now()
	fresh := now.Sub(c.loadedAt) < departmentCacheTTL
	retry := now.Sub(c.triedAt) >= departmentReload
	lastErr := c.lastErr
	c.mu.Unlock()
	if ok && (fresh || !retry) {
		return d, true, nil
	}
	if !retry {
		return d, false, lastErr
	}
	_, err, _ := c.load.Do("departments", func() (any, error) { return nil, c.reload(ctx) })
	c.mu.Lock()
	d, ok = c.byAddr[addr]
	c.mu.Unlock()
	if !ok && err != nil {
		return d, false, err
	}
	return d, ok, nil
}

// freshen reloads the departments when they are older than the cache's
// lifetime, as lookup would; while the database is away, the addresses
// already known are kept.
func (c *departmentCache) freshen(ctx context.Context) {
	c.mu.Lock()
	now := time.Now()
	due := now.Sub(c.loadedAt) >= departmentCacheTTL && now.Sub(c.triedAt) >= departmentReload
	c.mu.Unlock()
	if due {
		c.load.Do("departments", func() (any, error) { return nil, c.reload(ctx) }) //nolint:errcheck // lookup reports it
	}
}

func (c *departmentCache) reload(ctx context.Context) error {
	list, err := c.store.Departments(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.triedAt, c.lastErr = time.Now(), err
	if err != nil {
		return err
	}
	c.byAddr = make(map[string]tickets.Department, len(list))
	for _, d := range list {
		c.byAddr[d.Address] = d
	}
	c.loadedAt = c.triedAt
	return nil
}

func (c *departmentCache) cached(addr string) (tickets.Department, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.byAddr[addr]
	return d, ok
}
