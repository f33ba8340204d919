package tickets_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/helpdeskgw/helpdesk/tickets"
)

// kbDesk is a staff desk with a few articles in both languages.
func kbDesk(t *testing.T) *staffDesk {
	t.Helper()
	d := newStaffDesk(t)
	ctx := context.Background()
	for _, in := range []tickets.ArticleInput{
		{Department: "facturacion", Language: "es", Title: "Cómo descargar la factura", Category: "Pagos",
			Keywords: []string{"recibo", "comprobante"}, Body: "Entre en **Mi cuenta** y pulse *Facturas*.\n\nLa facturación es mensual.", State: tickets.ArticlePublished},
		{Department: "facturacion", Language: "es", Title: "Devoluciones y reembolsos", Category: "Pagos",
			Body: "Las devoluciones se abonan en cinco días.", State: tickets.ArticlePublished},
		{Department: "soporte", Language: "es", Title: "Cambiar la contraseña", Keywords: []string{"clave, acceso"},
			Body: "Use el enlace [¿Olvidó su contraseña?](https://example.com/reset).", State: tickets.ArticlePublished},
		{Department: "soporte", Language: "en", Title: "Resetting your password", Keywords: []string{"login"},
			Body: "Use the *forgot password* link on the sign-in page.", State: tickets.ArticlePublished},
		{Department: "soporte", Language: "es", Title: "Borrador sobre facturas", Body: "Aún no.", State: tickets.ArticleDraft},
	} {
		if _, err := d.s.SaveArticle(ctx, d.admin, 0, in); err != nil {
			t.Fatalf("save %q: %v", in.Title, err)
		}
	}
	return d
}

func titles(hits []tickets.ArticleHit) []string {
	out := make([]string, len(hits))
	for i, h := range hits {
		out[i] = h.Title
	}
	return out
}

func TestKnowledgeBaseSearchStemsAndIgnoresAccents(t *testing.T) {
	d := kbDesk(t)
	ctx := context.Background()
	for _, c := range []struct {
		query, lang string
		want        []string
	}{
		{"facturación", "es", []string{"Cómo descargar la factura"}},
		{"facturacion", "es", []string{"Cómo descargar la factura"}},
		{"FACTURAS", "es", []string{"Cómo descargar la factura"}},
		{"descargué", "es", []string{"Cómo descargar la factura"}},
		{"devolución", "es", []string{"Devoluciones y reembolsos"}},
		{"contrasena", "es", []string{"Cambiar la contraseña"}},
		{"recibo", "es", []string{"Cómo descargar la factura"}},
		{"passwords", "en", []string{"Resetting your password"}},
		// Every word first; with none having all, those having some.
		{"factura devoluciones", "es", []string{"Cómo descargar la factura", "Devoluciones y reembolsos"}},
		{"borrador", "es", nil},
		{"", "es", nil},
	} {
		hits, err := d.s.SearchArticles(ctx, c.query, c.lang, 10)
		if err != nil {
			t.Fatalf("search %q: %v", c.query, err)
		}
		got := titles(hits)
		slices.Sort(got)
		slices.Sort(c.want)
		if !slices.Equal(got, c.want) {
			t.Errorf("search %q found %q, want %q", c.query, got, c.want)
		}
	}
	// The page's language comes first, the excerpt marks the words found.
	hits, err := d.s.SearchArticles(ctx, "contraseña password", "en", 10)
	if err != nil || len(hits) != 2 || hits[0].Language != "en" {
		t.Fatalf("mixed-language search: %q %v", titles(hits), err)
	}
	hits, err = d.s.SearchArticles(ctx, "mensual", "es", 10)
	if err != nil || len(hits) != 1 || !strings.Contains(hits[0].Excerpt, tickets.MarkStart+"mensual"+tickets.MarkEnd) {
		t.Fatalf("excerpt: %+v %v", hits, err)
	}
	if strings.Contains(hits[0].Excerpt, "**") {
		t.Errorf("excerpt quotes Markdown: %q", hits[0].Excerpt)
	}
}

func TestKnowledgeBaseSuggestions(t *testing.T) {
	d := kbDesk(t)
	ctx := context.Background()
	// Typing: the last word is a beginning.
	hits, err := d.s.SuggestArticles(ctx, "no puedo descarg", "es", "", 3)
	if err != nil || !slices.Equal(titles(hits), []string{"Cómo descargar la factura"}) {
		t.Fatalf("typing: %q %v", titles(hits), err)
	}
	// Any word of title or keywords; the body alone does not suggest.
	hits, err = d.s.SuggestArticles(ctx, "Olvidé la clave de acceso ", "es", "soporte", 3)
	if err != nil || !slices.Equal(titles(hits), []string{"Cambiar la contraseña"}) {
		t.Fatalf("keywords: %q %v", titles(hits), err)
	}
	hits, err = d.s.SuggestArticles(ctx, "mensual abonan", "es", "", 3)
	if err != nil || len(hits) != 0 {
		t.Fatalf("body words suggested %q %v", titles(hits), err)
	}
	// Any script, digits glued to letters, stop words only: no error.
	for _, odd := range []string{"日本語のテキスト тест ﷺ ǅ 123abc x²", "de la que el", "e\u0301\u0301 ab12cd", strings.Repeat("ñ", 41)} {
		if _, err := d.s.SuggestArticles(ctx, odd, "es", "", 3); err != nil {
			t.Errorf("suggest %q: %v", odd, err)
		}
		if _, err := d.s.SearchArticles(ctx, odd, "en", 3); err != nil {
			t.Errorf("search %q: %v", odd, err)
		}
	}
	// A ticket's subject and message.
	res := d.mailTicket(t, d.billing, "kb-1@example.org", "cliente@example.org", "Factura de marzo", "No encuentro el recibo.")
	hits, err = d.s.ArticlesForTicket(ctx, res.TicketID, 3)
	if err != nil || !slices.Equal(titles(hits), []string{"Cómo descargar la factura"}) {
		t.Fatalf("for ticket: %q %v", titles(hits), err)
	}
}

func TestKnowledgeBaseCountsAndResolves(t *testing.T) {
	d := kbDesk(t)
	ctx := context.Background()
	res := d.mailTicket(t, d.billing, "kb-2@example.org", "cliente@example.org", "Factura", "¿Dónde está?")
	hits, err := d.s.ArticlesForTicket(ctx, res.TicketID, 3)
	if err != nil || len(hits) != 1 {
		t.Fatalf("for ticket: %q %v", titles(hits), err)
	}
	id := hits[0].ID
	// Picked once: asking again neither searches nor counts again.
	again, err := d.s.ArticlesForTicket(ctx, res.TicketID, 3)
	if err != nil || len(again) != 1 || again[0].ID != id {
		t.Fatalf("for ticket again: %q %v", titles(again), err)
	}
	for _, e := range []tickets.ArticleEvent{tickets.EventSuggested, tickets.EventSuggested, tickets.EventOpened, tickets.EventHelpful} {
		if err := d.s.CountArticles(ctx, e, []int64{id, 999999}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.s.ResolveByArticle(ctx, res.TicketID, id); err != nil {
		t.Fatal(err)
	}
	// Twice: counted once.
	if err := d.s.ResolveByArticle(ctx, res.TicketID, id); err != nil {
		t.Fatal(err)
	}
	if n := count(t, d.pool, `SELECT count(*) FROM tickets WHERE id = $1 AND status = 'resolved' AND solved_by_article = $2`, res.TicketID, id); n != 1 {
		t.Fatal("ticket not resolved by the article")
	}
	if n := count(t, d.pool, `SELECT count(*) FROM ticket_history WHERE ticket_id = $1 AND action = 'solved_by_article'`, res.TicketID); n != 1 {
		t.Fatalf("%d history rows for the article", n)
	}
	// A draft article cannot resolve.
	var draftID int64
	if err := d.pool.QueryRow(ctx, `SELECT id FROM kb_articles WHERE state = 'draft'`).Scan(&draftID); err != nil {
		t.Fatal(err)
	}
	if err := d.s.ResolveByArticle(ctx, res.TicketID, draftID); !errors.Is(err, tickets.ErrNotFound) {
		t.Fatalf("resolved by a draft: %v", err)
	}
	stats, err := d.s.StaffArticles(ctx, d.bob, 30)
	if err != nil {
		t.Fatal(err)
	}
	if len(stats) != 2 || stats[0].ID != id {
		t.Fatalf("bob sees %d articles, first %q", len(stats), stats[0].Title)
	}
	// Suggested: once when picked for the ticket, twice by hand.
	want := tickets.ArticleCounts{Suggested: 3, Opened: 1, Helpful: 1, Resolved: 1}
	if stats[0].Recent != want || stats[0].Total != want || stats[0].Total.Deflected() != 2 {
		t.Fatalf("counts %+v / %+v, want %+v", stats[0].Recent, stats[0].Total, want)
	}
	// An article picked and then taken back is no longer offered, and the
	// ticket is not picked for again.
	if _, err := d.pool.Exec(ctx, `UPDATE kb_articles SET state = 'draft' WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	if hits, err := d.s.ArticlesForTicket(ctx, res.TicketID, 3); err != nil || len(hits) != 0 {
		t.Fatalf("a draft offered: %q %v", titles(hits), err)
	}
	if n := count(t, d.pool, `SELECT count(*) FROM tickets WHERE id = $1 AND suggested_articles = ARRAY[$2::bigint]`, res.TicketID, id); n != 1 {
		t.Error("the ticket's pick changed")
	}
	if _, err := d.s.ArticlesForTicket(ctx, 999999, 3); !errors.Is(err, tickets.ErrNotFound) {
		t.Errorf("articles for no ticket: %v", err)
	}
}

func TestKnowledgeBaseWritingAndPermissions(t *testing.T) {
	d := kbDesk(t)
	ctx := context.Background()
	// Ana works soporte only.
	_, err := d.s.SaveArticle(ctx, d.ana, 0, tickets.ArticleInput{Department: "facturacion", Language: "es", Title: "X", Body: "y"})
	var fe tickets.FieldErrors
	if !errors.As(err, &fe) || fe["department"] == "" {
		t.Fatalf("ana wrote in billing: %v", err)
	}
	var billingID int64
	if err := d.pool.QueryRow(ctx, `SELECT id FROM kb_articles WHERE slug = 'devoluciones-y-reembolsos'`).Scan(&billingID); err != nil {
		t.Fatal(err)
	}
	if _, err := d.s.StaffArticle(ctx, d.ana, billingID); !errors.Is(err, tickets.ErrNotFound) {
		t.Fatalf("ana read billing's article: %v", err)
	}
	if err := d.s.DeleteArticle(ctx, d.ana, billingID); !errors.Is(err, tickets.ErrNotFound) {
		t.Fatalf("ana deleted billing's article: %v", err)
	}
	// Errors field by field; a taken slug.
	_, err = d.s.SaveArticle(ctx, d.ana, 0, tickets.ArticleInput{Department: "soporte", Language: "fr", Slug: "Mal slug", Title: "", Body: "",
		State: "hidden", Keywords: []string{strings.Repeat("x", 61)}})
	if !errors.As(err, &fe) || len(fe) != 6 {
		t.Fatalf("bad article: %v", err)
	}
	_, err = d.s.SaveArticle(ctx, d.ana, 0, tickets.ArticleInput{Department: "soporte", Language: "es", Title: "Cambiar la contraseña", Body: "otra"})
	if !errors.As(err, &fe) || fe["slug"] != "kb.error.slug_taken" {
		t.Fatalf("taken slug: %v", err)
	}
	// Edited: the search follows; a draft is not public.
	a, err := d.s.SaveArticle(ctx, d.ana, 0, tickets.ArticleInput{Department: "soporte", Language: "es", Title: "Impresora atascada",
		Body: "Abra la bandeja.", State: tickets.ArticlePublished})
	if err != nil || a.Slug != "impresora-atascada" {
		t.Fatalf("new article: %+v %v", a, err)
	}
	if _, err := d.s.SaveArticle(ctx, d.ana, a.ID, tickets.ArticleInput{Department: "soporte", Language: "es", Slug: a.Slug,
		Title: "Impresora sin papel", Body: "Abra la bandeja.", State: tickets.ArticleDraft}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.s.PublishedArticle(ctx, "soporte", "es", a.Slug); !errors.Is(err, tickets.ErrNotFound) {
		t.Fatalf("draft is public: %v", err)
	}
	got, err := d.s.StaffArticle(ctx, d.ana, a.ID)
	if err != nil || got.Title != "Impresora sin papel" || got.State != tickets.ArticleDraft {
		t.Fatalf("edited: %+v %v", got, err)
	}
	if n := count(t, d.pool, `SELECT count(*) FROM audit_log WHERE action = 'kb.save' AND actor LIKE 'agent:%ana@example.com'`); n != 2 {
		t.Fatalf("%d audit rows", n)
	}
	if err := d.s.DeleteArticle(ctx, d.ana, a.ID); err != nil {
		t.Fatal(err)
	}
}

func TestKnowledgeBaseImportIsAllOrNothing(t *testing.T) {
	d := kbDesk(t)
	ctx := context.Background()
	good := tickets.ArticleInput{Department: "soporte", Language: "en", Slug: "printer", Title: "Printer jams", Body: "Open the tray.", State: tickets.ArticlePublished}
	same := tickets.ArticleInput{Department: "soporte", Language: "en", Slug: "resetting-your-password", Title: "Resetting your password",
		Keywords: []string{"login"}, Body: "Use the *forgot password* link on the sign-in page.", State: tickets.ArticlePublished}
	changed := same
	changed.Body = "Use the link."
	bad := tickets.ArticleInput{Department: "nowhere", Language: "en", Title: "x", Body: "y"}
	_, err := d.s.ImportArticles(ctx, "cli:test", []tickets.ArticleInput{good, bad})
	var ie tickets.ImportErrors
	if !errors.As(err, &ie) || len(ie) != 1 || ie[0].Index != 1 {
		t.Fatalf("import with a bad one: %v", err)
	}
	if n := count(t, d.pool, `SELECT count(*) FROM kb_articles WHERE slug = 'printer'`); n != 0 {
		t.Fatal("a refused import wrote something")
	}
	res, err := d.s.ImportArticles(ctx, "cli:test", []tickets.ArticleInput{good, same})
	if err != nil || res != (tickets.ImportResult{Created: 1, Unchanged: 1}) {
		t.Fatalf("import: %+v %v", res, err)
	}
	res, err = d.s.ImportArticles(ctx, "cli:test", []tickets.ArticleInput{good, changed})
	if err != nil || res != (tickets.ImportResult{Updated: 1, Unchanged: 1}) {
		t.Fatalf("import again: %+v %v", res, err)
	}
}

func TestSlugify(t *testing.T) {
	for in, want := range map[string]string{
		"Cómo descargar la factura": "como-descargar-la-factura",
		"¿Olvidó su contraseña?":    "olvido-su-contrasena",
		"  --Ñandú 2024!! ":         "nandu-2024",
		"日本語":                       "",
	} {
		if got := tickets.Slugify(in); got != want {
			t.Errorf("Slugify(%q) = %q, want %q", in, got, want)
		}
	}
}
