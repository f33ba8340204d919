package tickets

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// InboundEntry is one mail of the inbound log as the staff see it.
type InboundEntry struct {
	ID            int64
	ReceivedAt    time.Time
	Source        string
	SourceRef     string
	Department    string // slug
	EnvelopeFrom  string
	MessageID     string
	FromAddress   string
	Subject       string
	RawSHA256     []byte
	RawSize       int64
	Disposition   Disposition
	Reason        string
	ParseProblems string
	AuthSPF       string
	AuthDKIM      string
	AuthDMARC     string
	AuthDetail    string
	TrackingID    string // of the ticket it opened or concerns, if any
}

// InboundFilter selects inbound-log entries, newest first.
type InboundFilter struct {
	Disposition Disposition // "" for all
	BeforeID    int64       // 0 for the newest
	Limit       int         // default 50, at most 1000
}

const inboundEntryColumns = `i.id, i.received_at, i.source, i.source_ref, d.slug, i.envelope_from, i.message_id, i.from_address,
	i.subject, i.raw_sha256, i.raw_size, i.disposition, i.reason, i.parse_problems, i.auth_spf, i.auth_dkim, i.auth_dmarc,
	i.auth_detail, coalesce(t.tracking_id, '')`

const inboundFrom = ` FROM inbound i JOIN departments d ON d.id = i.department_id LEFT JOIN tickets t ON t.id = i.ticket_id `

// Inbound lists the inbound log.
func (s *Store) Inbound(ctx context.Context, f InboundFilter) ([]InboundEntry, error) {
	if f.Limit <= 0 {
		f.Limit = 50
	}
	f.Limit = min(f.Limit, 1000)
	return queryStructs[InboundEntry](ctx, s.pool, "list inbound mail", `SELECT `+inboundEntryColumns+inboundFrom+`
		WHERE ($1 = '' OR i.disposition = $1) AND ($2 = 0 OR i.id < $2)
		ORDER BY i.id DESC LIMIT $3`, string(f.Disposition), f.BeforeID, f.Limit)
}

// InboundMailEntry returns one entry of the inbound log.
func (s *Store) InboundMailEntry(ctx context.Context, id int64) (InboundEntry, error) {
	list, err := queryStructs[InboundEntry](ctx, s.pool, fmt.Sprintf("inbound mail %d", id),
		`SELECT `+inboundEntryColumns+inboundFrom+` WHERE i.id = $1`, id)
	if err != nil {
		return InboundEntry{}, err
	}
	if len(list) == 0 {
		return InboundEntry{}, fmt.Errorf("inbound mail %d: %w", id, ErrNotFound)
	}
	return list[0], nil
}

// ReleaseInbound opens a ticket for a quarantined mail, parsed again by the
// caller from its raw source, and records in the log that it was released.
// The acknowledgement goes out unless the mail is automatic or failed
// DMARC. A mail that is not quarantined is ErrConflict.
func (s *Store) ReleaseInbound(ctx context.Context, id int64, in *InboundMail) (IngestResult, error) {
	in = storable(in)
	customer := customerAddress(in)
	if customer == "" {
		return IngestResult{}, fmt.Errorf("release inbound mail %d: no sender address to open a ticket for: %w", id, ErrInvalid)
	}
	res := IngestResult{InboundID: id, Disposition: DispositionTicket}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var disp, reason string
		var dept int64
		err := tx.QueryRow(ctx, `SELECT disposition, reason, department_id FROM inbound WHERE id = $1 FOR UPDATE`, id).Scan(&disp, &reason, &dept)
		if err != nil {
			return notFound(err, "read inbound mail")
		}
		if disp != string(DispositionQuarantined) {
			return fmt.Errorf("mail is %s, not quarantined: %w", disp, ErrConflict)
		}
		if dept != in.Department.ID {
			return fmt.Errorf("mail belongs to department %d, not %d: %w", dept, in.Department.ID, ErrInvalid)
		}
		if err := putBlobs(ctx, tx, attachmentContents(in.Attachments)); err != nil {
			return err
		}
		noAck := in.Automatic
		if noAck == "" && in.Auth.DMARC == "fail" {
			noAck = "DMARC failed for the From: domain: the sender may be forged"
		}
		if err := tx.QueryRow(ctx, `SELECT nextval(pg_get_serial_sequence('tickets', 'id'))`).Scan(&res.TicketID); err != nil {
			return fmt.Errorf("draw ticket id: %w", err)
		}
		nt := &newTicket{
			id: res.TicketID, inboundID: id, department: in.Department, source: "email", priority: PriorityMedium,
			subject: in.Subject, customerName: in.From.Name, customerEmail: customer, text: in.Text, html: in.HTML,
			mailMessageID: in.MessageID, references: in.References, automatic: noAck, attachments: in.Attachments,
		}
		if err := createTickets(ctx, tx, []*newTicket{nt}); err != nil {
			return err
		}
		res.TrackingID, res.AckQueued = nt.trackingID, noAck == ""
		res.Reason = "released from quarantine (was: " + reason + ")"
		_, err = tx.Exec(ctx, `
			WITH u AS (
				UPDATE inbound SET disposition = 'ticket', reason = $2, ticket_id = $3 WHERE id = $1
			)
			INSERT INTO ticket_history (ticket_id, actor, action, new_value) VALUES ($3, 'system', 'released_from_quarantine', $4)`,
			id, oneLine(res.Reason, 1000), res.TicketID, oneLine(reason, 300))
		if err != nil {
			return fmt.Errorf("record release: %w", err)
		}
		return nil
	})
	if err != nil {
		return IngestResult{}, fmt.Errorf("release inbound mail %d: %w", id, err)
	}
	if res.AckQueued {
		s.outboxQueued()
	}
	return res, nil
}

// AddressBounce is an address mail to which has bounced.
type AddressBounce struct {
	Address        string
	FirstAt        time.Time
	LastAt         time.Time
	Bounces        int
	LastStatus     string
	LastDiagnostic string
}

// AddressBounces lists the addresses mail to which has bounced, latest
// first.
func (s *Store) AddressBounces(ctx context.Context, limit int) ([]AddressBounce, error) {
	if limit <= 0 {
		limit = 100
	}
	return queryStructs[AddressBounce](ctx, s.pool, "list bouncing addresses", `
		SELECT address, first_at, last_at, bounces, last_status, last_diagnostic
		FROM address_bounces ORDER BY last_at DESC LIMIT $1`, limit)
}

// Bouncing reports whether mail to the address has bounced, and how.
func (s *Store) Bouncing(ctx context.Context, address string) (AddressBounce, bool, error) {
	list, err := queryStructs[AddressBounce](ctx, s.pool, "read bouncing address", `
		SELECT address, first_at, last_at, bounces, last_status, last_diagnostic
		FROM address_bounces WHERE address = lower($1)`, address)
	if err != nil || len(list) == 0 {
		return AddressBounce{}, false, err
	}
	return list[0], true, nil
}
