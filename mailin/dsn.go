package mailin

import (
	"bufio"
	"bytes"
	"io"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message/textproto"

	"github.com/helpdeskgw/helpdesk/tickets"
)

// Bounds on what a delivery report costs to read, whatever it holds.
const (
	maxReportPart      = 64 << 10 // read of each status or returned part
	maxReportRecipient = 100      // we send each mail to a few addresses
	maxDiagnostic      = 500      // characters
	maxReportField     = 320      // characters of an address or action
)

// DeliveryReport is what a bounce says about a mail we sent.
type DeliveryReport struct {
	// OriginalMessageID is the Message-ID (no angle brackets) of the mail
	// that bounced, read from the returned message (message/rfc822) or its
	// headers (text/rfc822-headers) or, failing those, the report's
	// X-Original-Message-ID field (Gmail writes it); "" when absent.
	OriginalMessageID string
	Recipients        []DSNRecipient
	// Standard is true for a multipart/report; report-type=delivery-status
	// (RFC 3464); false for a non-standard bounce recognised by its returned
	// message only.
	Standard bool
}

// DSNRecipient is what a delivery report says of one recipient.
type DSNRecipient struct {
	Address    string // Final-Recipient (or Original-Recipient) without the "rfc822;" type
	Action     string // failed, delayed, delivered, relayed, expanded (lower case)
	Status     string // e.g. 5.1.1
	Diagnostic string // Diagnostic-Code without its type, one line, at most 500 characters
}

// Failed reports whether any recipient failed permanently (Action failed,
// or Status 5.x.x).
func (r *DeliveryReport) Failed() bool {
	if r == nil {
		return false
	}
	for _, rc := range r.Recipients {
		if rc.Action == "failed" || strings.HasPrefix(rc.Status, "5.") {
			return true
		}
	}
	return false
}

// ParseDeliveryReport reads a DSN from a parsed mail. It reports false when
// the mail is not a bounce.
//
// A bounce is a multipart/report of report-type delivery-status (or
// global-delivery-status), or a mail from MAILER-DAEMON or postmaster that
// carries a returned message, its headers or a delivery-status part (a
// report wrapped in another multipart, or an MTA that writes none). A bounce
// whose only trace of the returned mail is in its text (qmail's "Below this
// line is a copy of the message") is not one: telling it from a person's
// mail would mean guessing from prose; the Receiver still takes it for an
// automatic mail by its sender. Malformed parts give what could be read.
func ParseDeliveryReport(p *Parsed) (*DeliveryReport, bool) {
	if p == nil {
		return nil, false
	}
	ctype, params := mediaType(p.Header.Get("Content-Type"))
	reportType := strings.ToLower(strings.TrimSpace(params["report-type"]))
	report := &DeliveryReport{Standard: ctype == "multipart/report" &&
		(reportType == "delivery-status" || reportType == "global-delivery-status")}
	if !report.Standard && !isDaemonAddress(p.From.Email) {
		return nil, false
	}
	found := false
	var reportedID string
	for _, a := range p.Attachments {
		switch a.ContentType {
		case "message/delivery-status", "message/global-delivery-status":
			found = true
			groups := fieldGroups(readReportPart(a.Content), 0)
			for i, g := range groups {
				if i == 0 && reportedID == "" {
					reportedID = messageID(g.Get("X-Original-Message-Id"))
				}
				if rc, ok := dsnRecipient(g); ok && len(report.Recipients) < maxReportRecipient {
					report.Recipients = append(report.Recipients, rc)
				}
			}
		case "message/rfc822", "message/global", "text/rfc822-headers", "message/global-headers":
			found = true
			if report.OriginalMessageID == "" {
				if g := fieldGroups(readReportPart(a.Content), 1); len(g) > 0 {
					report.OriginalMessageID = messageID(g[0].Get("Message-Id"))
				}
			}
		}
	}
	if !report.Standard && !found {
		return nil, false
	}
	if report.OriginalMessageID == "" {
		report.OriginalMessageID = reportedID
	}
	return report, true
}

// isDaemonAddress reports whether addr is the mail system's own: the
// senders of bounces.
func isDaemonAddress(addr string) bool {
	local, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(addr)), "@")
	return local == "mailer-daemon" || local == "postmaster"
}

// readReportPart returns the first maxReportPart bytes of a part; a read
// error leaves what was read before it, which is what a report is read from.
func readReportPart(c tickets.Content) []byte {
	if c.Data == nil {
		return nil
	}
	b, _ := io.ReadAll(io.NewSectionReader(c.Data, 0, min(c.Size, maxReportPart)))
	return b
}

// fieldGroups reads the header-like groups of fields separated by blank
// lines that a delivery-status part is made of (and a message starts with),
// at most limit of them when limit is positive. Lines that are not fields
// are skipped, CRLF and LF both end lines, and a recipient group that lacks
// the blank line before the next one is split at its second
// Final-Recipient, so no group is lost to a malformed line.
func fieldGroups(b []byte, limit int) []textproto.Header {
	var groups []textproto.Header
	var fields bytes.Buffer
	hasRecipient := false
	flush := func() {
		if fields.Len() > 0 {
			fields.WriteString("\r\n")
			// Every line was checked, so it reads whole.
			h, _ := textproto.ReadHeader(bufio.NewReader(&fields))
			groups = append(groups, h)
		}
		fields.Reset()
		hasRecipient = false
	}
	for len(b) > 0 && (limit <= 0 || len(groups) < limit) {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte("\n"))
		line = bytes.TrimRight(line, "\r")
		switch {
		case len(bytes.TrimSpace(line)) == 0:
			flush()
		case line[0] == ' ' || line[0] == '\t':
			if fields.Len() > 0 { // a folded value
				fields.Write(line)
				fields.WriteString("\r\n")
			}
		case isHeaderField(line):
			if isField(line, "Final-Recipient") {
				if hasRecipient {
					flush()
				}
				hasRecipient = true
			}
			fields.Write(line)
			fields.WriteString("\r\n")
		}
	}
	if limit <= 0 || len(groups) < limit {
		flush()
	}
	return groups
}

// isField reports whether line is a field called name, in any case.
func isField(line []byte, name string) bool {
	key, _, ok := bytes.Cut(line, []byte(":"))
	return ok && strings.EqualFold(strings.TrimSpace(string(key)), name)
}

var statusPattern = regexp.MustCompile(`[245]\.\d{1,3}\.\d{1,3}`)

// dsnRecipient reads one per-recipient group; it reports false for a group
// about no recipient (the per-message one).
func dsnRecipient(h textproto.Header) (DSNRecipient, bool) {
	rc := DSNRecipient{
		Address:    dsnAddress(h.Get("Final-Recipient")),
		Status:     statusPattern.FindString(h.Get("Status")),
		Diagnostic: truncateRunes(oneLine(decodeText(withoutType(h.Get("Diagnostic-Code")))), maxDiagnostic),
	}
	if rc.Address == "" {
		rc.Address = dsnAddress(h.Get("Original-Recipient"))
	}
	if action := strings.Fields(h.Get("Action")); len(action) > 0 {
		rc.Action = truncateRunes(strings.ToLower(toUTF8(action[0])), maxReportField)
	}
	return rc, rc.Address != "" || rc.Action != "" || rc.Status != ""
}

// dsnAddress reads "rfc822; <a@example.org>" as "a@example.org".
func dsnAddress(v string) string {
	addr := strings.TrimSpace(strings.Trim(oneLine(withoutType(v)), "<>"))
	return truncateRunes(toUTF8(addr), maxReportField)
}

// withoutType drops the type of an address or diagnostic ("rfc822;",
// "smtp;"); a value without one is returned as it is.
func withoutType(v string) string {
	typ, rest, ok := strings.Cut(v, ";")
	typ = strings.TrimSpace(typ)
	if !ok || typ == "" || len(typ) > 20 {
		return v
	}
	for _, c := range typ {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return v
		}
	}
	return rest
}

// oneLine joins the lines of a folded value and collapses its spaces.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// truncateRunes returns the first n characters of s.
func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i := 0
	for range n {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return s[:i]
}
