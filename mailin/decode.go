package mailin

import (
	"bufio"
	"encoding/base64"
	"io"
	"strings"
)

// decodeTransfer undoes a Content-Transfer-Encoding leniently. The standard
// decoders stop at the first bad byte; mail in the wild has stray characters
// in base64 and bare '=' in quoted-printable, and a reader would rather see
// the rest of the text than nothing. Unknown encodings pass through as they
// are, and known is false for them.
func decodeTransfer(enc string, r io.Reader) (decoded io.Reader, known bool) {
	switch strings.ToLower(strings.TrimSpace(enc)) {
	case "base64":
		return base64.NewDecoder(base64.RawStdEncoding, &base64Filter{r: r}), true
	case "quoted-printable":
		return &qpReader{r: bufio.NewReader(r)}, true
	case "", "7bit", "8bit", "binary":
		return r, true
	default:
		return r, false
	}
}

// base64Filter passes only base64 alphabet characters, dropping line breaks,
// padding and garbage, so that RawStdEncoding can decode what is left.
type base64Filter struct{ r io.Reader }

func (f *base64Filter) Read(p []byte) (int, error) {
	for {
		n, err := f.r.Read(p)
		k := 0
		// Branch-free: base64 text is random, so a test per byte would
		// mispredict on every other one.
		for _, c := range p[:n] {
			p[k] = c
			k += int(base64Alphabet[c])
		}
		if k > 0 || err != nil {
			return k, err
		}
	}
}

// base64Alphabet is 1 for the bytes of the standard base64 alphabet.
var base64Alphabet = func() (t [256]byte) {
	for _, c := range "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/" {
		t[c] = 1
	}
	return t
}()

// qpReader decodes quoted-printable: "=XX" is a byte, "=" at the end of a
// line joins lines, and anything malformed is kept literally.
type qpReader struct {
	r *bufio.Reader
}

func (q *qpReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c, err := q.r.ReadByte()
		if err != nil {
			return n, err
		}
		if c != '=' {
			p[n] = c
			n++
			continue
		}
		if rest, ok := softBreak(q.r); ok {
			q.r.Discard(rest) //nolint:errcheck // peeked
			continue
		}
		if next, _ := q.r.Peek(2); len(next) == 2 && isHex(next[0]) && isHex(next[1]) {
			p[n] = unhex(next[0])<<4 | unhex(next[1])
			n++
			q.r.Discard(2) //nolint:errcheck // peeked
			continue
		}
		p[n] = '=' // a stray '=': keep it
		n++
	}
	return n, nil
}

// softBreak reports whether only white space is left on the line after an
// '=' (a soft line break), and how many bytes that is, line end included.
func softBreak(r *bufio.Reader) (int, bool) {
	b, _ := r.Peek(80)
	for i, c := range b {
		switch c {
		case ' ', '\t', '\r':
		case '\n':
			return i + 1, true
		default:
			return 0, false
		}
	}
	return len(b), len(b) < 80 // white space up to the end of the input
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}
