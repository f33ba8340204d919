package tickets

import (
	"context"
	"fmt"
	"time"
)

// StaffAttachment returns one attachment of a ticket as the staff see it:
// internal notes' files included. An attachment of another ticket is
// ErrNotFound.
func (s *Store) StaffAttachment(ctx context.Context, ticketID, attachmentID int64) (Attachment, error) {
	atts, err := s.attachments(ctx, `a.ticket_id = $1 AND a.id = $2`, ticketID, attachmentID)
	if err != nil {
		return Attachment{}, err
	}
	if len(atts) == 0 {
		return Attachment{}, fmt.Errorf("attachment %d of ticket %d: %w", attachmentID, ticketID, ErrNotFound)
	}
	return atts[0], nil
}

// HistoryEntry is one change of a ticket, with when it happened.
type HistoryEntry struct {
	At       time.Time
	Actor    string
	Action   string
	OldValue string
	NewValue string
}

// StaffHistory returns a ticket's changes with their times, oldest first.
func (s *Store) StaffHistory(ctx context.Context, ticketID int64) ([]HistoryEntry, error) {
	return queryStructs[HistoryEntry](ctx, s.pool, fmt.Sprintf("history of ticket %d", ticketID),
		`SELECT at, actor, action, old_value, new_value FROM ticket_history WHERE ticket_id = $1 ORDER BY id`, ticketID)
}
