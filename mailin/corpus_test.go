package mailin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helpdeskgw/helpdesk/tickets"
)

// problemsWant says what a mail's parse problems must be.
type problemsWant int

const (
	noProblems   problemsWant = iota // the mail reads cleanly
	someProblems                     // what could not be read is recorded
	anyProblems                      // either is right
)

// corpusWant is what must become of one mail of testdata/corpus.
type corpusWant struct {
	disposition tickets.Disposition
	ack         bool
	// files are patterns for the files kept (of the ticket, or of the held
	// reply), each matched against "name (content type)", in order. Unless
	// minFiles or maxFiles is set, exactly these files are kept.
	files              []string
	minFiles, maxFiles int
	maxFileBytes       int64
	problems           problemsWant
	problem            string // a substring of one problem
	// text must appear in the stored text (of a held reply: its new text),
	// notText must not; fullText must appear in a held reply's full text.
	text, notText, fullText []string
	html, notHTML           []string
	subject                 string // the stored subject, when set
	customer, customerName  string // the ticket's owner, when set
	reason                  string // a substring of the recorded reason
	// bounced: the ticket owner's address is recorded as bouncing, and the
	// acknowledgement as returned (checked for bounces only).
	bounced bool
}

// Aspects of an outcome, named so that a case can say which one the code is
// known to get wrong.
const (
	aspectAck      = "acknowledgement"
	aspectProblems = "parse problems"
	aspectText     = "stored text"
	aspectCustomer = "ticket owner"
	aspectReturned = "returned acknowledgement"
)

// corpusDefect marks what the code is known to get wrong about a mail: the
// case is skipped with the reason while those aspects stay wrong, and fails
// once they are right, so that the mark is removed.
type corpusDefect struct {
	aspects []string
	reason  string
}

type corpusCase struct {
	file string
	// answers: the mail answers the acknowledgement of a ticket opened
	// first; its placeholders name that ticket.
	answers bool
	// smtpFrom, when set, is the envelope sender of a delivery over SMTP;
	// otherwise the mail is taken from a mailbox (its Return-Path is the
	// envelope sender).
	smtpFrom string
	// again: delivered a second time, the mail is a duplicate.
	again  bool
	want   corpusWant
	defect corpusDefect
}

// corpus maps each mail of testdata/corpus to what must become of it.
var corpus = []corpusCase{
	{file: "01-plain-crlf.eml", want: corpusWant{disposition: tickets.DispositionTicket, ack: true,
		text: []string{`El mensaje dice "contraseña incorrecta".`}, subject: "No puedo acceder a mi cuenta",
		customer: "ana.garcia@example.org", customerName: "Ana García"}},
	{file: "02-plain-lf-only.eml", want: corpusWant{disposition: tickets.DispositionTicket, ack: true,
		text: []string{"¿El plan anual incluye soporte telefónico?"}, subject: "Consulta sobre el plan anual"}},
	{file: "03-missing-closing-boundary.eml", want: corpusWant{disposition: tickets.DispositionTicket, ack: true,
		files: []string{`^contrato\.pdf \(application/pdf\)$`}, text: []string{"Adjunto el contrato firmado."}, problems: someProblems}},
	{file: "04-boundary-mismatch.eml", want: corpusWant{disposition: tickets.DispositionTicket, ack: true,
		text: []string{"Me han cobrado dos veces el pedido 5521."}, problems: someProblems, problem: "boundary never appears"}},
	{file: "05-nested-missing-inner-close.eml", want: corpusWant{disposition: tickets.DispositionTicket, ack: true,
		files: []string{`^captura\.png \(image/png\)$`}, text: []string{"Os envío la captura del error 0x80070005."}, problems: someProblems}},
	{file: "06-no-from-header.eml", want: corpusWant{disposition: tickets.DispositionTicket, ack: true,
		customer: "pablo.mora@example.org", text: []string{"no pone la cabecera From"}, problems: someProblems, problem: "From"}},
	{file: "07-no-date-no-message-id.eml", again: true, want: corpusWant{disposition: tickets.DispositionTicket, ack: true,
		text: []string{"no pone fecha ni Message-ID"}}},
	{file: "08-no-sender-at-all.eml", want: corpusWant{disposition: tickets.DispositionQuarantined,
		problems: someProblems, reason: "sender"}},
	{file: "09-utf8-raw-headers.eml", want: corpusWant{disposition: tickets.DispositionTicket, ack: true,
		subject: "Factura nº 12 — ¿por qué el importe es 0 €?", customerName: "José Núñez",
		text: []string{"El importe de la factura nº 12 aparece como 0 €."}}},
	{file: "10-latin1-raw-headers.eml", want: corpusWant{disposition: tickets.DispositionTicket, ack: true,
		subject: "Información sobre el envío", customerName: "Íñigo Muñoz", text: []string{"El envío llegó dañado y la caja está abierta."}}},
	{file: "11-charset-unknown.eml", want: corpusWant{disposition: tickets.DispositionTicket, ack: true,
		text: []string{"Hola, el producto no funciona. Compré un café-molinillo."}, problems: someProblems, problem: "x-unknown"},
	},
	{file: "12-charset-wrong-label.eml", want: corpusWant{disposition: tickets.DispositionTicket, ack: true,
		subject: "Datos de facturación", customerName: "Tomás Peña",
		text: []string{"Información útil: el señor Peña pagó 30 € el año pasado."}, problems: anyProblems}},
	{file: "13-charset-iso-2022-jp.eml", want: corpusWant{disposition: tickets.DispositionTicket, ack: true,
		subject: "お問い合わせ", text: []string{"注文番号 12345 の商品が届きません。", "よろしくお願いします。"}}},
	{file: "14-charset-windows-1252.eml", want: corpusWant{disposition: tickets.DispositionTicket, ack: true,
		subject: "“Urgente” – pedido", customerName: "Sofía Romero",
		text: []string{"Me dijeron “lo enviamos mañana” – pero… nada. Pagué 45 €."}}},
	{file: "15-charset-gb18030.eml", want: corpusWant{disposition: tickets.DispositionTicket, ack: true,
		subject: "订单问题", text: []string{"您好，我的订单还没有收到。价格 € 𠀀"}}},
	{file: "16-forwarded-rfc822.eml", want: corpusWant{disposition: tickets.DispositionTicket, ack: true,
		files: []string{`\.eml \(message/rfc822\)$`}, text: []string{"Te reenvío el correo del cliente."}}},
	{file: "17-forwarded-3-deep.eml", want: corpusWant{disposition: tickets.DispositionTicket, ack: true,
		files: []string{`\.eml \(message/rfc822\)$`}, text: []string{"Reenvío la cadena completa."}}},
	{file: "18-tnef-winmail.eml", want: corpusWant{disposition: tickets.DispositionTicket, ack: true,
		files: []string{`^winmail\.dat \(application/ms-tnef\)$`}, text: []string{"Adjunto el presupuesto."}}},
	{file: "19-thousand-attachments.eml", want: corpusWant{disposition: tickets.DispositionTicket, ack: true,
		minFiles: 490, maxFiles: maxParts, text: []string{"Mil ficheros adjuntos."},
		problems: someProblems, problem: fmt.Sprintf("more than %d parts", maxParts)}},
	{file: "20-huge-header.eml", want: corpusWant{disposition: tickets.DispositionTicket, ack: true,
		subject: "Cabecera enorme", customer: "nuria.soler@example.org", text: []string{"El cuerpo tras diez mil líneas de cabecera."}}},
	{file: "21-zip-bomb.eml", want: corpusWant{disposition: tickets.DispositionTicket, ack: true,
		files: []string{`^facturas\.zip \(application/zip\)$`}, maxFileBytes: 100 << 10, text: []string{"Adjunto las facturas comprimidas."}}},
	{file: "22-html-bomb.eml", want: corpusWant{disposition: tickets.DispositionTicket, ack: true,
		text: []string{"Texto al fondo del abismo"}, problems: anyProblems},
	},
	{file: "23-subject-crlf-injection.eml", want: corpusWant{disposition: tickets.DispositionTicket, ack: true,
		subject: "Factura pendiente Bcc: victim@example.net <script>", customer: "ana.inject@example.org", text: []string{"Texto normal."}}},
	{file: "24-filename-crlf-injection.eml", want: corpusWant{disposition: tickets.DispositionTicket, ack: true,
		files: []string{`hola\.txt \(text/plain\)$`}}},
	{file: "25-html-script.eml", want: corpusWant{disposition: tickets.DispositionTicket, ack: true,
		text: []string{"Necesito ayuda con mi pedido 9911."}, notText: []string{"alert", "xss"},
		html: []string{"Necesito ayuda con mi pedido 9911."}, notHTML: []string{"alert", "xss", "evil.example.net", "x.swf"}}},
	{file: "26-html-alternative-hostile.eml", want: corpusWant{disposition: tickets.DispositionTicket, ack: true,
		files: []string{`\(image/png\)$`}, text: []string{"Adjunto logo y enlace al pedido 42."},
		html: []string{`href="https://example.org/pedido/42"`, `src="cid:logo26@example.org"`},
		// The data: SVG image stays: in an <img> an SVG runs no script.
		notHTML: []string{"tracker.example.net", `"/logout"`, "//tracker", "alert", "srcdoc"}}},
	{file: "27-filename-traversal-unix.eml", want: corpusWant{disposition: tickets.DispositionTicket, ack: true,
		files: []string{`^passwd \(text/plain\)$`}}},
	{file: "28-filename-traversal-windows.eml", want: corpusWant{disposition: tickets.DispositionTicket, ack: true,
		files: []string{`^win\.ini \(text/plain\)$`}}},
	{file: "29-filename-nul.eml", want: corpusWant{disposition: tickets.DispositionTicket, ack: true,
		files: []string{`^invoice\.pdf\.exe \(application/octet-stream\)$`}}},
	{file: "30-filename-500-chars.eml", want: corpusWant{disposition: tickets.DispositionTicket, ack: true,
		files: []string{`^informe-trimestral-de-ventas-[a-z-]+\.pdf \(application/pdf\)$`}}},
	{file: "31-filename-rtl-override.eml", want: corpusWant{disposition: tickets.DispositionTicket, ack: true,
		files: []string{`^invoicetxt\.exe \(application/octet-stream\)$`}}},
	{file: "32-base64-garbage.eml", want: corpusWant{disposition: tickets.DispositionTicket, ack: true,
		files: []string{`^extracto\.pdf \(application/pdf\)$`}, text: []string{"El cargo duplicado es de 19,99 € y se repite cada mes."},
		problems: anyProblems}},
	{file: "33-qp-broken.eml", want: corpusWant{disposition: tickets.DispositionTicket, ack: true, problems: anyProblems,
		text: []string{"El precio es = 100 € y el descuento =ZZ 5%.", "Línea partida con salto suave que continúa aquí."}},
	},
	{file: "34-headers-only.eml", want: corpusWant{disposition: tickets.DispositionTicket, ack: true,
		subject: "Solo cabecera", customer: "beatriz.campos@example.org"}},
	{file: "35-empty.eml", want: corpusWant{disposition: tickets.DispositionQuarantined, problems: someProblems, reason: "sender"}},
	{file: "36-duplicate-message-id.eml", again: true, want: corpusWant{disposition: tickets.DispositionTicket, ack: true,
		text: []string{"Lo envío dos veces por si no llegó."}}},
	// Another sender's mail reusing that Message-ID is no copy of it.
	{file: "37-same-message-id-other-sender.eml", want: corpusWant{disposition: tickets.DispositionTicket, ack: true,
		customer: "lucia.herrera@example.org", text: []string{"reutiliza identificadores"}}},
	{file: "38-dsn-unknown-mail.eml", want: corpusWant{disposition: tickets.DispositionQuarantined, reason: "delivery report"}},
	{file: "39-out-of-office-not-ours.eml", want: corpusWant{disposition: tickets.DispositionTicket,
		text: []string{"Estaré fuera hasta el 7 de diciembre."}}},
	{file: "40-list-newsletter.eml", want: corpusWant{disposition: tickets.DispositionTicket, text: []string{"Las mejores ofertas."}}},
	{file: "41-loop-own-address.eml", want: corpusWant{disposition: tickets.DispositionTicket, customer: "support@example.com"}},
	{file: "42-loop-own-address-smtp.eml", smtpFrom: "support@example.com", want: corpusWant{disposition: tickets.DispositionTicket,
		customer: "support@example.com"}},
	{file: "43-precedence-junk.eml", want: corpusWant{disposition: tickets.DispositionTicket}},
	{file: "44-x-autoreply.eml", want: corpusWant{disposition: tickets.DispositionTicket}},
	{file: "45-mailer-daemon-text-bounce.eml", want: corpusWant{disposition: tickets.DispositionTicket}},
	// The ticket belongs to the real address, whatever the display name says.
	{file: "46-impersonating-display-name.eml", want: corpusWant{disposition: tickets.DispositionTicket, ack: true,
		customer: "evil@example.net"}},
	{file: "47-address-list-unparseable.eml", want: corpusWant{disposition: tickets.DispositionTicket, ack: true,
		customer: "ana.lopez@example.org", problems: someProblems, problem: "From"},
	},
	{file: "48-reply-gmail.eml", answers: true, want: corpusWant{disposition: tickets.DispositionDraft,
		text: []string{"Adjunto el número de pedido: 4471-B. Sigue sin funcionar."}, notText: []string{"Texto citado", "escribió"},
		fullText: []string{"Texto citado que no debe aparecer."}}},
	{file: "49-reply-outlook-subject-tag.eml", answers: true, want: corpusWant{disposition: tickets.DispositionDraft,
		files: []string{`^image001\.png \(image/png\)$`}, text: []string{"Les envío la captura del error."},
		notText: []string{"Texto citado de Outlook", "Enviado:"}, fullText: []string{"Texto citado de Outlook."}}},
	{file: "50-reply-out-of-office.eml", answers: true, want: corpusWant{disposition: tickets.DispositionAutoReply}},
	{file: "51-bounce-postfix-dsn.eml", answers: true, want: corpusWant{disposition: tickets.DispositionBounce, bounced: true}},
	{file: "52-bounce-exchange-ndr.eml", answers: true, want: corpusWant{disposition: tickets.DispositionBounce, bounced: true}},
	{file: "53-bounce-delayed.eml", answers: true, want: corpusWant{disposition: tickets.DispositionBounce}},
	// Held, and the notice goes to the ticket's owner, not to the sender.
	{file: "54-reply-forged-sender.eml", answers: true, want: corpusWant{disposition: tickets.DispositionDraft,
		text: []string{"Cambien el correo de la cuenta"}}},
	{file: "55-tag-unknown-ticket.eml", want: corpusWant{disposition: tickets.DispositionTicket, ack: true}},
	{file: "56-in-reply-to-unknown.eml", want: corpusWant{disposition: tickets.DispositionTicket, ack: true}},
	{file: "57-mbox-from-line.eml", want: corpusWant{disposition: tickets.DispositionTicket, ack: true,
		customer: "ana.mbox@example.org", subject: "Exportado de un mbox", text: []string{"Guardado desde un fichero mbox."},
		problems: someProblems}},
	{file: "58-mixed-line-ends.eml", want: corpusWant{disposition: tickets.DispositionTicket, ack: true,
		text: []string{"Primera línea con CRLF.\nSegunda con LF.\n", "Tercera con CR sola.", "Cuarta."}}},
	{file: "59-multipart-no-boundary.eml", want: corpusWant{disposition: tickets.DispositionTicket, ack: true,
		text: []string{"Texto de un multipart sin boundary."}, problems: someProblems, problem: "without a boundary"}},
	{file: "60-unknown-transfer-encoding.eml", want: corpusWant{disposition: tickets.DispositionTicket, ack: true,
		text: []string{"Texto legible pese a la codificación desconocida."}, problems: someProblems, problem: "x-uuencode"}},
	{file: "61-auto-reply-subject-tag.eml", answers: true, want: corpusWant{disposition: tickets.DispositionAutoReply}},
	{file: "62-reply-tag-lower-case.eml", answers: true, want: corpusWant{disposition: tickets.DispositionDraft,
		text: []string{"ya funciona, gracias."}}},
	{file: "63-multipart-40-deep.eml", want: corpusWant{disposition: tickets.DispositionTicket, ack: true,
		problems: someProblems, problem: "nested deeper"}},
	{file: "64-from-helpdesk-sender.eml", want: corpusWant{disposition: tickets.DispositionTicket, customer: "noreply@example.com"}},
	{file: "65-impersonation-unquoted.eml", want: corpusWant{disposition: tickets.DispositionTicket, ack: true,
		customer: "evil@example.net", problems: anyProblems},
	},
	{file: "66-giant-message-id.eml", again: true, want: corpusWant{disposition: tickets.DispositionTicket, ack: true,
		text: []string{"Identificador larguisimo."}}},
}

// corpusSite is a store with one department and two receivers: one that
// takes mail as the mailbox pollers hand it over, one as the SMTP listener
// does (which has looked the recipient up).
type corpusSite struct {
	pool       *pgxpool.Pool
	store      *tickets.Store
	mailbox    *Receiver
	smtp       *Receiver
	department tickets.Department
}

func newCorpusSite(t *testing.T) *corpusSite {
	t.Helper()
	db.Reset(t)
	pool := db.Pool(t)
	// Limits are not what the corpus tests: every mail gets its own chance.
	store := tickets.New(tickets.Options{Pool: pool, Limits: tickets.Limits{
		TicketsPerSender: 1000, AcksPerAddress: 1000, RepliesPerTicket: 1000, RepliesPerSender: 1000}})
	d, err := store.AddDepartment(context.Background(), tickets.Department{
		Slug: "soporte", Name: "Soporte Técnico", Address: "support@example.com", Locale: "es"})
	if err != nil {
		t.Fatal(err)
	}
	opts := ReceiverOptions{Store: store, TempDir: t.TempDir(), OwnAddresses: []string{"noreply@example.com"}}
	return &corpusSite{pool: pool, store: store, mailbox: NewReceiver(opts), smtp: NewReceiver(opts), department: d}
}

func (s *corpusSite) deliver(t *testing.T, c corpusCase, raw []byte) tickets.IngestResult {
	t.Helper()
	ctx := context.Background()
	env := Envelope{Source: "imap", SourceRef: "corpus " + c.file, To: []string{s.department.Address},
		Departments: []tickets.Department{s.department}}
	if c.smtpFrom != "" {
		d, ok, err := s.smtp.Department(ctx, s.department.Address)
		if err != nil || !ok {
			t.Fatalf("department of %s: %v %v", s.department.Address, ok, err)
		}
		env = Envelope{Source: "smtp", SourceRef: "127.0.0.1:40000", From: c.smtpFrom, To: []string{d.Address},
			Departments: []tickets.Department{d}, ClientIP: net.IPv4(127, 0, 0, 1), Helo: "mx.example.org"}
	}
	rcv := s.mailbox
	if c.smtpFrom != "" {
		rcv = s.smtp
	}
	res, err := rcv.Deliver(ctx, env, tickets.BytesContent(raw))
	if err != nil {
		t.Fatalf("deliver %s: %v", c.file, err)
	}
	if len(res) != 1 {
		t.Fatalf("deliver %s: %d results, want 1", c.file, len(res))
	}
	return res[0]
}

// ticketAnswered is the ticket an answering mail of the corpus answers.
type ticketAnswered struct {
	id                           int64
	customer, tracking, ackMsgID string
}

// openTicket opens the ticket a mail of the corpus answers, from its own
// customer, and returns it with the Message-ID of its acknowledgement.
func (s *corpusSite) openTicket(t *testing.T, name string) ticketAnswered {
	t.Helper()
	customer := "cliente-" + strings.TrimSuffix(name, ".eml") + "@example.org"
	raw := plainMail("Cliente <"+customer+">", "support@example.com", "base-"+name+"@example.org",
		"Problema con la factura", "La factura de noviembre está mal.")
	res := s.deliver(t, corpusCase{file: name}, raw)
	if res.Disposition != tickets.DispositionTicket || !res.AckQueued {
		t.Fatalf("ticket to answer: %+v", res)
	}
	out, err := s.store.OutboxForTicket(context.Background(), res.TicketID)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 || out[0].Kind != tickets.KindAck || out[0].MessageID == "" {
		t.Fatalf("ticket to answer has no acknowledgement: %+v", out)
	}
	return ticketAnswered{id: res.TicketID, customer: customer, tracking: res.TrackingID, ackMsgID: out[0].MessageID}
}

func (a ticketAnswered) fill(raw []byte) []byte {
	return []byte(strings.NewReplacer("{{CUSTOMER}}", a.customer, "{{ACK_MESSAGE_ID}}", a.ackMsgID,
		"{{TRACKING_ID}}", a.tracking, "{{tracking_id}}", strings.ToLower(a.tracking)).Replace(string(raw)))
}

func (s *corpusSite) row(t *testing.T, query string, args []any, dest ...any) bool {
	t.Helper()
	err := s.pool.QueryRow(context.Background(), query, args...).Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return false
	}
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return true
}

func (s *corpusSite) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	s.row(t, query, args, &n)
	return n
}

// storedFile is a file kept of a mail, as the staff are offered it.
type storedFile struct {
	name, contentType string
	size              int64
}

func (s *corpusSite) files(t *testing.T, query string, id int64) []storedFile {
	t.Helper()
	rows, err := s.pool.Query(context.Background(), query, id)
	if err != nil {
		t.Fatal(err)
	}
	var out []storedFile
	var f storedFile
	if _, err := pgx.ForEachRow(rows, []any{&f.name, &f.contentType, &f.size}, func() error {
		out = append(out, f)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// hostileHTML is what sanitized HTML never holds: script, handlers, frames,
// forms, styles that run code, and pages that redirect or rebase links.
var hostileHTML = regexp.MustCompile(`(?i)<\s*(script|iframe|frame|object|embed|form|meta|base|style|link|applet)\b|` +
	`\son[a-z]+\s*=|javascript:|vbscript:|expression\s*\(`)

func TestCorpus(t *testing.T) {
	site := newCorpusSite(t)
	seen := map[string]bool{}
	for _, c := range corpus {
		seen[c.file] = true
		t.Run(strings.TrimSuffix(c.file, ".eml"), func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", "corpus", c.file))
			if err != nil {
				t.Fatal(err)
			}
			var answered ticketAnswered
			if c.answers {
				answered = site.openTicket(t, c.file)
				raw = answered.fill(raw)
			} else if strings.Contains(string(raw), "{{") {
				t.Fatalf("%s has placeholders but answers no ticket", c.file)
			}
			res := site.deliver(t, c, raw)
			v := &verdict{t: t, defect: c.defect}
			site.check(t, v, c.want, res, answered)
			if c.again {
				again := site.deliver(t, c, raw)
				if again.Disposition != tickets.DispositionDuplicate || again.AckQueued || again.TicketID != 0 && again.TicketID != res.TicketID {
					t.Errorf("delivered again: %+v, want a duplicate of ticket %d without acknowledgement", again, res.TicketID)
				}
				if n := site.count(t, `SELECT count(*) FROM tickets WHERE id <> $1 AND subject = (SELECT subject FROM tickets WHERE id = $1)`, res.TicketID); n != 0 {
					t.Errorf("delivered again: %d more tickets of the same subject", n)
				}
			}
			v.finish()
		})
	}
	// Every mail of the corpus has its expectation.
	entries, err := os.ReadDir(filepath.Join("testdata", "corpus"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".eml") {
			n++
			if !seen[e.Name()] {
				t.Errorf("testdata/corpus/%s has no expectation in the corpus table", e.Name())
			}
		}
	}
	if n < 45 {
		t.Errorf("corpus has %d mails, want at least 45", n)
	}
}

// check compares what became of a mail with what must, and checks what holds
// for every mail: one-line subjects and names, safe file names and HTML,
// acknowledgements and notices to the ticket's owner only.
func (s *corpusSite) check(t *testing.T, v *verdict, want corpusWant, res tickets.IngestResult, answered ticketAnswered) {
	t.Helper()
	if res.Disposition != want.disposition {
		t.Fatalf("disposition %q (reason %q), want %q", res.Disposition, res.Reason, want.disposition)
	}
	if res.AckQueued != want.ack {
		v.fail(aspectAck, "acknowledgement queued: %v, want %v (reason %q)", res.AckQueued, want.ack, res.Reason)
	}
	if want.reason != "" && !strings.Contains(res.Reason, want.reason) {
		t.Errorf("reason %q, want one mentioning %q", res.Reason, want.reason)
	}

	var problems, inboundSubject string
	var inboundTicket *int64
	if !s.row(t, `SELECT parse_problems, subject, ticket_id FROM inbound WHERE id = $1`, []any{res.InboundID},
		&problems, &inboundSubject, &inboundTicket) {
		t.Fatalf("no inbound row %d", res.InboundID)
	}
	checkOneLine(t, "inbound subject", inboundSubject)
	switch {
	case want.problems == noProblems && problems != "":
		v.fail(aspectProblems, "parse problems %q, want none", problems)
	case want.problems == someProblems && problems == "":
		v.fail(aspectProblems, "no parse problem recorded, want one")
	}
	if want.problem != "" && !strings.Contains(problems, want.problem) {
		v.fail(aspectProblems, "parse problems %q, want one mentioning %q", problems, want.problem)
	}

	var text, html, fullText, subject string
	var files []storedFile
	switch res.Disposition {
	case tickets.DispositionTicket:
		var customer, customerName string
		if !s.row(t, `SELECT t.subject, t.customer_email, t.customer_name, m.body_text, m.body_html
			FROM tickets t JOIN messages m ON m.ticket_id = t.id WHERE t.id = $1 AND m.inbound_id = $2`,
			[]any{res.TicketID, res.InboundID}, &subject, &customer, &customerName, &text, &html) {
			t.Fatalf("ticket %d has no message of inbound mail %d", res.TicketID, res.InboundID)
		}
		checkOneLine(t, "customer name", customerName)
		checkOneLine(t, "customer address", customer)
		if want.customer != "" && customer != want.customer {
			v.fail(aspectCustomer, "ticket belongs to %q, want %q", customer, want.customer)
		}
		if want.customerName != "" && customerName != want.customerName {
			t.Errorf("customer name %q, want %q", customerName, want.customerName)
		}
		var acks []string
		rows, err := s.pool.Query(context.Background(), `SELECT recipient FROM outbox WHERE ticket_id = $1 AND kind = 'ack'`, res.TicketID)
		if err != nil {
			t.Fatal(err)
		}
		if acks, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			t.Fatal(err)
		}
		if want.ack && (len(acks) != 1 || acks[0] != customer) {
			v.fail(aspectAck, "acknowledgements to %q, want one to %q", acks, customer)
		}
		if !want.ack && len(acks) != 0 {
			v.fail(aspectAck, "acknowledgements to %q, want none", acks)
		}
		files = s.files(t, `SELECT filename, content_type, size FROM attachments WHERE ticket_id = $1 ORDER BY id`, res.TicketID)
	case tickets.DispositionDraft:
		if res.DraftID == 0 || !res.NoticeQueued {
			t.Fatalf("draft %d, notice queued %v: want a held draft and its notice", res.DraftID, res.NoticeQueued)
		}
		var draftTicket int64
		if !s.row(t, `SELECT ticket_id, subject, body_text, full_text FROM drafts WHERE id = $1`, []any{res.DraftID},
			&draftTicket, &subject, &text, &fullText) {
			t.Fatalf("no draft %d", res.DraftID)
		}
		if draftTicket != answered.id {
			t.Errorf("draft of ticket %d, want %d", draftTicket, answered.id)
		}
		var notified []string
		rows, err := s.pool.Query(context.Background(), `SELECT recipient FROM outbox WHERE draft_id = $1 AND kind = 'draft_notice'`, res.DraftID)
		if err != nil {
			t.Fatal(err)
		}
		if notified, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			t.Fatal(err)
		}
		if len(notified) != 1 || notified[0] != answered.customer {
			t.Errorf("draft notices to %q, want one to the ticket's owner %q", notified, answered.customer)
		}
		files = s.files(t, `SELECT filename, content_type, size FROM draft_attachments WHERE draft_id = $1 ORDER BY position`, res.DraftID)
	case tickets.DispositionAutoReply, tickets.DispositionBounce:
		if n := s.count(t, `SELECT count(*) FROM tickets WHERE id <> $1 AND customer_email = $2`, answered.id, answered.customer); n != 0 {
			t.Errorf("%d more tickets for %s, want none", n, answered.customer)
		}
	}
	if answered.id != 0 && (inboundTicket == nil || *inboundTicket != answered.id) {
		t.Errorf("inbound mail linked to ticket %v, want %d", inboundTicket, answered.id)
	}
	if res.Disposition == tickets.DispositionBounce {
		bouncing := s.count(t, `SELECT count(*) FROM address_bounces WHERE address = $1`, answered.customer) == 1
		returned := s.count(t, `SELECT count(*) FROM outbox WHERE ticket_id = $1 AND kind = 'ack' AND bounced_at IS NOT NULL`, answered.id) == 1
		if bouncing != want.bounced {
			t.Errorf("address %s recorded as bouncing: %v, want %v", answered.customer, bouncing, want.bounced)
		}
		if returned != want.bounced {
			v.fail(aspectReturned, "acknowledgement marked returned: %v, want %v", returned, want.bounced)
		}
	}

	checkOneLine(t, "subject", subject)
	if want.subject != "" && subject != want.subject {
		t.Errorf("subject %q, want %q", subject, want.subject)
	}
	if want.subject != "" && inboundSubject != want.subject {
		t.Errorf("inbound log subject %q, want %q", inboundSubject, want.subject)
	}
	for _, w := range want.text {
		if !strings.Contains(text, w) {
			v.fail(aspectText, "stored text lacks %q:\n%s", w, shortened(text))
		}
	}
	for _, w := range want.notText {
		if strings.Contains(text, w) {
			v.fail(aspectText, "stored text holds %q:\n%s", w, shortened(text))
		}
	}
	for _, w := range want.fullText {
		if !strings.Contains(fullText, w) {
			v.fail(aspectText, "full text of the reply lacks %q:\n%s", w, shortened(fullText))
		}
	}
	if m := hostileHTML.FindString(html); m != "" {
		t.Errorf("stored HTML holds %q:\n%s", m, shortened(html))
	}
	for _, w := range want.html {
		if !strings.Contains(html, w) {
			t.Errorf("stored HTML lacks %q:\n%s", w, shortened(html))
		}
	}
	for _, w := range want.notHTML {
		if strings.Contains(html, w) {
			t.Errorf("stored HTML holds %q:\n%s", w, shortened(html))
		}
	}
	checkFiles(t, want, files)
}

// verdict collects what a case gets wrong: failures of an aspect the case
// marks as a known defect are kept for the skip message, others fail.
type verdict struct {
	t      *testing.T
	defect corpusDefect
	missed []string
}

func (v *verdict) fail(aspect, format string, args ...any) {
	v.t.Helper()
	msg := aspect + ": " + fmt.Sprintf(format, args...)
	if slices.Contains(v.defect.aspects, aspect) {
		v.missed = append(v.missed, msg)
		return
	}
	v.t.Error(msg)
}

// finish skips a case whose known defect showed, when nothing else failed,
// and fails one whose defect no longer shows.
func (v *verdict) finish() {
	v.t.Helper()
	switch {
	case len(v.defect.aspects) == 0 || v.t.Failed():
	case len(v.missed) == 0:
		v.t.Errorf("marked as a known defect (%s) but all of %q is right now: remove the mark", v.defect.reason, v.defect.aspects)
	default:
		v.t.Skipf("known defect: %s\n%s", v.defect.reason, strings.Join(v.missed, "\n"))
	}
}

func checkFiles(t *testing.T, want corpusWant, files []storedFile) {
	t.Helper()
	for _, f := range files {
		if !safeFilename(f.name) {
			t.Errorf("file name %q is not safe to offer", f.name)
		}
		if want.maxFileBytes > 0 && f.size > want.maxFileBytes {
			t.Errorf("file %q of %d bytes, want at most %d", f.name, f.size, want.maxFileBytes)
		}
	}
	if want.minFiles > 0 || want.maxFiles > 0 {
		if len(files) < want.minFiles || len(files) > want.maxFiles {
			t.Errorf("%d files kept, want %d to %d", len(files), want.minFiles, want.maxFiles)
		}
		return
	}
	if len(files) != len(want.files) {
		t.Errorf("%d files kept (%v), want %d", len(files), files, len(want.files))
		return
	}
	for i, f := range files {
		if got := f.name + " (" + f.contentType + ")"; !regexp.MustCompile(want.files[i]).MatchString(got) {
			t.Errorf("file %d is %q, want it to match %s", i, got, want.files[i])
		}
	}
}

// safeFilename reports whether a file name can be offered for download as
// it is: no directories, no way up, no control or format characters (which
// hide or reorder what a person reads), not empty, at most 255 characters.
func safeFilename(name string) bool {
	if name == "" || strings.ContainsAny(name, `/\`) || strings.Contains(name, "..") || utf8.RuneCountInString(name) > 255 {
		return false
	}
	for _, r := range name {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError {
			return false
		}
	}
	return true
}

// checkOneLine fails when a value shown as one line (and written into
// headers of our mail) holds line breaks or other control characters.
func checkOneLine(t *testing.T, what, s string) {
	t.Helper()
	if strings.IndexFunc(s, func(r rune) bool { return unicode.IsControl(r) || r == '\u2028' || r == '\u2029' }) >= 0 {
		t.Errorf("%s %q holds a line break or control character", what, s)
	}
}

func shortened(s string) string {
	if len(s) > 600 {
		return s[:600] + "…"
	}
	return s
}
