package tickets

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// MailKind says which mail an outbox row is.
type MailKind string

// KindAck acknowledges a new ticket to its customer.
const KindAck MailKind = "ack"

// OutboxMail is a queued mail with what is needed to write it.
type OutboxMail struct {
	ID         int64
	Kind       MailKind
	Recipient  string
	MessageID  string
	InReplyTo  string
	References []string
	// Attempts counts earlier tries; this claim is attempt Attempts+1.
	Attempts  int
	CreatedAt time.Time
	Ticket    Ticket
}

// OutboxBatch is a set of queued mails locked by one sender. Rows locked by a
// batch are skipped by other senders until it commits or rolls back; if the
// process dies, the lock goes with its connection and another sender takes
// the mails at once.
type OutboxBatch struct {
	tx      pgx.Tx
	Mails   []OutboxMail
	ids     []int64
	states  []string
	retryAt []time.Time
	reasons []string
}

// ClaimOutbox locks up to limit mails that are due. It returns nil when none
// is due.
func (s *Store) ClaimOutbox(ctx context.Context, limit int) (*OutboxBatch, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("claim outbox: begin: %w", err)
	}
	rows, err := tx.Query(ctx, `
		SELECT o.id, o.kind, o.recipient, o.message_id, o.in_reply_to, o.reference_ids, o.attempts, o.created_at,
		       `+ticketColumns+`
		FROM outbox o JOIN tickets t ON t.id = o.ticket_id JOIN departments d ON d.id = t.department_id
		WHERE o.state = 'pending' AND o.next_attempt <= now()
		ORDER BY o.next_attempt, o.id
		LIMIT $1
		FOR UPDATE OF o SKIP LOCKED`, limit)
	if err != nil {
		tx.Rollback(ctx) //nolint:errcheck // the query error says more
		return nil, fmt.Errorf("claim outbox: %w", err)
	}
	mails, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (OutboxMail, error) {
		var m OutboxMail
		dest := append([]any{&m.ID, &m.Kind, &m.Recipient, &m.MessageID, &m.InReplyTo, &m.References, &m.Attempts, &m.CreatedAt},
			ticketDest(&m.Ticket)...)
		return m, r.Scan(dest...)
	})
	if err != nil || len(mails) == 0 {
		tx.Rollback(ctx) //nolint:errcheck // nothing was changed
		if err != nil {
			return nil, fmt.Errorf("claim outbox: %w", err)
		}
		return nil, nil
	}
	return &OutboxBatch{tx: tx, Mails: mails}, nil
}

func (b *OutboxBatch) record(id int64, state string, at time.Time, reason string) {
	b.ids = append(b.ids, id)
	b.states = append(b.states, state)
	b.retryAt = append(b.retryAt, at)
	b.reasons = append(b.reasons, reason)
}

// Sent records that mail id went out.
func (b *OutboxBatch) Sent(id int64) { b.record(id, "sent", time.Now(), "") }

// Retry records a failed try of mail id and when to try again.
func (b *OutboxBatch) Retry(id int64, at time.Time, reason string) {
	b.record(id, "pending", at, reason)
}

// Fail records that mail id will not be tried again, and why.
func (b *OutboxBatch) Fail(id int64, reason string) { b.record(id, "failed", time.Now(), reason) }

// Commit writes what was recorded and releases the batch's mails.
func (b *OutboxBatch) Commit(ctx context.Context) error {
	defer b.tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	if len(b.ids) > 0 {
		_, err := b.tx.Exec(ctx, `
			UPDATE outbox o SET state = r.state, attempts = o.attempts + 1, last_error = r.reason,
			       next_attempt = CASE WHEN r.state = 'pending' THEN r.at ELSE o.next_attempt END,
			       sent_at = CASE WHEN r.state = 'sent' THEN r.at END
			FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::text[]) AS r(id, state, at, reason)
			WHERE o.id = r.id`, b.ids, b.states, b.retryAt, b.reasons)
		if err != nil {
			return fmt.Errorf("record outbox results: %w", err)
		}
	}
	if err := b.tx.Commit(ctx); err != nil {
		return fmt.Errorf("record outbox results: commit: %w", err)
	}
	return nil
}

// Rollback releases the batch's mails without recording anything.
func (b *OutboxBatch) Rollback(ctx context.Context) {
	b.tx.Rollback(ctx) //nolint:errcheck // the connection may be gone; the lock goes with it
}

// NextOutboxAttempt returns when the earliest pending mail is due, and false
// when nothing is pending.
func (s *Store) NextOutboxAttempt(ctx context.Context) (time.Time, bool, error) {
	var at *time.Time
	if err := s.pool.QueryRow(ctx, `SELECT min(next_attempt) FROM outbox WHERE state = 'pending'`).Scan(&at); err != nil {
		return time.Time{}, false, fmt.Errorf("next outbox attempt: %w", err)
	}
	if at == nil {
		return time.Time{}, false, nil
	}
	return *at, true, nil
}

// OutboxState is a queued mail's state as the staff and tests see it.
type OutboxState struct {
	ID        int64
	Kind      MailKind
	TicketID  int64
	Recipient string
	MessageID string
	State     string
	Attempts  int
	LastError string
	SentAt    *time.Time
}

// OutboxForTicket lists the mail queued because of a ticket, oldest first.
func (s *Store) OutboxForTicket(ctx context.Context, ticketID int64) ([]OutboxState, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT id, kind, ticket_id, recipient, message_id, state, attempts, last_error, sent_at
		FROM outbox WHERE ticket_id = $1 ORDER BY id`, ticketID)
	if err != nil {
		return nil, fmt.Errorf("outbox of ticket %d: %w", ticketID, err)
	}
	list, err := pgx.CollectRows(rows, pgx.RowToStructByPos[OutboxState])
	if err != nil {
		return nil, fmt.Errorf("outbox of ticket %d: %w", ticketID, err)
	}
	return list, nil
}

// notFound wraps err with what failed, as ErrNotFound when no row matched.
func notFound(err error, what string) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return fmt.Errorf("%s: %w", what, err)
}
