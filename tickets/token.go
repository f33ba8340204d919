package tickets

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Scope says what a token opens.
type Scope string

const (
	// ScopeTicket lets the holder view and answer one ticket.
	ScopeTicket Scope = "ticket"
	// ScopeDraft lets the holder review and post one held reply, and view
	// its ticket, while the reply waits.
	ScopeDraft Scope = "draft"
)

// tokenBytes is the entropy of a token: 256 bits.
const tokenBytes = 32

// newToken returns a random token as it goes into a link, and the hash the
// database keeps of it.
func newToken() (plain string, hash []byte) {
	raw := make([]byte, tokenBytes)
	rand.Read(raw) //nolint:errcheck // never fails since Go 1.24
	plain = base64.RawURLEncoding.EncodeToString(raw)
	return plain, hashToken(plain)
}

func hashToken(plain string) []byte {
	h := sha256.Sum256([]byte(plain))
	return h[:]
}

// IssueToken creates a token of the given scope for a ticket, valid for the
// store's token lifetime, and returns it. Only its hash is stored.
func (s *Store) IssueToken(ctx context.Context, ticketID int64, scope Scope) (string, error) {
	tokens, err := issueTokens(ctx, s.pool, scope, []int64{ticketID}, s.tokenTTL)
	if err != nil {
		return "", err
	}
	return tokens[0], nil
}

// execer is a pool or a transaction.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func issueTokens(ctx context.Context, db execer, scope Scope, ticketIDs []int64, ttl time.Duration) ([]string, error) {
	plain := make([]string, len(ticketIDs))
	hashes := make([][]byte, len(ticketIDs))
	for i := range ticketIDs {
		plain[i], hashes[i] = newToken()
	}
	_, err := db.Exec(ctx, `
		INSERT INTO tokens (hash, scope, ticket_id, expires_at)
		SELECT h, $2, t, now() + $4 * interval '1 second' FROM unnest($1::bytea[], $3::bigint[]) AS x(h, t)`,
		hashes, string(scope), ticketIDs, int64(ttl/time.Second))
	if err != nil {
		return nil, fmt.Errorf("issue %d %s tokens: %w", len(ticketIDs), scope, err)
	}
	return plain, nil
}

// TokenTTL is how long issued tokens stay valid.
func (s *Store) TokenTTL() time.Duration { return s.tokenTTL }

// TicketByToken returns the ticket a token of the given scope opens.
// Unknown and revoked tokens give ErrNotFound, expired ones ErrExpired.
func (s *Store) TicketByToken(ctx context.Context, token string, scope Scope) (Ticket, error) {
	if len(token) != base64.RawURLEncoding.EncodedLen(tokenBytes) {
		return Ticket{}, fmt.Errorf("look up token: %w", ErrNotFound)
	}
	var ticketID int64
	var expires time.Time
	err := s.pool.QueryRow(ctx,
		`SELECT ticket_id, expires_at FROM tokens WHERE hash = $1 AND scope = $2 AND revoked_at IS NULL`,
		hashToken(token), string(scope)).Scan(&ticketID, &expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return Ticket{}, fmt.Errorf("look up token: %w", ErrNotFound)
	}
	if err != nil {
		return Ticket{}, fmt.Errorf("look up token: %w", err)
	}
	if !time.Now().Before(expires) {
		return Ticket{}, fmt.Errorf("look up token: %w", ErrExpired)
	}
	return s.Ticket(ctx, ticketID)
}

// RevokeToken makes a token unusable from now on.
func (s *Store) RevokeToken(ctx context.Context, token string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE tokens SET revoked_at = now() WHERE hash = $1 AND revoked_at IS NULL`, hashToken(token))
	if err != nil {
		return fmt.Errorf("revoke token: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("revoke token: %w", ErrNotFound)
	}
	return nil
}
