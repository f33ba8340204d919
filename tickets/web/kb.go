package web

import (
	"errors"
	"html/template"
	"net/http"
	"strings"

	"github.com/helpdeskgw/helpdesk/internal/markdown"
	"github.com/helpdeskgw/helpdesk/tickets"
)

// The knowledge base's public pages.
const (
	pageKB        = "kb"
	pageKBArticle = "kb_article"
)

// kbSearchResults is how many articles a search lists at most.
const kbSearchResults = 20

// kbRetryAfter is what a visitor over the search and vote budget is told
// to wait, in seconds: the budget gives one back every second.
const kbRetryAfter = "10"

// kbRoutes serves the knowledge base's public pages.
func (s *Server) kbRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /kb", s.kbHome)
	mux.HandleFunc("GET /kb/{department}/{language}/{slug}", s.kbArticle)
	mux.HandleFunc("POST /kb/{department}/{language}/{slug}/helpful", s.kbHelpful)
}

type kbIndexPage struct {
	base
	Query string
	// Searched: Query was searched for, and Hits are what it found.
	Searched bool
	Hits     []indexHit
	// Departments are the articles in the page's language, grouped.
	Departments []indexDepartment
	// OtherLanguage is the page language that has articles when the
	// page's own has none.
	OtherLanguage string
	// Error is the message key of why the search was not made.
	Error string
}

// Found is how many articles the search found.
func (p kbIndexPage) Found() int { return len(p.Hits) }

// indexHit is a search result with its excerpt ready for the page.
type indexHit struct {
	tickets.ArticleHit
	Marked template.HTML
}

type indexDepartment struct {
	tickets.Department
	Categories []indexCategory
}

type indexCategory struct {
	Name     string // "" for the articles of no category
	Articles []tickets.Article
}

// groupArticles groups a list sorted by department and category, as
// PublishedArticles sorts it.
func groupArticles(list []tickets.Article) []indexDepartment {
	var depts []indexDepartment
	for _, a := range list {
		if n := len(depts); n == 0 || depts[n-1].ID != a.Department.ID {
			depts = append(depts, indexDepartment{Department: a.Department})
		}
		d := &depts[len(depts)-1]
		if n := len(d.Categories); n == 0 || d.Categories[n-1].Name != a.Category {
			d.Categories = append(d.Categories, indexCategory{Name: a.Category})
		}
		c := &d.Categories[len(d.Categories)-1]
		c.Articles = append(c.Articles, a)
	}
	return depts
}

// markedExcerpt is a search hit's excerpt as HTML: its text escaped, the
// words found (between tickets.MarkStart and MarkEnd) in <mark>. A stray
// mark is dropped and an open one closed, so the HTML stays balanced.
func markedExcerpt(excerpt string) template.HTML {
	var b strings.Builder
	open := false
	for {
		i := strings.IndexAny(excerpt, tickets.MarkStart+tickets.MarkEnd)
		if i < 0 {
			b.WriteString(template.HTMLEscapeString(excerpt))
			break
		}
		b.WriteString(template.HTMLEscapeString(excerpt[:i]))
		switch mark := excerpt[i : i+1]; {
		case mark == tickets.MarkStart && !open:
			b.WriteString("<mark>")
			open = true
		case mark == tickets.MarkEnd && open:
			b.WriteString("</mark>")
			open = false
		}
		excerpt = excerpt[i+1:]
	}
	if open {
		b.WriteString("</mark>")
	}
	return template.HTML(b.String()) //nolint:gosec // escaped above but for our own tags
}

// otherLocale is the page language that locale is not.
func otherLocale(locale string) string {
	if locale == tickets.LocaleEnglish {
		return tickets.LocaleSpanish
	}
	return tickets.LocaleEnglish
}

// kbHome lists the articles in the visitor's language, or with ?q= those a
// search finds in any.
func (s *Server) kbHome(w http.ResponseWriter, r *http.Request) {
	locale := s.locale(w, r)
	if query := strings.TrimSpace(r.URL.Query().Get("q")); query != "" {
		s.kbSearch(w, r, locale, query)
		return
	}
	list, err := s.store.PublishedArticles(r.Context(), locale)
	if err != nil {
		s.internalError(w, r, locale, "list articles", err)
		return
	}
	page := kbIndexPage{base: base{Title: "kb.title"}, Departments: groupArticles(list)}
	if len(list) == 0 {
		other := otherLocale(locale)
		elsewhere, err := s.store.PublishedArticles(r.Context(), other)
		if err != nil {
			s.internalError(w, r, locale, "list articles", err, "language", other)
			return
		}
		if len(elsewhere) > 0 {
			page.OtherLanguage = other
		}
	}
	s.render(w, r, http.StatusOK, pageKB, locale, page)
}

func (s *Server) kbSearch(w http.ResponseWriter, r *http.Request, locale, query string) {
	page := kbIndexPage{base: base{Title: "kb.search_title", TitleData: struct{ Query string }{query}}, Query: query}
	if !s.kbLimiter.allow(s.clientKey(r)) {
		w.Header().Set("Retry-After", kbRetryAfter)
		page.Error = "kb.rate_limited"
		s.render(w, r, http.StatusTooManyRequests, pageKB, locale, page)
		return
	}
	hits, err := s.store.SearchArticles(r.Context(), query, locale, kbSearchResults)
	if err != nil {
		s.internalError(w, r, locale, "search articles", err)
		return
	}
	page.Searched = true
	page.Hits = make([]indexHit, len(hits))
	for i, h := range hits {
		page.Hits[i] = indexHit{ArticleHit: h, Marked: markedExcerpt(h.Excerpt)}
	}
	s.render(w, r, http.StatusOK, pageKB, locale, page)
}

type readerArticlePage struct {
	base
	Article tickets.Article
	Body    template.HTML
	// Thanked: the reader has just said the article answered them.
	Thanked bool
	// Error is the message key of why their word was not counted.
	Error string
}

// readerArticle is the published article the path names. On failure it
// has answered the request.
func (s *Server) readerArticle(w http.ResponseWriter, r *http.Request, locale string) (tickets.Article, bool) {
	a, err := s.store.PublishedArticle(r.Context(), r.PathValue("department"), r.PathValue("language"), r.PathValue("slug"))
	if errors.Is(err, tickets.ErrNotFound) {
		s.renderError(w, r, http.StatusNotFound, "error.page_not_found", locale)
		return a, false
	}
	if err != nil {
		s.internalError(w, r, locale, "read article", err)
		return a, false
	}
	return a, true
}

func (s *Server) renderReaderArticle(w http.ResponseWriter, r *http.Request, status int, locale string, page readerArticlePage) {
	body, err := markdown.HTML(page.Article.Body)
	if err != nil {
		s.internalError(w, r, locale, "render article", err, "article", page.Article.ID)
		return
	}
	page.base = base{Title: "kb.article_title", TitleData: page.Article}
	page.Body = body
	s.render(w, r, status, pageKBArticle, locale, page)
}

// suggestedFrom reports whether from (?from= of an article's link) names a
// place that suggests articles: opening one from there is counted.
func suggestedFrom(from string) bool {
	switch from {
	case "submit", "mail", "ticket":
		return true
	}
	return false
}

func (s *Server) kbArticle(w http.ResponseWriter, r *http.Request) {
	locale := s.locale(w, r)
	a, ok := s.readerArticle(w, r, locale)
	if !ok {
		return
	}
	if from := r.URL.Query().Get("from"); suggestedFrom(from) {
		// A count lost is not worth failing the page for.
		if err := s.store.CountArticles(r.Context(), tickets.EventOpened, []int64{a.ID}); err != nil {
			s.log.Error("count article opened", "article", a.ID, "from", from, "err", err)
		}
	}
	s.renderReaderArticle(w, r, http.StatusOK, locale, readerArticlePage{Article: a})
}

// kbHelpful counts the reader's word that the article answered them.
func (s *Server) kbHelpful(w http.ResponseWriter, r *http.Request) {
	locale := s.locale(w, r)
	if _, ok := s.readSmallForm(w, r, locale); !ok {
		return
	}
	a, ok := s.readerArticle(w, r, locale)
	if !ok {
		return
	}
	page := readerArticlePage{Article: a}
	if !s.kbLimiter.allow(s.clientKey(r)) {
		w.Header().Set("Retry-After", kbRetryAfter)
		page.Error = "kb.vote_rate_limited"
		s.renderReaderArticle(w, r, http.StatusTooManyRequests, locale, page)
		return
	}
	if err := s.store.CountArticles(r.Context(), tickets.EventHelpful, []int64{a.ID}); err != nil {
		s.internalError(w, r, locale, "count article helpful", err, "article", a.ID)
		return
	}
	page.Thanked = true
	s.renderReaderArticle(w, r, http.StatusOK, locale, page)
}
