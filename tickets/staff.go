package tickets

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// QueueFilter selects the tickets of a staff queue.
type QueueFilter struct {
	Statuses     []Status // none: every status but Resolved
	AllStatuses  bool     // with Resolved too
	Priority     Priority // "" for any
	DepartmentID int64    // 0 for all the agent sees
	// AssigneeID: 0 any, -1 unassigned, else that agent's.
	AssigneeID int64
	// Query is a tracking ID, an address (or part of one), or words to find
	// in subjects and messages (Spanish and English stems).
	Query   string
	Page    int // from 1
	PerPage int // default 25, at most 100
}

// QueueItem is one ticket of a queue.
type QueueItem struct {
	Ticket
	AssigneeName string
	Messages     int
	// New: nobody has answered it. Overdue: the customer has waited for an
	// answer longer than OverdueAfter.
	New, Overdue bool
}

// OverdueAfter is how long a customer may wait for an answer before the
// ticket stands out as overdue.
const OverdueAfter = 24 * time.Hour

// Queue lists the tickets the agent sees that match f, latest activity
// first, one page of them, with how many match in all.
func (s *Store) Queue(ctx context.Context, a Agent, f QueueFilter) ([]QueueItem, int, error) {
	f.PerPage = min(orDefaultInt(f.PerPage, 25), 100)
	f.Page = max(f.Page, 1)
	where, args := []string{"true"}, []any{}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if !a.IsAdmin() {
		where = append(where, "t.department_id IN (SELECT department_id FROM agent_departments WHERE agent_id = "+arg(a.ID)+")")
	}
	switch {
	case len(f.Statuses) > 0:
		st := make([]string, len(f.Statuses))
		for i, v := range f.Statuses {
			st[i] = string(v)
		}
		where = append(where, "t.status = ANY("+arg(st)+")")
	case !f.AllStatuses:
		where = append(where, "t.status <> 'resolved'")
	}
	if f.Priority != "" {
		where = append(where, "t.priority = "+arg(string(f.Priority)))
	}
	if f.DepartmentID != 0 {
		where = append(where, "t.department_id = "+arg(f.DepartmentID))
	}
	switch {
	case f.AssigneeID == -1:
		where = append(where, "t.assignee_id IS NULL")
	case f.AssigneeID > 0:
		where = append(where, "t.assignee_id = "+arg(f.AssigneeID))
	}
	if q := strings.TrimSpace(f.Query); q != "" {
		if id, err := ParseTrackingID(q); err == nil {
			where = append(where, "t.tracking_id = "+arg(id))
		} else if strings.Contains(q, "@") {
			where = append(where, "lower(t.customer_email) LIKE "+arg("%"+escapeLike(strings.ToLower(q))+"%"))
		} else {
			q := arg(oneLine(q, 200))
			where = append(where, `(
				(to_tsvector('spanish', t.subject) || to_tsvector('english', t.subject))
				    @@ (websearch_to_tsquery('spanish', `+q+`) || websearch_to_tsquery('english', `+q+`))
				OR EXISTS (SELECT 1 FROM messages m WHERE m.ticket_id = t.id
				    AND coalesce(m.search, `+messageSearchVector+`)
				        @@ (websearch_to_tsquery('spanish', `+q+`) || websearch_to_tsquery('english', `+q+`)))
				OR lower(t.customer_name) LIKE '%' || lower(`+q+`) || '%')`)
		}
	}
	cond := strings.Join(where, " AND ")
	var total int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM tickets t WHERE `+cond, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count queue: %w", err)
	}
	limit, offset := arg(f.PerPage), arg((f.Page-1)*f.PerPage)
	overdue := arg(int64(OverdueAfter / time.Second))
	rows, err := s.pool.Query(ctx, `
		SELECT `+ticketColumns+`, coalesce(ag.name, ''),
		       (SELECT count(*) FROM messages m WHERE m.ticket_id = t.id AND NOT m.internal),
		       NOT EXISTS (SELECT 1 FROM messages m WHERE m.ticket_id = t.id AND m.author_kind = 'agent' AND NOT m.internal),
		       t.status IN ('new', 'waiting_reply') AND t.updated_at < now() - `+overdue+` * interval '1 second'
		FROM tickets t JOIN departments d ON d.id = t.department_id LEFT JOIN agents ag ON ag.id = t.assignee_id
		WHERE `+cond+`
		ORDER BY t.updated_at DESC, t.id DESC
		LIMIT `+limit+` OFFSET `+offset, args...)
	if err != nil {
		return nil, 0, fmt.Errorf("read queue: %w", err)
	}
	items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (QueueItem, error) {
		var it QueueItem
		return it, r.Scan(append(ticketDest(&it.Ticket), &it.AssigneeName, &it.Messages, &it.New, &it.Overdue)...)
	})
	if err != nil {
		return nil, 0, fmt.Errorf("read queue: %w", err)
	}
	return items, total, nil
}

// messageSearchVector is what a message is found by: its words stemmed as
// Spanish and as English.
const messageSearchVector = `(to_tsvector('spanish', left(m.body_text, 100000)) || to_tsvector('english', left(m.body_text, 100000)))`

// IndexMessages fills the search vectors of messages stored since the last
// run (a few thousand at a time) and returns how many it filled. Ingest
// leaves them empty: computing them there would cost most of its rate.
func (s *Store) IndexMessages(ctx context.Context) (int, error) {
	tag, err := s.pool.Exec(ctx, `
		UPDATE messages m SET search = `+messageSearchVector+`
		WHERE m.id IN (SELECT id FROM messages WHERE search IS NULL ORDER BY id LIMIT 5000 FOR UPDATE SKIP LOCKED)`)
	if err != nil {
		return 0, fmt.Errorf("index messages for search: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

func orDefaultInt(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// StaffTicket returns the ticket with that tracking ID when the agent may
// work it; otherwise (no such ticket, another department's) ErrNotFound.
func (s *Store) StaffTicket(ctx context.Context, a Agent, trackingID string) (Ticket, error) {
	id, err := ParseTrackingID(trackingID)
	if err != nil {
		return Ticket{}, fmt.Errorf("ticket %q: %w", trackingID, ErrNotFound)
	}
	var t Ticket
	err = s.pool.QueryRow(ctx, `SELECT `+ticketColumns+`
		FROM tickets t JOIN departments d ON d.id = t.department_id WHERE t.tracking_id = $1`, id).Scan(ticketDest(&t)...)
	if err != nil {
		return t, notFound(err, "ticket "+id)
	}
	if !a.Sees(t.Department.ID) {
		return Ticket{}, fmt.Errorf("ticket %s: %w", id, ErrNotFound)
	}
	return t, nil
}

// InboundOfTicket lists the mails received about a ticket (the one that
// opened it, replies held or posted, automatic answers, bounces), oldest
// first, with the verdicts on their senders.
func (s *Store) InboundOfTicket(ctx context.Context, ticketID int64) ([]InboundEntry, error) {
	return queryStructs[InboundEntry](ctx, s.pool, fmt.Sprintf("mail of ticket %d", ticketID),
		`SELECT `+inboundEntryColumns+inboundFrom+` WHERE i.ticket_id = $1 ORDER BY i.id`, ticketID)
}

// Answer is what an agent adds to a ticket.
type Answer struct {
	Text        string
	Attachments []InboundAttachment
	// Internal notes are for the staff: never shown or mailed to the
	// customer, and they change no status.
	Internal bool
}

// AnswerTicket adds an agent's answer (or internal note) to a ticket. An
// answer is mailed to the customer, with a fresh link, and the ticket
// becomes Replied. It returns the message's ID.
func (s *Store) AnswerTicket(ctx context.Context, a Agent, ticketID int64, ans Answer) (int64, error) {
	errs := FieldErrors{}
	text := formText(errs, "message", ans.Text, len(ans.Attachments) > 0)
	if len(errs) > 0 {
		return 0, fmt.Errorf("answer ticket %d: %w", ticketID, errs)
	}
	atts := storableAttachments(ans.Attachments)
	var messageID int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var deptID int64
		var status, customer string
		err := tx.QueryRow(ctx, `SELECT department_id, status, customer_email FROM tickets WHERE id = $1 FOR UPDATE`, ticketID).
			Scan(&deptID, &status, &customer)
		if err != nil {
			return notFound(err, "read ticket")
		}
		if !a.Sees(deptID) {
			return fmt.Errorf("ticket of another department: %w", ErrNotFound)
		}
		if err := putBlobs(ctx, tx, attachmentContents(atts)); err != nil {
			return err
		}
		var names, types []string
		var sizes []int64
		var sums [][]byte
		for _, f := range atts {
			names, types, sizes, sums = append(names, f.Filename), append(types, f.ContentType), append(sizes, f.Content.Size), append(sums, f.Content.SHA256[:])
		}
		err = tx.QueryRow(ctx, `
			WITH m AS (
				INSERT INTO messages (ticket_id, author_kind, author_name, author_email, body_text, internal, agent_id)
				VALUES ($1, 'agent', $2, $3, $4, $5, $6)
				RETURNING id, ticket_id
			), f AS (
				INSERT INTO attachments (message_id, ticket_id, filename, content_type, size, sha256)
				SELECT m.id, m.ticket_id, y.filename, y.content_type, y.size, y.sha256
				FROM m, unnest($7::text[], $8::text[], $9::bigint[], $10::bytea[]) WITH ORDINALITY AS y(filename, content_type, size, sha256, ord)
				ORDER BY y.ord
			)
			SELECT id FROM m`, ticketID, a.Name, a.Email, text, ans.Internal, a.ID, names, types, sizes, sums).Scan(&messageID)
		if err != nil {
			return fmt.Errorf("add answer: %w", err)
		}
		action := "answer"
		if ans.Internal {
			action = "note"
		}
		if err := history(ctx, tx, ticketID, a.Actor(), action, "", strconv.FormatInt(messageID, 10)); err != nil {
			return err
		}
		if ans.Internal {
			_, err := tx.Exec(ctx, `UPDATE tickets SET updated_at = now() WHERE id = $1`, ticketID)
			return err
		}
		if status != string(StatusReplied) {
			if err := history(ctx, tx, ticketID, a.Actor(), "status", status, string(StatusReplied)); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE tickets SET status = 'replied', updated_at = now() WHERE id = $1`, ticketID); err != nil {
			return fmt.Errorf("set replied: %w", err)
		}
		return queueAnswer(ctx, tx, ticketID, messageID, customer, KindAnswer)
	})
	if err != nil {
		return 0, fmt.Errorf("answer ticket %d: %w", ticketID, err)
	}
	if !ans.Internal {
		s.outboxQueued()
	}
	return messageID, nil
}

// queueAnswer queues a mail to the customer about a message of the ticket,
// threaded after the last mail of the conversation: the customer's latest
// mail, or else our latest mail to them.
func queueAnswer(ctx context.Context, tx pgx.Tx, ticketID, messageID int64, recipient string, kind MailKind) error {
	var from string
	if err := tx.QueryRow(ctx, `SELECT d.address FROM tickets t JOIN departments d ON d.id = t.department_id WHERE t.id = $1`, ticketID).Scan(&from); err != nil {
		return fmt.Errorf("read department: %w", err)
	}
	var parent string
	var refs []string
	err := tx.QueryRow(ctx, `
		SELECT coalesce((SELECT mail_message_id FROM messages WHERE ticket_id = $1 AND mail_message_id <> '' ORDER BY id DESC LIMIT 1), ''),
		       coalesce((SELECT array_agg(message_id ORDER BY id) FROM (
		           SELECT message_id, id FROM outbox WHERE ticket_id = $1 AND kind IN ('ack', 'answer', 'draft_notice', 'auto_resolved')
		           ORDER BY id DESC LIMIT 10) o), '{}')`, ticketID).Scan(&parent, &refs)
	if err != nil {
		return fmt.Errorf("read thread: %w", err)
	}
	if parent == "" && len(refs) > 0 {
		parent = refs[len(refs)-1]
	}
	_, err = tx.Exec(ctx, `
		INSERT INTO outbox (kind, ticket_id, message_ref, recipient, message_id, in_reply_to, reference_ids)
		VALUES ($1, $2, nullif($3, 0), $4, $5, $6, $7)`,
		string(kind), ticketID, messageID, recipient, newMessageID(from), parent, threadReferences(refs, parent))
	if err != nil {
		return fmt.Errorf("queue %s mail: %w", kind, err)
	}
	return nil
}

func history(ctx context.Context, tx pgx.Tx, ticketID int64, actor, action, oldValue, newValue string) error {
	_, err := tx.Exec(ctx, `INSERT INTO ticket_history (ticket_id, actor, action, old_value, new_value) VALUES ($1, $2, $3, $4, $5)`,
		ticketID, actor, action, oldValue, newValue)
	if err != nil {
		return fmt.Errorf("record %s in history: %w", action, err)
	}
	return nil
}

// TicketChange is what an agent changes about a ticket; nil fields stay.
type TicketChange struct {
	Status       *Status
	Priority     *Priority
	DepartmentID *int64
	// AssigneeID: 0 unassigns.
	AssigneeID *int64
}

// UpdateTicket changes a ticket's status, priority, department or
// assignee, each change a line of its history. The agent must see the
// ticket and the department it moves to; the assignee must work the
// ticket's (new) department.
func (s *Store) UpdateTicket(ctx context.Context, a Agent, ticketID int64, c TicketChange) error {
	if c.Status != nil && !validStatus(*c.Status) {
		return fmt.Errorf("update ticket %d: status %q: %w", ticketID, *c.Status, ErrInvalid)
	}
	if c.Priority != nil && !validPriority(*c.Priority) {
		return fmt.Errorf("update ticket %d: priority %q: %w", ticketID, *c.Priority, ErrInvalid)
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var old struct {
			status, priority string
			dept, assignee   int64
		}
		err := tx.QueryRow(ctx, `SELECT status, priority, department_id, coalesce(assignee_id, 0) FROM tickets WHERE id = $1 FOR UPDATE`, ticketID).
			Scan(&old.status, &old.priority, &old.dept, &old.assignee)
		if err != nil {
			return notFound(err, "read ticket")
		}
		if !a.Sees(old.dept) {
			return fmt.Errorf("ticket of another department: %w", ErrNotFound)
		}
		status, priority, dept, assignee := old.status, old.priority, old.dept, old.assignee
		if c.Status != nil {
			status = string(*c.Status)
		}
		if c.Priority != nil {
			priority = string(*c.Priority)
		}
		if c.DepartmentID != nil {
			dept = *c.DepartmentID
			if !a.Sees(dept) {
				return fmt.Errorf("department %d is not yours: %w", dept, ErrInvalid)
			}
		}
		if c.AssigneeID != nil {
			assignee = *c.AssigneeID
		}
		if assignee != 0 {
			var works bool
			err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM agents ag WHERE ag.id = $1 AND ag.disabled_at IS NULL AND
				(ag.role = 'admin' OR EXISTS (SELECT 1 FROM agent_departments ad WHERE ad.agent_id = ag.id AND ad.department_id = $2)))`,
				assignee, dept).Scan(&works)
			if err != nil {
				return fmt.Errorf("check assignee: %w", err)
			}
			if !works {
				return fmt.Errorf("agent %d does not work that department: %w", assignee, ErrInvalid)
			}
		}
		_, err = tx.Exec(ctx, `UPDATE tickets SET status = $2, priority = $3, department_id = $4, assignee_id = nullif($5, 0), updated_at = now() WHERE id = $1`,
			ticketID, status, priority, dept, assignee)
		if err != nil {
			return fmt.Errorf("update ticket: %w", err)
		}
		for _, ch := range []struct{ action, from, to string }{
			{"status", old.status, status}, {"priority", old.priority, priority},
			{"department", strconv.FormatInt(old.dept, 10), strconv.FormatInt(dept, 10)},
			{"assignee", strconv.FormatInt(old.assignee, 10), strconv.FormatInt(assignee, 10)},
		} {
			if ch.from != ch.to {
				if err := history(ctx, tx, ticketID, a.Actor(), ch.action, ch.from, ch.to); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("update ticket %d: %w", ticketID, err)
	}
	return nil
}

func validStatus(s Status) bool {
	switch s {
	case StatusNew, StatusWaitingReply, StatusReplied, StatusInProgress, StatusOnHold, StatusResolved:
		return true
	}
	return false
}

func validPriority(p Priority) bool {
	switch p {
	case PriorityLow, PriorityMedium, PriorityHigh, PriorityCritical:
		return true
	}
	return false
}

// Canned is a canned response: text an agent starts an answer from. Its
// placeholders {{customer_name}}, {{tracking_id}} and {{link}} are filled
// in for the ticket (the link when the mail is sent).
type Canned struct {
	ID           int64
	DepartmentID int64 // 0: every department
	Title        string
	Body         string
	UpdatedAt    time.Time
}

// CannedFor lists the canned responses for a department's tickets (its
// own and those for every department), by title.
func (s *Store) CannedFor(ctx context.Context, departmentID int64) ([]Canned, error) {
	return queryStructs[Canned](ctx, s.pool, "read canned responses", `
		SELECT id, coalesce(department_id, 0), title, body, updated_at FROM canned_responses
		WHERE department_id IS NULL OR department_id = $1 OR $1 = 0 ORDER BY title, id`, departmentID)
}

// SaveCanned creates (ID 0) or changes a canned response.
func (s *Store) SaveCanned(ctx context.Context, actor string, c Canned) (int64, error) {
	c.Title = oneLine(c.Title, 200)
	c.Body = cleanText(strings.TrimSpace(c.Body))
	if c.Title == "" || c.Body == "" {
		return 0, fmt.Errorf("save canned response: title and text are required: %w", ErrInvalid)
	}
	id := c.ID
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		if c.ID == 0 {
			err = tx.QueryRow(ctx, `INSERT INTO canned_responses (department_id, title, body) VALUES (nullif($1, 0), $2, $3) RETURNING id`,
				c.DepartmentID, c.Title, c.Body).Scan(&id)
		} else {
			err = tx.QueryRow(ctx, `UPDATE canned_responses SET department_id = nullif($2, 0), title = $3, body = $4, updated_at = now()
				WHERE id = $1 RETURNING id`, c.ID, c.DepartmentID, c.Title, c.Body).Scan(&id)
		}
		if isUniqueViolation(err, "") {
			return fmt.Errorf("a canned response titled %q exists there: %w", c.Title, ErrConflict)
		}
		if err != nil {
			return notFound(err, "save")
		}
		return audit(ctx, tx, actor, "canned.save", c.Title, fmt.Sprintf("id=%d department=%d", id, c.DepartmentID))
	})
	if err != nil {
		return 0, fmt.Errorf("save canned response: %w", err)
	}
	return id, nil
}

// DeleteCanned removes a canned response.
func (s *Store) DeleteCanned(ctx context.Context, actor string, id int64) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var title string
		if err := tx.QueryRow(ctx, `DELETE FROM canned_responses WHERE id = $1 RETURNING title`, id).Scan(&title); err != nil {
			return notFound(err, "delete")
		}
		return audit(ctx, tx, actor, "canned.delete", title, fmt.Sprintf("id=%d", id))
	})
	if err != nil {
		return fmt.Errorf("delete canned response %d: %w", id, err)
	}
	return nil
}

// FillCanned fills a canned response's placeholders for a ticket; {{link}}
// stays, to become the fresh link when the mail is sent.
func FillCanned(body string, t Ticket) string {
	name := t.CustomerName
	if name == "" {
		name = t.CustomerEmail
	}
	return strings.NewReplacer("{{customer_name}}", name, "{{tracking_id}}", t.TrackingID).Replace(body)
}

// UpdateDepartment changes a department's name, language or auto-resolve
// days (0 turns it off).
func (s *Store) UpdateDepartment(ctx context.Context, actor string, d Department) error {
	d.Name = oneLine(d.Name, 200)
	if d.Name == "" || !ValidLocale(d.Locale) || d.AutoResolveDays < 0 {
		return fmt.Errorf("update department %d: name, locale (es, en) and days (0 or more) are required: %w", d.ID, ErrInvalid)
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var slug string
		err := tx.QueryRow(ctx, `UPDATE departments SET name = $2, locale = $3, auto_resolve_days = nullif($4, 0) WHERE id = $1 RETURNING slug`,
			d.ID, d.Name, d.Locale, d.AutoResolveDays).Scan(&slug)
		if err != nil {
			return notFound(err, "update")
		}
		return audit(ctx, tx, actor, "department.update", slug, fmt.Sprintf("name=%q locale=%s auto_resolve_days=%d", d.Name, d.Locale, d.AutoResolveDays))
	})
	if err != nil {
		return fmt.Errorf("update department %d: %w", d.ID, err)
	}
	return nil
}
