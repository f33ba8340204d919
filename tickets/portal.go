package tickets

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// Limits of what a customer types into the web page.
const (
	MaxNameLength    = 200
	MaxSubjectLength = 300
	MaxMessageLength = 50000
)

// Message keys of FieldErrors; the pages translate them.
const (
	FieldRequired   = "field.required"
	FieldTooLong    = "field.too_long"
	FieldBadEmail   = "field.bad_email"
	FieldDepartment = "field.department"
	FieldPriority   = "field.priority"
)

// FieldErrors says what is wrong with a form, field by field: the field's
// name maps to the key of a message. It is ErrInvalid.
type FieldErrors map[string]string

func (e FieldErrors) Error() string {
	fields := make([]string, 0, len(e))
	for f, key := range e {
		fields = append(fields, f+": "+key)
	}
	sort.Strings(fields)
	return "invalid " + strings.Join(fields, ", ")
}

func (e FieldErrors) Unwrap() error { return ErrInvalid }

// WebTicket is a ticket as a customer submits it from the web page. The
// field names of FieldErrors are the lower-case names of its fields.
type WebTicket struct {
	Department string // slug
	Name       string
	Email      string
	Subject    string
	Message    string
	// Priority is Low, Medium or High (Critical is the staff's); empty is
	// Medium.
	Priority    Priority
	Attachments []InboundAttachment
}

// Submitted is the ticket SubmitTicket opened.
type Submitted struct {
	TicketID   int64
	TrackingID string
	Email      string
}

// SubmitTicket opens a ticket from the web page: in one transaction the
// ticket in its department's language, its first message and attachments,
// its history, and the same acknowledgement a mailed-in ticket gets.
// Invalid input is FieldErrors.
func (s *Store) SubmitTicket(ctx context.Context, in WebTicket) (Submitted, error) {
	errs := FieldErrors{}
	name := formLine(errs, "name", in.Name, MaxNameLength)
	subject := formLine(errs, "subject", in.Subject, MaxSubjectLength)
	text := formText(errs, "message", in.Message, false)
	email, err := ParseEmail(in.Email)
	if err != nil {
		errs["email"] = emailError(in.Email)
	}
	priority := in.Priority
	if priority == "" {
		priority = PriorityMedium
	}
	if priority != PriorityLow && priority != PriorityMedium && priority != PriorityHigh {
		errs["priority"] = FieldPriority
	}
	var dept Department
	if strings.TrimSpace(in.Department) == "" {
		errs["department"] = FieldDepartment
	} else if dept, err = s.DepartmentBySlug(ctx, strings.TrimSpace(in.Department)); errors.Is(err, ErrNotFound) {
		errs["department"] = FieldDepartment
	} else if err != nil {
		return Submitted{}, fmt.Errorf("submit ticket: %w", err)
	}
	if len(errs) > 0 {
		return Submitted{}, fmt.Errorf("submit ticket: %w", errs)
	}
	nt := &newTicket{
		department: dept, source: "web", priority: priority, subject: subject, customerName: name,
		customerEmail: email, text: text, attachments: storableAttachments(in.Attachments),
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if err := putBlobs(ctx, tx, attachmentContents(nt.attachments)); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT nextval(pg_get_serial_sequence('tickets', 'id'))`).Scan(&nt.id); err != nil {
			return fmt.Errorf("draw ticket ID: %w", err)
		}
		limited, err := acksLimited(ctx, tx, email, s.limits.AcksPerAddress)
		if err != nil {
			return err
		}
		if limited {
			nt.automatic = fmt.Sprintf("more than %d acknowledgements to this address within an hour", s.limits.AcksPerAddress)
		}
		return createTickets(ctx, tx, []*newTicket{nt})
	})
	if err != nil {
		return Submitted{}, fmt.Errorf("submit ticket: %w", err)
	}
	s.outboxQueued()
	return Submitted{TicketID: nt.id, TrackingID: nt.trackingID, Email: email}, nil
}

// acksLimited reports whether the address has had its acknowledgements
// for the hour. Anyone may type anyone's address into the form: without a
// bound per recipient, the department's address could be made to mail
// someone over and over, whatever the per-client limits. The transaction
// holds the lock mail ingest takes on the address until it ends, so that
// tickets in parallel, from the web or by mail, are counted one by one.
func acksLimited(ctx context.Context, tx pgx.Tx, email string, limit int) (bool, error) {
	// The lock is its own statement: a statement that waited for it would
	// still count with the snapshot it took before the wait.
	if err := lockKeys(ctx, tx, "sender:", []string{email}); err != nil {
		return false, err
	}
	var n int
	err := tx.QueryRow(ctx, `
		SELECT count(*) FROM outbox
		WHERE kind = 'ack' AND lower(recipient) = lower($1) AND created_at > now() - interval '1 hour'`, email).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("count acknowledgements to %s: %w", email, err)
	}
	return n >= limit, nil
}

// ParseEmail checks an address a person typed and returns it as it is
// stored: trimmed, its domain in lower case. It is ErrInvalid when it is not
// a plain address mail could be sent to.
func ParseEmail(s string) (string, error) {
	addr, ok := plainAddress(s)
	if !ok {
		return "", fmt.Errorf("address %q: %w", s, ErrInvalid)
	}
	parsed, err := mail.ParseAddress(addr)
	if err != nil || parsed.Name != "" || !strings.EqualFold(parsed.Address, addr) {
		return "", fmt.Errorf("address %q: %w", s, ErrInvalid)
	}
	return addr, nil
}

func emailError(s string) string {
	if strings.TrimSpace(s) == "" {
		return FieldRequired
	}
	return FieldBadEmail
}

// formLine cleans a one-line field, recording in errs when it is empty or
// longer than max characters.
func formLine(errs FieldErrors, field, s string, max int) string {
	s = oneLine(s, max+1)
	switch {
	case s == "":
		errs[field] = FieldRequired
	case utf8.RuneCountInString(s) > max:
		errs[field] = FieldTooLong
	}
	return s
}

// formText cleans a text area's text: line ends as "\n", no surrounding
// blank space, at most MaxMessageLength characters, and not empty unless
// optional.
func formText(errs FieldErrors, field, s string, optional bool) string {
	s = strings.TrimSpace(strings.ReplaceAll(cleanText(s), "\r\n", "\n"))
	switch {
	case s == "" && !optional:
		errs[field] = FieldRequired
	case utf8.RuneCountInString(s) > MaxMessageLength:
		errs[field] = FieldTooLong
	}
	return s
}

// storableAttachments gives uploaded files names and types fit for storage.
func storableAttachments(atts []InboundAttachment) []InboundAttachment {
	out := make([]InboundAttachment, len(atts))
	for i, a := range atts {
		a.Filename, a.ContentType, a.ContentID, a.Inline = oneLine(a.Filename, 255), oneLine(a.ContentType, 255), "", false
		if a.Filename == "" {
			a.Filename = "attachment"
		}
		if a.ContentType == "" {
			a.ContentType = "application/octet-stream"
		}
		out[i] = a
	}
	return out
}

func attachmentContents(atts []InboundAttachment) []Content {
	out := make([]Content, len(atts))
	for i, a := range atts {
		out[i] = a.Content
	}
	return out
}

// LookupTicket finds a ticket by its tracking ID, typed however a person
// types it, and its customer's address, in any case. A wrong ID, a wrong
// address and a pair that does not match are the same ErrNotFound.
func (s *Store) LookupTicket(ctx context.Context, trackingID, email string) (Ticket, error) {
	id, err := ParseTrackingID(trackingID)
	if err != nil {
		return Ticket{}, fmt.Errorf("look up ticket: %w", ErrNotFound)
	}
	var t Ticket
	err = s.pool.QueryRow(ctx, `SELECT `+ticketColumns+`
		FROM tickets t JOIN departments d ON d.id = t.department_id
		WHERE t.tracking_id = $1 AND lower(t.customer_email) = lower($2)`, id, strings.TrimSpace(email)).Scan(ticketDest(&t)...)
	if err != nil {
		return t, notFound(err, "look up ticket")
	}
	return t, nil
}

// CustomerReply is what a customer adds to their ticket from the web page:
// a message, attachments, or both.
type CustomerReply struct {
	Message     string
	Attachments []InboundAttachment
}

// ReplyByCustomer adds the customer's message to a ticket, which then waits
// for an agent's answer (a resolved ticket is reopened by it), and records
// both in the history. Invalid input is FieldErrors (field "message").
func (s *Store) ReplyByCustomer(ctx context.Context, ticketID int64, r CustomerReply) error {
	errs := FieldErrors{}
	text := formText(errs, "message", r.Message, len(r.Attachments) > 0)
	if len(errs) > 0 {
		return fmt.Errorf("reply to ticket %d: %w", ticketID, errs)
	}
	atts := storableAttachments(r.Attachments)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := putBlobs(ctx, tx, attachmentContents(atts)); err != nil {
			return err
		}
		_, err := addCustomerMessage(ctx, tx, ticketID, text, atts, 0)
		return err
	})
	if err != nil {
		return fmt.Errorf("reply to ticket %d: %w", ticketID, err)
	}
	s.outboxQueued() // the assignee's notice, if any
	return nil
}

// addCustomerMessage adds a message by the ticket's customer, with files
// stored already, sets the ticket waiting for an agent, and records both in
// the history. inboundID is the mail it came from, or 0.
func addCustomerMessage(ctx context.Context, tx pgx.Tx, ticketID int64, text string, atts []InboundAttachment, inboundID int64) (int64, error) {
	var names, types, cids []string
	var inline []bool
	var sizes []int64
	var sums [][]byte
	for _, a := range atts {
		names, types, cids, inline = append(names, a.Filename), append(types, a.ContentType), append(cids, a.ContentID), append(inline, a.Inline)
		sizes, sums = append(sizes, a.Content.Size), append(sums, a.Content.SHA256[:])
	}
	var messageID int64
	err := tx.QueryRow(ctx, `
		WITH old AS (
			SELECT id, status, customer_name, customer_email FROM tickets WHERE id = $1 FOR UPDATE
		), u AS (
			UPDATE tickets t SET status = 'waiting_reply', updated_at = now() FROM old WHERE t.id = old.id
		), m AS (
			INSERT INTO messages (ticket_id, author_kind, author_name, author_email, body_text, inbound_id)
			SELECT id, 'customer', customer_name, customer_email, $2, nullif($9::bigint, 0) FROM old
			RETURNING id, ticket_id
		), a AS (
			INSERT INTO attachments (message_id, ticket_id, filename, content_type, content_id, inline, size, sha256)
			SELECT m.id, m.ticket_id, y.filename, y.content_type, y.content_id, y.inline, y.size, y.sha256
			FROM m, unnest($3::text[], $4::text[], $5::bigint[], $6::bytea[], $7::text[], $8::boolean[])
			        WITH ORDINALITY AS y(filename, content_type, size, sha256, content_id, inline, ord)
			ORDER BY y.ord
		), h AS (
			INSERT INTO ticket_history (ticket_id, actor, action, old_value, new_value)
			SELECT old.id, 'customer:' || old.customer_email, 'message', '', m.id::text FROM old, m
			UNION ALL
			SELECT id, 'customer:' || customer_email, 'status', status, 'waiting_reply' FROM old WHERE status <> 'waiting_reply'
		), n AS (
			-- The agent the ticket is assigned to hears of it.
			INSERT INTO outbox (kind, ticket_id, agent_id, message_ref, recipient, message_id)
			SELECT 'agent_customer_reply', old.id, ag.id, m.id, ag.email,
			       replace(gen_random_uuid()::text, '-', '') || '.staff@' || split_part(d.address, '@', 2)
			FROM old JOIN m ON true JOIN tickets t ON t.id = old.id JOIN departments d ON d.id = t.department_id
			JOIN agents ag ON ag.id = t.assignee_id AND ag.disabled_at IS NULL
		)
		SELECT id FROM m`, ticketID, text, names, types, sizes, sums, cids, inline, inboundID).Scan(&messageID)
	if err != nil {
		return 0, notFound(err, "add message")
	}
	return messageID, nil
}

// ResolveByCustomer marks a ticket resolved on its customer's word. A
// ticket resolved already stays as it is.
func (s *Store) ResolveByCustomer(ctx context.Context, ticketID int64) error {
	return s.setStatusByCustomer(ctx, ticketID, StatusResolved, nil)
}

// ReopenByCustomer reopens a resolved ticket on its customer's word: it
// waits for an agent again. A ticket that is not resolved stays as it is.
func (s *Store) ReopenByCustomer(ctx context.Context, ticketID int64) error {
	return s.setStatusByCustomer(ctx, ticketID, StatusWaitingReply, []Status{StatusResolved})
}

// setStatusByCustomer moves a ticket to status to, when it is in one of
// from (any status when from is empty), with a history row saying the
// customer did it.
func (s *Store) setStatusByCustomer(ctx context.Context, ticketID int64, to Status, from []Status) error {
	fromList := make([]string, len(from))
	for i, f := range from {
		fromList[i] = string(f)
	}
	var exists bool
	err := s.pool.QueryRow(ctx, `
		WITH old AS (
			SELECT id, status, customer_email FROM tickets WHERE id = $1 FOR UPDATE
		), u AS (
			UPDATE tickets t SET status = $2, updated_at = now() FROM old
			WHERE t.id = old.id AND old.status <> $2 AND (cardinality($3::text[]) = 0 OR old.status = ANY($3))
			RETURNING old.id, old.status, old.customer_email
		), h AS (
			INSERT INTO ticket_history (ticket_id, actor, action, old_value, new_value)
			SELECT id, 'customer:' || customer_email, 'status', status, $2 FROM u
		)
		SELECT EXISTS (SELECT 1 FROM old)`, ticketID, string(to), fromList).Scan(&exists)
	if err != nil {
		return fmt.Errorf("set ticket %d %s: %w", ticketID, to, err)
	}
	if !exists {
		return fmt.Errorf("set ticket %d %s: %w", ticketID, to, ErrNotFound)
	}
	return nil
}

// History is one change of a ticket, and who made it.
type History struct {
	Actor    string
	Action   string
	OldValue string
	NewValue string
}

// TicketHistory returns a ticket's changes, oldest first.
func (s *Store) TicketHistory(ctx context.Context, ticketID int64) ([]History, error) {
	return queryStructs[History](ctx, s.pool, fmt.Sprintf("history of ticket %d", ticketID),
		`SELECT actor, action, old_value, new_value FROM ticket_history WHERE ticket_id = $1 ORDER BY id`, ticketID)
}

// Reminders that list a customer's open tickets are limited per address,
// so that the form asking for them cannot flood someone's mailbox.
const (
	reminderGap       = "15 minutes" // at most one in this time
	reminderDailyMax  = 4
	reminderMaxListed = 50
)

// QueueReminder queues a mail to email listing its open tickets (newest
// activity first), each with a fresh link. Nothing is queued when the
// address has no open ticket or had a reminder lately; it reports whether a
// mail was. The mail goes in pageLocale when one of the tickets is in it,
// else in the language of the ticket with the latest activity, and from
// that ticket's department.
func (s *Store) QueueReminder(ctx context.Context, email, pageLocale string) (bool, error) {
	email = strings.TrimSpace(email)
	queued := false
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// Two requests for one address at once must not both pass the limit.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('reminder:' || lower($1), 0))`, email); err != nil {
			return fmt.Errorf("lock address: %w", err)
		}
		var recent, today int
		err := tx.QueryRow(ctx, `
			SELECT count(*) FILTER (WHERE created_at > now() - interval '`+reminderGap+`'), count(*)
			FROM outbox WHERE kind = 'reminder' AND lower(recipient) = lower($1) AND created_at > now() - interval '1 day'`,
			email).Scan(&recent, &today)
		if err != nil {
			return fmt.Errorf("count reminders: %w", err)
		}
		if recent > 0 || today >= reminderDailyMax {
			return nil
		}
		rows, err := tx.Query(ctx, `
			SELECT t.id, t.locale, t.customer_email, d.address
			FROM tickets t JOIN departments d ON d.id = t.department_id
			WHERE lower(t.customer_email) = lower($1) AND t.status <> 'resolved'
			ORDER BY t.updated_at DESC, t.id DESC
			LIMIT $2`, email, reminderMaxListed)
		if err != nil {
			return fmt.Errorf("open tickets: %w", err)
		}
		type open struct {
			ID                 int64
			Locale, To, Sender string
		}
		list, err := pgx.CollectRows(rows, pgx.RowToStructByPos[open])
		if err != nil {
			return fmt.Errorf("open tickets: %w", err)
		}
		if len(list) == 0 {
			return nil
		}
		locale := list[0].Locale
		if slices.ContainsFunc(list, func(o open) bool { return o.Locale == pageLocale }) {
			locale = pageLocale
		}
		ids := make([]int64, len(list))
		for i, o := range list {
			ids[i] = o.ID
		}
		_, err = tx.Exec(ctx, `
			WITH o AS (
				INSERT INTO outbox (kind, ticket_id, recipient, message_id, locale)
				VALUES ('reminder', $1, $2, $3, $4)
				RETURNING id
			)
			INSERT INTO outbox_tickets (outbox_id, position, ticket_id)
			SELECT o.id, x.ord - 1, x.id FROM o, unnest($5::bigint[]) WITH ORDINALITY AS x(id, ord)`,
			list[0].ID, list[0].To, newMessageID(list[0].Sender), locale, ids)
		if err != nil {
			return fmt.Errorf("queue reminder: %w", err)
		}
		queued = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("reminder to %q: %w", email, err)
	}
	if queued {
		s.outboxQueued()
	}
	return queued, nil
}
