package benchkit

import (
	"bytes"
	"encoding/base64"
	"math/rand/v2"
)

// PDFLike returns size bytes that start and end like a PDF and are random
// (incompressible, and unique per mail) in between: an attachment as
// customers send them.
func PDFLike(rng *rand.Rand, size int) []byte {
	const head, tail = "%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "\n%%EOF\n"
	p := make([]byte, size)
	for i := 0; i < len(p); i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8 && i+j < len(p); j++ {
			p[i+j] = byte(v >> (8 * j))
		}
	}
	if size >= len(head)+len(tail) {
		copy(p, head)
		copy(p[size-len(tail):], tail)
	}
	return p
}

// Base64LineBytes is how many bytes of a file one base64 line of 76
// characters holds; with its CRLF the line is 78 bytes on the wire.
const Base64LineBytes = 57

// WriteBase64 writes p in base64, in lines of 76 characters ended by CRLF,
// as a mail body part carries it.
func WriteBase64(b *bytes.Buffer, p []byte) {
	line := make([]byte, base64.StdEncoding.EncodedLen(Base64LineBytes))
	for len(p) > 0 {
		n := min(Base64LineBytes, len(p))
		base64.StdEncoding.Encode(line, p[:n])
		b.Write(line[:base64.StdEncoding.EncodedLen(n)])
		b.WriteString("\r\n")
		p = p[n:]
	}
}
