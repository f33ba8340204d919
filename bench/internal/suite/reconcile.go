package suite

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Status is a check's verdict.
type Status int

const (
	Pass Status = iota
	Fail
	// Reported is a figure the check records without judging it: the
	// duplicates an at-least-once outbox sends after a crash.
	Reported
)

func (s Status) String() string {
	switch s {
	case Pass:
		return "pass"
	case Fail:
		return "FAIL"
	}
	return "reported"
}

// Check is one line of a reconciliation.
type Check struct {
	Name   string
	Status Status
	Detail string
}

func check(name string, ok bool, format string, args ...any) Check {
	c := Check{Name: name, Status: Pass, Detail: fmt.Sprintf(format, args...)}
	if !ok {
		c.Status = Fail
	}
	return c
}

// Failed says whether any check failed.
func Failed(checks []Check) bool {
	for _, c := range checks {
		if c.Status == Fail {
			return true
		}
	}
	return false
}

// Expect is what the harness did, which the database and the relay must
// account for exactly.
type Expect struct {
	// SMTP are the Message-IDs answered 250; IMAP those appended to the
	// mailbox.
	SMTP, IMAP []string
	// WebReplies is how many replies the portal accepted.
	WebReplies int
	// AtLeastOnce: the gateway was killed while sending, and its outbox
	// sends again what it had sent but not recorded. Acknowledgements that
	// arrived twice are then reported, not failed.
	AtLeastOnce bool
	// Settle bounds the wait for mail still being taken in or sent.
	Settle time.Duration
}

// Reconciliation is the outcome of Reconcile.
type Reconciliation struct {
	Checks []Check
	// Settled is how long the wait for the outbox to drain (and the
	// mailbox to empty) took; Unsettled says it had not when Settle ran out.
	Settled   time.Duration
	Unsettled bool
	Tickets   int
	// InboundCopies are rows logged as duplicates (a mail delivered
	// again, after a 4xx or a crash); RelayCopies are acknowledgements
	// that arrived more than once (counting every extra arrival).
	InboundCopies, RelayCopies int
}

// Reconcile waits until the gateway has settled (nothing pending in the
// outbox, every appended mail taken in, the mailbox empty), then checks
// what it did against exp.
func (e *Env) Reconcile(ctx context.Context, exp Expect) (Reconciliation, error) {
	var rec Reconciliation
	var err error
	rec.Settled, rec.Unsettled, err = e.settle(ctx, exp)
	if err != nil {
		return rec, err
	}
	mails, err := e.inboundByMessageID(ctx)
	if err != nil {
		return rec, err
	}
	if len(exp.SMTP) > 0 {
		rec.Checks = append(rec.Checks, mailChecks("SMTP", exp.SMTP, "smtp", mails)...)
	}
	if e.Dovecot != nil {
		rec.Checks = append(rec.Checks, mailChecks("IMAP", exp.IMAP, "imap", mails)...)
	}
	expected := map[string]bool{}
	for _, id := range append(append([]string(nil), exp.SMTP...), exp.IMAP...) {
		expected[id] = true
	}
	dispositions := map[string]int{}
	var unexpected []string
	for id, m := range mails {
		rec.InboundCopies += m.dispositions["duplicate"]
		for d, n := range m.dispositions {
			dispositions[d] += n
		}
		if !expected[id] {
			unexpected = append(unexpected, id)
		}
	}
	rec.Checks = append(rec.Checks, check("no stored mail that was not answered 250 or appended", len(unexpected) == 0,
		"%d inbound rows of other mails%s", len(unexpected), sample(unexpected)))

	var tickets, acked, replies int
	q := e.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM tickets),
		(SELECT count(DISTINCT ticket_id) FROM outbox WHERE kind = 'ack'),
		(SELECT count(*) FROM messages WHERE author_kind = 'customer' AND inbound_id IS NULL)`)
	if err := q.Scan(&tickets, &acked, &replies); err != nil {
		return rec, fmt.Errorf("count tickets: %w", err)
	}
	rec.Tickets = tickets
	rec.Checks = append(rec.Checks,
		check("inbound rows with disposition ticket = tickets created", dispositions["ticket"] == tickets,
			"%d rows ticket, %d tickets; dispositions: %s", dispositions["ticket"], tickets, Tally(dispositions)),
		check("every ticket's acknowledgement queued", acked == tickets, "%d of %d tickets have an ack row", acked, tickets),
		check("web replies accepted = customer messages added", replies == exp.WebReplies,
			"%d accepted, %d messages added", exp.WebReplies, replies))

	acks, err := e.ackRows(ctx)
	if err != nil {
		return rec, err
	}
	rec.Checks = append(rec.Checks, e.relayChecks(acks, exp.AtLeastOnce, &rec)...)
	var pending int
	if err := e.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE state = 'pending'`).Scan(&pending); err != nil {
		return rec, fmt.Errorf("count pending mail: %w", err)
	}
	rec.Checks = append(rec.Checks, check("outbox drained", pending == 0 && !rec.Unsettled,
		"%d mails pending; settled %s after the load ended (limit %s)", pending, settledText(rec), exp.Settle))
	if e.Dovecot != nil {
		mc, err := e.mailboxChecks(ctx, exp.IMAP)
		if err != nil {
			return rec, err
		}
		rec.Checks = append(rec.Checks, mc...)
	}
	return rec, nil
}

func settledText(r Reconciliation) string {
	if r.Unsettled {
		return "not"
	}
	return fmt.Sprintf("%.1f s", r.Settled.Seconds())
}

// settle waits for the outbox to drain and, with a mailbox, for every
// appended mail to be taken in and the INBOX to be empty.
func (e *Env) settle(ctx context.Context, exp Expect) (time.Duration, bool, error) {
	start := time.Now()
	for {
		done, err := e.settled(ctx, exp)
		if err != nil && ctx.Err() != nil {
			return 0, true, err
		}
		if done {
			return time.Since(start), false, nil
		}
		if time.Since(start) > exp.Settle {
			return time.Since(start), true, nil
		}
		if err := Sleep(ctx, 100*time.Millisecond); err != nil {
			return 0, true, err
		}
	}
}

func (e *Env) settled(ctx context.Context, exp Expect) (bool, error) {
	var pending, imapIn int
	err := e.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM outbox WHERE state = 'pending'),
		(SELECT count(DISTINCT message_id) FROM inbound WHERE source = 'imap' AND message_id = ANY($1))`, exp.IMAP).
		Scan(&pending, &imapIn)
	if err != nil || pending > 0 || imapIn < len(exp.IMAP) {
		return false, err
	}
	if e.Dovecot == nil {
		return true, nil
	}
	inbox, err := e.Dovecot.Messages(ctx, IMAPUser, "INBOX")
	return err == nil && len(inbox) == 0, err
}

// storedMail is what the inbound log holds of one Message-ID.
type storedMail struct {
	sources      map[string]bool
	dispositions map[string]int
}

func (e *Env) inboundByMessageID(ctx context.Context) (map[string]*storedMail, error) {
	rows, err := e.Pool.Query(ctx, `SELECT message_id, source, disposition, count(*) FROM inbound GROUP BY 1, 2, 3`)
	if err != nil {
		return nil, fmt.Errorf("read inbound log: %w", err)
	}
	defer rows.Close()
	out := map[string]*storedMail{}
	var id, source, disposition string
	var n int
	for rows.Next() {
		if err := rows.Scan(&id, &source, &disposition, &n); err != nil {
			return nil, fmt.Errorf("read inbound log: %w", err)
		}
		m := out[id]
		if m == nil {
			m = &storedMail{sources: map[string]bool{}, dispositions: map[string]int{}}
			out[id] = m
		}
		m.sources[source] = true
		m.dispositions[disposition] += n
	}
	return out, rows.Err()
}

// mailChecks checks that every mail of ids has exactly one inbound row
// that is not a duplicate, from source.
func mailChecks(what string, ids []string, source string, mails map[string]*storedMail) []Check {
	var missing, doubled []string
	copies := 0
	for _, id := range ids {
		m := mails[id]
		if m == nil || !m.sources[source] {
			missing = append(missing, id)
			continue
		}
		kept := 0
		for d, n := range m.dispositions {
			if d != "duplicate" {
				kept += n
			}
		}
		copies += m.dispositions["duplicate"]
		switch {
		case kept == 0:
			missing = append(missing, id)
		case kept > 1:
			doubled = append(doubled, id)
		}
	}
	accepted := "answered 250"
	if source == "imap" {
		accepted = "appended"
	}
	return []Check{check(fmt.Sprintf("%s mails %s: each exactly one inbound row (not a duplicate)", what, accepted),
		len(missing) == 0 && len(doubled) == 0,
		"%d mails; %d with no row%s, %d with more than one%s; %d further copies logged as duplicates",
		len(ids), len(missing), sample(missing), len(doubled), sample(doubled), copies)}
}

// ackRow is an acknowledgement in the outbox.
type ackRow struct{ messageID, state, trackingID string }

func (e *Env) ackRows(ctx context.Context) ([]ackRow, error) {
	rows, err := e.Pool.Query(ctx, `SELECT o.message_id, o.state, t.tracking_id FROM outbox o JOIN tickets t ON t.id = o.ticket_id
		WHERE o.kind = 'ack'`)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	defer rows.Close()
	var out []ackRow
	for rows.Next() {
		var a ackRow
		if err := rows.Scan(&a.messageID, &a.state, &a.trackingID); err != nil {
			return nil, fmt.Errorf("read outbox: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// relayChecks holds the acknowledgements against what the relay received.
func (e *Env) relayChecks(acks []ackRow, atLeastOnce bool, rec *Reconciliation) []Check {
	arrived := map[string]int{}
	ticketOf := map[string]string{}
	for _, d := range e.Relay.Deliveries() {
		arrived[d.MessageID]++
		ticketOf[d.MessageID] = d.Ticket
	}
	states := map[string]int{}
	var missing, twice, wrongTicket []string
	ours := map[string]bool{}
	for _, a := range acks {
		ours[a.messageID] = true
		states[a.state]++
		switch n := arrived[a.messageID]; {
		case n == 0:
			missing = append(missing, a.messageID)
		case n > 1:
			twice = append(twice, a.messageID)
			rec.RelayCopies += n - 1
		}
		if arrived[a.messageID] > 0 && ticketOf[a.messageID] != a.trackingID {
			wrongTicket = append(wrongTicket, a.messageID)
		}
	}
	var strangers []string
	for id := range arrived {
		if !ours[id] {
			strangers = append(strangers, id)
		}
	}
	once := check("every acknowledgement arrived once, not more", len(twice) == 0,
		"%d arrived more than once (%d extra copies)%s", len(twice), rec.RelayCopies, sample(twice))
	if atLeastOnce {
		once.Status = Reported
		once.Detail += "; the outbox sends at least once: mail sent but not recorded before the crash is sent again"
	}
	return []Check{
		check("every acknowledgement row sent", states["sent"] == len(acks), "%d rows: %s", len(acks), Tally(states)),
		check("every acknowledgement arrived at the relay", len(missing) == 0, "%d of %d missing%s", len(missing), len(acks), sample(missing)),
		once,
		check("acknowledgements carry their ticket's ID", len(wrongTicket) == 0, "%d with another X-Helpdesk-Ticket%s", len(wrongTicket), sample(wrongTicket)),
		check("nothing at the relay but queued acknowledgements", len(strangers) == 0, "%d other mails%s", len(strangers), sample(strangers)),
	}
}

// mailboxChecks checks that the INBOX is empty and that every appended
// mail was moved to the processed folder.
func (e *Env) mailboxChecks(ctx context.Context, appended []string) ([]Check, error) {
	inbox, err := e.Dovecot.Messages(ctx, IMAPUser, "INBOX")
	if err != nil {
		return nil, err
	}
	processed, err := e.Dovecot.Messages(ctx, IMAPUser, Processed)
	if err != nil {
		return nil, err
	}
	moved := map[string]int{}
	for _, m := range processed {
		moved[m.MessageID]++
	}
	var notMoved []string
	for _, id := range appended {
		if moved[id] == 0 {
			notMoved = append(notMoved, id)
		}
	}
	return []Check{
		check("no mail left in the Dovecot INBOX", len(inbox) == 0, "%d left", len(inbox)),
		check("every appended mail moved to "+Processed, len(notMoved) == 0,
			"%d of %d not there%s (%d messages there, %d distinct)", len(notMoved), len(appended), sample(notMoved), len(processed), len(moved)),
	}, nil
}

// sample names up to three items, for the detail of a failed check.
func sample(ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	sort.Strings(ids)
	return " (e.g. " + strings.Join(ids[:min(3, len(ids))], ", ") + ")"
}

// Tally writes a tally as "a 3, b 1", largest first.
func Tally(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || m[keys[i]] == m[keys[j]] && keys[i] < keys[j] })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
