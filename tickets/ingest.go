package tickets

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Address is a mailbox as it appears in a mail header.
type Address struct {
	Name  string
	Email string
}

// InboundMail is a received mail, already parsed, addressed to one
// department.
type InboundMail struct {
	Source       string // "smtp" or "imap"
	SourceRef    string // client address, or mailbox/UIDVALIDITY/UID
	Department   Department
	EnvelopeFrom string
	EnvelopeTo   string

	MessageID  string // without angle brackets; empty when the mail has none
	InReplyTo  string
	References []string
	From       Address
	Subject    string
	Text       string
	HTML       string // already sanitized
	// Attachments, inline parts included, in the order they appear.
	Attachments []InboundAttachment
	Raw         Content
	// ParseProblems lists what could not be read; what could was kept.
	ParseProblems []string
	// Automatic, when set, says why the sender is a machine (for example
	// "Auto-Submitted: auto-replied"); no acknowledgement is sent to it.
	Automatic string
}

// InboundAttachment is one file part of an inbound mail.
type InboundAttachment struct {
	Filename    string
	ContentType string
	ContentID   string
	Inline      bool
	Content     Content
}

// Disposition is what became of an inbound mail.
type Disposition string

const (
	DispositionTicket      Disposition = "ticket"
	DispositionDuplicate   Disposition = "duplicate"
	DispositionQuarantined Disposition = "quarantined"
)

// IngestResult tells what IngestMail did.
type IngestResult struct {
	InboundID   int64
	Disposition Disposition
	Reason      string
	TicketID    int64
	TrackingID  string
	AckQueued   bool
}

// dedupeKey identifies a mail across deliveries: its Message-ID with the
// From: address, or the hash of its bytes when it has no Message-ID (such
// mail is deduplicated, never dropped). The address keeps two senders whose
// software makes poor Message-IDs ("12345") from passing for each other.
func dedupeKey(in *InboundMail) string {
	if in.MessageID != "" {
		return "id:" + in.MessageID + " from:" + strings.ToLower(in.From.Email)
	}
	return "sha256:" + hex.EncodeToString(in.Raw.SHA256[:])
}

// customerAddress is who the ticket belongs to: the From: address, or the
// envelope sender when From: is unusable.
func customerAddress(in *InboundMail) string {
	for _, a := range []string{in.From.Email, in.EnvelopeFrom} {
		a = strings.TrimSpace(a)
		if at := strings.LastIndexByte(a, '@'); at > 0 && at < len(a)-1 && !strings.ContainsAny(a, " <>\r\n") {
			return a[:at] + "@" + strings.ToLower(a[at+1:])
		}
	}
	return ""
}

// IngestMail records an inbound mail and, unless it is a copy of a mail the
// department already has, opens a ticket for it with its attachments and
// queues the acknowledgement, all in one transaction. When it returns nil the
// mail is committed and its source may be acknowledged.
func (s *Store) IngestMail(ctx context.Context, in *InboundMail) (IngestResult, error) {
	var res IngestResult
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		res, err = ingest(ctx, tx, in)
		return err
	})
	if err != nil {
		return IngestResult{}, fmt.Errorf("ingest mail %q: %w", dedupeKey(in), err)
	}
	if res.AckQueued {
		s.outboxQueued()
	}
	return res, nil
}

func ingest(ctx context.Context, tx pgx.Tx, in *InboundMail) (IngestResult, error) {
	in = storable(in)
	if err := putBlob(ctx, tx, in.Raw); err != nil {
		return IngestResult{}, err
	}
	key := dedupeKey(in)
	customer := customerAddress(in)
	res := IngestResult{Disposition: DispositionTicket}
	if customer == "" {
		res.Disposition, res.Reason = DispositionQuarantined, "no sender address to answer (From: and envelope sender unusable)"
	}
	problems := strings.Join(in.ParseProblems, "\n")

	err := tx.QueryRow(ctx, `
		INSERT INTO inbound (source, source_ref, department_id, envelope_from, envelope_to, message_id, dedupe_key,
		                     from_address, subject, raw_sha256, raw_size, disposition, reason, parse_problems)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
		ON CONFLICT (department_id, dedupe_key) WHERE disposition <> 'duplicate' DO NOTHING
		RETURNING id`,
		in.Source, in.SourceRef, in.Department.ID, in.EnvelopeFrom, in.EnvelopeTo, in.MessageID, key,
		in.From.Email, in.Subject, in.Raw.SHA256[:], in.Raw.Size, string(res.Disposition), res.Reason, problems,
	).Scan(&res.InboundID)
	if errors.Is(err, pgx.ErrNoRows) {
		return recordDuplicate(ctx, tx, in, key)
	}
	if err != nil {
		return res, fmt.Errorf("record inbound mail: %w", err)
	}
	if res.Disposition != DispositionTicket {
		return res, nil
	}

	atts := in.Attachments
	// Store blobs in hash order: two transactions sharing files then take
	// their locks in the same order and cannot deadlock.
	sorted := slices.Clone(atts)
	slices.SortFunc(sorted, func(a, b InboundAttachment) int { return bytes.Compare(a.Content.SHA256[:], b.Content.SHA256[:]) })
	for i, a := range sorted {
		if i > 0 && a.Content.SHA256 == sorted[i-1].Content.SHA256 {
			continue
		}
		if err := putBlob(ctx, tx, a.Content); err != nil {
			return res, err
		}
	}
	names := make([]string, len(atts))
	types := make([]string, len(atts))
	cids := make([]string, len(atts))
	inline := make([]bool, len(atts))
	sizes := make([]int64, len(atts))
	sums := make([][]byte, len(atts))
	for i, a := range atts {
		names[i], types[i], cids[i], inline[i], sizes[i] = a.Filename, a.ContentType, a.ContentID, a.Inline, a.Content.Size
		sums[i] = a.Content.SHA256[:]
	}

	ack := in.Automatic == ""
	refs := threadReferences(in.References, in.MessageID)
	for attempt := 0; ; attempt++ {
		tracking := NewTrackingID()
		err := tx.QueryRow(ctx, `
			WITH t AS (
				INSERT INTO tickets (tracking_id, department_id, subject, customer_name, customer_email, locale, source)
				SELECT $2, d.id, $3, $4, $5, d.locale, 'email' FROM departments d WHERE d.id = $1
				ON CONFLICT (tracking_id) DO NOTHING
				RETURNING id
			), m AS (
				INSERT INTO messages (ticket_id, author_kind, author_name, author_email, body_text, body_html, inbound_id, mail_message_id)
				SELECT t.id, 'customer', $4, $5, $6, $7, $8, $9 FROM t
				RETURNING id, ticket_id
			), a AS (
				INSERT INTO attachments (message_id, ticket_id, filename, content_type, content_id, inline, size, sha256)
				SELECT m.id, m.ticket_id, x.filename, x.content_type, x.content_id, x.inline, x.size, x.sha256
				FROM m, unnest($10::text[], $11::text[], $12::text[], $13::boolean[], $14::bigint[], $15::bytea[])
				     WITH ORDINALITY AS x(filename, content_type, content_id, inline, size, sha256, ord)
				ORDER BY x.ord
			), h AS (
				INSERT INTO ticket_history (ticket_id, actor, action, new_value)
				SELECT m.ticket_id, 'customer:' || $5, 'created', 'email' FROM m
				UNION ALL
				SELECT m.ticket_id, 'system', 'acknowledgement_suppressed', $16 FROM m WHERE NOT $17
			), o AS (
				INSERT INTO outbox (kind, ticket_id, recipient, message_id, in_reply_to, reference_ids)
				SELECT 'ack', m.ticket_id, $5, $18, $9, $19 FROM m WHERE $17
			), u AS (
				UPDATE inbound SET ticket_id = m.ticket_id FROM m WHERE inbound.id = $8
			)
			SELECT m.ticket_id FROM m`,
			in.Department.ID, tracking, in.Subject, in.From.Name, customer, in.Text, in.HTML, res.InboundID, in.MessageID,
			names, types, cids, inline, sizes, sums, in.Automatic, ack, newMessageID(in.Department.Address), refs,
		).Scan(&res.TicketID)
		if errors.Is(err, pgx.ErrNoRows) && attempt < 5 {
			continue // tracking ID taken (or department gone: the next try says so)
		}
		if errors.Is(err, pgx.ErrNoRows) {
			return res, fmt.Errorf("create ticket: department %d missing or no free tracking ID: %w", in.Department.ID, ErrInvalid)
		}
		if err != nil {
			return res, fmt.Errorf("create ticket: %w", err)
		}
		res.TrackingID = tracking
		res.AckQueued = ack
		return res, nil
	}
}

func recordDuplicate(ctx context.Context, tx pgx.Tx, in *InboundMail, key string) (IngestResult, error) {
	res := IngestResult{Disposition: DispositionDuplicate}
	var original int64
	var ticketID *int64
	err := tx.QueryRow(ctx, `
		SELECT i.id, i.ticket_id, coalesce(t.tracking_id, '') FROM inbound i LEFT JOIN tickets t ON t.id = i.ticket_id
		WHERE i.department_id = $1 AND i.dedupe_key = $2 AND i.disposition <> 'duplicate'`,
		in.Department.ID, key).Scan(&original, &ticketID, &res.TrackingID)
	if err != nil {
		return res, fmt.Errorf("find original of duplicate mail: %w", err)
	}
	if ticketID != nil {
		res.TicketID = *ticketID
	}
	res.Reason = fmt.Sprintf("same mail as inbound #%d", original)
	err = tx.QueryRow(ctx, `
		INSERT INTO inbound (source, source_ref, department_id, envelope_from, envelope_to, message_id, dedupe_key,
		                     from_address, subject, raw_sha256, raw_size, disposition, reason, ticket_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'duplicate', $12, $13)
		RETURNING id`,
		in.Source, in.SourceRef, in.Department.ID, in.EnvelopeFrom, in.EnvelopeTo, in.MessageID, key,
		in.From.Email, in.Subject, in.Raw.SHA256[:], in.Raw.Size, res.Reason, ticketID,
	).Scan(&res.InboundID)
	if err != nil {
		return res, fmt.Errorf("record duplicate mail: %w", err)
	}
	return res, nil
}

// newMessageID returns a globally unique Message-ID (without brackets) in the
// domain of the address mail is sent from.
func newMessageID(from string) string {
	domain := "localhost"
	if at := strings.LastIndexByte(from, '@'); at >= 0 && at < len(from)-1 {
		domain = from[at+1:]
	}
	var r [15]byte
	rand.Read(r[:]) //nolint:errcheck // never fails since Go 1.24
	return fmt.Sprintf("%s.%s@%s", strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(r[:])),
		time.Now().UTC().Format("20060102150405"), domain)
}

// maxReferences bounds the References header of mail we send; long threads
// keep their first and latest entries, as RFC 5322 suggests.
const maxReferences = 20

// threadReferences is the References list of an answer to a mail that had
// refs and the Message-ID parent.
func threadReferences(refs []string, parent string) []string {
	out := make([]string, 0, len(refs)+1)
	out = append(out, refs...)
	if parent != "" {
		out = append(out, parent)
	}
	if len(out) > maxReferences {
		out = append(out[:1], out[len(out)-maxReferences+1:]...)
	}
	return out
}

// storable returns a copy of in whose text PostgreSQL accepts: valid UTF-8
// without NUL bytes. Mail carries both; the raw source keeps the original.
func storable(in *InboundMail) *InboundMail {
	c := *in
	for _, p := range []*string{&c.SourceRef, &c.EnvelopeFrom, &c.EnvelopeTo, &c.MessageID, &c.InReplyTo,
		&c.From.Name, &c.From.Email, &c.Subject, &c.Text, &c.HTML, &c.Automatic} {
		*p = cleanText(*p)
	}
	c.References = make([]string, len(in.References))
	for i, r := range in.References {
		c.References[i] = cleanText(r)
	}
	c.ParseProblems = make([]string, len(in.ParseProblems))
	for i, p := range in.ParseProblems {
		c.ParseProblems[i] = cleanText(p)
	}
	c.Attachments = make([]InboundAttachment, len(in.Attachments))
	for i, a := range in.Attachments {
		a.Filename, a.ContentType, a.ContentID = cleanText(a.Filename), cleanText(a.ContentType), cleanText(a.ContentID)
		c.Attachments[i] = a
	}
	return &c
}

func cleanText(s string) string {
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
