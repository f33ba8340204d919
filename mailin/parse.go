package mailin

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/emersion/go-message/textproto"
	"github.com/inbucket/html2text"
	"github.com/microcosm-cc/bluemonday"

	"github.com/helpdeskgw/helpdesk/tickets"
)

// Limits that keep one hostile mail from costing unbounded work. What is past
// them is reported as a problem; the raw mail is kept whole regardless.
const (
	maxTextBytes = 1 << 20 // text or HTML body kept in the ticket
	maxParts     = 500
	maxDepth     = 32
	maxHeader    = 1 << 20
)

// Parsed is what could be read of a mail. Its attachments are spooled;
// Close releases them.
type Parsed struct {
	Header      textproto.Header
	MessageID   string
	InReplyTo   string
	References  []string
	From        tickets.Address
	Subject     string
	Date        time.Time
	Text        string
	HTML        string // sanitized
	Attachments []tickets.InboundAttachment
	// Problems says what could not be read, in words a person understands.
	Problems []string

	release []func()
	parts   int
}

// Close removes the spooled attachments.
func (p *Parsed) Close() {
	for _, r := range p.release {
		r()
	}
	p.release = nil
}

func (p *Parsed) problem(format string, args ...any) {
	if len(p.Problems) < 50 {
		p.Problems = append(p.Problems, fmt.Sprintf(format, args...))
	}
}

// Parse reads a mail leniently: whatever can be read is kept and whatever
// cannot is listed in Problems. It fails only when the spool cannot be
// written. Attachment bodies are spooled to tmpDir.
func Parse(r io.Reader, tmpDir string) (*Parsed, error) {
	p := &Parsed{}
	br := bufio.NewReader(r)
	p.Header = p.readHeaderBlock(br, "the mail")
	p.readHeader()
	var texts, htmls []string
	if err := p.walk(p.Header, br, nil, 0, tmpDir, &texts, &htmls); err != nil {
		p.Close()
		return nil, err
	}
	p.Text = strings.Join(texts, "\n\n")
	if len(htmls) > 0 {
		p.HTML = sanitizeHTML(strings.Join(htmls, "\n"))
		if strings.TrimSpace(p.Text) == "" {
			if t, err := html2text.FromString(p.HTML, html2text.Options{}); err == nil {
				p.Text = t
			} else {
				p.problem("HTML body could not be turned into text: %v", err)
			}
		}
	}
	return p, nil
}

// readHeaderBlock reads a header up to its blank line. A malformed line is
// reported and skipped, and reading goes on with the next one.
func (p *Parsed) readHeaderBlock(br *bufio.Reader, where string) textproto.Header {
	var h textproto.Header
	for range 100 {
		part, err := textproto.ReadHeader(br)
		for f := part.Fields(); f.Next(); {
			h.AddRaw(append(must(f.Raw()), '\r', '\n'))
		}
		if err == nil || errors.Is(err, io.EOF) {
			return h
		}
		p.problem("header of %s: %v", where, err)
		if _, err := br.Peek(1); err != nil {
			return h
		}
	}
	return h
}

func must(b []byte, _ error) []byte { return b }

// walk reads one part: a multipart's children in turn (a broken one does not
// lose its siblings), a text body, or an attachment.
func (p *Parsed) walk(h textproto.Header, body io.Reader, path []int, depth int, tmpDir string, texts, htmls *[]string) error {
	p.parts++
	if p.parts > maxParts {
		if p.parts == maxParts+1 {
			p.problem("more than %d parts; the rest is only in the raw mail", maxParts)
		}
		return nil
	}
	ctype, cparams := mediaType(h.Get("Content-Type"))
	if !strings.Contains(ctype, "/") {
		ctype = "text/plain"
	}
	if strings.HasPrefix(ctype, "multipart/") {
		if cparams["boundary"] != "" {
			return p.walkMultipart(body, cparams["boundary"], path, depth, tmpDir, texts, htmls)
		}
		p.problem("part %s is %s without a boundary; read as text", partName(path), ctype)
		ctype = "text/plain"
	}

	disp, dparams := mediaType(h.Get("Content-Disposition"))
	filename := dparams["filename"]
	if filename == "" {
		filename = cparams["name"]
	}
	decoded := decodeTransfer(h.Get("Content-Transfer-Encoding"), body)
	if (ctype == "text/plain" || ctype == "text/html") && filename == "" && disp != "attachment" {
		text, truncated, err := readLimited(decoded, maxTextBytes)
		if err != nil {
			p.problem("part %s (%s): %v; kept what could be read", partName(path), ctype, err)
		}
		if truncated {
			p.problem("part %s (%s) is longer than %d bytes; the rest is only in the raw mail", partName(path), ctype, maxTextBytes)
		}
		text = decodeCharset(cparams["charset"], text)
		if ctype == "text/html" {
			*htmls = append(*htmls, text)
		} else if strings.TrimSpace(text) != "" {
			*texts = append(*texts, text)
		}
		return nil
	}

	content, release, err := spool(decoded, tmpDir)
	if errors.Is(err, errSpool) {
		return err
	}
	if err != nil {
		p.problem("part %s (%s): %v; kept what could be read", partName(path), ctype, err)
	}
	p.release = append(p.release, release)
	cid := strings.Trim(strings.TrimSpace(h.Get("Content-Id")), "<>")
	name := cleanFilename(filename)
	if name == "" {
		name = defaultFilename(path, ctype)
	}
	p.Attachments = append(p.Attachments, tickets.InboundAttachment{
		Filename:    name,
		ContentType: ctype,
		ContentID:   cid,
		Inline:      disp == "inline" || (disp == "" && cid != ""),
		Content:     content,
	})
	return nil
}

func (p *Parsed) walkMultipart(body io.Reader, boundary string, path []int, depth int, tmpDir string, texts, htmls *[]string) error {
	if depth >= maxDepth {
		p.problem("multipart nested deeper than %d levels at part %s; the rest is only in the raw mail", maxDepth, partName(path))
		return nil
	}
	mr := textproto.NewMultipartReader(body, boundary)
	for i := 0; ; i++ {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			p.problem("part %s: %v; the rest of this multipart is only in the raw mail", partName(append(path, i)), err)
			return nil
		}
		if err := p.walk(part.Header, part, append(path, i), depth+1, tmpDir, texts, htmls); err != nil {
			return err
		}
	}
}

// readLimited reads up to limit bytes of r and discards the rest.
func readLimited(r io.Reader, limit int64) (string, bool, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit))
	if err != nil {
		return string(b), false, err
	}
	n, err := io.Copy(io.Discard, r)
	return string(b), n > 0, err
}

func partName(path []int) string {
	if len(path) == 0 {
		return "1"
	}
	s := make([]string, len(path))
	for i, n := range path {
		s[i] = fmt.Sprint(n + 1)
	}
	return strings.Join(s, ".")
}

func defaultFilename(path []int, ctype string) string {
	ext := ".bin"
	switch ctype {
	case "message/rfc822":
		ext = ".eml"
	case "text/plain":
		ext = ".txt"
	default:
		if exts, _ := mime.ExtensionsByType(ctype); len(exts) > 0 {
			ext = exts[0]
		}
	}
	return "part-" + strings.ReplaceAll(partName(path), ".", "-") + ext
}

var msgIDPattern = regexp.MustCompile(`<([^<>\s]{1,900})>`)

// readHeader fills the envelope fields from the top-level header.
func (p *Parsed) readHeader() {
	h := p.Header
	p.Subject = strings.TrimSpace(decodeText(h.Get("Subject")))
	if id := msgIDPattern.FindStringSubmatch(h.Get("Message-Id")); id != nil {
		p.MessageID = id[1]
	} else if v := strings.TrimSpace(h.Get("Message-Id")); v != "" && len(v) < 900 && !strings.ContainsAny(v, " \t") {
		p.MessageID = v
	}
	if id := msgIDPattern.FindStringSubmatch(h.Get("In-Reply-To")); id != nil {
		p.InReplyTo = id[1]
	}
	for _, m := range msgIDPattern.FindAllStringSubmatch(h.Get("References"), 100) {
		p.References = append(p.References, m[1])
	}
	if d, err := mail.ParseDate(h.Get("Date")); err == nil {
		p.Date = d
	}
	from := h.Get("From")
	if from == "" {
		from = h.Get("Sender")
	}
	if from == "" {
		p.problem("no From: header")
		return
	}
	addr, err := parseAddress(from)
	if err != nil {
		p.problem("From: %q: %v", from, err)
	}
	p.From = addr
}

var addrPattern = regexp.MustCompile(`[^\s<>"(),;:]+@[^\s<>"(),;:]+\.?[^\s<>"(),;:]*`)

// parseAddress reads the first address of a From: header; when the header
// is not valid RFC 5322 it still finds the address in it.
func parseAddress(v string) (tickets.Address, error) {
	parser := mail.AddressParser{WordDecoder: wordDecoder}
	if list, err := parser.ParseList(v); err == nil && len(list) > 0 {
		return tickets.Address{Name: toUTF8(list[0].Name), Email: list[0].Address}, nil
	}
	loc := addrPattern.FindStringIndex(v)
	if loc == nil {
		return tickets.Address{}, errors.New("no address found")
	}
	email := v[loc[0]:loc[1]]
	name := strings.Trim(strings.TrimSpace(v[:loc[0]]), `"'<> `)
	return tickets.Address{Name: decodeText(name), Email: toUTF8(email)}, nil
}

// htmlPolicy keeps customer HTML safe to show: bluemonday's policy for user
// content, with links that leak nothing and no remote images (they are
// tracking pixels more often than not); images of the mail itself (cid:) stay.
var htmlPolicy = func() *bluemonday.Policy {
	p := bluemonday.UGCPolicy()
	p.AllowURLSchemes("http", "https", "mailto", "cid")
	p.AllowDataURIImages()
	p.RequireNoReferrerOnLinks(true)
	p.AddTargetBlankToFullyQualifiedLinks(true)
	p.RewriteSrc(func(u *url.URL) {
		if u != nil && (u.Scheme == "http" || u.Scheme == "https") {
			*u = url.URL{Fragment: "remote-image-blocked"}
		}
	})
	return p
}()

func sanitizeHTML(s string) string { return htmlPolicy.Sanitize(s) }
