package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"html"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"golang.org/x/time/rate"

	"github.com/helpdeskgw/helpdesk/templates"
	"github.com/helpdeskgw/helpdesk/tickets"
)

const staffPassword = "correct horse battery"

// staffSite is the site with staff: ana works Billing (where the site's
// two tickets are), beto works Soporte Técnico, root is an admin. Soporte
// has one ticket of its own, mailed in.
type staffSite struct {
	*site
	ana, beto, root tickets.Agent
	soporteTicket   tickets.Ticket
	soporteInbound  int64
}

func newStaffSite(t *testing.T, opts Options) *staffSite {
	t.Helper()
	ss := &staffSite{site: newSite(t, opts)}
	ctx := context.Background()
	// The accounts share one password hash, made once: a hash takes long
	// on purpose, and making accounts is the store's to test.
	hash, err := tickets.HashPassword(staffPassword)
	if err != nil {
		t.Fatal(err)
	}
	add := func(email, name string, role tickets.Role, depts ...string) tickets.Agent {
		var id int64
		err := ss.pool.QueryRow(ctx, `INSERT INTO agents (email, name, role, password_hash) VALUES ($1, $2, $3, $4) RETURNING id`,
			email, name, string(role), hash).Scan(&id)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ss.pool.Exec(ctx, `INSERT INTO agent_departments (agent_id, department_id) SELECT $1, id FROM departments WHERE slug = ANY($2)`, id, depts); err != nil {
			t.Fatal(err)
		}
		a, err := ss.store.Agent(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	ss.ana = add("ana@example.com", "Ana Agente", tickets.RoleAgent, "billing")
	ss.beto = add("beto@example.com", "Beto Soporte", tickets.RoleAgent, "soporte")
	ss.root = add("root@example.com", "Root Admin", tickets.RoleAdmin)
	res, err := ss.store.IngestMail(ctx, &tickets.InboundMail{
		Source: "smtp", Department: ss.soporte, MessageID: "s1@example.es", From: tickets.Address{Name: "Luis", Email: "luis@example.es"},
		Subject: "Problema con la factura de marzo", Text: "No encuentro la factura en mi cuenta.",
		Raw:         tickets.BytesContent([]byte("raw s1@example.es")),
		Attachments: []tickets.InboundAttachment{{Filename: "captura.png", ContentType: "image/png", Content: tickets.BytesContent([]byte("png of soporte"))}},
		Auth:        tickets.Auth{SPF: "pass", DKIM: "none", DMARC: "fail"},
	})
	if err != nil || res.Disposition != tickets.DispositionTicket {
		t.Fatalf("soporte ticket: %+v %v", res, err)
	}
	if ss.soporteTicket, err = ss.store.Ticket(ctx, res.TicketID); err != nil {
		t.Fatal(err)
	}
	ss.soporteInbound = res.InboundID
	return ss
}

// login logs a staff member in and returns their browser.
func (ss *staffSite) login(t *testing.T, email string) *visitor {
	t.Helper()
	v := ss.visitor(t)
	if p := v.post("/staff/login", url.Values{"email": {email}, "password": {staffPassword}}); p.status != http.StatusSeeOther {
		t.Fatalf("login as %s: %d\n%s", email, p.status, p.body)
	}
	return v
}

// as gives a browser a session of the agent without the password check,
// which is slow on purpose: for tests of what comes after the login. The
// store keeps a session by the SHA-256 of its ID.
func (ss *staffSite) as(t *testing.T, a tickets.Agent) *visitor {
	t.Helper()
	raw := sha256.Sum256(fmt.Appendf(nil, "session of agent %d", a.ID))
	id := base64.RawURLEncoding.EncodeToString(raw[:])
	sum := sha256.Sum256([]byte(id))
	if _, err := ss.pool.Exec(context.Background(), `INSERT INTO staff_sessions (hash, agent_id, expires_at) VALUES ($1, $2, now() + interval '1 hour')
		ON CONFLICT (hash) DO NOTHING`, sum[:], a.ID); err != nil {
		t.Fatal(err)
	}
	v := ss.visitor(t)
	u, _ := url.Parse(ss.srv.URL + "/staff")
	v.client.Jar.SetCookies(u, []*http.Cookie{{Name: staffCookie, Value: id, Path: "/staff"}})
	return v
}

// inboundOf is the ID of the mail that opened a ticket.
func (ss *staffSite) inboundOf(t *testing.T, ticketID int64) int64 {
	t.Helper()
	mails, err := ss.store.InboundOfTicket(context.Background(), ticketID)
	if err != nil || len(mails) == 0 {
		t.Fatalf("mail of ticket %d: %v %v", ticketID, mails, err)
	}
	return mails[0].ID
}

// postForm sends a multipart form as the answer form does: fields, then
// files (an empty file field when there are none).
func (v *visitor) postForm(path string, fields map[string]string, files ...file) page {
	v.t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		mw.WriteField(k, fields[k])
	}
	for _, f := range files {
		w, err := mw.CreateFormFile("attachments", f.name)
		if err != nil {
			v.t.Fatal(err)
		}
		w.Write(f.data)
	}
	if len(files) == 0 {
		mw.CreateFormFile("attachments", "")
	}
	mw.Close()
	req, err := http.NewRequest("POST", v.site.srv.URL+path, &b)
	if err != nil {
		v.t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return v.do(req)
}

// queueRows are the tracking IDs a queue page lists, in order.
func queueRows(body string) []string {
	var ids []string
	for _, m := range regexp.MustCompile(`<tr id="row-([A-Z0-9-]+)"`).FindAllStringSubmatch(body, -1) {
		ids = append(ids, m[1])
	}
	return ids
}

func TestStaffNextIsAStaffPathOfThisSite(t *testing.T) {
	for _, tc := range []struct{ next, want string }{
		{"", "/staff"},
		{"/staff", "/staff"},
		{"/staff?status=all&q=x", "/staff?status=all&q=x"},
		{"/staff/tickets/ABD-BDE-GHJL", "/staff/tickets/ABD-BDE-GHJL"},
		{"/staff/login", "/staff"},
		{"/staffing", "/staff"},
		{"/ticket/ABD-BDE-GHJL", "/staff"},
		{"/staff/../ticket/x", "/staff"},
		{"/staff/%2e%2e/x", "/staff"},
		{"//evil.example/staff", "/staff"},
		{"https://evil.example/staff", "/staff"},
		{`/\evil.example/staff`, "/staff"},
		{"/staff/\\..\\x", "/staff"},
	} {
		t.Run(tc.next, func(t *testing.T) {
			if got := staffNext(tc.next); got != tc.want {
				t.Errorf("staffNext(%q) = %q, want %q", tc.next, got, tc.want)
			}
		})
	}
}

func TestStaffLogin(t *testing.T) {
	ss := newStaffSite(t, Options{})
	wrongText := ""
	for _, tc := range []struct {
		name, email, password, next string
		status                      int
		to                          string
	}{
		{"right password", "ana@example.com", staffPassword, "", http.StatusSeeOther, "/staff"},
		{"address in another case", " ANA@Example.com", staffPassword, "", http.StatusSeeOther, "/staff"},
		{"back to the page asked for", "ana@example.com", staffPassword, "/staff/tickets/" + ss.ticket.TrackingID, http.StatusSeeOther, "/staff/tickets/" + ss.ticket.TrackingID},
		{"never to another site", "ana@example.com", staffPassword, "https://evil.example/", http.StatusSeeOther, "/staff"},
		{"wrong password", "ana@example.com", "not the password", "", http.StatusUnprocessableEntity, ""},
		{"unknown address", "nobody@example.com", staffPassword, "", http.StatusUnprocessableEntity, ""},
		{"no password", "ana@example.com", "", "", http.StatusUnprocessableEntity, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := ss.visitor(t)
			v.header.Set("Accept-Language", "en")
			p := v.post("/staff/login", url.Values{"email": {tc.email}, "password": {tc.password}, "next": {tc.next}})
			if p.status != tc.status || p.location() != tc.to {
				t.Fatalf("login: %d to %q, want %d to %q\n%s", p.status, p.location(), tc.status, tc.to, p.body)
			}
			cookie := p.header.Get("Set-Cookie")
			if tc.status != http.StatusSeeOther {
				if strings.Contains(cookie, staffCookie) {
					t.Errorf("a failed login set %q", cookie)
				}
				if !strings.Contains(p.body, tc.email) && strings.TrimSpace(tc.email) != "" {
					t.Errorf("the address typed is not kept")
				}
				if strings.Contains(p.body, tc.password) && tc.password != "" {
					t.Errorf("the password typed came back in the page")
				}
				if tc.password == "" {
					if !p.has("error-password") {
						t.Error("no error next to the empty password")
					}
					return
				}
				// Wrong address and wrong password read the same.
				m := regexp.MustCompile(`id="error-form">([^<]*)<`).FindStringSubmatch(p.body)
				if m == nil || !strings.Contains(m[1], "Wrong email or password") {
					t.Fatalf("no neutral message:\n%s", p.body)
				}
				if wrongText != "" && m[1] != wrongText {
					t.Errorf("message %q differs from %q", m[1], wrongText)
				}
				wrongText = m[1]
				return
			}
			for _, want := range []string{staffCookie + "=", "Path=/staff", "HttpOnly", "SameSite=Strict"} {
				if !strings.Contains(cookie, want) {
					t.Errorf("staff cookie %q lacks %s", cookie, want)
				}
			}
			if strings.Contains(cookie, "Max-Age") || strings.Contains(cookie, "Secure") {
				t.Errorf("staff cookie %q over plain HTTP: want neither a lifetime past the browser's nor Secure", cookie)
			}
			q := v.get("/staff")
			if q.status != 200 || !strings.Contains(q.body, "Ana Agente") || !q.has("logout") {
				t.Errorf("queue after login: %d", q.status)
			}
		})
	}
	// The customer's session is not the staff's.
	v := ss.visitor(t)
	v.open(ss.token)
	if p := v.get("/staff"); p.status != http.StatusSeeOther {
		t.Errorf("the staff queue with a customer's session: %d, want 303 to the login", p.status)
	}
}

func TestStaffLockoutAfterFiveFailures(t *testing.T) {
	ss := newStaffSite(t, Options{})
	v := ss.visitor(t)
	for i := range 5 {
		if p := v.post("/staff/login", url.Values{"email": {"beto@example.com"}, "password": {"guess number " + fmt.Sprint(i)}}); p.status != http.StatusUnprocessableEntity {
			t.Fatalf("failure %d: %d", i+1, p.status)
		}
	}
	p := v.post("/staff/login", url.Values{"email": {"beto@example.com"}, "password": {staffPassword}})
	if p.status != http.StatusForbidden || !strings.Contains(p.body, "bloqueada") || strings.Contains(p.header.Get("Set-Cookie"), staffCookie) {
		t.Errorf("right password after five failures: %d, want 403 saying the account is locked\n%s", p.status, p.body)
	}
	// Another account is not affected.
	ss.login(t, "ana@example.com")
}

func TestStaffDisabledAccount(t *testing.T) {
	ss := newStaffSite(t, Options{})
	v := ss.login(t, "beto@example.com")
	yes := true
	if err := ss.store.UpdateAgent(context.Background(), ss.root.Actor(), ss.beto.ID, tickets.AgentChange{Disabled: &yes}); err != nil {
		t.Fatal(err)
	}
	if p := v.get("/staff"); p.status != http.StatusSeeOther || !strings.HasPrefix(p.location(), "/staff/login") {
		t.Errorf("a disabled agent's session: %d to %q, want 303 to the login", p.status, p.location())
	}
	p := ss.visitor(t).post("/staff/login", url.Values{"email": {"beto@example.com"}, "password": {staffPassword}})
	if p.status != http.StatusForbidden || !strings.Contains(p.body, "bloqueada") {
		t.Errorf("a disabled agent logging in: %d\n%s", p.status, p.body)
	}
}

func TestStaffLoginFailuresAreLimitedPerClient(t *testing.T) {
	ss := newStaffSite(t, Options{})
	tmpl, err := templates.Load()
	if err != nil {
		t.Fatal(err)
	}
	// A budget of two, so that the test makes few slow password checks.
	h := New(Options{Store: ss.store, Templates: tmpl})
	h.staffLogins = newLimiter(rate.Limit(2.0/60), 2)
	login := func(remote, email, password string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", "/staff/login", strings.NewReader(url.Values{"email": {email}, "password": {password}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.RemoteAddr = remote
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	// Successes do not count.
	for range 3 {
		if rec := login("192.0.2.1:1000", "ana@example.com", staffPassword); rec.Code != http.StatusSeeOther {
			t.Fatalf("right password: %d", rec.Code)
		}
	}
	for i, email := range []string{"nobody@example.com", "ana@example.com"} {
		if rec := login("192.0.2.1:1000", email, "whatever it is"); rec.Code != http.StatusUnprocessableEntity {
			t.Fatalf("failure %d: %d", i+1, rec.Code)
		}
	}
	before := ss.count(t, `SELECT count(*) FROM staff_sessions`)
	rec := login("192.0.2.1:1000", "ana@example.com", staffPassword)
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" || !strings.Contains(rec.Body.String(), `id="error-form"`) {
		t.Errorf("a login past the client's failures: %d, want 429", rec.Code)
	}
	if n := ss.count(t, `SELECT count(*) FROM staff_sessions`); n != before {
		t.Errorf("%d sessions opened past the limit", n-before)
	}
	if rec := login("192.0.2.2:1000", "ana@example.com", staffPassword); rec.Code != http.StatusSeeOther {
		t.Errorf("another client: %d, want its own budget", rec.Code)
	}
}

func TestStaffPagesNeedASession(t *testing.T) {
	ss := newStaffSite(t, Options{})
	ticket := "/staff/tickets/" + ss.ticket.TrackingID
	att := fmt.Sprint(ticket, "/attachments/", ss.attachmentIDs(t, ss.ticket.ID)[0])
	raw := fmt.Sprintf("/staff/inbound/%d/raw", ss.inboundOf(t, ss.ticket.ID))
	v := ss.visitor(t)
	for _, path := range []string{"/staff", "/staff?status=all&q=x", ticket, att, raw, "/staff/admin"} {
		t.Run("GET "+path, func(t *testing.T) {
			p := v.get(path)
			if want := "/staff/login?next=" + url.QueryEscape(path); p.status != http.StatusSeeOther || p.location() != want {
				t.Errorf("%d to %q, want 303 to %q", p.status, p.location(), want)
			}
			if strings.Contains(p.body, "charged twice") || strings.Contains(p.body, "evil()") {
				t.Error("the answer shows the ticket")
			}
		})
	}
	for _, path := range []string{ticket + "/answer", ticket + "/update", "/staff/admin/departments", "/staff/admin/agents",
		"/staff/admin/agents/1", "/staff/admin/canned", "/staff/admin/mailboxes/billing"} {
		t.Run("POST "+path, func(t *testing.T) {
			p := v.post(path, url.Values{"message": {"x"}, "status": {"resolved"}, "name": {"x"}})
			if p.status != http.StatusSeeOther || p.location() != "/staff/login" {
				t.Errorf("%d to %q, want 303 to the login", p.status, p.location())
			}
		})
	}
	if n := ss.count(t, `SELECT count(*) FROM messages WHERE author_kind = 'agent'`); n != 0 {
		t.Errorf("%d answers without a session", n)
	}
	// Followed from another site (a webmail), a link comes without the
	// SameSite=Strict cookie: a page of ours leads on, so that it does.
	req, _ := http.NewRequest("GET", ss.srv.URL+ticket, nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	p := ss.visitor(t).do(req)
	if p.status != 200 || !strings.Contains(p.body, `href="`+ticket+`"`) || !p.has("continue") || strings.Contains(p.body, "charged twice") {
		t.Errorf("a link from another site: %d\n%s", p.status, p.body)
	}
	login, _ := url.Parse(ss.srv.URL + "/staff/login?next=" + url.QueryEscape(ticket))
	v = ss.visitor(t)
	if p := v.get(login.RequestURI()); p.status != 200 || !strings.Contains(p.body, `name="next" value="`+ticket+`"`) {
		t.Errorf("login page: %d, want the page to come back to in the form", p.status)
	}
}

func TestStaffLogout(t *testing.T) {
	ss := newStaffSite(t, Options{})
	v := ss.login(t, "ana@example.com")
	u, _ := url.Parse(ss.srv.URL + "/staff")
	var session string
	for _, c := range v.client.Jar.Cookies(u) {
		if c.Name == staffCookie {
			session = c.Value
		}
	}
	if session == "" {
		t.Fatal("no staff cookie after login")
	}
	p := v.post("/staff/logout", nil)
	if p.status != http.StatusSeeOther || p.location() != "/staff/login?notice=logged_out" {
		t.Fatalf("logout: %d to %q", p.status, p.location())
	}
	if c := p.header.Get("Set-Cookie"); !strings.Contains(c, staffCookie+"=;") || !strings.Contains(c, "Max-Age=0") {
		t.Errorf("logout cookie %q: want it dropped", c)
	}
	if p := v.get(p.location()); !p.has("notice") {
		t.Error("the login page does not say the logout happened")
	}
	// The session is gone on the server, not only in the browser.
	req := httptest.NewRequest("GET", "/staff", nil)
	req.AddCookie(&http.Cookie{Name: staffCookie, Value: session})
	rec := httptest.NewRecorder()
	ss.handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusSeeOther {
		t.Errorf("the session after logout: %d, want 303 to the login", rec.Code)
	}
}

func TestStaffCookieBehindHTTPS(t *testing.T) {
	ss := newStaffSite(t, Options{})
	tmpl, err := templates.Load()
	if err != nil {
		t.Fatal(err)
	}
	h := New(Options{Store: ss.store, Templates: tmpl, BaseURL: "https://help.example.com"})
	req := httptest.NewRequest("POST", "/staff/login", strings.NewReader(url.Values{"email": {"ana@example.com"}, "password": {staffPassword}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	c := rec.Header().Get("Set-Cookie")
	if rec.Code != http.StatusSeeOther || !strings.HasPrefix(c, secureStaffCookie+"=") {
		t.Fatalf("login over HTTPS: %d, cookie %q", rec.Code, c)
	}
	for _, want := range []string{"Path=/;", "Secure", "HttpOnly", "SameSite=Strict"} {
		if !strings.Contains(c, want) {
			t.Errorf("cookie %q lacks %s", c, want)
		}
	}
	id := strings.TrimPrefix(strings.SplitN(c, ";", 2)[0], secureStaffCookie+"=")
	req = httptest.NewRequest("GET", "/staff", nil)
	req.AddCookie(&http.Cookie{Name: secureStaffCookie, Value: id})
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Errorf("queue with the __Host- cookie: %d", rec.Code)
	}
}

func TestStaffDepartmentsAreWalled(t *testing.T) {
	ss := newStaffSite(t, Options{})
	beto := ss.as(t, ss.beto) // Soporte; the site's tickets are Billing's
	billing := "/staff/tickets/" + ss.ticket.TrackingID
	attID := ss.attachmentIDs(t, ss.ticket.ID)[0]
	raw := fmt.Sprintf("/staff/inbound/%d/raw", ss.inboundOf(t, ss.ticket.ID))
	for _, tc := range []struct {
		name string
		do   func() page
	}{
		{"read the ticket", func() page { return beto.get(billing) }},
		{"read it by another spelling", func() page { return beto.get("/staff/tickets/" + strings.ToLower(ss.ticket.TrackingID)) }},
		{"download its attachment", func() page { return beto.get(fmt.Sprint(billing, "/attachments/", attID)) }},
		{"download its attachment under his own ticket", func() page {
			return beto.get(fmt.Sprint("/staff/tickets/", ss.soporteTicket.TrackingID, "/attachments/", attID))
		}},
		{"download its mail's raw source", func() page { return beto.get(raw) }},
		{"answer it", func() page { return beto.postForm(billing+"/answer", map[string]string{"message": "mine now"}) }},
		{"change it", func() page {
			return beto.post(billing+"/update", url.Values{"status": {"resolved"}, "department": {fmt.Sprint(ss.soporte.ID)}})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.do()
			if p.status != http.StatusNotFound {
				t.Errorf("%d, want 404", p.status)
			}
			for _, secret := range []string{"charged twice", "evil()", "raw a@example.org", ss.ticket.CustomerEmail} {
				if strings.Contains(p.body, secret) {
					t.Errorf("the answer shows %q", secret)
				}
			}
		})
	}
	for _, q := range []string{ss.ticket.TrackingID, "zoe@example.org", "charged", "refund"} {
		t.Run("search "+q, func(t *testing.T) {
			p := beto.get("/staff?status=all&q=" + url.QueryEscape(q))
			if rows := queueRows(p.body); p.status != 200 || len(rows) != 0 {
				t.Errorf("found %v", rows)
			}
		})
	}
	if rows := queueRows(beto.get("/staff?status=all").body); !slices.Equal(rows, []string{ss.soporteTicket.TrackingID}) {
		t.Errorf("his queue: %v, want his department's ticket only", rows)
	}
	// A department that is not his, asked for by ID, shows nothing more.
	if rows := queueRows(beto.get(fmt.Sprint("/staff?status=all&department=", ss.billing.ID)).body); slices.Contains(rows, ss.ticket.TrackingID) {
		t.Errorf("his queue filtered to Billing: %v", rows)
	}
	if n := ss.count(t, `SELECT count(*) FROM messages WHERE ticket_id = $1`, ss.ticket.ID); n != 1 {
		t.Errorf("the ticket has %d messages, want its own 1", n)
	}
	if n := ss.count(t, `SELECT count(*) FROM tickets WHERE id = $1 AND status = 'new' AND department_id = $2`, ss.ticket.ID, ss.billing.ID); n != 1 {
		t.Error("the ticket changed")
	}
	// Its own agent and the admin do see it all.
	for _, who := range []string{"ana@example.com", "root@example.com"} {
		v := ss.login(t, who)
		for _, path := range []string{billing, fmt.Sprint(billing, "/attachments/", attID), raw} {
			if p := v.get(path); p.status != 200 {
				t.Errorf("%s GET %s: %d", who, path, p.status)
			}
		}
	}
}

func TestStaffQueueFiltersAndSearch(t *testing.T) {
	ss := newStaffSite(t, Options{})
	ctx := context.Background()
	// zoe's ticket: answered by ana, so no longer new, and assigned to her;
	// max's: high priority, waiting two days, so overdue; soporte's: new.
	if _, err := ss.store.AnswerTicket(ctx, ss.ana, ss.ticket.ID, tickets.Answer{Text: "Your duplicate payment was reversed."}); err != nil {
		t.Fatal(err)
	}
	high := tickets.PriorityHigh
	if err := ss.store.UpdateTicket(ctx, ss.ana, ss.ticket.ID, tickets.TicketChange{AssigneeID: &ss.ana.ID}); err != nil {
		t.Fatal(err)
	}
	if err := ss.store.UpdateTicket(ctx, ss.ana, ss.other.ID, tickets.TicketChange{Priority: &high}); err != nil {
		t.Fatal(err)
	}
	if _, err := ss.pool.Exec(ctx, `UPDATE tickets SET updated_at = now() - interval '2 days' WHERE id = $1`, ss.other.ID); err != nil {
		t.Fatal(err)
	}
	resolved := tickets.StatusResolved
	if err := ss.store.UpdateTicket(ctx, ss.root, ss.soporteTicket.ID, tickets.TicketChange{Status: &resolved}); err != nil {
		t.Fatal(err)
	}
	zoe, max, luis := ss.ticket.TrackingID, ss.other.TrackingID, ss.soporteTicket.TrackingID
	root := ss.as(t, ss.root)
	for _, tc := range []struct {
		query string
		want  []string // latest activity first
	}{
		{"", []string{zoe, max}},
		{"status=open", []string{zoe, max}},
		{"status=all", []string{luis, zoe, max}},
		{"status=resolved", []string{luis}},
		{"status=replied", []string{zoe}},
		{"status=bogus", []string{zoe, max}},
		{"priority=high", []string{max}},
		{"priority=high&status=all", []string{max}},
		{fmt.Sprint("status=all&department=", ss.soporte.ID), []string{luis}},
		{fmt.Sprint("status=all&department=", ss.billing.ID), []string{zoe, max}},
		{"assignee=me", nil},
		{fmt.Sprint("assignee=", ss.ana.ID), []string{zoe}},
		{"assignee=none&status=all", []string{luis, max}},
		{"status=all&q=" + url.QueryEscape(strings.ToLower(strings.ReplaceAll(max, "-", ""))), []string{max}},
		{"status=all&q=luis%40example.es", []string{luis}},
		{"status=all&q=%40example.org", []string{zoe}},
		{"status=all&q=facturas", []string{luis}}, // Spanish stem: "factura"
		{"status=all&q=reversal", []string{zoe}},  // in the answer, English stem
		{"status=all&q=nothing+like+this", nil},
	} {
		t.Run(tc.query, func(t *testing.T) {
			p := root.get("/staff?" + tc.query)
			if p.status != 200 {
				t.Fatalf("%d", p.status)
			}
			if got := queueRows(p.body); !slices.Equal(got, tc.want) {
				t.Errorf("rows %v, want %v", got, tc.want)
			}
			if tc.want == nil && !p.has("queue-empty") {
				t.Error("an empty queue does not say so")
			}
		})
	}
	// The filters come back filled in, and the search box keeps the words.
	p := root.get("/staff?status=all&priority=high&q=" + url.QueryEscape(`"quoted" <words>`))
	for _, want := range []string{`<option value="all" selected>`, `<option value="high" selected>`, `value="&#34;quoted&#34; &lt;words&gt;"`} {
		if !strings.Contains(p.body, want) {
			t.Errorf("filtered page lacks %s", want)
		}
	}
	// New and overdue tickets stand out by a class and a word.
	root.header.Set("Accept-Language", "en")
	p = root.get("/staff?status=all")
	rowOf := func(id string) string {
		m := regexp.MustCompile(`(?s)<tr id="row-` + id + `" class="([^"]*)">(.*?)</tr>`).FindStringSubmatch(p.body)
		if m == nil {
			t.Fatalf("no row of %s", id)
		}
		return m[1] + "|" + m[2]
	}
	if r := rowOf(max); !strings.Contains(r, "is-overdue") || !strings.Contains(r, ">Overdue<") || !strings.Contains(r, "is-new") || !strings.Contains(r, ">New<") {
		t.Errorf("max's unanswered, overdue ticket: %s", r)
	}
	if r := rowOf(zoe); strings.Contains(r, "is-new") || strings.Contains(r, "is-overdue") || !strings.Contains(r, "Ana Agente") {
		t.Errorf("zoe's answered ticket: %s", r)
	}
	for _, want := range []string{"Refund &lt;b&gt;please&lt;/b&gt;", "zoe@example.org", "Billing", "Replied", "High"} {
		if !strings.Contains(p.body, want) {
			t.Errorf("queue lacks %q", want)
		}
	}
}

func TestStaffQueuePages(t *testing.T) {
	ss := newStaffSite(t, Options{})
	ctx := context.Background()
	for i := range 25 { // 27 billing tickets in all
		_, err := ss.store.IngestMail(ctx, &tickets.InboundMail{Source: "smtp", Department: ss.billing, MessageID: fmt.Sprintf("p%d@example.org", i),
			From: tickets.Address{Email: fmt.Sprintf("c%d@example.org", i)}, Subject: "Pregunta", Text: "hola", Raw: tickets.BytesContent(fmt.Appendf(nil, "raw %d", i))})
		if err != nil {
			t.Fatal(err)
		}
	}
	v := ss.as(t, ss.ana)
	first := v.get("/staff?priority=medium&q=%40example.")
	rows := queueRows(first.body)
	if len(rows) != queuePerPage || first.has("page-prev") || !first.has("page-next") || !strings.Contains(first.body, "27") {
		t.Fatalf("first page: %d rows, prev %v, next %v", len(rows), first.has("page-prev"), first.has("page-next"))
	}
	next := html.UnescapeString(regexp.MustCompile(`href="([^"]*)" rel="next"`).FindStringSubmatch(first.body)[1])
	u, _ := url.Parse(next)
	if q := u.Query(); u.Path != "/staff" || q.Get("page") != "2" || q.Get("priority") != "medium" || q.Get("q") != "@example." {
		t.Errorf("next page link %q loses the filters", next)
	}
	second := v.get(next)
	more := queueRows(second.body)
	if len(more) != 2 || !second.has("page-prev") || second.has("page-next") {
		t.Fatalf("second page: %d rows", len(more))
	}
	if slices.ContainsFunc(more, func(id string) bool { return slices.Contains(rows, id) }) {
		t.Error("the second page repeats the first")
	}
	prev := html.UnescapeString(regexp.MustCompile(`href="([^"]*)" rel="prev"`).FindStringSubmatch(second.body)[1])
	if u, _ := url.Parse(prev); u.Query().Get("page") != "" || u.Query().Get("q") != "@example." {
		t.Errorf("previous page link %q", prev)
	}
}

func TestStaffAnswer(t *testing.T) {
	ss := newStaffSite(t, Options{})
	v := ss.as(t, ss.ana)
	path := "/staff/tickets/" + ss.ticket.TrackingID
	p := v.postForm(path+"/answer", map[string]string{"message": "We refunded the second charge."}, file{"refund.pdf", []byte("%PDF refund")})
	if p.status != http.StatusSeeOther || p.location() != path+"?notice=answered" {
		t.Fatalf("answer: %d to %q\n%s", p.status, p.location(), p.body)
	}
	if p := v.get(p.location()); !p.has("notice") || !strings.Contains(p.body, "We refunded the second charge.") || !strings.Contains(p.body, "refund.pdf") {
		t.Errorf("ticket page after the answer: %d", p.status)
	}
	if n := ss.count(t, `SELECT count(*) FROM messages WHERE ticket_id = $1 AND author_kind = 'agent' AND agent_id = $2 AND NOT internal`, ss.ticket.ID, ss.ana.ID); n != 1 {
		t.Errorf("%d answers by ana", n)
	}
	if n := ss.count(t, `SELECT count(*) FROM outbox WHERE ticket_id = $1 AND kind = 'answer' AND recipient = 'zoe@example.org'`, ss.ticket.ID); n != 1 {
		t.Errorf("%d answer mails queued, want 1", n)
	}
	if n := ss.count(t, `SELECT count(*) FROM tickets WHERE id = $1 AND status = 'replied'`, ss.ticket.ID); n != 1 {
		t.Error("the answered ticket is not Replied")
	}
	if n := ss.count(t, `SELECT count(*) FROM attachments a JOIN messages m ON m.id = a.message_id WHERE m.ticket_id = $1 AND m.author_kind = 'agent' AND a.filename = 'refund.pdf'`, ss.ticket.ID); n != 1 {
		t.Error("the answer's file was not kept")
	}
	// The customer sees it.
	if p := ss.visitor(t).open(ss.token); !strings.Contains(p.body, "We refunded the second charge.") || !strings.Contains(p.body, "refund.pdf") {
		t.Error("the customer's page lacks the answer")
	}

	for _, tc := range []struct {
		name    string
		message string
		status  int
		errorID string
	}{
		{"empty", "  \n ", http.StatusUnprocessableEntity, "error-message"},
		{"too long", strings.Repeat("x", tickets.MaxMessageLength+1), http.StatusUnprocessableEntity, "error-message"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := v.postForm(path+"/answer", map[string]string{"message": tc.message, "internal": "1"})
			if p.status != tc.status || !p.has(tc.errorID) {
				t.Fatalf("%d, want %d with %s", p.status, tc.status, tc.errorID)
			}
			if strings.TrimSpace(tc.message) != "" && !strings.Contains(p.body, tc.message[:100]) {
				t.Error("the text typed is lost")
			}
			if !strings.Contains(p.body, `id="internal" name="internal" value="1" checked`) {
				t.Error("the internal-note box is not kept")
			}
		})
	}
	if n := ss.count(t, `SELECT count(*) FROM messages WHERE ticket_id = $1`, ss.ticket.ID); n != 2 {
		t.Errorf("%d messages after refused answers, want 2", n)
	}
	// Files over the limits are refused whole, the text kept.
	small := newStaffSite(t, Options{MaxAttachmentBytes: 10})
	v = small.as(t, small.ana)
	p = v.postForm("/staff/tickets/"+small.ticket.TrackingID+"/answer", map[string]string{"message": "see the file"}, file{"big.bin", make([]byte, 11)})
	if p.status != http.StatusRequestEntityTooLarge || !p.has("error-attachments") || !strings.Contains(p.body, "see the file") {
		t.Errorf("answer with a file too large: %d", p.status)
	}
}

func TestStaffInternalNote(t *testing.T) {
	ss := newStaffSite(t, Options{})
	v := ss.as(t, ss.ana)
	path := "/staff/tickets/" + ss.ticket.TrackingID
	p := v.postForm(path+"/answer", map[string]string{"message": "Customer is a reseller, check with sales.", "internal": "1"}, file{"notes.txt", []byte("internal notes file")})
	if p.status != http.StatusSeeOther || p.location() != path+"?notice=noted" {
		t.Fatalf("note: %d to %q\n%s", p.status, p.location(), p.body)
	}
	if n := ss.count(t, `SELECT count(*) FROM outbox WHERE ticket_id = $1 AND kind = 'answer'`, ss.ticket.ID); n != 0 {
		t.Errorf("%d answer mails for an internal note", n)
	}
	if n := ss.count(t, `SELECT count(*) FROM tickets WHERE id = $1 AND status = 'new'`, ss.ticket.ID); n != 1 {
		t.Error("an internal note changed the status")
	}
	v.header.Set("Accept-Language", "en")
	staffPage := v.get(path)
	note := regexp.MustCompile(`(?s)<article class="card msg agent internal" id="message-\d+">(.*?)</article>`).FindStringSubmatch(staffPage.body)
	if note == nil || !strings.Contains(note[1], "Internal note") || !strings.Contains(note[1], "reseller") {
		t.Fatalf("the staff page does not mark the note:\n%s", staffPage.body)
	}
	noteFile := regexp.MustCompile(`href="(` + path + `/attachments/\d+)" download>notes.txt`).FindStringSubmatch(note[1])
	if noteFile == nil {
		t.Fatal("the note's file is not linked")
	}
	if p := v.get(noteFile[1]); p.status != 200 || p.body != "internal notes file" {
		t.Errorf("staff download of the note's file: %d %q", p.status, p.body)
	}
	customer := ss.visitor(t)
	cp := customer.open(ss.token)
	if strings.Contains(cp.body, "reseller") || strings.Contains(cp.body, "notes.txt") {
		t.Error("the customer's page shows the internal note")
	}
	id := strings.TrimPrefix(noteFile[1], path+"/attachments/")
	if p := customer.get("/ticket/" + ss.ticket.TrackingID + "/attachments/" + id); p.status != 404 || strings.Contains(p.body, "internal notes") {
		t.Errorf("customer download of the note's file: %d", p.status)
	}
}

func TestStaffUpdate(t *testing.T) {
	ss := newStaffSite(t, Options{})
	ctx := context.Background()
	v := ss.as(t, ss.ana)
	path := "/staff/tickets/" + ss.ticket.TrackingID
	billing := fmt.Sprint(ss.billing.ID)
	was := url.Values{"was_status": {"new"}, "was_priority": {"medium"}, "was_department": {billing}, "was_assignee": {"0"}}
	form := func(status, priority, assignee string) url.Values {
		f := url.Values{"status": {status}, "priority": {priority}, "department": {billing}, "assignee": {assignee}}
		for k, val := range was {
			f[k] = val
		}
		return f
	}
	p := v.post(path+"/update", form("in_progress", "critical", fmt.Sprint(ss.ana.ID)))
	if p.status != http.StatusSeeOther || p.location() != path+"?notice=updated" {
		t.Fatalf("update: %d to %q\n%s", p.status, p.location(), p.body)
	}
	tk, err := ss.store.Ticket(ctx, ss.ticket.ID)
	if err != nil {
		t.Fatal(err)
	}
	if tk.Status != tickets.StatusInProgress || tk.Priority != tickets.PriorityCritical || tk.AssigneeID != ss.ana.ID {
		t.Errorf("ticket after the change: %s %s %d", tk.Status, tk.Priority, tk.AssigneeID)
	}
	history, err := ss.store.StaffHistory(ctx, ss.ticket.ID)
	if err != nil {
		t.Fatal(err)
	}
	var changes []string
	for _, h := range history {
		if h.Actor == ss.ana.Actor() {
			changes = append(changes, h.Action+":"+h.OldValue+">"+h.NewValue)
		}
	}
	if want := []string{"status:new>in_progress", "priority:medium>critical", fmt.Sprintf("assignee:0>%d", ss.ana.ID)}; !slices.Equal(changes, want) {
		t.Errorf("history %v, want %v", changes, want)
	}
	// The page names who did it and what it became, not IDs.
	v.header.Set("Accept-Language", "en")
	page := v.get(path)
	hist := regexp.MustCompile(`(?s)id="history".*`).FindString(page.body)
	for _, want := range []string{"Ana Agente", "New → In progress", "Medium → Critical", "Unassigned → Ana Agente", "zoe@example.org", "by mail"} {
		if !strings.Contains(hist, want) {
			t.Errorf("history on the page lacks %q", want)
		}
	}
	if strings.Contains(hist, "agent:") {
		t.Error("the history shows an actor's raw string")
	}

	// A form sent from a page shown before another change keeps that
	// change: only what this agent changed is applied.
	if _, err := ss.pool.Exec(ctx, `UPDATE tickets SET priority = 'low' WHERE id = $1`, ss.ticket.ID); err != nil {
		t.Fatal(err)
	}
	stale := url.Values{"status": {"on_hold"}, "priority": {"critical"}, "department": {billing}, "assignee": {fmt.Sprint(ss.ana.ID)},
		"was_status": {"in_progress"}, "was_priority": {"critical"}, "was_department": {billing}, "was_assignee": {fmt.Sprint(ss.ana.ID)}}
	if p := v.post(path+"/update", stale); p.status != http.StatusSeeOther {
		t.Fatalf("second update: %d", p.status)
	}
	if tk, _ := ss.store.Ticket(ctx, ss.ticket.ID); tk.Status != tickets.StatusOnHold || tk.Priority != tickets.PriorityLow {
		t.Errorf("after a change on a stale page: %s %s, want on_hold and the other's low", tk.Status, tk.Priority)
	}
	if p := v.post(path+"/update", url.Values{"status": {"on_hold"}, "priority": {"low"}, "department": {billing}, "assignee": {fmt.Sprint(ss.ana.ID)}}); p.location() != path+"?notice=unchanged" {
		t.Errorf("a form without changes: %d to %q", p.status, p.location())
	}

	before := ss.count(t, `SELECT count(*) FROM ticket_history WHERE ticket_id = $1`, ss.ticket.ID)
	for _, tc := range []struct {
		name  string
		form  url.Values
		field string
	}{
		{"an assignee of another department", url.Values{"assignee": {fmt.Sprint(ss.beto.ID)}, "was_assignee": {fmt.Sprint(ss.ana.ID)}}, "error-assignee"},
		{"a department that is not hers", url.Values{"department": {fmt.Sprint(ss.soporte.ID)}, "was_department": {billing}}, "error-department"},
		{"a status that does not exist", url.Values{"status": {"closed"}, "was_status": {"on_hold"}}, "error-status"},
		{"a priority that does not exist", url.Values{"priority": {"urgent"}, "was_priority": {"low"}}, "error-priority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := url.Values{"status": {"on_hold"}, "priority": {"low"}, "department": {billing}, "assignee": {fmt.Sprint(ss.ana.ID)}}
			for k, val := range tc.form {
				f[k] = val
			}
			p := v.post(path+"/update", f)
			if p.status != http.StatusUnprocessableEntity || !p.has(tc.field) {
				t.Errorf("%d, want 422 with %s", p.status, tc.field)
			}
		})
	}
	if after := ss.count(t, `SELECT count(*) FROM ticket_history WHERE ticket_id = $1`, ss.ticket.ID); after != before {
		t.Errorf("refused changes wrote %d history rows", after-before)
	}
	// An admin moves it to Soporte and gives it to beto in one go.
	root := ss.as(t, ss.root)
	p = root.post(path+"/update", url.Values{"status": {"on_hold"}, "priority": {"low"}, "department": {fmt.Sprint(ss.soporte.ID)}, "assignee": {fmt.Sprint(ss.beto.ID)}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("move: %d\n%s", p.status, p.body)
	}
	if p := v.get(path); p.status != 404 {
		t.Errorf("ana on a ticket moved out of her department: %d, want 404", p.status)
	}
	if p := ss.as(t, ss.beto).get(path); p.status != 200 || !strings.Contains(p.body, "Billing → Soporte Técnico") {
		t.Errorf("beto on the ticket moved to him: %d", p.status)
	}
}

func TestStaffCannedInsert(t *testing.T) {
	ss := newStaffSite(t, Options{})
	ctx := context.Background()
	hello, err := ss.store.SaveCanned(ctx, "test", tickets.Canned{DepartmentID: ss.billing.ID, Title: "Saludo", Body: "Hola {{customer_name}}, sobre {{tracking_id}}: {{link}}"})
	if err != nil {
		t.Fatal(err)
	}
	elsewhere, err := ss.store.SaveCanned(ctx, "test", tickets.Canned{DepartmentID: ss.soporte.ID, Title: "Soporte", Body: "Solo para soporte"})
	if err != nil {
		t.Fatal(err)
	}
	v := ss.as(t, ss.ana)
	path := "/staff/tickets/" + ss.ticket.TrackingID
	filled := "Hola Zoë, sobre " + ss.ticket.TrackingID + ": {{link}}"
	page := v.get(path)
	if !strings.Contains(page.body, fmt.Sprintf(`<option value="%d" data-text="%s">Saludo</option>`, hello, filled)) || strings.Contains(page.body, "Solo para soporte") {
		t.Errorf("canned options: want Billing's, filled in for the ticket, and not Soporte's")
	}
	if !strings.Contains(page.body, `data-canned-insert="canned"`) {
		t.Error("the insert button is not marked for the script")
	}
	p := v.postForm(path+"/answer", map[string]string{"message": "Gracias por escribir.\n", "canned": fmt.Sprint(hello), "action": "insert", "internal": "1"})
	if p.status != 200 {
		t.Fatalf("insert: %d\n%s", p.status, p.body)
	}
	if want := "Gracias por escribir.\n\n" + filled; !strings.Contains(html.UnescapeString(p.body), ">"+want+"</textarea>") {
		t.Errorf("the answer form lacks %q after the text typed", want)
	}
	if !strings.Contains(p.body, `id="internal" name="internal" value="1" checked`) {
		t.Error("the internal-note box is not kept")
	}
	if n := ss.count(t, `SELECT count(*) FROM messages WHERE ticket_id = $1`, ss.ticket.ID); n != 1 {
		t.Errorf("inserting a canned response added %d messages", n-1)
	}
	for _, canned := range []string{"", fmt.Sprint(elsewhere), "x"} {
		p := v.postForm(path+"/answer", map[string]string{"message": "kept", "canned": canned, "action": "insert"})
		if p.status != http.StatusUnprocessableEntity || !p.has("error-canned") || !strings.Contains(p.body, ">kept</textarea>") {
			t.Errorf("insert of %q: %d, want 422 with the text kept", canned, p.status)
		}
	}
}

func TestStaffTicketPageShowsTheMailAndTheRecord(t *testing.T) {
	ss := newStaffSite(t, Options{})
	ctx := context.Background()
	// A reply by mail held for zoe, then one past the ticket's limit,
	// quarantined; and mail to zoe has bounced.
	draft, _ := ss.heldDraft(t, "reply-1@example.org")
	strict := tickets.New(tickets.Options{Pool: ss.pool, Limits: tickets.Limits{RepliesPerTicket: 1}})
	out, err := ss.store.OutboxForTicket(ctx, ss.ticket.ID)
	if err != nil {
		t.Fatal(err)
	}
	q, err := strict.IngestMail(ctx, &tickets.InboundMail{Source: "smtp", Department: ss.billing, MessageID: "reply-2@example.org", InReplyTo: out[0].MessageID,
		From: tickets.Address{Email: "zoe@example.org"}, Subject: "Re: Refund", Text: "again", Raw: tickets.BytesContent([]byte("raw reply-2")),
		Auth: tickets.Auth{SPF: "softfail", DKIM: "pass", DMARC: "pass"}})
	if err != nil || q.Disposition != tickets.DispositionQuarantined {
		t.Fatalf("second reply: %+v %v, want quarantined", q, err)
	}
	if _, err := ss.pool.Exec(ctx, `INSERT INTO address_bounces (address, bounces, last_status, last_diagnostic) VALUES ('zoe@example.org', 3, '5.1.1', 'mailbox unknown')`); err != nil {
		t.Fatal(err)
	}
	v := ss.as(t, ss.ana)
	v.header.Set("Accept-Language", "en")
	path := "/staff/tickets/" + ss.ticket.TrackingID
	p := v.get(path)
	if p.status != 200 {
		t.Fatalf("ticket page: %d", p.status)
	}
	opening := ss.inboundOf(t, ss.ticket.ID)
	for _, want := range []string{
		`id="status">New<`, `id="priority" class="priority-medium">Medium<`, `id="assignee">Unassigned<`, "Zoë &lt;zoe@example.org&gt;", "Billing",
		"I was charged twice.", "&lt;script&gt;alert(1)&lt;/script&gt;",
		fmt.Sprintf(`href="/staff/inbound/%d/raw"`, opening), fmt.Sprintf(`href="/staff/inbound/%d/raw"`, q.InboundID),
		fmt.Sprintf(`id="draft-%d"`, draft.ID), "Waiting", "Nuevo texto", "captura.png",
		fmt.Sprintf(`id="mail-%d" class="disposition-quarantined"`, q.InboundID), "Quarantined", "more than 1 replies",
		`class="verdict v-softfail">softfail<`,
		`id="bouncing"`, "mailbox unknown", "5.1.1",
		"Reply by mail held", "Created",
	} {
		if !strings.Contains(p.body, want) {
			t.Errorf("staff ticket page lacks %q", want)
		}
	}
	if strings.Contains(p.body, "<script>alert") {
		t.Error("customer text reached the page unescaped")
	}
	if m := regexp.MustCompile(`<script>|<script [^>]*>[^<]|\son[a-z]+=|\sstyle=|<style`).FindString(p.body); m != "" {
		t.Errorf("inline code %q, which the CSP forbids", m)
	}
	// The quarantined reply's raw source is the ticket's: its agents may
	// read it, others not.
	raw := fmt.Sprintf("/staff/inbound/%d/raw", q.InboundID)
	r := v.get(raw)
	if r.status != 200 || r.body != "raw reply-2" {
		t.Fatalf("raw source: %d %q", r.status, r.body)
	}
	for key, want := range map[string]string{
		"Content-Type":            "text/plain; charset=utf-8",
		"Content-Disposition":     fmt.Sprintf(`attachment; filename=mail-%d.eml.txt`, q.InboundID),
		"X-Content-Type-Options":  "nosniff",
		"Content-Security-Policy": "default-src 'none'; sandbox",
	} {
		if got := r.header.Get(key); got != want {
			t.Errorf("raw source %s: %q, want %q", key, got, want)
		}
	}
	if p := ss.as(t, ss.beto).get(raw); p.status != 404 || strings.Contains(p.body, "reply-2") {
		t.Errorf("raw source to an agent of another department: %d", p.status)
	}
	for _, bad := range []string{"/staff/inbound/x/raw", "/staff/inbound/999999/raw"} {
		if p := v.get(bad); p.status != 404 {
			t.Errorf("%s: %d", bad, p.status)
		}
	}
	// Pruned past its retention, the source is gone.
	if _, err := ss.pool.Exec(ctx, `UPDATE inbound SET raw_sha256 = NULL WHERE id = $1`, q.InboundID); err != nil {
		t.Fatal(err)
	}
	if p := v.get(raw); p.status != 404 {
		t.Errorf("pruned raw source: %d", p.status)
	}
	if p := v.get(path); !strings.Contains(p.body, "Deleted after the retention period") {
		t.Error("the page does not say the source was pruned")
	}
}

func TestStaffPagesAreInBothLanguages(t *testing.T) {
	ss := newStaffSite(t, Options{})
	root := ss.as(t, ss.root)
	for _, tc := range []struct{ lang, queue, ticket, admin string }{
		{"es", "Tickets encontrados", "Estado y asignación", "Registro de auditoría"},
		{"en", "Tickets found", "Status and assignment", "Audit log"},
	} {
		t.Run(tc.lang, func(t *testing.T) {
			root.get("/staff?lang=" + tc.lang)
			for path, want := range map[string]string{"/staff": tc.queue, "/staff/tickets/" + ss.soporteTicket.TrackingID: tc.ticket, "/staff/admin": tc.admin} {
				p := root.get(path)
				if p.status != 200 || !strings.Contains(p.body, want) || !strings.Contains(p.body, `<html lang="`+tc.lang+`">`) {
					t.Errorf("%s in %s: %d, want %q", path, tc.lang, p.status, want)
				}
			}
		})
	}
}
