package tickets

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// AuthKind is how the gateway logs in to a mailbox.
type AuthKind string

const (
	AuthPassword AuthKind = "password"
	AuthOAuth2   AuthKind = "oauth2"
)

// OAuthProvider is who issues a mailbox's OAuth2 tokens.
type OAuthProvider string

const (
	// ProviderMicrosoft is Microsoft 365 (Entra ID), for a tenant.
	ProviderMicrosoft OAuthProvider = "microsoft"
	// ProviderGoogle is Gmail and Google Workspace.
	ProviderGoogle OAuthProvider = "google"
	// ProviderGeneric is any provider, given its token (and device
	// authorization) URLs.
	ProviderGeneric OAuthProvider = "generic"
)

// OAuthSettings say who issues an OAuth2 mailbox's tokens and for what.
type OAuthSettings struct {
	Provider OAuthProvider
	// Tenant is Microsoft's directory (its ID or domain); "" is
	// "organizations".
	Tenant   string
	ClientID string
	// ClientSecretRef says where the client secret is ("env:VAR" or
	// "file:/path"); "" for a public client.
	ClientSecretRef string
	// ClientCredentials: tokens come from the client credentials grant
	// (app-only access), not from a person authorizing the mailbox.
	ClientCredentials bool
	// TokenURL, DeviceURL (device authorization) and AuthURL (sign-in in
	// a browser) are a generic provider's endpoints.
	TokenURL  string
	DeviceURL string
	AuthURL   string
	// Scopes, when empty, are the provider's defaults for IMAP and SMTP.
	Scopes []string
}

// OAuthStatus is where an OAuth2 mailbox's authorization stands. The tokens
// themselves are read only by MailboxTokens.
type OAuthStatus struct {
	// Authorized: the mailbox has tokens.
	Authorized bool
	// ExpiresAt is when the current access token expires.
	ExpiresAt time.Time
	// RefreshedAt is when tokens were last obtained.
	RefreshedAt time.Time
	// Error is why the last refresh failed; "" since one succeeded.
	Error   string
	ErrorAt time.Time
	// AlertedAt is when the admins were mailed about the failure; zero
	// unless they were, since tokens were last obtained.
	AlertedAt time.Time
}

// checkAuth checks that the mailbox says how it logs in, one way only.
func (m Mailbox) checkAuth() error {
	switch m.Auth {
	case AuthPassword:
		if !isSecretRef(m.PasswordRef) {
			return fmt.Errorf("password reference %q: want env:VAR or file:PATH: %w", m.PasswordRef, ErrInvalid)
		}
		if m.OAuth.Provider != "" {
			return fmt.Errorf("a password mailbox has no OAuth2 provider: %w", ErrInvalid)
		}
		return nil
	case AuthOAuth2:
	default:
		return fmt.Errorf("authentication %q: want password or oauth2: %w", m.Auth, ErrInvalid)
	}
	o := m.OAuth
	switch {
	case m.PasswordRef != "":
		return fmt.Errorf("an OAuth2 mailbox has no password: %w", ErrInvalid)
	case o.Provider != ProviderMicrosoft && o.Provider != ProviderGoogle && o.Provider != ProviderGeneric:
		return fmt.Errorf("OAuth2 provider %q: want microsoft, google or generic: %w", o.Provider, ErrInvalid)
	case o.ClientID == "":
		return fmt.Errorf("OAuth2 needs the client ID the provider registered for the gateway: %w", ErrInvalid)
	case o.ClientSecretRef != "" && !isSecretRef(o.ClientSecretRef):
		return fmt.Errorf("client secret reference %q: want env:VAR or file:PATH: %w", o.ClientSecretRef, ErrInvalid)
	case o.ClientCredentials && o.ClientSecretRef == "":
		return fmt.Errorf("the client credentials grant needs a client secret: %w", ErrInvalid)
	case o.ClientCredentials && o.Provider == ProviderGoogle:
		return fmt.Errorf("no client credentials grant for Gmail: Google uses service accounts for app-only access: %w", ErrInvalid)
	case o.Tenant != "" && o.Provider != ProviderMicrosoft:
		return fmt.Errorf("a tenant is Microsoft's: %w", ErrInvalid)
	case o.Provider == ProviderGeneric && !isHTTPURL(o.TokenURL):
		return fmt.Errorf("a generic provider needs its token URL (http:// or https://): %w", ErrInvalid)
	case o.Provider == ProviderGeneric && o.DeviceURL != "" && !isHTTPURL(o.DeviceURL):
		return fmt.Errorf("device authorization URL %q: want http:// or https://: %w", o.DeviceURL, ErrInvalid)
	case o.Provider == ProviderGeneric && o.AuthURL != "" && !isHTTPURL(o.AuthURL):
		return fmt.Errorf("authorization URL %q: want http:// or https://: %w", o.AuthURL, ErrInvalid)
	case o.Provider == ProviderGeneric && !o.ClientCredentials && o.DeviceURL == "" && o.AuthURL == "":
		return fmt.Errorf("a generic provider needs a device authorization URL or an authorization URL, unless it uses client credentials: %w", ErrInvalid)
	case o.Provider != ProviderGeneric && (o.TokenURL != "" || o.DeviceURL != "" || o.AuthURL != ""):
		return fmt.Errorf("the %s preset has its own URLs; use the generic provider to give others: %w", o.Provider, ErrInvalid)
	}
	return nil
}

func isSecretRef(ref string) bool {
	kind, where, _ := strings.Cut(ref, ":")
	return (kind == "env" || kind == "file") && where != ""
}

func isHTTPURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
}

const oauthColumns = `m.auth_kind, m.oauth_provider, m.oauth_tenant, m.oauth_client_id, m.oauth_client_secret_ref,
	m.oauth_client_credentials, m.oauth_token_url, m.oauth_device_url, m.oauth_auth_url, m.oauth_scopes,
	m.oauth_refresh_token IS NOT NULL OR m.oauth_access_token IS NOT NULL, m.oauth_expires_at, m.oauth_refreshed_at,
	m.oauth_error, m.oauth_error_at, m.oauth_alerted_at`

// oauthDest holds the nullable columns of oauthColumns while they are
// scanned.
type oauthDest struct {
	expiresAt, refreshedAt, errorAt, alertedAt *time.Time
}

func (d *oauthDest) dest(m *Mailbox) []any {
	o, st := &m.OAuth, &m.OAuthStatus
	return []any{&m.Auth, &o.Provider, &o.Tenant, &o.ClientID, &o.ClientSecretRef, &o.ClientCredentials,
		&o.TokenURL, &o.DeviceURL, &o.AuthURL, &o.Scopes, &st.Authorized, &d.expiresAt, &d.refreshedAt, &st.Error,
		&d.errorAt, &d.alertedAt}
}

func (d *oauthDest) finish(m *Mailbox) {
	st := &m.OAuthStatus
	for _, f := range []struct {
		from *time.Time
		to   *time.Time
	}{{d.expiresAt, &st.ExpiresAt}, {d.refreshedAt, &st.RefreshedAt}, {d.errorAt, &st.ErrorAt}, {d.alertedAt, &st.AlertedAt}} {
		if f.from != nil {
			*f.to = *f.from
		}
	}
}

// SealedTokens are a mailbox's OAuth2 tokens as stored: sealed by the
// caller, who holds the key; the store never sees them in the clear.
type SealedTokens struct {
	// Refresh is nil when there is none (client credentials).
	Refresh []byte
	Access  []byte
	Expiry  time.Time
	// Obtained is when they were issued (read only: the store records
	// the time it stores them).
	Obtained time.Time
}

// ErrNotAuthorized is an OAuth2 mailbox that has no tokens yet.
var ErrNotAuthorized = errors.New("not authorized yet")

// AuthorizeMailbox stores the tokens a person (or the client credentials
// grant) just obtained for the mailbox, forgets any earlier failure, and
// restarts its poller so that it logs in with them.
func (s *Store) AuthorizeMailbox(ctx context.Context, id int64, t SealedTokens) error {
	tag, err := s.pool.Exec(ctx, storeTokens, id, t.Refresh, t.Access, t.Expiry, 1)
	if err != nil {
		return fmt.Errorf("store tokens of mailbox %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("OAuth2 mailbox %d: %w", id, ErrNotFound)
	}
	return nil
}

// storeTokens stores new tokens ($2-$4) of mailbox $1 and forgets any
// failure; $5 is 1 to restart its poller (a new version of its settings).
const storeTokens = `
	UPDATE mailboxes SET oauth_refresh_token = $2, oauth_access_token = $3, oauth_expires_at = $4,
	       oauth_refreshed_at = now(), oauth_error = '', oauth_error_at = NULL, oauth_alerted_at = NULL,
	       version = version + $5::int
	WHERE id = $1 AND auth_kind = 'oauth2'`

// mailboxTokenLockClass is the first key of the transaction locks that let
// one process at a time refresh a mailbox's tokens ("mtok").
const mailboxTokenLockClass = 0x6d746f6b

// RefreshMailboxTokens lets one process at a time renew a mailbox's tokens:
// refresh gets the stored tokens, under a lock, and returns either them (a
// process that waited finds them renewed already) or new ones, which are
// stored, the rotated refresh token with the new access token, in one
// statement. A refresh token used twice would be refused by a provider that
// rotates them, and a rotated one lost would end the authorization. An error
// of refresh is returned as it is, and nothing is stored.
func (s *Store) RefreshMailboxTokens(ctx context.Context, id int64, refresh func(SealedTokens) (SealedTokens, error)) (SealedTokens, error) {
	var out SealedTokens
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1::int, $2::int)`, mailboxTokenLockClass, id); err != nil {
			return fmt.Errorf("lock tokens of mailbox %d: %w", id, err)
		}
		var cur SealedTokens
		var expiry, obtained *time.Time
		err := tx.QueryRow(ctx, `
			SELECT oauth_refresh_token, oauth_access_token, oauth_expires_at, oauth_refreshed_at FROM mailboxes
			WHERE id = $1 AND auth_kind = 'oauth2'`, id).Scan(&cur.Refresh, &cur.Access, &expiry, &obtained)
		if err != nil {
			return notFound(err, fmt.Sprintf("OAuth2 mailbox %d", id))
		}
		if expiry != nil {
			cur.Expiry = *expiry
		}
		if obtained != nil {
			cur.Obtained = *obtained
		}
		next, err := refresh(cur)
		if err != nil {
			return err
		}
		out = next
		if next.Expiry.Equal(cur.Expiry) && string(next.Access) == string(cur.Access) && string(next.Refresh) == string(cur.Refresh) {
			return nil
		}
		if _, err = tx.Exec(ctx, storeTokens, id, next.Refresh, next.Access, next.Expiry, 0); err != nil {
			return fmt.Errorf("store refreshed tokens of mailbox %d: %w", id, err)
		}
		return nil
	})
	return out, err
}

// RecordMailboxAuthFailure records that a mailbox's tokens could not be
// renewed: the mailbox is in error with reason as its last error (in
// `mailbox list`, the staff page and /metrics). With alert, the admins are
// mailed about it, once: not again until tokens are obtained anew. It
// returns how many admins this call mailed.
func (s *Store) RecordMailboxAuthFailure(ctx context.Context, id int64, reason string, alert bool) (int, error) {
	reason = oneLine(reason, 1000)
	mailed := 0
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var alerted bool
		var from string
		err := tx.QueryRow(ctx, `
			SELECT m.oauth_alerted_at IS NOT NULL, d.address FROM mailboxes m JOIN departments d ON d.id = m.department_id
			WHERE m.id = $1 FOR UPDATE OF m`, id).Scan(&alerted, &from)
		if err != nil {
			return notFound(err, fmt.Sprintf("mailbox %d", id))
		}
		alert = alert && !alerted
		_, err = tx.Exec(ctx, `
			UPDATE mailboxes SET oauth_error = $2, oauth_error_at = now(),
			       oauth_alerted_at = CASE WHEN $3 THEN now() ELSE oauth_alerted_at END,
			       state = CASE WHEN enabled THEN 'error' ELSE state END,
			       state_at = CASE WHEN enabled THEN now() ELSE state_at END,
			       last_error = $2, last_error_at = now()
			WHERE id = $1`, id, reason, alert)
		if err != nil {
			return fmt.Errorf("record the failure of mailbox %d: %w", id, err)
		}
		if !alert {
			return nil
		}
		var admins []int64
		var addresses []string
		rows, err := tx.Query(ctx, `SELECT id, email FROM agents WHERE role = 'admin' AND disabled_at IS NULL ORDER BY id`)
		if err != nil {
			return fmt.Errorf("admins to alert: %w", err)
		}
		var agentID int64
		var email string
		if _, err := pgx.ForEachRow(rows, []any{&agentID, &email}, func() error {
			admins, addresses = append(admins, agentID), append(addresses, email)
			return nil
		}); err != nil {
			return fmt.Errorf("admins to alert: %w", err)
		}
		ids := make([]string, len(admins))
		for i := range ids {
			ids[i] = newMessageID(from)
		}
		_, err = tx.Exec(ctx, `
			INSERT INTO outbox (kind, mailbox_id, agent_id, recipient, message_id, detail)
			SELECT 'admin_alert', $1, a.id, a.email, a.message_id, $5
			FROM unnest($2::bigint[], $3::text[], $4::text[]) AS a(id, email, message_id)`,
			id, admins, addresses, ids, reason)
		if err != nil {
			return fmt.Errorf("queue the alert about mailbox %d: %w", id, err)
		}
		mailed = len(admins)
		return nil
	})
	if err != nil {
		return 0, err
	}
	if mailed > 0 {
		s.outboxQueued()
	}
	return mailed, nil
}

// MailboxAlert is what an admin alert tells: which mailbox failed, how.
type MailboxAlert struct {
	MailboxID  int64
	Department Department
	URL        string
	// Reason is the failure, as it was recorded when the alert was queued.
	Reason string
}

// claimAlerts reads the mailboxes the alerts among mails are about. The
// alerts have no ticket: their Ticket carries only the mailbox's
// department, which sends them, and their language is the department's.
func claimAlerts(ctx context.Context, tx pgx.Tx, limit int) ([]OutboxMail, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := tx.Query(ctx, `
		SELECT o.id, o.kind, o.recipient, o.message_id, o.attempts, o.created_at, o.locale, coalesce(ag.name, ''),
		       o.detail, mb.id, mb.url, `+departmentColumns+`
		FROM outbox o JOIN mailboxes mb ON mb.id = o.mailbox_id JOIN departments d ON d.id = mb.department_id
		LEFT JOIN agents ag ON ag.id = o.agent_id
		WHERE o.kind = 'admin_alert' AND o.state = 'pending' AND o.next_attempt <= now()
		ORDER BY o.next_attempt, o.id
		LIMIT $1
		FOR UPDATE OF o SKIP LOCKED`, limit)
	if err != nil {
		return nil, fmt.Errorf("claim admin alerts: %w", err)
	}
	mails, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (OutboxMail, error) {
		var m OutboxMail
		a := &MailboxAlert{}
		err := r.Scan(append([]any{&m.ID, &m.Kind, &m.Recipient, &m.MessageID, &m.Attempts, &m.CreatedAt, &m.Locale,
			&m.AgentName, &a.Reason, &a.MailboxID, &a.URL}, departmentDest(&a.Department)...)...)
		m.Alert, m.Ticket.Department = a, a.Department
		if m.Locale == "" {
			m.Locale = a.Department.Locale
		}
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("claim admin alerts: %w", err)
	}
	return mails, nil
}
