package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/emersion/go-message/mail"

	"github.com/helpdeskgw/helpdesk/tickets"
)

// chromiumPath is where Debian's chromium package installs the browser.
const chromiumPath = "/usr/bin/chromium"

// stepTimeout bounds each browser step: a page that never comes fails the
// test rather than hanging it.
const stepTimeout = 20 * time.Second

// newBrowser starts a headless Chromium speaking lang ("es" or "en"), with
// a profile of its own, and returns the context of its first tab. Without
// Chromium the test is skipped, unless CI=true, where it fails.
func newBrowser(t *testing.T, lang string) context.Context {
	t.Helper()
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Chromium not found (%v); CI=true requires it (.ci/run installs Debian's chromium)", err)
		}
		t.Skipf("Chromium not found: %v", err)
	}
	// The whole browser lives under one deadline; each step has its own.
	whole, cancelWhole := context.WithTimeout(context.Background(), 5*time.Minute)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(whole,
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox, // the tests may run as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		// The network here may be closed: without these, Chromium keeps
		// trying to reach its services.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		// The visitor's language: what the browser asks pages for, and
		// its own words, such as the file chooser's (Chromium on Linux
		// takes them from LANGUAGE; Debian's chromium-l10n has them).
		chromedp.Flag("accept-lang", lang),
		chromedp.Env("LANGUAGE="+lang),
		chromedp.UserDataDir(t.TempDir()),
	)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc() // waits for the browser to exit, before its profile is removed
		cancelWhole()
	})
	// The first action starts the browser, under the context it will live
	// in (a step's deadline would end the browser with the step).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return ctx
}

// freshTab opens a tab in a browser context of its own: no cookies or
// storage shared with the other tabs.
func freshTab(browser context.Context, t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	// As for the browser, the tab lives in the context of its first action.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open a tab in a fresh browser context: %v", err)
	}
	return ctx
}

// do runs browser actions within stepTimeout and fails the test, saying
// what they were for, when they fail.
func do(ctx context.Context, t *testing.T, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// read runs one browser action within stepTimeout and returns its value.
func read[T any](ctx context.Context, t *testing.T, what string, action chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, action)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// pageState is what the ticket page shows, read from the browser.
type pageState struct {
	Lang        string   `json:"lang"`
	TrackingID  string   `json:"trackingID"`
	Status      string   `json:"status"`
	Priority    string   `json:"priority"`
	Notice      string   `json:"notice"`
	Thread      []string `json:"thread"`
	Attachments []string `json:"attachments"`
}

const readPageState = `(() => {
	const text = (sel) => { const e = document.querySelector(sel); return e ? e.innerText.trim() : ""; };
	return {
		lang: document.documentElement.lang,
		trackingID: text("#tracking-id"),
		status: text("#status"),
		priority: text("#priority"),
		notice: text("#notice"),
		thread: [...document.querySelectorAll("ol.thread .body")].map((e) => e.innerText.trim()),
		attachments: [...document.querySelectorAll("ol.thread .files a")].map((e) => e.innerText.trim()),
	};
})()`

func ticketPageState(ctx context.Context, t *testing.T) pageState {
	t.Helper()
	return read(ctx, t, "read the ticket page", chromedp.Evaluate[pageState](readPageState))
}

// writeUpload writes a file for the browser to upload.
func writeUpload(t *testing.T, name string, content []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// ackLink is the ticket link in an acknowledgement's text part.
func ackLink(t *testing.T, raw []byte) string {
	t.Helper()
	return mailLink(t, raw, "t")
}

// mailLink is the link of the given kind ("t" for a ticket, "d" for a held
// reply) in a mail's text part.
func mailLink(t *testing.T, raw []byte, kind string) string {
	t.Helper()
	text := mailText(t, raw)
	link := regexp.MustCompile(regexp.QuoteMeta(testBaseURL) + `/` + kind + `/[A-Za-z0-9_-]{43}`).FindString(text)
	if link == "" {
		t.Fatalf("mail text has no %s/%s/<token> link:\n%s", testBaseURL, kind, text)
	}
	return link
}

// mailText is a mail's first text/plain part.
func mailText(t *testing.T, raw []byte) string {
	t.Helper()
	r, err := mail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("read mail: %v", err)
	}
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read mail: %v", err)
		}
		h, ok := p.Header.(*mail.InlineHeader)
		if !ok {
			continue
		}
		if ct, _, _ := h.ContentType(); ct != "text/plain" {
			continue
		}
		text, err := io.ReadAll(p.Body)
		if err != nil {
			t.Fatalf("read mail's text: %v", err)
		}
		return string(text)
	}
	t.Fatal("mail has no text part")
	return ""
}

type wantAttachment struct {
	name, contentType string
	content           []byte
}

// checkThread compares a ticket's stored thread with the messages and
// attachments expected, oldest first.
func checkThread(ctx context.Context, t *testing.T, store *tickets.Store, ticketID int64, texts []string, atts [][]wantAttachment) {
	t.Helper()
	msgs, err := store.Thread(ctx, ticketID, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != len(texts) {
		t.Fatalf("%d messages stored, want %d", len(msgs), len(texts))
	}
	for i, m := range msgs {
		if m.AuthorKind != "customer" || m.Text != texts[i] {
			t.Errorf("message %d: %s %q, want customer %q", i, m.AuthorKind, m.Text, texts[i])
		}
		if len(m.Attachments) != len(atts[i]) {
			t.Errorf("message %d: %d attachments, want %d", i, len(m.Attachments), len(atts[i]))
			continue
		}
		for j, a := range m.Attachments {
			want := atts[i][j]
			sum := sha256.Sum256(want.content)
			if a.Filename != want.name || a.ContentType != want.contentType || a.Size != int64(len(want.content)) || !bytes.Equal(a.SHA256, sum[:]) {
				t.Errorf("message %d attachment %d: %s %s %d bytes; want %s %s %d bytes of the file uploaded",
					i, j, a.Filename, a.ContentType, a.Size, want.name, want.contentType, len(want.content))
			}
		}
	}
}

func checkHistory(ctx context.Context, t *testing.T, store *tickets.Store, ticketID int64, want []tickets.History) {
	t.Helper()
	got, err := store.TicketHistory(ctx, ticketID)
	if err != nil {
		t.Fatal(err)
	}
	// A message's history row names the message by its ID.
	for i := range got {
		if got[i].Action == "message" && got[i].NewValue != "" {
			got[i].NewValue = "<id>"
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("history:\n got %+v\nwant %+v", got, want)
	}
}

func checkStatus(ctx context.Context, t *testing.T, store *tickets.Store, ticketID int64, want tickets.Status) {
	t.Helper()
	tk, err := store.Ticket(ctx, ticketID)
	if err != nil {
		t.Fatal(err)
	}
	if tk.Status != want {
		t.Errorf("ticket status %q in the database, want %q", tk.Status, want)
	}
}

// TestPortalInChromium walks a customer through the portal in a real
// browser: submit a ticket with a file, open the link from the mailed
// acknowledgement in a browser that never saw the ticket, reply with
// another file, resolve, reopen, and switch the page to English.
func TestPortalInChromium(t *testing.T) {
	browser := newBrowser(t, "es")
	app, spool := startApp(t)
	store := app.store
	ctx := context.Background()
	base := "http://" + app.HTTPAddr()
	const (
		email    = "lucia@example.org"
		subject  = "La factura de octubre no se descarga"
		first    = "Al pulsar «Descargar» la página se queda en blanco.\nAdjunto una captura."
		reply    = "Adjunto también el informe que pedisteis."
		shotName = "captura.png"
		pdfName  = "informe.pdf"
	)
	shot := writeUpload(t, shotName, pngBytes)
	pdf := writeUpload(t, pdfName, pdfBytes)

	// Submit a ticket with a screenshot.
	do(browser, t, "fill in the submit form",
		chromedp.Navigate(base+"/submit"),
		chromedp.WaitVisible(chromedp.ID("submit")),
		chromedp.SendKeys(chromedp.ID("name"), "Lucía Pérez"),
		chromedp.SendKeys(chromedp.ID("email"), email),
		chromedp.SendKeys(chromedp.ID("subject"), subject),
		chromedp.SetValue(chromedp.ID("message"), first),
		chromedp.SetValue(chromedp.ID("priority"), "high"),
		chromedp.SetUploadFiles(chromedp.ID("attachments"), []string{shot}),
	)
	do(browser, t, "submit the ticket",
		chromedp.Click(chromedp.ID("submit")),
		chromedp.WaitVisible(chromedp.ID("created-tracking-id")),
	)
	trackingID := read(browser, t, "read the tracking ID", chromedp.Text(chromedp.ID("created-tracking-id")))
	if !regexp.MustCompile(`^[AEUYBDGHJLMNPQRSTVWXZ1-9]{3}-[AEUYBDGHJLMNPQRSTVWXZ1-9]{3}-[AEUYBDGHJLMNPQRSTVWXZ1-9]{4}$`).MatchString(trackingID) {
		t.Fatalf("tracking ID shown: %q, want ABC-DEF-GHIJ", trackingID)
	}
	if loc := read(browser, t, "read the address", chromedp.Location()); loc != base+"/ticket/"+trackingID+"?created=1" {
		t.Errorf("after submitting: at %s, want %s/ticket/%s?created=1", loc, base, trackingID)
	}
	page := ticketPageState(browser, t)
	if page.TrackingID != trackingID || page.Status != "Nuevo" || page.Priority != "Alta" ||
		!slices.Equal(page.Thread, []string{first}) || !slices.Equal(page.Attachments, []string{shotName}) {
		t.Errorf("submitted ticket's page: %+v", page)
	}
	if mailed := read(browser, t, "read the mailed notice", chromedp.Text(chromedp.ID("created-mailed"))); !strings.Contains(mailed, email) {
		t.Errorf("created notice %q does not name %s", mailed, email)
	}

	tk, err := store.LookupTicket(ctx, trackingID, email)
	if err != nil {
		t.Fatalf("ticket %s of %s in the database: %v", trackingID, email, err)
	}
	if tk.Source != "web" || tk.Subject != subject || tk.CustomerName != "Lucía Pérez" || tk.Priority != tickets.PriorityHigh ||
		tk.Status != tickets.StatusNew || tk.Department.Slug != demoDepartment.Slug || tk.Locale != "es" {
		t.Errorf("ticket stored: %+v", tk)
	}
	checkThread(ctx, t, store, tk.ID, []string{first}, [][]wantAttachment{{{shotName, "image/png", pngBytes}}})

	// The acknowledgement the app's own sender spooled carries the link.
	link := ackLink(t, waitForFile(t, spool, 1))
	linkPath := strings.TrimPrefix(link, testBaseURL)

	// A browser that never saw the ticket is sent to the lookup form...
	other := freshTab(browser, t)
	do(other, t, "open the ticket without a session",
		chromedp.Navigate(base+"/ticket/"+trackingID),
	)
	do(other, t, "open the ticket without a session",
		chromedp.WaitVisible(chromedp.ID("lookup")),
	)
	if got := read(other, t, "read the tracking ID field", chromedp.Value(chromedp.ID("tracking_id"))); got != trackingID {
		t.Errorf("lookup form opened with tracking ID %q, want %q", got, trackingID)
	}
	// ...and the link alone opens the ticket there.
	do(other, t, "open the mailed link",
		chromedp.Navigate(base+linkPath),
		chromedp.WaitVisible(chromedp.ID("tracking-id")),
	)
	if loc := read(other, t, "read the address", chromedp.Location()); loc != base+"/ticket/"+trackingID {
		t.Errorf("the link led to %s, want %s/ticket/%s (the token out of the address bar)", loc, base, trackingID)
	}
	page = ticketPageState(other, t)
	if page.TrackingID != trackingID || page.Status != "Nuevo" || page.Lang != "es" ||
		!slices.Equal(page.Thread, []string{first}) || !slices.Equal(page.Attachments, []string{shotName}) {
		t.Errorf("ticket page opened by the link: %+v", page)
	}
	var grants []string
	rows, err := db.Pool(t).Query(ctx, `SELECT via FROM session_tickets WHERE ticket_id = $1 ORDER BY granted_at, via`, tk.ID)
	if err == nil {
		for rows.Next() {
			var via string
			if err = rows.Scan(&via); err != nil {
				break
			}
			grants = append(grants, via)
		}
		rows.Close()
	}
	if err != nil || !slices.Equal(grants, []string{"submit", "token"}) {
		t.Errorf("sessions with access to the ticket: %v (%v), want one by submitting and one by the link", grants, err)
	}

	// Reply with a second file.
	do(other, t, "write a reply",
		chromedp.SetValue(chromedp.ID("message"), reply),
		chromedp.SetUploadFiles(chromedp.ID("attachments"), []string{pdf}),
	)
	do(other, t, "send the reply",
		chromedp.Click(chromedp.ID("reply")),
		chromedp.WaitVisible(chromedp.ID("notice")),
	)
	page = ticketPageState(other, t)
	if page.Status != "Esperando respuesta" || page.Notice != "Hemos añadido tu mensaje al ticket." ||
		!slices.Equal(page.Thread, []string{first, reply}) || !slices.Equal(page.Attachments, []string{shotName, pdfName}) {
		t.Errorf("ticket page after the reply: %+v", page)
	}
	checkStatus(ctx, t, store, tk.ID, tickets.StatusWaitingReply)
	checkThread(ctx, t, store, tk.ID, []string{first, reply},
		[][]wantAttachment{{{shotName, "image/png", pngBytes}}, {{pdfName, "application/pdf", pdfBytes}}})

	// Resolve.
	do(other, t, "mark the ticket resolved",
		chromedp.Click(chromedp.ID("resolve")),
		chromedp.WaitVisible(chromedp.ID("reopen")),
	)
	page = ticketPageState(other, t)
	if page.Status != "Resuelto" || page.Notice != "Has marcado el ticket como resuelto. Gracias." {
		t.Errorf("ticket page after resolving: %+v", page)
	}
	checkStatus(ctx, t, store, tk.ID, tickets.StatusResolved)

	// Reopen.
	do(other, t, "reopen the ticket",
		chromedp.Click(chromedp.ID("reopen")),
		chromedp.WaitVisible(chromedp.ID("resolve")),
	)
	page = ticketPageState(other, t)
	if page.Status != "Esperando respuesta" || page.Notice != "Has reabierto el ticket: lo revisaremos de nuevo." {
		t.Errorf("ticket page after reopening: %+v", page)
	}
	checkStatus(ctx, t, store, tk.ID, tickets.StatusWaitingReply)

	actor := "customer:" + email
	checkHistory(ctx, t, store, tk.ID, []tickets.History{
		{Actor: actor, Action: "created", NewValue: "web"},
		{Actor: actor, Action: "message", NewValue: "<id>"},
		{Actor: actor, Action: "status", OldValue: "new", NewValue: "waiting_reply"},
		{Actor: actor, Action: "status", OldValue: "waiting_reply", NewValue: "resolved"},
		{Actor: actor, Action: "status", OldValue: "resolved", NewValue: "waiting_reply"},
	})

	// The same page in English, through the language switch.
	do(other, t, "switch to English",
		chromedp.Click(chromedp.ID("lang-en")),
		chromedp.WaitVisible(chromedp.CSS(`html[lang="en"] #tracking-id`)),
	)
	page = ticketPageState(other, t)
	if page.Lang != "en" || page.TrackingID != trackingID || page.Status != "Waiting reply" || page.Priority != "High" ||
		!slices.Equal(page.Thread, []string{first, reply}) || !slices.Equal(page.Attachments, []string{shotName, pdfName}) {
		t.Errorf("ticket page in English: %+v", page)
	}
	if h := read(other, t, "read the reply heading", chromedp.Text(chromedp.ID("reply-title"))); h != "Reply" {
		t.Errorf("reply heading in English: %q", h)
	}
}
