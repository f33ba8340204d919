package tickets

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// ingestTx records mails in one transaction: their raw sources and files,
// one inbound-log row each, a ticket with its message, attachments, history
// and acknowledgement for each mail a department does not have yet, and a
// duplicate entry for each it has. Every statement covers all the mails, so
// the cost per mail falls as more arrive together.
func (s *Store) ingestTx(ctx context.Context, mails []*InboundMail) ([]IngestResult, error) {
	var res []IngestResult
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		res, err = ingest(ctx, tx, mails, s.limits)
		return err
	})
	return res, err
}

// batch is the mails of one transaction with what is derived from them.
type batch struct {
	mails     []*InboundMail
	keys      []string
	customers []string
	routes    []route
	res       []IngestResult
}

func ingest(ctx context.Context, tx pgx.Tx, mails []*InboundMail, limits Limits) ([]IngestResult, error) {
	b := &batch{
		mails:     make([]*InboundMail, len(mails)),
		keys:      make([]string, len(mails)),
		customers: make([]string, len(mails)),
		res:       make([]IngestResult, len(mails)),
	}
	for i, in := range mails {
		b.mails[i] = storable(in)
		b.keys[i] = dedupeKey(b.mails[i])
		b.customers[i] = customerAddress(b.mails[i])
	}
	if err := b.route(ctx, tx, limits); err != nil {
		return nil, err
	}
	// Every mail's raw source is kept, duplicates' and quarantined ones'
	// too; files only for the mails that become tickets or drafts.
	raws := make([]Content, len(b.mails))
	for i, in := range b.mails {
		raws[i] = in.Raw
	}
	if err := putBlobs(ctx, tx, raws); err != nil {
		return nil, err
	}
	firsts, err := b.claim(ctx, tx)
	if err != nil {
		return nil, err
	}
	var files []Content
	for _, i := range firsts {
		if d := b.res[i].Disposition; d == DispositionTicket || d == DispositionDraft {
			for _, a := range b.mails[i].Attachments {
				files = append(files, a.Content)
			}
		}
	}
	if err := putBlobs(ctx, tx, files); err != nil {
		return nil, err
	}
	if err := b.createTickets(ctx, tx, firsts); err != nil {
		return nil, err
	}
	if err := b.holdDrafts(ctx, tx, firsts, limits.DraftTTL); err != nil {
		return nil, err
	}
	if err := b.recordAnswers(ctx, tx, firsts); err != nil {
		return nil, err
	}
	if err := b.recordDuplicates(ctx, tx); err != nil {
		return nil, err
	}
	return b.res, nil
}

// putBlobs stores contents, each once. Every transaction takes its locks in
// one order (raw sources, then inbound claims, then files; within each,
// small contents by hash, then large ones by hash) so that concurrent ones
// cannot deadlock.
func putBlobs(ctx context.Context, tx pgx.Tx, contents []Content) error {
	seen := map[[32]byte]bool{}
	var small, large []Content
	for _, c := range contents {
		if seen[c.SHA256] {
			continue
		}
		seen[c.SHA256] = true
		if c.Size <= inlineBlobSize {
			small = append(small, c)
		} else {
			large = append(large, c)
		}
	}
	byHash := func(a, b Content) int { return bytes.Compare(a.SHA256[:], b.SHA256[:]) }
	slices.SortFunc(small, byHash)
	slices.SortFunc(large, byHash)
	if len(small) > 0 {
		sums := make([][]byte, len(small))
		sizes := make([]int64, len(small))
		var chunkSums, chunkData [][]byte
		var chunkSeqs []int32
		for i, c := range small {
			sums[i], sizes[i] = c.SHA256[:], c.Size
			b := make([]byte, c.Size)
			if n, err := c.Data.ReadAt(b, 0); n < len(b) {
				return fmt.Errorf("read content %x: %w", c.SHA256[:8], err)
			}
			seqs, data := splitChunks(b, 0)
			for range seqs {
				chunkSums = append(chunkSums, sums[i])
			}
			chunkSeqs, chunkData = append(chunkSeqs, seqs...), append(chunkData, data...)
		}
		_, err := tx.Exec(ctx, `
			WITH b AS (
				INSERT INTO blobs (sha256, size) SELECT * FROM unnest($1::bytea[], $2::bigint[])
				ON CONFLICT (sha256) DO NOTHING
				RETURNING sha256
			)
			INSERT INTO blob_chunks (sha256, seq, data)
			SELECT b.sha256, x.seq, x.data FROM b JOIN unnest($3::bytea[], $4::integer[], $5::bytea[]) AS x(sha256, seq, data) ON x.sha256 = b.sha256`,
			sums, sizes, chunkSums, chunkSeqs, chunkData)
		if err != nil {
			return fmt.Errorf("store %d small contents: %w", len(small), err)
		}
	}
	for _, c := range large {
		if err := putBlob(ctx, tx, c); err != nil {
			return err
		}
	}
	return nil
}

// claim writes one inbound-log row per mail. The first copy of a mail in a
// department claims it; later copies, in this batch or in an earlier
// transaction, are left with no row yet: recordDuplicates logs them. It
// returns the indexes of the mails that claimed.
func (b *batch) claim(ctx context.Context, tx pgx.Tx) ([]int, error) {
	n := len(b.mails)
	// Key order: two transactions claiming the same keys wait for each
	// other in the same order.
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(i, j int) int {
		return cmp.Or(cmp.Compare(b.mails[i].Department.ID, b.mails[j].Department.ID), strings.Compare(b.keys[i], b.keys[j]))
	})
	cols := b.inboundColumns(order)
	var disps, reasons, problems, spf, dkim, dmarc, authDetail []string
	var linked []int64
	for _, i := range order {
		r, in := b.routes[i], b.mails[i]
		b.res[i].Disposition, b.res[i].Reason = r.disposition, r.reason
		disps, reasons = append(disps, string(r.disposition)), append(reasons, r.reason)
		problems = append(problems, strings.Join(in.ParseProblems, "\n"))
		spf, dkim, dmarc, authDetail = append(spf, in.Auth.SPF), append(dkim, in.Auth.DKIM), append(dmarc, in.Auth.DMARC), append(authDetail, in.Auth.Detail)
		linked = append(linked, r.ticketID)
	}
	// A mail that will become a ticket draws the ticket's ID here, so that
	// its row is written once, complete.
	rows, err := tx.Query(ctx, `
		INSERT INTO inbound (source, source_ref, department_id, envelope_from, envelope_to, message_id, dedupe_key,
		                     from_address, subject, raw_sha256, raw_size, disposition, reason, parse_problems,
		                     auth_spf, auth_dkim, auth_dmarc, auth_detail, ticket_id)
		SELECT x.source, x.source_ref, x.department_id, x.envelope_from, x.envelope_to, x.message_id, x.dedupe_key,
		       x.from_address, x.subject, x.raw_sha256, x.raw_size, x.disposition, x.reason, x.parse_problems,
		       x.spf, x.dkim, x.dmarc, x.auth_detail,
		       CASE WHEN x.disposition = 'ticket' THEN nextval(pg_get_serial_sequence('tickets', 'id')) ELSE nullif(x.linked, 0) END
		FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[],
		            $8::text[], $9::text[], $10::bytea[], $11::bigint[], $12::text[], $13::text[], $14::text[],
		            $15::text[], $16::text[], $17::text[], $18::text[], $19::bigint[])
		     AS x(source, source_ref, department_id, envelope_from, envelope_to, message_id, dedupe_key,
		          from_address, subject, raw_sha256, raw_size, disposition, reason, parse_problems,
		          spf, dkim, dmarc, auth_detail, linked)
		ON CONFLICT (department_id, dedupe_key) WHERE disposition <> 'duplicate' DO NOTHING
		RETURNING id, department_id, dedupe_key, coalesce(ticket_id, 0)`,
		append(cols.args(), disps, reasons, problems, spf, dkim, dmarc, authDetail, linked)...)
	if err != nil {
		return nil, fmt.Errorf("record %d inbound mails: %w", n, err)
	}
	type deptKey struct {
		dept int64
		key  string
	}
	type claim struct{ inbound, ticket int64 }
	claimed := map[deptKey]claim{}
	var c claim
	var dept int64
	var key string
	_, err = pgx.ForEachRow(rows, []any{&c.inbound, &dept, &key, &c.ticket}, func() error {
		claimed[deptKey{dept, key}] = c
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("record %d inbound mails: %w", n, err)
	}
	var firsts []int
	for _, i := range order {
		k := deptKey{b.mails[i].Department.ID, b.keys[i]}
		if c, ok := claimed[k]; ok {
			b.res[i].InboundID, b.res[i].TicketID = c.inbound, c.ticket
			delete(claimed, k) // a later copy in this batch is a duplicate
			firsts = append(firsts, i)
		} else {
			b.res[i].Disposition, b.res[i].Reason = DispositionDuplicate, ""
		}
	}
	return firsts, nil
}

// createTickets opens a ticket for each claimed mail that has someone to
// answer.
func (b *batch) createTickets(ctx context.Context, tx pgx.Tx, claimed []int) error {
	var list []*newTicket
	var idx []int
	for _, i := range claimed {
		if b.res[i].Disposition != DispositionTicket {
			continue
		}
		in := b.mails[i]
		list = append(list, &newTicket{
			id: b.res[i].TicketID, inboundID: b.res[i].InboundID, department: in.Department, source: "email",
			priority: PriorityMedium, subject: in.Subject, customerName: in.From.Name, customerEmail: b.customers[i],
			text: in.Text, html: in.HTML, mailMessageID: in.MessageID, references: in.References,
			automatic: b.routes[i].noAck, attachments: in.Attachments,
		})
		idx = append(idx, i)
	}
	if err := createTickets(ctx, tx, list); err != nil {
		return err
	}
	for k, i := range idx {
		b.res[i].TrackingID, b.res[i].AckQueued = list[k].trackingID, list[k].automatic == ""
		if b.res[i].Reason == "" && list[k].automatic != "" {
			b.res[i].Reason = "not acknowledged: " + list[k].automatic
		}
	}
	return nil
}

// newTicket is a ticket to open, from mail or the web, with its first
// message, attachments (stored already) and history, and its
// acknowledgement unless automatic says why not.
type newTicket struct {
	id            int64 // drawn from the tickets' sequence beforehand
	inboundID     int64 // 0 unless it came by mail
	department    Department
	source        string // "email" or "web"
	priority      Priority
	subject       string
	customerName  string
	customerEmail string
	text, html    string
	mailMessageID string // the customer's mail, which the acknowledgement answers
	references    []string
	automatic     string
	attachments   []InboundAttachment

	trackingID string // set once the ticket exists
}

// createTickets opens tickets in one statement. A tracking ID drawn twice
// (in 30^10) makes that ticket try again with another.
func createTickets(ctx context.Context, tx pgx.Tx, list []*newTicket) error {
	todo := slices.Clone(list)
	for attempt := 0; len(todo) > 0; attempt++ {
		if attempt == 5 {
			return fmt.Errorf("create tickets: no ticket for %d of them after %d tries (department gone?): %w", len(todo), attempt, ErrInvalid)
		}
		var (
			ticketIDs, inboundIDs, depts                                                     []int64
			tracking, subjects, names, emails, texts, htmls, msgIDs, automatic, ackIDs, refs []string
			sources, priorities                                                              []string
			acks                                                                             []bool
			aTickets, aSizes                                                                 []int64
			aNames, aTypes, aCIDs                                                            []string
			aInline                                                                          []bool
			aSums                                                                            [][]byte
		)
		byTracking := make(map[string]*newTicket, len(todo))
		for _, nt := range todo {
			t := NewTrackingID()
			byTracking[t] = nt
			ticketIDs, inboundIDs, depts, tracking = append(ticketIDs, nt.id), append(inboundIDs, nt.inboundID), append(depts, nt.department.ID), append(tracking, t)
			subjects, names, emails = append(subjects, nt.subject), append(names, nt.customerName), append(emails, nt.customerEmail)
			texts, htmls, msgIDs = append(texts, nt.text), append(htmls, nt.html), append(msgIDs, nt.mailMessageID)
			sources, priorities = append(sources, nt.source), append(priorities, string(nt.priority))
			acks, automatic = append(acks, nt.automatic == ""), append(automatic, nt.automatic)
			ackIDs = append(ackIDs, newMessageID(nt.department.Address))
			refs = append(refs, strings.Join(threadReferences(nt.references, nt.mailMessageID), " "))
			for _, a := range nt.attachments {
				aTickets, aSizes = append(aTickets, nt.id), append(aSizes, a.Content.Size)
				aNames, aTypes, aCIDs = append(aNames, a.Filename), append(aTypes, a.ContentType), append(aCIDs, a.ContentID)
				aInline, aSums = append(aInline, a.Inline), append(aSums, a.Content.SHA256[:])
			}
		}
		rows, err := tx.Query(ctx, `
			WITH x AS (
				SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
				                     $8::text[], $9::text[], $10::boolean[], $11::text[], $12::text[], $13::text[], $21::bigint[],
				                     $22::text[], $23::text[])
				  AS x(inbound_id, department_id, tracking_id, subject, customer_name, customer_email, body_text,
				       body_html, mail_message_id, ack, automatic, ack_message_id, refs, ticket_id, source, priority)
			), t AS (
				INSERT INTO tickets (id, tracking_id, department_id, subject, customer_name, customer_email, priority, locale, source)
				SELECT x.ticket_id, x.tracking_id, d.id, x.subject, x.customer_name, x.customer_email, x.priority, d.locale, x.source
				FROM x JOIN departments d ON d.id = x.department_id
				ON CONFLICT (tracking_id) DO NOTHING
				RETURNING id
			), nt AS (
				SELECT x.* FROM t JOIN x ON x.ticket_id = t.id
			), m AS (
				INSERT INTO messages (ticket_id, author_kind, author_name, author_email, body_text, body_html, inbound_id, mail_message_id)
				SELECT ticket_id, 'customer', customer_name, customer_email, body_text, body_html, nullif(inbound_id, 0), mail_message_id FROM nt
				RETURNING id, ticket_id
			), a AS (
				INSERT INTO attachments (message_id, ticket_id, filename, content_type, content_id, inline, size, sha256)
				SELECT m.id, m.ticket_id, y.filename, y.content_type, y.content_id, y.inline, y.size, y.sha256
				FROM unnest($14::bigint[], $15::text[], $16::text[], $17::text[], $18::boolean[], $19::bigint[], $20::bytea[])
				     WITH ORDINALITY AS y(ticket_id, filename, content_type, content_id, inline, size, sha256, ord)
				JOIN m USING (ticket_id)
				ORDER BY y.ord
			), h AS (
				INSERT INTO ticket_history (ticket_id, actor, action, new_value)
				SELECT ticket_id, 'customer:' || customer_email, 'created', source FROM nt
				UNION ALL
				SELECT ticket_id, 'system', 'acknowledgement_suppressed', automatic FROM nt WHERE NOT ack
			), o AS (
				INSERT INTO outbox (kind, ticket_id, recipient, message_id, in_reply_to, reference_ids)
				SELECT 'ack', ticket_id, customer_email, ack_message_id, mail_message_id, string_to_array(refs, ' ') FROM nt WHERE ack
			), n AS (
				-- The agents of the department who asked to hear of new tickets.
				INSERT INTO outbox (kind, ticket_id, agent_id, recipient, message_id)
				SELECT 'agent_new_ticket', nt.ticket_id, ag.id, ag.email,
				       replace(gen_random_uuid()::text, '-', '') || '.staff@' || split_part(d.address, '@', 2)
				FROM nt JOIN departments d ON d.id = nt.department_id
				JOIN agent_departments ad ON ad.department_id = nt.department_id
				JOIN agents ag ON ag.id = ad.agent_id AND ag.notify_new AND ag.disabled_at IS NULL
			)
			SELECT ticket_id, tracking_id FROM nt`,
			inboundIDs, depts, tracking, subjects, names, emails, texts, htmls, msgIDs, acks, automatic, ackIDs, refs,
			aTickets, aNames, aTypes, aCIDs, aInline, aSizes, aSums, ticketIDs, sources, priorities)
		if err != nil {
			return fmt.Errorf("create %d tickets: %w", len(todo), err)
		}
		var ticketID int64
		var t string
		_, err = pgx.ForEachRow(rows, []any{&ticketID, &t}, func() error {
			byTracking[t].trackingID = t
			return nil
		})
		if err != nil {
			return fmt.Errorf("create %d tickets: %w", len(todo), err)
		}
		todo = slices.DeleteFunc(todo, func(nt *newTicket) bool { return nt.trackingID != "" })
	}
	return nil
}

// recordDuplicates logs each copy of a mail the department already had,
// against the ticket of the first copy.
func (b *batch) recordDuplicates(ctx context.Context, tx pgx.Tx) error {
	var dups []int
	for i, r := range b.res {
		if r.Disposition == DispositionDuplicate {
			dups = append(dups, i)
		}
	}
	if len(dups) == 0 {
		return nil
	}
	cols := b.inboundColumns(dups)
	rows, err := tx.Query(ctx, `
		WITH d AS (
			INSERT INTO inbound (source, source_ref, department_id, envelope_from, envelope_to, message_id, dedupe_key,
			                     from_address, subject, raw_sha256, raw_size, disposition, reason, ticket_id)
			SELECT x.source, x.source_ref, x.department_id, x.envelope_from, x.envelope_to, x.message_id, x.dedupe_key,
			       x.from_address, x.subject, x.raw_sha256, x.raw_size, 'duplicate', 'same mail as inbound #' || o.id, o.ticket_id
			FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[],
			            $8::text[], $9::text[], $10::bytea[], $11::bigint[])
			     AS x(source, source_ref, department_id, envelope_from, envelope_to, message_id, dedupe_key,
			          from_address, subject, raw_sha256, raw_size)
			JOIN inbound o ON o.department_id = x.department_id AND o.dedupe_key = x.dedupe_key AND o.disposition <> 'duplicate'
			RETURNING id, department_id, dedupe_key, ticket_id, reason
		)
		SELECT d.id, d.department_id, d.dedupe_key, d.ticket_id, d.reason, coalesce(t.tracking_id, '')
		FROM d LEFT JOIN tickets t ON t.id = d.ticket_id`,
		cols.args()...)
	if err != nil {
		return fmt.Errorf("record %d duplicate mails: %w", len(dups), err)
	}
	// Copies of one mail are alike: hand the rows out in turn.
	type row struct {
		id       int64
		ticketID *int64
		reason   string
		tracking string
	}
	byKey := map[string][]row{}
	var r row
	var dept int64
	var key string
	_, err = pgx.ForEachRow(rows, []any{&r.id, &dept, &key, &r.ticketID, &r.reason, &r.tracking}, func() error {
		k := fmt.Sprint(dept, " ", key)
		byKey[k] = append(byKey[k], r)
		return nil
	})
	if err != nil {
		return fmt.Errorf("record %d duplicate mails: %w", len(dups), err)
	}
	for _, i := range dups {
		k := fmt.Sprint(b.mails[i].Department.ID, " ", b.keys[i])
		if len(byKey[k]) == 0 {
			return fmt.Errorf("record duplicate mail %q: its first copy is gone", b.keys[i])
		}
		r := byKey[k][0]
		byKey[k] = byKey[k][1:]
		b.res[i].InboundID, b.res[i].Reason, b.res[i].TrackingID = r.id, r.reason, r.tracking
		if r.ticketID != nil {
			b.res[i].TicketID = *r.ticketID
		}
	}
	return nil
}

// inboundColumns are the inbound-log columns every row has, one array per
// column, for the mails at idx in that order.
type inboundColumns struct {
	sources, refs, envFrom, envTo, msgIDs, keys, from, subjects []string
	depts, sizes                                                []int64
	raws                                                        [][]byte
}

func (b *batch) inboundColumns(idx []int) inboundColumns {
	var c inboundColumns
	for _, i := range idx {
		in := b.mails[i]
		c.sources, c.refs, c.depts = append(c.sources, in.Source), append(c.refs, in.SourceRef), append(c.depts, in.Department.ID)
		c.envFrom, c.envTo, c.msgIDs = append(c.envFrom, in.EnvelopeFrom), append(c.envTo, in.EnvelopeTo), append(c.msgIDs, in.MessageID)
		c.keys, c.from, c.subjects = append(c.keys, b.keys[i]), append(c.from, in.From.Email), append(c.subjects, in.Subject)
		c.raws, c.sizes = append(c.raws, in.Raw.SHA256[:]), append(c.sizes, in.Raw.Size)
	}
	return c
}

// args are the arrays in the order of the inbound table's columns $1–$11:
// source, source_ref, department_id, envelope_from, envelope_to, message_id,
// dedupe_key, from_address, subject, raw_sha256, raw_size.
func (c inboundColumns) args() []any {
	return []any{c.sources, c.refs, c.depts, c.envFrom, c.envTo, c.msgIDs, c.keys, c.from, c.subjects, c.raws, c.sizes}
}
