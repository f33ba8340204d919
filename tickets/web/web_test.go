package web

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/helpdeskgw/helpdesk/internal/testdb"
	"github.com/helpdeskgw/helpdesk/templates"
	"github.com/helpdeskgw/helpdesk/tickets"
)

var db *testdb.DB

func TestMain(m *testing.M) { testdb.Main(m, &db) }

type site struct {
	srv    *httptest.Server
	store  *tickets.Store
	token  string
	ticket tickets.IngestResult
	other  string // a token of another ticket
}

func newSite(t *testing.T, rate int) *site {
	t.Helper()
	db.Reset(t)
	ctx := context.Background()
	store := tickets.New(tickets.Options{Pool: db.Pool(t)})
	d, err := store.AddDepartment(ctx, tickets.Department{Slug: "billing", Name: "Billing", Address: "billing@example.com", Locale: "en"})
	if err != nil {
		t.Fatal(err)
	}
	ingest := func(id string, atts ...tickets.InboundAttachment) (tickets.IngestResult, string) {
		res, err := store.IngestMail(ctx, &tickets.InboundMail{
			Source: "smtp", Department: d, MessageID: id, From: tickets.Address{Email: "zoe@example.org"},
			Subject: "Refund <b>please</b>", Text: "I was charged twice.\n<script>alert(1)</script>",
			Raw: tickets.BytesContent([]byte("raw " + id)), Attachments: atts,
		})
		if err != nil {
			t.Fatal(err)
		}
		tok, err := store.IssueToken(ctx, res.TicketID, tickets.ScopeTicket)
		if err != nil {
			t.Fatal(err)
		}
		return res, tok
	}
	s := &site{store: store}
	s.ticket, s.token = ingest("a@example.org",
		tickets.InboundAttachment{Filename: "invoice \"march\".html", ContentType: "text/html", Content: tickets.BytesContent([]byte("<script>evil()</script>"))},
		tickets.InboundAttachment{Filename: "recibo año.pdf", ContentType: "application/pdf", Content: tickets.BytesContent([]byte("%PDF"))})
	_, s.other = ingest("b@example.org",
		tickets.InboundAttachment{Filename: "other.txt", ContentType: "text/plain", Content: tickets.BytesContent([]byte("secret of another customer"))})
	tmpl, err := templates.Load()
	if err != nil {
		t.Fatal(err)
	}
	s.srv = httptest.NewServer(New(Options{Store: store, Templates: tmpl, TokenRate: rate}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *site) get(t *testing.T, path string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(s.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestTicketPage(t *testing.T) {
	s := newSite(t, 0)
	resp, body := s.get(t, "/t/"+s.token)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for _, want := range []string{s.ticket.TrackingID, "Refund &lt;b&gt;please&lt;/b&gt;", "I was charged twice.", "&lt;script&gt;alert(1)&lt;/script&gt;",
		"New", "Medium", "Billing", "invoice &#34;march&#34;.html", "recibo año.pdf", `lang="en"`} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, "<script>") || strings.Contains(body, "<b>please") {
		t.Error("customer text reached the page unescaped")
	}
	for key, want := range map[string]string{
		"Cache-Control":          "no-store",
		"Referrer-Policy":        "no-referrer",
		"X-Content-Type-Options": "nosniff",
		"X-Frame-Options":        "DENY",
	} {
		if got := resp.Header.Get(key); got != want {
			t.Errorf("%s: %q, want %q", key, got, want)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q", csp)
	}
}

func TestAttachmentsAreDownloadsOfThisTicketOnly(t *testing.T) {
	s := newSite(t, 0)
	ctx := context.Background()
	tk, _ := s.store.TicketByToken(ctx, s.token, tickets.ScopeTicket)
	msgs, _ := s.store.Thread(ctx, tk.ID, false)
	atts := msgs[0].Attachments
	resp, body := s.get(t, fmt.Sprintf("/t/%s/attachments/%d", s.token, atts[0].ID))
	if resp.StatusCode != 200 || body != "<script>evil()</script>" {
		t.Fatalf("download: %d %q", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/octet-stream" {
		t.Errorf("an HTML attachment is served as %q, want application/octet-stream", ct)
	}
	if cd := resp.Header.Get("Content-Disposition"); cd != `attachment; filename="invoice \"march\".html"` {
		t.Errorf("Content-Disposition %q", cd)
	}
	resp, _ = s.get(t, fmt.Sprintf("/t/%s/attachments/%d", s.token, atts[1].ID))
	if cd := resp.Header.Get("Content-Disposition"); cd != `attachment; filename*=utf-8''recibo%20a%C3%B1o.pdf` {
		t.Errorf("non-ASCII name: Content-Disposition %q", cd)
	}
	// The other ticket's attachment, through this ticket's token.
	var otherID int64
	ot, _ := s.store.TicketByToken(ctx, s.other, tickets.ScopeTicket)
	om, _ := s.store.Thread(ctx, ot.ID, false)
	otherID = om[0].Attachments[0].ID
	resp, body = s.get(t, fmt.Sprintf("/t/%s/attachments/%d", s.token, otherID))
	if resp.StatusCode != 404 || strings.Contains(body, "secret") {
		t.Errorf("another ticket's attachment: %d", resp.StatusCode)
	}
	for _, path := range []string{"/t/" + s.token + "/attachments/x", "/t/" + s.token + "/attachments/-1"} {
		if resp, _ := s.get(t, path); resp.StatusCode != 404 {
			t.Errorf("%s: %d, want 404", path, resp.StatusCode)
		}
	}
}

func TestBadExpiredAndLimitedTokens(t *testing.T) {
	s := newSite(t, 5)
	if resp, _ := s.get(t, "/t/"+strings.Repeat("x", 43)); resp.StatusCode != 404 {
		t.Errorf("unknown token: %d, want 404", resp.StatusCode)
	}
	if _, err := db.Pool(t).Exec(context.Background(), `UPDATE tokens SET expires_at = now() - interval '1 minute'`); err != nil {
		t.Fatal(err)
	}
	resp, body := s.get(t, "/t/"+s.token)
	if resp.StatusCode != 410 || !strings.Contains(body, "caducado") {
		t.Errorf("expired token: %d, want 410 with a readable reason", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", s.srv.URL+"/t/"+s.token, nil)
	req.Header.Set("Accept-Language", "en-GB,en;q=0.9,de;q=0.5")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 410 || !strings.Contains(string(b), "This link has expired") {
		t.Errorf("expired token asked for in English: %d\n%s", resp.StatusCode, b)
	}
	// Five lookups a minute are allowed and three were used.
	codes := []int{}
	for range 4 {
		resp, _ := s.get(t, "/t/"+strings.Repeat("y", 43))
		codes = append(codes, resp.StatusCode)
	}
	if fmt.Sprint(codes) != "[404 404 429 429]" {
		t.Errorf("lookups past the limit: %v, want [404 404 429 429]", codes)
	}
}

func TestHealth(t *testing.T) {
	s := newSite(t, 0)
	if resp, body := s.get(t, "/healthz"); resp.StatusCode != 200 || body != "ok\n" {
		t.Errorf("healthz: %d %q", resp.StatusCode, body)
	}
	if resp, _ := s.get(t, "/readyz"); resp.StatusCode != 200 {
		t.Errorf("readyz: %d", resp.StatusCode)
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

func TestRateLimitCountsFailuresPerClient(t *testing.T) {
	s := newSite(t, 2)
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
		if code := do("192.0.2.1:1000", "", s.token); code != 200 {
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
