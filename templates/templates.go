// Package templates holds every mail and page the helpdesk writes, in
// Spanish and English, parsed once at start-up.
package templates

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	htmltemplate "html/template"
	"io"
	"io/fs"
	"path"
	"strings"
	"sync"
	texttemplate "text/template"

	"github.com/nicksnyder/go-i18n/v2/i18n"
	"golang.org/x/text/language"
)

//go:embed mail/*.tmpl web/*.html locales/*.json static
var files embed.FS

// locales the templates exist in; the first is the default.
var locales = [...]string{"es", "en"}

// DefaultLocale is the language used when nothing says otherwise.
const DefaultLocale = "es"

// Mail templates: each defines "<name>.subject", "<name>.text" and
// "<name>.html".
const (
	MailAck          = "ack"
	MailReminder     = "reminder"
	MailDraftNotice  = "draft_notice"
	MailAnswer       = "answer"
	MailAutoResolved = "auto_resolved"
	// Notices to the staff, in the department's language.
	MailAgentNewTicket     = "agent_new_ticket"
	MailAgentCustomerReply = "agent_customer_reply"
	// MailAdminAlert tells an admin a mailbox needs authorizing again.
	MailAdminAlert = "admin_alert"
)

// Page templates.
const (
	PageHome       = "home"
	PageSubmit     = "submit"
	PageLookup     = "lookup"
	PageForgot     = "forgot"
	PageForgotSent = "forgot_sent"
	PageTicket     = "ticket"
	PageError      = "error"
)

// Set is the parsed templates.
type Set struct {
	bundle   *i18n.Bundle
	mailText map[string]*texttemplate.Template
	mailHTML map[string]*htmltemplate.Template
	pages    map[string]*htmltemplate.Template
	// staticVersion changes with the static files, so that their URLs can
	// be cached for long.
	staticVersion string
}

// Load parses every template and message catalog; an error here is a
// defect in the templates, reported at start-up rather than at first use.
func Load() (*Set, error) {
	s := &Set{
		bundle:   i18n.NewBundle(language.Spanish),
		mailText: map[string]*texttemplate.Template{},
		mailHTML: map[string]*htmltemplate.Template{},
		pages:    map[string]*htmltemplate.Template{},
	}
	s.bundle.RegisterUnmarshalFunc("json", json.Unmarshal)
	version, err := staticVersion()
	if err != nil {
		return nil, err
	}
	s.staticVersion = version
	pages, err := htmltemplate.New("pages").Funcs(s.funcs("es")).ParseFS(files, "web/*.html")
	if err != nil {
		return nil, fmt.Errorf("parse page templates: %w", err)
	}
	for _, l := range locales {
		for _, name := range localeFiles(l) {
			if _, err := s.bundle.LoadMessageFileFS(files, name); err != nil {
				return nil, fmt.Errorf("load %s messages from %s: %w", l, name, err)
			}
		}
		txt, err := texttemplate.New(l).Funcs(texttemplate.FuncMap(s.funcs(l))).ParseFS(files, "mail/"+l+".txt.tmpl")
		if err != nil {
			return nil, fmt.Errorf("parse %s mail templates: %w", l, err)
		}
		html, err := htmltemplate.New(l).Funcs(s.funcs(l)).ParseFS(files, "mail/"+l+".html.tmpl")
		if err != nil {
			return nil, fmt.Errorf("parse %s HTML mail templates: %w", l, err)
		}
		p, err := pages.Clone()
		if err != nil {
			return nil, fmt.Errorf("clone page templates: %w", err)
		}
		s.mailText[l], s.mailHTML[l], s.pages[l] = txt, html, p.Funcs(s.funcs(l))
	}
	// Every message must exist in every language.
	for _, l := range locales {
		for _, id := range messageIDs() {
			if _, err := i18n.NewLocalizer(s.bundle, l).Localize(&i18n.LocalizeConfig{MessageID: id}); err != nil {
				return nil, fmt.Errorf("message %q in %s: %w", id, l, err)
			}
		}
	}
	return s, nil
}

// localeFiles are the message catalogs of a locale: locales/<l>.json and
// those of each part of the product, locales/<part>.<l>.json.
func localeFiles(l string) []string {
	names, _ := fs.Glob(files, "locales/*.json") //nolint:errcheck // the pattern is valid
	var out []string
	for _, n := range names {
		if base := path.Base(n); base == l+".json" || strings.HasSuffix(base, "."+l+".json") {
			out = append(out, n)
		}
	}
	return out
}

func messageIDs() []string {
	var ids []string
	for _, name := range localeFiles(DefaultLocale) {
		b, _ := files.ReadFile(name)
		var m map[string]any
		json.Unmarshal(b, &m) //nolint:errcheck // Load has parsed it already
		for id := range m {
			ids = append(ids, id)
		}
	}
	return ids
}

func (s *Set) funcs(locale string) htmltemplate.FuncMap {
	loc := i18n.NewLocalizer(s.bundle, locale)
	// Messages without data are the same every time: translate them once,
	// on first use (every mail and page asks for several).
	var mu sync.RWMutex
	plain := map[string]string{}
	return htmltemplate.FuncMap{
		"t": func(id string, data ...any) string {
			if len(data) == 0 {
				mu.RLock()
				out, ok := plain[id]
				mu.RUnlock()
				if ok {
					return out
				}
			}
			cfg := &i18n.LocalizeConfig{MessageID: id}
			if len(data) == 1 {
				cfg.TemplateData = data[0]
			}
			out, err := loc.Localize(cfg)
			if err != nil {
				out = id
			}
			if len(data) == 0 {
				mu.Lock()
				plain[id] = out
				mu.Unlock()
			}
			return out
		},
		"locale": func() string { return locale },
		"size":   HumanSize,
		"static": func(name string) string { return "/static/" + name + "?v=" + s.staticVersion },
	}
}

// Static is the files served under /static/: the style sheet and the
// script the pages use.
func Static() fs.FS {
	sub, _ := fs.Sub(files, "static") //nolint:errcheck // the directory is embedded
	return sub
}

// staticVersion hashes the static files.
func staticVersion() (string, error) {
	h := sha256.New()
	err := fs.WalkDir(files, "static", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %d\n", path, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("read static files: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)[:6]), nil
}

// Locale returns l when templates exist in it, else the default.
func Locale(l string) string {
	for _, x := range locales {
		if x == l {
			return l
		}
	}
	return DefaultLocale
}

// Mail is a rendered mail.
type Mail struct {
	Subject string
	Text    string
	HTML    string
}

// RenderMail renders mail name in locale with data.
func (s *Set) RenderMail(name, locale string, data any) (Mail, error) {
	locale = Locale(locale)
	var m Mail
	var b bytes.Buffer
	b.Grow(8 << 10)
	for _, part := range []struct {
		suffix string
		out    *string
		html   bool
	}{{".subject", &m.Subject, false}, {".text", &m.Text, false}, {".html", &m.HTML, true}} {
		b.Reset()
		var err error
		if part.html {
			err = s.mailHTML[locale].ExecuteTemplate(&b, name+part.suffix, data)
		} else {
			err = s.mailText[locale].ExecuteTemplate(&b, name+part.suffix, data)
		}
		if err != nil {
			return m, fmt.Errorf("render mail %s%s (%s): %w", name, part.suffix, locale, err)
		}
		*part.out = b.String()
	}
	// A subject is one line, whatever the customer typed into theirs.
	m.Subject = strings.Join(strings.Fields(m.Subject), " ")
	return m, nil
}

// RenderPage renders page name in locale with data.
func (s *Set) RenderPage(w io.Writer, name, locale string, data any) error {
	if err := s.pages[Locale(locale)].ExecuteTemplate(w, name, data); err != nil {
		return fmt.Errorf("render page %s (%s): %w", name, locale, err)
	}
	return nil
}

// HumanSize writes a size in bytes as people read it: "10 MB", "2.5 MB",
// "12 KB".
func HumanSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KB", float64(n)/(1<<10))
	default:
		return fmt.Sprintf("%d B", n)
	}
}
