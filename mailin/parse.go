package mailin

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-message/textproto"
	"github.com/inbucket/html2text"
	"github.com/microcosm-cc/bluemonday"
	"golang.org/x/net/html"

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
	// textBytes and htmlBytes count the text and HTML kept so far: the
	// limit is for the whole mail, not each part.
	textBytes, htmlBytes int
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
		// Problems quote what they could not read; they are stored as text.
		p.Problems = append(p.Problems, toUTF8(fmt.Sprintf(format, args...)))
	}
}

// Parse reads a mail leniently: whatever can be read is kept and whatever
// cannot is listed in Problems. It fails only when the spool cannot be
// written. Attachment bodies are spooled to tmpDir.
func Parse(r io.Reader, tmpDir string) (*Parsed, error) {
	p := &Parsed{}
	defer func() {
		if v := recover(); v != nil {
			p.Close() // the spooled parts; the caller handles the panic
			panic(v)
		}
	}()
	br := bufio.NewReader(r)
	var body io.Reader = br
	var bodyStart []byte
	p.Header, bodyStart = p.readHeaderBlock(br)
	if bodyStart != nil {
		body = io.MultiReader(bytes.NewReader(bodyStart), br)
	}
	p.readHeader()
	var texts, htmls []string
	if err := p.walk(p.Header, body, nil, 0, tmpDir, &texts, &htmls); err != nil {
		p.Close()
		return nil, err
	}
	// One line end throughout, whatever each part had.
	p.Text = strings.ReplaceAll(strings.Join(texts, "\n\n"), "\r\n", "\n")
	if len(htmls) > 0 {
		p.HTML = toUTF8(sanitizeHTML(strings.Join(htmls, "\n")))
		if strings.TrimSpace(p.Text) == "" {
			if t, err := html2text.FromString(p.HTML, html2text.Options{}); err == nil {
				p.Text = t
			} else {
				// Too deep a tree for html2text: its words, without layout.
				p.Text = htmlWords(p.HTML)
				p.problem("HTML body could not be laid out as text (%v); its words are kept without layout", err)
			}
		}
	}
	return p, nil
}

// readHeaderBlock reads the mail's header up to its blank line, keeping each
// field's bytes as they are and in their order. A line that is not a header
// field is reported and skipped when more fields follow it; when none does,
// the mail lacks its blank line and that line is the start of the body, which
// readHeaderBlock returns. At most maxHeader bytes of fields are kept: a field
// that does not fit is dropped.
func (p *Parsed) readHeaderBlock(br *bufio.Reader) (textproto.Header, []byte) {
	var fields bytes.Buffer
	var bodyStart []byte
	tooLong := false
	for {
		line, err := readFoldedLine(br, maxHeader)
		if len(line) == 0 || isBlankLine(line) {
			break
		}
		switch {
		case isHeaderField(line):
			if fields.Len()+len(line) > maxHeader {
				if !tooLong {
					p.problem("header of the mail is longer than %d bytes; the rest is only in the raw mail", maxHeader)
				}
				tooLong = true
				break
			}
			fields.Write(line)
			if line[len(line)-1] != '\n' {
				fields.WriteString("\r\n")
			}
		case looksLikeHeaderLine(br):
			p.problem("header of the mail: line %q is not a header field; skipped", shorten(line, 80))
		default:
			p.problem("header of the mail ends without a blank line before %q; read as the start of the body", shorten(line, 80))
			bodyStart = line
		}
		if err != nil && !errors.Is(err, io.EOF) {
			p.problem("header of the mail: %v", err)
		}
		if err != nil || bodyStart != nil {
			break
		}
	}
	fields.WriteString("\r\n")
	h, err := textproto.ReadHeader(bufio.NewReader(&fields))
	if err != nil { // cannot happen: every field was checked
		p.problem("header of the mail: %v", err)
	}
	return h, bodyStart
}

// readFoldedLine reads one header line with its continuation lines, line
// ends included. Past limit bytes the rest of the line is read and dropped.
func readFoldedLine(br *bufio.Reader, limit int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line) < limit {
			line = append(line, chunk[:min(len(chunk), limit-len(line))]...)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil || isBlankLine(line) {
			return line, err
		}
		if next, err := br.Peek(1); err != nil || (next[0] != ' ' && next[0] != '\t') {
			return line, nil
		}
	}
}

func isBlankLine(line []byte) bool {
	return len(line) > 0 && len(bytes.TrimRight(line, "\r\n")) == 0
}

// isHeaderField reports whether line is "Name: value", the name being
// printable ASCII without a colon (RFC 5322 section 2.2); spaces before the
// colon are tolerated, as go-message does.
func isHeaderField(line []byte) bool {
	name, _, ok := bytes.Cut(line, []byte(":"))
	name = bytes.TrimRight(name, " \t")
	if !ok || len(name) == 0 {
		return false
	}
	for _, c := range name {
		if c < '!' || c > '~' {
			return false
		}
	}
	return true
}

// looksLikeHeaderLine reports whether the next line of br is a header field
// or the blank line that ends the header, without reading it.
func looksLikeHeaderLine(br *bufio.Reader) bool {
	next, _ := br.Peek(1000)
	if i := bytes.IndexByte(next, '\n'); i >= 0 {
		next = next[:i+1]
	}
	return isBlankLine(next) || isHeaderField(next)
}

func shorten(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	return strings.TrimRight(string(b), "\r\n")
}

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
	if !isMediaType(ctype) { // RFC 2045 section 5.2: read as plain text
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
	cte := h.Get("Content-Transfer-Encoding")
	decoded, known := decodeTransfer(cte, body)
	if !known {
		p.problem("part %s (%s) has the unknown Content-Transfer-Encoding %q; kept as it is", partName(path), ctype, shorten([]byte(cte), 40))
	}
	if (ctype == "text/plain" || ctype == "text/html") && filename == "" && disp != "attachment" {
		p.addText(decoded, ctype, cparams["charset"], path, texts, htmls)
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
	cid := toUTF8(strings.Trim(strings.TrimSpace(h.Get("Content-Id")), "<>"))
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

// addText keeps a text or HTML body, within what is left of maxTextBytes.
func (p *Parsed) addText(r io.Reader, ctype, charset string, path []int, texts, htmls *[]string) {
	kept := &p.textBytes
	if ctype == "text/html" {
		kept = &p.htmlBytes
	}
	limit := max(maxTextBytes-*kept, 0)
	raw, truncated, err := readLimited(r, int64(limit))
	if err != nil {
		p.problem("part %s (%s): %v; kept what could be read", partName(path), ctype, err)
	}
	if truncated && isUTF8Charset(charset) {
		raw = trimPartialRune(raw) // or decodeCharset would take it for Windows-1252
	}
	text, known := decodeCharsetKnown(charset, raw)
	if !known {
		p.problem("part %s (%s) is in the unknown charset %q; read as UTF-8, or Windows-1252 where it is not", partName(path), ctype, shorten([]byte(charset), 40))
	}
	if len(text) > limit { // a legacy charset takes more bytes in UTF-8
		text, truncated = trimPartialRune(text[:limit]), true
	}
	if truncated {
		p.problem("part %s (%s) goes past the %d bytes of text kept of a mail; the rest is only in the raw mail", partName(path), ctype, maxTextBytes)
	}
	*kept += len(text)
	if ctype == "text/html" {
		*htmls = append(*htmls, text)
	} else if strings.TrimSpace(text) != "" {
		*texts = append(*texts, text)
	}
}

func (p *Parsed) walkMultipart(body io.Reader, boundary string, path []int, depth int, tmpDir string, texts, htmls *[]string) error {
	if depth >= maxDepth {
		p.problem("multipart nested deeper than %d levels at part %s; the rest is only in the raw mail", maxDepth, partName(path))
		return nil
	}
	// What is read before the first part, to keep it as text when the
	// boundary never appears (a sender that declares a multipart and writes
	// plain text).
	seen := &headReader{r: body, limit: maxTextBytes + 1}
	mr := textproto.NewMultipartReader(seen, boundary)
	for i := 0; ; i++ {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil && i == 0 {
			io.Copy(io.Discard, seen) //nolint:errcheck // the multipart reader saw the error
			if !bytes.Contains(seen.head, []byte("--"+boundary)) {
				p.problem("part %s is a multipart whose boundary never appears; read as text", partName(path))
				p.addText(bytes.NewReader(seen.head), "text/plain", "", path, texts, htmls)
				return nil
			}
		}
		if err != nil {
			p.problem("part %s: %v; the rest of this multipart is only in the raw mail", partName(append(path, i)), err)
			return nil
		}
		seen.head, seen.limit = nil, 0 // the boundary is there
		if err := p.walk(part.Header, part, append(path, i), depth+1, tmpDir, texts, htmls); err != nil {
			return err
		}
	}
}

// headReader keeps the first limit bytes read through it.
type headReader struct {
	r     io.Reader
	head  []byte
	limit int
}

func (h *headReader) Read(b []byte) (int, error) {
	n, err := h.r.Read(b)
	if room := h.limit - len(h.head); room > 0 {
		h.head = append(h.head, b[:min(n, room)]...)
	}
	return n, err
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

// preferredExt is the extension of a nameless part of a common type, where
// the system's list offers several (image/jpeg: .jfif .jpe .jpeg .jpg …) in
// alphabetical order.
var preferredExt = map[string]string{
	"application/octet-stream": ".bin",
	"application/xml":          ".xml",
	"audio/mpeg":               ".mp3",
	"image/jpeg":               ".jpg",
	"message/rfc822":           ".eml",
	"text/calendar":            ".ics",
	"text/html":                ".html",
	"text/plain":               ".txt",
	"text/xml":                 ".xml",
	"video/mp4":                ".mp4",
}

func defaultFilename(path []int, ctype string) string {
	ext := ".bin"
	if e, ok := preferredExt[ctype]; ok {
		ext = e
	} else if exts, _ := mime.ExtensionsByType(ctype); len(exts) > 0 {
		ext = exts[0]
		// image/png → .png, video/webm → .webm when the list has it.
		_, sub, _ := strings.Cut(ctype, "/")
		for _, e := range exts {
			if e == "."+strings.TrimPrefix(sub, "x-") {
				ext = e
			}
		}
	}
	return "part-" + strings.ReplaceAll(partName(path), ".", "-") + ext
}

// isMediaType reports whether s is "type/subtype", both RFC 2045 tokens.
func isMediaType(s string) bool {
	typ, sub, ok := strings.Cut(s, "/")
	return ok && isToken(typ) && isToken(sub)
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?=`, c) >= 0 {
			return false
		}
	}
	return true
}

func isUTF8Charset(cs string) bool {
	cs = strings.ToLower(strings.TrimSpace(cs))
	return cs == "" || cs == "utf-8" || cs == "utf8" || cs == "us-ascii"
}

// trimPartialRune drops an incomplete UTF-8 sequence cut off at the end of s.
func trimPartialRune(s string) string {
	for i := 1; i <= utf8.UTFMax && i <= len(s); i++ {
		if c := s[len(s)-i]; utf8.RuneStart(c) {
			if c >= utf8.RuneSelf && !utf8.FullRuneInString(s[len(s)-i:]) {
				return s[:len(s)-i]
			}
			break
		}
	}
	return s
}

var msgIDPattern = regexp.MustCompile(`<([^<>\s]{1,900})>`)

// messageID reads a Message-ID or In-Reply-To header: the first ID in angle
// brackets, or the whole value when it is one word without them (or with
// only one of them).
func messageID(v string) string {
	if id := msgIDPattern.FindStringSubmatch(v); id != nil {
		return toUTF8(id[1])
	}
	if v = strings.Trim(strings.TrimSpace(v), "<>"); v != "" && len(v) < 900 && !strings.ContainsAny(v, " \t<>") {
		return toUTF8(v)
	}
	return ""
}

// readHeader fills the envelope fields from the top-level header.
func (p *Parsed) readHeader() {
	h := p.Header
	p.Subject = strings.TrimSpace(decodeText(h.Get("Subject")))
	p.MessageID = messageID(h.Get("Message-Id"))
	p.InReplyTo = messageID(h.Get("In-Reply-To"))
	for _, m := range msgIDPattern.FindAllStringSubmatch(h.Get("References"), 100) {
		p.References = append(p.References, toUTF8(m[1]))
	}
	if p.References == nil { // written without angle brackets
		for _, id := range strings.Fields(h.Get("References")) {
			if strings.Contains(id, "@") && len(id) < 900 && len(p.References) < 100 {
				p.References = append(p.References, toUTF8(id))
			}
		}
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
		return tickets.Address{Name: toUTF8(list[0].Name), Email: toUTF8(list[0].Address)}, nil
	}
	// The address in angle brackets is the address; what comes before is a
	// name, even one that looks like an address ("support@example.com"
	// <evil@example.net> without quotes).
	if m := angleAddrPattern.FindStringSubmatchIndex(v); m != nil {
		email := v[m[2]:m[3]]
		name := strings.Trim(strings.TrimSpace(v[:m[0]]), `"' `)
		addr := tickets.Address{Name: decodeText(name), Email: toUTF8(email)}
		if strings.Contains(name, "@") || strings.TrimSpace(v[m[1]:]) != "" {
			// Worth a word to the staff: the name poses as an address, or
			// more follows that could not be read.
			return addr, fmt.Errorf("not a valid address list; read the address in angle brackets, %s", addr.Email)
		}
		return addr, nil // a name in raw 8-bit text, as much mail has
	}
	loc := addrPattern.FindStringIndex(v)
	if loc == nil {
		return tickets.Address{}, errors.New("no address found")
	}
	email := v[loc[0]:loc[1]]
	name := strings.Trim(strings.TrimSpace(v[:loc[0]]), `"'<> `)
	addr := tickets.Address{Name: decodeText(name), Email: toUTF8(email)}
	if len(addrPattern.FindAllStringIndex(v, 2)) > 1 {
		return addr, fmt.Errorf("not a valid address list; read the first address in it, %s", addr.Email)
	}
	return addr, nil
}

var angleAddrPattern = regexp.MustCompile(`<\s*([^\s<>"(),;:]+@[^\s<>"(),;:]+)\s*>`)

// htmlPolicy keeps customer HTML safe to show: bluemonday's policy for user
// content, with links that leak nothing and no remote images (they are
// tracking pixels more often than not); images of the mail itself (cid:) stay.
var htmlPolicy = func() *bluemonday.Policy {
	p := bluemonday.UGCPolicy()
	p.AllowURLSchemes("http", "https", "mailto", "cid")
	// A relative link in a customer's mail would point into the helpdesk
	// itself once shown there.
	p.AllowRelativeURLs(false)
	p.AllowDataURIImages()
	p.RequireNoReferrerOnLinks(true)
	p.AddTargetBlankToFullyQualifiedLinks(true)
	// Only the mail's own images (cid:) and data: ones load: a relative
	// "/logout" or a scheme-relative "//tracker/x.gif" would reach a server
	// as surely as an https: one.
	p.RewriteSrc(func(u *url.URL) {
		if u != nil && u.Scheme != "cid" && u.Scheme != "data" {
			*u = url.URL{Fragment: "remote-image-blocked"}
		}
	})
	return p
}()

func sanitizeHTML(s string) string { return htmlPolicy.Sanitize(s) }

// htmlWords is the text of an HTML document, read token by token (no tree,
// so no depth to exceed), a line per block of text.
func htmlWords(s string) string {
	z := html.NewTokenizer(strings.NewReader(s))
	var b strings.Builder
	for {
		switch z.Next() {
		case html.ErrorToken:
			return strings.TrimSpace(b.String())
		case html.TextToken:
			if t := strings.Join(strings.Fields(string(z.Text())), " "); t != "" {
				b.WriteString(t)
				b.WriteByte('\n')
			}
		}
	}
}
