package mailin

import (
	"fmt"
	"strings"
	"testing"
)

func TestMediaType(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		value  string
		params map[string]string
	}{
		{"plain", "text/plain", "text/plain", map[string]string{}},
		{"case and spaces", "  Text/HTML ;  Charset = UTF-8 ", "text/html", map[string]string{"charset": "UTF-8"}},
		{"quoted with separators", `multipart/mixed; boundary="a;b=c \"d\""; x=1`, "multipart/mixed", map[string]string{"boundary": `a;b=c "d"`, "x": "1"}},
		{"unterminated quote", `attachment; filename="informe.pdf`, "attachment", map[string]string{"filename": "informe.pdf"}},
		{"first of duplicates", `attachment; filename=a.pdf; filename=b.pdf`, "attachment", map[string]string{"filename": "a.pdf"}},
		{"malformed pieces skipped", `attachment; ; junk; =x; filename=a.pdf;`, "attachment", map[string]string{"filename": "a.pdf"}},
		{"folded", "attachment;\r\n\tfilename=\"a.pdf\"", "attachment", map[string]string{"filename": "a.pdf"}},
		{"RFC 2231 latin-1", `attachment; filename*=iso-8859-1''informe%20a%F1o.pdf`, "attachment", map[string]string{"filename": "informe año.pdf"}},
		{"RFC 2231 UTF-8 with language", `attachment; filename*=UTF-8'es'%C3%B1and%C3%BA.pdf`, "attachment", map[string]string{"filename": "ñandú.pdf"}},
		{"RFC 2231 windows-1252", `attachment; filename*=windows-1252''%93cita%94.txt`, "attachment", map[string]string{"filename": "“cita”.txt"}},
		{"RFC 2231 Shift_JIS", `attachment; filename*=Shift_JIS''%93%FA%96%7B.txt`, "attachment", map[string]string{"filename": "日本.txt"}},
		{"RFC 2231 unknown charset", `attachment; filename*=x-unknown''caf%E9.txt`, "attachment", map[string]string{"filename": "café.txt"}},
		{"RFC 2231 without charset", `attachment; filename*=''caf%C3%A9.txt`, "attachment", map[string]string{"filename": "café.txt"}},
		{"RFC 2231 without quotes", `attachment; filename*=caf%C3%A9.txt`, "attachment", map[string]string{"filename": "café.txt"}},
		{"RFC 2231 stray percent", `attachment; filename*=UTF-8''100%25%20y%20un%20%ZZ.txt`, "attachment", map[string]string{"filename": "100% y un %ZZ.txt"}},
		{"RFC 2231 wins over plain, either order", `attachment; filename="plain.pdf"; filename*=UTF-8''extended.pdf`, "attachment", map[string]string{"filename": "extended.pdf"}},
		{"RFC 2231 wins over plain, extended first", `attachment; filename*=UTF-8''extended.pdf; filename="plain.pdf"`, "attachment", map[string]string{"filename": "extended.pdf"}},
		{"continuations, encoded", "attachment; filename*0*=UTF-8''Informe%20de%20;\r\n filename*1*=la%20reuni%C3%B3n; filename*2=\" final.docx\"", "attachment", map[string]string{"filename": "Informe de la reunión final.docx"}},
		{"continuations out of order", `attachment; filename*1="b"; filename*0="a"; filename*2="c.txt"`, "attachment", map[string]string{"filename": "abc.txt"}},
		{"continuations, latin-1 across pieces", `attachment; filename*0*=iso-8859-1''a%F1; filename*1*=o%E9.txt`, "attachment", map[string]string{"filename": "añoé.txt"}},
		{"continuation with a bad number", `attachment; filename*x="no"; filename*0="si.txt"`, "attachment", map[string]string{"filename": "si.txt"}},
		{"RFC 2047 in quotes", `attachment; filename="=?UTF-8?B?w5FhbmTDuiBjw7NkaWdvLnBkZg==?="`, "attachment", map[string]string{"filename": "Ñandú código.pdf"}},
		{"RFC 2047 latin-1, Outlook", `application/octet-stream; name="=?iso-8859-1?Q?Presupuesto_a=F1o_2026.pdf?="`, "application/octet-stream", map[string]string{"name": "Presupuesto año 2026.pdf"}},
		{"RFC 2047 split in two words", `attachment; filename="=?UTF-8?Q?informe_?= =?UTF-8?Q?a=C3=B1o.pdf?="`, "attachment", map[string]string{"filename": "informe año.pdf"}},
		{"raw 8-bit latin-1", "attachment; filename=\"a\xf1o.pdf\"", "attachment", map[string]string{"filename": "año.pdf"}},
		{"raw UTF-8", `attachment; filename="año.pdf"`, "attachment", map[string]string{"filename": "año.pdf"}},
		{"NUL in a name", "attachment; filename=\"a\x00b.pdf\"", "attachment", map[string]string{"filename": "ab.pdf"}},
		{"8-bit value and key", "text/pl\xe1in; ch\xe1rset=x", "text/pl\ufffdin", map[string]string{"ch\ufffdrset": "x"}},
		{"empty", "", "", map[string]string{}},
		{"only parameters", "; charset=utf-8", "", map[string]string{"charset": "utf-8"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			value, params := mediaType(tt.in)
			if value != tt.value || fmt.Sprint(params) != fmt.Sprint(tt.params) {
				t.Errorf("mediaType(%q) = %q, %q\n want %q, %q", tt.in, value, params, tt.value, tt.params)
			}
		})
	}
}

func TestSplitParams(t *testing.T) {
	tests := []struct {
		in   string
		want [][2]string
	}{
		{"", nil},
		{"; A=1; b = 2 ;c=\"3;4\"", [][2]string{{"a", "1"}, {"b", "2"}, {"c", "3;4"}}},
		{`; a="x\"y\\z"`, [][2]string{{"a", `x"y\z`}}},
		{`; a="`, [][2]string{{"a", ""}}},
		{`; a="\`, [][2]string{{"a", `\`}}},
		{"; novalue; b=1", [][2]string{{"b", "1"}}},
		{"; =1; b=", [][2]string{{"b", ""}}},
		{"; a=1 2", [][2]string{{"a", "1 2"}}},
		{"trailing", nil},
	}
	for _, tt := range tests {
		if got := splitParams(tt.in); fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("splitParams(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestDecodeText(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"ascii", "Hola", "Hola"},
		{"Q latin-1", "=?ISO-8859-1?Q?Facturaci=F3n_de_septiembre?=", "Facturación de septiembre"},
		{"B UTF-8", "=?UTF-8?B?wr9Ew7NuZGUgZXN0w6EgbWkgcGVkaWRvPw==?=", "¿Dónde está mi pedido?"},
		{"lower-case charset and encoding", "=?iso-8859-1?q?a=F1o?=", "año"},
		{"words joined, text around", "Re: =?UTF-8?Q?Facturaci=C3=B3n?= =?UTF-8?Q?_de_septiembre?= [#1]", "Re: Facturación de septiembre [#1]"},
		{"raw latin-1", "\xbfD\xf3nde est\xe1 mi pedido?", "¿Dónde está mi pedido?"},
		{"raw windows-1252", "\x93Hola\x94 \x80", "“Hola” €"},
		{"raw UTF-8", "¿Dónde está?", "¿Dónde está?"},
		{"latin-1 word with windows-1252 quotes", "=?iso-8859-1?Q?=93Urgente=94?=", "“Urgente”"},
		{"windows-1252 word", "=?windows-1252?Q?=80_100?=", "€ 100"},
		{"KOI8-R word", "=?koi8-r?B?8NLJ18XU?=", "Привет"},
		{"unknown charset kept", "=?x-unknown?Q?abc?=", "=?x-unknown?Q?abc?="},
		{"broken word kept", "=?UTF-8?Q?abc", "=?UTF-8?Q?abc"},
		{"encoded NUL dropped", "=?UTF-8?Q?a=00b?=", "ab"},
		{"raw NUL dropped", "a\x00b", "ab"},
		{"invalid UTF-8 in a UTF-8 word", "=?UTF-8?Q?a=F1o?=", "año"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := decodeText(tt.in); got != tt.want {
				t.Errorf("decodeText(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestDecodeCharset(t *testing.T) {
	tests := []struct {
		cs, in, want string
	}{
		{"", "plain", "plain"},
		{"utf-8", "año", "año"},
		{"UTF-8", "a\xf1o", "año"}, // mislabelled: read as Windows-1252
		{"us-ascii", "a\xf1o", "año"},
		{"iso-8859-1", "a\xf1o", "año"},
		{"ISO-8859-1", "\x93Gracias\x94 \x96 Jos\xe9", "“Gracias” – José"},
		{"latin1", "\x85", "…"},
		{"windows-1252", "It\x92s \x80", "It’s €"},
		{"iso-8859-15", "\xa4", "€"},
		{"iso-8859-2", "\xb1", "ą"},
		{"koi8-r", "\xf0\xd2\xc9\xd7\xc5\xd4", "Привет"},
		{"shift_jis", "\x93\xfa\x96\x7b", "日本"},
		{"utf-16le", "a\x00\xf1\x00", "añ"},
		{" \"utf-8\" ", "año", "año"},
		{"x-unknown", "caf\xe9", "café"},
		{"", "a\x00b", "ab"},
	}
	for _, tt := range tests {
		t.Run(tt.cs, func(t *testing.T) {
			if got := decodeCharset(tt.cs, tt.in); got != tt.want {
				t.Errorf("decodeCharset(%q, %q) = %q, want %q", tt.cs, tt.in, got, tt.want)
			}
		})
	}
}

func TestCleanFilename(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"informe.pdf", "informe.pdf"},
		{"../../etc/passwd", "passwd"},
		{"/etc/passwd", "passwd"},
		{`C:\Users\ana\Desktop\nota.txt`, "nota.txt"},
		{`..\..\evil.bat`, "evil.bat"},
		{"..", ""},
		{"/", ""},
		{" . ", ""},
		{"", ""},
		{"dir/", "dir"},
		{"  espacios.pdf  ", "espacios.pdf"},
		{"a\x00b\r\n\tc.pdf", "abc.pdf"},
		{"\"quoted\".pdf", "quoted.pdf"},
		{"factura\u202efdp.exe", "facturafdp.exe"}, // shown as "facturaexe.pdf"
		{"a\u200bb\ufeff.txt", "ab.txt"},
		{"bad\xffutf8.txt", "badutf8.txt"},
		{"año €.pdf", "año €.pdf"},
		{strings.Repeat("ñ", 300) + ".pdf", strings.Repeat("ñ", 196) + ".pdf"},
		{strings.Repeat("a", 250), strings.Repeat("a", 200)},
		{strings.Repeat("a", 150) + "." + strings.Repeat("b", 100), strings.Repeat("a", 150) + "." + strings.Repeat("b", 49)},
	}
	for _, tt := range tests {
		if got := cleanFilename(tt.in); got != tt.want {
			t.Errorf("cleanFilename(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestPercentDecode(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a%20b", "a b"},
		{"a+b", "a+b"},
		{"%F1", "\xf1"},
		{"100%", "100%"},
		{"%zz%41", "%zzA"},
		{"%4", "%4"},
		{"%+1", "%+1"},
	}
	for _, tt := range tests {
		if got := percentDecode(tt.in); got != tt.want {
			t.Errorf("percentDecode(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestHasC1Control(t *testing.T) {
	for s, want := range map[string]bool{
		"":                     false,
		"¿Dónde? ¡Hola! 1º":    false,
		"\u0093quoted\u0094":   true,
		"¿x\u0080":             true,
		"ends with \xc2":       false,
		"plain ascii":          false,
		"\u00a0no-break space": false,
	} {
		if got := hasC1Control(s); got != want {
			t.Errorf("hasC1Control(%q) = %v, want %v", s, got, want)
		}
	}
}
