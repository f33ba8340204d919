package tickets

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Address is a mailbox as it appears in a mail header.
type Address struct {
	Name  string
	Email string
}

// InboundMail is a received mail, already parsed, addressed to one
// department.
type InboundMail struct {
	Source       string // "smtp" or "imap"
	SourceRef    string // client address, or mailbox/UIDVALIDITY/UID
	Department   Department
	EnvelopeFrom string
	EnvelopeTo   string

	MessageID  string // without angle brackets; empty when the mail has none
	InReplyTo  string
	References []string
	From       Address
	Subject    string
	Text       string
	HTML       string // already sanitized
	// Attachments, inline parts included, in the order they appear.
	Attachments []InboundAttachment
	Raw         Content
	// ParseProblems lists what could not be read; what could was kept.
	ParseProblems []string
	// Automatic, when set, says why the sender is a machine (for example
	// "Auto-Submitted: auto-replied"); no acknowledgement is sent to it.
	Automatic string

	// NewText is Text without the quoted history: what a reply held as a
	// draft proposes to add.
	NewText string
	// SubjectTracking is the tracking ID the subject's tag names, in its
	// canonical form; "" when there is none.
	SubjectTracking string
	// Bounce, when set, is a delivery report about a mail.
	Bounce *Bounce
	// Auth is what was found about who really sent the mail.
	Auth Auth
}

// Bounce is what a delivery status notification says.
type Bounce struct {
	// OriginalMessageID is the Message-ID of the mail that bounced, when
	// the report returns it.
	OriginalMessageID string
	Recipients        []BouncedRecipient
}

// BouncedRecipient is one recipient a delivery report is about.
type BouncedRecipient struct {
	Address    string
	Action     string // failed, delayed, delivered, relayed, expanded
	Status     string // e.g. 5.1.1
	Diagnostic string
}

// failed reports whether delivery to the recipient failed for good.
func (r BouncedRecipient) failed() bool {
	return r.Action == "failed" || strings.HasPrefix(r.Status, "5.")
}

// Auth holds the SPF, DKIM and DMARC verdicts on a mail ("pass", "fail",
// "none", …; "" when not evaluated) and a line for people saying what was
// checked.
type Auth struct {
	SPF, DKIM, DMARC string
	Detail           string
}

// InboundAttachment is one file part of an inbound mail.
type InboundAttachment struct {
	Filename    string
	ContentType string
	ContentID   string
	Inline      bool
	Content     Content
}

// Disposition is what became of an inbound mail.
type Disposition string

const (
	DispositionTicket      Disposition = "ticket"
	DispositionDuplicate   Disposition = "duplicate"
	DispositionQuarantined Disposition = "quarantined"
	// DispositionDraft is a reply to a mail we sent, held for the ticket's
	// owner to review and post.
	DispositionDraft Disposition = "draft"
	// DispositionAutoReply is an automatic answer (out of office, …) to a
	// mail we sent, recorded against its ticket.
	DispositionAutoReply Disposition = "auto_reply"
	// DispositionBounce is a delivery report about a mail we sent.
	DispositionBounce Disposition = "bounce"
)

// IngestResult tells what IngestMail did.
type IngestResult struct {
	InboundID   int64
	Disposition Disposition
	Reason      string
	TicketID    int64
	TrackingID  string
	AckQueued   bool
	// DraftID is the held draft a reply became.
	DraftID int64
	// NoticeQueued says the ticket's owner is mailed about the draft.
	NoticeQueued bool
}

// dedupeKey identifies a mail across deliveries: its Message-ID with the
// From: address, or the hash of its bytes when it has no Message-ID (such
// mail is deduplicated, never dropped). The address keeps two senders whose
// software makes poor Message-IDs ("12345") from passing for each other.
//
// It is hashed: it goes into a unique index, and a hostile mail's header can
// hold an address far longer than an index entry.
func dedupeKey(in *InboundMail) string {
	if in.MessageID != "" {
		sum := sha256.Sum256([]byte(in.MessageID + "\x00" + strings.ToLower(in.From.Email)))
		return "id:" + hex.EncodeToString(sum[:])
	}
	return "sha256:" + hex.EncodeToString(in.Raw.SHA256[:])
}

// customerAddress is who the ticket belongs to: the From: address, or the
// envelope sender when From: is unusable (RFC 5321's limits included: a
// 64-character local part, 254 in all).
func customerAddress(in *InboundMail) string {
	for _, a := range []string{in.From.Email, in.EnvelopeFrom} {
		if addr, ok := plainAddress(a); ok {
			return addr
		}
	}
	return ""
}

// plainAddress returns a as an address mail can be sent to, its domain in
// lower case, and whether it is one.
func plainAddress(a string) (string, bool) {
	a = strings.TrimSpace(a)
	at := strings.LastIndexByte(a, '@')
	if at > 0 && at <= 64 && at < len(a)-1 && len(a) <= 254 && !strings.ContainsAny(a, " <>\r\n\t") {
		return a[:at] + "@" + strings.ToLower(a[at+1:]), true
	}
	return "", false
}

// newMessageID returns a globally unique Message-ID (without brackets) in the
// domain of the address mail is sent from.
func newMessageID(from string) string {
	domain := "localhost"
	if at := strings.LastIndexByte(from, '@'); at >= 0 && at < len(from)-1 {
		domain = from[at+1:]
	}
	var r [15]byte
	rand.Read(r[:]) //nolint:errcheck // never fails since Go 1.24
	return fmt.Sprintf("%s.%s@%s", strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(r[:])),
		time.Now().UTC().Format("20060102150405"), domain)
}

// maxReferences bounds the References header of mail we send; long threads
// keep their first and latest entries, as RFC 5322 suggests.
const maxReferences = 20

// threadReferences is the References list of an answer to a mail that had
// refs and the Message-ID parent.
func threadReferences(refs []string, parent string) []string {
	out := make([]string, 0, len(refs)+1)
	out = append(out, refs...)
	if parent != "" {
		out = append(out, parent)
	}
	if len(out) > maxReferences {
		out = append(out[:1], out[len(out)-maxReferences+1:]...)
	}
	return out
}

// storable returns a copy of in whose text PostgreSQL accepts (valid UTF-8
// without NUL bytes) and whose one-line fields are one line of sensible
// length: they end up in headers and pages. The raw source keeps the
// original.
func storable(in *InboundMail) *InboundMail {
	c := *in
	for _, p := range []*string{&c.Text, &c.HTML, &c.NewText} {
		*p = cleanText(*p)
	}
	for _, f := range []struct {
		p   *string
		max int
	}{
		{&c.Subject, 500}, {&c.From.Name, 200}, {&c.From.Email, 320}, {&c.EnvelopeFrom, 320}, {&c.EnvelopeTo, 2000},
		{&c.MessageID, 1000}, {&c.InReplyTo, 1000}, {&c.SourceRef, 300}, {&c.Automatic, 300},
		{&c.Auth.SPF, 20}, {&c.Auth.DKIM, 20}, {&c.Auth.DMARC, 20}, {&c.Auth.Detail, 1000},
	} {
		*f.p = oneLine(*f.p, f.max)
	}
	c.References = make([]string, len(in.References))
	for i, r := range in.References {
		c.References[i] = cleanText(r)
	}
	c.ParseProblems = make([]string, len(in.ParseProblems))
	for i, p := range in.ParseProblems {
		c.ParseProblems[i] = cleanText(p)
	}
	if in.Bounce != nil {
		b := *in.Bounce
		b.OriginalMessageID = oneLine(b.OriginalMessageID, 1000)
		b.Recipients = make([]BouncedRecipient, len(in.Bounce.Recipients))
		for i, r := range in.Bounce.Recipients {
			b.Recipients[i] = BouncedRecipient{
				Address: oneLine(r.Address, 320), Action: oneLine(strings.ToLower(r.Action), 20),
				Status: oneLine(r.Status, 20), Diagnostic: oneLine(r.Diagnostic, 500),
			}
		}
		c.Bounce = &b
	}
	c.Attachments = make([]InboundAttachment, len(in.Attachments))
	for i, a := range in.Attachments {
		a.Filename, a.ContentType, a.ContentID = oneLine(a.Filename, 255), oneLine(a.ContentType, 255), oneLine(a.ContentID, 1000)
		c.Attachments[i] = a
	}
	return &c
}

// oneLine cleans a header-like value: line breaks, other control
// characters and bidirectional overrides (which disguise text) become
// spaces, runs of spaces one, and it is cut to at most max characters.
func oneLine(s string, max int) string {
	s = cleanText(s)
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069)
	}), " ")
	if utf8.RuneCountInString(s) > max {
		s = string([]rune(s)[:max-1]) + "…"
	}
	return s
}

func cleanText(s string) string {
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
