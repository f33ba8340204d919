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
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-message/mail"

	"github.com/helpdeskgw/helpdesk/templates"
	"github.com/helpdeskgw/helpdesk/tickets"
)

// outboxStore is what the worker needs of the ticket store.
type outboxStore interface {
	ClaimOutbox(ctx context.Context, limit int, lease time.Duration) ([]tickets.OutboxMail, error)
	NextOutboxAttempt(ctx context.Context) (time.Time, bool, error)
	RecordOutbox(ctx context.Context, outcomes []tickets.Outcome) error
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
	From string
	// Hostname is the name given in EHLO to a relay.
	Hostname string
	Logger   *slog.Logger
	// Senders is how many batches go out at once. Default: 4.
	Senders int
	// BatchSize is how many mails one claim takes. Default: 100.
	BatchSize int
	// Linger is the pause after a batch before the next claim. Default:
	// 100ms.
	Linger time.Duration
	// MaxAttempts before a mail is given up. Default: 15 (about two days).
	MaxAttempts int
	// Metrics, when set, counts what is sent and what fails.
	Metrics *Metrics
	// RelayTokens gives a relay that takes OAuth2 (auth=oauth2 in MailOut)
	// its access tokens.
	RelayTokens RelayTokens
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
	lease       time.Duration
	sendBudget  time.Duration
	wake        chan struct{}
	metrics     *Metrics

	sent, failed, panics atomic.Int64
}

// New checks opts and returns a Worker; Run starts it.
func New(opts Options) (*Worker, error) {
	s, err := NewSender(opts.MailOut)
	if err != nil {
		return nil, err
	}
	if r, ok := s.(*relaySender); ok {
		r.hello = opts.Hostname
		r.tokens = opts.RelayTokens
		if r.oauth != "" && r.tokens == nil {
			return nil, fmt.Errorf("mail out %s: auth=oauth2, but no OAuth2 tokens are available (is HELPDESK_SECRET_KEY set?)", r.Describe())
		}
	}
	w := &Worker{
		store: opts.Store, tmpl: opts.Templates, sender: s, baseURL: strings.TrimRight(opts.BaseURL, "/"),
		from: opts.From, log: opts.Logger, senders: opts.Senders, batchSize: opts.BatchSize,
		maxAttempts: opts.MaxAttempts, linger: opts.Linger, wake: make(chan struct{}, 1),
		lease: defaultLease, sendBudget: defaultSendBudget, metrics: opts.Metrics,
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

// Run sends mail until ctx ends. When it does, a batch in flight sends no
// further mail, records what it sent and hands the rest back.
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
		n, err := w.drain(ctx)
		if err != nil && ctx.Err() != nil {
			return // stopping: the claim was cut short, nothing was taken
		}
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
		// Nothing claimable. Sleep until the next retry falls due; a mail
		// due already is another sender's (locked), and waking for it would
		// only spin.
		wait := idlePoll
		if at, ok, err := w.store.NextOutboxAttempt(ctx); err == nil && ok && time.Until(at) > 0 {
			wait = min(time.Until(at), idlePoll)
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
	mails, err := w.store.ClaimOutbox(ctx, w.batchSize, w.lease)
	if err != nil || len(mails) == 0 {
		return 0, err
	}
	outcomes := w.sendAll(ctx, mails)
	if err := w.record(ctx, outcomes); err != nil {
		// The mails stay leased and are sent again when the lease ends:
		// the spool writes the same file; a relay delivers twice, the
		// lesser evil to losing them.
		return 0, err
	}
	return len(mails), nil
}

// record writes a batch's outcomes, even when ctx has ended meanwhile (the
// mails went out). A database that is away for a while (a restart) is
// waited for, within half the lease: failing to record means sending the
// batch again. Stopping cuts the wait to a few tries.
func (w *Worker) record(ctx context.Context, outcomes []tickets.Outcome) error {
	deadline := time.Now().Add(w.lease / 2)
	wait := 500 * time.Millisecond
	for try := 1; ; try++ {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
		err := w.store.RecordOutbox(rctx, outcomes)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().Add(wait).After(deadline) || (ctx.Err() != nil && try >= 3) {
			return err
		}
		w.log.Warn("outbox results not recorded yet; trying again", "mails", len(outcomes), "try", try, "err", err)
		time.Sleep(wait)
		wait = min(wait*2, 15*time.Second)
	}
}

// Timing of a batch. The lease must outlast the sending: the budget, plus
// one mail's timeout, plus recording.
const (
	defaultLease      = 10 * time.Minute
	defaultSendBudget = time.Minute
	sendTimeout       = 2 * time.Minute
	recordTimeout     = 30 * time.Second
)

// sendAll sends a batch over one connection. Mails not tried within the
// send budget, or once ctx ends (shutdown), are handed back untried.
func (w *Worker) sendAll(ctx context.Context, mails []tickets.OutboxMail) []tickets.Outcome {
	deadline := time.Now().Add(w.sendBudget)
	errs := make([]error, len(mails))
	tried := 0
	conn, openErr := w.sender.Open(ctx)
	for i, m := range mails {
		if ctx.Err() != nil || time.Now().After(deadline) {
			break
		}
		tried++
		if openErr != nil {
			errs[i] = openErr
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, sendTimeout)
		errs[i] = w.send(sctx, conn, m)
		cancel()
	}
	if conn != nil {
		// Closing makes the batch durable (the spool syncs its files); a
		// mail counts as sent only after that.
		if err := conn.Close(); err != nil {
			for i := range errs[:tried] {
				if errs[i] == nil {
					errs[i] = err
				}
			}
		}
	}
	outcomes := make([]tickets.Outcome, len(mails))
	for i, m := range mails {
		if i >= tried {
			outcomes[i] = tickets.Outcome{ID: m.ID}
			continue
		}
		outcomes[i] = w.outcome(m, errs[i])
	}
	return outcomes
}

func (w *Worker) outcome(m tickets.OutboxMail, err error) tickets.Outcome {
	attempt := m.Attempts + 1
	var perm *PermanentError
	switch {
	case err == nil:
		w.sent.Add(1)
		w.metrics.recordSent(m.Kind)
		w.log.Info("mail sent", "kind", m.Kind, "ticket", m.Ticket.TrackingID, "to", m.Recipient,
			"message_id", m.MessageID, "attempt", attempt, "queued_for", time.Since(m.CreatedAt).Round(time.Millisecond))
		return tickets.Outcome{ID: m.ID, State: "sent"}
	case errors.As(err, &perm) || attempt >= w.maxAttempts:
		w.failed.Add(1)
		w.metrics.recordFailure(err, true)
		w.log.Error("mail given up", "kind", m.Kind, "ticket", m.Ticket.TrackingID, "to", m.Recipient,
			"message_id", m.MessageID, "attempt", attempt, "err", err)
		return tickets.Outcome{ID: m.ID, State: "failed", Reason: err.Error()}
	default:
		w.metrics.recordFailure(err, false)
		at := time.Now().Add(backoff(attempt))
		w.log.Warn("mail not sent, will retry", "kind", m.Kind, "ticket", m.Ticket.TrackingID, "to", m.Recipient,
			"message_id", m.MessageID, "attempt", attempt, "retry_at", at.Format(time.RFC3339), "err", err)
		return tickets.Outcome{ID: m.ID, State: "pending", RetryAt: at, Reason: err.Error()}
	}
}

// backoff is the wait after the n-th failed attempt: 30 s doubling to at
// most 6 h, with jitter so that many failed mails do not retry in step.
func backoff(n int) time.Duration {
	d := 30 * time.Second << min(n-1, 10)
	d = min(d, 6*time.Hour)
	return d/2 + rand.N(d/2+1)
}

func (w *Worker) send(ctx context.Context, c conn, m tickets.OutboxMail) (err error) {
	defer func() {
		if p := recover(); p != nil {
			w.panics.Add(1)
			err = fmt.Errorf("panic composing or sending mail: %v", p)
		}
	}()
	data, from, err := w.compose(m, m.Token)
	if err != nil {
		return &PermanentError{fmt.Errorf("%w: %w", errCompose, err)}
	}
	return c.Send(ctx, Envelope{ID: m.ID, From: from, To: m.Recipient, Data: data})
}

// ticketMail is what every mail about one ticket shows.
type ticketMail struct {
	TrackingID   string
	Subject      string
	CustomerName string
	Department   string
	Link         string
}

// ackData is what the acknowledgement templates show.
type ackData struct {
	ticketMail
	Priority tickets.Priority
	LinkDays int
	// Articles may answer the request already.
	Articles []articleLink
}

// articleLink is a knowledge base article a mail suggests: its title and
// its page.
type articleLink struct {
	Title string
	Link  string
}

// draftNoticeData is what the notice of a held reply shows.
type draftNoticeData struct {
	ticketMail
	// From is the address the reply came from, which may not be the
	// owner's: the notice goes to the owner all the same.
	From     string
	Received string
	Expires  string
}

// answerData is what the mail carrying an agent's answer shows.
type answerData struct {
	ticketMail
	AgentName string
	Body      writtenText
	// Files are the names of the attached files, which the customer
	// downloads from the ticket's page.
	Files    []string
	LinkDays int
}

// autoResolvedData is what the notice of a ticket resolved for lack of
// news shows.
type autoResolvedData struct {
	ticketMail
	// Days the ticket waited in Replied; 0 when the department no longer
	// says.
	Days     int
	LinkDays int
}

// staffNoticeData is what a notice to an agent shows; its Link is the
// ticket's staff page.
type staffNoticeData struct {
	ticketMail
	AgentName     string
	CustomerEmail string
	Priority      tickets.Priority
	// Message is the start of the customer's message, when the notice is
	// about one, and Files its attachments' names.
	Message writtenText
	Files   []string
}

// adminAlertData is what the alert about a failing mailbox shows.
type adminAlertData struct {
	AgentName  string
	Department string
	// Slug names the department in the command that mends the mailbox.
	Slug    string
	Mailbox string
	Reason  string
	Since   string
}

// reminderData is what the mail listing a customer's open tickets shows.
type reminderData struct {
	CustomerName string
	Department   string
	Tickets      []listedTicket
	LinkDays     int
}

type listedTicket struct {
	TrackingID string
	Subject    string
	Status     tickets.Status
	Department string
	Link       string
}

// toStaff reports whether a kind of mail goes to an agent rather than to
// the customer.
func toStaff(k tickets.MailKind) bool {
	return k == tickets.KindAgentNewTicket || k == tickets.KindAgentCustomerReply || k == tickets.KindAdminAlert
}

func (w *Worker) compose(m tickets.OutboxMail, token string) ([]byte, string, error) {
	t := m.Ticket
	staff := toStaff(m.Kind)
	locale := m.Locale
	switch {
	case locale != "":
	case staff:
		// The department's language is its staff's.
		locale = t.Department.Locale
	default:
		locale = t.Locale
	}
	locale = templates.Locale(locale)
	linkDays := int(w.store.TokenTTL() / (24 * time.Hour))
	about := ticketMail{
		TrackingID: t.TrackingID, Subject: t.Subject, CustomerName: t.CustomerName, Department: t.Department.Name,
	}
	var rendered templates.Mail
	var err error
	switch m.Kind {
	case tickets.KindAck:
		about.Link = w.baseURL + "/t/" + token
		rendered, err = w.tmpl.RenderMail(templates.MailAck, locale, ackData{ticketMail: about, Priority: t.Priority, LinkDays: linkDays,
			Articles: w.articleLinks(m.Articles)})
	case tickets.KindReminder:
		data := reminderData{CustomerName: t.CustomerName, Department: t.Department.Name, LinkDays: linkDays}
		for _, l := range m.Listed {
			data.Tickets = append(data.Tickets, listedTicket{
				TrackingID: l.Ticket.TrackingID, Subject: l.Ticket.Subject, Status: l.Ticket.Status,
				Department: l.Ticket.Department.Name, Link: w.baseURL + "/t/" + l.Token,
			})
		}
		if len(data.Tickets) == 0 {
			err = errors.New("reminder lists no tickets")
			break
		}
		rendered, err = w.tmpl.RenderMail(templates.MailReminder, locale, data)
	case tickets.KindDraftNotice:
		if m.Draft == nil {
			err = errors.New("draft notice without its draft")
			break
		}
		if about.Link, err = w.ownerLink(m, "/d/", token); err != nil {
			break
		}
		rendered, err = w.tmpl.RenderMail(templates.MailDraftNotice, locale, draftNoticeData{
			ticketMail: about, From: cleanLine(m.Draft.FromAddress),
			Received: mailDate(m.Draft.CreatedAt, locale), Expires: mailDate(m.Draft.ExpiresAt, locale),
		})
	case tickets.KindAnswer:
		if m.Message == nil {
			err = errors.New("answer without its message")
			break
		}
		if about.Link, err = w.ownerLink(m, "/t/", token); err != nil {
			break
		}
		rendered, err = w.tmpl.RenderMail(templates.MailAnswer, locale, answerData{
			ticketMail: about, AgentName: cleanLine(m.Message.AuthorName),
			Body: newWrittenText(m.Message.Text, about.Link), Files: fileNames(m.Message), LinkDays: linkDays,
		})
	case tickets.KindAutoResolved:
		if about.Link, err = w.ownerLink(m, "/t/", token); err != nil {
			break
		}
		rendered, err = w.tmpl.RenderMail(templates.MailAutoResolved, locale, autoResolvedData{
			ticketMail: about, Days: t.Department.AutoResolveDays, LinkDays: linkDays,
		})
	case tickets.KindAgentNewTicket, tickets.KindAgentCustomerReply:
		// The staff page, never the customer's link: an agent's mail
		// may be forwarded, and the customer's link needs no login.
		about.Link = w.baseURL + "/staff/tickets/" + url.PathEscape(t.TrackingID)
		data := staffNoticeData{ticketMail: about, AgentName: cleanLine(m.AgentName), CustomerEmail: t.CustomerEmail, Priority: t.Priority}
		name := templates.MailAgentNewTicket
		if m.Kind == tickets.KindAgentCustomerReply {
			if m.Message == nil {
				err = errors.New("notice of a customer's message without the message")
				break
			}
			name = templates.MailAgentCustomerReply
			start, cut := excerpt(m.Message.Text)
			data.Message = newWrittenText(start, "")
			data.Message.Cut = cut
			data.Files = fileNames(m.Message)
		}
		rendered, err = w.tmpl.RenderMail(name, locale, data)
	case tickets.KindAdminAlert:
		if m.Alert == nil {
			err = errors.New("admin alert without its mailbox")
			break
		}
		rendered, err = w.tmpl.RenderMail(templates.MailAdminAlert, locale, adminAlertData{
			AgentName: cleanLine(m.AgentName), Department: t.Department.Name, Slug: t.Department.Slug,
			Mailbox: cleanLine(m.Alert.URL), Reason: cleanLine(m.Alert.Reason), Since: mailDate(m.CreatedAt, locale),
		})
	default:
		err = fmt.Errorf("unknown mail kind %q", m.Kind)
	}
	if err != nil {
		return nil, "", err
	}
	from := t.Department.Address
	if err := checkAddress("department address", from); err != nil {
		return nil, "", err
	}
	if err := checkAddress("recipient", m.Recipient); err != nil {
		return nil, "", err
	}
	ids := usableMsgIDs(m.MessageID)
	if len(ids) != 1 {
		return nil, "", fmt.Errorf("message id %q cannot be written in a header", m.MessageID)
	}
	envelopeFrom := from
	if w.from != "" {
		envelopeFrom = w.from
	}

	// Every value below that comes from stored text goes through cleanLine,
	// checkAddress or usableMsgIDs: none may end its field.
	var h mail.Header
	h.SetDate(time.Now())
	fromName, toName := cleanLine(t.Department.Name), cleanLine(t.CustomerName)
	if m.Kind == tickets.KindAnswer {
		// The customer sees who answered, on behalf of which department.
		if agent := cleanLine(m.Message.AuthorName); agent != "" {
			fromName = agent + " (" + fromName + ")"
		}
	}
	if staff {
		toName = cleanLine(m.AgentName)
	}
	h.SetAddressList("From", []*mail.Address{{Name: fromName, Address: from}})
	h.SetAddressList("To", []*mail.Address{{Name: toName, Address: m.Recipient}})
	h.Set("Subject", encodeSubject(cleanLine(rendered.Subject)))
	h.SetMessageID(ids[0])
	h.SetMsgIDList("In-Reply-To", usableMsgIDs(m.InReplyTo))
	h.SetMsgIDList("References", usableMsgIDs(m.References...))
	// RFC 3834: this is an automatic answer (or, for an alert, an
	// automatic mail); well-behaved responders will not answer it, and
	// Exchange is asked not to send out-of-office replies.
	if m.Kind == tickets.KindAdminAlert {
		h.Set("Auto-Submitted", "auto-generated")
	} else {
		h.Set("Auto-Submitted", "auto-replied")
	}
	h.Set("X-Auto-Response-Suppress", "All")
	if t.TrackingID != "" && m.Kind != tickets.KindReminder {
		h.Set("X-Helpdesk-Ticket", cleanLine(t.TrackingID))
	}

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

// articleLinks are the links to the articles a mail suggests; each page
// learns it was opened from a mail.
func (w *Worker) articleLinks(list []tickets.ArticleLink) []articleLink {
	links := make([]articleLink, 0, len(list))
	for _, a := range list {
		links = append(links, articleLink{Title: cleanLine(a.Title), Link: w.baseURL + a.Path + "?from=mail"})
	}
	return links
}

// ownerLink is the link a mail to the ticket's customer carries: path and
// token. Whoever holds it acts on the ticket without logging in, so it goes
// to the ticket's owner alone.
func (w *Worker) ownerLink(m tickets.OutboxMail, path, token string) (string, error) {
	if token == "" {
		return "", fmt.Errorf("%s mail without its link", m.Kind)
	}
	if !strings.EqualFold(m.Recipient, m.Ticket.CustomerEmail) {
		return "", fmt.Errorf("%s mail addressed to %q, not to the ticket's owner", m.Kind, m.Recipient)
	}
	return w.baseURL + path + token, nil
}

// linkPlaceholder is where a canned response puts the customer's link; it
// becomes the fresh link the mail carries.
const linkPlaceholder = "{{link}}"

// writtenText is text a person wrote, ready for both parts of a mail: Text
// as written for the text part, and Lines for the HTML part, whose template
// escapes every piece and turns only the pieces marked Link into links.
type writtenText struct {
	Text  string
	Lines [][]textPiece
	// Cut says Text is the start of a longer text.
	Cut bool
}

type textPiece struct {
	Text string
	Link bool
}

// newWrittenText prepares s, replacing each link placeholder with link
// when link is set.
func newWrittenText(s, link string) writtenText {
	var out writtenText
	var text strings.Builder
	for i, line := range strings.Split(strings.Trim(s, "\r\n"), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if i > 0 {
			text.WriteByte('\n')
		}
		parts := []string{line}
		if link != "" {
			parts = strings.Split(line, linkPlaceholder)
		}
		var pieces []textPiece
		for j, p := range parts {
			if j > 0 {
				pieces = append(pieces, textPiece{Text: link, Link: true})
				text.WriteString(link)
			}
			if p != "" {
				pieces = append(pieces, textPiece{Text: p})
				text.WriteString(p)
			}
		}
		out.Lines = append(out.Lines, pieces)
	}
	out.Text = text.String()
	return out
}

// What of a customer's message a notice to an agent quotes: enough to
// judge it, the rest is on the staff page.
const (
	excerptLines = 20
	excerptRunes = 2000
)

// excerpt returns the start of s, its first lines at most excerptRunes
// long, and whether that is less than s.
func excerpt(s string) (string, bool) {
	s = strings.Trim(s, "\r\n")
	cut := false
	if lines := strings.SplitN(s, "\n", excerptLines+1); len(lines) > excerptLines {
		s, cut = strings.Join(lines[:excerptLines], "\n"), true
	}
	if r := []rune(s); len(r) > excerptRunes {
		s, cut = string(r[:excerptRunes]), true
	}
	return s, cut
}

// fileNames lists the names of a message's attachments, each on one line.
func fileNames(msg *tickets.Message) []string {
	names := make([]string, 0, len(msg.Attachments))
	for _, a := range msg.Attachments {
		names = append(names, cleanLine(a.Filename))
	}
	return names
}

// mailDate writes a moment as readers of locale write it, in UTC and saying
// so (the reader's zone is unknown): "2 de marzo de 2026, 14:05 UTC",
// "2 March 2026, 14:05 UTC".
func mailDate(t time.Time, locale string) string {
	t = t.UTC()
	if templates.Locale(locale) == "es" {
		months := [...]string{"enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto",
			"septiembre", "octubre", "noviembre", "diciembre"}
		return fmt.Sprintf("%d de %s de %d, %s UTC", t.Day(), months[t.Month()-1], t.Year(), t.Format("15:04"))
	}
	return t.Format("2 January 2006, 15:04") + " UTC"
}
