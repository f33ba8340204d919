package tickets

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// MailboxState is what a mailbox's poller is doing.
type MailboxState string

const (
	MailboxWaiting    MailboxState = "waiting" // no instance polls it (yet)
	MailboxConnecting MailboxState = "connecting"
	MailboxConnected  MailboxState = "connected" // fetching mail
	MailboxIdling     MailboxState = "idling"    // waiting for mail with IDLE
	MailboxPolling    MailboxState = "polling"   // waiting for the next poll
	MailboxError      MailboxState = "error"
	MailboxDisabled   MailboxState = "disabled"
)

// Mailbox is an IMAP folder whose mail becomes tickets of a department.
type Mailbox struct {
	ID         int64
	Department Department
	// URL names the server, user and folder: imaps://user@host:993/INBOX.
	URL string
	// Auth is how the gateway logs in: with the password PasswordRef
	// points to, or with OAuth2 tokens obtained as OAuth says.
	Auth AuthKind
	// PasswordRef says where the password is ("env:VAR" or "file:/path");
	// the password itself is never stored. Empty for OAuth2.
	PasswordRef string
	// OAuth is who issues the tokens of an OAuth2 mailbox, and for what.
	OAuth OAuthSettings
	// OAuthStatus is where an OAuth2 mailbox's authorization stands.
	OAuthStatus OAuthStatus
	// MoveTo is the folder processed mail goes to; "" keeps it in place,
	// flagged \Seen.
	MoveTo string
	// PollInterval is how often a server without IDLE is polled.
	PollInterval time.Duration
	Enabled      bool
	// Version changes with every change of the settings above.
	Version int

	UIDValidity uint32
	LastUID     uint32
	Ingested    int64

	State         MailboxState
	StateAt       time.Time
	Holder        string
	LastError     string
	LastErrorAt   time.Time // zero when there was none
	LastSuccessAt time.Time // zero before the first
	CreatedAt     time.Time
}

// DefaultPollInterval is how often a server without IDLE is polled unless
// the mailbox says otherwise.
const DefaultPollInterval = time.Minute

// AddMailbox attaches a mailbox to a department (m.Department.Slug). A
// department has one mailbox at most.
func (s *Store) AddMailbox(ctx context.Context, m Mailbox) (Mailbox, error) {
	if m.PollInterval == 0 {
		m.PollInterval = DefaultPollInterval
	}
	if m.PollInterval < 5*time.Second || m.PollInterval > 24*time.Hour {
		return m, fmt.Errorf("mailbox of %q: poll interval %v: want 5s to 24h: %w", m.Department.Slug, m.PollInterval, ErrInvalid)
	}
	if m.Auth == "" {
		m.Auth = AuthPassword
	}
	if err := m.checkAuth(); err != nil {
		return m, fmt.Errorf("mailbox of %q: %w", m.Department.Slug, err)
	}
	d, err := s.DepartmentBySlug(ctx, m.Department.Slug)
	if err != nil {
		return m, err
	}
	m.Department = d
	o := m.OAuth
	if o.Scopes == nil {
		o.Scopes = []string{}
	}
	err = s.pool.QueryRow(ctx, `
		INSERT INTO mailboxes (department_id, url, password_ref, move_to, poll_seconds, auth_kind, oauth_provider,
		                       oauth_tenant, oauth_client_id, oauth_client_secret_ref, oauth_client_credentials,
		                       oauth_token_url, oauth_device_url, oauth_auth_url, oauth_scopes)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id`,
		d.ID, m.URL, m.PasswordRef, m.MoveTo, int(m.PollInterval/time.Second), string(m.Auth), string(o.Provider),
		o.Tenant, o.ClientID, o.ClientSecretRef, o.ClientCredentials, o.TokenURL, o.DeviceURL, o.AuthURL, o.Scopes).Scan(&m.ID)
	if isUniqueViolation(err, "") {
		return m, fmt.Errorf("department %q has a mailbox already (remove it first): %w", d.Slug, ErrConflict)
	}
	if err != nil {
		return m, fmt.Errorf("add mailbox of %q: %w", d.Slug, err)
	}
	return s.mailbox(ctx, `m.id = $1`, m.ID)
}

const mailboxColumns = `m.id, m.url, m.password_ref, m.move_to, m.poll_seconds, m.enabled, m.version,
	m.uid_validity, m.last_uid, m.ingested, m.state, m.state_at, m.holder, m.last_error,
	m.last_error_at, m.last_success_at, m.created_at, ` + oauthColumns + `, ` + departmentColumns

func scanMailbox(row pgx.CollectableRow) (Mailbox, error) {
	var m Mailbox
	var pollSeconds int
	var uidValidity, lastUID int64
	var lastErrorAt, lastSuccessAt *time.Time
	var oauth oauthDest
	dest := append([]any{&m.ID, &m.URL, &m.PasswordRef, &m.MoveTo, &pollSeconds, &m.Enabled, &m.Version,
		&uidValidity, &lastUID, &m.Ingested, &m.State, &m.StateAt, &m.Holder, &m.LastError,
		&lastErrorAt, &lastSuccessAt, &m.CreatedAt}, oauth.dest(&m)...)
	err := row.Scan(append(dest, departmentDest(&m.Department)...)...)
	oauth.finish(&m)
	m.PollInterval = time.Duration(pollSeconds) * time.Second
	m.UIDValidity, m.LastUID = uint32(uidValidity), uint32(lastUID)
	if lastErrorAt != nil {
		m.LastErrorAt = *lastErrorAt
	}
	if lastSuccessAt != nil {
		m.LastSuccessAt = *lastSuccessAt
	}
	return m, err
}

func (s *Store) mailboxes(ctx context.Context, where string, args ...any) ([]Mailbox, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+mailboxColumns+`
		FROM mailboxes m JOIN departments d ON d.id = m.department_id
		WHERE `+where+` ORDER BY d.slug`, args...)
	if err != nil {
		return nil, fmt.Errorf("list mailboxes: %w", err)
	}
	list, err := pgx.CollectRows(rows, scanMailbox)
	if err != nil {
		return nil, fmt.Errorf("list mailboxes: %w", err)
	}
	return list, nil
}

func (s *Store) mailbox(ctx context.Context, where string, args ...any) (Mailbox, error) {
	list, err := s.mailboxes(ctx, where, args...)
	if err != nil {
		return Mailbox{}, err
	}
	if len(list) == 0 {
		return Mailbox{}, fmt.Errorf("mailbox: %w", ErrNotFound)
	}
	return list[0], nil
}

// Mailboxes lists every mailbox, enabled or not, by department.
func (s *Store) Mailboxes(ctx context.Context) ([]Mailbox, error) {
	return s.mailboxes(ctx, `true`)
}

// MailboxOf returns the mailbox of the department with that slug.
func (s *Store) MailboxOf(ctx context.Context, slug string) (Mailbox, error) {
	m, err := s.mailbox(ctx, `d.slug = $1`, slug)
	if errors.Is(err, ErrNotFound) {
		return m, fmt.Errorf("department %q has no mailbox: %w", slug, ErrNotFound)
	}
	return m, err
}

// RemoveMailbox detaches the department's mailbox. Its mail stays where it
// is; tickets made from it stay too.
func (s *Store) RemoveMailbox(ctx context.Context, slug string) error {
	tag, err := s.pool.Exec(ctx, `
		DELETE FROM mailboxes WHERE department_id = (SELECT id FROM departments WHERE slug = $1)`, slug)
	if err != nil {
		return fmt.Errorf("remove mailbox of %q: %w", slug, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("department %q has no mailbox: %w", slug, ErrNotFound)
	}
	return nil
}

// SetMailboxEnabled starts or stops the polling of the department's mailbox
// without forgetting it or its progress.
func (s *Store) SetMailboxEnabled(ctx context.Context, slug string, enabled bool) error {
	tag, err := s.pool.Exec(ctx, `
		UPDATE mailboxes SET enabled = $2, version = version + 1,
		       state = CASE WHEN $2 THEN 'waiting' ELSE 'disabled' END, state_at = now()
		WHERE department_id = (SELECT id FROM departments WHERE slug = $1)`, slug, enabled)
	if err != nil {
		return fmt.Errorf("enable mailbox of %q: %w", slug, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("department %q has no mailbox: %w", slug, ErrNotFound)
	}
	return nil
}

// SetMailboxState records what a mailbox's poller is doing. An error state
// records errText as the last error; other states keep the last error for
// the record.
func (s *Store) SetMailboxState(ctx context.Context, id int64, state MailboxState, holder, errText string) error {
	_, err := s.pool.Exec(ctx, `
		UPDATE mailboxes SET state = $2, state_at = now(), holder = $3,
		       last_error = CASE WHEN $2 = 'error' THEN $4 ELSE last_error END,
		       last_error_at = CASE WHEN $2 = 'error' THEN now() ELSE last_error_at END
		WHERE id = $1 AND (enabled OR $2 = 'disabled')`, id, string(state), holder, oneLine(errText, 1000))
	if err != nil {
		return fmt.Errorf("record state of mailbox %d: %w", id, err)
	}
	return nil
}

// AdvanceMailbox records that the mailbox's mail up to lastUID, in folder
// generation uidValidity, is in the inbound log, ingested of it just now.
func (s *Store) AdvanceMailbox(ctx context.Context, id int64, uidValidity, lastUID uint32, ingested int) error {
	_, err := s.pool.Exec(ctx, `
		UPDATE mailboxes SET uid_validity = $2, last_uid = $3, ingested = ingested + $4, last_success_at = now()
		WHERE id = $1`, id, int64(uidValidity), int64(lastUID), ingested)
	if err != nil {
		return fmt.Errorf("record progress of mailbox %d: %w", id, err)
	}
	return nil
}

// mailboxLockClass is the first key of the advisory locks on mailboxes
// ("mbox"); the mailbox ID is the second.
const mailboxLockClass = 0x6d626f78

// MailboxLocks holds advisory locks on mailboxes, so that one instance at a
// time polls each. The locks live on one connection of their own, outside
// the pool: a pooled connection would carry them on after its release.
// When the connection goes, PostgreSQL releases them all, and another
// instance may take the mailboxes over.
type MailboxLocks struct {
	mu   sync.Mutex
	conn *pgx.Conn
}

// MailboxLocks opens the connection locks are held on.
func (s *Store) MailboxLocks(ctx context.Context) (*MailboxLocks, error) {
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect for mailbox locks: %w", err)
	}
	conn := pc.Hijack()
	// Should this instance's host vanish without closing the connection,
	// the server notices within a minute and frees its mailboxes, rather
	// than after the system's default of two hours.
	if _, err := conn.Exec(ctx, `SET tcp_keepalives_idle = 30; SET tcp_keepalives_interval = 10; SET tcp_keepalives_count = 3`); err != nil {
		conn.Close(ctx) //nolint:errcheck // failing anyway
		return nil, fmt.Errorf("connect for mailbox locks: %w", err)
	}
	return &MailboxLocks{conn: conn}, nil
}

// TryLock takes the lock of a mailbox if no other instance holds it.
func (l *MailboxLocks) TryLock(ctx context.Context, mailboxID int64) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ok bool
	err := l.conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1::int, $2::int)`, mailboxLockClass, mailboxID).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("lock mailbox %d: %w", mailboxID, err)
	}
	return ok, nil
}

// Unlock releases the lock of a mailbox.
func (l *MailboxLocks) Unlock(ctx context.Context, mailboxID int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.conn.Exec(ctx, `SELECT pg_advisory_unlock($1::int, $2::int)`, mailboxLockClass, mailboxID); err != nil {
		return fmt.Errorf("unlock mailbox %d: %w", mailboxID, err)
	}
	return nil
}

// Ping checks that the connection, and so the locks, are still there.
func (l *MailboxLocks) Ping(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.conn.Ping(ctx); err != nil {
		return fmt.Errorf("mailbox locks: %w", err)
	}
	return nil
}

// Close drops the connection and with it every lock.
func (l *MailboxLocks) Close(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conn.Close(ctx)
}
