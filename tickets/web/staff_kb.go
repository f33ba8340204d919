package web

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/helpdeskgw/helpdesk/internal/markdown"
	"github.com/helpdeskgw/helpdesk/tickets"
)

// The staff's knowledge base pages: the articles of the agent's
// departments (an admin's: all) with what they did for customers, and the
// form to write, preview and delete one.

// Knowledge base pages.
const (
	pageStaffKB        = "staff_kb"
	pageStaffKBArticle = "staff_kb_article"
)

// kbStatsDays is the recent period the pages count over.
const kbStatsDays = 30

// maxArticleForm bounds an article's form: its body may be long, and
// percent-encoding makes a byte out of ASCII three.
const maxArticleForm = 3*tickets.MaxArticleBody + maxSmallForm

// staffKBRoutes serves the staff's knowledge base pages.
func (s *Server) staffKBRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /staff/kb", s.asStaff(s.staffKBList))
	mux.HandleFunc("GET /staff/kb/new", s.asStaff(s.staffKBNew))
	mux.HandleFunc("POST /staff/kb", s.asStaff(s.staffKBSave))
	mux.HandleFunc("GET /staff/kb/{id}", s.asStaff(s.staffKBEdit))
	mux.HandleFunc("POST /staff/kb/{id}", s.asStaff(s.staffKBSave))
	mux.HandleFunc("POST /staff/kb/{id}/delete", s.asStaff(s.staffKBDelete))
}

// kbNotice is the message key of what was just done to an article, as
// the page it leads to is told.
func kbNotice(key string) string {
	switch key {
	case "saved", "deleted":
		return "staff.kb.notice." + key
	}
	return ""
}

// kbChoices are what the knowledge base's forms and filters offer.
type kbChoices struct {
	Departments []tickets.Department
	Languages   []string
	States      []tickets.ArticleState
}

func (s *Server) kbChoices(ctx context.Context, a tickets.Agent) (kbChoices, error) {
	depts, err := s.departmentsOf(ctx, a)
	if err != nil {
		return kbChoices{}, fmt.Errorf("list departments: %w", err)
	}
	return kbChoices{Departments: depts, Languages: []string{tickets.LocaleSpanish, tickets.LocaleEnglish},
		States: []tickets.ArticleState{tickets.ArticleDraft, tickets.ArticlePublished}}, nil
}

// kbRow is an article with its counts and who last changed it.
type kbRow struct {
	tickets.ArticleStats
	UpdatedBy shown
}

// kbRows names who last changed each article.
func (s *Server) kbRows(ctx context.Context, list []tickets.ArticleStats) ([]kbRow, error) {
	agents, err := s.staff.Agents(ctx)
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	names := historyNames{agents: make(map[int64]string, len(agents))}
	for _, ag := range agents {
		names.agents[ag.ID] = ag.Name
	}
	rows := make([]kbRow, len(list))
	for i, st := range list {
		rows[i] = kbRow{ArticleStats: st, UpdatedBy: names.actor(st.UpdatedBy)}
	}
	return rows, nil
}

// kbFilter narrows the list: a department's slug, a language, a state;
// "" for any.
type kbFilter struct {
	Department, Language, State string
}

func (f kbFilter) keeps(st tickets.ArticleStats) bool {
	return (f.Department == "" || f.Department == st.Department.Slug) &&
		(f.Language == "" || f.Language == st.Language) &&
		(f.State == "" || f.State == string(st.State))
}

type kbListPage struct {
	staffBase
	kbChoices
	Notice   string
	Filter   kbFilter
	Filtered bool
	Articles []kbRow
	Days     int
}

// staffKBList lists the articles the agent may write, those that answered
// most customers first.
func (s *Server) staffKBList(w http.ResponseWriter, r *http.Request, a tickets.Agent) {
	locale := s.locale(w, r)
	ctx := r.Context()
	choices, err := s.kbChoices(ctx, a)
	if err != nil {
		s.internalError(w, r, locale, "knowledge base list", err)
		return
	}
	all, err := s.staff.StaffArticles(ctx, a, kbStatsDays)
	if err != nil {
		s.internalError(w, r, locale, "knowledge base list", err)
		return
	}
	q := r.URL.Query()
	filter := kbFilter{Department: q.Get("department"), Language: q.Get("language"), State: q.Get("state")}
	var kept []tickets.ArticleStats
	for _, st := range all {
		if filter.keeps(st) {
			kept = append(kept, st)
		}
	}
	rows, err := s.kbRows(ctx, kept)
	if err != nil {
		s.internalError(w, r, locale, "knowledge base list", err)
		return
	}
	s.render(w, r, http.StatusOK, pageStaffKB, locale, kbListPage{
		staffBase: staffBase{base: base{Title: "staff.kb.title"}, Agent: a, Section: "kb"},
		kbChoices: choices, Notice: kbNotice(q.Get("notice")), Filter: filter, Filtered: filter != kbFilter{},
		Articles: rows, Days: kbStatsDays,
	})
}

// articleForm is the article's form as shown or sent; Keywords are
// separated by commas.
type articleForm struct {
	Department, Language, Title, Slug, Category, Keywords, Body, State string
}

func articleFormOf(art tickets.Article) articleForm {
	return articleForm{Department: art.Department.Slug, Language: art.Language, Title: art.Title, Slug: art.Slug,
		Category: art.Category, Keywords: strings.Join(art.Keywords, ", "), Body: art.Body, State: string(art.State)}
}

func sentArticle(v url.Values) articleForm {
	return articleForm{Department: v.Get("department"), Language: v.Get("language"), Title: v.Get("title"),
		Slug: v.Get("slug"), Category: v.Get("category"), Keywords: v.Get("keywords"), Body: v.Get("body"), State: v.Get("state")}
}

func (f articleForm) input() tickets.ArticleInput {
	return tickets.ArticleInput{Department: f.Department, Language: f.Language, Slug: f.Slug, Title: f.Title,
		Category: f.Category, Keywords: []string{f.Keywords}, Body: f.Body, State: tickets.ArticleState(f.State)}
}

type kbArticlePage struct {
	staffBase
	kbChoices
	Notice string
	// Stored is the article as saved, with its counts; nil for a new one.
	Stored *kbRow
	Form   articleForm
	Errors formErrors
	// Previewing: Preview is the form's body rendered, nothing saved.
	Previewing bool
	Preview    template.HTML
	Days       int
	MaxTitle   int
}

// staffKBNew shows the form for a new article.
func (s *Server) staffKBNew(w http.ResponseWriter, r *http.Request, a tickets.Agent) {
	locale := s.locale(w, r)
	form := articleForm{Language: locale, State: string(tickets.ArticleDraft)}
	s.renderArticle(w, r, http.StatusOK, locale, a, nil, kbArticlePage{Form: form})
}

// staffKBEdit shows an article's form with its counts.
func (s *Server) staffKBEdit(w http.ResponseWriter, r *http.Request, a tickets.Agent) {
	art, locale, ok := s.staffArticle(w, r, a)
	if !ok {
		return
	}
	s.renderArticle(w, r, http.StatusOK, locale, a, &art,
		kbArticlePage{Form: articleFormOf(art), Notice: kbNotice(r.URL.Query().Get("notice"))})
}

// staffArticle is the article the path names when the agent may write
// it. On failure it has answered the request.
func (s *Server) staffArticle(w http.ResponseWriter, r *http.Request, a tickets.Agent) (tickets.Article, string, bool) {
	locale := s.locale(w, r)
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	var art tickets.Article
	if err != nil || id <= 0 {
		err = tickets.ErrNotFound
	} else {
		art, err = s.staff.StaffArticle(r.Context(), a, id)
	}
	if err != nil {
		s.discardBody(w, r)
		if errors.Is(err, tickets.ErrNotFound) {
			s.renderError(w, r, http.StatusNotFound, "error.page_not_found", locale)
		} else {
			s.internalError(w, r, locale, "staff article", err)
		}
		return art, locale, false
	}
	return art, locale, true
}

// renderArticle shows an article's page: stored is the article as saved
// (nil for a new one), page has the form as shown or sent.
func (s *Server) renderArticle(w http.ResponseWriter, r *http.Request, status int, locale string, a tickets.Agent, stored *tickets.Article, page kbArticlePage) {
	ctx := r.Context()
	fail := func(err error) { s.internalError(w, r, locale, "knowledge base article", err) }
	var err error
	if page.kbChoices, err = s.kbChoices(ctx, a); err != nil {
		fail(err)
		return
	}
	page.staffBase = staffBase{base: base{Title: "staff.kb.new_title"}, Agent: a, Section: "kb"}
	page.Days, page.MaxTitle = kbStatsDays, tickets.MaxArticleTitle
	if stored != nil {
		if page.Stored, err = s.articleRow(ctx, a, *stored); err != nil {
			fail(err)
			return
		}
		page.Title, page.TitleData = "staff.kb.edit_title", stored
	}
	s.render(w, r, status, pageStaffKBArticle, locale, page)
}

// articleRow is the article with its counts and who last changed it.
func (s *Server) articleRow(ctx context.Context, a tickets.Agent, art tickets.Article) (*kbRow, error) {
	list, err := s.staff.StaffArticles(ctx, a, kbStatsDays)
	if err != nil {
		return nil, err
	}
	// Without counts (the article moved out of reach meanwhile) it shows
	// as it was read, counting nothing.
	st := tickets.ArticleStats{Article: art}
	for _, x := range list {
		if x.ID == art.ID {
			st = x
			break
		}
	}
	rows, err := s.kbRows(ctx, []tickets.ArticleStats{st})
	if err != nil {
		return nil, err
	}
	return &rows[0], nil
}

// staffKBSave saves an article (a new one without an ID in the path) or,
// asked for a preview, shows the form again with its body rendered.
func (s *Server) staffKBSave(w http.ResponseWriter, r *http.Request, a tickets.Agent) {
	locale := s.locale(w, r)
	var stored *tickets.Article
	if r.PathValue("id") != "" {
		art, _, ok := s.staffArticle(w, r, a)
		if !ok {
			return
		}
		stored = &art
	}
	v, ok := s.readArticleForm(w, r, locale)
	if !ok {
		return
	}
	page := kbArticlePage{Form: sentArticle(v), Errors: formErrors{}}
	if v.Get("action") == "preview" {
		html, err := markdown.HTML(page.Form.Body)
		if err != nil {
			s.internalError(w, r, locale, "preview article", err)
			return
		}
		page.Previewing, page.Preview = true, html
		s.renderArticle(w, r, http.StatusOK, locale, a, stored, page)
		return
	}
	var id int64
	if stored != nil {
		id = stored.ID
	}
	saved, err := s.staff.SaveArticle(r.Context(), a, id, page.Form.input())
	var fe tickets.FieldErrors
	switch {
	case errors.As(err, &fe):
		page.Errors.fromStore(fe)
		s.renderArticle(w, r, http.StatusUnprocessableEntity, locale, a, stored, page)
		return
	case errors.Is(err, tickets.ErrNotFound):
		s.renderError(w, r, http.StatusNotFound, "error.page_not_found", locale)
		return
	case err != nil:
		s.internalError(w, r, locale, "save article", err)
		return
	}
	s.log.Info("article saved", "article", saved.ID, "agent", a.ID, "state", saved.State)
	http.Redirect(w, r, fmt.Sprintf("%s/kb/%d?notice=saved", staffPath, saved.ID), http.StatusSeeOther)
}

// readArticleForm reads an article's form, larger than the other forms
// without files. On failure it has answered the request.
func (s *Server) readArticleForm(w http.ResponseWriter, r *http.Request, locale string) (url.Values, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, maxArticleForm)
	if err := r.ParseForm(); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			s.renderError(w, r, http.StatusRequestEntityTooLarge, "staff.kb.too_large", locale)
		} else {
			s.renderError(w, r, http.StatusBadRequest, "error.bad_request", locale)
		}
		return nil, false
	}
	return r.PostForm, true
}

// staffKBDelete deletes an article, and its counts with it.
func (s *Server) staffKBDelete(w http.ResponseWriter, r *http.Request, a tickets.Agent) {
	locale := s.locale(w, r)
	if _, ok := s.readSmallForm(w, r, locale); !ok {
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		err = tickets.ErrNotFound
	} else {
		err = s.staff.DeleteArticle(r.Context(), a, id)
	}
	switch {
	case errors.Is(err, tickets.ErrNotFound):
		s.renderError(w, r, http.StatusNotFound, "error.page_not_found", locale)
		return
	case err != nil:
		s.internalError(w, r, locale, "delete article", err)
		return
	}
	s.log.Info("article deleted", "article", id, "agent", a.ID)
	http.Redirect(w, r, staffPath+"/kb?notice=deleted", http.StatusSeeOther)
}
