package mailin

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-message/textproto"

	"github.com/helpdeskgw/helpdesk/tickets"
)

// The bytes of the files attached in the fixtures.
var (
	pngBytes, _ = base64.StdEncoding.DecodeString("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
	pdfBytes    = []byte("%PDF-1.4\n%äüöß\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n")
)

const (
	pngSHA256 = "6b7fa434f92a8b80aab02d9bf1a12e49ffcae424e4013a1c4f68b67e3d2bbcd0" // sha256sum of pngBytes
	pdfSHA256 = "b77d294eb4c4821e8acce72892f1f3b9b95398c22e99fe869ba4873401e22302" // sha256sum of pdfBytes
)

type wantAttachment struct {
	Filename    string
	ContentType string
	ContentID   string
	Inline      bool
	Data        string
	SHA256      string // hex; checked when set (the hash of Data is always checked)
}

type wantMail struct {
	Subject     string
	From        tickets.Address
	MessageID   string
	Text        string
	HTML        string
	Attachments []wantAttachment
	// Problems holds one substring per expected problem, in order.
	Problems []string
}

var fullAttachments = []wantAttachment{
	{Filename: "foto.png", ContentType: "image/png", ContentID: "foto1@example.org", Inline: true, Data: string(pngBytes), SHA256: pngSHA256},
	{Filename: "factura.pdf", ContentType: "application/pdf", Data: string(pdfBytes), SHA256: pdfSHA256},
}

// fixtures maps each mail in testdata to what Parse must read of it.
var fixtures = map[string]wantMail{
	"full.eml": {
		Subject:     "Problema con el pedido 1234",
		From:        tickets.Address{Name: "Ana María López", Email: "ana@example.org"},
		MessageID:   "full-1@mail.example.org",
		Text:        "Hola,\n\nel pedido 1234 llegó roto. Adjunto la factura y una foto.\n\nGracias,\nAna",
		HTML:        `<p>Hola,</p><p>el pedido 1234 llegó <b>roto</b>.</p><img src="cid:foto1@example.org" alt="foto">`,
		Attachments: fullAttachments,
	},
	"full-lf.eml": {
		Subject:     "Problema con el pedido 1234",
		From:        tickets.Address{Name: "Ana María López", Email: "ana@example.org"},
		MessageID:   "full-lf@mail.example.org",
		Text:        "Hola,\n\nel pedido 1234 llegó roto. Adjunto la factura y una foto.\n\nGracias,\nAna",
		HTML:        `<p>Hola,</p><p>el pedido 1234 llegó <b>roto</b>.</p><img src="cid:foto1@example.org" alt="foto">`,
		Attachments: fullAttachments,
	},
	"latin1-qp.eml": {
		Subject:   "Facturación de septiembre",
		From:      tickets.Address{Name: "José Muñoz", Email: "jose@example.org"},
		MessageID: "latin1-qp@example.org",
		Text:      "Buenos días:\n\nLa factura de septiembre está duplicada. ¿Podrían revisarla? Es una línea larga partida con un salto suave.\n\nUn saludo,\nJosé\n",
	},
	"latin1-8bit.eml": {
		Subject:   "¿Dónde está mi pedido?",
		From:      tickets.Address{Name: "María Ibáñez", Email: "maria@example.org"},
		MessageID: "latin1-8bit@example.org",
		Text:      "“Hola”, el pedido costó 20 € – y no llegó. It’s late…\n",
	},
	"latin1-cp1252-quotes.eml": {
		Subject: "“Urgente”",
		From:    tickets.Address{Email: "jose@example.org"},
		Text:    "“Gracias” por todo – José\n",
	},
	"filenames.eml": {
		Subject:   "Nombres de fichero",
		From:      tickets.Address{Email: "ana@example.org"},
		MessageID: "filenames@example.org",
		Text:      "Ver adjuntos.",
		Attachments: []wantAttachment{
			{Filename: "informe año.pdf", ContentType: "application/pdf", Data: "uno"},
			{Filename: "€ presupuesto ñ.xlsx", ContentType: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", Data: "dos"},
			{Filename: "Informe de la reunión final.docx", ContentType: "application/vnd.openxmlformats-officedocument.wordprocessingml.document", Data: "tres"},
			{Filename: "Ñandú código.pdf", ContentType: "application/pdf", Data: "cuatro"},
			{Filename: "Presupuesto año 2026.pdf", ContentType: "application/octet-stream", Data: "cinco"},
			{Filename: "foto del paquete.jpg", ContentType: "image/jpeg", Data: "seis"},
			{Filename: "passwd", ContentType: "text/plain", Data: "siete"},
			{Filename: "part-9.pdf", ContentType: "application/pdf", Data: "ocho"},
			{Filename: "part-10.jpg", ContentType: "image/jpeg", ContentID: "sin-nombre@example.org", Inline: true, Data: "nueve"},
			{Filename: "part-11.html", ContentType: "text/html", Data: "<p>diez</p>"},
			{Filename: "part-12.eml", ContentType: "message/rfc822", Data: "From: x@example.org\r\nSubject: reenviado\r\n\r\nonce"},
		},
	},
	"missing-close-boundary.eml": {
		Subject:     "Cortado",
		From:        tickets.Address{Email: "ana@example.org"},
		MessageID:   "cut@example.org",
		Text:        "Primera parte.",
		Attachments: []wantAttachment{{Filename: "factura.pdf", ContentType: "application/pdf", Data: string(pdfBytes), SHA256: pdfSHA256}},
		Problems:    []string{"part 2 (application/pdf): unexpected EOF; kept what could be read", "part 3: multipart: NextPart: EOF"},
	},
	"multipart-no-boundary.eml": {
		Subject:  "Sin frontera",
		From:     tickets.Address{Email: "ana@example.org"},
		Text:     "Este correo dice ser multipart pero no tiene frontera.\n",
		Problems: []string{"part 1 is multipart/mixed without a boundary; read as text"},
	},
	"boundary-never-appears.eml": {
		Subject:  "Frontera ausente",
		From:     tickets.Address{Email: "ana@example.org"},
		Text:     "El texto sigue aquí aunque la frontera no aparece.\n",
		Problems: []string{"part 1 is a multipart whose boundary never appears; read as text"},
	},
	"unknown-cte.eml": {
		Subject:     "Codificacion rara",
		From:        tickets.Address{Email: "ana@example.org"},
		Text:        "Texto tal cual =C3=A1 SG9sYQ==",
		Attachments: []wantAttachment{{Filename: "datos.bin", ContentType: "application/octet-stream", Data: "begin 644 datos.bin\r\nend"}},
		Problems:    []string{`part 1 (text/plain) has the unknown Content-Transfer-Encoding "x-rara"`, `part 2 (application/octet-stream) has the unknown Content-Transfer-Encoding "x-uuencode"`},
	},
	"unknown-cte-single.eml": {
		Subject:  "Una parte",
		From:     tickets.Address{Email: "ana@example.org"},
		Text:     "Texto de una sola parte.\n",
		Problems: []string{`unknown Content-Transfer-Encoding "9bit"; kept as it is`},
	},
	"bad-qp.eml": {
		Subject: "QP roto",
		From:    tickets.Address{Email: "ana@example.org"},
		Text:    "Precio =ZZ 20 euros = y más texto\nsegunda línea y un = al final que une, = y ",
	},
	"bad-base64.eml": {
		Subject:     "base64 roto",
		From:        tickets.Address{Email: "ana@example.org"},
		Text:        "Hola, mundo",
		Attachments: []wantAttachment{{Filename: "factura.pdf", ContentType: "application/pdf", Data: string(pdfBytes), SHA256: pdfSHA256}},
	},
	"bad-header-line.eml": {
		Subject:   "Sigue leyendo",
		From:      tickets.Address{Email: "ana@example.org"},
		MessageID: "bad-header@example.org",
		Text:      "Cuerpo.\n",
		Problems:  []string{`line "Esta linea no tiene dos puntos" is not a header field; skipped`},
	},
	"no-blank-line.eml": {
		Subject:  "Sin separacion",
		From:     tickets.Address{Email: "ana@example.org"},
		Text:     "Hola, esto es el cuerpo\nsin línea en blanco.\n",
		Problems: []string{`ends without a blank line before "Hola, esto es el cuerpo"`},
	},
	"mbox-from-line.eml": {
		Subject:   "Exportado de un mbox",
		From:      tickets.Address{Email: "ana@example.org"},
		MessageID: "mbox-1@example.org",
		Text:      "Cuerpo.\n",
		Problems:  []string{`line "From ana@example.org Mon Nov 23 10:00:00 2026" is not a header field`},
	},
	"no-from.eml": {
		Subject:  "Sin remitente",
		Text:     "Hola.\n",
		Problems: []string{"no From: header"},
	},
	"from-unbalanced.eml": {
		Subject: "Remitente roto",
		From:    tickets.Address{Name: "Juan Pérez", Email: "juan@example.com"},
		Text:    "Hola.\n",
	},
	"from-broken-quote.eml": {
		Subject: "Comillas rotas",
		From:    tickets.Address{Name: "broken", Email: "x@y.com"},
		Text:    "Hola.\n",
	},
	// PostgreSQL refuses NUL in text: it must not get that far.
	"nul-bytes.eml": {
		Subject:   "Nulos",
		From:      tickets.Address{Email: "ana@example.org"},
		MessageID: "nul@example.org",
		Text:      "Holamundo\n",
	},
	"empty.eml": {
		Problems: []string{"no From: header"},
	},
	"headers-only.eml": {
		Subject: "Solo cabeceras",
		From:    tickets.Address{Email: "ana@example.org"},
	},
	"ids.eml": {
		Subject:   "Re: [#ABC-DEF-GHIJ] Ticket recibido",
		From:      tickets.Address{Email: "ana@example.org"},
		MessageID: "reply-1@mail.example.org",
		Text:      "Gracias.\n",
	},
}

func TestParseFixtures(t *testing.T) {
	files, err := filepath.Glob("testdata/*.eml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if _, ok := fixtures[filepath.Base(f)]; !ok && filepath.Base(f) != "html-only.eml" {
			t.Errorf("%s has no expected result in fixtures", f)
		}
	}
	for name, want := range fixtures {
		t.Run(name, func(t *testing.T) {
			p := parseFile(t, filepath.Join("testdata", name))
			checkMail(t, p, want)
		})
	}
}

func checkMail(t *testing.T, p *Parsed, want wantMail) {
	t.Helper()
	if p.Subject != want.Subject {
		t.Errorf("Subject = %q, want %q", p.Subject, want.Subject)
	}
	if p.From != want.From {
		t.Errorf("From = %+v, want %+v", p.From, want.From)
	}
	if p.MessageID != want.MessageID {
		t.Errorf("MessageID = %q, want %q", p.MessageID, want.MessageID)
	}
	if p.Text != want.Text {
		t.Errorf("Text = %q\n want %q", p.Text, want.Text)
	}
	if p.HTML != want.HTML {
		t.Errorf("HTML = %q\n want %q", p.HTML, want.HTML)
	}
	checkProblems(t, p, want.Problems...)
	if len(p.Attachments) != len(want.Attachments) {
		t.Errorf("%d attachments, want %d", len(p.Attachments), len(want.Attachments))
	}
	for i, a := range p.Attachments {
		if i >= len(want.Attachments) {
			t.Errorf("extra attachment %q (%s)", a.Filename, a.ContentType)
			continue
		}
		w := want.Attachments[i]
		if a.Filename != w.Filename || a.ContentType != w.ContentType || a.ContentID != w.ContentID || a.Inline != w.Inline {
			t.Errorf("attachment %d = {%q %q cid %q inline %v}, want {%q %q cid %q inline %v}", i,
				a.Filename, a.ContentType, a.ContentID, a.Inline, w.Filename, w.ContentType, w.ContentID, w.Inline)
		}
		data := checkContent(t, a.Content)
		if string(data) != w.Data {
			t.Errorf("attachment %d (%s) holds %q, want %q", i, a.Filename, shortenString(string(data)), shortenString(w.Data))
		}
		if sum := sha256.Sum256([]byte(w.Data)); a.Content.SHA256 != sum {
			t.Errorf("attachment %d (%s) SHA256 = %x, want %x", i, a.Filename, a.Content.SHA256, sum)
		}
		if w.SHA256 != "" && hex.EncodeToString(a.Content.SHA256[:]) != w.SHA256 {
			t.Errorf("attachment %d (%s) SHA256 = %x, want %s", i, a.Filename, a.Content.SHA256, w.SHA256)
		}
	}
}

// checkProblems checks that p has exactly the problems given, each as a
// substring, in order.
func checkProblems(t *testing.T, p *Parsed, want ...string) {
	t.Helper()
	ok := len(p.Problems) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = strings.Contains(p.Problems[i], want[i])
	}
	if !ok {
		t.Errorf("Problems = %q\n want ones containing %q", p.Problems, want)
	}
}

// checkContent reads c back and checks its size and hash.
func checkContent(t *testing.T, c tickets.Content) []byte {
	t.Helper()
	if c.Data == nil {
		t.Errorf("content without Data")
		return nil
	}
	data, err := io.ReadAll(io.NewSectionReader(c.Data, 0, c.Size))
	if err != nil {
		t.Errorf("read content back: %v", err)
	}
	if int64(len(data)) != c.Size {
		t.Errorf("content has %d bytes readable, Size says %d", len(data), c.Size)
	}
	if more, _ := c.Data.ReadAt(make([]byte, 1), c.Size); more != 0 {
		t.Errorf("content has more bytes than its Size %d", c.Size)
	}
	if sha256.Sum256(data) != c.SHA256 {
		t.Errorf("content SHA256 %x does not match its bytes", c.SHA256)
	}
	return data
}

func parseFile(t *testing.T, name string) *Parsed {
	t.Helper()
	raw, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return parseBytes(t, raw)
}

func parseBytes(t testing.TB, raw []byte) *Parsed {
	t.Helper()
	p, err := Parse(bytes.NewReader(raw), t.TempDir())
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

func parseString(t testing.TB, raw string) *Parsed {
	t.Helper()
	return parseBytes(t, []byte(raw))
}

func shortenString(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// crlf turns a mail written with "\n" into one with "\r\n", as it arrives.
func crlf(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
}

func TestParseFullMailEnvelope(t *testing.T) {
	p := parseFile(t, "testdata/full.eml")
	if want := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC); !p.Date.Equal(want) {
		t.Errorf("Date = %v, want %v", p.Date, want)
	}
	if got := p.Header.Get("To"); got != "Soporte <support@example.com>" {
		t.Errorf("Header To = %q", got)
	}
	// Content read twice gives the same bytes: the readers are ReaderAt.
	for _, a := range p.Attachments {
		first, second := checkContent(t, a.Content), checkContent(t, a.Content)
		if !bytes.Equal(first, second) {
			t.Errorf("%s reads differently the second time", a.Filename)
		}
	}
}

func TestParseHostileHTML(t *testing.T) {
	p := parseFile(t, "testdata/html-only.eml")
	checkProblems(t, p)
	if len(p.Attachments) != 0 {
		t.Errorf("%d attachments, want none", len(p.Attachments))
	}
	for _, bad := range []string{
		"<script", "alert", "onload", "onerror", "steal", "javascript", "JaVaScRiPt",
		"<iframe", "<style", "<form", "<input", "<object", "<embed", "<svg", "<link", "<meta", "<base", "<video", "poster",
		"tracker.example", "evil.example", "/logout", "srcset", "background", "style=",
	} {
		if strings.Contains(p.HTML, bad) {
			t.Errorf("sanitized HTML keeps %q:\n%s", bad, p.HTML)
		}
	}
	for _, good := range []string{
		`<img src="cid:logo@shop.example" alt="logo">`,
		`<a href="https://shop.example/track?id=1234" rel="nofollow noreferrer noopener" target="_blank">Seguir envío</a>`,
		`<img src="#remote-image-blocked" width="1" height="1">`,
		"<h1>Pedido enviado</h1>",
		"<p>Tu pedido <b>1234</b> está en camino.</p>",
		"Fin del mensaje",
	} {
		if !strings.Contains(p.HTML, good) {
			t.Errorf("sanitized HTML lacks %q:\n%s", good, p.HTML)
		}
	}
	// The text comes from the HTML, when it is the only body.
	for _, good := range []string{"Pedido enviado", "Tu pedido *1234* está en camino.", "Seguir envío ( https://shop.example/track?id=1234 )", "Fin del mensaje", "celda"} {
		if !strings.Contains(p.Text, good) {
			t.Errorf("Text lacks %q:\n%s", good, p.Text)
		}
	}
	for _, bad := range []string{"alert", "background", "steal", "<"} {
		if strings.Contains(p.Text, bad) {
			t.Errorf("Text keeps %q:\n%s", bad, p.Text)
		}
	}
}

func TestSanitizeHTML(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"script", `<p>a</p><script>alert(1)</script>`, `<p>a</p>`},
		{"event handler", `<img src="cid:x@y" onerror="alert(1)">`, `<img src="cid:x@y">`},
		{"javascript link", `<a href="javascript:alert(1)">x</a>`, `x`},
		{"link gets noreferrer", `<a href="https://example.org/">x</a>`, `<a href="https://example.org/" rel="nofollow noreferrer noopener" target="_blank">x</a>`},
		{"mailto link", `<a href="mailto:ana@example.org">x</a>`, `<a href="mailto:ana@example.org" rel="nofollow noreferrer">x</a>`},
		{"iframe", `<iframe src="https://evil.example/"></iframe>b`, `b`},
		{"style element", `<style>p{color:red}</style>b`, `b`},
		{"https image", `<img src="https://tracker.example/x.gif">`, `<img src="#remote-image-blocked">`},
		{"http image", `<img src="HTTP://tracker.example/x.gif">`, `<img src="#remote-image-blocked">`},
		{"scheme-relative image", `<img src="//tracker.example/x.gif">`, ``}, // dropped: relative URLs are not allowed at all
		{"relative image", `<img src="/logout?all=1">`, ``},
		{"relative link", `<a href="/staff/delete?id=1">x</a>`, `x`},
		{"cid image", `<img src="cid:part1.abc@example.org">`, `<img src="cid:part1.abc@example.org">`},
		{"data image", `<img src="data:image/png;base64,iVBORw0KGgo=">`, `<img src="data:image/png;base64,iVBORw0KGgo=">`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sanitizeHTML(tt.in); got != tt.want {
				t.Errorf("sanitizeHTML(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseTextAndHTMLChoice(t *testing.T) {
	alt := func(plain string) string {
		return crlf("From: a@example.org\nSubject: s\nContent-Type: multipart/alternative; boundary=b\n\n" +
			"--b\nContent-Type: text/plain; charset=utf-8\n\n" + plain + "\n" +
			"--b\nContent-Type: text/html; charset=utf-8\n\n<p>Desde el <b>HTML</b></p>\n--b--\n")
	}
	tests := []struct {
		name, raw, text, html string
	}{
		{"plain preferred", alt("Desde el texto"), "Desde el texto", "<p>Desde el <b>HTML</b></p>"},
		{"empty plain part", alt("  "), "Desde el *HTML*", "<p>Desde el <b>HTML</b></p>"},
		{"html only", crlf("From: a@example.org\nContent-Type: text/html\n\n<div>Hola <i>mundo</i></div><script>x()</script>\n"), "Hola mundo", "<div>Hola <i>mundo</i></div>\n"},
		{"no content type", crlf("From: a@example.org\n\nHola\n"), "Hola\n", ""},
		{"invalid content type", crlf("From: a@example.org\nContent-Type: text/html garbage\n\n<b>Hola</b>\n"), "<b>Hola</b>\n", ""},
		{"two text parts", crlf("From: a@example.org\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\nuno\n--b\nContent-Type: text/plain\n\ndos\n--b--\n"), "uno\n\ndos", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := parseString(t, tt.raw)
			if p.Text != tt.text || p.HTML != tt.html {
				t.Errorf("Text, HTML = %q, %q\n want %q, %q", p.Text, p.HTML, tt.text, tt.html)
			}
			if len(p.Attachments) != 0 {
				t.Errorf("%d attachments, want none", len(p.Attachments))
			}
		})
	}
}

func TestParseIDs(t *testing.T) {
	tests := []struct {
		name      string
		header    string
		messageID string
		inReplyTo string
		refs      []string
	}{
		{"angle brackets", "Message-ID: <a@x.org>\nIn-Reply-To: <b@y.org>\nReferences: <c@z.org> <b@y.org>\n", "a@x.org", "b@y.org", []string{"c@z.org", "b@y.org"}},
		{"without brackets", "Message-ID: a@x.org\nIn-Reply-To: b@y.org\nReferences: c@z.org b@y.org\n", "a@x.org", "b@y.org", []string{"c@z.org", "b@y.org"}},
		{"one bracket", "Message-Id: <a@x.org\nIn-Reply-To: b@y.org>\n", "a@x.org", "b@y.org", nil},
		{"comments and phrases", "Message-ID: <a@x.org> (sent by X)\nIn-Reply-To: Your message of Mon, 1 Jan 2026 <b@y.org>\n", "a@x.org", "b@y.org", nil},
		{"folded references", "References: <c@z.org>\n\t<d@z.org>\n <b@y.org>\n", "", "", []string{"c@z.org", "d@z.org", "b@y.org"}},
		{"references mixed: bracketed ones win", "References: c@z.org <b@y.org>\n", "", "", []string{"b@y.org"}},
		{"bare references without @ are words", "References: see my last mail\n", "", "", nil},
		{"message id with spaces is none", "Message-ID: not an id\nIn-Reply-To: \n", "", "", nil},
		{"none", "", "", "", nil},
		{"first of several", "Message-ID: <a@x.org> <b@x.org>\n", "a@x.org", "", nil},
		{"8-bit id", "Message-ID: <caf\xe9@x.org>\n", "café@x.org", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := parseString(t, crlf("From: a@example.org\n"+tt.header+"\nbody\n"))
			if p.MessageID != tt.messageID || p.InReplyTo != tt.inReplyTo || fmt.Sprint(p.References) != fmt.Sprint(tt.refs) {
				t.Errorf("got %q %q %q, want %q %q %q", p.MessageID, p.InReplyTo, p.References, tt.messageID, tt.inReplyTo, tt.refs)
			}
		})
	}
	p := parseFile(t, "testdata/ids.eml")
	if p.InReplyTo != "notif-7@helpdesk.example.com" || fmt.Sprint(p.References) != "[orig-1@mail.example.org notif-7@helpdesk.example.com]" {
		t.Errorf("ids.eml: In-Reply-To %q, References %q", p.InReplyTo, p.References)
	}
}

func TestParseFrom(t *testing.T) {
	tests := []struct {
		name    string
		header  string
		want    tickets.Address
		problem string
	}{
		{"plain", "From: ana@example.org", tickets.Address{Email: "ana@example.org"}, ""},
		{"quoted name", `From: "López, Ana" <ana@example.org>`, tickets.Address{Name: "López, Ana", Email: "ana@example.org"}, ""},
		{"encoded name", "From: =?UTF-8?Q?Jos=C3=A9?= <jose@example.org>", tickets.Address{Name: "José", Email: "jose@example.org"}, ""},
		{"encoded name in a legacy charset", "From: =?windows-1252?Q?=93Jos=E9=94?= <jose@example.org>", tickets.Address{Name: "“José”", Email: "jose@example.org"}, ""},
		{"raw latin-1 name", "From: Mar\xeda <maria@example.org>", tickets.Address{Name: "María", Email: "maria@example.org"}, ""},
		{"unbalanced angle", "From: Juan Pérez <juan@example.com", tickets.Address{Name: "Juan Pérez", Email: "juan@example.com"}, ""},
		{"unbalanced quote", `From: "broken <x@y.com>`, tickets.Address{Name: "broken", Email: "x@y.com"}, ""},
		{"several: the first", "From: ana@example.org, luis@example.org", tickets.Address{Email: "ana@example.org"}, ""},
		{"one bad among several", "From: ana@example.org, <<bad>>", tickets.Address{Email: "ana@example.org"}, ""},
		{"sender when no from", "Sender: Luis <luis@example.org>", tickets.Address{Name: "Luis", Email: "luis@example.org"}, ""},
		{"group without address", "From: undisclosed-recipients:;", tickets.Address{}, "no address found"},
		{"empty angle", "From: <>", tickets.Address{}, "no address found"},
		{"no from", "To: x@example.org", tickets.Address{}, "no From: header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := parseString(t, crlf(tt.header+"\nSubject: s\n\nbody\n"))
			if p.From != tt.want {
				t.Errorf("From = %+v, want %+v", p.From, tt.want)
			}
			if tt.problem == "" {
				checkProblems(t, p)
			} else {
				checkProblems(t, p, tt.problem)
			}
		})
	}
}

func TestParseHeader(t *testing.T) {
	t.Run("first of repeated fields wins and the raw header is kept as it was", func(t *testing.T) {
		header := "Received: from a\r\n\tby b; Fri, 27 Nov 2026 10:00:00 +0100\r\nFrom: a@example.org\r\n" +
			"Subject:  first  \r\nX-Odd :spacing\r\nSubject: second\r\nAuto-Submitted: no\r\nAuto-Submitted: auto-replied\r\n\r\n"
		p := parseString(t, header+"body\r\n")
		if p.Subject != "first" {
			t.Errorf("Subject = %q, want the first one", p.Subject)
		}
		if got := p.Header.Get("Auto-Submitted"); got != "no" {
			t.Errorf("Auto-Submitted = %q, want the first one", got)
		}
		var b bytes.Buffer
		if err := textproto.WriteHeader(&b, p.Header); err != nil {
			t.Fatal(err)
		}
		if b.String() != header {
			t.Errorf("header written back:\n%q\nwant\n%q", b.String(), header)
		}
		if p.Text != "body\n" {
			t.Errorf("Text = %q", p.Text)
		}
	})
	t.Run("malformed lines are skipped and reading goes on", func(t *testing.T) {
		p := parseString(t, crlf("From: a@example.org\n: no name\n  leading space\nX-Ok: 1\nBad Name: x\nSubject: still read\nno colon here\nTo: b@example.org\n\nbody\n"))
		if p.Subject != "still read" || p.Text != "body\n" || p.Header.Get("To") != "b@example.org" || p.Header.Get("X-Ok") != "1" {
			t.Errorf("Subject %q, Text %q, header %v", p.Subject, p.Text, p.Header.Map())
		}
		checkProblems(t, p, `": no name\r\n  leading space" is not a header field`, `"Bad Name: x" is not a header field`, `"no colon here" is not a header field`)
	})
	t.Run("malformed first line", func(t *testing.T) {
		p := parseString(t, crlf(" continuation first\nFrom: a@example.org\nSubject: s\n\nbody\n"))
		if p.Subject != "s" || p.From.Email != "a@example.org" || p.Text != "body\n" {
			t.Errorf("Subject %q, From %q, Text %q", p.Subject, p.From.Email, p.Text)
		}
		checkProblems(t, p, "not a header field")
	})
	t.Run("header without body or final line end", func(t *testing.T) {
		p := parseString(t, "From: a@example.org\r\nSubject: s")
		if p.Subject != "s" || p.Text != "" {
			t.Errorf("Subject %q, Text %q", p.Subject, p.Text)
		}
		checkProblems(t, p)
	})
	t.Run("body line after the header without blank line", func(t *testing.T) {
		p := parseString(t, "From: a@example.org\r\nSubject: s\r\nHola")
		if p.Subject != "s" || p.Text != "Hola" {
			t.Errorf("Subject %q, Text %q", p.Subject, p.Text)
		}
		checkProblems(t, p, `ends without a blank line before "Hola"`)
	})
	t.Run("long header is cut", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("From: a@example.org\r\nSubject: s\r\n")
		for b.Len() < maxHeader+1000 {
			b.WriteString("X-Filler: " + strings.Repeat("x", 990) + "\r\n")
		}
		b.WriteString("X-Last: 1\r\n\r\nbody\r\n")
		p := parseString(t, b.String())
		if p.Subject != "s" || p.Text != "body\n" {
			t.Errorf("Subject %q, Text %q", p.Subject, p.Text)
		}
		var kept bytes.Buffer
		textproto.WriteHeader(&kept, p.Header) //nolint:errcheck // a buffer
		if kept.Len() > maxHeader+2 {
			t.Errorf("%d bytes of header kept, want at most %d", kept.Len(), maxHeader)
		}
		checkProblems(t, p, "header of the mail is longer than")
	})
	t.Run("very long header line", func(t *testing.T) {
		p := parseString(t, "From: a@example.org\r\nX-Long: "+strings.Repeat("y", 3*maxHeader)+"\r\nSubject: s\r\n\r\nbody\r\n")
		if p.Subject != "s" || p.Text != "body\n" {
			t.Errorf("Subject %q, Text %q", p.Subject, p.Text)
		}
		checkProblems(t, p, "header of the mail is longer than")
	})
}

// nested returns a mail whose text lies depth multiparts deep, next to a
// text at the top.
func nested(depth int) string {
	var b strings.Builder
	b.WriteString("From: a@example.org\r\nSubject: deep\r\nContent-Type: multipart/mixed; boundary=top\r\n\r\n--top\r\n\r\narriba\r\n--top\r\n")
	for i := range depth {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n", i, i)
	}
	b.WriteString("Content-Type: text/plain\r\n\r\nabajo\r\n")
	for i := depth - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "--b%d--\r\n", i)
	}
	b.WriteString("--top--\r\n")
	return b.String()
}

func TestParseLimits(t *testing.T) {
	t.Run("nesting within the limit", func(t *testing.T) {
		p := parseString(t, nested(maxDepth-2))
		if p.Text != "arriba\n\nabajo" {
			t.Errorf("Text = %q", p.Text)
		}
		checkProblems(t, p)
	})
	t.Run("nesting past the limit", func(t *testing.T) {
		p := parseString(t, nested(maxDepth+10))
		if p.Text != "arriba" {
			t.Errorf("Text = %q, want the part above the limit", p.Text)
		}
		checkProblems(t, p, fmt.Sprintf("multipart nested deeper than %d levels", maxDepth))
	})
	t.Run("too many parts", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("From: a@example.org\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n")
		for i := range maxParts + 100 {
			fmt.Fprintf(&b, "--b\r\nContent-Type: application/octet-stream\r\n\r\nx%d\r\n", i)
		}
		b.WriteString("--b\r\nContent-Type: text/plain\r\n\r\nafter the limit\r\n--b--\r\n")
		p := parseString(t, b.String())
		if len(p.Attachments) != maxParts-1 { // the multipart itself is a part
			t.Errorf("%d attachments, want %d", len(p.Attachments), maxParts-1)
		}
		if p.Text != "" {
			t.Errorf("Text = %q, want none (past the limit)", p.Text)
		}
		checkProblems(t, p, fmt.Sprintf("more than %d parts", maxParts))
		for i, a := range p.Attachments {
			if data := checkContent(t, a.Content); string(data) != fmt.Sprintf("x%d", i) {
				t.Fatalf("attachment %d holds %q", i, data)
			}
		}
	})
	t.Run("3 MB of UTF-8 text", func(t *testing.T) {
		body := "xy" + strings.Repeat("ñandú ", 3<<20/8) // "xy" puts the cut inside the "ú"
		p := parseString(t, "From: a@example.org\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"+body)
		if len(p.Text) > maxTextBytes || len(p.Text) < maxTextBytes-3 {
			t.Errorf("Text has %d bytes, want %d less a partial character", len(p.Text), maxTextBytes)
		}
		if !utf8.ValidString(p.Text) || !strings.HasPrefix(body, p.Text) {
			t.Errorf("Text is not the start of the body: %q…%q", p.Text[:20], p.Text[len(p.Text)-20:])
		}
		checkProblems(t, p, "goes past the 1048576 bytes of text")
	})
	t.Run("1 MB of Latin-1 grows in UTF-8", func(t *testing.T) {
		body := strings.Repeat("\xf1", maxTextBytes)
		p := parseString(t, "From: a@example.org\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\n"+body)
		if len(p.Text) > maxTextBytes || !utf8.ValidString(p.Text) || strings.Trim(p.Text, "ñ") != "" {
			t.Errorf("Text has %d bytes (valid UTF-8: %v), want at most %d of ñ", len(p.Text), utf8.ValidString(p.Text), maxTextBytes)
		}
		checkProblems(t, p, "goes past")
	})
	t.Run("the limit is for the whole mail", func(t *testing.T) {
		part := strings.Repeat("abcdefghij\r\n", 700<<10/12)
		var b strings.Builder
		b.WriteString("From: a@example.org\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n")
		for range 3 {
			b.WriteString("--b\r\nContent-Type: text/plain\r\n\r\n" + part + "\r\n")
			b.WriteString("--b\r\nContent-Type: text/html\r\n\r\n<p>" + part + "</p>\r\n")
		}
		b.WriteString("--b--\r\n")
		p := parseString(t, b.String())
		if len(p.Text) > maxTextBytes+2*len("\n\n") {
			t.Errorf("Text has %d bytes, want at most about %d", len(p.Text), maxTextBytes)
		}
		if len(p.HTML) > maxTextBytes {
			t.Errorf("HTML has %d bytes, want at most %d", len(p.HTML), maxTextBytes)
		}
		if len(p.Problems) != 4 { // parts 3 and 4 are cut, 5 and 6 have nothing left
			t.Errorf("Problems = %q, want 4", p.Problems)
		}
	})
}

// bigAttachmentMail returns a mail with an n-byte attachment, base64-encoded.
func bigAttachmentMail(n int) (mail string, data []byte) {
	data = make([]byte, n)
	r := rand.NewChaCha8([32]byte{1, 2, 3})
	r.Read(data) //nolint:errcheck // never fails
	enc := base64.StdEncoding.EncodeToString(data)
	var b strings.Builder
	b.WriteString(crlf("From: a@example.org\nSubject: grande\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\nAdjunto el fichero.\n--b\n" +
		"Content-Type: application/zip\nContent-Disposition: attachment; filename=\"copia.zip\"\nContent-Transfer-Encoding: base64\n\n"))
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n--b--\r\n")
	return b.String(), data
}

func TestParseLargeAttachmentIsSpooledToAFile(t *testing.T) {
	mail, data := bigAttachmentMail(5 << 20)
	dir := t.TempDir()
	p, err := Parse(strings.NewReader(mail), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	checkProblems(t, p)
	if p.Text != "Adjunto el fichero." || len(p.Attachments) != 1 {
		t.Fatalf("Text %q, %d attachments", p.Text, len(p.Attachments))
	}
	a := p.Attachments[0]
	if a.Filename != "copia.zip" || a.Content.Size != int64(len(data)) || a.Content.SHA256 != sha256.Sum256(data) {
		t.Errorf("attachment %q of %d bytes, SHA256 %x; want copia.zip of %d bytes, %x", a.Filename, a.Content.Size, a.Content.SHA256, len(data), sha256.Sum256(data))
	}
	f, ok := a.Content.Data.(*os.File)
	if !ok {
		t.Fatalf("Content.Data is a %T, want an *os.File", a.Content.Data)
	}
	if filepath.Dir(f.Name()) != dir {
		t.Errorf("spooled to %s, want a file in %s", f.Name(), dir)
	}
	if got := checkContent(t, a.Content); !bytes.Equal(got, data) {
		t.Errorf("attachment bytes differ")
	}
	p.Close()
	if _, err := os.Stat(f.Name()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Close, stat %s: %v; want it removed", f.Name(), err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("after Close the spool holds %d files", len(left))
	}
	p.Close() // twice is fine
}

func TestParseSmallAttachmentStaysInMemory(t *testing.T) {
	mail, data := bigAttachmentMail(memoryLimit)
	dir := t.TempDir()
	p, err := Parse(strings.NewReader(mail), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, isFile := p.Attachments[0].Content.Data.(*os.File); isFile {
		t.Errorf("an attachment of %d bytes went to a file", len(data))
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("the spool holds %d files", len(left))
	}
}

func TestParseFailsOnlyWhenTheSpoolCannotBeWritten(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	mail, _ := bigAttachmentMail(memoryLimit + 1)
	if p, err := Parse(strings.NewReader(mail), missing); err == nil || !errors.Is(err, errSpool) || p != nil {
		t.Errorf("Parse with an unwritable spool = %v, %v; want a spool error", p, err)
	}
	// Small attachments need no spool file.
	small, _ := bigAttachmentMail(100)
	p, err := Parse(strings.NewReader(small), missing)
	if err != nil {
		t.Fatalf("Parse of a small mail with an unwritable spool: %v", err)
	}
	p.Close()
}

// failingReader gives its data, then an error.
type failingReader struct {
	data string
	err  error
}

func (r *failingReader) Read(b []byte) (int, error) {
	if r.data == "" {
		return 0, r.err
	}
	n := copy(b, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestParseReadErrorKeepsWhatWasRead(t *testing.T) {
	broken := errors.New("connection reset")
	tests := []struct {
		name, raw, text string
		attachment      string
		problems        []string
	}{
		{"in the header", "From: a@example.org\r\nSubject: s\r\nTo: b", "", "", []string{"header of the mail: connection reset", "part 1 (text/plain): connection reset"}},
		{"in a text body", "From: a@example.org\r\nSubject: s\r\n\r\nHola, mun", "Hola, mun", "", []string{"part 1 (text/plain): connection reset"}},
		{"in an attachment", crlf("From: a@example.org\nSubject: s\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\nHola\n--b\nContent-Type: application/pdf\n\n%PDF"), "Hola", "%PDF",
			[]string{"part 2 (application/pdf): connection reset", "part 3: multipart: NextPart: connection reset"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse(&failingReader{data: tt.raw, err: broken}, t.TempDir())
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			defer p.Close()
			if p.Subject != "s" || p.Text != tt.text {
				t.Errorf("Subject %q, Text %q; want s, %q", p.Subject, p.Text, tt.text)
			}
			checkProblems(t, p, tt.problems...)
			if tt.attachment != "" {
				if len(p.Attachments) != 1 || string(checkContent(t, p.Attachments[0].Content)) != tt.attachment {
					t.Errorf("attachments %+v, want one holding %q", p.Attachments, tt.attachment)
				}
			}
		})
	}
}

func TestDefaultFilename(t *testing.T) {
	tests := []struct {
		ctype string
		path  []int
		want  string
	}{
		{"application/pdf", []int{1}, "part-2.pdf"},
		{"image/jpeg", []int{0, 3}, "part-1-4.jpg"},
		{"image/png", nil, "part-1.png"},
		{"text/html", []int{2}, "part-3.html"},
		{"text/plain", []int{2}, "part-3.txt"},
		{"message/rfc822", []int{2}, "part-3.eml"},
		{"text/calendar", []int{0}, "part-1.ics"},
		{"application/xml", []int{0}, "part-1.xml"},
		{"video/mp4", []int{0}, "part-1.mp4"},
		{"application/octet-stream", []int{0}, "part-1.bin"},
		{"application/x-never-heard-of", []int{0}, "part-1.bin"},
	}
	for _, tt := range tests {
		t.Run(tt.ctype, func(t *testing.T) {
			if got := defaultFilename(tt.path, tt.ctype); got != tt.want {
				t.Errorf("defaultFilename(%v, %q) = %q, want %q", tt.path, tt.ctype, got, tt.want)
			}
		})
	}
}

func TestTrimPartialRune(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"abc", "abc"},
		{"añ", "añ"},
		{"a\xc3", "a"},
		{"a€", "a€"},
		{"a\xe2\x82", "a"},
		{"a\xe2", "a"},
		{"a\xf0\x9f\x98", "a"},
		{"a😀", "a😀"},
		{"a\x80", "a\x80"}, // not a cut character: left to toUTF8
	}
	for _, tt := range tests {
		if got := trimPartialRune(tt.in); got != tt.want {
			t.Errorf("trimPartialRune(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
