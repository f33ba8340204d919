package tickets

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

const ticketColumns = `t.id, t.tracking_id, t.subject, t.customer_name, t.customer_email, t.status, t.priority,
		       t.locale, t.source, t.created_at, t.updated_at, coalesce(t.assignee_id, 0), ` + departmentColumns

func ticketDest(t *Ticket) []any {
	return append([]any{&t.ID, &t.TrackingID, &t.Subject, &t.CustomerName, &t.CustomerEmail, &t.Status, &t.Priority,
		&t.Locale, &t.Source, &t.CreatedAt, &t.UpdatedAt, &t.AssigneeID}, departmentDest(&t.Department)...)
}

// Ticket returns a ticket by its ID.
func (s *Store) Ticket(ctx context.Context, id int64) (Ticket, error) {
	var t Ticket
	err := s.pool.QueryRow(ctx, `SELECT `+ticketColumns+`
		FROM tickets t JOIN departments d ON d.id = t.department_id WHERE t.id = $1`, id).Scan(ticketDest(&t)...)
	if err != nil {
		return t, notFound(err, fmt.Sprintf("ticket %d", id))
	}
	return t, nil
}

// Thread returns a ticket's messages with their attachments, oldest first.
// Internal notes are left out unless withInternal is set.
func (s *Store) Thread(ctx context.Context, ticketID int64, withInternal bool) ([]Message, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT id, author_kind, author_name, author_email, body_text, body_html, internal, created_at, coalesce(inbound_id, 0)
		FROM messages WHERE ticket_id = $1 AND (NOT internal OR $2) ORDER BY id`, ticketID, withInternal)
	if err != nil {
		return nil, fmt.Errorf("thread of ticket %d: %w", ticketID, err)
	}
	msgs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Message, error) {
		var m Message
		return m, r.Scan(&m.ID, &m.AuthorKind, &m.AuthorName, &m.AuthorEmail, &m.Text, &m.HTML, &m.Internal, &m.CreatedAt, &m.InboundID)
	})
	if err != nil {
		return nil, fmt.Errorf("thread of ticket %d: %w", ticketID, err)
	}
	atts, err := s.attachments(ctx, `a.ticket_id = $1`, ticketID)
	if err != nil {
		return nil, err
	}
	byMessage := make(map[int64]int, len(msgs))
	for i, m := range msgs {
		byMessage[m.ID] = i
	}
	for _, a := range atts {
		if i, ok := byMessage[a.MessageID]; ok {
			msgs[i].Attachments = append(msgs[i].Attachments, a)
		}
	}
	return msgs, nil
}

// Attachment returns one attachment of a ticket as its customer may see it:
// an attachment of another ticket, or of an internal note, is ErrNotFound.
func (s *Store) Attachment(ctx context.Context, ticketID, attachmentID int64) (Attachment, error) {
	atts, err := s.attachments(ctx, `a.ticket_id = $1 AND a.id = $2 AND NOT m.internal`, ticketID, attachmentID)
	if err != nil {
		return Attachment{}, err
	}
	if len(atts) == 0 {
		return Attachment{}, fmt.Errorf("attachment %d of ticket %d: %w", attachmentID, ticketID, ErrNotFound)
	}
	return atts[0], nil
}

func (s *Store) attachments(ctx context.Context, where string, args ...any) ([]Attachment, error) {
	return queryStructs[Attachment](ctx, s.pool, "attachments", `
		SELECT a.id, a.message_id, a.filename, a.content_type, a.content_id, a.inline, a.size, a.sha256
		FROM attachments a JOIN messages m ON m.id = a.message_id
		WHERE `+where+` ORDER BY a.id`, args...)
}

// queryStructs runs a query and collects its rows, column by column into
// the fields of T in order; what names the query in errors.
func queryStructs[T any](ctx context.Context, pool *pgxpool.Pool, what, sql string, args ...any) ([]T, error) {
	rows, err := pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	list, err := pgx.CollectRows(rows, pgx.RowToStructByPos[T])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return list, nil
}
