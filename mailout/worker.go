// Package mailout sends the mail the outbox holds: it renders each one in
// its ticket's language, delivers it to the spool or an SMTP relay, and
// records the outcome, retrying with backoff and giving up loudly.
package mailout

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"mime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-message/mail"

	"github.com/helpdeskgw/helpdesk/templates"
	"github.com/helpdeskgw/helpdesk/tickets"
)

// outboxStore is what the worker needs of the ticket store.
type outboxStore interface {
	ClaimOutbox(ctx context.Context, limit int) (*tickets.OutboxBatch, error)
	NextOutboxAttempt(ctx context.Context) (time.Time, bool, error)
	IssueTokens(ctx context.Context, scope tickets.Scope, ticketIDs []int64) ([]string, error)
	TokenTTL() time.Duration
}

// Options configures a Worker.
type Options struct {
	Store     outboxStore
	Templates *templates.Set
	// MailOut is HELPDESK_MAIL_OUT: file://DIR, smtp://… or smtps://….
	MailOut string
	// BaseURL prefixes the links in mails (HELPDESK_BASE_URL).
	BaseURL string
	// From, when set, is the envelope sender of every mail (HELPDESK_FROM);
	// otherwise each department's address is.
	From   string
	Logger *slog.Logger
	// Senders is how many batches go out at once. Default: 4.
	Senders int
	// BatchSize is how many mails one claim takes. Default: 100.
	BatchSize int
	// Linger is the pause after a batch before the next claim. Default:
	// 100ms.
	Linger time.Duration
	// MaxAttempts before a mail is given up. Default: 15 (about two days).
	MaxAttempts int
}

// Worker drains the outbox.
type Worker struct {
	store       outboxStore
	tmpl        *templates.Set
	sender      sender
	baseURL     string
	from        string
	log         *slog.Logger
	senders     int
	batchSize   int
	maxAttempts int
	linger      time.Duration
	wake        chan struct{}

	sent, failed, panics atomic.Int64
}

// New checks opts and returns a Worker; Run starts it.
func New(opts Options) (*Worker, error) {
	s, err := NewSender(opts.MailOut)
	if err != nil {
		return nil, err
	}
	w := &Worker{
		store: opts.Store, tmpl: opts.Templates, sender: s, baseURL: strings.TrimRight(opts.BaseURL, "/"),
		from: opts.From, log: opts.Logger, senders: opts.Senders, batchSize: opts.BatchSize,
		maxAttempts: opts.MaxAttempts, linger: opts.Linger, wake: make(chan struct{}, 1),
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	if w.senders <= 0 {
		w.senders = 4
	}
	if w.batchSize <= 0 {
		w.batchSize = 100
	}
	if w.linger <= 0 {
		w.linger = 100 * time.Millisecond
	}
	if w.maxAttempts <= 0 {
		w.maxAttempts = 15
	}
	return w, nil
}

// Destination names where mail goes, for logs.
func (w *Worker) Destination() string { return w.sender.Describe() }

// Wake tells the worker mail was queued. It never blocks.
func (w *Worker) Wake() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Stats counts what the worker did since it started.
type Stats struct{ Sent, Failed, Panics int64 }

// Stats returns the worker's counters.
func (w *Worker) Stats() Stats {
	return Stats{Sent: w.sent.Load(), Failed: w.failed.Load(), Panics: w.panics.Load()}
}

// idlePoll bounds the sleep between looks at the outbox: mail queued by
// another instance, or due for a retry, is picked up within it.
const idlePoll = 2 * time.Second

// batchTimeout bounds one batch: claiming, sending and recording.
const batchTimeout = 5 * time.Minute

// Run sends mail until ctx ends. A batch in flight when ctx ends is
// finished first.
func (w *Worker) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for range w.senders {
		wg.Go(func() { w.loop(ctx) })
	}
	wg.Wait()
	return nil
}

func (w *Worker) loop(ctx context.Context) {
	errDelay := 100 * time.Millisecond
	for ctx.Err() == nil {
		// A batch is finished even when ctx ends meanwhile: its mails are
		// being sent, and the outcome must be recorded. A bound still
		// applies, so a hung relay cannot hold shutdown forever.
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), batchTimeout)
		n, err := w.drain(bctx)
		cancel()
		if err != nil {
			w.log.Error("outbox", "err", err)
			sleep(ctx, errDelay)
			errDelay = min(errDelay*2, 30*time.Second)
			continue
		}
		errDelay = 100 * time.Millisecond
		if n == w.batchSize {
			w.Wake() // more may be waiting: let another sender help
			continue
		}
		if n > 0 {
			// Mail is arriving. Let some gather before the next claim, so
			// that under load a batch shares its fixed costs (the claim,
			// the tokens, the relay connection, the commit) among many
			// mails rather than a few. A mail arriving after a quiet spell
			// still goes at once: the pause follows a batch.
			sleep(ctx, w.linger)
			continue
		}
		wait := idlePoll
		if at, ok, err := w.store.NextOutboxAttempt(ctx); err == nil && ok {
			wait = min(max(time.Until(at), 10*time.Millisecond), idlePoll)
		}
		select {
		case <-ctx.Done():
		case <-w.wake:
		case <-time.After(wait):
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// drain claims one batch, sends it and records the outcome. It returns how
// many mails the batch held.
func (w *Worker) drain(ctx context.Context) (int, error) {
	batch, err := w.store.ClaimOutbox(ctx, w.batchSize)
	if err != nil || batch == nil {
		return 0, err
	}
	n := len(batch.Mails)
	// Tokens are committed before any mail carrying one leaves, so a link
	// that was sent always works, whatever happens to the batch.
	ids := make([]int64, n)
	for i, m := range batch.Mails {
		ids[i] = m.Ticket.ID
	}
	tokens, err := w.store.IssueTokens(ctx, tickets.ScopeTicket, ids)
	if err != nil {
		batch.Rollback(ctx)
		return 0, err
	}
	outcomes := make([]error, n)
	conn, err := w.sender.Open(ctx)
	for i, m := range batch.Mails {
		outcomes[i] = err
		if err == nil {
			outcomes[i] = w.send(ctx, conn, m, tokens[i])
		}
	}
	if conn != nil {
		// Closing makes the batch durable (the spool syncs its files); a
		// mail counts as sent only after that.
		if err := conn.Close(); err != nil {
			for i := range outcomes {
				if outcomes[i] == nil {
					outcomes[i] = err
				}
			}
		}
	}
	for i, m := range batch.Mails {
		w.record(batch, m, outcomes[i])
	}
	if err := batch.Commit(ctx); err != nil {
		// The mails went out but are still pending: they will be sent
		// again. The spool writes the same file; a relay delivers twice,
		// the lesser evil to losing them.
		return 0, err
	}
	return n, nil
}

func (w *Worker) record(batch *tickets.OutboxBatch, m tickets.OutboxMail, err error) {
	attempt := m.Attempts + 1
	var perm *PermanentError
	switch {
	case err == nil:
		batch.Sent(m.ID)
		w.sent.Add(1)
		w.log.Info("mail sent", "kind", m.Kind, "ticket", m.Ticket.TrackingID, "to", m.Recipient,
			"message_id", m.MessageID, "attempt", attempt, "queued_for", time.Since(m.CreatedAt).Round(time.Millisecond))
	case errors.As(err, &perm) || attempt >= w.maxAttempts:
		batch.Fail(m.ID, err.Error())
		w.failed.Add(1)
		w.log.Error("mail given up", "kind", m.Kind, "ticket", m.Ticket.TrackingID, "to", m.Recipient,
			"message_id", m.MessageID, "attempt", attempt, "err", err)
	default:
		at := time.Now().Add(backoff(attempt))
		batch.Retry(m.ID, at, err.Error())
		w.log.Warn("mail not sent, will retry", "kind", m.Kind, "ticket", m.Ticket.TrackingID, "to", m.Recipient,
			"message_id", m.MessageID, "attempt", attempt, "retry_at", at.Format(time.RFC3339), "err", err)
	}
}

// backoff is the wait after the n-th failed attempt: 30 s doubling to at
// most 6 h, with jitter so that many failed mails do not retry in step.
func backoff(n int) time.Duration {
	d := 30 * time.Second << min(n-1, 10)
	d = min(d, 6*time.Hour)
	return d/2 + rand.N(d/2+1)
}

func (w *Worker) send(ctx context.Context, c conn, m tickets.OutboxMail, token string) (err error) {
	defer func() {
		if p := recover(); p != nil {
			w.panics.Add(1)
			err = fmt.Errorf("panic composing or sending mail: %v", p)
		}
	}()
	data, from, err := w.compose(m, token)
	if err != nil {
		return &PermanentError{err}
	}
	return c.Send(ctx, Envelope{ID: m.ID, From: from, To: m.Recipient, Data: data})
}

// ackData is what the acknowledgement templates show.
type ackData struct {
	TrackingID   string
	Subject      string
	CustomerName string
	Department   string
	Link         string
	Priority     tickets.Priority
	LinkDays     int
}

func (w *Worker) compose(m tickets.OutboxMail, token string) ([]byte, string, error) {
	t := m.Ticket
	var rendered templates.Mail
	var err error
	switch m.Kind {
	case tickets.KindAck:
		rendered, err = w.tmpl.RenderMail(templates.MailAck, t.Locale, ackData{
			TrackingID: t.TrackingID, Subject: t.Subject, CustomerName: t.CustomerName,
			Department: t.Department.Name, Link: w.baseURL + "/t/" + token, Priority: t.Priority,
			LinkDays: int(w.store.TokenTTL() / (24 * time.Hour)),
		})
	default:
		err = fmt.Errorf("unknown mail kind %q", m.Kind)
	}
	if err != nil {
		return nil, "", err
	}
	from := t.Department.Address
	envelopeFrom := from
	if w.from != "" {
		envelopeFrom = w.from
	}

	var h mail.Header
	h.SetDate(time.Now())
	h.SetAddressList("From", []*mail.Address{{Name: t.Department.Name, Address: from}})
	h.SetAddressList("To", []*mail.Address{{Name: t.CustomerName, Address: m.Recipient}})
	h.Set("Subject", encodeSubject(rendered.Subject))
	h.SetMessageID(m.MessageID)
	if m.InReplyTo != "" {
		h.SetMsgIDList("In-Reply-To", []string{m.InReplyTo})
	}
	if len(m.References) > 0 {
		h.SetMsgIDList("References", m.References)
	}
	// RFC 3834: this is an automatic answer; well-behaved responders will
	// not answer it, and Exchange is asked not to send out-of-office replies.
	h.Set("Auto-Submitted", "auto-replied")
	h.Set("X-Auto-Response-Suppress", "All")
	h.Set("X-Helpdesk-Ticket", t.TrackingID)

	var buf bytes.Buffer
	buf.Grow(len(rendered.Text) + len(rendered.HTML) + 4<<10)
	mw, err := mail.CreateInlineWriter(&buf, h)
	if err != nil {
		return nil, "", fmt.Errorf("write mail: %w", err)
	}
	for _, part := range []struct{ ctype, body string }{
		{"text/plain", rendered.Text},
		{"text/html", rendered.HTML},
	} {
		var ph mail.InlineHeader
		ph.SetContentType(part.ctype, map[string]string{"charset": "utf-8"})
		ph.Set("Content-Transfer-Encoding", "quoted-printable")
		pw, err := mw.CreatePart(ph)
		if err != nil {
			return nil, "", fmt.Errorf("write mail part: %w", err)
		}
		if _, err := pw.Write([]byte(part.body)); err != nil {
			return nil, "", fmt.Errorf("write mail part: %w", err)
		}
		if err := pw.Close(); err != nil {
			return nil, "", fmt.Errorf("write mail part: %w", err)
		}
	}
	if err := mw.Close(); err != nil {
		return nil, "", fmt.Errorf("write mail: %w", err)
	}
	return buf.Bytes(), envelopeFrom, nil
}

// encodeSubject leaves the ASCII start of a subject readable as it is (the
// "[ABC-DEF-GHIJ]" tag above all, which filters and other systems match on)
// and encodes the rest as RFC 2047 words.
func encodeSubject(s string) string {
	cut := len(s)
	for i, r := range s {
		if r >= utf8.RuneSelf || r < ' ' {
			cut = strings.LastIndexByte(s[:i], ' ') + 1
			break
		}
	}
	head, tail := s[:cut], s[cut:]
	if strings.Contains(head, "=?") {
		head, tail = "", s
	}
	if tail == "" {
		return head
	}
	return head + mime.QEncoding.Encode("utf-8", tail)
}
