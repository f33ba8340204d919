package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/helpdeskgw/helpdesk/tickets"
)

// articleValues is the article form as a browser sends it on Save.
func articleValues(dept, lang, title, body string, state tickets.ArticleState) url.Values {
	return url.Values{"department": {dept}, "language": {lang}, "title": {title}, "slug": {""}, "category": {"Payments"},
		"keywords": {"invoice, card"}, "body": {body}, "state": {string(state)}, "action": {"save"}}
}

// savedArticle is the ID of the article a Save led to, failing the test
// when it did not lead to the saved article's page.
func savedArticle(t *testing.T, p page) int64 {
	t.Helper()
	m := regexp.MustCompile(`^/staff/kb/(\d+)\?notice=saved$`).FindStringSubmatch(p.location())
	if p.status != http.StatusSeeOther || m == nil {
		t.Fatalf("save: %d to %q, want 303 to the article\n%s", p.status, p.location(), p.body)
	}
	id, _ := strconv.ParseInt(m[1], 10, 64)
	return id
}

// cell is the text of the element with that id.
func cell(body, id string) string {
	m := regexp.MustCompile(`id="` + regexp.QuoteMeta(id) + `">(.*?)</t[dr]>`).FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return m[1]
}

// soporteArticle is a Soporte article written by its agent through the
// store, for tests of who reaches what.
func (ss *staffSite) soporteArticle(t *testing.T) tickets.Article {
	t.Helper()
	art, err := ss.store.SaveArticle(context.Background(), ss.beto, 0, tickets.ArticleInput{Department: "soporte", Language: "es",
		Title: "Cómo descargar la factura", Body: "Entra en tu cuenta y pulsa **Facturas**.", State: tickets.ArticlePublished})
	if err != nil {
		t.Fatal(err)
	}
	return art
}

func TestStaffKBWriteListEditDelete(t *testing.T) {
	ss := newStaffSite(t, Options{})
	ctx := context.Background()
	ana := ss.as(t, ss.ana)
	ana.get("/staff?lang=en")
	if p := ana.get("/staff"); !strings.Contains(p.body, `href="/staff/kb"`) {
		t.Error("the staff navigation has no link to the knowledge base")
	}
	if p := ana.get("/staff/kb/new"); p.status != 200 || !p.has("article-form") || !strings.Contains(p.body, `<option value="billing">Billing</option>`) || strings.Contains(p.body, `<option value="">`) {
		t.Fatalf("new article form: %d\n%s", p.status, p.body)
	}

	id := savedArticle(t, ana.post("/staff/kb", articleValues("billing", "en", "How to pay", "Pay by **card**.", tickets.ArticlePublished)))
	art, err := ss.store.StaffArticle(ctx, ss.ana, id)
	if err != nil || art.Slug != "how-to-pay" || art.State != tickets.ArticlePublished || art.Department.ID != ss.billing.ID ||
		strings.Join(art.Keywords, "|") != "invoice|card" || art.Category != "Payments" {
		t.Fatalf("saved article: %+v %v", art, err)
	}
	if p := ana.get(fmt.Sprintf("/staff/kb/%d?notice=saved", id)); !p.has("notice") || !strings.Contains(p.body, "The article has been saved.") ||
		!strings.Contains(p.body, `href="/kb/billing/en/how-to-pay"`) {
		t.Errorf("the saved article's page lacks the notice or its public link\n%s", p.body)
	}
	if n := ss.count(t, `SELECT count(*) FROM audit_log WHERE action = 'kb.save' AND target = $1 AND actor = $2`, fmt.Sprint("article ", id), ss.ana.Actor()); n != 1 {
		t.Errorf("%d audit rows of the save", n)
	}

	// Counts: two suggestions and one "helpful" today, a ticket solved by
	// it, and five "helpful" long ago, which count in the total only.
	for range 2 {
		if err := ss.store.CountArticles(ctx, tickets.EventSuggested, []int64{id}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ss.store.CountArticles(ctx, tickets.EventHelpful, []int64{id}); err != nil {
		t.Fatal(err)
	}
	if err := ss.store.ResolveByArticle(ctx, ss.ticket.ID, id); err != nil {
		t.Fatal(err)
	}
	if _, err := ss.pool.Exec(ctx, `INSERT INTO kb_article_stats (article_id, day, helpful) VALUES ($1, current_date - 40, 5)`, id); err != nil {
		t.Fatal(err)
	}
	list := ana.get("/staff/kb")
	row := fmt.Sprint("article-", id)
	if list.status != 200 || !list.has(row) || !strings.Contains(list.body, ">How to pay</a>") || !list.has(row+"-public") {
		t.Fatalf("the list lacks the article: %d\n%s", list.status, list.body)
	}
	for count, want := range map[string]string{"suggested": "2 / 2", "opened": "0 / 0", "helpful": "1 / 6", "resolved": "1 / 1",
		"deflected": "<strong>2</strong> / 7"} {
		if got := cell(list.body, row+"-"+count); got != want {
			t.Errorf("list %s: %q, want %q", count, got, want)
		}
	}
	edit := ana.get(fmt.Sprint("/staff/kb/", id))
	for id, want := range map[string]string{"recent-helpful": "1", "total-helpful": "6", "recent-resolved": "1",
		"recent-deflected": "<strong>2</strong>", "total-deflected": "<strong>7</strong>", "total-suggested": "2"} {
		if got := cell(edit.body, id); got != want {
			t.Errorf("article page %s: %q, want %q", id, got, want)
		}
	}
	if !strings.Contains(edit.body, `value="invoice, card"`) || !strings.Contains(edit.body, "Pay by **card**.</textarea>") {
		t.Error("the article page's form does not hold the article")
	}

	// Edited into a draft: its public link goes, its counts stay.
	changed := articleValues("billing", "en", "How to pay by card", "Pay by **card** or transfer.", tickets.ArticleDraft)
	changed.Set("slug", "paying")
	if got := savedArticle(t, ana.post(fmt.Sprint("/staff/kb/", id), changed)); got != id {
		t.Fatalf("the edit saved article %d, want %d", got, id)
	}
	if art, _ := ss.store.StaffArticle(ctx, ss.ana, id); art.Title != "How to pay by card" || art.Slug != "paying" || art.State != tickets.ArticleDraft {
		t.Errorf("edited article: %+v", art)
	}
	list = ana.get("/staff/kb")
	if list.has(row+"-public") || !strings.Contains(list.body, ">How to pay by card</a>") || cell(list.body, row+"-deflected") != "<strong>2</strong> / 7" {
		t.Errorf("the list after the edit\n%s", list.body)
	}
	if p := ana.get("/staff/kb?state=published"); p.has(row) || !p.has("articles-empty") {
		t.Error("the published filter shows the draft")
	}
	if p := ana.get("/staff/kb?state=draft&language=en&department=billing"); !p.has(row) {
		t.Error("the filters hide the draft")
	}

	p := ana.post(fmt.Sprint("/staff/kb/", id, "/delete"), nil)
	if p.status != http.StatusSeeOther || p.location() != "/staff/kb?notice=deleted" {
		t.Fatalf("delete: %d to %q", p.status, p.location())
	}
	if n := ss.count(t, `SELECT count(*) FROM kb_articles WHERE id = $1`, id) + ss.count(t, `SELECT count(*) FROM kb_article_stats WHERE article_id = $1`, id); n != 0 {
		t.Error("the article or its counts are still there")
	}
	if p := ana.get("/staff/kb?notice=deleted"); p.has(row) || !strings.Contains(p.body, "The article has been deleted.") {
		t.Error("the list after the delete")
	}
	if p := ana.get(fmt.Sprint("/staff/kb/", id)); p.status != http.StatusNotFound {
		t.Errorf("the deleted article's page: %d, want 404", p.status)
	}
}

func TestStaffKBPreviewSavesNothing(t *testing.T) {
	ss := newStaffSite(t, Options{})
	ana := ss.as(t, ss.ana)
	body := "## Paying\n\nUse **your card**.\n\n<script>alert('kb')</script>\n\n[x](javascript:alert(2))"
	form := articleValues("billing", "en", "", body, tickets.ArticlePublished)
	form.Set("action", "preview")
	p := ana.post("/staff/kb", form)
	if p.status != 200 || !p.has("preview") {
		t.Fatalf("preview: %d\n%s", p.status, p.body)
	}
	_, shown, found := strings.Cut(p.body, `id="preview-body"`)
	shown, _, _ = strings.Cut(shown, "</section>")
	if !found {
		t.Fatalf("the preview shows no body\n%s", p.body)
	}
	if !strings.Contains(shown, "<strong>your card</strong>") || !strings.Contains(shown, `<h2 id="h-paying">Paying</h2>`) {
		t.Errorf("the preview does not render the Markdown\n%s", shown)
	}
	if strings.Contains(p.body, "<script>alert") || strings.Contains(shown, "script") || strings.Contains(shown, "javascript:") {
		t.Errorf("the preview lets a script through\n%s", shown)
	}
	if !strings.Contains(p.body, "&lt;script&gt;alert(&#39;kb&#39;)&lt;/script&gt;") {
		t.Error("the form does not keep the body as typed")
	}
	if p.has("error-title") {
		t.Error("a preview checks the fields")
	}
	// Headings get IDs from their text ("Title" → "title"): the fields'
	// IDs come first, for their labels.
	if strings.Index(p.body, `<input type="text" id="title"`) > strings.Index(p.body, `id="preview-body"`) {
		t.Error("the preview comes before the form's fields")
	}
	if n := ss.count(t, `SELECT count(*) FROM kb_articles`); n != 0 {
		t.Errorf("a preview saved %d articles", n)
	}

	// An article's preview leaves it as it is.
	id := savedArticle(t, ana.post("/staff/kb", articleValues("billing", "en", "How to pay", "Pay by card.", tickets.ArticlePublished)))
	form.Set("title", "Changed")
	if p := ana.post(fmt.Sprint("/staff/kb/", id), form); p.status != 200 || !strings.Contains(p.body, "<strong>your card</strong>") || !p.has("total-deflected") {
		t.Errorf("preview of a saved article: %d", p.status)
	}
	if art, _ := ss.store.StaffArticle(context.Background(), ss.ana, id); art.Title != "How to pay" || art.Body != "Pay by card." {
		t.Errorf("a preview changed the article: %+v", art)
	}
}

func TestStaffKBFieldErrors(t *testing.T) {
	ss := newStaffSite(t, Options{})
	ana := ss.as(t, ss.ana)
	ana.get("/staff?lang=en")
	first := savedArticle(t, ana.post("/staff/kb", articleValues("billing", "en", "How to pay", "Pay by card.", tickets.ArticlePublished)))
	taken := articleValues("billing", "en", "Paying", "Another text.", tickets.ArticleDraft)
	taken.Set("slug", "how-to-pay")
	badSlug := articleValues("billing", "en", "Paying", "Another text.", tickets.ArticleDraft)
	badSlug.Set("slug", "Not A Slug")
	for _, tc := range []struct {
		name  string
		form  url.Values
		field string
		text  string
	}{
		{"empty title", articleValues("billing", "en", "  ", "Kept text.", tickets.ArticleDraft), "title", "This field is required."},
		{"taken slug", taken, "slug", "There is already an article at this address"},
		{"bad slug", badSlug, "slug", "Use lower-case letters without accents"},
		{"empty body", articleValues("billing", "en", "Paying", "", tickets.ArticleDraft), "body", "This field is required."},
		{"body too long", articleValues("billing", "en", "Paying", strings.Repeat("é", tickets.MaxArticleBody/2+1), tickets.ArticleDraft), "body", "This text is too long."},
		{"unknown language", articleValues("billing", "fr", "Paying", "Kept text.", tickets.ArticleDraft), "language", "Choose the article&#39;s language"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := ana.post("/staff/kb", tc.form)
			if p.status != http.StatusUnprocessableEntity || !p.has("error-"+tc.field) || !p.has("error-summary") || !strings.Contains(p.body, tc.text) {
				t.Fatalf("%d, want 422 with the %s field's error %q\n%s", p.status, tc.field, tc.text, p.body)
			}
			if !strings.Contains(p.body, `aria-describedby="`+tc.field+`-hint error-`+tc.field+`"`) &&
				!strings.Contains(p.body, `aria-invalid="true" aria-describedby="error-`+tc.field+`"`) {
				t.Error("the field does not point at its error")
			}
			if body := tc.form.Get("body"); body != "" && !strings.Contains(p.body, body+"</textarea>") {
				t.Error("the form lost the text typed")
			}
		})
	}
	// A long article is read whole, beyond the bound of the forms without
	// files.
	long := articleValues("billing", "en", "Long", strings.Repeat("é", tickets.MaxArticleBody/2), tickets.ArticleDraft)
	if id := savedArticle(t, ana.post("/staff/kb", long)); ss.count(t, `SELECT length(body_md) FROM kb_articles WHERE id = $1`, id) != tickets.MaxArticleBody/2 {
		t.Error("the long article was cut")
	}
	// On a saved article's page too.
	if p := ana.post(fmt.Sprint("/staff/kb/", first), articleValues("billing", "en", "", "Pay.", tickets.ArticleDraft)); p.status != http.StatusUnprocessableEntity || !p.has("error-title") || !p.has("delete") {
		t.Errorf("edit with an empty title: %d", p.status)
	}
	if n := ss.count(t, `SELECT count(*) FROM kb_articles`); n != 2 {
		t.Errorf("%d articles, want the first and the long one", n)
	}
}

func TestStaffKBOtherDepartmentsAreWalled(t *testing.T) {
	ss := newStaffSite(t, Options{})
	art := ss.soporteArticle(t)
	ana := ss.as(t, ss.ana) // Billing
	path := fmt.Sprint("/staff/kb/", art.ID)
	preview := articleValues("soporte", "es", "Mío", "x", tickets.ArticleDraft)
	preview.Set("action", "preview")
	for _, tc := range []struct {
		name string
		do   func() page
	}{
		{"read it", func() page { return ana.get(path) }},
		{"edit it", func() page {
			return ana.post(path, articleValues("billing", "es", "Mío", "Ahora es mío.", tickets.ArticleDraft))
		}},
		{"edit it wrongly", func() page { return ana.post(path, articleValues("billing", "es", "", "", tickets.ArticleDraft)) }},
		{"preview it", func() page { return ana.post(path, preview) }},
		{"delete it", func() page { return ana.post(path+"/delete", nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.do()
			if p.status != http.StatusNotFound || strings.Contains(p.body, "Cómo descargar") || strings.Contains(p.body, "Facturas") {
				t.Errorf("%d, want 404 showing nothing of it", p.status)
			}
		})
	}
	if p := ana.get("/staff/kb"); p.has(fmt.Sprint("article-", art.ID)) || strings.Contains(p.body, "Cómo descargar") {
		t.Error("her list shows another department's article")
	}
	if p := ana.get("/staff/kb?department=soporte"); p.has(fmt.Sprint("article-", art.ID)) {
		t.Error("her list filtered to Soporte shows its article")
	}
	p := ana.post("/staff/kb", articleValues("soporte", "es", "Mío", "En tu departamento.", tickets.ArticlePublished))
	if p.status != http.StatusUnprocessableEntity || !p.has("error-department") {
		t.Errorf("writing in Soporte: %d, want 422 with the department's error", p.status)
	}
	if n := ss.count(t, `SELECT count(*) FROM kb_articles`); n != 1 {
		t.Errorf("%d articles, want Soporte's only", n)
	}
	if got, err := ss.store.StaffArticle(context.Background(), ss.beto, art.ID); err != nil || got.Title != art.Title || got.Department.ID != ss.soporte.ID {
		t.Errorf("Soporte's article changed: %+v %v", got, err)
	}
	// Its agent and the admin reach it; the admin's form offers every
	// department.
	if p := ss.as(t, ss.beto).get(path); p.status != 200 || !strings.Contains(p.body, "Cómo descargar la factura") {
		t.Errorf("its agent: %d", p.status)
	}
	root := ss.as(t, ss.root)
	if p := root.get("/staff/kb"); !p.has(fmt.Sprint("article-", art.ID)) {
		t.Error("the admin's list lacks it")
	}
	if p := root.get(path); p.status != 200 || !strings.Contains(p.body, `<option value="billing">Billing</option>`) {
		t.Errorf("the admin's article page: %d", p.status)
	}
}

func TestStaffKBCrossOriginPostsAreRefused(t *testing.T) {
	ss := newStaffSite(t, Options{})
	art := ss.soporteArticle(t)
	beto := ss.as(t, ss.beto)
	beto.header.Set("Sec-Fetch-Site", "cross-site")
	form := articleValues("soporte", "es", "Robado", "Texto cambiado.", tickets.ArticlePublished)
	for _, path := range []string{"/staff/kb", fmt.Sprint("/staff/kb/", art.ID), fmt.Sprint("/staff/kb/", art.ID, "/delete")} {
		if p := beto.post(path, form); p.status != http.StatusForbidden {
			t.Errorf("cross-site POST %s: %d, want 403", path, p.status)
		}
	}
	if got, err := ss.store.StaffArticle(context.Background(), ss.beto, art.ID); err != nil || got.Title != art.Title {
		t.Errorf("the article after cross-site posts: %+v %v", got, err)
	}
	if n := ss.count(t, `SELECT count(*) FROM kb_articles`); n != 1 {
		t.Errorf("%d articles after cross-site posts", n)
	}
	beto.header.Set("Sec-Fetch-Site", "same-origin")
	if p := beto.post(fmt.Sprint("/staff/kb/", art.ID, "/delete"), nil); p.status != http.StatusSeeOther {
		t.Errorf("same-origin delete: %d, want 303", p.status)
	}
}

func TestStaffKBPagesAreInBothLanguages(t *testing.T) {
	ss := newStaffSite(t, Options{})
	art := ss.soporteArticle(t)
	beto := ss.as(t, ss.beto)
	for _, tc := range []struct{ lang, list, article string }{
		{"es", "Desvíos", "Lo que ha hecho por los clientes"},
		{"en", "Deflected", "What it did for customers"},
	} {
		t.Run(tc.lang, func(t *testing.T) {
			beto.get("/staff?lang=" + tc.lang)
			for path, want := range map[string]string{"/staff/kb": tc.list, fmt.Sprint("/staff/kb/", art.ID): tc.article} {
				p := beto.get(path)
				if p.status != 200 || !strings.Contains(p.body, want) || !strings.Contains(p.body, `<html lang="`+tc.lang+`">`) ||
					!strings.Contains(p.body, `id="nav-kb" aria-current="page"`) {
					t.Errorf("%s in %s: %d, want %q", path, tc.lang, p.status, want)
				}
			}
		})
	}
}
