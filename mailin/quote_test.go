package mailin

import (
	"fmt"
	"strings"
	"testing"

	"github.com/inbucket/html2text"
)

type quoteCase struct {
	name string
	text string
	want string
}

// quoteCases are replies as mail clients write them, and texts that must
// come out whole.
func quoteCases() []quoteCase {
	const esQuote = "\n> Hola Ana,\n>\n> Prueba a reiniciar el router.\n>\n> --\n> Soporte de Ejemplo\n"
	const enQuote = "\n> Hello Bob,\n>\n> Please restart the router.\n"
	return []quoteCase{
		{
			name: "gmail spanish",
			text: "Hola,\n\nYa funciona, gracias.\n\nAna\n\nEl lun, 3 feb 2025 a las 10:15, Soporte <soporte@example.com> escribió:\n" + esQuote,
			want: "Hola,\n\nYa funciona, gracias.\n\nAna",
		},
		{
			name: "gmail spanish wrapped over two lines",
			text: "Ya funciona.\n\nEl lun, 3 feb 2025 a las 10:15, Soporte Técnico de Ejemplo Sociedad Anónima (<\nsoporte@example.com>) escribió:\n" + esQuote,
			want: "Ya funciona.",
		},
		{
			name: "gmail english",
			text: "It works now, thanks.\n\nOn Mon, Feb 3, 2025 at 10:15 AM Support <support@example.com> wrote:\n" + enQuote,
			want: "It works now, thanks.",
		},
		{
			name: "gmail english wrapped over two lines",
			text: "It works now.\n\nOn Mon, Feb 3, 2025 at 10:15 AM Example Company Customer Support Team <\nsupport@example.com> wrote:\n" + enQuote,
			want: "It works now.",
		},
		{
			name: "apple mail english, attribution quoted",
			text: "Thanks!\n\nSent from my iPhone\n\n> On 3 Feb 2025, at 10:15, Support <support@example.com> wrote:\n> \n> Hello Bob,\n> Please restart the router.\n",
			want: "Thanks!\n\nSent from my iPhone",
		},
		{
			name: "apple mail spanish, attribution quoted",
			text: "¡Gracias!\n\nEnviado desde mi iPhone\n\n> El 3 feb 2025, a las 10:15, Soporte <soporte@example.com> escribió:\n> \n> Hola Ana\n",
			want: "¡Gracias!\n\nEnviado desde mi iPhone",
		},
		{
			name: "apple mail spanish attribution, not quoted",
			text: "Gracias.\n\nEl 3 feb 2025, a las 10:15, Soporte <soporte@example.com> escribió:\n" + esQuote,
			want: "Gracias.",
		},
		{
			name: "english attribution without address above a quote",
			text: "Done.\n\nOn 2/3/25 10:15, Support wrote:\n> Hello Bob,\n> Please restart the router.\n",
			want: "Done.",
		},
		{
			name: "attribution with address and a quote without marks",
			text: "Done.\n\nOn Mon, Feb 3, 2025 at 10:15 AM Support <support@example.com> wrote:\nHello Bob,\nPlease restart the router.\n",
			want: "Done.",
		},
		{
			name: "outlook english with rule",
			text: "Works now.\r\n\r\nJohn\r\n\r\n________________________________\r\nFrom: Support <support@example.com>\r\nSent: Monday, February 3, 2025 10:15 AM\r\nTo: John <john@example.org>\r\nSubject: [#ABC-DEF-GHJK] Printer\r\n\r\nHello John,\r\nPlease restart it.\r\n",
			want: "Works now.\r\n\r\nJohn",
		},
		{
			name: "outlook spanish with rule",
			text: "Perfecto, gracias.\n\n________________________________\nDe: Soporte <soporte@example.com>\nEnviado: lunes, 3 de febrero de 2025 10:15\nPara: Ana <ana@example.org>\nAsunto: [#ABC-DEF-GHJK] Consulta\n\nHola Ana\n",
			want: "Perfecto, gracias.",
		},
		{
			name: "outlook spanish, wrapped recipients and copy, no rule",
			text: "Adjunto lo que pedían.\n\nDe: Soporte <soporte@example.com>\nEnviado el: lunes, 3 de febrero de 2025 10:15\nPara: Ana <ana@example.org>; Luis <luis@example.org>;\n Marta <marta@example.org>\nCC: Jefe <jefe@example.org>\nAsunto: RE: Consulta\n\nHola Ana\n",
			want: "Adjunto lo que pedían.",
		},
		{
			name: "outlook spanish in bold, as html2text writes it",
			text: "Perfecto, gracias.\n\n*De:* Soporte <soporte@example.com>\n*Enviado:* lunes, 3 de febrero de 2025 10:15\n*Para:* Ana <ana@example.org>\n*Asunto:* [#ABC-DEF-GHJK] Consulta\n\nHola Ana",
			want: "Perfecto, gracias.",
		},
		{
			name: "original message separator",
			text: "Yes, go ahead.\n\n-----Original Message-----\nFrom: Support [mailto:support@example.com]\nSent: Monday, February 3, 2025 10:15 AM\nTo: John\nSubject: Printer\n\nMay we restart it?\n",
			want: "Yes, go ahead.",
		},
		{
			name: "mensaje original separator",
			text: "Sí, adelante.\n\n-----Mensaje original-----\nDe: Soporte [mailto:soporte@example.com]\nEnviado el: lunes, 3 de febrero de 2025 10:15\nPara: Ana\nAsunto: Impresora\n\n¿La reiniciamos?\n",
			want: "Sí, adelante.",
		},
		{
			name: "thunderbird original message separator",
			text: "Confirmed.\n\n-------- Original Message --------\nSubject: Printer\nDate: Mon, 3 Feb 2025 10:15:00 +0100\nFrom: Support <support@example.com>\nTo: John <john@example.org>\n\nMay we restart it?\n",
			want: "Confirmed.",
		},
		{
			name: "the sender's last line starts like an attribution",
			text: "El pedido llegó roto.\nEl 3 feb 2025, a las 10:15, Soporte <soporte@example.com> escribió:\n> Hola Ana\n",
			want: "El pedido llegó roto.",
		},
		{
			name: "the sender's last line above a french attribution",
			text: "Merci pour votre aide.\nLe lun. 3 févr. 2025 à 10:15, Support <support@example.com> a écrit :\n> Bonjour\n",
			want: "Merci pour votre aide.",
		},
		{
			name: "french attribution wrapped over two lines",
			text: "Merci.\n\nLe lun. 3 févr. 2025 à 10:15, Support Team of\nExample <support@example.com> a écrit :\n\n> Bonjour\n",
			want: "Merci.",
		},
		{
			name: "attribution without date above a trailing quote",
			text: "Sure.\n\nOn Monday, Support wrote:\n> Can we call you?\n",
			want: "Sure.",
		},
		{
			name: "trailing quote without attribution",
			text: "Yes, please close it.\n\n> Can we close the ticket?\n> Thanks\n\n",
			want: "Yes, please close it.",
		},
		{
			name: "french attribution, known to dimiro1/reply",
			text: "Merci !\n\nLe lun. 3 févr. 2025 à 10:15, Support <support@example.com> a écrit :\n\n> Bonjour,\n> Redémarrez le routeur.\n",
			want: "Merci !",
		},
		{
			name: "german attribution without address, known to dimiro1/reply",
			text: "Danke.\n\nAm 03.02.2025 um 10:15 schrieb Support:\n> Hallo,\n> bitte neu starten.\n",
			want: "Danke.",
		},
		{
			name: "signature kept",
			text: "Gracias.\n\n-- \nAna Pérez\nEjemplo S.A.\nTel. 912 345 678\n\nEl lun, 3 feb 2025 a las 10:15, Soporte <soporte@example.com> escribió:\n" + esQuote,
			want: "Gracias.\n\n-- \nAna Pérez\nEjemplo S.A.\nTel. 912 345 678",
		},
		{
			name: "signature and rules without a quote kept",
			text: "Resumen:\n----------\nTodo bien.\n\n-- \nAna\n\n\n",
			want: "Resumen:\n----------\nTodo bien.\n\n-- \nAna",
		},
		// Texts that keep everything but their trailing blank lines.
		{
			name: "gmail forward is content",
			text: "Os reenvío la factura.\n\n---------- Forwarded message ---------\nFrom: Proveedor <facturas@proveedor.example>\nDate: Mon, Feb 3, 2025 at 10:15 AM\nSubject: Factura 2025-001\nTo: <ana@example.org>\n\nAdjuntamos la factura.\n\n> On Sun, Feb 2, 2025 at 9:00 AM Ana <ana@example.org> wrote:\n> ¿Me mandáis la factura?\n",
			want: "Os reenvío la factura.\n\n---------- Forwarded message ---------\nFrom: Proveedor <facturas@proveedor.example>\nDate: Mon, Feb 3, 2025 at 10:15 AM\nSubject: Factura 2025-001\nTo: <ana@example.org>\n\nAdjuntamos la factura.\n\n> On Sun, Feb 2, 2025 at 9:00 AM Ana <ana@example.org> wrote:\n> ¿Me mandáis la factura?",
		},
		{
			name: "thunderbird spanish forward is content",
			text: "Mirad esto.\n\n-------- Mensaje reenviado --------\nAsunto: Corte de luz\nFecha: Mon, 3 Feb 2025 10:15:00 +0100\nDe: Eléctrica <avisos@electrica.example>\nPara: ana@example.org\n\nEl martes no habrá luz.\n",
			want: "Mirad esto.\n\n-------- Mensaje reenviado --------\nAsunto: Corte de luz\nFecha: Mon, 3 Feb 2025 10:15:00 +0100\nDe: Eléctrica <avisos@electrica.example>\nPara: ana@example.org\n\nEl martes no habrá luz.",
		},
		{
			name: "apple forward is content",
			text: "FYI\n\nBegin forwarded message:\n\nFrom: Vendor <billing@vendor.example>\nSubject: Invoice\nDate: 3 February 2025 at 10:15:00 CET\nTo: bob@example.org\n\nPlease find the invoice attached.\n",
			want: "FYI\n\nBegin forwarded message:\n\nFrom: Vendor <billing@vendor.example>\nSubject: Invoice\nDate: 3 February 2025 at 10:15:00 CET\nTo: bob@example.org\n\nPlease find the invoice attached.",
		},
		{
			name: "wrote: in sentences",
			text: "As the technician wrote: the fan is broken.\nOn Monday, the engineer wrote:\nwe will replace it on the 5th.\nOn 3 occasions he wrote:\nnothing useful.\n",
			want: "As the technician wrote: the fan is broken.\nOn Monday, the engineer wrote:\nwe will replace it on the 5th.\nOn 3 occasions he wrote:\nnothing useful.",
		},
		{
			name: "wrote: at the end of a sentence over two lines",
			text: "On Monday at 10:15 I called support@example.com\nand they wrote:\nwe will fix it.\n",
			want: "On Monday at 10:15 I called support@example.com\nand they wrote:\nwe will fix it.",
		},
		{
			name: "escribió: in sentences",
			text: "El técnico me escribió:\nque no hay repuesto.\n\nEl 3 de marzo el proveedor escribió:\nque llega el lunes a las 10:00.\n",
			want: "El técnico me escribió:\nque no hay repuesto.\n\nEl 3 de marzo el proveedor escribió:\nque llega el lunes a las 10:00.",
		},
		{
			name: "header-like lines without a date",
			text: "Datos del pedido:\nDe: Ana García\nPara: Oficina de Madrid\nAsunto: 12 sillas\n\nGracias.\n",
			want: "Datos del pedido:\nDe: Ana García\nPara: Oficina de Madrid\nAsunto: 12 sillas\n\nGracias.",
		},
		{
			name: "answers between quotes",
			text: "Hi,\n\nOn Mon, Feb 3, 2025 at 10:15 AM Support <support@example.com> wrote:\n> Which printer?\n\nThe HP one.\n\n> Which floor?\n\nThird.\n\nBob\n",
			want: "Hi,\n\nOn Mon, Feb 3, 2025 at 10:15 AM Support <support@example.com> wrote:\n> Which printer?\n\nThe HP one.\n\n> Which floor?\n\nThird.\n\nBob",
		},
		{
			name: "answers between quotes, then a quote at the end",
			text: "On Mon, Feb 3, 2025 at 10:15 AM Support <support@example.com> wrote:\n> Which printer?\nThe HP one.\n> Anything else?\n> Regards\n",
			want: "On Mon, Feb 3, 2025 at 10:15 AM Support <support@example.com> wrote:\n> Which printer?\nThe HP one.",
		},
		// Texts returned unchanged: nothing would remain.
		{
			name: "all quote",
			text: "> only a quote\n> and more\n",
			want: "> only a quote\n> and more\n",
		},
		{
			name: "top-less reply",
			text: "El lun, 3 feb 2025 a las 10:15, Soporte <soporte@example.com> escribió:\n" + esQuote,
			want: "El lun, 3 feb 2025 a las 10:15, Soporte <soporte@example.com> escribió:\n" + esQuote,
		},
		{
			name: "answer below the quote",
			text: "On Mon, Feb 3, 2025 at 10:15 AM Support <support@example.com> wrote:\n> Which printer?\n\nThe HP one.\n",
			want: "On Mon, Feb 3, 2025 at 10:15 AM Support <support@example.com> wrote:\n> Which printer?\n\nThe HP one.",
		},
		{
			name: "blank",
			text: " \n\n",
			want: " \n\n",
		},
		{name: "empty"},
	}
}

func TestStripQuoted(t *testing.T) {
	for _, tc := range quoteCases() {
		t.Run(tc.name, func(t *testing.T) {
			if got := StripQuoted(tc.text); got != tc.want {
				t.Errorf("StripQuoted:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

// TestStripQuotedHTML checks the quotes of HTML mail as they arrive here:
// turned into text by html2text, as Parse does when a mail has no text part
// (sanitized first) and as a caller might (not).
func TestStripQuotedHTML(t *testing.T) {
	tests := []struct {
		name, html, want string
	}{
		{
			name: "gmail",
			html: `<div dir="ltr">Gracias, ya funciona.<div><br></div><div>Saludos,<br>Ana</div></div><br>` +
				`<div class="gmail_quote"><div dir="ltr" class="gmail_attr">El lun, 3 feb 2025 a las 10:15, Soporte Ejemplo (&lt;<a href="mailto:soporte@example.com">soporte@example.com</a>&gt;) escribió:<br></div>` +
				`<blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex;border-left:1px solid rgb(204,204,204);padding-left:1ex"><div>Hola Ana,<br><br>Prueba a reiniciar el router.<br></div></blockquote></div>`,
			want: "Gracias, ya funciona.\n\nSaludos,\nAna",
		},
		{
			name: "apple mail",
			html: `<html><body><div>Thanks, that fixed it.</div><div><br></div><div>Bob</div><div><br><blockquote type="cite">` +
				`<div>On 3 Feb 2025, at 10:15, Support &lt;support@example.com&gt; wrote:</div><br>` +
				`<div><div>Hello Bob,</div><div><br></div><div>Please restart the router.</div></div></blockquote></div><br></body></html>`,
			want: "Thanks, that fixed it.\n\nBob",
		},
		{
			name: "outlook",
			html: `<div><p>Perfecto, gracias.</p><div style="border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm">` +
				`<p><b>De:</b> Soporte &lt;soporte@example.com&gt;<br><b>Enviado:</b> lunes, 3 de febrero de 2025 10:15<br>` +
				`<b>Para:</b> Ana &lt;ana@example.org&gt;<br><b>Asunto:</b> [#ABC-DEF-GHJK] Consulta</p></div><p>Hola Ana</p></div>`,
			want: "Perfecto, gracias.",
		},
	}
	for _, tc := range tests {
		for _, sanitized := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/sanitized=%v", tc.name, sanitized), func(t *testing.T) {
				html := tc.html
				if sanitized {
					html = sanitizeHTML(html)
				}
				text, err := html2text.FromString(html, html2text.Options{})
				if err != nil {
					t.Fatal(err)
				}
				if got := StripQuoted(text); got != tc.want {
					t.Errorf("StripQuoted of\n%s\n=\n%s\nwant:\n%s", text, got, tc.want)
				}
			})
		}
	}
}

// TestStripQuotedLarge feeds mails of a megabyte, some built against the
// backtracking patterns of dimiro1/reply (one 8 KB line of them takes it
// minutes); each must come back, and right.
func TestStripQuotedLarge(t *testing.T) {
	const size = 1 << 20
	repeat := func(line string) string { return strings.Repeat(line, size/len(line)) }
	attribution := "On Mon, Feb 3, 2025 at 10:15 AM Support <support@example.com> wrote:\n"
	// As many digits as dimiro1/reply is given, and a colon: its slowest
	// line that is no attribution.
	hostileProbe := strings.Repeat("0", maxProbeDigits) + strings.Repeat("a", maxProbeLen-maxProbeDigits-2) + ":"
	if len(hostileProbe) > maxProbeLen {
		t.Fatalf("the probe line has %d bytes, more than dimiro1/reply is given", len(hostileProbe))
	}
	tests := []struct {
		name, text, want string
	}{
		{
			name: "100k lines of text, then a quote",
			text: strings.Repeat("Hola, ¿qué tal?\n", 100_000) + "\n" + attribution + repeat("> quoted\n"),
			want: strings.TrimSpace(strings.Repeat("Hola, ¿qué tal?\n", 100_000)),
		},
		{
			name: "one line of wrote on",
			text: "Hi\n" + repeat("wrote on ") + "\n" + repeat("x"),
			want: "Hi\n" + repeat("wrote on ") + "\n" + repeat("x"),
		},
		{
			name: "lines of wrote on",
			text: "Hi\n" + repeat("a wrote on b wrote on c\n"),
			want: "Hi\n" + strings.TrimSpace(repeat("a wrote on b wrote on c\n")),
		},
		{
			name: "attributions and quotes by turns",
			text: "Hi\n" + repeat("El 3 feb 2025, a las 10:15, Soporte <soporte@example.com> escribió:\n> cita\nrespuesta\n"),
			want: "Hi\n" + strings.TrimSpace(repeat("El 3 feb 2025, a las 10:15, Soporte <soporte@example.com> escribió:\n> cita\nrespuesta\n")),
		},
		{
			name: "slowest line for the library above a trailing quote",
			text: repeat("Texto normal\n") + hostileProbe + "\n" + repeat("> q\n"),
			want: strings.TrimSpace(repeat("Texto normal\n") + hostileProbe),
		},
		{
			name: "digits above a trailing quote",
			text: repeat("Texto normal\n") + strings.Repeat("0", 199) + ":\n" + repeat("> q\n"),
			want: strings.TrimSpace(repeat("Texto normal\n") + strings.Repeat("0", 199) + ":"),
		},
		{
			name: "header fields without a block",
			text: repeat("From: a\nTo: b\n\n"),
			want: strings.TrimSpace(repeat("From: a\nTo: b\n\n")),
		},
		{
			name: "one line",
			text: repeat("a"),
			want: repeat("a"),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := StripQuoted(tc.text); got != tc.want {
				t.Errorf("StripQuoted returned %d bytes %q…, want %d bytes %q…", len(got), shorten([]byte(got), 60), len(tc.want), shorten([]byte(tc.want), 60))
			}
		})
	}
}
