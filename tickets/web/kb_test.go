package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/helpdeskgw/helpdesk/tickets"
)

// hostileBody is an article whose author tried to put script on the page.
const hostileBody = `Texto de la trampa. Si 3 < 5 & 7 > 2, entonces sigue.

<script>alert("kb")</script>

[Pulsa aquí](javascript:alert(1))

<img src=x onerror=alert(2)>

<a href="https://example.com" onclick="alert(3)">enlace</a>
`

// readerSite is the portal with knowledge base articles: published ones
// in Spanish in both departments (one of no category, one hostile), one
// in English, and a draft.
func readerSite(t *testing.T) *site {
	t.Helper()
	s := newSite(t, Options{})
	publishArticles(t, s, []tickets.ArticleInput{
		{Department: "billing", Language: "es", Title: "Consultar la facturación", Category: "Pagos",
			Body: "Tu facturación mensual está en **Mi cuenta**, en el apartado Facturas.", State: tickets.ArticlePublished},
		{Department: "billing", Language: "es", Title: "Cambiar la forma de pago", Category: "Pagos",
			Body: "Puedes pagar con tarjeta o por transferencia.", State: tickets.ArticlePublished},
		{Department: "soporte", Language: "es", Title: "Restablecer la contraseña", Category: "Cuenta",
			Body: "Usa el enlace «¿Olvidaste tu contraseña?» de la página de acceso.", State: tickets.ArticlePublished},
		{Department: "soporte", Language: "es", Title: "Primeros pasos",
			Body: "Bienvenido al servicio.", State: tickets.ArticlePublished},
		{Department: "soporte", Language: "es", Slug: "trampas", Title: "Artículo con trampas", Category: "Cuenta",
			Body: hostileBody, State: tickets.ArticlePublished},
		{Department: "soporte", Language: "es", Title: "Borrador interno", Category: "Cuenta",
			Body: "Aún no se publica.", State: tickets.ArticleDraft},
		{Department: "billing", Language: "en", Title: "Downloading your invoice", Category: "Payments",
			Body: "Your invoices are under **My account**.", State: tickets.ArticlePublished},
	})
	return s
}

func publishArticles(t *testing.T, s *site, list []tickets.ArticleInput) {
	t.Helper()
	if _, err := s.store.ImportArticles(context.Background(), "test", list); err != nil {
		t.Fatal(err)
	}
}

// articleCounts are an article's counted events, summed over the days.
func articleCounts(t *testing.T, s *site, path string) (opened, helpful int) {
	t.Helper()
	err := s.pool.QueryRow(context.Background(), `
		SELECT coalesce(sum(st.opened), 0)::int, coalesce(sum(st.helpful), 0)::int
		FROM kb_articles a JOIN departments d ON d.id = a.department_id
		LEFT JOIN kb_article_stats st ON st.article_id = a.id
		WHERE '/kb/' || d.slug || '/' || a.language || '/' || a.slug = $1`, path).Scan(&opened, &helpful)
	if err != nil {
		t.Fatal(err)
	}
	return opened, helpful
}

// inOrder reports whether body holds each of parts, one after the other.
func inOrder(body string, parts ...string) bool {
	at := 0
	for _, p := range parts {
		i := strings.Index(body[at:], p)
		if i < 0 {
			return false
		}
		at += i + len(p)
	}
	return true
}

// inlineCode is what the CSP forbids: inline script, handlers and style.
var inlineCode = regexp.MustCompile(`<script>|<script [^>]*>[^<]|\son[a-z]+=|\sstyle=|<style`)

func TestKBIndexListsPublishedArticlesByDepartmentAndCategory(t *testing.T) {
	s := readerSite(t)
	es := s.visitor(t).get("/kb")
	if es.status != 200 {
		t.Fatalf("/kb: %d\n%s", es.status, es.body)
	}
	if !inOrder(es.body, `<h2 id="dept-billing">Billing</h2>`, "<h3>Pagos</h3>", "Cambiar la forma de pago", "Consultar la facturación",
		`<h2 id="dept-soporte">Soporte Técnico</h2>`, "Primeros pasos", "<h3>Cuenta</h3>", "Artículo con trampas", "Restablecer la contraseña") {
		t.Errorf("/kb does not group by department, then category, then title:\n%s", es.body)
	}
	for _, want := range []string{`href="/kb/billing/es/consultar-la-facturacion"`, "Tu facturación mensual está en Mi cuenta",
		`lang="es"`, `<title>Artículos de ayuda · Centro de soporte</title>`, `id="kb-q"`, `href="/submit"`} {
		if !strings.Contains(es.body, want) {
			t.Errorf("/kb in Spanish lacks %q", want)
		}
	}
	for _, unwanted := range []string{"Borrador interno", "Downloading your invoice", "<script>alert", "**Mi cuenta**"} {
		if strings.Contains(es.body, unwanted) {
			t.Errorf("/kb in Spanish shows %q", unwanted)
		}
	}

	v := s.visitor(t)
	v.header.Set("Accept-Language", "en")
	en := v.get("/kb")
	if en.status != 200 || !strings.Contains(en.body, `lang="en"`) {
		t.Fatalf("/kb in English: %d", en.status)
	}
	if !inOrder(en.body, `<h2 id="dept-billing">Billing</h2>`, "<h3>Payments</h3>", `href="/kb/billing/en/downloading-your-invoice"`, "Your invoices are under My account.") {
		t.Errorf("/kb in English lacks its article:\n%s", en.body)
	}
	for _, unwanted := range []string{"Consultar la facturación", "dept-soporte", "kb-other-language"} {
		if strings.Contains(en.body, unwanted) {
			t.Errorf("/kb in English shows %q", unwanted)
		}
	}
	for _, p := range []page{es, en} {
		if m := inlineCode.FindString(p.body); m != "" {
			t.Errorf("/kb has inline code %q", m)
		}
	}
}

func TestKBIndexPointsToTheOtherLanguage(t *testing.T) {
	s := newSite(t, Options{})
	if p := s.visitor(t).get("/kb"); p.status != 200 || !p.has("kb-empty") || p.has("kb-other-language") {
		t.Errorf("/kb without articles: %d, want 200 saying there are none", p.status)
	}
	publishArticles(t, s, []tickets.ArticleInput{{Department: "billing", Language: "en", Title: "Downloading your invoice",
		Body: "Under My account.", State: tickets.ArticlePublished}})
	v := s.visitor(t)
	p := v.get("/kb")
	if !p.has("kb-other-language") || !strings.Contains(p.body, `href="/kb?lang=en"`) || !strings.Contains(p.body, "en inglés") {
		t.Fatalf("/kb in Spanish with English articles only does not point to them:\n%s", p.body)
	}
	if p := v.get("/kb?lang=en"); !strings.Contains(p.body, "Downloading your invoice") || p.has("kb-other-language") {
		t.Errorf("following the pointer: %d, want the English articles", p.status)
	}
}

func TestKBDraftsAndUnknownArticlesAreNotFound(t *testing.T) {
	s := readerSite(t)
	v := s.visitor(t)
	for _, path := range []string{
		"/kb/soporte/es/borrador-interno", // a draft
		"/kb/soporte/es/no-existe",
		"/kb/billing/es/downloading-your-invoice", // in the other language
		"/kb/soporte/fr/primeros-pasos",
		"/kb/ventas/es/primeros-pasos",
		"/kb/soporte/es",
	} {
		p := v.get(path)
		if p.status != 404 || !strings.Contains(p.body, "No existe ninguna página") {
			t.Errorf("%s: %d, want the site's 404 page", path, p.status)
		}
		if strings.Contains(p.body, "Aún no se publica") {
			t.Errorf("%s shows the draft", path)
		}
	}
	if p := v.post("/kb/soporte/es/borrador-interno/helpful", nil); p.status != 404 {
		t.Errorf("a vote for a draft: %d, want 404", p.status)
	}
	if _, helpful := articleCounts(t, s, "/kb/soporte/es/borrador-interno"); helpful != 0 {
		t.Errorf("a draft was counted helpful %d times", helpful)
	}
}

func TestKBSearchIgnoresAccentsAndMarksWhatItFound(t *testing.T) {
	s := readerSite(t)
	v := s.visitor(t)
	p := v.get("/kb?q=facturacion")
	if p.status != 200 {
		t.Fatalf("search: %d\n%s", p.status, p.body)
	}
	for _, want := range []string{`href="/kb/billing/es/consultar-la-facturacion"`, "Consultar la facturación", "<mark>facturación</mark>",
		`value="facturacion"`, "Resultados de «facturacion»", "<title>Buscar «facturacion» · Centro de soporte</title>", `href="/kb"`} {
		if !strings.Contains(p.body, want) {
			t.Errorf("search lacks %q", want)
		}
	}
	if p.has("no-results") || strings.Contains(p.body, "Primeros pasos") {
		t.Error("search shows more than what it found")
	}

	// The text is escaped around the marks; what was typed is too.
	p = v.get("/kb?q=entonces")
	if !strings.Contains(p.body, "3 &lt; 5 &amp; 7 &gt; 2") || !strings.Contains(p.body, "<mark>entonces</mark>") {
		t.Errorf("excerpt of the hostile article not escaped and marked:\n%s", p.body)
	}
	p = v.get("/kb?q=" + url.QueryEscape(`<b>entonces</b>`))
	if !strings.Contains(p.body, `value="&lt;b&gt;entonces&lt;/b&gt;"`) || !strings.Contains(p.body, "«&lt;b&gt;entonces&lt;/b&gt;»") {
		t.Errorf("search for text with tags:\n%s", p.body)
	}
	if strings.Contains(p.body, "<b>entonces") || strings.Contains(p.body, "3 < 5") {
		t.Error("text reached the page unescaped")
	}

	// Found in another language than the page's: said so.
	en := s.visitor(t)
	en.header.Set("Accept-Language", "en")
	p = en.get("/kb?q=facturacion")
	if !strings.Contains(p.body, `<li lang="es">`) || !strings.Contains(p.body, `<span class="tag" lang="en">In Spanish</span>`) {
		t.Errorf("a Spanish hit on an English page does not say its language:\n%s", p.body)
	}
	if m := inlineCode.FindString(p.body); m != "" {
		t.Errorf("search has inline code %q", m)
	}

	// Nothing found: open a ticket instead.
	p = v.get("/kb?q=zzyzx")
	if p.status != 200 || !p.has("no-results") || !strings.Contains(p.body, `id="no-results-submit"`) || !strings.Contains(p.body, `href="/submit"`) {
		t.Errorf("search finding nothing: %d\n%s", p.status, p.body)
	}
}

func TestKBHomeSearchesTheKnowledgeBase(t *testing.T) {
	s := readerSite(t)
	home := s.visitor(t).get("/")
	for _, want := range []string{`action="/kb"`, `id="kb-search" name="q"`, `href="/kb" id="kb-browse"`, `href="/kb" id="nav-kb"`} {
		if !strings.Contains(home.body, want) {
			t.Errorf("home lacks %q", want)
		}
	}
	if strings.Contains(home.body, "disabled") {
		t.Error("home still shows a disabled search")
	}
}

func TestKBArticleIsRenderedSafely(t *testing.T) {
	s := readerSite(t)
	v := s.visitor(t)
	p := v.get("/kb/soporte/es/trampas")
	if p.status != 200 {
		t.Fatalf("article: %d\n%s", p.status, p.body)
	}
	for _, want := range []string{"<title>Artículo con trampas · Centro de soporte</title>", `<h1 id="article-title" lang="es">Artículo con trampas</h1>`,
		`id="article-body" lang="es"`, "Texto de la trampa. Si 3 &lt; 5 &amp; 7 &gt; 2", "Pulsa aquí", "Soporte Técnico", `id="article-category">Cuenta<`,
		`<time datetime="`, `action="/kb/soporte/es/trampas/helpful"`, `href="/submit?department=soporte"`} {
		if !strings.Contains(p.body, want) {
			t.Errorf("article lacks %q", want)
		}
	}
	for _, bad := range []string{"<script>alert", "javascript:", "onerror", "onclick", `alert("kb")</script>`} {
		if strings.Contains(p.body, bad) {
			t.Errorf("article holds %q", bad)
		}
	}
	if m := inlineCode.FindString(p.body); m != "" {
		t.Errorf("article has inline code %q", m)
	}
	// An article in English on a Spanish page says its language.
	p = v.get("/kb/billing/en/downloading-your-invoice")
	if p.status != 200 || !strings.Contains(p.body, `<html lang="es">`) || !strings.Contains(p.body, `id="article-body" lang="en"`) ||
		!strings.Contains(p.body, "<strong>My account</strong>") {
		t.Errorf("English article on a Spanish page: %d\n%s", p.status, p.body)
	}
}

func TestKBOpenedFromASuggestionIsCounted(t *testing.T) {
	s := readerSite(t)
	v := s.visitor(t)
	const path = "/kb/billing/es/consultar-la-facturacion"
	for _, c := range []struct {
		query      string
		wantOpened int
	}{
		{"", 0},
		{"?from=elsewhere", 0},
		{"?from=mail", 1},
		{"?from=submit", 2},
		{"", 2},
		{"?from=ticket", 3},
	} {
		if p := v.get(path + c.query); p.status != 200 {
			t.Fatalf("%s%s: %d", path, c.query, p.status)
		}
		if opened, helpful := articleCounts(t, s, path); opened != c.wantOpened || helpful != 0 {
			t.Errorf("after %q: opened %d, helpful %d; want %d, 0", c.query, opened, helpful, c.wantOpened)
		}
	}
	if opened, _ := articleCounts(t, s, "/kb/billing/es/cambiar-la-forma-de-pago"); opened != 0 {
		t.Errorf("another article counted opened %d times", opened)
	}
}

func TestKBHelpfulIsCountedFromOurPagesOnly(t *testing.T) {
	s := readerSite(t)
	const path = "/kb/soporte/es/restablecer-la-contrasena"
	v := s.visitor(t)
	if p := v.get(path); !p.has("kb-helpful") || !strings.Contains(p.body, "¿Ha resuelto esto tu duda?") || p.has("feedback-thanks") {
		t.Fatalf("article lacks the question:\n%s", p.body)
	}
	p := v.post(path+"/helpful", url.Values{})
	if p.status != 200 || !p.has("feedback-thanks") || p.has("kb-helpful") || !strings.Contains(p.body, "Restablecer la contraseña") {
		t.Errorf("voting helpful: %d, want the article with thanks\n%s", p.status, p.body)
	}
	if _, helpful := articleCounts(t, s, path); helpful != 1 {
		t.Errorf("helpful counted %d times, want 1", helpful)
	}

	evil := s.visitor(t)
	evil.header.Set("Origin", "https://evil.example")
	evil.header.Set("Sec-Fetch-Site", "cross-site")
	if p := evil.post(path+"/helpful", url.Values{}); p.status != http.StatusForbidden || !strings.Contains(p.body, "no se envió desde esta página") {
		t.Errorf("a vote from another site: %d, want 403", p.status)
	}
	if _, helpful := articleCounts(t, s, path); helpful != 1 {
		t.Errorf("after a vote from another site helpful is %d, want 1", helpful)
	}
}

func TestKBSearchesAndVotesAreRateLimited(t *testing.T) {
	s := readerSite(t)
	v := s.visitor(t)
	allowed := 0
	var limited page
	for range 200 {
		p := v.get("/kb?q=factura")
		if p.status == http.StatusTooManyRequests {
			limited = p
			break
		}
		if p.status != 200 {
			t.Fatalf("search %d: %d", allowed+1, p.status)
		}
		allowed++
	}
	// The budget refills a search a second, so a slow run may get a few
	// more than the burst; never fewer.
	if allowed < 60 || limited.status == 0 {
		t.Fatalf("%d searches allowed before a 429 (status %d), want 60", allowed, limited.status)
	}
	if limited.header.Get("Retry-After") == "" || !limited.has("kb-error") || !strings.Contains(limited.body, "muchas búsquedas") ||
		!strings.Contains(limited.body, `value="factura"`) {
		t.Errorf("429 without Retry-After or a readable reason:\n%s", limited.body)
	}
	// Browsing is not limited; voting shares the budget.
	if p := v.get("/kb"); p.status != 200 {
		t.Errorf("/kb after the search budget: %d", p.status)
	}
	const path = "/kb/soporte/es/primeros-pasos"
	p := v.post(path+"/helpful", url.Values{})
	if p.status != http.StatusTooManyRequests || p.header.Get("Retry-After") == "" || !p.has("feedback-error") || !p.has("kb-helpful") {
		t.Errorf("a vote after the budget: %d, want 429 with the article and a reason\n%s", p.status, p.body)
	}
	if _, helpful := articleCounts(t, s, path); helpful != 0 {
		t.Errorf("a refused vote was counted: helpful %d", helpful)
	}
	// The budget is the client's: another has its own, and saying to be
	// another (without a trusted proxy) does not help.
	search := func(remote, xff string) int {
		req := httptest.NewRequest("GET", "/kb?q=factura", nil)
		req.RemoteAddr = remote
		if xff != "" {
			req.Header.Set("X-Forwarded-For", xff)
		}
		rec := httptest.NewRecorder()
		s.handler.ServeHTTP(rec, req)
		return rec.Code
	}
	if code := search("192.0.2.7:1000", ""); code != 200 {
		t.Errorf("another client's search: %d, want 200", code)
	}
	if code := search("127.0.0.1:1000", "192.0.2.8"); code != http.StatusTooManyRequests {
		t.Errorf("the same client with its own X-Forwarded-For: %d, want 429", code)
	}
}

func TestMarkedExcerpt(t *testing.T) {
	m, e := tickets.MarkStart, tickets.MarkEnd
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"sin marcas", "sin marcas"},
		{"la " + m + "factura" + e + " <b>&", "la <mark>factura</mark> &lt;b&gt;&amp;"},
		{m + "a" + e + " y " + m + "b" + e, "<mark>a</mark> y <mark>b</mark>"},
		{"suelto" + e + " " + m + "abierto", "suelto <mark>abierto</mark>"},
		{m + m + "doble" + e + e, "<mark>doble</mark>"},
	} {
		if got := string(markedExcerpt(c.in)); got != c.want {
			t.Errorf("markedExcerpt(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
