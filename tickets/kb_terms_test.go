package tickets

import (
	"fmt"
	"strings"
	"testing"
	"unicode"
)

func TestSuggestTerms(t *testing.T) {
	for in, want := range map[string]string{
		"No puedo descarg":            "no | puedo | descarg:*",
		"No puedo descargar ":         "no | puedo | descargar",
		"¿Factura? 'x' & | ! <-> :*":  "factura",
		"a b":                         "",
		"Contraseña contraseña olvid": "contraseña | olvid:*",
		"ab":                          "ab",
	} {
		if got := suggestTerms(in, 40); got != want {
			t.Errorf("suggestTerms(%q) = %q, want %q", in, got, want)
		}
	}
	// Words repeated and too long are not counted: 50 distinct ones.
	long := strings.Repeat("palabra ", 10) + strings.Repeat("x", 41)
	for i := range 49 {
		long += fmt.Sprintf(" palabra%d", i)
	}
	for _, max := range []int{40, 20} {
		if n := strings.Count(suggestTerms(long, max), "|") + 1; n != max {
			t.Errorf("%d words, want %d", n, max)
		}
	}
}

// FuzzSuggestTerms checks that whatever a customer types, the query source
// holds only words, prefixes and "|": nothing to_tsquery would read
// as other syntax.
func FuzzSuggestTerms(f *testing.F) {
	f.Add("No puedo descarg")
	f.Add("'a' & !b <-> c:* (d)")
	f.Add("\u0301\u00e9\U0001F600 x")
	f.Fuzz(func(t *testing.T, s string) {
		out := suggestTerms(s, 40)
		if out == "" {
			return
		}
		for _, term := range strings.Split(out, " | ") {
			word, prefix, found := strings.Cut(term, ":")
			if (found && prefix != "*") || word == "" {
				t.Fatalf("term %q of %q", term, out)
			}
			for _, r := range word {
				if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
					t.Fatalf("term %q of %q holds %q", term, out, r)
				}
			}
		}
	})
}
