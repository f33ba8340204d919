package mailin

import (
	"regexp"
	"strings"
	"unicode"

	"github.com/dimiro1/reply"
)

// Markers of quoted history are looked for only in lines (or wrapped
// attributions) of at most maxMarkerLen bytes: real ones are well under it,
// and it keeps every check on a line cheap whatever the mail.
const maxMarkerLen = 300

// dimiro1/reply matches with backtracking patterns that take minutes on a
// few kilobytes of hostile text (an 8 KB line of "wrote on " took two
// minutes), compiles several patterns for every line it reads, and drops
// lines it takes for signatures, stray headers or delimiters ("-- ", "----",
// "De: …") wherever they are. So it never sees the mail: it is asked only
// whether one candidate line (or two, when wrapped) introduces a quote, at
// most twice per mail, and the candidate is short, ends with a colon, and
// has few digits (its date patterns backtrack over every digit).
const (
	maxProbeLen    = 200
	maxProbeDigits = 40
)

var (
	// attributionPattern is the line Gmail, Apple Mail and Thunderbird write
	// above a quote, in English or Spanish: "On Mon, Feb 3, 2025 at 10:15 AM
	// Support <support@example.com> wrote:", "El lun, 3 feb 2025 a las
	// 10:15, Soporte <soporte@example.com> escribió:".
	attributionPattern = regexp.MustCompile(`(?i)^(?:on|at|el)\s.*\s(?:wrote|writes|escribió|escribio)\s*:$`)
	emailPattern       = regexp.MustCompile(`[^\s<>()\[\]@,;:"]+@[^\s<>()\[\]@,;:"]+\.[^\s<>()\[\]@,;:"]+`)
	// originalMessagePattern is the separator Outlook and older clients
	// write above the quoted mail.
	originalMessagePattern = regexp.MustCompile(`(?i)^[*\s]*-{2,}\s*(?:original message|mensaje original|ursprüngliche nachricht|mensagem original|message d'origine|messaggio originale|reply message|原始邮件)\s*-{2,}[*\s]*$`)
	// forwardPattern is the line above a forwarded mail.
	forwardPattern = regexp.MustCompile(`(?i)^[*\s]*(?:-{2,}\s*(?:forwarded message|mensaje reenviado|message transféré|weitergeleitete nachricht|mensagem encaminhada|messaggio inoltrato)\s*-{2,}|(?:begin forwarded message|inicio del mensaje reenviado|comienzo del mensaje reenviado|début du message réexpédié|début du message transféré)\s*:)[*\s]*$`)
)

// StripQuoted returns the new text of a reply: text with the quoted history
// and what follows it removed, trailing blank lines trimmed. When nothing
// would remain (a mail that is all quote, or a top-less reply), it returns
// text unchanged (nothing is ever lost: callers keep the full text too).
//
// What it returns is always text itself or a prefix of it ending at a line
// end. The quoted history starts at the first of:
//   - an attribution ("On … wrote:", "El … escribió:", also wrapped over two
//     or three lines) followed by quoted lines or naming an address;
//   - an Outlook header block (From/Sent/To/Subject, De/Enviado/Para/Asunto),
//     with the rule of underscores above it;
//   - a separator such as "-----Original Message-----" or
//     "-----Mensaje original-----";
//   - the block of "> " lines that ends the mail, with the attribution above
//     it (in other languages as dimiro1/reply recognises them).
//
// A quote followed by more text of the sender's (an answer written below or
// between quoted lines) is new text and is kept. A forwarded mail ("----------
// Forwarded message ---------", "Begin forwarded message:") is content the
// sender passes on, not history: from it on, everything is kept. Signatures,
// "-- " included, are kept: the delimiter is not reliable enough to drop what
// follows it.
func StripQuoted(text string) string {
	lines := strings.SplitAfter(text, "\n")
	n := 0
	for _, l := range lines[:quoteStart(lines)] {
		n += len(l)
	}
	kept := strings.TrimRightFunc(text[:n], unicode.IsSpace)
	if kept == "" {
		return text
	}
	return kept
}

// quoteStart returns the index of the line where the quoted history starts,
// len(lines) when there is none.
func quoteStart(lines []string) int {
	for i := 0; i < len(lines); {
		line := strings.TrimSpace(lines[i])
		if line == "" || len(line) > maxMarkerLen || isQuoteLine(line) {
			i++
			continue
		}
		// Both patterns need a rule of dashes or a final colon, which
		// spares most lines the patterns.
		marker := strings.Contains(line, "--") || strings.HasSuffix(strings.TrimRight(line, "* \t"), ":")
		if marker && forwardPattern.MatchString(line) {
			return len(lines)
		}
		if (marker && originalMessagePattern.MatchString(line)) || isHeaderBlock(lines, i) {
			return ruleAbove(lines, i)
		}
		n := attributionAt(lines, i)
		if n == 0 {
			i++
			continue
		}
		if !quoteFollows(lines, i+n) {
			return i // the quote follows without "> " marks
		}
		end := quoteBlockEnd(lines, nextNonBlank(lines, i+n))
		if nextNonBlank(lines, end) == len(lines) {
			return i
		}
		i = end // the sender answers below the quote: new text
	}
	return trailingQuoteStart(lines)
}

// attributionAt returns how many lines, from i, make an English or Spanish
// attribution; 0 when they make none. To be told from a sentence that
// happens to start with "On" and end with "wrote:", it must hold a digit
// (the date) and name an address or be followed by a quote; wrapped over
// lines (Gmail wraps long ones), it must do both.
func attributionAt(lines []string, i int) int {
	if !startsAttribution(strings.TrimSpace(lines[i])) {
		return 0 // the cheap test that spares the pattern nearly every line
	}
	window := ""
	for n := 1; n <= 3 && i+n <= len(lines); n++ {
		line := strings.TrimSpace(lines[i+n-1])
		if line == "" || isQuoteLine(line) || (n > 1 && startsAttribution(line)) {
			return 0 // a line that starts one is looked at on its own
		}
		if n > 1 {
			window += " "
		}
		if window += line; len(window) > maxMarkerLen {
			return 0
		}
		if !attributionPattern.MatchString(window) || !strings.ContainsAny(window, "0123456789") {
			continue
		}
		email := emailPattern.MatchString(window)
		if (n == 1 && (email || quoteFollows(lines, i+1))) || (email && quoteFollows(lines, i+n)) {
			return n
		}
	}
	return 0
}

// startsAttribution reports whether line starts as attributionPattern does.
func startsAttribution(line string) bool {
	if len(line) < 3 || (line[2] != ' ' && line[2] != '\t') {
		return false
	}
	w := strings.ToLower(line[:2])
	return w == "on" || w == "at" || w == "el"
}

// trailingQuoteStart returns where the block of quoted lines that ends the
// mail starts, its attribution included; len(lines) when the mail does not
// end with a quote.
func trailingQuoteStart(lines []string) int {
	end := len(lines)
	for end > 0 && strings.TrimSpace(lines[end-1]) == "" {
		end--
	}
	if end == 0 || !isQuoteLine(strings.TrimSpace(lines[end-1])) {
		return len(lines)
	}
	start := end - 1
	for start > 0 && (strings.TrimSpace(lines[start-1]) == "" || isQuoteLine(strings.TrimSpace(lines[start-1]))) {
		start--
	}
	return start - attributionAbove(lines, start)
}

// attributionAbove returns how many lines right above a quote that starts
// at line start (one, or two when wrapped) are its attribution: in English
// or Spanish by attributionPattern, in other languages as dimiro1/reply
// knows them provided they hold a date or an address (its patterns also
// take sentences such as "El técnico me escribió:"). A line that is an
// attribution by itself is preferred to one with the line above it, which
// may be the sender's last line.
func attributionAbove(lines []string, start int) int {
	if start == 0 {
		return 0
	}
	last := strings.TrimSpace(lines[start-1])
	prev := ""
	if start >= 2 {
		if p := strings.TrimSpace(lines[start-2]); !isQuoteLine(p) {
			prev = p
		}
	}
	wrapped := prev + " " + last
	switch {
	case len(last) > maxMarkerLen:
		return 0
	case attributionPattern.MatchString(last):
		return 1
	case prev != "" && len(wrapped) <= maxMarkerLen && attributionPattern.MatchString(wrapped):
		return 2
	case prev != "" && replyAttribution(prev+"\n"+last):
		return 2
	case replyAttribution(last):
		return 1
	}
	return 0
}

// replyAttribution reports whether dimiro1/reply takes window for an
// attribution, when it holds a date or an address.
func replyAttribution(window string) bool {
	if !strings.ContainsAny(window, "0123456789") && !emailPattern.MatchString(window) {
		return false
	}
	return replyMarks(window)
}

// replyMarks asks dimiro1/reply whether window introduces quoted history,
// within the bounds that keep it fast (see maxProbeLen).
func replyMarks(window string) bool {
	if len(window) > maxProbeLen || countDigits(window) > maxProbeDigits {
		return false
	}
	if t := strings.TrimRight(window, " \t*"); !strings.HasSuffix(t, ":") && !strings.HasSuffix(t, "：") {
		return false
	}
	// Between two lines of text, a marker makes the library keep only the
	// text above it; any other line is kept, or dropped alone.
	return reply.FromText("x\n\n"+window+"\n\nx") == "x"
}

func countDigits(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			n++
		}
	}
	return n
}

// Kinds of the fields of an Outlook header block.
const (
	fieldNone = iota
	fieldFrom
	fieldDate
	fieldTo
	fieldSubject
)

// isHeaderBlock reports whether the lines from i are the header block Outlook
// writes above the quoted mail: From first, then a date and a recipient or
// subject, three fields at least, with at most two lines of wrapped values.
func isHeaderBlock(lines []string, i int) bool {
	if headerFieldKind(strings.TrimSpace(lines[i])) != fieldFrom {
		return false
	}
	var seen [fieldSubject + 1]bool
	fields, other := 0, 0
	for j := i; j < len(lines) && j < i+12; j++ {
		line := strings.TrimSpace(lines[j])
		if line == "" {
			break
		}
		k := headerFieldKind(line)
		if k == fieldNone {
			if other++; other > 2 {
				break
			}
			continue
		}
		seen[k] = true
		fields++
	}
	return fields >= 3 && seen[fieldDate] && (seen[fieldTo] || seen[fieldSubject])
}

// headerFieldKind reads "From: x", also bold as html2text writes it
// ("*From:* x"), in the languages Outlook speaks to our customers and a few
// more.
func headerFieldKind(line string) int {
	name, value, ok := strings.Cut(strings.TrimLeft(line, "* \t"), ":")
	if !ok || len(name) > 25 || strings.Trim(value, "* \t") == "" {
		return fieldNone
	}
	switch strings.ToLower(strings.Trim(name, "* \t")) {
	case "from", "de", "von", "da", "van", "från", "fra", "expéditeur":
		return fieldFrom
	case "sent", "date", "enviado", "enviado el", "fecha", "gesendet", "datum", "envoyé", "data", "enviada em", "skickat", "sendt":
		return fieldDate
	case "to", "para", "an", "à", "a", "aan", "till", "til", "destinataire", "cc", "cco", "bcc":
		return fieldTo
	case "subject", "asunto", "betreff", "objet", "oggetto", "assunto", "onderwerp", "ämne", "emne":
		return fieldSubject
	}
	return fieldNone
}

// ruleAbove moves a cut at line i up to the rule Outlook draws above its
// header block ("________________________________"), when there is one.
func ruleAbove(lines []string, i int) int {
	j := i - 1
	for j >= 0 && strings.TrimSpace(lines[j]) == "" {
		j--
	}
	if j >= 0 && isRule(strings.TrimSpace(lines[j])) {
		return j
	}
	return i
}

// isRule reports whether line is a horizontal rule of underscores, dashes
// or equals signs; "-- " (a signature delimiter) is too short to be one.
func isRule(line string) bool {
	return len(line) >= 5 && strings.Trim(line, "_-=") == ""
}

func isQuoteLine(trimmed string) bool { return strings.HasPrefix(trimmed, ">") }

// nextNonBlank returns the index of the first line from i that is not
// blank, len(lines) when there is none.
func nextNonBlank(lines []string, i int) int {
	for i < len(lines) && strings.TrimSpace(lines[i]) == "" {
		i++
	}
	return i
}

// quoteFollows reports whether the first line from i that is not blank is
// quoted.
func quoteFollows(lines []string, i int) bool {
	next := nextNonBlank(lines, i)
	return next < len(lines) && isQuoteLine(strings.TrimSpace(lines[next]))
}

// quoteBlockEnd returns the index of the first line from i that is neither
// quoted nor blank, len(lines) when there is none.
func quoteBlockEnd(lines []string, i int) int {
	for i < len(lines) {
		if line := strings.TrimSpace(lines[i]); line != "" && !isQuoteLine(line) {
			break
		}
		i++
	}
	return i
}
