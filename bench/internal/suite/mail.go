package suite

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/helpdeskgw/helpdesk/bench/internal/benchkit"
)

// Mail is one customer's mail: its own Message-ID and its own sender.
type Mail struct {
	MessageID string // without angle brackets
	From      string
	Class     string // the size class it was drawn from
	Data      []byte
}

// SizeClass is a range of mail sizes and how often it is drawn.
type SizeClass struct {
	Name     string
	Min, Max int     // bytes of the whole mail
	Weight   float64 // relative frequency
}

// Mail sizes at or above attachmentFrom carry a PDF-like attachment; the
// smaller ones are plain text.
const attachmentFrom = 16 << 10

// MixedSizes is the load's mix, 2 KB to 5 MB: mostly short text, some
// mails with an attachment, a few large ones.
func MixedSizes() []SizeClass {
	small := SmallText()[0]
	small.Weight = 0.88
	return []SizeClass{
		small,
		{Name: "16–256 KB with a file", Min: 16 << 10, Max: 256 << 10, Weight: 0.09},
		{Name: "256 KB–1 MB with a file", Min: 256 << 10, Max: 1 << 20, Weight: 0.025},
		{Name: "1–5 MB with a file", Min: 1 << 20, Max: 5 << 20, Weight: 0.005},
	}
}

// SmallText is mail of 2 to 8 KB of plain text only.
func SmallText() []SizeClass {
	return []SizeClass{{Name: "2–8 KB text", Min: 2 << 10, Max: 8 << 10, Weight: 1}}
}

// Generator writes mails; each has a Message-ID and a sender address of
// its own, so that no per-sender limit of the gateway is reached and every
// mail can be told apart in the database and at the relay.
type Generator struct {
	nonce string
	seq   atomic.Int64
}

// NewGenerator returns a generator whose Message-IDs carry nonce, so that
// runs and phases never share one.
func NewGenerator(nonce string) *Generator { return &Generator{nonce: nonce} }

// Pick draws a class from classes by weight and a mail size within it
// (log-uniform: the small end of each class is the commoner).
func Pick(rng *rand.Rand, classes []SizeClass) (SizeClass, int) {
	var total float64
	for _, c := range classes {
		total += c.Weight
	}
	x := rng.Float64() * total
	c := classes[len(classes)-1]
	for _, k := range classes {
		if x < k.Weight {
			c = k
			break
		}
		x -= k.Weight
	}
	size := c.Min
	if c.Max > c.Min {
		lo, hi := float64(c.Min), float64(c.Max)
		size = int(lo * math.Pow(hi/lo, rng.Float64()))
	}
	return c, size
}

// Mixed returns a mail drawn from classes.
func (g *Generator) Mixed(rng *rand.Rand, classes []SizeClass) Mail {
	c, size := Pick(rng, classes)
	return g.Mail(rng, c.Name, size)
}

// Mail returns a mail of about size bytes: plain text below 16 KB, else a
// short text and a PDF-like attachment of random (incompressible, unique)
// bytes, base64-encoded.
func (g *Generator) Mail(rng *rand.Rand, class string, size int) Mail {
	n := g.seq.Add(1)
	id := fmt.Sprintf("%s-%07d@load.example.org", g.nonce, n)
	from := fmt.Sprintf("cliente-%s-%07d@example.org", g.nonce, n)
	var b bytes.Buffer
	b.Grow(size + 2048)
	fmt.Fprintf(&b, "From: \"Cliente %d\" <%s>\r\nTo: Soporte <%s>\r\nSubject: Consulta %d: la factura no coincide\r\n"+
		"Date: %s\r\nMessage-ID: <%s>\r\nMIME-Version: 1.0\r\n", n, from, Address, n, time.Now().Format(time.RFC1123Z), id)
	if size < attachmentFrom {
		b.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
		writeText(&b, rng, size-b.Len())
		return Mail{MessageID: id, From: from, Class: class, Data: b.Bytes()}
	}
	const boundary = "----=_Part_suite_0123456789"
	fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=%q\r\n\r\n", boundary)
	fmt.Fprintf(&b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n", boundary)
	writeText(&b, rng, 600)
	fmt.Fprintf(&b, "\r\n--%s\r\nContent-Type: application/pdf; name=\"factura-%d.pdf\"\r\n"+
		"Content-Disposition: attachment; filename=\"factura-%d.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n",
		boundary, n, n)
	fileSize := max(64, (size-b.Len()-64)*benchkit.Base64LineBytes/(benchkit.Base64LineBytes*4/3+2))
	benchkit.WriteBase64(&b, benchkit.PDFLike(rng, fileSize))
	fmt.Fprintf(&b, "--%s--\r\n", boundary)
	return Mail{MessageID: id, From: from, Class: class, Data: b.Bytes()}
}

// writeText writes lines of customers' prose until about n bytes.
func writeText(b *bytes.Buffer, rng *rand.Rand, n int) {
	lines := []string{
		"Buenos días, la factura de este mes no coincide con el pedido que hice.\r\n",
		"He intentado acceder desde el móvil y la aplicación se cierra al iniciar sesión.\r\n",
		"El paquete llegó con la caja dañada y uno de los artículos no funciona.\r\n",
		"Hello, I was charged twice for the same order; please refund one charge.\r\n",
		"The password reset link expired before I could use it.\r\n",
		"Gracias de antemano por su ayuda; quedo a la espera de su respuesta.\r\n",
	}
	end := b.Len() + n
	for b.Len() < end {
		b.WriteString(lines[rng.IntN(len(lines))])
	}
}
