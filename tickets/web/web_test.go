package web

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helpdeskgw/helpdesk/internal/testdb"
	"github.com/helpdeskgw/helpdesk/templates"
	"github.com/helpdeskgw/helpdesk/tickets"
)

var db *testdb.DB

func TestMain(m *testing.M) { testdb.Main(m, &db) }

// site is the portal over a real store, with two departments and two
// mailed-in tickets of two customers.
type site struct {
	srv     *httptest.Server
	handler *Server
	store   *tickets.Store
	pool    *pgxpool.Pool
	billing tickets.Department // English
	soporte tickets.Department // Spanish

	ticket tickets.Ticket // zoe@example.org's, with two attachments
	token  string
	other  tickets.Ticket // max@example.net's, with one attachment
	otherT string
}

func newSite(t *testing.T, opts Options) *site {
	t.Helper()
	db.Reset(t)
	ctx := context.Background()
	s := &site{pool: db.Pool(t)}
	s.store = tickets.New(tickets.Options{Pool: s.pool})
	var err error
	if s.billing, err = s.store.AddDepartment(ctx, tickets.Department{Slug: "billing", Name: "Billing", Address: "billing@example.com", Locale: "en"}); err != nil {
		t.Fatal(err)
	}
	if s.soporte, err = s.store.AddDepartment(ctx, tickets.Department{Slug: "soporte", Name: "Soporte Técnico", Address: "soporte@example.com", Locale: "es"}); err != nil {
		t.Fatal(err)
	}
	ingest := func(id, from string, atts ...tickets.InboundAttachment) (tickets.Ticket, string) {
		res, err := s.store.IngestMail(ctx, &tickets.InboundMail{
			Source: "smtp", Department: s.billing, MessageID: id, From: tickets.Address{Name: "Zoë", Email: from},
			Subject: "Refund <b>please</b>", Text: "I was charged twice.\n<script>alert(1)</script>",
			Raw: tickets.BytesContent([]byte("raw " + id)), Attachments: atts,
		})
		if err != nil {
			t.Fatal(err)
		}
		tok, err := s.store.IssueToken(ctx, res.TicketID, tickets.ScopeTicket)
		if err != nil {
			t.Fatal(err)
		}
		tk, err := s.store.Ticket(ctx, res.TicketID)
		if err != nil {
			t.Fatal(err)
		}
		return tk, tok
	}
	s.ticket, s.token = ingest("a@example.org", "zoe@example.org",
		tickets.InboundAttachment{Filename: "invoice \"march\".html", ContentType: "text/html", Content: tickets.BytesContent([]byte("<script>evil()</script>"))},
		tickets.InboundAttachment{Filename: "recibo año.pdf", ContentType: "application/pdf", Content: tickets.BytesContent([]byte("%PDF"))})
	s.other, s.otherT = ingest("b@example.org", "max@example.net",
		tickets.InboundAttachment{Filename: "other.txt", ContentType: "text/plain", Content: tickets.BytesContent([]byte("secret of another customer"))})
	if opts.Templates == nil {
		tmpl, err := templates.Load()
		if err != nil {
			t.Fatal(err)
		}
		opts.Templates = tmpl
	}
	opts.Store = s.store
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	}
	s.handler = New(opts)
	s.srv = httptest.NewServer(s.handler)
	t.Cleanup(s.srv.Close)
	return s
}

// count runs a counting query.
func (s *site) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	if err := s.pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// attachmentIDs are the IDs of a ticket's attachments, in order.
func (s *site) attachmentIDs(t *testing.T, ticketID int64) []int64 {
	t.Helper()
	msgs, err := s.store.Thread(context.Background(), ticketID, false)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, m := range msgs {
		for _, a := range m.Attachments {
			ids = append(ids, a.ID)
		}
	}
	return ids
}

// visitor is a browser: it keeps cookies and does not follow redirects,
// so that tests see them.
type visitor struct {
	t      *testing.T
	site   *site
	client *http.Client
	header http.Header
}

func (s *site) visitor(t *testing.T) *visitor {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &visitor{t: t, site: s, header: http.Header{}, client: &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// page is an answer as a test looks at it.
type page struct {
	status int
	header http.Header
	body   string
}

func (p page) location() string { return p.header.Get("Location") }

// has reports whether the page has an element with that id.
func (p page) has(id string) bool { return strings.Contains(p.body, `id="`+id+`"`) }

func (v *visitor) do(req *http.Request) page {
	v.t.Helper()
	for k, vals := range v.header {
		req.Header[k] = vals
	}
	resp, err := v.client.Do(req)
	if err != nil {
		v.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		v.t.Fatalf("%s %s: reading the answer: %v", req.Method, req.URL, err)
	}
	return page{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func (v *visitor) get(path string) page {
	v.t.Helper()
	req, err := http.NewRequest("GET", v.site.srv.URL+path, nil)
	if err != nil {
		v.t.Fatal(err)
	}
	return v.do(req)
}

func (v *visitor) post(path string, form url.Values) page {
	v.t.Helper()
	req, err := http.NewRequest("POST", v.site.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		v.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return v.do(req)
}

type file struct {
	name string
	data []byte
}

func multipartBody(t *testing.T, fields map[string]string, files []file) (*bytes.Buffer, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for _, k := range []string{"department", "name", "email", "subject", "message", "priority"} {
		if v, ok := fields[k]; ok {
			mw.WriteField(k, v)
		}
	}
	for _, f := range files {
		w, err := mw.CreateFormFile("attachments", f.name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(f.data)
	}
	if len(files) == 0 { // a browser sends the empty file field
		mw.CreateFormFile("attachments", "")
	}
	mw.Close()
	return &b, mw.FormDataContentType()
}

func (v *visitor) postMultipart(path string, fields map[string]string, files ...file) page {
	v.t.Helper()
	body, ctype := multipartBody(v.t, fields, files)
	req, err := http.NewRequest("POST", v.site.srv.URL+path, body)
	if err != nil {
		v.t.Fatal(err)
	}
	req.Header.Set("Content-Type", ctype)
	return v.do(req)
}

// open opens the ticket's mailed link and follows it to the ticket's page.
func (v *visitor) open(token string) page {
	v.t.Helper()
	p := v.get("/t/" + token)
	if p.status != http.StatusSeeOther {
		v.t.Fatalf("GET /t/<token>: %d, want 303\n%s", p.status, p.body)
	}
	return v.get(p.location())
}

func TestTicketPageThroughTheMailedLink(t *testing.T) {
	s := newSite(t, Options{})
	v := s.visitor(t)
	p := v.get("/t/" + s.token)
	if p.status != http.StatusSeeOther || p.location() != "/ticket/"+s.ticket.TrackingID {
		t.Fatalf("link: %d to %q, want 303 to /ticket/%s", p.status, p.location(), s.ticket.TrackingID)
	}
	if p.header.Get("Cache-Control") != "no-store" {
		t.Errorf("link answer Cache-Control %q", p.header.Get("Cache-Control"))
	}
	p = v.get(p.location())
	if p.status != 200 {
		t.Fatalf("ticket page: %d\n%s", p.status, p.body)
	}
	// No language asked for: the ticket's.
	for _, want := range []string{s.ticket.TrackingID, "Refund &lt;b&gt;please&lt;/b&gt;", "I was charged twice.", "&lt;script&gt;alert(1)&lt;/script&gt;",
		`id="status">New<`, `id="priority">Medium<`, "Billing", "invoice &#34;march&#34;.html", "recibo año.pdf", `lang="en"`,
		`id="reply"`, `id="resolve"`, `name="message"`, `name="attachments"`} {
		if !strings.Contains(p.body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(p.body, "<script>alert") || strings.Contains(p.body, "<b>please") {
		t.Error("customer text reached the page unescaped")
	}
	if p.has("reopen") {
		t.Error("an open ticket offers to be reopened")
	}
	for key, want := range map[string]string{
		"Cache-Control":          "no-store",
		"Referrer-Policy":        "no-referrer",
		"X-Content-Type-Options": "nosniff",
		"X-Frame-Options":        "DENY",
	} {
		if got := p.header.Get(key); got != want {
			t.Errorf("%s: %q, want %q", key, got, want)
		}
	}
	csp := p.header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP %q allows inline code", csp)
	}
	// The link works again later, and from another device.
	if q := v.get("/t/" + s.token); q.status != http.StatusSeeOther {
		t.Errorf("the link a second time: %d", q.status)
	}
	if q := s.visitor(t).open(s.token); q.status != 200 || !q.has("tracking-id") {
		t.Errorf("the link on another device: %d", q.status)
	}
}

func TestSessionCookie(t *testing.T) {
	s := newSite(t, Options{})
	v := s.visitor(t)
	p := v.get("/t/" + s.token)
	cookie := p.header.Get("Set-Cookie")
	for _, want := range []string{sessionCookie + "=", "Path=/", "HttpOnly", "SameSite=Lax"} {
		if !strings.Contains(cookie, want) {
			t.Errorf("session cookie %q lacks %s", cookie, want)
		}
	}
	if strings.Contains(cookie, "Secure") || strings.Contains(cookie, "Max-Age") || strings.Contains(cookie, "Expires") {
		t.Errorf("session cookie %q over plain HTTP: want neither Secure nor a lifetime past the browser's", cookie)
	}
	// The session alone opens the page: without it the visitor is sent to
	// the lookup form, which knows the ID.
	anon := s.visitor(t).get("/ticket/" + s.ticket.TrackingID)
	if anon.status != http.StatusSeeOther || anon.location() != "/lookup?tracking_id="+s.ticket.TrackingID {
		t.Errorf("ticket page without a session: %d to %q", anon.status, anon.location())
	}
	// Each grant moves the session to a new ID; the old one opens nothing.
	old := regexp.MustCompile(sessionCookie + `=([^;]+)`).FindStringSubmatch(cookie)[1]
	v.get("/t/" + s.otherT)
	if p := v.get("/ticket/" + s.ticket.TrackingID); p.status != 200 {
		t.Errorf("first ticket after a second link: %d (rights must carry over)", p.status)
	}
	if p := v.get("/ticket/" + s.other.TrackingID); p.status != 200 {
		t.Errorf("second ticket: %d", p.status)
	}
	req := httptest.NewRequest("GET", "/ticket/"+s.ticket.TrackingID, nil)
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: old})
	rec := httptest.NewRecorder()
	s.handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusSeeOther {
		t.Errorf("the replaced session ID: %d, want 303 to the lookup", rec.Code)
	}
}

func TestSessionCookieIsSecureBehindHTTPS(t *testing.T) {
	tmpl, err := templates.Load()
	if err != nil {
		t.Fatal(err)
	}
	s := newSite(t, Options{Templates: tmpl})
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	cookieOf := func(h *Server, remote, proto string) string {
		req := httptest.NewRequest("GET", "/t/"+s.token, nil)
		req.RemoteAddr = remote
		if proto != "" {
			req.Header.Set("X-Forwarded-Proto", proto)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusSeeOther {
			t.Fatalf("link: %d", rec.Code)
		}
		return rec.Header().Get("Set-Cookie")
	}
	behindProxy := New(Options{Store: s.store, Templates: tmpl, TrustedProxies: proxies, BaseURL: "http://help.example.com"})
	if c := cookieOf(behindProxy, "10.0.0.1:4000", "https"); !strings.Contains(c, "Secure") || !strings.HasPrefix(c, "__Host-helpdesk_session=") {
		t.Errorf("via a trusted proxy over HTTPS: cookie %q, want Secure and the __Host- prefix", c)
	}
	if c := cookieOf(behindProxy, "10.0.0.1:4000", "http"); strings.Contains(c, "Secure") || strings.HasPrefix(c, "__Host-") {
		t.Errorf("via a trusted proxy over HTTP: cookie %q, want no Secure and no prefix", c)
	}
	if c := cookieOf(behindProxy, "192.0.2.9:4000", "https"); strings.Contains(c, "Secure") {
		t.Errorf("an untrusted peer's X-Forwarded-Proto: cookie %q, want no Secure", c)
	}
	httpsBase := New(Options{Store: s.store, Templates: tmpl, BaseURL: "https://help.example.com"})
	if c := cookieOf(httpsBase, "192.0.2.9:4000", ""); !strings.Contains(c, "Secure") {
		t.Errorf("with an https base URL: cookie %q, want Secure", c)
	}
}

func TestExpiredAndRevokedLinks(t *testing.T) {
	s := newSite(t, Options{})
	ctx := context.Background()
	// A session opened through a link lasts no longer than the link.
	v := s.visitor(t)
	if p := v.open(s.token); p.status != 200 {
		t.Fatalf("ticket page: %d", p.status)
	}
	if err := s.store.RevokeToken(ctx, s.token); err != nil {
		t.Fatal(err)
	}
	if p := v.get("/ticket/" + s.ticket.TrackingID); p.status != http.StatusSeeOther {
		t.Errorf("ticket page after the link was revoked: %d, want 303 to the lookup", p.status)
	}
	if p := v.get("/t/" + s.token); p.status != 404 || !p.has("error-text") {
		t.Errorf("revoked link: %d, want 404 with a page", p.status)
	}
	if _, err := s.pool.Exec(ctx, `UPDATE tokens SET expires_at = now() - interval '1 minute'`); err != nil {
		t.Fatal(err)
	}
	p := s.visitor(t).get("/t/" + s.otherT)
	if p.status != 410 || !strings.Contains(p.body, "caducado") {
		t.Errorf("expired link: %d, want 410 with a readable reason", p.status)
	}
	en := s.visitor(t)
	en.header.Set("Accept-Language", "en-GB,en;q=0.9,de;q=0.5")
	if p := en.get("/t/" + s.otherT); p.status != 410 || !strings.Contains(p.body, "This link has expired") {
		t.Errorf("expired link asked for in English: %d\n%s", p.status, p.body)
	}
	if p := s.visitor(t).get("/t/" + strings.Repeat("x", 43)); p.status != 404 {
		t.Errorf("unknown link: %d, want 404", p.status)
	}
}

func TestAttachmentsAreDownloadsOfThisTicketOnly(t *testing.T) {
	s := newSite(t, Options{})
	v := s.visitor(t)
	v.open(s.token)
	ids := s.attachmentIDs(t, s.ticket.ID)
	base := "/ticket/" + s.ticket.TrackingID + "/attachments/"
	p := v.get(fmt.Sprint(base, ids[0]))
	if p.status != 200 || p.body != "<script>evil()</script>" {
		t.Fatalf("download: %d %q", p.status, p.body)
	}
	for key, want := range map[string]string{
		"Content-Type":            "application/octet-stream",
		"Content-Disposition":     `attachment; filename="invoice \"march\".html"`,
		"X-Content-Type-Options":  "nosniff",
		"Content-Security-Policy": "default-src 'none'; sandbox",
		"Cache-Control":           "private, no-store",
	} {
		if got := p.header.Get(key); got != want {
			t.Errorf("%s: %q, want %q", key, got, want)
		}
	}
	p = v.get(fmt.Sprint(base, ids[1]))
	if cd := p.header.Get("Content-Disposition"); cd != `attachment; filename*=utf-8''recibo%20a%C3%B1o.pdf` {
		t.Errorf("non-ASCII name: Content-Disposition %q", cd)
	}
	// The other ticket's attachment, under this ticket's path.
	otherID := s.attachmentIDs(t, s.other.ID)[0]
	if p := v.get(fmt.Sprint(base, otherID)); p.status != 404 || strings.Contains(p.body, "secret") {
		t.Errorf("another ticket's attachment: %d", p.status)
	}
	for _, path := range []string{base + "x", base + "-1", base + "999999"} {
		if p := v.get(path); p.status != 404 {
			t.Errorf("%s: %d, want 404", path, p.status)
		}
	}
	// Without the session, nothing.
	if p := s.visitor(t).get(fmt.Sprint(base, ids[0])); p.status != 404 || strings.Contains(p.body, "evil") {
		t.Errorf("download without a session: %d", p.status)
	}
}

func TestForeignTicketRefused(t *testing.T) {
	s := newSite(t, Options{})
	v := s.visitor(t)
	v.open(s.token) // zoe's session
	other := "/ticket/" + s.other.TrackingID
	if p := v.get(other); p.status != http.StatusSeeOther || strings.Contains(p.body, "Refund") {
		t.Errorf("another's ticket page: %d, want 303 to the lookup", p.status)
	}
	otherAtt := s.attachmentIDs(t, s.other.ID)[0]
	if p := v.get(fmt.Sprint(other, "/attachments/", otherAtt)); p.status != 404 || strings.Contains(p.body, "secret") {
		t.Errorf("another's attachment: %d, want 404", p.status)
	}
	if p := v.postMultipart(other+"/reply", map[string]string{"message": "mine now"}); p.status != http.StatusForbidden {
		t.Errorf("reply to another's ticket: %d, want 403", p.status)
	}
	for _, action := range []string{"/resolve", "/reopen"} {
		if p := v.post(other+action, nil); p.status != http.StatusForbidden {
			t.Errorf("%s another's ticket: %d, want 403", action, p.status)
		}
	}
	if n := s.count(t, `SELECT count(*) FROM messages WHERE ticket_id = $1`, s.other.ID); n != 1 {
		t.Errorf("another's ticket has %d messages, want its own 1", n)
	}
	if n := s.count(t, `SELECT count(*) FROM tickets WHERE id = $1 AND status = 'new'`, s.other.ID); n != 1 {
		t.Error("another's ticket changed status")
	}
}

func TestHealth(t *testing.T) {
	s := newSite(t, Options{})
	v := s.visitor(t)
	if p := v.get("/healthz"); p.status != 200 || p.body != "ok\n" {
		t.Errorf("healthz: %d %q", p.status, p.body)
	}
	if p := v.get("/readyz"); p.status != 200 {
		t.Errorf("readyz: %d", p.status)
	}
	tmpl, _ := templates.Load()
	down := httptest.NewServer(New(Options{Store: s.store, Templates: tmpl, Ready: func(context.Context) error { return fmt.Errorf("database: connection refused") }}))
	defer down.Close()
	resp, err := http.Get(down.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(b), "connection refused") {
		t.Errorf("readyz with the database down: %d %q", resp.StatusCode, b)
	}
}

func TestLinkRateLimitCountsFailuresPerClient(t *testing.T) {
	s := newSite(t, Options{})
	tmpl, _ := templates.Load()
	h := New(Options{Store: s.store, Templates: tmpl, TokenRate: 2, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	do := func(remote, xff, token string) int {
		req := httptest.NewRequest("GET", "/t/"+token, nil)
		req.RemoteAddr = remote
		if xff != "" {
			req.Header.Set("X-Forwarded-For", xff)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	bad := strings.Repeat("z", 43)
	// A customer opening a good link is never limited.
	for range 10 {
		if code := do("192.0.2.1:1000", "", s.token); code != http.StatusSeeOther {
			t.Fatalf("good token: %d", code)
		}
	}
	// Two failures use up the budget of 2 a minute.
	for i, want := range []int{404, 404, 429} {
		if code := do("192.0.2.1:1000", "", bad); code != want {
			t.Errorf("bad token, try %d: %d, want %d", i+1, code, want)
		}
	}
	// Behind a trusted proxy, clients are told apart by X-Forwarded-For...
	for i, want := range []int{404, 404, 429} {
		if code := do("10.1.2.3:555", "198.51.100.7", bad); code != want {
			t.Errorf("client A via proxy, try %d: %d, want %d", i+1, code, want)
		}
	}
	if code := do("10.1.2.3:555", "198.51.100.8, 10.9.9.9", bad); code != 404 {
		t.Errorf("client B via two proxies: %d, want 404 (its own budget)", code)
	}
	// ...but a client cannot escape its budget by sending the header itself.
	if code := do("192.0.2.1:1001", "203.0.113.50", bad); code != 429 {
		t.Errorf("untrusted peer with its own X-Forwarded-For: %d, want 429", code)
	}
	// IPv6 hosts are counted by /64.
	for i, want := range []int{404, 404, 429} {
		if code := do(fmt.Sprintf("[2001:db8:1:2::%d]:80", i+1), "", bad); code != want {
			t.Errorf("IPv6 address %d of one /64: %d, want %d", i+1, code, want)
		}
	}
}

func TestUnknownPagesAndCanonicalTicketPaths(t *testing.T) {
	s := newSite(t, Options{})
	v := s.visitor(t)
	for _, path := range []string{"/nothing-here", "/ticket/not-an-id", "/static/", "/static/missing.css"} {
		if p := v.get(path); p.status != 404 {
			t.Errorf("%s: %d, want 404", path, p.status)
		}
	}
	if p := v.get("/nothing-here"); !strings.Contains(p.body, "No existe ninguna página") {
		t.Errorf("404 page is not the site's:\n%s", p.body)
	}
	id := s.ticket.TrackingID
	messy := strings.ToLower(strings.ReplaceAll(id, "-", ""))
	if p := v.get("/ticket/" + messy + "?lang=en"); p.status != http.StatusMovedPermanently || p.location() != "/ticket/"+id+"?lang=en" {
		t.Errorf("/ticket/%s: %d to %q, want 301 to the canonical path", messy, p.status, p.location())
	}
}

func TestStaticFilesAndNoInlineScript(t *testing.T) {
	s := newSite(t, Options{})
	v := s.visitor(t)
	home := v.get("/")
	refs := regexp.MustCompile(`(?:href|src)="(/static/[^"]+)"`).FindAllStringSubmatch(home.body, -1)
	if len(refs) != 2 {
		t.Fatalf("home page refers to %d static files, want the style sheet and the script", len(refs))
	}
	types := map[string]string{"style.css": "text/css", "app.js": "text/javascript"}
	for _, ref := range refs {
		path := strings.ReplaceAll(ref[1], "&amp;", "&")
		if !strings.Contains(path, "?v=") {
			t.Errorf("%s carries no version, so it cannot be cached for long", path)
		}
		p := v.get(path)
		name := strings.TrimPrefix(strings.SplitN(path, "?", 2)[0], "/static/")
		if p.status != 200 || !strings.HasPrefix(p.header.Get("Content-Type"), types[name]) || len(p.body) < 100 {
			t.Errorf("%s: %d %q, %d bytes", path, p.status, p.header.Get("Content-Type"), len(p.body))
		}
		if cc := p.header.Get("Cache-Control"); !strings.Contains(cc, "max-age=31536000") {
			t.Errorf("%s: Cache-Control %q", path, cc)
		}
	}
	// Every page works within the CSP: no inline script, handlers or style.
	v.open(s.token)
	inline := regexp.MustCompile(`<script>|<script [^>]*>[^<]|\son[a-z]+=|\sstyle=|<style`)
	for _, path := range []string{"/", "/submit", "/lookup", "/forgot", "/ticket/" + s.ticket.TrackingID, "/ticket/" + s.ticket.TrackingID + "?created=1"} {
		p := v.get(path)
		if p.status != 200 {
			t.Errorf("%s: %d", path, p.status)
			continue
		}
		if m := inline.FindString(p.body); m != "" {
			t.Errorf("%s has inline code %q, which the CSP forbids", path, m)
		}
	}
}

func TestDatabaseTroubleIsSaidPolitely(t *testing.T) {
	s := newSite(t, Options{})
	v := s.visitor(t)
	v.open(s.token)
	s.pool.Close()
	for _, p := range []page{
		v.get("/submit"),
		v.get("/ticket/" + s.ticket.TrackingID),
		v.get("/t/" + s.otherT),
		v.post("/lookup", url.Values{"tracking_id": {s.ticket.TrackingID}, "email": {"zoe@example.org"}}),
		v.postMultipart("/submit", validTicket()),
	} {
		if p.status != http.StatusInternalServerError || !strings.Contains(p.body, "Algo ha fallado de nuestro lado") {
			t.Errorf("with the database gone: %d\n%s", p.status, p.body)
		}
	}
	if p := v.get("/readyz"); p.status != http.StatusServiceUnavailable {
		t.Errorf("readyz with the database gone: %d", p.status)
	}
	// The reminder is queued after the answer, which is the same whatever
	// happens then.
	if p := v.post("/forgot", url.Values{"email": {"zoe@example.org"}}); p.status != http.StatusOK {
		t.Errorf("forgot with the database gone: %d", p.status)
	}
	s.handler.Wait()
}
