package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/helpdeskgw/helpdesk/tickets"
)

// seedTicket is what the load generator needs to know of a ticket.
type seedTicket struct {
	id         int64
	trackingID string
	email      string
}

// seedCounts are the rows the seeding wrote, for the report.
type seedCounts struct {
	tickets, messages, attachments, history int64
	databaseBytes                           int64
	took                                    time.Duration
}

// A ticket's thread: the customer's mail or form, the agent's answer, and
// for some the customer's follow-up.
var (
	firstNames = []string{"ana", "luis", "marta", "jorge", "lucia", "pablo", "carmen", "javier", "sofia", "diego",
		"john", "mary", "peter", "linda", "james", "susan", "robert", "karen", "david", "emma"}
	lastNames = []string{"garcia", "martinez", "lopez", "sanchez", "perez", "gomez", "fernandez", "ruiz", "diaz", "moreno",
		"smith", "johnson", "brown", "taylor", "wilson", "davies", "evans", "thomas", "roberts", "walker"}
	subjects = []string{"No puedo iniciar sesión", "Error al descargar la factura", "Cambio de dirección de envío",
		"El pedido no ha llegado", "Cobro duplicado en la tarjeta", "La aplicación se cierra al abrirla",
		"Invoice cannot be downloaded", "Password reset mail never arrives", "Refund for a cancelled order",
		"Two-factor code not accepted", "Wrong VAT number on invoice", "Cannot attach files to my order"}
	words = strings.Fields(`hola buenos días desde ayer cuando intento entrar en la cuenta aparece un error y no puedo
		continuar he probado con otro navegador y también borrando la caché pero sigue igual adjunto una captura
		del mensaje gracias por la ayuda hello since yesterday when I try to open the invoice page it stays blank
		I have tried another browser and cleared the cache but nothing changes please find attached a screenshot
		of the message thank you for your help the order number is in the subject and the payment went through
		twice on my card statement could you check it and refund the second charge as soon as possible`)
	attachmentNames = []struct{ name, contentType string }{
		{"captura.png", "image/png"}, {"screenshot.png", "image/png"}, {"factura.pdf", "application/pdf"},
		{"invoice.pdf", "application/pdf"}, {"registro.txt", "text/plain"}, {"photo.jpg", "image/jpeg"},
	}
	statuses = []tickets.Status{tickets.StatusNew, tickets.StatusWaitingReply, tickets.StatusWaitingReply,
		tickets.StatusReplied, tickets.StatusReplied, tickets.StatusReplied, tickets.StatusInProgress,
		tickets.StatusOnHold, tickets.StatusResolved, tickets.StatusResolved}
	priorities = []tickets.Priority{tickets.PriorityLow, tickets.PriorityMedium, tickets.PriorityMedium,
		tickets.PriorityMedium, tickets.PriorityHigh, tickets.PriorityCritical}
)

// text is a message of about n bytes, in lines.
func text(r *rand.Rand, n int) string {
	var b strings.Builder
	b.Grow(n + 16)
	for line := 0; b.Len() < n; line++ {
		if line > 0 {
			b.WriteString(".\n")
		}
		for i, w := 0, 8+r.IntN(12); i < w && b.Len() < n; i++ {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(words[r.IntN(len(words))])
		}
	}
	return b.String()
}

// blobChunk is the size of the stored chunks of a file, as the store
// writes them.
const blobChunk = 256 << 10

// seed fills the database with n tickets through COPY: three departments,
// each ticket with 2–3 messages (the mailed ones with their sanitized HTML
// too), a third of them with files (drawn from 64 stored blobs), and their
// history; then VACUUM ANALYZE and a checkpoint, so that the measurement
// starts from settled tables.
func seed(ctx context.Context, databaseURL string, n int) ([]seedTicket, seedCounts, error) {
	start := time.Now()
	var counts seedCounts
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return nil, counts, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	r := rand.New(rand.NewPCG(1, 2))

	var deptIDs []int64
	var deptLocales []string
	rows, err := conn.Query(ctx, `INSERT INTO departments (slug, name, address, locale) VALUES
		('soporte', 'Soporte Técnico', 'soporte@example.com', 'es'),
		('facturacion', 'Facturación', 'facturacion@example.com', 'es'),
		('support', 'Customer Support', 'support@example.com', 'en')
		RETURNING id, locale`)
	if err != nil {
		return nil, counts, fmt.Errorf("departments: %w", err)
	}
	var id int64
	var locale string
	if _, err := pgx.ForEachRow(rows, []any{&id, &locale}, func() error {
		deptIDs, deptLocales = append(deptIDs, id), append(deptLocales, locale)
		return nil
	}); err != nil {
		return nil, counts, fmt.Errorf("departments: %w", err)
	}

	// The files: 64 blobs of 8 KB to 512 KB.
	type blob struct {
		sum  []byte
		size int64
	}
	blobs := make([]blob, 64)
	for i := range blobs {
		data := make([]byte, 8<<10+r.IntN(504<<10))
		for j := range data {
			data[j] = byte(r.Uint32())
		}
		sum := sha256.Sum256(data)
		blobs[i] = blob{sum: sum[:], size: int64(len(data))}
		if _, err := conn.Exec(ctx, `INSERT INTO blobs (sha256, size) VALUES ($1, $2)`, sum[:], len(data)); err != nil {
			return nil, counts, fmt.Errorf("blob: %w", err)
		}
		for seq := 0; seq*blobChunk < len(data); seq++ {
			chunk := data[seq*blobChunk : min(len(data), (seq+1)*blobChunk)]
			if _, err := conn.Exec(ctx, `INSERT INTO blob_chunks (sha256, seq, data) VALUES ($1, $2, $3)`, sum[:], seq, chunk); err != nil {
				return nil, counts, fmt.Errorf("blob chunk: %w", err)
			}
		}
	}

	// The tickets, with their IDs drawn as the store draws them.
	type ticketPlan struct {
		seedTicket
		dept      int
		name      string
		source    string
		messages  int
		createdAt time.Time
	}
	now := time.Now()
	plans := make([]ticketPlan, n)
	seen := make(map[string]bool, n)
	customers := max(1, n*2/5) // two or three tickets each
	for i := range plans {
		p := &plans[i]
		p.id = int64(i + 1)
		for p.trackingID == "" || seen[p.trackingID] {
			p.trackingID = tickets.NewTrackingID()
		}
		seen[p.trackingID] = true
		c := r.IntN(customers)
		first, last := firstNames[c%len(firstNames)], lastNames[(c/len(firstNames))%len(lastNames)]
		p.email = fmt.Sprintf("%s.%s%d@example.org", first, last, c)
		p.name = strings.ToUpper(first[:1]) + first[1:] + " " + strings.ToUpper(last[:1]) + last[1:]
		p.dept = r.IntN(len(deptIDs))
		p.source = "email"
		if r.IntN(10) < 4 {
			p.source = "web"
		}
		p.messages = 2 + r.IntN(2)
		p.createdAt = now.Add(-time.Duration(r.Int64N(int64(2 * 365 * 24 * time.Hour))))
	}
	_, err = conn.CopyFrom(ctx, pgx.Identifier{"tickets"},
		[]string{"id", "tracking_id", "department_id", "subject", "customer_name", "customer_email", "status", "priority",
			"locale", "source", "created_at", "updated_at"},
		pgx.CopyFromSlice(n, func(i int) ([]any, error) {
			p := &plans[i]
			return []any{p.id, p.trackingID, deptIDs[p.dept], subjects[r.IntN(len(subjects))], p.name, p.email,
				string(statuses[r.IntN(len(statuses))]), string(priorities[r.IntN(len(priorities))]), deptLocales[p.dept],
				p.source, p.createdAt, p.createdAt.Add(time.Duration(p.messages) * 20 * time.Hour)}, nil
		}))
	if err != nil {
		return nil, counts, fmt.Errorf("copy tickets: %w", err)
	}
	if _, err := conn.Exec(ctx, `SELECT setval(pg_get_serial_sequence('tickets', 'id'), $1)`, n); err != nil {
		return nil, counts, fmt.Errorf("ticket sequence: %w", err)
	}

	// The messages, in thread order.
	type messageRef struct{ ticket, seq int }
	var refs []messageRef
	for i, p := range plans {
		for seq := 1; seq <= p.messages; seq++ {
			refs = append(refs, messageRef{i, seq})
		}
	}
	_, err = conn.CopyFrom(ctx, pgx.Identifier{"messages"},
		[]string{"ticket_id", "author_kind", "author_name", "author_email", "body_text", "body_html", "created_at"},
		pgx.CopyFromSlice(len(refs), func(i int) ([]any, error) {
			ref := refs[i]
			p := &plans[ref.ticket]
			at := p.createdAt.Add(time.Duration(ref.seq-1) * 20 * time.Hour)
			if ref.seq == 2 {
				body := text(r, 200+r.IntN(700))
				return []any{p.id, "agent", "Soporte", "", body, "", at}, nil
			}
			body := text(r, 150+r.IntN(1050))
			html := ""
			if p.source == "email" {
				html = "<div><p>" + strings.ReplaceAll(body, "\n", "</p><p>") + "</p></div>"
			}
			return []any{p.id, "customer", p.name, p.email, body, html, at}, nil
		}))
	if err != nil {
		return nil, counts, fmt.Errorf("copy messages: %w", err)
	}

	// The files: a third of the tickets have one or two on their first
	// message, and some follow-ups one more.
	if _, err := conn.Exec(ctx, `CREATE TEMPORARY TABLE seed_attachments (
		ticket_id bigint, seq int, filename text, content_type text, size bigint, sha256 bytea)`); err != nil {
		return nil, counts, fmt.Errorf("attachments: %w", err)
	}
	var atts [][]any
	for _, p := range plans {
		files := 0
		if r.IntN(3) == 0 {
			files = 1 + r.IntN(2)
		}
		for range files {
			a, b := attachmentNames[r.IntN(len(attachmentNames))], blobs[r.IntN(len(blobs))]
			atts = append(atts, []any{p.id, 1, a.name, a.contentType, b.size, b.sum})
		}
		if p.messages == 3 && r.IntN(5) == 0 {
			a, b := attachmentNames[r.IntN(len(attachmentNames))], blobs[r.IntN(len(blobs))]
			atts = append(atts, []any{p.id, 3, a.name, a.contentType, b.size, b.sum})
		}
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"seed_attachments"},
		[]string{"ticket_id", "seq", "filename", "content_type", "size", "sha256"}, pgx.CopyFromRows(atts)); err != nil {
		return nil, counts, fmt.Errorf("copy attachments: %w", err)
	}
	for _, stmt := range []string{
		`INSERT INTO attachments (message_id, ticket_id, filename, content_type, size, sha256)
		 SELECT m.id, s.ticket_id, s.filename, s.content_type, s.size, s.sha256
		 FROM seed_attachments s
		 JOIN (SELECT id, ticket_id, row_number() OVER (PARTITION BY ticket_id ORDER BY id) AS seq FROM messages) m
		   ON m.ticket_id = s.ticket_id AND m.seq = s.seq
		 ORDER BY s.ticket_id, s.seq`,
		// The history: each ticket's creation, each later message, and
		// the status the ticket is in.
		`INSERT INTO ticket_history (ticket_id, at, actor, action, old_value, new_value)
		 SELECT id, created_at, 'customer:' || customer_email, 'created', '', source FROM tickets
		 UNION ALL
		 SELECT m.ticket_id, m.created_at, CASE m.author_kind WHEN 'agent' THEN 'agent:1' ELSE 'customer:' || m.author_email END,
		        'message', '', m.id::text
		 FROM messages m WHERE m.id > (SELECT min(id) FROM messages f WHERE f.ticket_id = m.ticket_id)
		 UNION ALL
		 SELECT id, updated_at, 'agent:1', 'status', 'new', status FROM tickets WHERE status <> 'new'
		 ORDER BY 1, 2`,
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return nil, counts, fmt.Errorf("seed: %w", err)
		}
	}
	for _, stmt := range []string{"VACUUM (ANALYZE)", "CHECKPOINT"} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return nil, counts, fmt.Errorf("%s: %w", stmt, err)
		}
	}
	err = conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM tickets), (SELECT count(*) FROM messages),
		(SELECT count(*) FROM attachments), (SELECT count(*) FROM ticket_history), pg_database_size(current_database())`).
		Scan(&counts.tickets, &counts.messages, &counts.attachments, &counts.history, &counts.databaseBytes)
	if err != nil {
		return nil, counts, fmt.Errorf("count seeded rows: %w", err)
	}
	counts.took = time.Since(start)
	out := make([]seedTicket, n)
	for i, p := range plans {
		out[i] = p.seedTicket
	}
	return out, counts, nil
}
