package mailout

import (
	"fmt"
	"mime"
	netmail "net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-message/mail"
)

// Header values come from stored text that customers wrote: their name, a
// subject, a Message-ID. The store cleans them, but a header is where a
// stray line break becomes a Bcc: of the attacker's choosing, so the
// composer makes each value safe itself.

// cleanLine makes stored text one line fit for a header: white space of
// any kind (line breaks included) becomes single spaces, and control and
// bidirectional formatting characters, which could split the header or
// disguise what the reader sees, are dropped.
func cleanLine(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case unicode.IsSpace(r):
			return ' '
		case unicode.IsControl(r), unicode.Is(unicode.Bidi_Control, r):
			return -1
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// checkAddress accepts s when it is one bare address, fit for a header and
// an SMTP command. An address is refused rather than cleaned: a cleaned
// address is someone else's.
func checkAddress(what, s string) error {
	a, err := netmail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s || cleanLine(s) != s {
		return fmt.Errorf("%s %q is not a mail address", what, s)
	}
	return nil
}

// maxMsgIDLen keeps a Message-ID, with the field's name and its brackets,
// on one line of at most 998 bytes: a longer one would be cut in two.
const maxMsgIDLen = 900

// usableMsgIDs returns the ids that can be written as "<id>" and read back
// as that one id: printable ASCII in the RFC 5322 form, so no space, bracket
// or line break in one can end the field or start another. The others are
// dropped: a reply missing one reference still threads by the rest.
func usableMsgIDs(ids ...string) []string {
	var out []string
	for _, id := range ids {
		if id == "" || len(id) > maxMsgIDLen || !printableASCII(id) {
			continue
		}
		var h mail.Header
		h.Set("In-Reply-To", "<"+id+">")
		if parsed, err := h.MsgIDList("In-Reply-To"); err != nil || len(parsed) != 1 || parsed[0] != id {
			continue
		}
		out = append(out, id)
	}
	return out
}

func printableASCII(s string) bool {
	for i := range len(s) {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// plainWordMax is the longest word of a subject left as it is. A longer one
// could not be folded onto a line of its own and would be cut (RFC 5322
// wants lines of at most 78 characters, and forbids more than 998); encoded,
// it is split into words that decode back into the one.
const plainWordMax = 70

// encodeSubject leaves the ASCII start of a subject readable as it is (the
// "[ABC-DEF-GHIJ]" tag above all, which filters and other systems match on)
// and encodes the rest as RFC 2047 words, from the first word that is not
// plain ASCII or is too long to fold.
func encodeSubject(s string) string {
	// A customer's subject may spell out an encoded word ("=?utf-8?q?...")
	// that mail clients would decode into a fake tag; a zero-width space
	// keeps it literal (and makes that part encoded) without changing what
	// is shown.
	s = strings.ReplaceAll(s, "=?", "=\u200b?")
	cut, word := len(s), 0
	for i, r := range s {
		if r == ' ' {
			word = i + 1
			continue
		}
		if r >= utf8.RuneSelf || r < ' ' || r == 0x7f {
			cut = word
			break
		}
		if i-word >= plainWordMax {
			// The encoder leaves plain ASCII as it is; a zero-width space
			// makes it encode (and so split) the long word.
			s = s[:word] + "\u200b" + s[word:]
			cut = word
			break
		}
	}
	head, tail := s[:cut], s[cut:]
	if tail == "" {
		return head
	}
	return head + mime.QEncoding.Encode("utf-8", tail)
}
