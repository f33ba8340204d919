package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// conversation is a ticket's thread: the customer's message, an agent's
// answer and the customer's reply, each with a file.
type conversation struct {
	name, email, subject, message, messageFile string
	agentAnswer, agentFile                     string
	reply, replyFile                           string
}

// queuedTicket is a ticket of the staff's queue: a customer's message,
// then the agent's changes, and its last activity age ago.
type queuedTicket struct {
	department, name, email, subject, message string
	priority                                  tickets.Priority
	status                                    tickets.Status // "" leaves it New
	assigned                                  bool           // to the language's agent
	age                                       time.Duration
}

// screenshotText is what the pictured tickets say, per language.
type screenshotText struct {
	department string
	// The customer's ticket of the portal's pages.
	conversation
	badEmail, lookupID string

	// The staff's pages: the agent who works the language's departments,
	// the tickets of their queue besides the portal's, the one whose page
	// is pictured, with the internal note the agent adds to it, and a
	// canned response.
	agentName, agentEmail     string
	queue                     []queuedTicket
	staffTicket               conversation
	note                      string
	cannedTitle, cannedAnswer string

	// The knowledge base: its articles (the first is the one pictured), a
	// search and a subject whose suggestions are pictured.
	articles     []tickets.ArticleInput
	kbSearch     string
	typedSubject string
}

var screenshotTexts = map[string]screenshotText{
	"es": {
		department: "soporte",
		conversation: conversation{
			name: "Ana García", email: "ana@example.org",
			subject: "No puedo iniciar sesión en la aplicación",
			message: "Desde esta mañana, al iniciar sesión aparece «Error 500» y vuelve a la pantalla de acceso.\n" +
				"Pasa en el móvil y en el ordenador. Adjunto una captura del error.",
			messageFile: "screenshot.png",
			agentAnswer: "Hola, Ana:\n\nGracias por la captura. Hemos corregido un fallo en el servidor de acceso; " +
				"¿puedes intentarlo de nuevo? Te adjunto la guía para borrar la caché del navegador por si acaso.",
			agentFile: "guia-cache.pdf",
			reply:     "Ya funciona en el ordenador, pero en el móvil sigue igual. Adjunto el registro de la aplicación.",
			replyFile: "registro.txt",
		},
		badEmail: "ana@", lookupID: "ABC-DEF-GHJL",
		agentName: "Marta Ruiz", agentEmail: "marta@example.org",
		queue: []queuedTicket{
			{department: "facturacion", name: "Carlos Méndez", email: "carlos@example.net",
				subject:  "Cobro duplicado en la factura de noviembre",
				message:  "Me habéis cobrado dos veces la factura de noviembre. ¿Podéis devolverme uno de los cargos?",
				priority: tickets.PriorityHigh, age: 30 * time.Hour},
			{department: "soporte", name: "Lucía Pérez", email: "lucia@example.org",
				subject:  "¿Cómo cambio la dirección de envío?",
				message:  "Me he mudado y no encuentro dónde cambiar la dirección de envío de los pedidos.",
				priority: tickets.PriorityLow, status: tickets.StatusInProgress, assigned: true, age: 3 * time.Hour},
			{department: "soporte", name: "Jorge Santos", email: "jorge@example.com",
				subject:  "La aplicación se cierra al adjuntar fotos",
				message:  "Cada vez que intento adjuntar una foto desde la galería, la aplicación se cierra.",
				priority: tickets.PriorityCritical, status: tickets.StatusOnHold, assigned: true, age: 26 * time.Hour},
		},
		staffTicket: conversation{
			name: "Isabel Romero", email: "isabel@example.org",
			subject: "Error al exportar los informes a PDF",
			message: "Al exportar el informe mensual a PDF la descarga se queda al 90 % y no termina.\n" +
				"Adjunto una captura de la pantalla.",
			messageFile: "exportacion.png",
			agentAnswer: "Hola, Isabel:\n\nLos informes de más de 200 páginas tardan unos minutos en generarse. " +
				"Te adjunto las instrucciones para exportarlos por meses; ¿nos dices si así funciona?",
			agentFile: "exportar-por-meses.pdf",
			reply:     "Por meses sí funciona, pero el informe anual sigue sin descargarse. Adjunto el registro.",
			replyFile: "exportacion.txt",
		},
		note:        "El informe anual pasa del límite de tiempo del generador de PDF. Lo he comentado con Desarrollo.",
		cannedTitle: "Pedir más detalles",
		cannedAnswer: "Hola, {{customer_name}}:\n\nPara ayudarte necesitamos algo más de información: " +
			"¿qué estabas haciendo cuando apareció el problema?",
		articles: []tickets.ArticleInput{
			{Department: "soporte", Title: "No puedo iniciar sesión", Category: "Cuenta", Keywords: []string{"acceso", "login", "entrar"},
				Body: "Si al iniciar sesión vuelves a la pantalla de acceso o ves un error:\n\n" +
					"1. Comprueba que escribes tu **correo completo**.\n2. Borra la caché del navegador y vuelve a intentarlo.\n" +
					"3. Si has olvidado la contraseña, usa *¿Olvidaste tu contraseña?*.\n\n" +
					"| Mensaje | Qué hacer |\n|---|---|\n| Error 500 | Espera unos minutos: es un fallo nuestro |\n" +
					"| Cuenta bloqueada | Espera 15 minutos |\n\nSi nada de esto funciona, envíanos un ticket con una captura."},
			{Department: "soporte", Title: "Cómo cambiar la contraseña", Category: "Cuenta", Keywords: []string{"clave"},
				Body: "Entra en **Mi cuenta › Seguridad** y pulsa *Cambiar contraseña*. Necesitas la contraseña actual."},
			{Department: "soporte", Title: "Cambiar la dirección de envío", Category: "Pedidos", Keywords: []string{"mudanza", "domicilio"},
				Body: "En **Mi cuenta › Direcciones** puedes añadir una dirección y marcarla como predeterminada."},
			{Department: "facturacion", Title: "Descargar una factura", Category: "Facturas", Keywords: []string{"recibo", "comprobante"},
				Body: "Todas tus facturas están en **Mi cuenta › Facturas**. Pulsa *Descargar* junto a la que necesites."},
			{Department: "facturacion", Title: "Cobros duplicados y devoluciones", Category: "Pagos", Keywords: []string{"reembolso", "cargo"},
				Body: "Si ves dos cargos iguales, el segundo suele ser una retención que desaparece en 3 a 5 días hábiles."},
		},
		kbSearch:     "sesion",
		typedSubject: "No puedo entrar en mi cuen",
	},
	"en": {
		department: "support",
		conversation: conversation{
			name: "John Smith", email: "john@example.com",
			subject: "Invoice for October cannot be downloaded",
			message: "When I click \"Download\" on the October invoice the page stays blank.\n" +
				"Other invoices work. I attach a screenshot.",
			messageFile: "screenshot.png",
			agentAnswer: "Hello John,\n\nThanks for the screenshot. The October invoice had a broken link, which we " +
				"have fixed. I attach a copy of the invoice as well.",
			agentFile: "invoice-2026-10.pdf",
			reply:     "It downloads now, thank you. One more question: can the invoices go to a second address? Details attached.",
			replyFile: "addresses.txt",
		},
		badEmail: "john@", lookupID: "ABC-DEF-GHJL",
		agentName: "Sam Taylor", agentEmail: "sam@example.com",
		queue: []queuedTicket{
			{department: "support", name: "Maria Lopez", email: "maria@example.com",
				subject:  "Charged twice for the November invoice",
				message:  "I was charged twice for the November invoice. Could you refund one of the payments?",
				priority: tickets.PriorityHigh, age: 30 * time.Hour},
			{department: "support", name: "David Chen", email: "david@example.net",
				subject:  "How do I change my shipping address?",
				message:  "I have moved and cannot find where to change the shipping address of my orders.",
				priority: tickets.PriorityLow, status: tickets.StatusInProgress, assigned: true, age: 3 * time.Hour},
			{department: "support", name: "Emma Wilson", email: "emma@example.org",
				subject:  "The app closes when I attach photos",
				message:  "Every time I try to attach a photo from the gallery, the app closes.",
				priority: tickets.PriorityCritical, status: tickets.StatusOnHold, assigned: true, age: 26 * time.Hour},
		},
		staffTicket: conversation{
			name: "Olivia Brown", email: "olivia@example.com",
			subject: "Exporting reports to PDF fails",
			message: "When I export the monthly report to PDF, the download stops at 90% and never finishes.\n" +
				"I attach a screenshot.",
			messageFile: "export.png",
			agentAnswer: "Hello Olivia,\n\nReports of more than 200 pages take a few minutes to build. " +
				"I attach the steps to export them month by month; could you tell us whether that works?",
			agentFile: "export-by-month.pdf",
			reply:     "Month by month works, but the yearly report still does not download. I attach the log.",
			replyFile: "export.txt",
		},
		note:        "The yearly report runs past the PDF builder's time limit. I have raised it with Development.",
		cannedTitle: "Ask for details",
		cannedAnswer: "Hello {{customer_name}},\n\nTo help you we need a little more information: " +
			"what were you doing when the problem appeared?",
		articles: []tickets.ArticleInput{
			{Department: "support", Title: "Downloading an invoice", Category: "Billing", Keywords: []string{"receipt", "bill"},
				Body: "Every invoice is under **My account › Invoices**:\n\n1. Find the month you need.\n" +
					"2. Click *Download*: you get a PDF.\n3. If the page stays blank, clear the browser's cache and try again.\n\n" +
					"| Invoice | Available from |\n|---|---|\n| Monthly | the 1st of the next month |\n" +
					"| Yearly summary | 15 January |\n\nStill stuck? Send us a ticket with a screenshot."},
			{Department: "support", Title: "Refunds of a double charge", Category: "Billing", Keywords: []string{"refund", "charged twice"},
				Body: "A second identical charge is usually a hold that disappears within 3 to 5 working days."},
			{Department: "support", Title: "Changing your shipping address", Category: "Orders", Keywords: []string{"moving", "delivery"},
				Body: "Under **My account › Addresses** add the new address and mark it as the default."},
			{Department: "support", Title: "Cannot log in", Category: "Account", Keywords: []string{"login", "sign in", "password"},
				Body: "Check that you type your **whole email address**, then try *Forgot your password?*."},
		},
		kbSearch:     "invoices",
		typedSubject: "The invoice does not downl",
	},
}

// The admin whose page is pictured, and every pictured account's
// password.
const (
	screenshotAdminName  = "Elena Ortega"
	screenshotAdminEmail = "elena@example.org"
	screenshotPassword   = "a long enough password"
)

// TestScreenshots pictures every page of the portal in Spanish and
// English, and two at phone width, and the staff's login, queue, ticket
// and admin pages in both, for the README:
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
	admin, err := app.store.AddAgent(ctx, "cli:elena", tickets.NewAgent{Email: screenshotAdminEmail, Name: screenshotAdminName,
		Role: tickets.RoleAdmin, Password: screenshotPassword})
	if err != nil {
		t.Fatal(err)
	}
	pictured := map[string]tickets.Article{}
	for lang, text := range screenshotTexts {
		for i, in := range text.articles {
			in.Language, in.State = lang, tickets.ArticlePublished
			a, err := app.store.SaveArticle(ctx, admin, 0, in)
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				pictured[lang] = a
			}
		}
	}
	agents := map[string]tickets.Agent{}
	for lang, depts := range map[string][]string{"es": {"soporte", "facturacion"}, "en": {"support"}} {
		text := screenshotTexts[lang]
		a, err := app.store.AddAgent(ctx, "cli:elena", tickets.NewAgent{Email: text.agentEmail, Name: text.agentName,
			Role: tickets.RoleAgent, Password: screenshotPassword, DepartmentSlugs: depts})
		if err != nil {
			t.Fatal(err)
		}
		agents[lang] = a
	}
	base := "http://" + app.HTTPAddr()
	for _, lang := range []string{"es", "en"} {
		screenshotLanguage(browsers[lang], t, app, agents[lang], base, dir, lang)
		screenshotKB(browsers[lang], t, base, dir, lang, pictured[lang])
		screenshotStaff(browsers[lang], t, app, agents[lang], base, dir, lang)
	}
}

// screenshotLanguage takes one language's screenshots in tab, a browser
// speaking that language.
func screenshotLanguage(tab context.Context, t *testing.T, app *App, agent tickets.Agent, base, dir, lang string) {
	text := screenshotTexts[lang]
	shot := func(name string) { screenshot(tab, t, dir, name) }
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

	sub := conversationTicket(t, app, agent, text.department, text.conversation)
	token, err := app.store.IssueToken(context.Background(), sub.TicketID, tickets.ScopeTicket)
	if err != nil {
		t.Fatal(err)
	}
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

// screenshotKB takes one language's screenshots of the knowledge base: its
// index, a search, the pictured article and the submit form suggesting
// articles as a subject is typed.
func screenshotKB(tab context.Context, t *testing.T, base, dir, lang string, article tickets.Article) {
	text := screenshotTexts[lang]
	shot := func(name string) { screenshot(tab, t, dir, lang+"-"+name) }
	do(tab, t, "knowledge base", chromedp.Navigate(base+"/kb"), chromedp.WaitVisible(chromedp.ID("kb-search-form")))
	shot("kb")
	do(tab, t, "knowledge base search", chromedp.Navigate(base+"/kb?q="+text.kbSearch), chromedp.WaitVisible(chromedp.CSS("#results mark")))
	shot("kb-search")
	do(tab, t, "article", chromedp.Navigate(base+article.Path()), chromedp.WaitVisible(chromedp.ID("article-body")))
	shot("kb-article")
	do(tab, t, "submit form suggesting articles",
		chromedp.Navigate(base+"/submit"),
		chromedp.WaitVisible(chromedp.ID("submit")),
		chromedp.SetValue(chromedp.ID("department"), text.department),
		chromedp.SendKeys(chromedp.ID("subject"), text.typedSubject),
		chromedp.WaitVisible(chromedp.CSS("#kb-suggestions li a")),
	)
	shot("submit-suggestions")
}

// screenshot writes a picture of the whole page in tab as dir/name.png.
func screenshot(tab context.Context, t *testing.T, dir, name string) {
	t.Helper()
	png := read(tab, t, "screenshot "+name, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// screenshotStaff takes one language's screenshots of the staff's pages in
// tab: the login page, the agent's queue, a ticket with an answer and an
// internal note the agent adds there, and, logged in as the admin, the
// admins' page.
func screenshotStaff(tab context.Context, t *testing.T, app *App, agent tickets.Agent, base, dir, lang string) {
	text := screenshotTexts[lang]
	ctx := context.Background()
	store := app.store
	shot := func(name string) { screenshot(tab, t, dir, lang+"-staff-"+name) }

	for _, q := range text.queue {
		in := tickets.WebTicket{Department: q.department, Name: q.name, Email: q.email, Subject: q.subject, Message: q.message,
			Priority: q.priority}
		var c tickets.TicketChange
		if q.priority == tickets.PriorityCritical { // the staff's alone to set
			in.Priority, c.Priority = tickets.PriorityHigh, &q.priority
		}
		sub, err := store.SubmitTicket(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if q.status != "" {
			c.Status = &q.status
		}
		if q.assigned {
			c.AssigneeID = &agent.ID
		}
		if c != (tickets.TicketChange{}) {
			if err := store.UpdateTicket(ctx, agent, sub.TicketID, c); err != nil {
				t.Fatal(err)
			}
		}
		backdate(t, sub.TicketID, q.age)
	}
	pictured := conversationTicket(t, app, agent, text.department, text.staffTicket)

	do(tab, t, "staff login page", chromedp.EmulateViewport(desktopWidth, desktopHeight),
		chromedp.Navigate(base+"/staff/login"), chromedp.WaitVisible(chromedp.ID("login")))
	shot("login")

	staffLogin(tab, t, base, agent.Email, screenshotPassword)
	// The queue holds the portal's new ticket, the one pictured and the
	// others of the language (the portal's answered ticket is resolved).
	if rows := read(tab, t, "count the queue", chromedp.Evaluate[int](`document.querySelectorAll("#queue tbody tr").length`)); rows != len(text.queue)+2 {
		t.Fatalf("queue pictured: %d tickets, want %d", rows, len(text.queue)+2)
	}
	shot("queue")

	do(tab, t, "staff ticket page",
		chromedp.Navigate(base+"/staff/tickets/"+pictured.TrackingID),
		chromedp.WaitVisible(chromedp.ID("answer")),
	)
	dept, err := store.DepartmentBySlug(ctx, text.department)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.SaveCanned(ctx, agent.Actor(), tickets.Canned{DepartmentID: dept.ID,
		Title: text.cannedTitle, Body: text.cannedAnswer}); err != nil {
		t.Fatal(err)
	}
	do(tab, t, "staff ticket page with a canned response",
		chromedp.Navigate(base+"/staff/tickets/"+pictured.TrackingID),
		chromedp.WaitVisible(chromedp.ID("answer")),
	)
	staffAnswer(tab, t, text.note, nil, true)
	// Once more, without the notice of the note just added.
	do(tab, t, "staff ticket page with the note",
		chromedp.Navigate(base+"/staff/tickets/"+pictured.TrackingID),
		chromedp.WaitVisible(chromedp.CSS("ol.thread article.internal")),
	)
	if page := ticketPageState(tab, t); len(page.Thread) != 4 || len(page.Attachments) != 3 {
		t.Fatalf("staff's ticket page pictured: %+v; want three messages with a file each and a note", page)
	}
	shot("ticket")

	do(tab, t, "staff knowledge base", chromedp.Navigate(base+"/staff/kb"), chromedp.WaitVisible(chromedp.ID("articles")))
	shot("kb")

	do(tab, t, "log out", chromedp.Click(chromedp.ID("logout")), chromedp.WaitVisible(chromedp.ID("notice")))
	staffLogin(tab, t, base, screenshotAdminEmail, screenshotPassword)
	do(tab, t, "admin page", chromedp.Click(chromedp.ID("nav-admin")), chromedp.WaitVisible(chromedp.ID("jobs")))
	shot("admin")
	do(tab, t, "log out", chromedp.Click(chromedp.ID("logout")), chromedp.WaitVisible(chromedp.ID("notice")))
}

// conversationTicket makes a ticket of the department with c's thread,
// the agent answering a day after the customer wrote, and the customer
// replying two hours later, now.
func conversationTicket(t *testing.T, app *App, agent tickets.Agent, department string, c conversation) tickets.Submitted {
	t.Helper()
	ctx := context.Background()
	store := app.store
	sub, err := store.SubmitTicket(ctx, tickets.WebTicket{
		Department: department, Name: c.name, Email: c.email, Subject: c.subject, Message: c.message,
		Attachments: []tickets.InboundAttachment{sampleFile(c.messageFile)},
	})
	if err != nil {
		t.Fatal(err)
	}
	backdate(t, sub.TicketID, 22*time.Hour)
	if _, err := store.AnswerTicket(ctx, agent, sub.TicketID, tickets.Answer{Text: c.agentAnswer,
		Attachments: []tickets.InboundAttachment{sampleFile(c.agentFile)}}); err != nil {
		t.Fatal(err)
	}
	backdate(t, sub.TicketID, 2*time.Hour)
	err = store.ReplyByCustomer(ctx, sub.TicketID, tickets.CustomerReply{Message: c.reply,
		Attachments: []tickets.InboundAttachment{sampleFile(c.replyFile)}})
	if err != nil {
		t.Fatal(err)
	}
	return sub
}

// sampleFile is a file of the pictured threads: a picture, a PDF or a
// log, by its name's extension.
func sampleFile(name string) tickets.InboundAttachment {
	switch filepath.Ext(name) {
	case ".png":
		return tickets.InboundAttachment{Filename: name, ContentType: "image/png", Content: tickets.BytesContent(pngBytes)}
	case ".pdf":
		return tickets.InboundAttachment{Filename: name, ContentType: "application/pdf", Content: tickets.BytesContent(pdfBytes)}
	}
	return tickets.InboundAttachment{Filename: name, ContentType: "text/plain",
		Content: tickets.BytesContent([]byte(strings.Repeat("12:00:01 request failed: status 500\n", 40)))}
}

// backdate moves everything the ticket has so far age into the past, as
// if it had happened then.
func backdate(t *testing.T, ticketID int64, age time.Duration) {
	t.Helper()
	_, err := db.Pool(t).Exec(context.Background(), `
		WITH tk AS (
			UPDATE tickets SET created_at = created_at - $2 * interval '1 second',
			                   updated_at = updated_at - $2 * interval '1 second'
			WHERE id = $1
		), m AS (
			UPDATE messages SET created_at = created_at - $2 * interval '1 second' WHERE ticket_id = $1
		)
		UPDATE ticket_history SET at = at - $2 * interval '1 second' WHERE ticket_id = $1`,
		ticketID, age.Seconds())
	if err != nil {
		t.Fatalf("backdate ticket %d: %v", ticketID, err)
	}
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
