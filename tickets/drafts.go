package tickets

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// holdDrafts keeps each claimed reply as a draft of its ticket, with its
// files, and queues the notice that tells the ticket's owner (the address
// on the ticket, whoever the reply claims to be from) where to review it.
func (b *batch) holdDrafts(ctx context.Context, tx pgx.Tx, claimed []int, ttl time.Duration) error {
	var (
		inboundIDs, ticketIDs                              []int64
		names, froms, subjects, texts, fulls, notices, ref []string
		aDraft                                             []int32
		aPos                                               []int32
		aNames, aTypes, aCIDs                              []string
		aInline                                            []bool
		aSizes                                             []int64
		aSums                                              [][]byte
		idx                                                []int
	)
	for _, i := range claimed {
		if b.res[i].Disposition != DispositionDraft {
			continue
		}
		in, r := b.mails[i], b.routes[i]
		n := int32(len(idx))
		idx = append(idx, i)
		inboundIDs, ticketIDs = append(inboundIDs, b.res[i].InboundID), append(ticketIDs, r.ticketID)
		names, froms, subjects = append(names, in.From.Name), append(froms, b.customers[i]), append(subjects, in.Subject)
		text := in.NewText
		if strings.TrimSpace(text) == "" {
			text = in.Text
		}
		texts, fulls = append(texts, text), append(fulls, in.Text)
		notices, ref = append(notices, newMessageID(in.Department.Address)), append(ref, r.outboxMessageID)
		for k, a := range in.Attachments {
			aDraft, aPos = append(aDraft, n), append(aPos, int32(k))
			aNames, aTypes, aCIDs = append(aNames, a.Filename), append(aTypes, a.ContentType), append(aCIDs, a.ContentID)
			aInline, aSizes, aSums = append(aInline, a.Inline), append(aSizes, a.Content.Size), append(aSums, a.Content.SHA256[:])
		}
	}
	if len(idx) == 0 {
		return nil
	}
	rows, err := tx.Query(ctx, `
		WITH x AS (
			SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
			                     $8::text[], $9::text[])
			     WITH ORDINALITY AS x(inbound_id, ticket_id, from_name, from_address, subject, body_text, full_text,
			                          notice_id, parent, ord)
		), d AS (
			INSERT INTO drafts (ticket_id, inbound_id, from_name, from_address, subject, body_text, full_text, expires_at)
			SELECT ticket_id, inbound_id, from_name, from_address, subject, body_text, full_text,
			       now() + $17 * interval '1 second'
			FROM x ORDER BY ord
			RETURNING id, inbound_id
		), xd AS (
			SELECT x.*, d.id AS draft_id FROM x JOIN d USING (inbound_id)
		), a AS (
			INSERT INTO draft_attachments (draft_id, position, filename, content_type, content_id, inline, size, sha256)
			SELECT xd.draft_id, y.position, y.filename, y.content_type, y.content_id, y.inline, y.size, y.sha256
			FROM unnest($10::int[], $11::int[], $12::text[], $13::text[], $14::text[], $15::boolean[], $16::bigint[], $18::bytea[])
			     AS y(n, position, filename, content_type, content_id, inline, size, sha256)
			JOIN xd ON xd.ord = y.n + 1
		), h AS (
			INSERT INTO ticket_history (ticket_id, actor, action, new_value)
			SELECT ticket_id, 'system', 'reply_held', 'draft ' || draft_id || ' from ' || from_address FROM xd
		), o AS (
			INSERT INTO outbox (kind, ticket_id, draft_id, recipient, message_id, in_reply_to, reference_ids)
			SELECT 'draft_notice', t.id, xd.draft_id, t.customer_email, xd.notice_id, xd.parent,
			       CASE WHEN xd.parent = '' THEN '{}'::text[] ELSE ARRAY[xd.parent] END
			FROM xd JOIN tickets t ON t.id = xd.ticket_id
		), u AS (
			UPDATE tickets t SET updated_at = now() FROM xd WHERE t.id = xd.ticket_id
		)
		SELECT ord, draft_id FROM xd`,
		inboundIDs, ticketIDs, names, froms, subjects, texts, fulls, notices, ref,
		aDraft, aPos, aNames, aTypes, aCIDs, aInline, aSizes, int64(ttl/time.Second), aSums)
	if err != nil {
		return fmt.Errorf("hold %d replies as drafts: %w", len(idx), err)
	}
	var ord, draftID int64
	_, err = pgx.ForEachRow(rows, []any{&ord, &draftID}, func() error {
		i := idx[ord-1]
		b.res[i].DraftID, b.res[i].NoticeQueued, b.res[i].TrackingID = draftID, true, b.routes[i].trackingID
		return nil
	})
	if err != nil {
		return fmt.Errorf("hold %d replies as drafts: %w", len(idx), err)
	}
	return nil
}

// recordAnswers records automatic answers and bounces against the ticket of
// the mail they answer. A bounce marks the mail it returns and the
// addresses that failed.
func (b *batch) recordAnswers(ctx context.Context, tx pgx.Tx, claimed []int) error {
	var (
		hTickets                  []int64
		hActions, hValues         []string
		outboxIDs                 []int64
		outboxStatus              []string
		bAddrs, bStatus, bDiag    []string
		bInbound                  []int64
		bouncesSeen, answersSeen  int
		recipientOf               = map[int64]string{}
		bounceOutbox, bounceIndex []int64
	)
	for _, i := range claimed {
		r, in := b.routes[i], b.mails[i]
		switch b.res[i].Disposition {
		case DispositionAutoReply:
			answersSeen++
			hTickets, hActions = append(hTickets, r.ticketID), append(hActions, "auto_reply")
			hValues = append(hValues, oneLine(r.reason+": "+in.Subject, 300))
		case DispositionBounce:
			bouncesSeen++
			var failed []BouncedRecipient
			var statuses []string
			for _, rc := range in.Bounce.Recipients {
				statuses = append(statuses, strings.TrimSpace(rc.Action+" "+rc.Status))
				if rc.failed() {
					failed = append(failed, rc)
				}
			}
			status := strings.Join(statuses, ", ")
			if status == "" {
				status = "returned"
			}
			hTickets, hActions = append(hTickets, r.ticketID), append(hActions, "delivery_failed")
			hValues = append(hValues, oneLine(status, 300))
			// A delay is news, not a return: the mail is marked returned
			// only when delivery failed (or the report names no one).
			if r.outboxID != 0 && (len(failed) > 0 || len(in.Bounce.Recipients) == 0) {
				outboxIDs, outboxStatus = append(outboxIDs, r.outboxID), append(outboxStatus, oneLine(status, 300))
			}
			if len(in.Bounce.Recipients) == 0 && r.outboxID != 0 {
				// A report that names no recipient returns the mail to
				// the one it was sent to.
				bounceOutbox, bounceIndex = append(bounceOutbox, r.outboxID), append(bounceIndex, int64(len(bAddrs)))
				failed = []BouncedRecipient{{Status: "", Diagnostic: oneLine(in.Subject, 500)}}
			}
			for _, rc := range failed {
				bAddrs, bStatus, bDiag = append(bAddrs, strings.ToLower(rc.Address)), append(bStatus, rc.Status), append(bDiag, rc.Diagnostic)
				bInbound = append(bInbound, b.res[i].InboundID)
			}
		default:
			continue
		}
		b.res[i].TrackingID = r.trackingID
	}
	if answersSeen+bouncesSeen == 0 {
		return nil
	}
	if len(bounceOutbox) > 0 {
		rows, err := tx.Query(ctx, `SELECT id, lower(recipient) FROM outbox WHERE id = ANY($1)`, bounceOutbox)
		if err != nil {
			return fmt.Errorf("read bounced mail: %w", err)
		}
		var id int64
		var rcpt string
		if _, err := pgx.ForEachRow(rows, []any{&id, &rcpt}, func() error { recipientOf[id] = rcpt; return nil }); err != nil {
			return fmt.Errorf("read bounced mail: %w", err)
		}
		for k, id := range bounceOutbox {
			bAddrs[bounceIndex[k]] = recipientOf[id]
		}
	}
	_, err := tx.Exec(ctx, `
		WITH h AS (
			INSERT INTO ticket_history (ticket_id, actor, action, new_value)
			SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) AS x(ticket_id, actor, action, new_value)
		), o AS (
			UPDATE outbox o SET bounced_at = now(), bounce_status = x.status
			FROM unnest($5::bigint[], $6::text[]) AS x(id, status) WHERE o.id = x.id
		)
		INSERT INTO address_bounces AS a (address, last_status, last_diagnostic, last_inbound_id)
		SELECT DISTINCT ON (address) address, status, diagnostic, inbound_id
		FROM unnest($7::text[], $8::text[], $9::text[], $10::bigint[]) AS y(address, status, diagnostic, inbound_id)
		WHERE address LIKE '_%@_%'
		ORDER BY address
		ON CONFLICT (address) DO UPDATE SET last_at = now(), bounces = a.bounces + 1, last_status = excluded.last_status,
		       last_diagnostic = excluded.last_diagnostic, last_inbound_id = excluded.last_inbound_id`,
		hTickets, repeat("system", len(hTickets)), hActions, hValues, outboxIDs, outboxStatus, bAddrs, bStatus, bDiag, bInbound)
	if err != nil {
		return fmt.Errorf("record %d automatic answers and %d bounces: %w", answersSeen, bouncesSeen, err)
	}
	return nil
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// DraftState is where a held reply stands.
type DraftState string

const (
	DraftHeld      DraftState = "held"
	DraftPosted    DraftState = "posted"
	DraftDiscarded DraftState = "discarded"
	DraftExpired   DraftState = "expired"
)

// Draft is a reply to a mail of ours, held until the ticket's owner posts
// or discards it.
type Draft struct {
	ID          int64
	TicketID    int64
	InboundID   int64
	FromName    string
	FromAddress string
	Subject     string
	// Text is the new text, quoted history removed; FullText all of it.
	Text        string
	FullText    string
	State       DraftState
	CreatedAt   time.Time
	ExpiresAt   time.Time
	Attachments []DraftAttachment
}

// DraftAttachment is a file of a held reply.
type DraftAttachment struct {
	Position    int
	Filename    string
	ContentType string
	Size        int64
	SHA256      []byte
}

const draftColumns = `d.id, d.ticket_id, d.inbound_id, d.from_name, d.from_address, d.subject, d.body_text, d.full_text,
	CASE WHEN d.state = 'held' AND d.expires_at <= now() THEN 'expired' ELSE d.state END, d.created_at, d.expires_at`

func draftDest(d *Draft) []any {
	return []any{&d.ID, &d.TicketID, &d.InboundID, &d.FromName, &d.FromAddress, &d.Subject, &d.Text, &d.FullText,
		&d.State, &d.CreatedAt, &d.ExpiresAt}
}

// HeldDrafts returns a ticket's replies waiting to be posted, oldest first,
// with their files.
func (s *Store) HeldDrafts(ctx context.Context, ticketID int64) ([]Draft, error) {
	return s.drafts(ctx, `d.ticket_id = $1 AND d.state = 'held' AND d.expires_at > now()`, ticketID)
}

// Drafts returns all of a ticket's drafts, whatever their state, oldest
// first.
func (s *Store) Drafts(ctx context.Context, ticketID int64) ([]Draft, error) {
	return s.drafts(ctx, `d.ticket_id = $1`, ticketID)
}

func (s *Store) drafts(ctx context.Context, where string, args ...any) ([]Draft, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+draftColumns+` FROM drafts d WHERE `+where+` ORDER BY d.id`, args...)
	if err != nil {
		return nil, fmt.Errorf("read drafts: %w", err)
	}
	var list []Draft
	var d Draft
	byID := map[int64]int{}
	_, err = pgx.ForEachRow(rows, draftDest(&d), func() error {
		byID[d.ID] = len(list)
		list = append(list, d)
		return nil
	})
	if err != nil || len(list) == 0 {
		return list, wrapErr(err, "read drafts")
	}
	ids := make([]int64, len(list))
	for i, d := range list {
		ids[i] = d.ID
	}
	rows, err = s.pool.Query(ctx, `
		SELECT draft_id, position, filename, content_type, size, sha256 FROM draft_attachments
		WHERE draft_id = ANY($1) ORDER BY draft_id, position`, ids)
	if err != nil {
		return nil, fmt.Errorf("read draft files: %w", err)
	}
	var id int64
	var a DraftAttachment
	_, err = pgx.ForEachRow(rows, []any{&id, &a.Position, &a.Filename, &a.ContentType, &a.Size, &a.SHA256}, func() error {
		d := &list[byID[id]]
		d.Attachments = append(d.Attachments, a)
		return nil
	})
	return list, wrapErr(err, "read draft files")
}

func wrapErr(err error, what string) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// DraftFile returns one file of a ticket's draft.
func (s *Store) DraftFile(ctx context.Context, ticketID, draftID int64, position int) (DraftAttachment, error) {
	var a DraftAttachment
	err := s.pool.QueryRow(ctx, `
		SELECT a.position, a.filename, a.content_type, a.size, a.sha256
		FROM draft_attachments a JOIN drafts d ON d.id = a.draft_id
		WHERE d.ticket_id = $1 AND a.draft_id = $2 AND a.position = $3`, ticketID, draftID, position).
		Scan(&a.Position, &a.Filename, &a.ContentType, &a.Size, &a.SHA256)
	if err != nil {
		return a, notFound(err, fmt.Sprintf("file %d of draft %d", position, draftID))
	}
	return a, nil
}

// PostDraft adds a held reply to its ticket as the owner's message, with
// the text as the owner edited it and the files they kept (by position),
// as a web reply would: the ticket then waits for an agent. A draft that
// is no longer held (posted, discarded, expired) is ErrExpired; one of
// another ticket ErrNotFound.
func (s *Store) PostDraft(ctx context.Context, ticketID, draftID int64, text string, keep []int) error {
	errs := FieldErrors{}
	text = formText(errs, "message", text, len(keep) > 0)
	if len(errs) > 0 {
		return fmt.Errorf("post draft %d: %w", draftID, errs)
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		inboundID, err := takeDraft(ctx, tx, ticketID, draftID)
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `
			SELECT filename, content_type, content_id, inline, size, sha256 FROM draft_attachments
			WHERE draft_id = $1 AND position = ANY($2) ORDER BY position`, draftID, keep)
		if err != nil {
			return fmt.Errorf("read draft files: %w", err)
		}
		var atts []InboundAttachment
		var a InboundAttachment
		var sum []byte
		_, err = pgx.ForEachRow(rows, []any{&a.Filename, &a.ContentType, &a.ContentID, &a.Inline, &a.Content.Size, &sum}, func() error {
			a.Content.SHA256 = [32]byte(sum)
			atts = append(atts, a)
			return nil
		})
		if err != nil {
			return fmt.Errorf("read draft files: %w", err)
		}
		messageID, err := addCustomerMessage(ctx, tx, ticketID, text, atts, inboundID)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `
			WITH d AS (
				UPDATE drafts SET state = 'posted', decided_at = now(), message_id = $2 WHERE id = $1 RETURNING ticket_id
			)
			INSERT INTO ticket_history (ticket_id, actor, action, new_value)
			SELECT d.ticket_id, 'customer:' || t.customer_email, 'draft_posted', $1::text FROM d JOIN tickets t ON t.id = d.ticket_id`,
			draftID, messageID)
		if err != nil {
			return fmt.Errorf("mark draft posted: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("post draft %d: %w", draftID, err)
	}
	s.outboxQueued() // the assignee's notice, if any
	return nil
}

// DiscardDraft drops a held reply on its owner's word. It stays in the
// inbound log.
func (s *Store) DiscardDraft(ctx context.Context, ticketID, draftID int64) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := takeDraft(ctx, tx, ticketID, draftID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `
			WITH d AS (
				UPDATE drafts SET state = 'discarded', decided_at = now() WHERE id = $1 RETURNING ticket_id
			)
			INSERT INTO ticket_history (ticket_id, actor, action, new_value)
			SELECT d.ticket_id, 'customer:' || t.customer_email, 'draft_discarded', $1::text FROM d JOIN tickets t ON t.id = d.ticket_id`,
			draftID)
		if err != nil {
			return fmt.Errorf("mark draft discarded: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("discard draft %d: %w", draftID, err)
	}
	return nil
}

// takeDraft locks a held draft of the ticket and returns its inbound mail.
func takeDraft(ctx context.Context, tx pgx.Tx, ticketID, draftID int64) (int64, error) {
	var inboundID int64
	var held bool
	err := tx.QueryRow(ctx, `
		SELECT inbound_id, state = 'held' AND expires_at > now() FROM drafts WHERE id = $1 AND ticket_id = $2 FOR UPDATE`,
		draftID, ticketID).Scan(&inboundID, &held)
	if err != nil {
		return 0, notFound(err, "read draft")
	}
	if !held {
		return 0, fmt.Errorf("draft is no longer held: %w", ErrExpired)
	}
	return inboundID, nil
}

// ExpireDrafts marks held replies past their time as expired, with a line
// in their tickets' history, and returns how many. Their mail stays in the
// inbound log.
func (s *Store) ExpireDrafts(ctx context.Context) (int, error) {
	tag, err := s.pool.Exec(ctx, `
		WITH d AS (
			UPDATE drafts SET state = 'expired', decided_at = now()
			WHERE id IN (SELECT id FROM drafts WHERE state = 'held' AND expires_at <= now() LIMIT 1000 FOR UPDATE SKIP LOCKED)
			RETURNING id, ticket_id
		)
		INSERT INTO ticket_history (ticket_id, actor, action, new_value)
		SELECT ticket_id, 'system', 'draft_expired', id::text FROM d`)
	if err != nil {
		return 0, fmt.Errorf("expire drafts: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// DraftByToken returns the held reply a draft link confirms, with its
// ticket. Unknown and revoked links are ErrNotFound; a link past its time,
// or to a draft no longer held, ErrExpired.
func (s *Store) DraftByToken(ctx context.Context, token string) (Ticket, Draft, error) {
	var d Draft
	if len(token) != base64.RawURLEncoding.EncodedLen(tokenBytes) {
		return Ticket{}, d, fmt.Errorf("look up draft link: %w", ErrNotFound)
	}
	var tokenExpires time.Time
	err := s.pool.QueryRow(ctx, `
		SELECT k.expires_at, `+draftColumns+`
		FROM tokens k JOIN drafts d ON d.id = k.draft_id
		WHERE k.hash = $1 AND k.scope = 'draft' AND k.revoked_at IS NULL`, hashToken(token)).
		Scan(append([]any{&tokenExpires}, draftDest(&d)...)...)
	if err != nil {
		return Ticket{}, d, notFound(err, "look up draft link")
	}
	if !time.Now().Before(tokenExpires) || d.State != DraftHeld {
		return Ticket{}, d, fmt.Errorf("look up draft link: draft %s: %w", d.State, ErrExpired)
	}
	t, err := s.Ticket(ctx, d.TicketID)
	return t, d, err
}
