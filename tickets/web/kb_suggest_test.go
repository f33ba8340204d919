package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"golang.org/x/time/rate"

	"github.com/helpdeskgw/helpdesk/tickets"
)

// kbSite is the site with a few articles: published ones in both
// departments and languages, and a draft.
type kbSite struct {
	*site
	invoice  tickets.Article // Billing, Spanish: "Facturación: descargar tu factura"
	password tickets.Article // Soporte, Spanish
	refund   tickets.Article // Billing, English: matches the site's ticket
	draft    tickets.Article // Billing, Spanish, not published
}

func newKBSite(t *testing.T, opts Options) *kbSite {
	t.Helper()
	ks := &kbSite{site: newSite(t, opts)}
	ctx := context.Background()
	admin, err := ks.store.AddAgent(ctx, "test", tickets.NewAgent{Email: "root@example.com", Name: "Root Admin",
		Role: tickets.RoleAdmin, Password: staffPassword})
	if err != nil {
		t.Fatal(err)
	}
	save := func(in tickets.ArticleInput) tickets.Article {
		a, err := ks.store.SaveArticle(ctx, admin, 0, in)
		if err != nil {
			t.Fatalf("save %q: %v", in.Title, err)
		}
		return a
	}
	ks.invoice = save(tickets.ArticleInput{Department: "billing", Language: "es", Title: "Facturación: descargar tu factura",
		Keywords: []string{"recibo"}, Body: "Entra en **Mi cuenta** y pulsa *Facturas*.\n\nLa factura de cada mes está allí.",
		State: tickets.ArticlePublished})
	ks.password = save(tickets.ArticleInput{Department: "soporte", Language: "es", Title: "Cambiar la contraseña",
		Keywords: []string{"clave"}, Body: "Usa el enlace «¿Olvidaste tu contraseña?».", State: tickets.ArticlePublished})
	ks.refund = save(tickets.ArticleInput{Department: "billing", Language: "en", Title: "Getting a refund",
		Keywords: []string{"charged twice"}, Body: "Refunds of a **double charge** arrive within five days.", State: tickets.ArticlePublished})
	ks.draft = save(tickets.ArticleInput{Department: "billing", Language: "es", Title: "Factura rectificativa",
		Body: "Aún no está lista.", State: tickets.ArticleDraft})
	return ks
}

// counted is how often an article was counted for an event.
func (ks *kbSite) counted(t *testing.T, event tickets.ArticleEvent, a tickets.Article) int {
	t.Helper()
	return ks.count(t, `SELECT coalesce(sum(`+string(event)+`), 0)::int FROM kb_article_stats WHERE article_id = $1`, a.ID)
}

// suggestionList is the article links of a page's list of suggestions.
func suggestionList(p page, id string) []string {
	section := regexp.MustCompile(`(?s)<section class="kb-suggestions" id="` + id + `"[^>]*>.*?</section>`).FindString(p.body)
	var links []string
	for _, m := range regexp.MustCompile(`<a href="([^"]+)"`).FindAllStringSubmatch(section, -1) {
		links = append(links, strings.ReplaceAll(m[1], "&amp;", "&"))
	}
	return links
}

func TestSubmitAsksForTheSubjectFirst(t *testing.T) {
	s := newKBSite(t, Options{})
	v := s.visitor(t)
	p := v.get("/submit?department=billing")
	if p.status != 200 {
		t.Fatalf("submit form: %d", p.status)
	}
	cont := strings.Index(p.body, `<button type="submit" id="continue" name="step" value="1" formmethod="get" formaction="/submit" formnovalidate`)
	rest := strings.Index(p.body, `<div id="submit-rest" data-kb-rest data-kb-heading="Revisa primero estos artículos" hidden>`)
	subject := strings.Index(p.body, `id="subject"`)
	if cont < 0 || rest < 0 {
		t.Fatalf("the first step lacks Continue or the hidden rest:\n%s", p.body)
	}
	// Enter in the subject presses the first button after it: Continue.
	if !(subject < cont && cont < rest) || !strings.Contains(p.body[rest:], `id="submit"`) {
		t.Error("want the subject, then Continue, then the rest holding the real button")
	}
	for _, field := range []string{`id="name"`, `id="email"`, `id="message"`, `id="priority"`, `id="attachments"`} {
		if i := strings.Index(p.body, field); i < rest {
			t.Errorf("%s is not in the hidden rest", field)
		}
	}
	if !strings.Contains(p.body, `<option value="billing" selected>`) {
		t.Error("?department= does not choose the department on the first step")
	}
	if p.has("kb-suggestions") {
		t.Error("the first step lists articles before a subject")
	}
}

func TestSubmitSuggestsArticlesForTheSubject(t *testing.T) {
	s := newKBSite(t, Options{})
	v := s.visitor(t)
	// As the first step's Continue sends it, without the script.
	q := url.Values{"department": {"billing"}, "subject": {"No puedo descargar la factura"}, "name": {"Ana & Co"},
		"email": {"ana@example.org"}, "message": {""}, "priority": {"high"}, "attachments": {""}, "step": {"1"}}
	p := v.get("/submit?" + q.Encode())
	if p.status != 200 {
		t.Fatalf("step with a subject: %d", p.status)
	}
	links := suggestionList(p, "kb-suggestions")
	if want := "/kb/billing/es/" + s.invoice.Slug + "?from=submit"; len(links) != 1 || links[0] != want {
		t.Fatalf("suggested %q, want only %q", links, want)
	}
	for _, want := range []string{`<h2>Revisa primero estos artículos</h2>`, ">Facturación: descargar tu factura</a>",
		`<p class="hint">Entra en Mi cuenta y pulsa Facturas. La factura de cada mes`, `value="No puedo descargar la factura"`, `value="Ana &amp; Co"`,
		`value="ana@example.org"`, `<option value="high" selected>`, `<option value="billing" selected>`,
		`<div id="submit-rest" data-kb-rest data-kb-heading="Revisa primero estos artículos">`} {
		if !strings.Contains(p.body, want) {
			t.Errorf("step with a subject lacks %q", want)
		}
	}
	if p.has("continue") || strings.ContainsAny(p.body, tickets.MarkStart+tickets.MarkEnd) {
		t.Error("want the whole form, without Continue, and plain excerpts")
	}
	if n := s.counted(t, tickets.EventSuggested, s.invoice); n != 1 {
		t.Errorf("the suggested article counted %d times, want 1", n)
	}
	for _, a := range []tickets.Article{s.password, s.refund, s.draft} {
		if n := s.counted(t, tickets.EventSuggested, a); n != 0 {
			t.Errorf("%q counted as suggested %d times", a.Title, n)
		}
	}

	// Nothing matches: just the whole form.
	p = v.get("/submit?department=soporte&subject=" + url.QueryEscape("La impresora hace ruido"))
	if p.status != 200 || p.has("kb-suggestions") || p.has("continue") || !p.has("submit-rest") ||
		strings.Contains(p.body, "data-kb-rest hidden") || !strings.Contains(p.body, `value="La impresora hace ruido"`) {
		t.Errorf("no match: want the whole form alone (%d)", p.status)
	}
	if n := s.count(t, `SELECT coalesce(sum(suggested), 0)::int FROM kb_article_stats`); n != 1 {
		t.Errorf("%d suggestions counted in all, want 1", n)
	}
}

func TestSubmitErrorsShowTheWholeForm(t *testing.T) {
	s := newKBSite(t, Options{})
	v := s.visitor(t)
	fields := validTicket()
	fields["email"] = ""
	p := v.postMultipart("/submit", fields)
	if p.status != http.StatusUnprocessableEntity || !p.has("error-email") {
		t.Fatalf("submit without an address: %d", p.status)
	}
	if p.has("continue") || strings.Contains(p.body, "data-kb-rest hidden") || !p.has("submit") {
		t.Error("a form with errors came back as the first step")
	}
}

// suggestJSON asks for live suggestions.
func suggestJSON(t *testing.T, v *visitor, query url.Values) (page, suggestAnswer) {
	t.Helper()
	p := v.get("/kb/suggest?" + query.Encode())
	var answer suggestAnswer
	if p.status == 200 {
		if err := json.Unmarshal([]byte(p.body), &answer); err != nil {
			t.Fatalf("suggestions %q: %v", p.body, err)
		}
	}
	return p, answer
}

func TestLiveSuggestions(t *testing.T) {
	s := newKBSite(t, Options{})
	v := s.visitor(t)
	// Typed without the accent, and still being typed.
	p, answer := suggestJSON(t, v, url.Values{"q": {"facturacion"}, "department": {"billing"}, "lang": {"es"}})
	if p.status != 200 || !strings.HasPrefix(p.header.Get("Content-Type"), "application/json") || p.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("suggest: %d %q %q", p.status, p.header.Get("Content-Type"), p.header.Get("Cache-Control"))
	}
	want := suggestion{ID: s.invoice.ID, Title: "Facturación: descargar tu factura", URL: "/kb/billing/es/" + s.invoice.Slug + "?from=submit",
		Excerpt: "Entra en Mi cuenta y pulsa Facturas."}
	if len(answer.Articles) != 1 || answer.Articles[0].ID != want.ID || answer.Articles[0].Title != want.Title ||
		answer.Articles[0].URL != want.URL || !strings.HasPrefix(answer.Articles[0].Excerpt, want.Excerpt) {
		t.Fatalf("suggested %+v, want %+v", answer.Articles, want)
	}
	if _, answer := suggestJSON(t, v, url.Values{"q": {"contraseñ"}}); len(answer.Articles) != 1 || answer.Articles[0].ID != s.password.ID {
		t.Errorf("a word being typed: %+v", answer.Articles)
	}
	// Too short, and drafts, give nothing; the list is a list all the same.
	for _, q := range []string{"fa", " f ", "rectificativa"} {
		p, answer := suggestJSON(t, v, url.Values{"q": {q}, "lang": {"es"}})
		if p.status != 200 || len(answer.Articles) != 0 || !strings.Contains(p.body, `"articles":[]`) {
			t.Errorf("q=%q: %d %s", q, p.status, p.body)
		}
	}
	// A language that is none of ours is the visitor's, and not remembered.
	p, answer = suggestJSON(t, v, url.Values{"q": {"refund"}, "lang": {"fr"}})
	if p.status != 200 || len(answer.Articles) != 1 || answer.Articles[0].ID != s.refund.ID || p.header.Get("Set-Cookie") != "" {
		t.Errorf("lang=fr: %d %+v, cookie %q", p.status, answer.Articles, p.header.Get("Set-Cookie"))
	}
	if n := s.count(t, `SELECT count(*) FROM kb_article_stats`); n != 0 {
		t.Errorf("listing live counted %d articles: they count when shown", n)
	}

	// Past the client's budget.
	s.handler.suggestLimiter = newLimiter(rate.Limit(3.0/60), 3)
	for i := range 3 {
		if p, _ := suggestJSON(t, v, url.Values{"q": {"factura"}}); p.status != 200 {
			t.Fatalf("request %d: %d", i+1, p.status)
		}
	}
	p, _ = suggestJSON(t, v, url.Values{"q": {"factura"}})
	if p.status != http.StatusTooManyRequests || p.header.Get("Retry-After") == "" ||
		!strings.HasPrefix(p.header.Get("Content-Type"), "application/json") || !strings.Contains(p.body, `"error":"rate_limited"`) {
		t.Errorf("past the budget: %d %q %s", p.status, p.header.Get("Retry-After"), p.body)
	}
	if p := v.post("/kb/suggest/shown", url.Values{"id": {fmt.Sprint(s.invoice.ID)}}); p.status != http.StatusTooManyRequests {
		t.Errorf("counting past the budget: %d", p.status)
	}
	// The first step of the form then goes on without suggestions.
	p = v.get("/submit?subject=" + url.QueryEscape("descargar la factura"))
	if p.status != 200 || p.has("kb-suggestions") || !p.has("submit") {
		t.Errorf("the form past the budget: %d", p.status)
	}
}

func TestShownSuggestionsAreCounted(t *testing.T) {
	s := newKBSite(t, Options{})
	v := s.visitor(t)
	id := func(a tickets.Article) string { return fmt.Sprint(a.ID) }
	p := v.post("/kb/suggest/shown", url.Values{"id": {id(s.invoice), id(s.password), id(s.invoice), id(s.draft), "999999"}})
	if p.status != http.StatusNoContent {
		t.Fatalf("shown: %d %s", p.status, p.body)
	}
	for _, c := range []struct {
		article tickets.Article
		want    int
	}{{s.invoice, 1}, {s.password, 1}, {s.refund, 0}, {s.draft, 0}} {
		if n := s.counted(t, tickets.EventSuggested, c.article); n != c.want {
			t.Errorf("%q counted %d times, want %d", c.article.Title, n, c.want)
		}
	}
	for _, bad := range []url.Values{
		{},
		{"id": {"x"}},
		{"id": {"-1"}},
		{"id": {"1", "2", "3", "4", "5", "6"}},
	} {
		if p := v.post("/kb/suggest/shown", bad); p.status != http.StatusBadRequest {
			t.Errorf("%v: %d, want 400", bad, p.status)
		}
	}
	// From another site: refused like every form.
	req, _ := http.NewRequest("POST", s.srv.URL+"/kb/suggest/shown", strings.NewReader("id="+id(s.refund)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if p := v.do(req); p.status != http.StatusForbidden {
		t.Errorf("cross-site count: %d, want 403", p.status)
	}
	if n := s.count(t, `SELECT coalesce(sum(suggested), 0)::int FROM kb_article_stats`); n != 2 {
		t.Errorf("%d counted in all, want 2", n)
	}
}

func TestTicketSolvedByAnArticle(t *testing.T) {
	s := newKBSite(t, Options{})
	v := s.visitor(t)
	path := "/ticket/" + s.ticket.TrackingID
	p := v.open(s.token)
	// The ticket is in English, about a double charge.
	links := suggestionList(p, "ticket-articles")
	if want := "/kb/billing/en/" + s.refund.Slug + "?from=ticket"; len(links) != 1 || links[0] != want {
		t.Fatalf("ticket page suggests %q, want %q", links, want)
	}
	for _, want := range []string{`action="` + path + `/solved-by"`, fmt.Sprintf(`name="article" value="%d"`, s.refund.ID),
		fmt.Sprintf(`id="solved-by-%d"`, s.refund.ID), "This article solved it", "Refunds of a double charge"} {
		if !strings.Contains(p.body, want) {
			t.Errorf("ticket page lacks %q", want)
		}
	}
	// Picked for the ticket once and counted then, not at every view.
	if p := v.open(s.token); !slices.Equal(suggestionList(p, "ticket-articles"), links) {
		t.Errorf("the ticket page shown again suggests %q", suggestionList(p, "ticket-articles"))
	}
	if n := s.counted(t, tickets.EventSuggested, s.refund); n != 1 {
		t.Errorf("the ticket page counted its suggestion %d times, want once", n)
	}

	// Someone without access gets what resolving gives them.
	anon := s.visitor(t)
	solved := url.Values{"article": {fmt.Sprint(s.refund.ID)}}
	resolve, byArticle := anon.post(path+"/resolve", nil), anon.post(path+"/solved-by", solved)
	if byArticle.status != http.StatusForbidden || byArticle.status != resolve.status || !strings.Contains(byArticle.body, `href="/lookup"`) {
		t.Errorf("without access: %d, resolve gives %d", byArticle.status, resolve.status)
	}
	if p := v.open(s.otherT); p.status != 200 {
		t.Fatal("the other ticket's link")
	}
	if p := s.visitor(t).post("/ticket/"+s.other.TrackingID+"/solved-by", solved); p.status != http.StatusForbidden {
		t.Errorf("another customer's ticket: %d", p.status)
	}
	req, _ := http.NewRequest("POST", s.srv.URL+path+"/solved-by", strings.NewReader(solved.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if p := v.do(req); p.status != http.StatusForbidden {
		t.Errorf("solved by, posted from another site: %d, want 403", p.status)
	}
	// A draft, an unknown article and no article at all are not found.
	for _, article := range []string{fmt.Sprint(s.draft.ID), "999999", "x", ""} {
		if p := v.post(path+"/solved-by", url.Values{"article": {article}}); p.status != http.StatusNotFound || !strings.Contains(p.body, "no longer available") {
			t.Errorf("article=%q: %d, want 404", article, p.status)
		}
	}
	if status, _ := s.status(t, s.ticket.ID); status != tickets.StatusNew {
		t.Fatalf("status %s before the article solved it", status)
	}

	p = v.post(path+"/solved-by", solved)
	if p.status != http.StatusSeeOther || p.location() != path+"?notice=resolved" {
		t.Fatalf("solved by: %d to %q", p.status, p.location())
	}
	status, changes := s.status(t, s.ticket.ID)
	if status != tickets.StatusResolved || fmt.Sprint(changes) != "[new>resolved by customer:zoe@example.org]" {
		t.Errorf("after the article solved it: %s %v", status, changes)
	}
	if n := s.count(t, `SELECT count(*) FROM tickets WHERE id = $1 AND solved_by_article = $2`, s.ticket.ID, s.refund.ID); n != 1 {
		t.Error("the ticket does not name the article that solved it")
	}
	if n := s.counted(t, tickets.EventResolved, s.refund); n != 1 {
		t.Errorf("resolved counted %d times, want 1", n)
	}
	page := v.get(p.location())
	if page.has("ticket-articles") || !page.has("reopen") || !strings.Contains(page.body, `id="status">Resolved<`) {
		t.Error("a resolved ticket's page still offers articles, or does not say it is resolved")
	}
}
