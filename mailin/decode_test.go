package mailin

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"mime/quotedprintable"
	"strings"
	"testing"
	"testing/iotest"
)

func TestDecodeTransfer(t *testing.T) {
	tests := []struct {
		name, enc, in, want string
		unknown             bool
		err                 bool // the decoder reports an error after what it could read
	}{
		{name: "none", enc: "", in: "tal cual =41", want: "tal cual =41"},
		{name: "7bit", enc: "7bit", in: "a=41", want: "a=41"},
		{name: "8bit", enc: " 8BIT ", in: "añ", want: "añ"},
		{name: "binary", enc: "binary", in: "\x00\xff", want: "\x00\xff"},
		{name: "unknown kept raw", enc: "x-uuencode", in: "begin 644 x", want: "begin 644 x", unknown: true},

		{name: "qp", enc: "quoted-printable", in: "a=C3=B1o =3D 1", want: "año = 1"},
		{name: "qp lower-case hex", enc: "Quoted-Printable", in: "a=c3=b1o", want: "año"},
		{name: "qp soft break CRLF", enc: "quoted-printable", in: "lar=\r\nga", want: "larga"},
		{name: "qp soft break LF", enc: "quoted-printable", in: "lar=\nga", want: "larga"},
		{name: "qp soft break with trailing blanks", enc: "quoted-printable", in: "lar= \t\r\nga", want: "larga"},
		{name: "qp invalid escape kept", enc: "quoted-printable", in: "a=ZZb", want: "a=ZZb"},
		{name: "qp bare = and space kept", enc: "quoted-printable", in: "1 = 1, y más", want: "1 = 1, y más"},
		{name: "qp half escape", enc: "quoted-printable", in: "a=4", want: "a=4"},
		{name: "qp = at the end", enc: "quoted-printable", in: "fin=", want: "fin"},
		{name: "qp = and blanks at the end", enc: "quoted-printable", in: "fin=  ", want: "fin"},
		{name: "qp = then bare CR", enc: "quoted-printable", in: "a=\rb", want: "a=\rb"},
		{name: "qp = then long blanks", enc: "quoted-printable", in: "a=" + strings.Repeat(" ", 100) + "b", want: "a=" + strings.Repeat(" ", 100) + "b"},
		{name: "qp the rest of the text is kept", enc: "quoted-printable", in: "=ZZ\r\nsegunda l=C3=ADnea\r\n", want: "=ZZ\r\nsegunda línea\r\n"},

		{name: "base64", enc: "base64", in: "SG9sYSwgbXVuZG8=", want: "Hola, mundo"},
		{name: "base64 lines", enc: "BASE64", in: "SG9sYSwg\r\nbXVuZG8=\r\n", want: "Hola, mundo"},
		{name: "base64 missing padding", enc: "base64", in: "SG9sYSwgbXVuZG8", want: "Hola, mundo"},
		{name: "base64 garbage", enc: "base64", in: "SG9s!YSwg\r\n#bXVu ZG8*\r\n", want: "Hola, mundo"},
		{name: "base64 one character too many", enc: "base64", in: "SG9sYSwgbXVuZG8hX", want: "Hola, mundo!", err: true},
		{name: "base64 empty", enc: "base64", in: "\r\n", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, known := decodeTransfer(tt.enc, strings.NewReader(tt.in))
			if known == tt.unknown {
				t.Errorf("known = %v, want %v", known, !tt.unknown)
			}
			got, err := io.ReadAll(r)
			if string(got) != tt.want || (err != nil) != tt.err {
				t.Errorf("decoded %q, %v; want %q (error: %v)", got, err, tt.want, tt.err)
			}
			// The same one byte at a time.
			r, _ = decodeTransfer(tt.enc, iotest.OneByteReader(strings.NewReader(tt.in)))
			got, err = io.ReadAll(iotest.OneByteReader(r))
			if string(got) != tt.want || (err != nil) != tt.err {
				t.Errorf("one byte at a time: decoded %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestDecodeTransferAgreesWithTheStandardDecoders checks the lenient
// decoders against the standard library on well-formed input.
func TestDecodeTransferAgreesWithTheStandardDecoders(t *testing.T) {
	data := make([]byte, 10000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	var qp bytes.Buffer
	w := quotedprintable.NewWriter(&qp)
	w.Binary = true // every byte encoded, line ends included
	w.Write(data)   //nolint:errcheck // a buffer
	w.Close()       //nolint:errcheck // a buffer
	enc := base64.StdEncoding.EncodeToString(data)
	var b64 strings.Builder
	for len(enc) > 76 {
		b64.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b64.WriteString(enc)
	for _, tt := range []struct{ enc, in string }{{"quoted-printable", qp.String()}, {"base64", b64.String()}} {
		r, _ := decodeTransfer(tt.enc, strings.NewReader(tt.in))
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: %d bytes, %v; want the %d bytes encoded", tt.enc, len(got), err, len(data))
		}
	}
}

func TestDecodeTransferPassesReadErrors(t *testing.T) {
	broken := errors.New("broken")
	for _, enc := range []string{"", "base64", "quoted-printable"} {
		r, _ := decodeTransfer(enc, io.MultiReader(strings.NewReader("SGk="), iotest.ErrReader(broken)))
		got, err := io.ReadAll(r)
		if !errors.Is(err, broken) {
			t.Errorf("%q: error %v, want %v", enc, err, broken)
		}
		if want := map[string]string{"": "SGk=", "base64": "Hi", "quoted-printable": "SGk"}[enc]; string(got) != want {
			t.Errorf("%q: read %q before the error, want %q", enc, got, want)
		}
	}
}
