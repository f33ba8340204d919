package mailin

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzStripQuoted feeds StripQuoted arbitrary text. It must not panic, and
// must return the text itself or a non-blank prefix of it that ends where
// blank space does (a line end or trailing spaces), without trailing space.
func FuzzStripQuoted(f *testing.F) {
	for _, tc := range quoteCases() {
		f.Add(tc.text)
	}
	f.Fuzz(func(t *testing.T, text string) {
		got := StripQuoted(text)
		if got == text {
			return
		}
		if !strings.HasPrefix(text, got) {
			t.Fatalf("StripQuoted returned %q, not a prefix of the text", got)
		}
		if strings.TrimSpace(got) == "" {
			t.Fatalf("StripQuoted returned blank %q instead of the text", got)
		}
		if strings.TrimRightFunc(got, unicode.IsSpace) != got {
			t.Errorf("StripQuoted returned %q, with trailing space", got)
		}
		if r, _ := utf8.DecodeRuneInString(text[len(got):]); !unicode.IsSpace(r) {
			t.Errorf("StripQuoted cut %q inside a line: %q follows", got, text[len(got):])
		}
		if utf8.ValidString(text) && !utf8.ValidString(got) {
			t.Errorf("StripQuoted returned invalid UTF-8 %q", got)
		}
	})
}

// FuzzParseDeliveryReport feeds ParseDeliveryReport arbitrary mail through
// Parse. It must not panic, and what it reads must be fit to store: valid
// UTF-8 without NUL, one-line diagnostics within their limit, lower-case
// actions and well-formed status codes.
func FuzzParseDeliveryReport(f *testing.F) {
	for _, tc := range dsnCases() {
		// The cases built against the limits take the fuzzer a minute to
		// minimise each input derived from them.
		if len(tc.raw) <= 16<<10 {
			f.Add([]byte(tc.raw))
		}
	}
	statusCode := regexp.MustCompile(`^[245]\.\d{1,3}\.\d{1,3}$`)
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := Parse(bytes.NewReader(raw), t.TempDir())
		if err != nil {
			t.Fatalf("Parse with a writable spool: %v", err)
		}
		defer p.Close()
		report, ok := ParseDeliveryReport(p)
		if !ok {
			if report != nil {
				t.Fatalf("not a bounce, yet a report %+v", report)
			}
			return
		}
		checkStorable(t, "OriginalMessageID", report.OriginalMessageID)
		if len(report.Recipients) > maxReportRecipient {
			t.Errorf("%d recipients", len(report.Recipients))
		}
		for _, rc := range report.Recipients {
			for field, v := range map[string]string{"Address": rc.Address, "Action": rc.Action, "Status": rc.Status, "Diagnostic": rc.Diagnostic} {
				checkStorable(t, field, v)
				if strings.ContainsAny(v, "\r\n") {
					t.Errorf("%s spans lines: %q", field, v)
				}
			}
			if n := utf8.RuneCountInString(rc.Diagnostic); n > maxDiagnostic {
				t.Errorf("diagnostic of %d characters", n)
			}
			if n := utf8.RuneCountInString(rc.Address); n > maxReportField {
				t.Errorf("address of %d characters", n)
			}
			if rc.Action != strings.ToLower(rc.Action) {
				t.Errorf("action %q is not lower case", rc.Action)
			}
			if rc.Status != "" && !statusCode.MatchString(rc.Status) {
				t.Errorf("status %q", rc.Status)
			}
		}
	})
}
