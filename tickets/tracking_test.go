package tickets_test

import (
	"errors"
	"regexp"
	"testing"

	"github.com/helpdeskgw/helpdesk/tickets"
)

func TestNewTrackingIDShapeAndSpread(t *testing.T) {
	shape := regexp.MustCompile(`^[AEUYBDGHJLMNPQRSTVWXZ1-9]{3}-[AEUYBDGHJLMNPQRSTVWXZ1-9]{3}-[AEUYBDGHJLMNPQRSTVWXZ1-9]{4}$`)
	seen := map[string]bool{}
	counts := map[rune]int{}
	for range 3000 {
		id := tickets.NewTrackingID()
		if !shape.MatchString(id) {
			t.Fatalf("tracking ID %q has the wrong shape", id)
		}
		if seen[id] {
			t.Fatalf("tracking ID %q drawn twice in 3000", id)
		}
		seen[id] = true
		for _, r := range id {
			counts[r]++
		}
	}
	// 30,000 letters over 30 symbols: each near 1,000. A biased draw (such
	// as b%30 without rejection) shows up as letters far from it.
	delete(counts, '-')
	if len(counts) != 30 {
		t.Fatalf("saw %d distinct symbols, want all 30: %v", len(counts), counts)
	}
	for r, n := range counts {
		if n < 800 || n > 1200 {
			t.Errorf("symbol %q drawn %d times of 30000, want about 1000", r, n)
		}
	}
}

func TestParseTrackingID(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"ABC-DEF-GHJL", ""}, // C and F are not in the alphabet
		{"ABD-BDE-GHJL", "ABD-BDE-GHJL"},
		{"abd bde ghjl", "ABD-BDE-GHJL"},
		{"abdbdeghjl", "ABD-BDE-GHJL"},
		{" #ABD-BDE-GHJL ", "ABD-BDE-GHJL"},
		{"AB1-BDE-GHJL", "AB1-BDE-GHJL"},
		{"abi-bde-ghjl", "AB1-BDE-GHJL"}, // I read as 1
		{"ABD-BDE-GHJ", ""},
		{"ABD-BDE-GHJLL", ""},
		{"ÁBD-BDE-GHJL", ""},
		{"", ""},
	} {
		got, err := tickets.ParseTrackingID(tc.in)
		if tc.want == "" {
			if !errors.Is(err, tickets.ErrInvalid) {
				t.Errorf("ParseTrackingID(%q) = %q, %v; want ErrInvalid", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseTrackingID(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestNormalizeAddress(t *testing.T) {
	for in, want := range map[string]string{
		"Support@Example.COM":        "support@example.com",
		"support+urgent@example.com": "support@example.com",
		" soporte@localhost ":        "soporte@localhost",
		"+x@example.com":             "+x@example.com",
		"no-at-sign":                 "",
		"@example.com":               "",
		"user@":                      "",
	} {
		if got := tickets.NormalizeAddress(in); got != want {
			t.Errorf("NormalizeAddress(%q) = %q, want %q", in, got, want)
		}
	}
}
