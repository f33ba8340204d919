package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/helpdeskgw/helpdesk/tickets"
)

// screenshotsEnv names the directory TestScreenshots writes to; relative
// to the module's root. Unset, the test is skipped.
const screenshotsEnv = "HELPDESK_SCREENSHOTS"

// Viewports of the screenshots: a desktop window, and a phone.
const (
	desktopWidth, desktopHeight = 1280, 800
	phoneWidth, phoneHeight     = 390, 844
)

// screenshotText is what the pictured tickets say, per language.
type screenshotText struct {
	department, name, email, subject, message string
	agentName, agentAnswer, agentFile         string
	reply, replyFile                          string
	badEmail, lookupID                        string
}

var screenshotTexts = map[string]screenshotText{
	"es": {
		department: "soporte", name: "Ana García", email: "ana@example.org",
		subject: "No puedo iniciar sesión en la aplicación",
		message: "Desde esta mañana, al iniciar sesión aparece «Error 500» y vuelve a la pantalla de acceso.\n" +
			"Pasa en el móvil y en el ordenador. Adjunto una captura del error.",
		agentName: "Marta (Soporte Técnico)",
		agentAnswer: "Hola, Ana:\n\nGracias por la captura. Hemos corregido un fallo en el servidor de acceso; " +
			"¿puedes intentarlo de nuevo? Te adjunto la guía para borrar la caché del navegador por si acaso.",
		agentFile: "guia-cache.pdf",
		reply:     "Ya funciona en el ordenador, pero en el móvil sigue igual. Adjunto el registro de la aplicación.",
		replyFile: "registro.txt",
		badEmail:  "ana@", lookupID: "ABC-DEF-GHJL",
	},
	"en": {
		department: "support", name: "John Smith", email: "john@example.com",
		subject: "Invoice for October cannot be downloaded",
		message: "When I click \"Download\" on the October invoice the page stays blank.\n" +
			"Other invoices work. I attach a screenshot.",
		agentName: "Sam (Customer Support)",
		agentAnswer: "Hello John,\n\nThanks for the screenshot. The October invoice had a broken link, which we " +
			"have fixed. I attach a copy of the invoice as well.",
		agentFile: "invoice-2026-10.pdf",
		reply:     "It downloads now, thank you. One more question: can the invoices go to a second address? Details attached.",
		replyFile: "addresses.txt",
		badEmail:  "john@", lookupID: "ABC-DEF-GHJL",
	},
}

// TestScreenshots pictures every page of the portal in Spanish and
// English, and two at phone width, for the README:
//
//	HELPDESK_SCREENSHOTS=docs/screenshots go test ./cmd/helpdesk -run '^TestScreenshots$'
//
// (`make screenshots`). It checks each page it pictures is the one meant.
func TestScreenshots(t *testing.T) {
	dir := os.Getenv(screenshotsEnv)
	if dir == "" {
		t.Skip(screenshotsEnv + " names no directory to write the screenshots to")
	}
	if !filepath.IsAbs(dir) {
		root, err := moduleRoot()
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(root, dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	browsers := map[string]context.Context{"es": newBrowser(t, "es"), "en": newBrowser(t, "en")}
	app, _ := startApp(t)
	ctx := context.Background()
	for _, d := range []tickets.Department{
		{Slug: "facturacion", Name: "Facturación", Address: "facturacion@localhost", Locale: "es"},
		{Slug: "support", Name: "Customer Support", Address: "help@localhost", Locale: "en"},
	} {
		if _, err := app.store.AddDepartment(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	base := "http://" + app.HTTPAddr()
	for _, lang := range []string{"es", "en"} {
		screenshotLanguage(browsers[lang], t, app, base, dir, lang)
	}
}

// screenshotLanguage takes one language's screenshots in tab, a browser
// speaking that language.
func screenshotLanguage(tab context.Context, t *testing.T, app *App, base, dir, lang string) {
	text := screenshotTexts[lang]
	shot := func(name string) {
		t.Helper()
		png := read(tab, t, "screenshot "+name, chromedp.FullScreenshot(100))
		if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	desktop := chromedp.EmulateViewport(desktopWidth, desktopHeight)
	phone := chromedp.EmulateViewport(phoneWidth, phoneHeight, chromedp.EmulateMobile)

	do(tab, t, "home", desktop, chromedp.Navigate(base+"/?lang="+lang), chromedp.WaitVisible(chromedp.ID("home-submit")))
	shot(lang + "-home")

	do(tab, t, "submit form", chromedp.Navigate(base+"/submit"), chromedp.WaitVisible(chromedp.ID("submit")))
	shot(lang + "-submit")

	// The browser would refuse the form itself; the server's answer is the
	// one pictured.
	do(tab, t, "submit form with errors",
		chromedp.SendKeys(chromedp.ID("name"), text.name),
		chromedp.SendKeys(chromedp.ID("email"), text.badEmail),
		chromedp.SendKeys(chromedp.ID("subject"), text.subject),
		chromedp.Evaluate[chromedp.Void](`document.querySelector("form[action='/submit']").noValidate = true`),
		chromedp.Click(chromedp.ID("submit")),
		chromedp.WaitVisible(chromedp.ID("error-summary")),
		chromedp.WaitVisible(chromedp.ID("error-email")),
		chromedp.WaitVisible(chromedp.ID("error-message")),
		chromedp.WaitVisible(chromedp.ID("error-department")),
	)
	shot(lang + "-submit-errors")

	upload := writeUpload(t, "screenshot.png", pngBytes)
	do(tab, t, "submit a ticket",
		chromedp.Navigate(base+"/submit"),
		chromedp.WaitVisible(chromedp.ID("submit")),
		chromedp.SetValue(chromedp.ID("department"), text.department),
		chromedp.SendKeys(chromedp.ID("name"), text.name),
		chromedp.SendKeys(chromedp.ID("email"), text.email),
		chromedp.SendKeys(chromedp.ID("subject"), text.subject),
		chromedp.SetValue(chromedp.ID("message"), text.message),
		chromedp.SetUploadFiles(chromedp.ID("attachments"), []string{upload}),
		chromedp.Click(chromedp.ID("submit")),
		chromedp.WaitVisible(chromedp.ID("created-tracking-id")),
	)
	shot(lang + "-submitted")

	do(tab, t, "lookup form", chromedp.Navigate(base+"/lookup"), chromedp.WaitVisible(chromedp.ID("lookup")))
	shot(lang + "-lookup")
	do(tab, t, "failed lookup",
		chromedp.SendKeys(chromedp.ID("tracking_id"), text.lookupID),
		chromedp.SendKeys(chromedp.ID("email"), text.email),
		chromedp.Click(chromedp.ID("lookup")),
		chromedp.WaitVisible(chromedp.ID("error-form")),
	)
	shot(lang + "-lookup-failed")

	do(tab, t, "forgotten tracking ID",
		chromedp.Navigate(base+"/forgot"),
		chromedp.WaitVisible(chromedp.ID("forgot")),
		chromedp.SendKeys(chromedp.ID("email"), text.email),
		chromedp.Click(chromedp.ID("forgot")),
		chromedp.WaitVisible(chromedp.ID("forgot-sent")),
	)
	shot(lang + "-forgot-sent")

	token := answeredTicket(t, app, text)
	do(tab, t, "ticket with a thread", chromedp.Navigate(base+"/t/"+token), chromedp.WaitVisible(chromedp.ID("tracking-id")))
	if page := ticketPageState(tab, t); len(page.Thread) != 3 || len(page.Attachments) != 3 {
		t.Fatalf("ticket page pictured: %+v; want three messages with a file each", page)
	}
	shot(lang + "-ticket")
	if lang == "es" {
		do(tab, t, "ticket at phone width", phone, chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("tracking-id")))
		shot("phone-" + lang + "-ticket")
		do(tab, t, "back to desktop width", desktop, chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("tracking-id")))
	}

	do(tab, t, "resolve the ticket", chromedp.Click(chromedp.ID("resolve")), chromedp.WaitVisible(chromedp.ID("reopen")))
	shot(lang + "-ticket-resolved")

	if lang == "en" {
		do(tab, t, "submit form at phone width", phone, chromedp.Navigate(base+"/submit"), chromedp.WaitVisible(chromedp.ID("submit")))
		shot("phone-" + lang + "-submit")
	}
}

// answeredTicket makes a ticket with a thread of the customer's message,
// an agent's answer and the customer's reply, each with a file, and
// returns a link token for it. The store has no method for an agent's
// answer: it is written here in SQL, as the store writes a customer's.
func answeredTicket(t *testing.T, app *App, text screenshotText) string {
	t.Helper()
	ctx := context.Background()
	store := app.store
	sub, err := store.SubmitTicket(ctx, tickets.WebTicket{
		Department: text.department, Name: text.name, Email: text.email, Subject: text.subject, Message: text.message,
		Attachments: []tickets.InboundAttachment{{Filename: "screenshot.png", ContentType: "image/png", Content: tickets.BytesContent(pngBytes)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	agentFile := pdfBytes
	sum := sha256.Sum256(agentFile)
	tx, err := db.Pool(t).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // committed below
	_, err = tx.Exec(ctx, `
		WITH b AS (
			INSERT INTO blobs (sha256, size) VALUES ($3, $4) ON CONFLICT (sha256) DO NOTHING RETURNING sha256
		), c AS (
			INSERT INTO blob_chunks (sha256, seq, data) SELECT sha256, 0, $5 FROM b
		), m AS (
			INSERT INTO messages (ticket_id, author_kind, author_name, body_text, created_at)
			VALUES ($1, 'agent', $2, $6, now() - interval '2 hours')
			RETURNING id, ticket_id
		), a AS (
			INSERT INTO attachments (message_id, ticket_id, filename, content_type, size, sha256)
			SELECT id, ticket_id, $7, 'application/pdf', $4, $3 FROM m
		), h AS (
			INSERT INTO ticket_history (ticket_id, actor, action, old_value, new_value)
			SELECT ticket_id, 'agent:1', 'message', '', id::text FROM m
			UNION ALL
			SELECT ticket_id, 'agent:1', 'status', 'new', 'replied' FROM m
		)
		UPDATE tickets SET status = 'replied' WHERE id = $1`,
		sub.TicketID, text.agentName, sum[:], len(agentFile), agentFile, text.agentAnswer, text.agentFile)
	if err != nil {
		t.Fatalf("write the agent's answer: %v", err)
	}
	// The customer wrote a day before the answer.
	if _, err := tx.Exec(ctx, `
		UPDATE messages SET created_at = now() - interval '1 day'
		WHERE ticket_id = $1 AND author_kind = 'customer'`, sub.TicketID); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `UPDATE tickets SET created_at = now() - interval '1 day' WHERE id = $1`, sub.TicketID); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	err = store.ReplyByCustomer(ctx, sub.TicketID, tickets.CustomerReply{Message: text.reply,
		Attachments: []tickets.InboundAttachment{{Filename: text.replyFile, ContentType: "text/plain",
			Content: tickets.BytesContent([]byte(strings.Repeat("12:00:01 login failed: status 500\n", 40)))}}})
	if err != nil {
		t.Fatal(err)
	}
	token, err := store.IssueToken(ctx, sub.TicketID, tickets.ScopeTicket)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// moduleRoot is the directory of the module's go.mod, from the package's
// directory up.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the test's directory")
		}
		dir = parent
	}
}
