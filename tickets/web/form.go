package web

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"time"

	"github.com/helpdeskgw/helpdesk/tickets"
)

// fieldError is what is wrong with one field of a form: a message key and
// what the message shows.
type fieldError struct {
	Field string
	Key   string
	Data  any
}

// formErrors are a form's errors by field; "form" is the form as a whole.
type formErrors map[string]*fieldError

func (e formErrors) set(field, key string, data any) {
	if e[field] == nil {
		e[field] = &fieldError{Field: field, Key: key, Data: data}
	}
}

// fromStore adds the store's verdict on a form's fields.
func (e formErrors) fromStore(fe tickets.FieldErrors) {
	for field, key := range fe {
		e.set(field, key, nil)
	}
}

// maxSmallForm bounds a form without files.
const maxSmallForm = 64 << 10

// countingReader counts what it reads and fails past a bound.
type countingReader struct {
	r     io.Reader
	n     int64
	bound int64
}

var errBeyondBound = errors.New("request body beyond what is read")

func (c *countingReader) Read(p []byte) (int, error) {
	if c.n >= c.bound {
		return 0, errBeyondBound
	}
	if int64(len(p)) > c.bound-c.n {
		p = p[:c.bound-c.n]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// discardBody reads what is left of a request body, up to a bound, before
// an answer that does not need it: a browser still sending a large body
// otherwise sees the connection reset instead of the answer.
func (s *Server) discardBody(w http.ResponseWriter, r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody {
		return
	}
	if r.ContentLength > s.drainBytes {
		w.Header().Set("Connection", "close")
		return
	}
	if n, _ := io.CopyN(io.Discard, r.Body, s.drainBytes); n == s.drainBytes {
		w.Header().Set("Connection", "close")
	}
}

// readSmallForm reads a form without files. On failure it has answered the
// request.
func (s *Server) readSmallForm(w http.ResponseWriter, r *http.Request, locale string) (url.Values, bool) {
	body := &countingReader{r: r.Body, bound: maxSmallForm + 1}
	b, err := io.ReadAll(body)
	if body.n > maxSmallForm {
		s.discardBody(w, r)
		s.renderTooLarge(w, r, locale)
		return nil, false
	}
	if err != nil {
		s.renderError(w, r, http.StatusBadRequest, "error.bad_request", locale)
		return nil, false
	}
	values, err := url.ParseQuery(string(b))
	if err != nil {
		s.renderError(w, r, http.StatusBadRequest, "error.bad_request", locale)
		return nil, false
	}
	return values, true
}

func (s *Server) renderTooLarge(w http.ResponseWriter, r *http.Request, locale string) {
	s.render(w, r, http.StatusRequestEntityTooLarge, "error", locale, errorPage{
		base: base{Title: "error.title"}, Message: "error.too_large", MessageData: s.limits})
}

// upload is one file of a posted form, spooled.
type upload struct {
	name, contentType string
	content           *tickets.ContentWriter
}

// posted is a form with files, as read.
type posted struct {
	values url.Values
	files  []upload
	errs   formErrors
	// hadFiles: the visitor chose files, which they must choose again if
	// the form comes back.
	hadFiles bool
	// tooLarge: the form broke a size or count limit (413).
	tooLarge bool
	// freeSlot gives back the upload slot the form holds.
	freeSlot func()
}

func (p *posted) attachments() []tickets.InboundAttachment {
	out := make([]tickets.InboundAttachment, len(p.files))
	for i, f := range p.files {
		out[i] = tickets.InboundAttachment{Filename: f.name, ContentType: f.contentType, Content: f.content.Content()}
	}
	return out
}

// release drops the spooled files.
func (p *posted) release() {
	for _, f := range p.files {
		f.content.Close() //nolint:errcheck // a temporary file left behind is not the visitor's concern
	}
	p.files = nil
	if p.freeSlot != nil {
		p.freeSlot()
		p.freeSlot = nil
	}
}

// Uploads: how many may be in progress at once, and how long one may take
// to arrive (25 MiB at 256 kbit/s).
const (
	maxUploads     = 32
	uploadDeadline = 15 * time.Minute
)

// maxParts bounds the parts of a form, files and fields together.
const maxParts = 100

// readUpload reads a multipart form: the fields named in fields (each value
// up to its size) and the files of "attachments", within the upload limits.
// A form that breaks a limit is read to its end all the same (up to a
// bound), so that its fields can be shown again and the browser gets the
// answer; its files are dropped. On failure it has answered the request.
func (s *Server) readUpload(w http.ResponseWriter, r *http.Request, locale string, fields map[string]int64) (*posted, bool) {
	p := &posted{values: url.Values{}, errs: formErrors{}}
	mediaType, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mediaType == "application/x-www-form-urlencoded" {
		values, ok := s.readSmallForm(w, r, locale)
		if !ok {
			return nil, false
		}
		for name := range fields {
			p.values[name] = values[name]
		}
		return p, true
	}
	if mediaType != "multipart/form-data" || params["boundary"] == "" {
		s.discardBody(w, r)
		s.renderError(w, r, http.StatusBadRequest, "error.bad_request", locale)
		return nil, false
	}
	if r.ContentLength > s.drainBytes {
		w.Header().Set("Connection", "close")
		s.renderTooLarge(w, r, locale)
		return nil, false
	}
	// Uploads in progress are bounded, and each must arrive within a
	// deadline: slow senders cannot pile up goroutines and temporary
	// files until the disk is full.
	select {
	case s.uploadSlots <- struct{}{}:
		p.freeSlot = func() { <-s.uploadSlots }
	default:
		w.Header().Set("Retry-After", "30")
		w.Header().Set("Connection", "close")
		s.renderError(w, r, http.StatusServiceUnavailable, "error.busy", locale)
		return nil, false
	}
	http.NewResponseController(w).SetReadDeadline(time.Now().Add(uploadDeadline)) //nolint:errcheck // unsupported by test recorders only
	body := &countingReader{r: r.Body, bound: s.drainBytes}
	mr := multipart.NewReader(body, params["boundary"])
	overLimit := func() bool { return body.n > s.limits.MaxTotalBytes }
	for parts := 0; ; parts++ {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil || parts == maxParts {
			p.release()
			if errors.Is(err, errBeyondBound) || overLimit() {
				w.Header().Set("Connection", "close")
				s.renderTooLarge(w, r, locale)
				return nil, false
			}
			s.discardBody(w, r)
			s.renderError(w, r, http.StatusBadRequest, "error.bad_request", locale)
			return nil, false
		}
		if err := s.readPart(p, part, fields, overLimit); err != nil {
			p.release()
			if errors.Is(err, errBeyondBound) {
				w.Header().Set("Connection", "close")
				s.renderTooLarge(w, r, locale)
				return nil, false
			}
			if errors.Is(err, tickets.ErrSpool) {
				s.discardBody(w, r)
				s.internalError(w, r, locale, "spool upload", err)
				return nil, false
			}
			s.discardBody(w, r)
			s.renderError(w, r, http.StatusBadRequest, "error.bad_request", locale)
			return nil, false
		}
	}
	if overLimit() {
		p.errs.set("attachments", "upload.total_too_large", s.limits)
	}
	// Files over a limit make the answer a 413 (and are dropped); a text
	// field too long is an error of that field, which the store states too.
	if p.errs["attachments"] != nil {
		p.tooLarge = true
		p.release()
	}
	return p, true
}

// readPart reads one part of a form into p.
func (s *Server) readPart(p *posted, part *multipart.Part, fields map[string]int64, overLimit func() bool) error {
	defer part.Close()
	name := part.FormName()
	if name != "attachments" {
		max, ok := fields[name]
		if !ok {
			_, err := io.Copy(io.Discard, part)
			return err
		}
		b, err := io.ReadAll(io.LimitReader(part, max+1))
		if err != nil {
			return err
		}
		if int64(len(b)) > max {
			p.errs.set(name, tickets.FieldTooLong, nil)
			b = bytes.ToValidUTF8(b[:max], nil) // no character cut in half
			if _, err := io.Copy(io.Discard, part); err != nil {
				return err
			}
		}
		p.values.Add(name, string(b))
		return nil
	}
	if part.FileName() == "" { // the file field, with no file chosen
		_, err := io.Copy(io.Discard, part)
		return err
	}
	p.hadFiles = true
	if len(p.files) >= s.limits.MaxFiles || len(p.errs) > 0 || overLimit() {
		if len(p.files) >= s.limits.MaxFiles {
			p.errs.set("attachments", "upload.too_many", s.limits)
		}
		_, err := io.Copy(io.Discard, part)
		return err
	}
	cw := tickets.NewContentWriter(s.tempDir)
	n, err := io.Copy(cw, io.LimitReader(part, s.limits.MaxFileBytes+1))
	if err != nil {
		cw.Close() //nolint:errcheck // failing already
		return err
	}
	if n > s.limits.MaxFileBytes {
		cw.Close() //nolint:errcheck // dropped
		p.errs.set("attachments", "upload.file_rejected", map[string]string{"Name": part.FileName(), "FileSize": s.limits.FileSize})
		_, err := io.Copy(io.Discard, part)
		return err
	}
	contentType := part.Header.Get("Content-Type")
	if _, _, err := mime.ParseMediaType(contentType); err != nil {
		contentType = "application/octet-stream"
	}
	p.files = append(p.files, upload{name: part.FileName(), contentType: contentType, content: cw})
	return nil
}
