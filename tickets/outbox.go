package tickets

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// MailKind says which mail an outbox row is.
type MailKind string

const (
	// KindAck acknowledges a new ticket to its customer.
	KindAck MailKind = "ack"
	// KindReminder lists a customer's open tickets, each with a link, for
	// one who lost the tracking IDs.
	KindReminder MailKind = "reminder"
	// KindDraftNotice tells a ticket's owner that a reply to our mail waits
	// for them to review and post it.
	KindDraftNotice MailKind = "draft_notice"
	// KindAnswer mails an agent's answer to the customer.
	KindAnswer MailKind = "answer"
	// KindAutoResolved tells the customer a ticket left in Replied was
	// resolved, and how to reopen it.
	KindAutoResolved MailKind = "auto_resolved"
	// KindAgentNewTicket tells an agent a ticket arrived in their
	// department; KindAgentCustomerReply tells the assignee the customer
	// wrote. They carry a staff link, never the customer's.
	KindAgentNewTicket     MailKind = "agent_new_ticket"
	KindAgentCustomerReply MailKind = "agent_customer_reply"
	// KindAdminAlert tells an admin that a mailbox stopped working in a way
	// only an admin can mend (its OAuth2 authorization failed). It concerns
	// no ticket.
	KindAdminAlert MailKind = "admin_alert"
)

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
	// Locale is the mail's language: the ticket's unless the row says.
	Locale string
	// Ticket is the ticket the mail is about (for a reminder, the first it
	// lists); its department sends the mail.
	Ticket Ticket
	// Token opens the ticket: issued with the claim, it is in the database
	// (hashed) before the mail that carries it leaves.
	Token string
	// Listed are a reminder's tickets, each with a token of its own.
	Listed []ListedTicket
	// Draft is the held reply a notice is about; its Token confirms that
	// draft (and opens the ticket) until the draft expires.
	Draft *Draft
	// Message is what an answer (or a staff notice of a customer's
	// message) carries, with its attachments.
	Message *Message
	// AgentName is the staff member a staff notice (or an alert) is for.
	AgentName string
	// Alert is what an admin alert is about. Alerts have no ticket: their
	// Ticket holds only the department that sends them.
	Alert *MailboxAlert
	// Articles are the published articles an acknowledgement suggests, in
	// the ticket's language; none when nothing matches (or they could not
	// be looked up: the acknowledgement goes without them).
	Articles []ArticleLink
}

// ArticleLink is a knowledge base article a mail suggests. Path is its page
// on the site.
type ArticleLink struct {
	ID      int64
	Title   string
	Path    string
	Excerpt string
}

// maxAckArticles is how many articles an acknowledgement suggests at most.
const maxAckArticles = 3

// carriesTicketLink reports whether the mail's token opens its ticket for
// the customer. Staff notices carry a staff link instead.
func (k MailKind) carriesTicketLink() bool {
	return k == KindAck || k == KindAnswer || k == KindAutoResolved
}

// ListedTicket is one ticket a mail lists, with the token that opens it.
type ListedTicket struct {
	Ticket Ticket
	Token  string
}

// ClaimOutbox takes up to limit due mails for one sender, in one short
// transaction: it leases them (other senders skip them until the lease ends,
// so a sender that dies mid-batch has its mails sent by another after it)
// and issues each one's token. No transaction stays open while mail is sent.
func (s *Store) ClaimOutbox(ctx context.Context, limit int, lease time.Duration) ([]OutboxMail, error) {
	var mails []OutboxMail
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// Alerts first: they are few, and say mail may have stopped.
		alerts, err := claimAlerts(ctx, tx, limit)
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `
			SELECT o.id, o.kind, o.recipient, o.message_id, o.in_reply_to, o.reference_ids, o.attempts, o.created_at,
			       o.locale, coalesce(o.message_ref, 0), coalesce(ag.name, ''), `+ticketColumns+`
			FROM outbox o JOIN tickets t ON t.id = o.ticket_id JOIN departments d ON d.id = t.department_id
			LEFT JOIN agents ag ON ag.id = o.agent_id
			WHERE o.state = 'pending' AND o.next_attempt <= now()
			ORDER BY o.next_attempt, o.id
			LIMIT $1
			FOR UPDATE OF o SKIP LOCKED`, limit-len(alerts))
		if err != nil {
			return err
		}
		messageRefs := map[int64]int64{}
		mails, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (OutboxMail, error) {
			var m OutboxMail
			var ref int64
			dest := append([]any{&m.ID, &m.Kind, &m.Recipient, &m.MessageID, &m.InReplyTo, &m.References, &m.Attempts, &m.CreatedAt,
				&m.Locale, &ref, &m.AgentName}, ticketDest(&m.Ticket)...)
			err := r.Scan(dest...)
			if ref != 0 {
				messageRefs[m.ID] = ref
			}
			return m, err
		})
		if err != nil {
			return err
		}
		mails = append(alerts, mails...)
		if len(mails) == 0 {
			return nil
		}
		ids := make([]int64, len(mails))
		for i, m := range mails {
			ids[i] = m.ID
		}
		if _, err := tx.Exec(ctx, `UPDATE outbox SET next_attempt = now() + $2 * interval '1 millisecond' WHERE id = ANY($1)`,
			ids, lease.Milliseconds()); err != nil {
			return err
		}
		if err := listTickets(ctx, tx, mails); err != nil {
			return err
		}
		if err := draftTokens(ctx, tx, mails); err != nil {
			return err
		}
		if err := carriedMessages(ctx, tx, mails, messageRefs); err != nil {
			return err
		}
		// A token for each mail's ticket, or for each ticket a reminder
		// lists.
		var ticketIDs []int64
		for _, m := range mails {
			if m.Kind.carriesTicketLink() {
				ticketIDs = append(ticketIDs, m.Ticket.ID)
			}
			for _, l := range m.Listed {
				ticketIDs = append(ticketIDs, l.Ticket.ID)
			}
		}
		tokens, err := issueTokens(ctx, tx, ScopeTicket, ticketIDs, s.tokenTTL)
		if err != nil {
			return err
		}
		for i := range mails {
			if mails[i].Kind.carriesTicketLink() {
				mails[i].Token, tokens = tokens[0], tokens[1:]
			}
			for j := range mails[i].Listed {
				mails[i].Listed[j].Token, tokens = tokens[0], tokens[1:]
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim outbox: %w", err)
	}
	// Outside the claim's transaction: looking up articles takes a few
	// queries per acknowledgement, and the claim holds its rows' locks.
	if err := s.suggestArticles(ctx, mails); err != nil {
		return nil, fmt.Errorf("claim outbox: %w", errors.Join(err, s.handBack(ctx, mails)))
	}
	return mails, nil
}

// suggestArticles fills the articles each acknowledgement among mails
// suggests: those picked for its ticket, counted once when picked, however
// often the mail is tried. The articles are a help,
// not what the mail is for: one that cannot have them goes without them.
// Only ctx ending stops it.
func (s *Store) suggestArticles(ctx context.Context, mails []OutboxMail) error {
	if !slices.ContainsFunc(mails, func(m OutboxMail) bool { return m.Kind == KindAck }) {
		return nil
	}
	// Most acknowledgements find nothing while the knowledge base is empty:
	// one query saves them each a search.
	var published bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM kb_articles WHERE state = 'published')`).Scan(&published)
	if err != nil || !published {
		return ctx.Err()
	}
	for i := range mails {
		m := &mails[i]
		if m.Kind != KindAck {
			continue
		}
		hits, err := s.ArticlesForTicket(ctx, m.Ticket.ID, maxAckArticles)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			continue
		}
		for _, h := range hits {
			m.Articles = append(m.Articles, ArticleLink{ID: h.ID, Title: h.Title, Path: h.Path(), Excerpt: h.Article.Excerpt()})
		}
	}
	return nil
}

// handBack makes claimed mails due again at once, their attempts
// unchanged, as a sender does with mails it did not try; it runs when the
// claim's ctx has ended, so on a context of its own.
func (s *Store) handBack(ctx context.Context, mails []OutboxMail) error {
	outcomes := make([]Outcome, len(mails))
	for i, m := range mails {
		outcomes[i] = Outcome{ID: m.ID}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), handBackTimeout)
	defer cancel()
	return s.RecordOutbox(ctx, outcomes)
}

// handBackTimeout bounds handing mails back; failing, they wait out their
// lease.
const handBackTimeout = 10 * time.Second

// carriedMessages reads the messages the mails carry (refs: outbox ID →
// message ID), with their attachments.
func carriedMessages(ctx context.Context, tx pgx.Tx, mails []OutboxMail, refs map[int64]int64) error {
	if len(refs) == 0 {
		return nil
	}
	ids := make([]int64, 0, len(refs))
	for _, id := range refs {
		ids = append(ids, id)
	}
	rows, err := tx.Query(ctx, `
		SELECT m.id, m.author_kind, m.author_name, m.author_email, m.body_text, m.internal, m.created_at,
		       coalesce(array_agg(a.filename ORDER BY a.id) FILTER (WHERE a.id IS NOT NULL), '{}')
		FROM messages m LEFT JOIN attachments a ON a.message_id = m.id
		WHERE m.id = ANY($1) GROUP BY m.id`, ids)
	if err != nil {
		return fmt.Errorf("messages of mails: %w", err)
	}
	byID := map[int64]*Message{}
	var m Message
	var names []string
	_, err = pgx.ForEachRow(rows, []any{&m.ID, &m.AuthorKind, &m.AuthorName, &m.AuthorEmail, &m.Text, &m.Internal, &m.CreatedAt, &names}, func() error {
		mc := m
		mc.Attachments = nil
		for _, n := range names {
			mc.Attachments = append(mc.Attachments, Attachment{MessageID: m.ID, Filename: n})
		}
		byID[m.ID] = &mc
		return nil
	})
	if err != nil {
		return fmt.Errorf("messages of mails: %w", err)
	}
	for i := range mails {
		if ref, ok := refs[mails[i].ID]; ok {
			mails[i].Message = byID[ref]
		}
	}
	return nil
}

// draftTokens reads the drafts the notices among mails are about and issues
// each a token scoped to its draft, valid while the draft waits.
func draftTokens(ctx context.Context, tx pgx.Tx, mails []OutboxMail) error {
	var outboxIDs []int64
	byID := map[int64]int{}
	for i, m := range mails {
		if m.Kind == KindDraftNotice {
			outboxIDs = append(outboxIDs, m.ID)
			byID[m.ID] = i
		}
	}
	if len(outboxIDs) == 0 {
		return nil
	}
	rows, err := tx.Query(ctx, `SELECT o.id, `+draftColumns+` FROM outbox o JOIN drafts d ON d.id = o.draft_id WHERE o.id = ANY($1)`, outboxIDs)
	if err != nil {
		return fmt.Errorf("drafts of notices: %w", err)
	}
	var outboxID int64
	var d Draft
	var hashes [][]byte
	var ticketIDs, draftIDs []int64
	var expires []time.Time
	_, err = pgx.ForEachRow(rows, append([]any{&outboxID}, draftDest(&d)...), func() error {
		m := &mails[byID[outboxID]]
		dc := d
		m.Draft = &dc
		var hash []byte
		m.Token, hash = newToken()
		hashes, ticketIDs, draftIDs, expires = append(hashes, hash), append(ticketIDs, d.TicketID), append(draftIDs, d.ID), append(expires, d.ExpiresAt)
		return nil
	})
	if err != nil {
		return fmt.Errorf("drafts of notices: %w", err)
	}
	_, err = tx.Exec(ctx, `
		INSERT INTO tokens (hash, scope, ticket_id, draft_id, expires_at)
		SELECT * FROM unnest($1::bytea[], $2::text[], $3::bigint[], $4::bigint[], $5::timestamptz[])`,
		hashes, repeat(string(ScopeDraft), len(hashes)), ticketIDs, draftIDs, expires)
	if err != nil {
		return fmt.Errorf("issue %d draft tokens: %w", len(hashes), err)
	}
	return nil
}

// listTickets reads the tickets the reminders among mails list.
func listTickets(ctx context.Context, tx pgx.Tx, mails []OutboxMail) error {
	byID := map[int64]int{}
	for i, m := range mails {
		if m.Kind == KindReminder {
			byID[m.ID] = i
		}
	}
	if len(byID) == 0 {
		return nil
	}
	ids := make([]int64, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	rows, err := tx.Query(ctx, `
		SELECT ot.outbox_id, `+ticketColumns+`
		FROM outbox_tickets ot JOIN tickets t ON t.id = ot.ticket_id JOIN departments d ON d.id = t.department_id
		WHERE ot.outbox_id = ANY($1)
		ORDER BY ot.outbox_id, ot.position`, ids)
	if err != nil {
		return fmt.Errorf("tickets of reminders: %w", err)
	}
	var outboxID int64
	var t Ticket
	_, err = pgx.ForEachRow(rows, append([]any{&outboxID}, ticketDest(&t)...), func() error {
		m := &mails[byID[outboxID]]
		m.Listed = append(m.Listed, ListedTicket{Ticket: t})
		return nil
	})
	if err != nil {
		return fmt.Errorf("tickets of reminders: %w", err)
	}
	return nil
}

// Outcome is what became of one claimed mail.
type Outcome struct {
	ID int64
	// State is "sent", "failed" (given up), "pending" (to retry at RetryAt)
	// or "" (not attempted: due again at once, the try not counted).
	State   string
	RetryAt time.Time
	Reason  string
}

// RecordOutbox writes what became of claimed mails.
func (s *Store) RecordOutbox(ctx context.Context, outcomes []Outcome) error {
	if len(outcomes) == 0 {
		return nil
	}
	ids := make([]int64, len(outcomes))
	states := make([]string, len(outcomes))
	at := make([]time.Time, len(outcomes))
	reasons := make([]string, len(outcomes))
	now := time.Now()
	for i, o := range outcomes {
		ids[i], states[i], at[i], reasons[i] = o.ID, o.State, o.RetryAt, o.Reason
		if o.State != "pending" {
			at[i] = now
		}
	}
	_, err := s.pool.Exec(ctx, `
		UPDATE outbox o SET
		       state = CASE WHEN r.state = '' THEN o.state ELSE r.state END,
		       attempts = o.attempts + CASE WHEN r.state = '' THEN 0 ELSE 1 END,
		       last_error = CASE WHEN r.state = '' THEN o.last_error ELSE r.reason END,
		       next_attempt = CASE WHEN r.state IN ('', 'pending') THEN r.at ELSE o.next_attempt END,
		       sent_at = CASE WHEN r.state = 'sent' THEN r.at END
		FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::text[]) AS r(id, state, at, reason)
		WHERE o.id = r.id`, ids, states, at, reasons)
	if err != nil {
		return fmt.Errorf("record %d outbox results: %w", len(outcomes), err)
	}
	return nil
}

// NextOutboxAttempt returns when the earliest pending mail is due, and false
// when nothing is pending. Leased mails count as due when their lease ends.
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

// OutboxDepth is how much mail waits to be sent.
type OutboxDepth struct {
	Pending       int
	OldestPending time.Time // zero when nothing waits
	Failed        int
}

// OutboxDepth counts the mail waiting to be sent and given up on.
func (s *Store) OutboxDepth(ctx context.Context) (OutboxDepth, error) {
	var d OutboxDepth
	var oldest *time.Time
	err := s.pool.QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE state = 'pending'), min(created_at) FILTER (WHERE state = 'pending'),
		       count(*) FILTER (WHERE state = 'failed')
		FROM outbox WHERE state <> 'sent'`).Scan(&d.Pending, &oldest, &d.Failed)
	if err != nil {
		return d, fmt.Errorf("outbox depth: %w", err)
	}
	if oldest != nil {
		d.OldestPending = *oldest
	}
	return d, nil
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
	return queryStructs[OutboxState](ctx, s.pool, fmt.Sprintf("outbox of ticket %d", ticketID), `
		SELECT id, kind, ticket_id, recipient, message_id, state, attempts, last_error, sent_at
		FROM outbox WHERE ticket_id = $1 ORDER BY id`, ticketID)
}

// notFound wraps err with what failed, as ErrNotFound when no row matched.
func notFound(err error, what string) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return fmt.Errorf("%s: %w", what, err)
}
