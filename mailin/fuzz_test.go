package mailin

import (
	"bytes"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParse feeds Parse arbitrary mail. It must not panic, must not fail
// while the spool is writable, and must give text fit to store: valid UTF-8
// without NUL characters (PostgreSQL refuses both), and attachments whose
// size and hash match their bytes.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob("testdata/*.eml")
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		raw, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte(nested(maxDepth + 2)))
	f.Add([]byte("From: a@example.org\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: multipart/alternative; boundary=c\r\n\r\n--c\r\n\r\nx\r\n--b--\r\n"))

	f.Fuzz(func(t *testing.T, raw []byte) {
		dir := t.TempDir()
		p, err := Parse(bytes.NewReader(raw), dir)
		if err != nil {
			t.Fatalf("Parse with a writable spool: %v", err)
		}
		checkStorable(t, "Subject", p.Subject)
		checkStorable(t, "Text", p.Text)
		checkStorable(t, "HTML", p.HTML)
		checkStorable(t, "From.Name", p.From.Name)
		checkStorable(t, "From.Email", p.From.Email)
		checkStorable(t, "MessageID", p.MessageID)
		checkStorable(t, "InReplyTo", p.InReplyTo)
		for _, s := range p.References {
			checkStorable(t, "References", s)
		}
		for _, s := range p.Problems {
			checkStorable(t, "Problems", s)
		}
		if len(p.Problems) > 50 {
			t.Errorf("%d problems", len(p.Problems))
		}
		if len(p.Attachments) > maxParts {
			t.Errorf("%d attachments, more than maxParts", len(p.Attachments))
		}
		for _, a := range p.Attachments {
			checkStorable(t, "Filename", a.Filename)
			checkStorable(t, "ContentType", a.ContentType)
			checkStorable(t, "ContentID", a.ContentID)
			if a.Filename == "" || strings.ContainsAny(a.Filename, "/\\") {
				t.Errorf("filename %q", a.Filename)
			}
			if !isMediaType(a.ContentType) {
				t.Errorf("content type %q", a.ContentType)
			}
			data, err := io.ReadAll(io.NewSectionReader(a.Content.Data, 0, a.Content.Size))
			if err != nil || int64(len(data)) != a.Content.Size {
				t.Errorf("%s: read %d bytes back (%v), Size says %d", a.Filename, len(data), err, a.Content.Size)
			}
			if sha256.Sum256(data) != a.Content.SHA256 {
				t.Errorf("%s: SHA256 does not match the bytes", a.Filename)
			}
		}
		p.Close()
		if left, _ := os.ReadDir(dir); len(left) != 0 {
			t.Errorf("Close left %d files in the spool", len(left))
		}
	})
}

func checkStorable(t *testing.T, field, s string) {
	t.Helper()
	if !utf8.ValidString(s) {
		t.Errorf("%s is not valid UTF-8: %q", field, s)
	}
	if strings.IndexByte(s, 0) >= 0 {
		t.Errorf("%s holds a NUL: %q", field, s)
	}
}

// FuzzMediaType feeds mediaType and splitParams arbitrary header values:
// no panic, and the value and parameters come out valid UTF-8.
func FuzzMediaType(f *testing.F) {
	for _, s := range []string{
		"text/plain; charset=utf-8",
		`multipart/mixed; boundary="a;b=c \"d\""`,
		`attachment; filename*=iso-8859-1''informe%20a%F1o.pdf`,
		"attachment; filename*0*=UTF-8''Informe%20de%20;\r\n filename*1*=la%20reuni%C3%B3n; filename*2=\" final.docx\"",
		`attachment; filename="=?UTF-8?B?w5FhbmTDuiBjw7NkaWdvLnBkZg==?="`,
		`application/octet-stream; name="=?iso-8859-1?Q?Presupuesto_a=F1o_2026.pdf?="`,
		"attachment; filename=\"a\xf1o.pdf\"",
		`attachment; filename*=UTF-8''100%25%20%ZZ; filename*1*=%; x="\`,
		`attachment; filename*999*=a; filename*0*=Shift_JIS''%93%FA`,
		"",
		";;;===\"\"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		value, params := mediaType(s)
		if !utf8.ValidString(value) {
			t.Errorf("value %q is not valid UTF-8", value)
		}
		for k, v := range params {
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				t.Errorf("parameter %q=%q is not valid UTF-8", k, v)
			}
			if strings.IndexByte(v, 0) >= 0 {
				t.Errorf("parameter %q=%q holds a NUL", k, v)
			}
		}
		for _, kv := range splitParams(s) {
			if kv[0] == "" {
				t.Errorf("splitParams(%q) gives an empty key", s)
			}
			if kv[0] != strings.ToLower(kv[0]) {
				t.Errorf("splitParams(%q) gives the key %q, not lower-case", s, kv[0])
			}
			if utf8.ValidString(s) && (!utf8.ValidString(kv[0]) || !utf8.ValidString(kv[1])) {
				t.Errorf("splitParams(%q) gives %q=%q, not valid UTF-8", s, kv[0], kv[1])
			}
		}
		if name := cleanFilename(params["filename"]); !utf8.ValidString(name) || strings.ContainsAny(name, "/\\\x00") {
			t.Errorf("cleanFilename(%q) = %q", params["filename"], name)
		}
	})
}
