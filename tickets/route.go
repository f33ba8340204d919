package tickets

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// route is what becomes of one mail of a batch, decided before its
// inbound-log row is written.
type route struct {
	disposition Disposition
	reason      string
	// ticketID is the ticket the mail answers (draft, auto-reply, bounce).
	ticketID   int64
	trackingID string
	// outboxID is the mail of ours it answers or returns, when known.
	outboxID        int64
	outboxMessageID string
	// noAck says why a new ticket is not acknowledged.
	noAck string
}

// link is a mail of ours (or a ticket) that an inbound mail names.
type link struct {
	outboxID        int64
	outboxMessageID string
	ticketID        int64
	trackingID      string
	// staff: the mail named is a notice to an agent, who answered it by
	// mail rather than on the staff page.
	staff bool
}

// route decides what each mail of the batch becomes: a new ticket, a held
// reply, an automatic answer or a bounce recorded against the ticket it
// concerns, or quarantine. Counts for the per-hour limits are taken under
// locks on the senders and tickets involved, so that transactions in
// parallel count one another.
func (b *batch) route(ctx context.Context, tx pgx.Tx, limits Limits) error {
	b.routes = make([]route, len(b.mails))
	if err := lockKeys(ctx, tx, "sender:", b.customers); err != nil {
		return err
	}
	links, err := b.links(ctx, tx)
	if err != nil {
		return err
	}
	var ticketKeys []string
	for _, l := range links {
		ticketKeys = append(ticketKeys, strconv.FormatInt(l.ticketID, 10))
	}
	if err := lockKeys(ctx, tx, "ticket-replies:", ticketKeys); err != nil {
		return err
	}
	c, err := b.recentCounts(ctx, tx, links)
	if err != nil {
		return err
	}
	for i, in := range b.mails {
		r := &b.routes[i]
		l, linked := links[i]
		if linked {
			r.ticketID, r.trackingID, r.outboxID, r.outboxMessageID = l.ticketID, l.trackingID, l.outboxID, l.outboxMessageID
		}
		sender := strings.ToLower(b.customers[i])
		switch {
		case in.Bounce != nil && linked:
			r.disposition = DispositionBounce
		case linked && l.staff && in.Automatic != "":
			r.disposition, r.reason = DispositionAutoReply, in.Automatic
		case linked && l.staff:
			// Held as a customer's draft it would be offered to the
			// customer to post as their own words.
			r.disposition, r.reason = DispositionQuarantined,
				"answer to a staff notice of ticket "+l.trackingID+" by mail; agents answer on the staff page"
		case in.Bounce != nil:
			r.disposition, r.reason = DispositionQuarantined, "delivery report about no mail the helpdesk sent"
		case linked && in.Automatic != "":
			r.disposition, r.reason = DispositionAutoReply, in.Automatic
		case sender == "":
			r.disposition, r.reason = DispositionQuarantined, "no sender address to answer (From: and envelope sender unusable)"
		case linked && c.ticketReplies[l.ticketID] >= limits.RepliesPerTicket:
			r.disposition, r.reason = DispositionQuarantined,
				fmt.Sprintf("reply to ticket %s: more than %d replies to it within an hour", l.trackingID, limits.RepliesPerTicket)
		case linked && c.senderReplies[sender] >= limits.RepliesPerSender:
			r.disposition, r.reason = DispositionQuarantined,
				fmt.Sprintf("reply to ticket %s: more than %d replies from this address within an hour", l.trackingID, limits.RepliesPerSender)
		case linked:
			r.disposition = DispositionDraft
			c.ticketReplies[l.ticketID]++
			c.senderReplies[sender]++
		case c.senderTickets[sender] >= limits.TicketsPerSender:
			r.disposition, r.reason = DispositionQuarantined,
				fmt.Sprintf("more than %d new tickets from this address within an hour", limits.TicketsPerSender)
		default:
			r.disposition = DispositionTicket
			c.senderTickets[sender]++
			r.noAck = in.Automatic
			switch {
			case r.noAck != "":
			case in.Auth.DMARC == "fail":
				r.noAck = "DMARC failed for the From: domain: the sender may be forged"
			case c.senderAcks[sender] >= limits.AcksPerAddress:
				r.noAck = fmt.Sprintf("more than %d acknowledgements to this address within an hour", limits.AcksPerAddress)
			default:
				c.senderAcks[sender]++
			}
		}
	}
	return nil
}

// lockKeys takes a transaction-scoped advisory lock on each key (prefixed),
// in one order whoever asks, so that two transactions never wait for each
// other in a circle.
func lockKeys(ctx context.Context, tx pgx.Tx, prefix string, keys []string) error {
	var list []string
	for _, k := range keys {
		if k != "" {
			list = append(list, prefix+strings.ToLower(k))
		}
	}
	if len(list) == 0 {
		return nil
	}
	slices.Sort(list)
	list = slices.Compact(list)
	// Locks are taken in the order of their hashes, which is what they are.
	_, err := tx.Exec(ctx, `
		SELECT pg_advisory_xact_lock(h)
		FROM (SELECT DISTINCT hashtextextended(k, 0) AS h FROM unnest($1::text[]) AS k ORDER BY 1) AS s`, list)
	if err != nil {
		return fmt.Errorf("lock %d %s keys: %w", len(list), strings.TrimSuffix(prefix, ":"), err)
	}
	return nil
}

// links finds, for each mail that answers one of ours, that mail and its
// ticket: by the Message-IDs it names (a bounce's returned mail first, then
// In-Reply-To, then References from the latest), or else by the tracking ID
// in its subject.
func (b *batch) links(ctx context.Context, tx pgx.Tx) (map[int]link, error) {
	var refIdx, refRank []int32
	var refs []string
	var tagIdx []int32
	var tags []string
	for i, in := range b.mails {
		var named []string
		if in.Bounce != nil && in.Bounce.OriginalMessageID != "" {
			named = append(named, in.Bounce.OriginalMessageID)
		}
		if in.InReplyTo != "" {
			named = append(named, in.InReplyTo)
		}
		for k := len(in.References) - 1; k >= 0 && len(named) < maxReferences+2; k-- {
			named = append(named, in.References[k])
		}
		for rank, r := range named {
			refIdx, refRank, refs = append(refIdx, int32(i)), append(refRank, int32(rank)), append(refs, r)
		}
		if in.SubjectTracking != "" {
			tagIdx, tags = append(tagIdx, int32(i)), append(tags, in.SubjectTracking)
		}
	}
	links := map[int]link{}
	if len(refs) == 0 && len(tags) == 0 {
		return links, nil
	}
	// Reminders list several tickets and name none: a reply to one is not
	// a reply to a ticket.
	rows, err := tx.Query(ctx, `
		SELECT DISTINCT ON (i) i, outbox_id, message_id, ticket_id, tracking_id, staff FROM (
			SELECT x.i, x.rank, o.id AS outbox_id, o.message_id, t.id AS ticket_id, t.tracking_id,
			       o.kind IN ('agent_new_ticket', 'agent_customer_reply') AS staff
			FROM unnest($1::int[], $2::int[], $3::text[]) AS x(i, rank, ref)
			JOIN outbox o ON o.message_id = x.ref AND o.kind <> 'reminder'
			JOIN tickets t ON t.id = o.ticket_id
			UNION ALL
			SELECT y.i, 1000, 0, '', t.id, t.tracking_id, false
			FROM unnest($4::int[], $5::text[]) AS y(i, tracking)
			JOIN tickets t ON t.tracking_id = y.tracking
		) AS l
		ORDER BY i, rank`, refIdx, refRank, refs, tagIdx, tags)
	if err != nil {
		return nil, fmt.Errorf("find the tickets %d mails answer: %w", len(b.mails), err)
	}
	var i int32
	var l link
	_, err = pgx.ForEachRow(rows, []any{&i, &l.outboxID, &l.outboxMessageID, &l.ticketID, &l.trackingID, &l.staff}, func() error {
		links[int(i)] = l
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find the tickets %d mails answer: %w", len(b.mails), err)
	}
	return links, nil
}

// recentCounts are the last hour's tickets, acknowledgements and held
// replies per sender, and held replies per ticket.
type recentCounts struct {
	senderTickets, senderAcks, senderReplies map[string]int
	ticketReplies                            map[int64]int
}

func (b *batch) recentCounts(ctx context.Context, tx pgx.Tx, links map[int]link) (recentCounts, error) {
	c := recentCounts{senderTickets: map[string]int{}, senderAcks: map[string]int{}, senderReplies: map[string]int{}, ticketReplies: map[int64]int{}}
	var senders []string
	for _, a := range b.customers {
		if a != "" {
			senders = append(senders, strings.ToLower(a))
		}
	}
	var ticketIDs []int64
	for _, l := range links {
		ticketIDs = append(ticketIDs, l.ticketID)
	}
	if len(senders) == 0 && len(ticketIDs) == 0 {
		return c, nil
	}
	rows, err := tx.Query(ctx, `
		SELECT 'ticket', lower(customer_email), 0::bigint, count(*) FROM tickets
		WHERE lower(customer_email) = ANY($1) AND created_at > now() - interval '1 hour' GROUP BY 2
		UNION ALL
		SELECT 'ack', lower(recipient), 0, count(*) FROM outbox
		WHERE kind = 'ack' AND lower(recipient) = ANY($1) AND created_at > now() - interval '1 hour' GROUP BY 2
		UNION ALL
		SELECT 'sender-reply', lower(from_address), 0, count(*) FROM drafts
		WHERE lower(from_address) = ANY($1) AND created_at > now() - interval '1 hour' GROUP BY 2
		UNION ALL
		SELECT 'ticket-reply', '', ticket_id, count(*) FROM drafts
		WHERE ticket_id = ANY($2) AND created_at > now() - interval '1 hour' GROUP BY 3`, senders, ticketIDs)
	if err != nil {
		return c, fmt.Errorf("count recent mail of %d senders: %w", len(senders), err)
	}
	var kind, addr string
	var ticketID, n int64
	_, err = pgx.ForEachRow(rows, []any{&kind, &addr, &ticketID, &n}, func() error {
		switch kind {
		case "ticket":
			c.senderTickets[addr] = int(n)
		case "ack":
			c.senderAcks[addr] = int(n)
		case "sender-reply":
			c.senderReplies[addr] = int(n)
		case "ticket-reply":
			c.ticketReplies[ticketID] = int(n)
		}
		return nil
	})
	if err != nil {
		return c, fmt.Errorf("count recent mail of %d senders: %w", len(senders), err)
	}
	return c, nil
}
