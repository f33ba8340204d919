package web

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/helpdeskgw/helpdesk/mailout"
	"github.com/helpdeskgw/helpdesk/templates"
	"github.com/helpdeskgw/helpdesk/tickets"
)

func TestHomePage(t *testing.T) {
	s := newSite(t, Options{})
	es := s.visitor(t).get("/")
	if es.status != 200 {
		t.Fatalf("home: %d", es.status)
	}
	for _, want := range []string{`href="/submit"`, "Enviar un ticket", `href="/lookup"`, "Ver tickets existentes",
		`id="knowledge-base"`, "artículos de ayuda", `id="kb-search" name="q"`, `action="/kb"`, `id="lang-en"`} {
		if !strings.Contains(es.body, want) {
			t.Errorf("home lacks %q", want)
		}
	}
	// No link leads nowhere.
	for _, href := range regexp.MustCompile(`href="([^"]+)"`).FindAllStringSubmatch(es.body, -1) {
		link := strings.ReplaceAll(href[1], "&amp;", "&")
		if strings.HasPrefix(link, "#") {
			continue
		}
		if strings.HasPrefix(link, "?") {
			link = "/" + link
		}
		if p := s.visitor(t).get(link); p.status != 200 {
			t.Errorf("home links to %s, which answers %d", link, p.status)
		}
	}
	en := s.visitor(t)
	en.header.Set("Accept-Language", "en-US,en;q=0.8")
	if p := en.get("/"); !strings.Contains(p.body, "Submit a ticket") || !strings.Contains(p.body, "View existing tickets") || !strings.Contains(p.body, `lang="en"`) {
		t.Errorf("home in English lacks the two choices:\n%s", p.body)
	}
}

func TestLanguageIsChosenAndRemembered(t *testing.T) {
	s := newSite(t, Options{})
	v := s.visitor(t)
	v.header.Set("Accept-Language", "en")
	if p := v.get("/lookup"); !strings.Contains(p.body, `lang="en"`) {
		t.Error("Accept-Language: en did not give English")
	}
	p := v.get("/lookup?lang=es")
	if !strings.Contains(p.body, `lang="es"`) || !strings.Contains(p.body, "Ver tickets existentes") {
		t.Error("?lang=es did not give Spanish")
	}
	if c := p.header.Get("Set-Cookie"); !strings.Contains(c, "lang=es") || !strings.Contains(c, "Max-Age=") || !strings.Contains(c, "SameSite=Lax") {
		t.Errorf("language cookie %q", c)
	}
	// Remembered over Accept-Language, on every page, the ticket's too.
	for _, path := range []string{"/", "/submit", "/forgot", "/nothing"} {
		if p := v.get(path); !strings.Contains(p.body, `lang="es"`) {
			t.Errorf("%s after choosing Spanish: not Spanish", path)
		}
	}
	if p := v.open(s.token); !strings.Contains(p.body, `lang="es"`) || !strings.Contains(p.body, "Marcar como resuelto") {
		t.Error("ticket page of an English department after choosing Spanish: not Spanish")
	}
	// Every page offers the switch.
	if p := v.get("/ticket/" + s.ticket.TrackingID); !p.has("lang-en") || !p.has("lang-es") {
		t.Error("ticket page lacks the language switch")
	}
	if p := v.get("/?lang=en"); !strings.Contains(p.body, `lang="en"`) {
		t.Error("switching back to English")
	}
	if p := v.get("/?lang=fr"); !strings.Contains(p.body, `lang="en"`) || strings.Contains(p.header.Get("Set-Cookie"), "lang=fr") {
		t.Error("an unknown language changed the choice")
	}
}

func validTicket() map[string]string {
	return map[string]string{"department": "soporte", "name": "Ana & Co", "email": "Ana.Perez@Example.ORG",
		"subject": "Error al iniciar sesión", "message": "Sale un error 500.\r\nDesde ayer.", "priority": "high"}
}

func TestSubmitTicket(t *testing.T) {
	s := newSite(t, Options{})
	v := s.visitor(t)
	v.header.Set("Accept-Language", "en")
	form := v.get("/submit")
	for _, want := range []string{`<option value="soporte">Soporte Técnico</option>`, `<option value="billing">Billing</option>`,
		`<option value="medium" selected>Medium</option>`, "use “High” only for critical cases", "Up to 5 files of at most 10 MB each, 25 MB in all",
		`id="submit"`, `enctype="multipart/form-data"`} {
		if !strings.Contains(form.body, want) {
			t.Errorf("submit form lacks %q", want)
		}
	}
	if p := v.get("/submit?department=billing"); !strings.Contains(p.body, `<option value="billing" selected>`) {
		t.Error("?department= does not choose the department")
	}
	png := bytes.Repeat([]byte{0x89, 'P', 'N', 'G'}, 100000) // 400 KB: spooled to a file on the way
	p := v.postMultipart("/submit", validTicket(), file{"captura.png", png}, file{"../../etc/informe.txt", []byte("log")})
	if p.status != http.StatusSeeOther {
		t.Fatalf("submit: %d\n%s", p.status, p.body)
	}
	loc := regexp.MustCompile(`^/ticket/([A-Z0-9]{3}-[A-Z0-9]{3}-[A-Z0-9]{4})\?created=1$`).FindStringSubmatch(p.location())
	if loc == nil {
		t.Fatalf("submit redirects to %q, want /ticket/<ID>?created=1", p.location())
	}
	id := loc[1]
	created := v.get(p.location())
	if created.status != 200 {
		t.Fatalf("created page: %d", created.status)
	}
	for _, want := range []string{`id="created-tracking-id">` + id + "<", "Keep this code", "sent a copy to Ana.Perez@example.org",
		`id="status">New<`, `id="priority">High<`, "Sale un error 500.\nDesde ayer.", "captura.png", "informe.txt", `id="copy-tracking-id"`} {
		if !strings.Contains(created.body, want) {
			t.Errorf("created page lacks %q", want)
		}
	}
	if p := v.get("/ticket/" + id); p.has("created") {
		t.Error("the ticket page shows the creation notice without ?created=1")
	}

	// The store has it all, as for a mailed-in ticket.
	ctx := context.Background()
	tk, err := s.store.LookupTicket(ctx, id, "ana.perez@example.org")
	if err != nil {
		t.Fatal(err)
	}
	if tk.Source != "web" || tk.Locale != "es" || tk.Priority != tickets.PriorityHigh || tk.CustomerName != "Ana & Co" || tk.Department.Slug != "soporte" {
		t.Errorf("ticket %+v: want source web, locale es (its department's), priority high", tk)
	}
	msgs, _ := s.store.Thread(ctx, tk.ID, false)
	if len(msgs) != 1 || len(msgs[0].Attachments) != 2 || msgs[0].Attachments[0].Size != int64(len(png)) || msgs[0].Attachments[1].Filename != "informe.txt" {
		t.Fatalf("thread %+v: want one message with both files", msgs)
	}
	var stored bytes.Buffer
	if err := s.store.WriteBlob(ctx, msgs[0].Attachments[0].SHA256, &stored); err != nil || !bytes.Equal(stored.Bytes(), png) {
		t.Errorf("stored file differs (%d bytes, %v)", stored.Len(), err)
	}
	hist, _ := s.store.TicketHistory(ctx, tk.ID)
	if len(hist) != 1 || hist[0].Action != "created" || hist[0].NewValue != "web" || hist[0].Actor != "customer:Ana.Perez@example.org" {
		t.Errorf("history %+v", hist)
	}
	outbox, _ := s.store.OutboxForTicket(ctx, tk.ID)
	if len(outbox) != 1 || outbox[0].Kind != tickets.KindAck || outbox[0].Recipient != "Ana.Perez@example.org" {
		t.Fatalf("outbox %+v: want the acknowledgement", outbox)
	}

	// The acknowledgement goes out as for mail, in the department's
	// language, with a link that opens the ticket.
	tmpl, _ := templates.Load()
	dir := t.TempDir()
	w, err := mailout.New(mailout.Options{Store: s.store, Templates: tmpl, MailOut: "file://" + dir, BaseURL: s.srv.URL, Linger: 1})
	if err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { w.Run(wctx); close(done) }()
	// The two mailed-in tickets' acknowledgements and this one's.
	for deadline := time.Now().Add(10 * time.Second); s.count(t, `SELECT count(*) FROM outbox WHERE state = 'sent'`) < 3; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the acknowledgements were not sent")
		}
	}
	stop()
	<-done
	spooled, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
	var ack *mail.Message
	for _, f := range spooled {
		raw, _ := os.ReadFile(f)
		m, err := mail.ReadMessage(bytes.NewReader(raw))
		if err == nil && strings.Contains(m.Header.Get("Subject"), id) {
			ack = m
		}
	}
	if ack == nil {
		t.Fatalf("no acknowledgement of %s among %v", id, spooled)
	}
	body, _ := io.ReadAll(ack.Body)
	subject, _ := new(mime.WordDecoder).DecodeHeader(ack.Header.Get("Subject"))
	if !strings.HasPrefix(subject, "["+id+"] Hemos recibido tu solicitud") || !strings.Contains(ack.Header.Get("To"), "Ana.Perez@example.org") {
		t.Errorf("acknowledgement subject %q to %q", subject, ack.Header.Get("To"))
	}
	link := regexp.MustCompile(regexp.QuoteMeta(s.srv.URL) + `/t/[A-Za-z0-9_-]{43}`).Find(body)
	if link == nil {
		t.Fatalf("acknowledgement has no link:\n%s", body)
	}
	if p := s.visitor(t).open(strings.TrimPrefix(string(link), s.srv.URL)[3:]); p.status != 200 || !strings.Contains(p.body, id) {
		t.Errorf("the acknowledgement's link: %d", p.status)
	}
}

func TestSubmitErrorsKeepWhatWasTyped(t *testing.T) {
	s := newSite(t, Options{})
	v := s.visitor(t)
	for _, tc := range []struct {
		field, value, wantText string
	}{
		{"department", "", "Elige un departamento"},
		{"department", "nope", "Elige un departamento"},
		{"name", "  ", "obligatorio"},
		{"email", "", "obligatorio"},
		{"email", "ana@", "dirección de correo válida"},
		{"email", "Ana <ana@example.org>", "dirección de correo válida"},
		{"subject", "", "obligatorio"},
		{"subject", strings.Repeat("s", tickets.MaxSubjectLength+1), "demasiado largo"},
		{"message", "\r\n ", "obligatorio"},
		{"message", strings.Repeat("m", tickets.MaxMessageLength+1), "demasiado largo"},
		{"priority", "critical", "Baja, Media o Alta"},
	} {
		fields := validTicket()
		fields[tc.field] = tc.value
		p := v.postMultipart("/submit", fields)
		if p.status != http.StatusUnprocessableEntity {
			t.Errorf("%s=%q: %d, want 422", tc.field, tc.value, p.status)
			continue
		}
		if !p.has("error-"+tc.field) || !strings.Contains(p.body, tc.wantText) || !p.has("error-summary") {
			t.Errorf("%s=%q: no error next to the field saying %q", tc.field, tc.value, tc.wantText)
		}
		for field, typed := range fields {
			if field == tc.field || field == "message" || field == "department" || field == "priority" {
				continue
			}
			if !strings.Contains(p.body, `value="`+strings.ReplaceAll(typed, "&", "&amp;")+`"`) {
				t.Errorf("%s=%q: the typed %s %q is lost", tc.field, tc.value, field, typed)
			}
		}
		if tc.field != "message" && !strings.Contains(p.body, "Sale un error 500.\r\nDesde ayer.</textarea>") {
			t.Errorf("%s=%q: the typed message is lost", tc.field, tc.value)
		}
		if tc.field != "department" && !strings.Contains(p.body, `<option value="soporte" selected>`) {
			t.Errorf("%s=%q: the chosen department is lost", tc.field, tc.value)
		}
		if tc.field != "priority" && !strings.Contains(p.body, `<option value="high" selected>`) {
			t.Errorf("%s=%q: the chosen priority is lost", tc.field, tc.value)
		}
	}
	if n := s.count(t, `SELECT count(*) FROM tickets WHERE source = 'web'`); n != 0 {
		t.Errorf("%d tickets made of invalid forms", n)
	}
}

func TestSubmitFileLimits(t *testing.T) {
	s := newSite(t, Options{MaxAttachments: 2, MaxAttachmentBytes: 1000, MaxUploadBytes: 8000})
	v := s.visitor(t)
	v.header.Set("Accept-Language", "en")
	small := file{"a.txt", bytes.Repeat([]byte("a"), 900)}
	for _, tc := range []struct {
		name     string
		fields   map[string]string
		files    []file
		wantText string
	}{
		{"three files", validTicket(), []file{small, small, small}, "You can attach at most 2 files."},
		{"one file too large", validTicket(), []file{small, {"big.bin", bytes.Repeat([]byte("b"), 1001)}}, "“big.bin” is larger than 1000 B"},
		{"too much in all", func() map[string]string {
			f := validTicket()
			f["message"] = strings.Repeat("long text ", 800)
			return f
		}(), []file{small}, "The files add up to more than 8 KB."},
	} {
		p := v.postMultipart("/submit", tc.fields, tc.files...)
		if p.status != http.StatusRequestEntityTooLarge {
			t.Errorf("%s: %d, want 413", tc.name, p.status)
			continue
		}
		if !p.has("error-attachments") || !strings.Contains(p.body, tc.wantText) {
			t.Errorf("%s: no error next to the files saying %q", tc.name, tc.wantText)
		}
		if !strings.Contains(p.body, `value="Error al iniciar sesión"`) || !strings.Contains(p.body, "choose them again") {
			t.Errorf("%s: typed values lost, or no word that files must be chosen again", tc.name)
		}
	}
	if p := v.get("/submit"); !strings.Contains(p.body, "Up to 2 files of at most 1000 B each, 8 KB in all") {
		t.Error("the form does not show the configured limits")
	}
	if n := s.count(t, `SELECT count(*) FROM tickets WHERE source = 'web'`); n != 0 {
		t.Errorf("%d tickets made of forms over the limits", n)
	}
	// Within the limits it goes through.
	if p := v.postMultipart("/submit", validTicket(), small, small); p.status != http.StatusSeeOther {
		t.Errorf("two files within the limits: %d", p.status)
	}
}

// A body far beyond the limit is refused at once; the client reads the 413
// before the connection closes.
func TestHugeBodyIsRefusedWithAnAnswer(t *testing.T) {
	s := newSite(t, Options{MaxUploadBytes: 8000})
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /submit HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: %d\r\n\r\n--b\r\n", 1<<30)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "demasiado grande") || !resp.Close {
		t.Errorf("1 GiB announced: %d close=%v\n%s", resp.StatusCode, resp.Close, b)
	}
	// A lookup form is small: a large one gets the same answer.
	v := s.visitor(t)
	if p := v.post("/lookup", url.Values{"email": {strings.Repeat("x", 100<<10)}}); p.status != http.StatusRequestEntityTooLarge {
		t.Errorf("100 KiB lookup form: %d, want 413", p.status)
	}
}

func TestSubmitRateLimit(t *testing.T) {
	s := newSite(t, Options{SubmitRate: 2})
	v := s.visitor(t)
	// Forms with mistakes do not count.
	bad := validTicket()
	bad["email"] = "nope"
	for range 3 {
		v.postMultipart("/submit", bad)
	}
	for i, want := range []int{303, 303, 429} {
		p := v.postMultipart("/submit", validTicket())
		if p.status != want {
			t.Errorf("submission %d: %d, want %d", i+1, p.status, want)
		}
		if want == 429 && (!strings.Contains(p.body, "Sale un error 500") || !p.has("error-form")) {
			t.Error("the limited submission lost what was typed or says nothing")
		}
	}
}

func TestLookup(t *testing.T) {
	s := newSite(t, Options{})
	v := s.visitor(t)
	if p := v.get("/lookup?tracking_id=ABC"); !strings.Contains(p.body, `value="ABC"`) || !p.has("forgot-link") || !p.has("lookup") {
		t.Error("lookup form lacks the given ID, the forgot link or the button")
	}
	messy := "  " + strings.ToLower(strings.ReplaceAll(s.ticket.TrackingID, "-", " ")) + " "
	p := v.post("/lookup", url.Values{"tracking_id": {messy}, "email": {"ZOE@Example.org"}})
	if p.status != http.StatusSeeOther || p.location() != "/ticket/"+s.ticket.TrackingID {
		t.Fatalf("lookup of %q: %d to %q", messy, p.status, p.location())
	}
	if c := p.header.Get("Set-Cookie"); !strings.Contains(c, sessionCookie) || !strings.Contains(c, "HttpOnly") {
		t.Errorf("lookup cookie %q", c)
	}
	if p := v.get(p.location()); p.status != 200 || !strings.Contains(p.body, "I was charged twice.") {
		t.Errorf("ticket page after lookup: %d", p.status)
	}

	// Wrong ID and wrong address read the same.
	fail := func(id, email string) page {
		p := s.visitor(t).post("/lookup", url.Values{"tracking_id": {id}, "email": {email}})
		p.body = strings.ReplaceAll(strings.ReplaceAll(p.body, id, "ID"), email, "EMAIL")
		return p
	}
	wrongID := fail(s.other.TrackingID, "zoe@example.org")
	wrongEmail := fail(s.ticket.TrackingID, "max@example.net")
	malformed := fail("nonsense", "zoe@example.org")
	if wrongID.status != http.StatusUnprocessableEntity || !wrongID.has("error-form") || !strings.Contains(wrongID.body, "No encontramos ningún ticket") {
		t.Errorf("wrong ID: %d\n%s", wrongID.status, wrongID.body)
	}
	if wrongID.status != wrongEmail.status || wrongID.body != wrongEmail.body || wrongID.body != malformed.body {
		t.Error("a wrong ID, a wrong address and a malformed ID read differently")
	}
	if !strings.Contains(wrongID.body, `value="ID"`) || !strings.Contains(wrongID.body, `value="EMAIL"`) {
		t.Error("the typed values are not kept")
	}
	if p := s.visitor(t).post("/lookup", url.Values{"tracking_id": {""}, "email": {""}}); !p.has("error-tracking_id") || !p.has("error-email") {
		t.Error("empty fields are not marked")
	}
}

func TestLookupRateLimits(t *testing.T) {
	s := newSite(t, Options{LookupRate: 3, LookupRatePerTicket: 4, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	from := func(client string) *visitor {
		v := s.visitor(t)
		v.header.Set("X-Forwarded-For", client)
		return v
	}
	try := func(v *visitor, id, email string) int {
		return v.post("/lookup", url.Values{"tracking_id": {id}, "email": {email}}).status
	}
	// Per client: three failures, then even the right pair waits.
	a := from("198.51.100.1")
	for i := range 3 {
		if code := try(a, fmt.Sprintf("AAA-AAA-AAA%d", i+1), "x@example.org"); code != 422 {
			t.Errorf("failure %d: %d", i+1, code)
		}
	}
	if code := try(a, s.ticket.TrackingID, "zoe@example.org"); code != 429 {
		t.Errorf("client past its failures: %d, want 429", code)
	}
	// A success does not count.
	b := from("198.51.100.2")
	for range 5 {
		if code := try(b, s.ticket.TrackingID, "zoe@example.org"); code != 303 {
			t.Fatalf("right pair: %d", code)
		}
	}
	// Per tracking ID: guesses of the address from many clients.
	for i := range 4 {
		if code := try(from(fmt.Sprintf("203.0.113.%d", i+1)), s.other.TrackingID, fmt.Sprintf("guess%d@example.net", i)); code != 422 {
			t.Errorf("guess %d: %d", i+1, code)
		}
	}
	if code := try(from("203.0.113.50"), s.other.TrackingID, "max@example.net"); code != 429 {
		t.Errorf("a fresh client on a guessed-at ID: %d, want 429", code)
	}
	p := from("203.0.113.51").post("/lookup", url.Values{"tracking_id": {strings.ToLower(s.other.TrackingID)}, "email": {"max@example.net"}})
	if p.status != 429 || !p.has("error-form") || p.header.Get("Retry-After") == "" {
		t.Errorf("the same ID typed otherwise: %d, want 429 with a reason", p.status)
	}
	if code := try(from("203.0.113.52"), s.ticket.TrackingID, "zoe@example.org"); code != 303 {
		t.Errorf("another ID from a fresh client: %d, want 303", code)
	}
}

func TestForgotTrackingID(t *testing.T) {
	s := newSite(t, Options{ForgotRate: 3})
	reminders := func() int {
		s.handler.Wait() // the reminder is queued after the answer
		return s.count(t, `SELECT count(*) FROM outbox WHERE kind = 'reminder'`)
	}
	v := s.visitor(t)
	if p := v.get("/forgot"); p.status != 200 || !p.has("forgot") || !strings.Contains(p.body, `name="email"`) {
		t.Fatalf("forgot form: %d", p.status)
	}
	known := v.post("/forgot", url.Values{"email": {"Zoe@Example.org"}})
	if known.status != 200 || !known.has("forgot-sent") {
		t.Fatalf("forgot: %d\n%s", known.status, known.body)
	}
	if reminders() != 1 {
		t.Fatalf("%d reminders queued, want 1", reminders())
	}
	var recipient, locale string
	var listed int
	s.pool.QueryRow(context.Background(), `SELECT o.recipient, o.locale, (SELECT count(*) FROM outbox_tickets WHERE outbox_id = o.id)
		FROM outbox o WHERE kind = 'reminder'`).Scan(&recipient, &locale, &listed)
	if recipient != "zoe@example.org" || listed != 1 || locale != "en" {
		t.Errorf("reminder to %q in %q listing %d tickets; want zoe@example.org, en (the ticket's), 1", recipient, locale, listed)
	}
	unknown := v.post("/forgot", url.Values{"email": {"nobody@example.org"}})
	again := v.post("/forgot", url.Values{"email": {"zoe@example.org"}})
	if reminders() != 1 {
		t.Errorf("%d reminders after an unknown address and a repeat, want still 1", reminders())
	}
	norm := func(p page, email string) string { return strings.ReplaceAll(p.body, email, "EMAIL") }
	if unknown.status != known.status || norm(unknown, "nobody@example.org") != norm(known, "Zoe@example.org") ||
		norm(again, "zoe@example.org") != norm(known, "Zoe@example.org") {
		t.Error("the page differs between an address with tickets, one without and a repeat")
	}
	if p := v.post("/forgot", url.Values{"email": {"not an address"}}); p.status != 422 || !p.has("error-email") || !strings.Contains(p.body, `value="not an address"`) {
		t.Errorf("bad address: %d", p.status)
	}
	// Per client.
	if p := v.post("/forgot", url.Values{"email": {"max@example.net"}}); p.status != 429 || !p.has("error-form") {
		t.Errorf("fourth request from one client: %d, want 429", p.status)
	}
}

func TestCrossOriginPostsAreRefused(t *testing.T) {
	s := newSite(t, Options{})
	v := s.visitor(t)
	v.open(s.token)
	post := func(path string, header map[string]string) int {
		req, _ := http.NewRequest("POST", s.srv.URL+path, strings.NewReader(""))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, val := range header {
			req.Header.Set(k, val)
		}
		return v.do(req).status
	}
	resolve := "/ticket/" + s.ticket.TrackingID + "/resolve"
	if code := post(resolve, map[string]string{"Sec-Fetch-Site": "cross-site"}); code != 403 {
		t.Errorf("cross-site resolve: %d, want 403", code)
	}
	if code := post(resolve, map[string]string{"Origin": "https://evil.example"}); code != 403 {
		t.Errorf("resolve from another origin: %d, want 403", code)
	}
	if code := post("/lookup", map[string]string{"Sec-Fetch-Site": "same-site"}); code != 403 {
		t.Errorf("lookup from a sibling site: %d, want 403", code)
	}
	// Every route that changes something.
	ticket := "/ticket/" + s.ticket.TrackingID
	staff := "/staff/tickets/" + s.ticket.TrackingID
	for _, path := range []string{"/submit", "/lookup", "/forgot", ticket + "/reply", ticket + "/resolve", ticket + "/reopen",
		ticket + "/drafts/1/post", ticket + "/drafts/1/discard", ticket + "/solved-by", "/kb/suggest/shown",
		"/kb/support/es/some-article/helpful", "/staff/kb", "/staff/kb/1", "/staff/kb/1/delete",
		"/staff/login", "/staff/logout", staff + "/answer", staff + "/update",
		"/staff/admin/departments", "/staff/admin/departments/1", "/staff/admin/mailboxes/billing",
		"/staff/admin/agents", "/staff/admin/agents/1", "/staff/admin/agents/1/password",
		"/staff/admin/canned", "/staff/admin/canned/1", "/staff/admin/canned/1/delete"} {
		if code := post(path, map[string]string{"Sec-Fetch-Site": "cross-site"}); code != 403 {
			t.Errorf("cross-site POST %s: %d, want 403", path, code)
		}
	}
	if n := s.count(t, `SELECT count(*) FROM tickets WHERE status = 'resolved'`); n != 0 {
		t.Error("a cross-origin post resolved the ticket")
	}
	if code := post(resolve, map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": s.srv.URL}); code != 303 {
		t.Errorf("same-origin resolve: %d, want 303", code)
	}
	// Behind a proxy that changes Host, the base URL's origin is trusted.
	tmpl, _ := templates.Load()
	h := New(Options{Store: s.store, Templates: tmpl, BaseURL: "https://help.example.com"})
	req := httptest.NewRequest("POST", "/lookup", strings.NewReader("tracking_id=x&email=y"))
	req.Host = "10.0.0.5:8080"
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://help.example.com") // a browser without Sec-Fetch-Site
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 422 {
		t.Errorf("post from the base URL's origin: %d, want 422 (taken, and the pair unknown)", rec.Code)
	}
}

// Every way through an upload gives its slot back: far more forms than
// there are slots, refused or accepted, never meet a busy server. A text
// field too long is that field's error (422), not a refusal of the files.
func TestUploadSlotsAreGivenBack(t *testing.T) {
	s := newSite(t, Options{MaxAttachments: 1, MaxAttachmentBytes: 1000, MaxUploadBytes: 100_000})
	v := s.visitor(t)
	small := file{"a.txt", []byte("a")}
	tooLong := validTicket()
	tooLong["name"] = strings.Repeat("ñ", 5000)
	for i := range 2 * maxUploads {
		var p page
		switch i % 3 {
		case 0:
			p = v.postMultipart("/submit", validTicket(), small, small) // too many files
		case 1:
			p = v.postMultipart("/submit", tooLong, small)
			if p.status == http.StatusUnprocessableEntity && !p.has("error-name") {
				t.Fatalf("form %d: no error next to the name", i)
			}
		default:
			bad := validTicket()
			bad["email"] = "not an address"
			p = v.postMultipart("/submit", bad, small)
		}
		if p.status == http.StatusServiceUnavailable {
			t.Fatalf("form %d: server busy: an upload slot was not given back", i)
		}
		if want := []int{http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity, http.StatusUnprocessableEntity}[i%3]; p.status != want {
			t.Fatalf("form %d: %d, want %d", i, p.status, want)
		}
	}
}
