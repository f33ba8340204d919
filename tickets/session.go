package tickets

import (
	"context"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// GrantSource says how a visitor showed a right to a ticket.
type GrantSource string

const (
	GrantToken  GrantSource = "token"  // opened a mailed link
	GrantLookup GrantSource = "lookup" // knew the tracking ID and the address
	GrantSubmit GrantSource = "submit" // submitted the ticket
)

// Grant is a right to one ticket, given to a session.
type Grant struct {
	TicketID int64
	Via      GrantSource
	// Token is the link that gave the right, when Via is GrantToken: the
	// right ends when the link expires or is revoked.
	Token string
}

// Sessions are bounded: however active, a session's rights last at most
// maxSessionAge from when each was given, and a session keeps the latest
// maxSessionGrants of them.
const (
	maxSessionAge    = 30 * 24 * time.Hour
	maxSessionGrants = 20
)

// OpenSession gives a visitor's session a right to a ticket and returns the
// session's new ID, valid for idle from now and from every use. The session
// keeps the rights of the one named by oldID (when that is valid), and oldID
// stops working: an ID planted in the visitor's browser by someone else
// never gains the rights the visitor proves.
func (s *Store) OpenSession(ctx context.Context, oldID string, g Grant, idle time.Duration) (string, error) {
	id, hash := newToken()
	var tokenHash []byte
	if g.Via == GrantToken {
		tokenHash = hashToken(g.Token)
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// Expired sessions go a few at a time, on the way.
		_, err := tx.Exec(ctx, `DELETE FROM sessions WHERE hash IN (
			SELECT hash FROM sessions WHERE expires_at < now() LIMIT 20 FOR UPDATE SKIP LOCKED)`)
		if err != nil {
			return fmt.Errorf("remove expired sessions: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO sessions (hash, expires_at) VALUES ($1, now() + $2 * interval '1 second')`,
			hash, int64(idle/time.Second)); err != nil {
			return fmt.Errorf("create session: %w", err)
		}
		if oldID != "" {
			_, err := tx.Exec(ctx, `
				WITH old AS (
					DELETE FROM sessions WHERE hash = $2 RETURNING hash, expires_at
				)
				INSERT INTO session_tickets (session_hash, ticket_id, via, token_hash, granted_at)
				SELECT $1, g.ticket_id, g.via, g.token_hash, g.granted_at
				FROM old JOIN session_tickets g ON g.session_hash = old.hash
				WHERE old.expires_at > now() AND g.granted_at > now() - $3 * interval '1 second' AND g.ticket_id <> $4
				ORDER BY g.granted_at DESC
				LIMIT $5`,
				hash, hashToken(oldID), int64(maxSessionAge/time.Second), g.TicketID, maxSessionGrants-1)
			if err != nil {
				return fmt.Errorf("carry over session: %w", err)
			}
		}
		_, err = tx.Exec(ctx, `INSERT INTO session_tickets (session_hash, ticket_id, via, token_hash) VALUES ($1, $2, $3, $4)`,
			hash, g.TicketID, string(g.Via), tokenHash)
		if err != nil {
			return fmt.Errorf("grant ticket %d: %w", g.TicketID, err)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("open session: %w", err)
	}
	return id, nil
}

// SessionTicket returns the ticket with that tracking ID (canonical form)
// when the session may see it, and makes the session valid for idle from
// now. Whatever the reason it may not (no such session or ticket, no
// right, an expired or revoked link behind the right), it is ErrNotFound.
func (s *Store) SessionTicket(ctx context.Context, sessionID, trackingID string, idle time.Duration) (Ticket, error) {
	var t Ticket
	if len(sessionID) != base64.RawURLEncoding.EncodedLen(tokenBytes) {
		return t, fmt.Errorf("session ticket %s: %w", trackingID, ErrNotFound)
	}
	// The session's lifetime is pushed out at most once a minute: a page
	// with several requests writes once.
	err := s.pool.QueryRow(ctx, `
		WITH touch AS (
			UPDATE sessions SET last_seen = now(), expires_at = now() + $3 * interval '1 second'
			WHERE hash = $1 AND expires_at > now() AND last_seen < now() - interval '1 minute'
		)
		SELECT `+ticketColumns+`
		FROM sessions s
		JOIN session_tickets g ON g.session_hash = s.hash
		JOIN tickets t ON t.id = g.ticket_id
		JOIN departments d ON d.id = t.department_id
		LEFT JOIN tokens k ON k.hash = g.token_hash
		WHERE s.hash = $1 AND s.expires_at > now() AND t.tracking_id = $2
		  AND g.granted_at > now() - $4 * interval '1 second'
		  AND (g.token_hash IS NULL OR (k.revoked_at IS NULL AND k.expires_at > now()))`,
		hashToken(sessionID), trackingID, int64(idle/time.Second), int64(maxSessionAge/time.Second)).Scan(ticketDest(&t)...)
	if err != nil {
		return t, notFound(err, "session ticket "+trackingID)
	}
	return t, nil
}
