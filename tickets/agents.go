package tickets

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/argon2"
)

// Role is what a staff account may do.
type Role string

const (
	// RoleAgent works the tickets of their departments.
	RoleAgent Role = "agent"
	// RoleAdmin sees every department and manages the desk.
	RoleAdmin Role = "admin"
)

// ErrLocked is a staff login refused because of repeated failures.
var ErrLocked = errors.New("locked after repeated failed logins")

// Agent is a staff account.
type Agent struct {
	ID          int64
	Email       string
	Name        string
	Role        Role
	NotifyNew   bool
	Disabled    bool
	LastLoginAt *time.Time
	CreatedAt   time.Time
	// Departments the agent works (every one, for an admin, is implied).
	Departments []Department
}

// IsAdmin reports whether the agent manages the desk.
func (a Agent) IsAdmin() bool { return a.Role == RoleAdmin }

// Sees reports whether the agent may work tickets of the department.
func (a Agent) Sees(departmentID int64) bool {
	if a.IsAdmin() {
		return true
	}
	for _, d := range a.Departments {
		if d.ID == departmentID {
			return true
		}
	}
	return false
}

// Actor is how the agent appears in histories and the audit log.
func (a Agent) Actor() string { return fmt.Sprintf("agent:%d %s", a.ID, a.Email) }

// MinPasswordLength is the shortest staff password accepted.
const MinPasswordLength = 10

// Login limits: this many failures in a row lock the account for
// lockDuration.
const (
	maxFailedLogins = 5
	lockDuration    = 15 * time.Minute
)

// argon2id parameters (RFC 9106's second recommendation, lighter on
// memory): about 50 ms on a server core.
const (
	argonTime    = 3
	argonMemory  = 64 * 1024
	argonThreads = 2
	argonKeyLen  = 32
)

// HashPassword returns the argon2id hash of a password in the PHC string
// format. Passwords shorter than MinPasswordLength are ErrInvalid.
func HashPassword(password string) (string, error) {
	if utf8.RuneCountInString(password) < MinPasswordLength {
		return "", fmt.Errorf("password shorter than %d characters: %w", MinPasswordLength, ErrInvalid)
	}
	salt := make([]byte, 16)
	rand.Read(salt) //nolint:errcheck // never fails since Go 1.24
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// checkPassword reports whether password matches a PHC argon2id hash.
func checkPassword(hash, password string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var version int
	var memory, iterations uint32
	var threads uint8
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &memory, &iterations, &threads); err != nil {
		return false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	key, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(key) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, iterations, memory, threads, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1
}

// dummyHash is checked against when no account has the address, so that a
// login takes as long whether or not the account exists.
var dummyHash = sync.OnceValue(func() string {
	h, _ := HashPassword("no account has this password")
	return h
})

// NewAgent is an account to create.
type NewAgent struct {
	Email    string
	Name     string
	Role     Role
	Password string
	// DepartmentSlugs the agent works.
	DepartmentSlugs []string
}

const agentColumns = `a.id, a.email, a.name, a.role, a.notify_new, a.disabled_at IS NOT NULL, a.last_login_at, a.created_at`

func agentDest(a *Agent) []any {
	return []any{&a.ID, &a.Email, &a.Name, &a.Role, &a.NotifyNew, &a.Disabled, &a.LastLoginAt, &a.CreatedAt}
}

// AddAgent creates a staff account. actor is who does it, for the audit log.
func (s *Store) AddAgent(ctx context.Context, actor string, n NewAgent) (Agent, error) {
	email, err := ParseEmail(n.Email)
	if err != nil {
		return Agent{}, fmt.Errorf("add agent: %w", err)
	}
	email = strings.ToLower(email)
	name := oneLine(n.Name, 200)
	if name == "" {
		return Agent{}, fmt.Errorf("add agent %s: name is empty: %w", email, ErrInvalid)
	}
	if n.Role == "" {
		n.Role = RoleAgent
	}
	if n.Role != RoleAgent && n.Role != RoleAdmin {
		return Agent{}, fmt.Errorf("add agent %s: role %q: want agent or admin: %w", email, n.Role, ErrInvalid)
	}
	hash, err := HashPassword(n.Password)
	if err != nil {
		return Agent{}, fmt.Errorf("add agent %s: %w", email, err)
	}
	var id int64
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO agents (email, name, role, password_hash) VALUES ($1, $2, $3, $4) RETURNING id`,
			email, name, string(n.Role), hash).Scan(&id)
		if isUniqueViolation(err, "") {
			return fmt.Errorf("an account with the address %s exists: %w", email, ErrConflict)
		}
		if err != nil {
			return err
		}
		if err := setAgentDepartments(ctx, tx, id, n.DepartmentSlugs); err != nil {
			return err
		}
		return audit(ctx, tx, actor, "agent.add", email, fmt.Sprintf("name=%q role=%s departments=%s", name, n.Role, strings.Join(n.DepartmentSlugs, ",")))
	})
	if err != nil {
		return Agent{}, fmt.Errorf("add agent %s: %w", email, err)
	}
	return s.Agent(ctx, id)
}

// setAgentDepartments makes slugs the agent's departments.
func setAgentDepartments(ctx context.Context, tx pgx.Tx, agentID int64, slugs []string) error {
	if _, err := tx.Exec(ctx, `DELETE FROM agent_departments WHERE agent_id = $1`, agentID); err != nil {
		return fmt.Errorf("set departments: %w", err)
	}
	if len(slugs) == 0 {
		return nil
	}
	var unknown []string
	err := tx.QueryRow(ctx, `
		WITH s AS (SELECT DISTINCT unnest($2::text[]) AS slug), i AS (
			INSERT INTO agent_departments (agent_id, department_id)
			SELECT $1, d.id FROM s JOIN departments d ON d.slug = s.slug
		)
		SELECT coalesce(array_agg(s.slug), '{}') FROM s WHERE NOT EXISTS (SELECT 1 FROM departments d WHERE d.slug = s.slug)`,
		agentID, slugs).Scan(&unknown)
	if err != nil {
		return fmt.Errorf("set departments: %w", err)
	}
	if len(unknown) > 0 {
		return fmt.Errorf("no department %s: %w", strings.Join(unknown, ", "), ErrInvalid)
	}
	return nil
}

// Agent returns a staff account with its departments.
func (s *Store) Agent(ctx context.Context, id int64) (Agent, error) {
	list, err := s.agents(ctx, `a.id = $1`, id)
	if err != nil {
		return Agent{}, err
	}
	if len(list) == 0 {
		return Agent{}, fmt.Errorf("agent %d: %w", id, ErrNotFound)
	}
	return list[0], nil
}

// Agents lists the staff accounts by name.
func (s *Store) Agents(ctx context.Context) ([]Agent, error) {
	return s.agents(ctx, `true`)
}

// AgentsOf lists the agents who work a department (admins included), by
// name; disabled ones are left out.
func (s *Store) AgentsOf(ctx context.Context, departmentID int64) ([]Agent, error) {
	return s.agents(ctx, `a.disabled_at IS NULL AND (a.role = 'admin' OR EXISTS (
		SELECT 1 FROM agent_departments ad WHERE ad.agent_id = a.id AND ad.department_id = $1))`, departmentID)
}

func (s *Store) agents(ctx context.Context, where string, args ...any) ([]Agent, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+agentColumns+` FROM agents a WHERE `+where+` ORDER BY a.name, a.id`, args...)
	if err != nil {
		return nil, fmt.Errorf("read agents: %w", err)
	}
	var list []Agent
	var a Agent
	byID := map[int64]int{}
	_, err = pgx.ForEachRow(rows, agentDest(&a), func() error {
		byID[a.ID] = len(list)
		list = append(list, a)
		return nil
	})
	if err != nil || len(list) == 0 {
		return list, wrapErr(err, "read agents")
	}
	ids := make([]int64, len(list))
	for i, a := range list {
		ids[i] = a.ID
	}
	rows, err = s.pool.Query(ctx, `SELECT ad.agent_id, `+departmentColumns+`
		FROM agent_departments ad JOIN departments d ON d.id = ad.department_id
		WHERE ad.agent_id = ANY($1) ORDER BY d.name`, ids)
	if err != nil {
		return nil, fmt.Errorf("read agents' departments: %w", err)
	}
	var agentID int64
	var d Department
	_, err = pgx.ForEachRow(rows, append([]any{&agentID}, departmentDest(&d)...), func() error {
		ag := &list[byID[agentID]]
		ag.Departments = append(ag.Departments, d)
		return nil
	})
	return list, wrapErr(err, "read agents' departments")
}

// AgentChange is a change to a staff account; nil fields stay as they are.
type AgentChange struct {
	Name            *string
	Role            *Role
	DepartmentSlugs *[]string
	Disabled        *bool
	NotifyNew       *bool
	Password        *string
}

// UpdateAgent changes a staff account. Disabling it ends its sessions, as
// does a new password.
func (s *Store) UpdateAgent(ctx context.Context, actor string, id int64, c AgentChange) error {
	var changes []string
	hash := ""
	if c.Password != nil {
		h, err := HashPassword(*c.Password)
		if err != nil {
			return fmt.Errorf("update agent %d: %w", id, err)
		}
		hash = h
		changes = append(changes, "password")
	}
	if c.Role != nil && *c.Role != RoleAgent && *c.Role != RoleAdmin {
		return fmt.Errorf("update agent %d: role %q: %w", id, *c.Role, ErrInvalid)
	}
	name := ""
	if c.Name != nil {
		if name = oneLine(*c.Name, 200); name == "" {
			return fmt.Errorf("update agent %d: name is empty: %w", id, ErrInvalid)
		}
		changes = append(changes, fmt.Sprintf("name=%q", name))
	}
	if c.Role != nil {
		changes = append(changes, "role="+string(*c.Role))
	}
	if c.Disabled != nil {
		changes = append(changes, fmt.Sprintf("disabled=%v", *c.Disabled))
	}
	if c.NotifyNew != nil {
		changes = append(changes, fmt.Sprintf("notify_new=%v", *c.NotifyNew))
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var email string
		err := tx.QueryRow(ctx, `
			UPDATE agents SET
			       name = CASE WHEN $2 = '' THEN name ELSE $2 END,
			       role = coalesce($3, role),
			       disabled_at = CASE WHEN $4::boolean IS NULL THEN disabled_at WHEN $4 THEN coalesce(disabled_at, now()) END,
			       notify_new = coalesce($5, notify_new),
			       password_hash = CASE WHEN $6 = '' THEN password_hash ELSE $6 END,
			       failed_logins = CASE WHEN $6 = '' THEN failed_logins ELSE 0 END,
			       locked_until = CASE WHEN $6 = '' THEN locked_until END
			WHERE id = $1 RETURNING email`,
			id, name, (*string)(c.Role), c.Disabled, c.NotifyNew, hash).Scan(&email)
		if err != nil {
			return notFound(err, "update agent")
		}
		if c.DepartmentSlugs != nil {
			if err := setAgentDepartments(ctx, tx, id, *c.DepartmentSlugs); err != nil {
				return err
			}
			changes = append(changes, "departments="+strings.Join(*c.DepartmentSlugs, ","))
		}
		if (c.Disabled != nil && *c.Disabled) || hash != "" {
			if _, err := tx.Exec(ctx, `DELETE FROM staff_sessions WHERE agent_id = $1`, id); err != nil {
				return fmt.Errorf("end sessions: %w", err)
			}
		}
		return audit(ctx, tx, actor, "agent.update", email, strings.Join(changes, " "))
	})
	if err != nil {
		return fmt.Errorf("update agent %d: %w", id, err)
	}
	return nil
}

// Login checks a staff member's address and password and opens a session
// valid for ttl from its last use. A wrong address and a wrong password are
// the same ErrNotFound; an account locked by repeated failures (even with
// the right password now) is ErrLocked, as is a disabled one.
func (s *Store) Login(ctx context.Context, email, password string, ttl time.Duration) (string, Agent, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	var id int64
	var hash string
	var disabled bool
	var lockedUntil *time.Time
	err := s.pool.QueryRow(ctx, `SELECT id, password_hash, disabled_at IS NOT NULL, locked_until FROM agents WHERE email = $1`, email).
		Scan(&id, &hash, &disabled, &lockedUntil)
	if errors.Is(err, pgx.ErrNoRows) {
		checkPassword(dummyHash(), password)
		return "", Agent{}, fmt.Errorf("log in: %w", ErrNotFound)
	}
	if err != nil {
		return "", Agent{}, fmt.Errorf("log in: %w", err)
	}
	ok := checkPassword(hash, password)
	if disabled || (lockedUntil != nil && lockedUntil.After(time.Now())) {
		return "", Agent{}, fmt.Errorf("log in %s: %w", email, ErrLocked)
	}
	if !ok {
		_, err := s.pool.Exec(ctx, `
			UPDATE agents SET failed_logins = failed_logins + 1,
			       locked_until = CASE WHEN failed_logins + 1 >= $2 THEN now() + $3 * interval '1 second' END
			WHERE id = $1`, id, maxFailedLogins, int64(lockDuration/time.Second))
		if err != nil {
			return "", Agent{}, fmt.Errorf("log in: record failure: %w", err)
		}
		return "", Agent{}, fmt.Errorf("log in: %w", ErrNotFound)
	}
	sessionID, sessionHash := newToken()
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE agents SET failed_logins = 0, locked_until = NULL, last_login_at = now() WHERE id = $1`, id); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM staff_sessions WHERE expires_at < now()`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO staff_sessions (hash, agent_id, expires_at) VALUES ($1, $2, now() + $3 * interval '1 second')`,
			sessionHash, id, int64(ttl/time.Second))
		return err
	})
	if err != nil {
		return "", Agent{}, fmt.Errorf("log in: open session: %w", err)
	}
	a, err := s.Agent(ctx, id)
	return sessionID, a, err
}

// StaffSession returns the agent whose session this is, and keeps the
// session valid for idle from now. An unknown or expired session, or a
// disabled agent's, is ErrNotFound.
func (s *Store) StaffSession(ctx context.Context, sessionID string, idle time.Duration) (Agent, error) {
	if len(sessionID) != base64.RawURLEncoding.EncodedLen(tokenBytes) {
		return Agent{}, fmt.Errorf("staff session: %w", ErrNotFound)
	}
	var id int64
	err := s.pool.QueryRow(ctx, `
		WITH touch AS (
			UPDATE staff_sessions SET last_seen = now(), expires_at = now() + $2 * interval '1 second'
			WHERE hash = $1 AND expires_at > now() AND last_seen < now() - interval '1 minute'
		)
		SELECT a.id FROM staff_sessions ss JOIN agents a ON a.id = ss.agent_id
		WHERE ss.hash = $1 AND ss.expires_at > now() AND a.disabled_at IS NULL`,
		hashToken(sessionID), int64(idle/time.Second)).Scan(&id)
	if err != nil {
		return Agent{}, notFound(err, "staff session")
	}
	return s.Agent(ctx, id)
}

// Logout ends a staff session.
func (s *Store) Logout(ctx context.Context, sessionID string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM staff_sessions WHERE hash = $1`, hashToken(sessionID)); err != nil {
		return fmt.Errorf("log out: %w", err)
	}
	return nil
}

// audit records what an admin (or the command line) changed.
func audit(ctx context.Context, db execer, actor, action, target, detail string) error {
	_, err := db.Exec(ctx, `INSERT INTO audit_log (actor, action, target, detail) VALUES ($1, $2, $3, $4)`,
		oneLine(actor, 300), action, oneLine(target, 300), oneLine(detail, 2000))
	if err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	return nil
}

// Audit records a change made outside the store's own audited methods (a
// mailbox enabled from the staff page, …).
func (s *Store) Audit(ctx context.Context, actor, action, target, detail string) error {
	return audit(ctx, s.pool, actor, action, target, detail)
}

// AuditEntry is one line of the audit log.
type AuditEntry struct {
	ID     int64
	At     time.Time
	Actor  string
	Action string
	Target string
	Detail string
}

// AuditLog returns the latest entries of the audit log, newest first.
func (s *Store) AuditLog(ctx context.Context, limit int) ([]AuditEntry, error) {
	if limit <= 0 {
		limit = 100
	}
	return queryStructs[AuditEntry](ctx, s.pool, "read audit log",
		`SELECT id, at, actor, action, target, detail FROM audit_log ORDER BY id DESC LIMIT $1`, limit)
}
