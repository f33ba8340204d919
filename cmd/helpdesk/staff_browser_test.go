package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/emersion/go-message/mail"

	"github.com/helpdeskgw/helpdesk/internal/smtptest"
	"github.com/helpdeskgw/helpdesk/tickets"
)

// addAgent creates a staff account as `helpdesk agent add` does, with the
// password given on stdin, and returns its ID; args are the command's
// further flags (--department, --role).
func addAgent(t *testing.T, email, name, password string, args ...string) int64 {
	t.Helper()
	environ := []string{"HELPDESK_DATABASE_URL=" + db.ConnString(t)}
	var out bytes.Buffer
	args = append([]string{"agent", "add", "--email", email, "--name", name}, args...)
	if err := runIO(context.Background(), args, environ, strings.NewReader(password+"\n"), &out); err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	var id int64
	if _, err := fmt.Sscanf(out.String(), "agent %d created", &id); err != nil {
		t.Fatalf("%v said %q: %v", args, out.String(), err)
	}
	return id
}

// staffLogin logs in at the staff's login page and waits for the queue.
func staffLogin(tab context.Context, t *testing.T, base, email, password string) {
	t.Helper()
	do(tab, t, "log in as "+email,
		chromedp.Navigate(base+"/staff/login"),
		chromedp.WaitVisible(chromedp.ID("login")),
		chromedp.SendKeys(chromedp.ID("email"), email),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("queue-count")),
	)
}

// staffAnswer sends the answer form of the staff's ticket page, open in
// tab, and waits for the page to show one more message.
func staffAnswer(tab context.Context, t *testing.T, text string, files []string, internal bool) {
	t.Helper()
	shown := read(tab, t, "count the thread's messages", chromedp.Evaluate[int](`document.querySelectorAll("ol.thread > li").length`))
	steps := []chromedp.Action[chromedp.Void]{chromedp.SendKeys(chromedp.ID("message"), text)}
	if len(files) > 0 {
		steps = append(steps, chromedp.SetUploadFiles(chromedp.ID("attachments"), files))
	}
	if internal {
		steps = append(steps, chromedp.Click(chromedp.ID("internal")))
	}
	steps = append(steps,
		chromedp.Click(chromedp.ID("answer")),
		chromedp.WaitVisible(chromedp.CSS(`ol.thread > li:nth-child(`+strconv.Itoa(shown+1)+`)`)),
		chromedp.WaitVisible(chromedp.ID("notice")),
	)
	do(tab, t, "send the answer form", steps...)
}

// jsString is s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s) // a string always encodes
	return string(b)
}

// spooledMail is a mail the app wrote to its spool.
type spooledMail struct {
	To      []string
	Subject string
	Text    string
	Raw     []byte
}

// waitForMails waits for the spool to hold n mails and reads them, in the
// order they were queued.
func waitForMails(t *testing.T, dir string, n int) []spooledMail {
	t.Helper()
	waitForFile(t, dir, n)
	files, err := filepath.Glob(filepath.Join(dir, "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	mails := make([]spooledMail, len(files))
	for i, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		r, err := mail.CreateReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("read %s: %v", f, err)
		}
		to, err := r.Header.AddressList("To")
		if err != nil {
			t.Fatalf("read To of %s: %v", f, err)
		}
		m := spooledMail{Raw: raw, Text: mailText(t, raw)}
		for _, a := range to {
			m.To = append(m.To, a.Address)
		}
		if m.Subject, err = r.Header.Subject(); err != nil {
			t.Fatalf("read Subject of %s: %v", f, err)
		}
		mails[i] = m
	}
	return mails
}

// fetched is a file the browser downloaded.
type fetched struct {
	Status      int    `json:"status"`
	URL         string `json:"url"`
	Disposition string `json:"disposition"`
	Body        string `json:"body"` // base64, decoded into Content
	Content     []byte `json:"-"`
}

// fetchInPage downloads path with the page's own session, following
// redirects.
func fetchInPage(tab context.Context, t *testing.T, path string) fetched {
	t.Helper()
	const download = `(async (path) => {
		const r = await fetch(path, {credentials: "same-origin"});
		const b = new Uint8Array(await r.arrayBuffer());
		let s = "";
		for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode.apply(null, b.subarray(i, i + 0x8000));
		return {status: r.status, url: r.url, disposition: r.headers.get("Content-Disposition") || "", body: btoa(s)};
	})`
	f := read(tab, t, "download "+path, chromedp.Evaluate[fetched](download+"("+jsString(path)+")", chromedp.EvalAwaitPromise))
	body, err := base64.StdEncoding.DecodeString(f.Body)
	if err != nil {
		t.Fatalf("download %s: %v", path, err)
	}
	f.Content = body
	return f
}

// fileLinks are the addresses of the files of the thread shown in tab, by
// name; selector picks the messages.
func fileLinks(tab context.Context, t *testing.T, selector string) map[string]string {
	t.Helper()
	return read(tab, t, "read the file links", chromedp.Evaluate[map[string]string](
		`Object.fromEntries([...document.querySelectorAll(`+jsString(selector+" .files a")+`)].map((a) => [a.innerText.trim(), a.getAttribute("href")]))`))
}

// TestAgentAnswersInChromium walks an agent through the staff's pages in
// a real browser: a customer's mail opens a ticket, the agent logs in,
// finds it by its tracking ID, answers with a file and adds an internal
// note; the customer opens the mailed link in a browser of their own and
// sees the answer and its file, and nothing of the note.
func TestAgentAnswersInChromium(t *testing.T) {
	browser := newBrowser(t, "es")
	app, spool := startApp(t)
	store := app.store
	ctx := context.Background()
	base := "http://" + app.HTTPAddr()
	const (
		agentEmail = "marta@example.com"
		agentName  = "Marta Ruiz"
		password   = "una contraseña bastante larga"
		customer   = "ana@example.org"
		subject    = "No puedo iniciar sesión"
		first      = "Al iniciar sesión aparece un error 500."
		answer     = "Hola, Ana: hemos corregido el fallo del acceso. Te adjunto la guía por si vuelve a pasar."
		guideName  = "guia-acceso.pdf"
		note       = "Era la caché del proxy; la he vaciado a mano."
		noteName   = "proxy.log"
	)
	guide := writeUpload(t, guideName, pdfBytes)
	noteContent := []byte(strings.Repeat("cache purge ok\n", 20))
	noteFile := writeUpload(t, noteName, noteContent)
	agentID := addAgent(t, agentEmail, agentName, password, "--department", demoDepartment.Slug)
	// With a canned response the answer form has its "Insert" button,
	// named "action": the form must still post where it says.
	dept, err := store.DepartmentBySlug(ctx, demoDepartment.Slug)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.SaveCanned(ctx, "test", tickets.Canned{DepartmentID: dept.ID, Title: "Saludo", Body: "Hola, {{customer_name}}:"}); err != nil {
		t.Fatal(err)
	}

	c := smtptest.Dial(t, app.SMTPAddr())
	if code, msg := c.Send(customer, []string{demoDepartment.Address}, smtptest.CRLF(`From: "Ana García" <`+customer+`>
To: Soporte <`+demoDepartment.Address+`>
Subject: =?UTF-8?Q?No_puedo_iniciar_sesi=C3=B3n?=
Message-ID: <staff-e2e-1@mail.example.org>
Date: Fri, 27 Nov 2026 10:00:00 +0100
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

`+first+`
`)); code != 250 {
		t.Fatalf("mail refused: %d %s", code, msg)
	}
	c.Quit()

	// The acknowledgement to the customer, and the notice of a new ticket
	// to the agent of the department.
	mails := waitForMails(t, spool, 2)
	var recipients []string
	for _, m := range mails {
		recipients = append(recipients, m.To...)
	}
	slices.Sort(recipients)
	if !slices.Equal(recipients, []string{customer, agentEmail}) {
		t.Fatalf("mail sent to %v, want an acknowledgement to %s and a notice to %s", recipients, customer, agentEmail)
	}
	i := slices.IndexFunc(mails, func(m spooledMail) bool { return slices.Equal(m.To, []string{customer}) })
	if i < 0 {
		t.Fatalf("no mail to %s alone", customer)
	}
	ack := mails[i]
	tag := regexp.MustCompile(`^\[([A-Z1-9]{3}-[A-Z1-9]{3}-[A-Z1-9]{4})\] `).FindStringSubmatch(ack.Subject)
	if tag == nil {
		t.Fatalf("acknowledgement subject %q does not start with [ABC-DEF-GHIJ]", ack.Subject)
	}
	trackingID := tag[1]
	tk, err := store.LookupTicket(ctx, trackingID, customer)
	if err != nil {
		t.Fatalf("ticket %s of %s: %v", trackingID, customer, err)
	}

	// The agent logs in and finds the ticket by its tracking ID, typed as
	// people do: lower case, spaces for dashes.
	staffLogin(browser, t, base, agentEmail, password)
	if name := read(browser, t, "read who is logged in", chromedp.Text(chromedp.ID("agent-name"))); name != agentName {
		t.Errorf("logged in as %q, want %q", name, agentName)
	}
	do(browser, t, "search the queue",
		chromedp.SendKeys(chromedp.ID("q"), strings.ToLower(strings.ReplaceAll(trackingID, "-", " "))),
		chromedp.Click(chromedp.ID("filter")),
		chromedp.WaitVisible(chromedp.ID("row-"+trackingID)),
	)
	rows := read(browser, t, "read the queue", chromedp.Evaluate[[]string](
		`[...document.querySelectorAll("#queue tbody tr")].map((r) => r.innerText.replace(/\s+/g, " ").trim())`))
	if len(rows) != 1 || !strings.Contains(rows[0], subject) || !strings.Contains(rows[0], customer) || !strings.Contains(rows[0], "Nuevo") {
		t.Errorf("queue searched for %s: %q; want one row, the new ticket of %s", trackingID, rows, customer)
	}
	do(browser, t, "open the ticket",
		chromedp.Click(chromedp.CSS(`#row-`+trackingID+` a.tracking`)),
		chromedp.WaitVisible(chromedp.ID("answer")),
	)
	if loc := read(browser, t, "read the address", chromedp.Location()); loc != base+"/staff/tickets/"+trackingID {
		t.Errorf("the queue's link led to %s, want %s/staff/tickets/%s", loc, base, trackingID)
	}
	page := ticketPageState(browser, t)
	if page.Lang != "es" || page.TrackingID != trackingID || page.Status != "Nuevo" || !slices.Equal(page.Thread, []string{first}) {
		t.Errorf("staff's ticket page: %+v", page)
	}

	// The answer, with a file.
	staffAnswer(browser, t, answer, []string{guide}, false)
	page = ticketPageState(browser, t)
	if page.Status != "Respondido" || page.Notice != "Tu respuesta se ha añadido y se enviará por correo al cliente." ||
		!slices.Equal(page.Thread, []string{first, answer}) || !slices.Equal(page.Attachments, []string{guideName}) {
		t.Errorf("staff's ticket page after the answer: %+v", page)
	}
	checkStatus(ctx, t, store, tk.ID, tickets.StatusReplied)

	// An internal note, with a file.
	staffAnswer(browser, t, note, []string{noteFile}, true)
	page = ticketPageState(browser, t)
	if page.Status != "Respondido" || page.Notice != "Tu nota interna se ha añadido. El cliente no la ve." ||
		!slices.Equal(page.Thread, []string{first, answer, note}) || !slices.Equal(page.Attachments, []string{guideName, noteName}) {
		t.Errorf("staff's ticket page after the note: %+v", page)
	}
	noteLinks := fileLinks(browser, t, "ol.thread article.internal")
	if len(noteLinks) != 1 || noteLinks[noteName] == "" {
		t.Fatalf("files of the internal note on the staff's page: %v, want %s", noteLinks, noteName)
	}
	if f := fetchInPage(browser, t, noteLinks[noteName]); f.Status != http.StatusOK || !bytes.Equal(f.Content, noteContent) {
		t.Errorf("the agent downloading the note's file: %d, %d bytes; want 200 and the %d bytes sent", f.Status, len(f.Content), len(noteContent))
	}

	// The history names the answer and the note by the messages' numbers
	// the page shows.
	ids := read(browser, t, "read the messages' numbers", chromedp.Evaluate[[]string](
		`[...document.querySelectorAll("ol.thread article")].map((a) => a.id.replace(/^message-/, ""))`))
	if len(ids) != 3 {
		t.Fatalf("messages numbered %v on the staff's page, want 3", ids)
	}
	actor := fmt.Sprintf("agent:%d %s", agentID, agentEmail)
	checkHistory(ctx, t, store, tk.ID, []tickets.History{
		{Actor: "customer:" + customer, Action: "created", NewValue: "email"},
		{Actor: actor, Action: "answer", NewValue: ids[1]},
		{Actor: actor, Action: "status", OldValue: "new", NewValue: "replied"},
		{Actor: actor, Action: "note", NewValue: ids[2]},
	})

	// The answer is mailed to the customer; the note is not.
	mails = waitForMails(t, spool, 3)
	if len(mails) != 3 {
		t.Fatalf("%d mails in the spool, want 3: the note must not be mailed", len(mails))
	}
	answered := mails[2]
	if !slices.Equal(answered.To, []string{customer}) || !strings.HasPrefix(answered.Subject, "["+trackingID+"] ") ||
		!strings.Contains(answered.Subject, subject) {
		t.Errorf("answer mailed to %v with subject %q; want to %s, [%s] and the ticket's subject", answered.To, answered.Subject, customer, trackingID)
	}
	if !strings.Contains(answered.Text, answer) || !strings.Contains(answered.Text, guideName) || strings.Contains(answered.Text, note) {
		t.Errorf("answer mail's text lacks the answer or its file's name, or has the note:\n%s", answered.Text)
	}
	outbox, err := store.OutboxForTicket(ctx, tk.ID)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, o := range outbox {
		kinds = append(kinds, string(o.Kind))
	}
	if slices.Sort(kinds); !slices.Equal(kinds, []string{"ack", "agent_new_ticket", "answer"}) {
		t.Errorf("mail queued for the ticket: %v; want the acknowledgement, the agent's notice and the answer", kinds)
	}

	// The customer opens the mailed link in a browser of their own.
	customerTab := freshTab(browser, t)
	link := mailLink(t, answered.Raw, "t")
	do(customerTab, t, "open the answer's link",
		chromedp.Navigate(base+strings.TrimPrefix(link, testBaseURL)),
		chromedp.WaitVisible(chromedp.ID("tracking-id")),
	)
	page = ticketPageState(customerTab, t)
	if page.Lang != "es" || page.TrackingID != trackingID || page.Status != "Respondido" ||
		!slices.Equal(page.Thread, []string{first, answer}) || !slices.Equal(page.Attachments, []string{guideName}) {
		t.Errorf("customer's ticket page: %+v", page)
	}
	text := read(customerTab, t, "read the customer's page", chromedp.Evaluate[string](`document.documentElement.outerHTML`))
	for _, hidden := range []string{note, noteName} {
		if strings.Contains(text, hidden) {
			t.Errorf("the customer's page shows %q of the internal note", hidden)
		}
	}
	links := fileLinks(customerTab, t, "ol.thread")
	f := fetchInPage(customerTab, t, links[guideName])
	if f.Status != http.StatusOK || f.Disposition != "attachment; filename="+guideName || !bytes.Equal(f.Content, pdfBytes) {
		t.Errorf("the customer downloading %s: %d %q, %d bytes; want 200, the file's name and the %d bytes sent",
			guideName, f.Status, f.Disposition, len(f.Content), len(pdfBytes))
	}
	// The note's file is not the customer's, even by its number, nor
	// through the staff's address, which asks them to log in.
	notePath := strings.Replace(noteLinks[noteName], "/staff/tickets/", "/ticket/", 1)
	if f := fetchInPage(customerTab, t, notePath); f.Status != http.StatusNotFound {
		t.Errorf("the customer downloading the note's file at %s: %d, want 404", notePath, f.Status)
	}
	if f := fetchInPage(customerTab, t, noteLinks[noteName]); !strings.HasPrefix(f.URL, base+"/staff/login?") || bytes.Contains(f.Content, noteContent) {
		t.Errorf("the customer downloading the note's file at %s: led to %s (%d), want the login page", noteLinks[noteName], f.URL, f.Status)
	}
}
