// Package tickets is the helpdesk's domain: departments, tickets, their
// messages and attachments, tracking IDs, tokens and the outbox of mail to
// send, with the PostgreSQL store that keeps them. Anything that changes a
// ticket goes through it, from mail, web or scheduled work alike.
package tickets

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Errors callers translate at their edge (SMTP replies, HTTP statuses).
var (
	ErrNotFound = errors.New("not found")
	ErrInvalid  = errors.New("invalid")
	ErrConflict = errors.New("already exists")
	ErrExpired  = errors.New("expired")
)

// Status is where a ticket stands; the set is Hesk's.
type Status string

const (
	StatusNew          Status = "new"
	StatusWaitingReply Status = "waiting_reply" // the customer wrote last
	StatusReplied      Status = "replied"       // an agent wrote last
	StatusInProgress   Status = "in_progress"
	StatusOnHold       Status = "on_hold"
	StatusResolved     Status = "resolved"
)

// Priority is how urgent a ticket is. Customers choose Low, Medium or High;
// staff may also set Critical.
type Priority string

const (
	PriorityLow      Priority = "low"
	PriorityMedium   Priority = "medium"
	PriorityHigh     Priority = "high"
	PriorityCritical Priority = "critical"
)

// Locales the product speaks.
const (
	LocaleSpanish = "es"
	LocaleEnglish = "en"
)

// ValidLocale reports whether l is a locale the product speaks.
func ValidLocale(l string) bool { return l == LocaleSpanish || l == LocaleEnglish }

// Department is a queue customers write to at one address.
type Department struct {
	ID        int64
	Slug      string
	Name      string
	Address   string
	Locale    string
	CreatedAt time.Time
	// AutoResolveDays, when not 0, resolves tickets left in Replied that
	// many days.
	AutoResolveDays int
}

// Ticket is one customer request.
type Ticket struct {
	ID            int64
	TrackingID    string
	Department    Department
	Subject       string
	CustomerName  string
	CustomerEmail string
	Status        Status
	Priority      Priority
	Locale        string
	Source        string
	CreatedAt     time.Time
	UpdatedAt     time.Time
	// AssigneeID is the agent the ticket is assigned to, 0 for none.
	AssigneeID int64
}

// Message is one entry of a ticket's thread.
type Message struct {
	ID          int64
	AuthorKind  string
	AuthorName  string
	AuthorEmail string
	Text        string
	HTML        string
	Internal    bool
	CreatedAt   time.Time
	Attachments []Attachment
	// InboundID is the mail the message came in, 0 for one written on the
	// web.
	InboundID int64
}

// Attachment describes a stored file of a message.
type Attachment struct {
	ID          int64
	MessageID   int64
	Filename    string
	ContentType string
	ContentID   string
	Inline      bool
	Size        int64
	SHA256      []byte
}

// Store keeps the domain in PostgreSQL.
type Store struct {
	pool         *pgxpool.Pool
	log          *slog.Logger
	tokenTTL     time.Duration
	limits       Limits
	outboxQueued func()
	queue        ingestQueue
}

// Options configures a Store.
type Options struct {
	Pool   *pgxpool.Pool
	Logger *slog.Logger
	// TokenTTL is how long a link mailed to a customer stays valid.
	// Default: 90 days.
	TokenTTL time.Duration
	// OutboxQueued, when set, is called after a transaction that queued mail
	// has committed, so a sender in the same process can start at once.
	OutboxQueued func()
	// Limits bound what one sender can make the helpdesk do; zero fields
	// take their defaults.
	Limits Limits
}

// Limits bound, per hour, what mail from one address (or about one ticket)
// can make the helpdesk do. Past them, mail is kept in quarantine or left
// unanswered, with the reason recorded: a forged flood costs storage, never
// a flood of our mail to a victim.
type Limits struct {
	// TicketsPerSender is how many new tickets one address opens by mail.
	TicketsPerSender int
	// AcksPerAddress is how many acknowledgements (mail and web tickets)
	// one address receives.
	AcksPerAddress int
	// RepliesPerTicket is how many replies to one ticket's mail are held
	// (each mails the owner a notice).
	RepliesPerTicket int
	// RepliesPerSender is how many replies one address has held.
	RepliesPerSender int
	// DraftTTL is how long a held reply waits for its owner.
	DraftTTL time.Duration
}

// DefaultLimits returns the limits that apply unless configured.
func DefaultLimits() Limits {
	return Limits{TicketsPerSender: 20, AcksPerAddress: 5, RepliesPerTicket: 5, RepliesPerSender: 10, DraftTTL: 7 * 24 * time.Hour}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	for _, f := range []struct{ v, def *int }{
		{&l.TicketsPerSender, &d.TicketsPerSender}, {&l.AcksPerAddress, &d.AcksPerAddress},
		{&l.RepliesPerTicket, &d.RepliesPerTicket}, {&l.RepliesPerSender, &d.RepliesPerSender},
	} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	if l.DraftTTL <= 0 {
		l.DraftTTL = d.DraftTTL
	}
	return l
}

// DefaultTokenTTL is how long a customer's link works unless configured.
const DefaultTokenTTL = 90 * 24 * time.Hour

// New returns a Store using opts.Pool.
func New(opts Options) *Store {
	s := &Store{pool: opts.Pool, log: opts.Logger, tokenTTL: opts.TokenTTL, outboxQueued: opts.OutboxQueued, limits: opts.Limits.withDefaults()}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.tokenTTL <= 0 {
		s.tokenTTL = DefaultTokenTTL
	}
	if s.outboxQueued == nil {
		s.outboxQueued = func() {}
	}
	return s
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}

// inTx runs fn in a transaction and commits it when fn returns nil.
func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// isUniqueViolation reports whether err is PostgreSQL's unique_violation on
// the named constraint (any constraint when name is empty).
func isUniqueViolation(err error, name string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && (name == "" || pgErr.ConstraintName == name)
}
