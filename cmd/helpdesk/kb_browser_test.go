package main

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/helpdeskgw/helpdesk/tickets"
)

// submitFormState is what the submit form shows, read from the browser.
type submitFormState struct {
	ContinueGone bool           `json:"continueGone"`
	RestHidden   bool           `json:"restHidden"`
	Visible      []string       `json:"visible"`
	ListHidden   bool           `json:"listHidden"`
	Articles     []shownArticle `json:"articles"`
	Heading      string         `json:"heading"`
	Excerpts     []string       `json:"excerpts"`
}

type shownArticle struct {
	Title string `json:"title"`
	Href  string `json:"href"`
}

const readSubmitForm = `(() => {
	const list = document.getElementById("kb-suggestions");
	return {
		continueGone: !document.getElementById("continue"),
		restHidden: document.getElementById("submit-rest").hidden,
		visible: ["name", "email", "message", "priority", "attachments", "submit"].filter((id) => {
			const e = document.getElementById(id);
			return e && e.getClientRects().length > 0;
		}),
		listHidden: !list || list.hidden,
		heading: list ? list.querySelector("h2").textContent : "",
		articles: list ? [...list.querySelectorAll("li a")].map((a) => ({title: a.textContent, href: a.getAttribute("href")})) : [],
		excerpts: list ? [...list.querySelectorAll("li p.hint")].map((p) => p.textContent) : [],
	};
})()`

// kbBrowserSite starts the gateway with two published Spanish articles, one
// about invoices (returned), and a Spanish-speaking browser.
func kbBrowserSite(t *testing.T) (browser context.Context, base string, invoice tickets.Article) {
	t.Helper()
	browser = newBrowser(t, "es")
	app, _ := startApp(t)
	ctx := context.Background()
	admin, err := app.store.AddAgent(ctx, "test", tickets.NewAgent{Email: "root@example.com", Name: "Root Admin",
		Role: tickets.RoleAdmin, Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	invoice, err = app.store.SaveArticle(ctx, admin, 0, tickets.ArticleInput{Department: demoDepartment.Slug, Language: "es",
		Title: "Facturación: descargar tu factura", Keywords: []string{"recibo"},
		Body: "Entra en **Mi cuenta** y pulsa *Facturas*.", State: tickets.ArticlePublished})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.store.SaveArticle(ctx, admin, 0, tickets.ArticleInput{Department: demoDepartment.Slug, Language: "es",
		Title: "Cambiar la contraseña", Body: "Usa el enlace «¿Olvidaste tu contraseña?».", State: tickets.ArticlePublished}); err != nil {
		t.Fatal(err)
	}
	return browser, "http://" + app.HTTPAddr(), invoice
}

// TestKBSuggestionsInChromium types a subject into the submit form in a
// real browser: the script shows the whole form at once and lists the
// article that matches while the subject is typed, letter by letter; the
// article counts as suggested once the visitor leaves the subject.
func TestKBSuggestionsInChromium(t *testing.T) {
	browser, base, invoice := kbBrowserSite(t)

	do(browser, t, "open the submit form",
		chromedp.Navigate(base+"/submit"),
		chromedp.WaitVisible(chromedp.ID("name")),
	)
	form := read(browser, t, "read the submit form", chromedp.Evaluate[submitFormState](readSubmitForm))
	if !form.ContinueGone || form.RestHidden || len(form.Visible) != 6 || !form.ListHidden {
		t.Fatalf("submit form with the script: %+v; want every field shown, no Continue, no list yet", form)
	}

	const subject = "No puedo descargar la factura"
	for _, r := range subject {
		do(browser, t, "type "+string(r)+" into the subject", chromedp.SendKeys(chromedp.ID("subject"), string(r)))
	}
	do(browser, t, "wait for the suggestion", chromedp.WaitVisible(chromedp.CSS(`#kb-suggestions li a`)))
	form = read(browser, t, "read the suggestions", chromedp.Evaluate[submitFormState](readSubmitForm))
	want := shownArticle{Title: invoice.Title, Href: invoice.Path() + "?from=submit"}
	if form.ListHidden || len(form.Articles) != 1 || form.Articles[0] != want ||
		form.Heading != "Revisa primero estos artículos" || len(form.Excerpts) != 1 || !strings.HasPrefix(form.Excerpts[0], "Entra en Mi cuenta y pulsa Facturas") {
		t.Fatalf("suggestions shown: %+v, want %+v", form, want)
	}
	if got := read(browser, t, "read the subject", chromedp.Value(chromedp.ID("subject"))); got != subject {
		t.Errorf("subject %q, want %q", got, subject)
	}

	// Leaving the subject counts what is listed as suggested.
	pool := db.Pool(t)
	suggested := func() int {
		var n int
		if err := pool.QueryRow(context.Background(), `SELECT coalesce(sum(suggested), 0)::int FROM kb_article_stats WHERE article_id = $1`, invoice.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := suggested(); n != 0 {
		t.Fatalf("counted %d before the subject was left", n)
	}
	do(browser, t, "go on to the name", chromedp.Click(chromedp.ID("name")))
	for deadline := time.Now().Add(stepTimeout); suggested() != 1; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the article shown counted %d times, want 1", suggested())
		}
	}

	// A subject nothing answers hides the list.
	do(browser, t, "type another subject",
		chromedp.Evaluate[chromedp.Void](`document.getElementById("subject").value = ""`),
		chromedp.SendKeys(chromedp.ID("subject"), "La impresora hace ruido"),
		chromedp.WaitNotVisible(chromedp.ID("kb-suggestions")),
	)
	if form := read(browser, t, "read the suggestions", chromedp.Evaluate[submitFormState](readSubmitForm)); !form.ListHidden || len(form.Articles) != 0 {
		t.Errorf("suggestions for a subject nothing answers: %+v", form)
	}
}

// TestKBSuggestionsWithoutScriptInChromium walks the submit form with the
// script off: the department and subject first, Enter in the subject goes
// on, and the article that matches is listed above the whole form.
func TestKBSuggestionsWithoutScriptInChromium(t *testing.T) {
	browser, base, invoice := kbBrowserSite(t)
	noScript := chromedp.Func(func(ctx context.Context, tgt *chromedp.Target) error {
		_, err := cdp.Call(ctx, tgt, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
		return err
	})
	const subject = "No puedo descargar la factura"
	do(browser, t, "open the submit form without the script",
		noScript,
		chromedp.Navigate(base+"/submit"),
		chromedp.WaitVisible(chromedp.ID("continue")),
		chromedp.WaitNotVisible(chromedp.ID("name")),
		chromedp.SendKeys(chromedp.ID("subject"), subject+"\r"),
		chromedp.WaitVisible(chromedp.CSS(`#kb-suggestions li a`)),
		chromedp.WaitVisible(chromedp.ID("name")),
	)
	loc := read(browser, t, "read the address", chromedp.Location())
	u, err := url.Parse(loc)
	if err != nil || u.Path != "/submit" || u.Query().Get("subject") != subject || u.Query().Get("department") != demoDepartment.Slug {
		t.Errorf("Enter in the subject led to %s, want /submit with the subject and department", loc)
	}
	href := read(browser, t, "read the suggestion's link", chromedp.AttributeValue(chromedp.CSS(`#kb-suggestions li a`), "href"))
	if href.Value != invoice.Path()+"?from=submit" {
		t.Errorf("suggestion links to %q, want %s?from=submit", href.Value, invoice.Path())
	}
	if got := read(browser, t, "read the subject", chromedp.Value(chromedp.ID("subject"))); got != subject {
		t.Errorf("subject %q after going on, want %q", got, subject)
	}
	if n := read(browser, t, "look for Continue", chromedp.Nodes(chromedp.ID("continue"), chromedp.AtLeast(0))); len(n) != 0 {
		t.Error("the whole form still offers Continue")
	}
}
