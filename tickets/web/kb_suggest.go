package web

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/helpdeskgw/helpdesk/tickets"
)

// Knowledge base suggestions: how many the submit form and the ticket page
// list, and the shortest text worth suggesting for.
const (
	maxSubmitSuggestions = 5
	maxTicketSuggestions = 3
	minSuggestQuery      = 3
)

// Where a suggested article was opened from, as its page counts it.
const (
	fromSubmit = "submit"
	fromTicket = "ticket"
)

// kbSuggestRoutes serves the submit form's live suggestions and the ticket
// page's "this article solved it".
func (s *Server) kbSuggestRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /kb/suggest", s.kbSuggest)
	mux.HandleFunc("POST /kb/suggest/shown", s.kbSuggestShown)
	mux.HandleFunc("POST /ticket/{id}/solved-by", s.solvedBy)
}

// suggestion is an article as a list of suggestions shows it: its excerpt
// is plain text, and its link says where it was suggested.
type suggestion struct {
	ID      int64  `json:"id"`
	Title   string `json:"title"`
	URL     string `json:"url"`
	Excerpt string `json:"excerpt"`
}

var stripMarks = strings.NewReplacer(tickets.MarkStart, "", tickets.MarkEnd, "")

func suggestions(hits []tickets.ArticleHit, from string) []suggestion {
	out := make([]suggestion, len(hits))
	for i, h := range hits {
		excerpt := strings.Join(strings.Fields(stripMarks.Replace(h.Excerpt)), " ")
		if excerpt == "" {
			excerpt = h.Article.Excerpt()
		}
		out[i] = suggestion{ID: h.ID, Title: h.Title, URL: h.Path() + "?from=" + from, Excerpt: excerpt}
	}
	return out
}

func suggestionIDs(list []suggestion) []int64 {
	ids := make([]int64, len(list))
	for i, sg := range list {
		ids[i] = sg.ID
	}
	return ids
}

// clipText cuts s to at most max bytes, never within a character: what is
// searched for is a subject, and a longer text only costs.
func clipText(s string, max int) string {
	if len(s) <= max {
		return s
	}
	return strings.ToValidUTF8(s[:max], "")
}

// submitSuggestions are the articles that may answer a subject, for the
// submit form without script, counted as suggested. They are help, not
// the form: a client past its budget or a failure gets none.
func (s *Server) submitSuggestions(r *http.Request, subject, locale, department string) []suggestion {
	if utf8.RuneCountInString(strings.TrimSpace(subject)) < minSuggestQuery || !s.suggestLimiter.allow(s.clientKey(r)) {
		return nil
	}
	hits, err := s.store.SuggestArticles(r.Context(), clipText(subject, 4*tickets.MaxSubjectLength), locale, department, maxSubmitSuggestions)
	if err != nil {
		s.logFailure(r, "suggest articles", err)
		return nil
	}
	list := suggestions(hits, fromSubmit)
	if err := s.store.CountArticles(r.Context(), tickets.EventSuggested, suggestionIDs(list)); err != nil {
		s.logFailure(r, "count suggested articles", err)
	}
	return list
}

// ticketSuggestions are the articles that may answer an open ticket, for
// its page: those picked for it once (and counted then), not searched for
// at every view.
func (s *Server) ticketSuggestions(r *http.Request, t tickets.Ticket) []suggestion {
	if t.Status == tickets.StatusResolved {
		return nil
	}
	hits, err := s.store.ArticlesForTicket(r.Context(), t.ID, maxTicketSuggestions)
	if err != nil {
		s.logFailure(r, "articles for ticket", err, "ticket", t.TrackingID)
		return nil
	}
	return suggestions(hits, fromTicket)
}

// suggestAnswer is the answer of GET /kb/suggest.
type suggestAnswer struct {
	Articles []suggestion `json:"articles"`
}

// jsonError is the answer of the suggestion routes when they refuse.
type jsonError struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v) //nolint:errcheck // the client went away
}

// takeSuggestBudget spends one request of the client's suggestion budget.
// Past it, it has answered the request.
func (s *Server) takeSuggestBudget(w http.ResponseWriter, r *http.Request) bool {
	if s.suggestLimiter.allow(s.clientKey(r)) {
		return true
	}
	s.discardBody(w, r)
	w.Header().Set("Retry-After", "60")
	writeJSON(w, http.StatusTooManyRequests, jsonError{Error: "rate_limited"})
	return false
}

// kbSuggest lists the articles that may answer what the visitor is typing
// into the submit form's subject.
func (s *Server) kbSuggest(w http.ResponseWriter, r *http.Request) {
	if !s.takeSuggestBudget(w, r) {
		return
	}
	q := r.URL.Query()
	text := clipText(q.Get("q"), 4*tickets.MaxSubjectLength)
	answer := suggestAnswer{Articles: []suggestion{}}
	if utf8.RuneCountInString(strings.TrimSpace(text)) < minSuggestQuery {
		writeJSON(w, http.StatusOK, answer)
		return
	}
	// The language asked for, else the visitor's (without remembering a
	// choice the visitor did not make on a page).
	locale := q.Get("lang")
	if !tickets.ValidLocale(locale) {
		locale = s.locale(w, r)
	}
	hits, err := s.store.SuggestArticles(r.Context(), text, locale, q.Get("department"), maxSubmitSuggestions)
	if err != nil {
		s.logFailure(r, "suggest articles", err)
		writeJSON(w, http.StatusInternalServerError, jsonError{Error: "internal"})
		return
	}
	answer.Articles = suggestions(hits, fromSubmit)
	writeJSON(w, http.StatusOK, answer)
}

// kbSuggestShown counts the articles the submit form showed as it was
// being typed (id=1&id=2), once the visitor is done with the subject.
func (s *Server) kbSuggestShown(w http.ResponseWriter, r *http.Request) {
	if !s.takeSuggestBudget(w, r) {
		return
	}
	values, ok := s.readSmallForm(w, r, s.locale(w, r))
	if !ok {
		return
	}
	ids, ok := articleIDs(values["id"], maxSubmitSuggestions)
	if !ok {
		writeJSON(w, http.StatusBadRequest, jsonError{Error: "bad_request"})
		return
	}
	if err := s.store.CountArticles(r.Context(), tickets.EventSuggested, ids); err != nil {
		s.logFailure(r, "count suggested articles", err)
		writeJSON(w, http.StatusInternalServerError, jsonError{Error: "internal"})
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// articleIDs reads between one and max article IDs, each once.
func articleIDs(raw []string, max int) ([]int64, bool) {
	if len(raw) == 0 || len(raw) > max {
		return nil, false
	}
	ids := make([]int64, 0, len(raw))
	seen := map[int64]bool{}
	for _, v := range raw {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id <= 0 {
			return nil, false
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids, true
}

// solvedBy resolves the ticket on its customer's word that an article
// solved it.
func (s *Server) solvedBy(w http.ResponseWriter, r *http.Request) {
	t, locale, ok := s.postTicket(w, r)
	if !ok {
		return
	}
	values, ok := s.readSmallForm(w, r, locale)
	if !ok {
		return
	}
	// An article that is not there (any more, or not yet published) is
	// one the visitor cannot have read.
	articleID, err := strconv.ParseInt(values.Get("article"), 10, 64)
	if err == nil {
		err = s.store.ResolveByArticle(r.Context(), t.ID, articleID)
	}
	var numErr *strconv.NumError
	switch {
	case errors.As(err, &numErr) || errors.Is(err, tickets.ErrNotFound):
		s.renderError(w, r, http.StatusNotFound, "kbform.article_gone", locale)
		return
	case err != nil:
		s.internalError(w, r, locale, "resolve by article", err, "ticket", t.TrackingID, "article", articleID)
		return
	}
	http.Redirect(w, r, "/ticket/"+t.TrackingID+"?notice=resolved", http.StatusSeeOther)
}
