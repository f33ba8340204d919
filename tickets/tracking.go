package tickets

import (
	"crypto/rand"
	"fmt"
	"strings"
)

// trackingAlphabet has no look-alikes (no 0/O, no I, no C/F/K), as Hesk's;
// unlike Hesk we draw from it with crypto/rand, so IDs cannot be predicted.
const trackingAlphabet = "AEUYBDGHJLMNPQRSTVWXZ123456789"

// trackingLen is the number of characters of a tracking ID, dashes aside.
const trackingLen = 10

// NewTrackingID returns a random tracking ID such as "ABC-DEF-GHIJ".
func NewTrackingID() string {
	const n = byte(len(trackingAlphabet))
	// Rejection sampling keeps the draw uniform: 256 is not a multiple of 30.
	const limit = 256 - 256%int(n)
	out := make([]byte, 0, trackingLen)
	var buf [32]byte
	for len(out) < trackingLen {
		if _, err := rand.Read(buf[:]); err != nil {
			panic(fmt.Sprintf("crypto/rand failed: %v", err)) // never returns an error since Go 1.24
		}
		for _, b := range buf {
			if int(b) < limit && len(out) < trackingLen {
				out = append(out, trackingAlphabet[b%n])
			}
		}
	}
	return formatTracking(string(out))
}

func formatTracking(s string) string {
	return s[:3] + "-" + s[3:6] + "-" + s[6:]
}

// ParseTrackingID accepts what a person might type for a tracking ID: any
// case, with or without dashes, spaces or a leading '#', and an I for a 1.
// It returns the canonical form "ABC-DEF-GHIJ".
func ParseTrackingID(s string) (string, error) {
	var b strings.Builder
	for _, r := range strings.ToUpper(s) {
		switch {
		case r == '-' || r == ' ' || r == '\t' || r == '#' || r == '.' || r == '_':
			continue
		case r == 'I':
			r = '1'
		}
		if r > 0x7f || !strings.ContainsRune(trackingAlphabet, r) {
			return "", fmt.Errorf("tracking ID %q: unexpected character %q: %w", s, r, ErrInvalid)
		}
		b.WriteRune(r)
	}
	if b.Len() != trackingLen {
		return "", fmt.Errorf("tracking ID %q: want %d characters, got %d: %w", s, trackingLen, b.Len(), ErrInvalid)
	}
	return formatTracking(b.String()), nil
}
