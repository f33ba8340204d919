package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/helpdeskgw/helpdesk/bench/internal/benchkit"
)

// sentences are what the text bodies are made of: customers write in
// Spanish and English, with accents.
func sentences() []string {
	return []string{
		"Buenos días, les escribo porque la factura de este mes no coincide con el pedido que hice.",
		"He intentado acceder a mi cuenta desde el móvil y la aplicación se cierra al iniciar sesión.",
		"El paquete llegó con la caja dañada y uno de los artículos no funciona correctamente.",
		"¿Podrían indicarme cuánto tarda normalmente la devolución del importe a la tarjeta?",
		"Adjunto los datos que me pidieron por teléfono: número de cliente, dirección y fecha de compra.",
		"Hello, I was charged twice for the same order and would like one of the charges refunded.",
		"The password reset link in your last message has expired before I could use it.",
		"Our team cannot export the monthly report since the last update; the button does nothing.",
		"Could you please confirm whether the service will be available during the maintenance window?",
		"I have already tried clearing the cache, restarting the router and using another browser.",
		"Gracias de antemano por su ayuda; quedo a la espera de su respuesta lo antes posible.",
		"Thanks in advance for looking into this, it is blocking the whole accounting department.",
	}
}

// textBody writes paragraphs of sentences, wrapped at 72 columns, until the
// body holds at least size bytes.
func textBody(rng *rand.Rand, size int) string {
	var b strings.Builder
	line := 0
	all := sentences()
	for b.Len() < size {
		s := all[rng.IntN(len(all))]
		for _, word := range strings.Fields(s) {
			if line > 0 && line+1+len(word) > 72 {
				b.WriteString("\r\n")
				line = 0
			}
			if line > 0 {
				b.WriteByte(' ')
				line++
			}
			b.WriteString(word)
			line += len(word)
		}
		if rng.IntN(4) == 0 {
			b.WriteString("\r\n\r\n")
			line = 0
		}
	}
	b.WriteString("\r\n\r\n-- \r\nEnviado desde mi teléfono\r\n")
	return b.String()
}

// header writes the top-level header every generated mail shares; kind
// tells the cases apart in Message-IDs and senders ("s", "b", "x").
func header(b *bytes.Buffer, nonce, kind string, i int, subject string, date time.Time) string {
	from := fmt.Sprintf("cliente-%s%05d@example.com", kind, i)
	fmt.Fprintf(b, "Received: from mail-out.example.com (mail-out.example.com [192.0.2.%d])\r\n"+
		"\tby mx.example.net with ESMTPS id %s%05d\r\n\tfor <%s>; %s\r\n",
		i%250+1, kind, i, recipient, date.Format(time.RFC1123Z))
	fmt.Fprintf(b, "From: \"Cliente %s%05d\" <%s>\r\n", strings.ToUpper(kind), i, from)
	fmt.Fprintf(b, "To: Soporte <%s>\r\n", recipient)
	fmt.Fprintf(b, "Subject: %s (pedido %05d)\r\n", subject, i)
	fmt.Fprintf(b, "Date: %s\r\n", date.Format(time.RFC1123Z))
	fmt.Fprintf(b, "Message-ID: <bench-%s-%s%05d@example.com>\r\n", nonce, kind, i)
	b.WriteString("MIME-Version: 1.0\r\nUser-Agent: Mozilla Thunderbird 128.5\r\n")
	return from
}

// textMails returns n plain text mails with a body of about 4 KB (headers
// aside), each from its own sender and with its own Message-ID.
func textMails(n int, nonce string) []message {
	rng := rand.New(rand.NewPCG(1, 4096))
	date := time.Date(2026, 11, 24, 9, 30, 0, 0, time.FixedZone("", 3600))
	mails := make([]message, n)
	for i := range mails {
		var b bytes.Buffer
		from := header(&b, nonce, "s", i, "La factura no coincide", date.Add(time.Duration(i)*time.Second))
		b.WriteString("Content-Type: text/plain; charset=utf-8; format=flowed\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
		b.WriteString(textBody(rng, 4096))
		mails[i] = message{from: from, data: b.Bytes()}
	}
	return mails
}

// attachmentMails returns n multipart mails, each with a short text and a
// PDF-like attachment of size random bytes, base64-encoded.
func attachmentMails(n, size int, nonce, kind string) []message {
	rng := rand.New(rand.NewPCG(2, uint64(size)))
	date := time.Date(2026, 11, 24, 10, 0, 0, 0, time.FixedZone("", 3600))
	mails := make([]message, n)
	for i := range mails {
		mails[i] = attachmentMail(rng, i, size, nonce, kind, date.Add(time.Duration(i)*time.Second))
	}
	return mails
}

func attachmentMail(rng *rand.Rand, i, size int, nonce, kind string, date time.Time) message {
	const boundary = "----=_Part_bench_0123456789"
	var b bytes.Buffer
	b.Grow(size*4/3 + size/28 + 8192)
	from := header(&b, nonce, kind, i, "Envío la factura escaneada", date)
	fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=%q\r\n\r\n", boundary)
	b.WriteString("This is a multi-part message in MIME format.\r\n")
	fmt.Fprintf(&b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n", boundary)
	b.WriteString(textBody(rng, 800))
	fmt.Fprintf(&b, "--%s\r\nContent-Type: application/pdf; name=\"factura-%05d.pdf\"\r\n"+
		"Content-Disposition: attachment; filename=\"factura-%05d.pdf\"\r\n"+
		"Content-Transfer-Encoding: base64\r\n\r\n", boundary, i, i)
	benchkit.WriteBase64(&b, benchkit.PDFLike(rng, size))
	fmt.Fprintf(&b, "--%s--\r\n", boundary)
	return message{from: from, data: b.Bytes()}
}
