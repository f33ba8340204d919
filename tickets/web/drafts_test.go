package web

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/helpdeskgw/helpdesk/tickets"
)

// heldDraft files a reply by mail to the acknowledgement of the site's
// first ticket (zoe's), with two files, and returns the draft it became
// and the token its notice carries.
func (s *site) heldDraft(t *testing.T, messageID string) (tickets.Draft, string) {
	t.Helper()
	ctx := context.Background()
	out, err := s.store.OutboxForTicket(ctx, s.ticket.ID)
	if err != nil || len(out) == 0 || out[0].Kind != tickets.KindAck {
		t.Fatalf("outbox of the ticket: %+v, %v", out, err)
	}
	res, err := s.store.IngestMail(ctx, &tickets.InboundMail{
		Source: "smtp", Department: s.billing, MessageID: messageID, InReplyTo: out[0].MessageID,
		From: tickets.Address{Name: "Zoë", Email: "zoe@example.org"}, Subject: "Re: Refund",
		Text: "Nuevo texto\n\nEl lun escribió:\n> viejo", NewText: "Nuevo texto",
		Raw: tickets.BytesContent([]byte("raw " + messageID)),
		Attachments: []tickets.InboundAttachment{
			{Filename: "captura.png", ContentType: "image/png", Content: tickets.BytesContent([]byte("png of " + messageID))},
			{Filename: "firma \"nueva\".html", ContentType: "text/html", Content: tickets.BytesContent([]byte("<script>evil()</script>"))},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Disposition != tickets.DispositionDraft || res.DraftID == 0 || res.TicketID != s.ticket.ID {
		t.Fatalf("the reply by mail: %+v, want a draft of ticket %d", res, s.ticket.ID)
	}
	// The notice's token is issued when the notice is taken to be sent.
	mails, err := s.store.ClaimOutbox(ctx, 100, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mails {
		if m.Kind == tickets.KindDraftNotice && m.Draft != nil && m.Draft.ID == res.DraftID {
			return *m.Draft, m.Token
		}
	}
	t.Fatalf("no notice of draft %d among %d claimed mails", res.DraftID, len(mails))
	return tickets.Draft{}, ""
}

// postDraft sends a draft's form as the page does: multipart, the text
// and the positions of the files kept.
func (v *visitor) postDraft(path, message string, keep ...int) page {
	v.t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	mw.WriteField("message", message)
	for _, k := range keep {
		mw.WriteField("keep", fmt.Sprint(k))
	}
	mw.Close()
	req, err := http.NewRequest("POST", v.site.srv.URL+path, &b)
	if err != nil {
		v.t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return v.do(req)
}

// draftPaths are the paths of a draft of the site's first ticket.
func (s *site) draftPaths(d tickets.Draft) (ticket, post, discard, files string) {
	ticket = "/ticket/" + s.ticket.TrackingID
	base := fmt.Sprintf("%s/drafts/%d", ticket, d.ID)
	return ticket, base + "/post", base + "/discard", base + "/files/"
}

func (s *site) messageCount(t *testing.T) int {
	t.Helper()
	return s.count(t, `SELECT count(*) FROM messages WHERE ticket_id = $1`, s.ticket.ID)
}

func (s *site) heldCount(t *testing.T) int {
	t.Helper()
	drafts, err := s.store.HeldDrafts(context.Background(), s.ticket.ID)
	if err != nil {
		t.Fatal(err)
	}
	return len(drafts)
}

func TestDraftLinkShowsTheDraftToReview(t *testing.T) {
	s := newSite(t, Options{})
	d, token := s.heldDraft(t, "reply-1@example.org")
	ticket, post, discard, files := s.draftPaths(d)
	v := s.visitor(t)
	p := v.get("/d/" + token)
	if want := fmt.Sprintf("%s#draft-%d", ticket, d.ID); p.status != http.StatusSeeOther || p.location() != want {
		t.Fatalf("draft link: %d to %q, want 303 to %q\n%s", p.status, p.location(), want, p.body)
	}
	if p.header.Get("Cache-Control") != "no-store" || !strings.Contains(p.header.Get("Set-Cookie"), sessionCookie+"=") {
		t.Errorf("draft link: Cache-Control %q, Set-Cookie %q", p.header.Get("Cache-Control"), p.header.Get("Set-Cookie"))
	}
	page := v.get(ticket)
	if page.status != 200 {
		t.Fatalf("ticket page: %d", page.status)
	}
	box := fmt.Sprintf("draft-%d", d.ID)
	for _, want := range []string{
		`id="` + box + `"`,
		"We received this mail from Zoë &lt;zoe@example.org&gt; on " + d.CreatedAt.UTC().Format("2006-01-02 15:04 UTC") + ".",
		"It has not been added to your ticket. Review it, edit it if you like, and post it — or discard it.",
		"it is discarded on " + d.ExpiresAt.UTC().Format("2006-01-02 15:04 UTC"),
		`name="message" rows="6">Nuevo texto</textarea>`,
		`id="` + box + `-original" tabindex="0" role="region" aria-label="Show the whole mail as it arrived">Nuevo texto

El lun escribió:
&gt; viejo</div>`,
		`id="` + box + `-keep-0" name="keep" value="0" checked>`,
		`id="` + box + `-keep-1" name="keep" value="1" checked>`,
		"captura.png", "firma &#34;nueva&#34;.html",
		`href="` + files + `0" download`, `href="` + files + `1" download`,
		`action="` + post + `" enctype="multipart/form-data"`, `action="` + discard + `"`,
		`id="` + box + `-post">Post to the ticket<`, `form="` + box + `-discard-form">Discard<`,
	} {
		if !strings.Contains(page.body, want) {
			t.Errorf("ticket page lacks %q", want)
		}
	}
	if strings.Index(page.body, `id="`+box+`"`) > strings.Index(page.body, `id="reply-section"`) {
		t.Error("the draft is shown below the reply form")
	}
	if strings.Contains(page.body, "<script>") {
		t.Error("the page has inline script")
	}
	es := v.get(ticket + "?lang=es")
	for _, want := range []string{"Recibimos este correo de Zoë &lt;zoe@example.org&gt; el ", "No se ha añadido a tu ticket.",
		">Publicar en el ticket<", ">Descartar<"} {
		if !strings.Contains(es.body, want) {
			t.Errorf("ticket page in Spanish lacks %q", want)
		}
	}
	// Nothing was added meanwhile.
	if n := s.messageCount(t); n != 1 {
		t.Errorf("%d messages after opening the draft, want the first only", n)
	}
}

func TestPostDraftAsEditedWithTheFilesKept(t *testing.T) {
	s := newSite(t, Options{})
	d, token := s.heldDraft(t, "reply-1@example.org")
	ticket, post, _, _ := s.draftPaths(d)
	v := s.visitor(t)
	v.get("/d/" + token)
	p := v.postDraft(post, "Nuevo texto, corregido.", 0)
	if p.status != http.StatusSeeOther || p.location() != ticket+"?notice=draft_posted" {
		t.Fatalf("post: %d to %q\n%s", p.status, p.location(), p.body)
	}
	page := v.get(p.location())
	if !page.has("notice") || !strings.Contains(page.body, "The mail was added to your ticket.") {
		t.Error("no notice that the mail was added")
	}
	if page.has(fmt.Sprintf("draft-%d", d.ID)) {
		t.Error("the posted draft is still offered")
	}
	msgs, err := s.store.Thread(context.Background(), s.ticket.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	last := msgs[len(msgs)-1]
	if len(msgs) != 2 || last.Text != "Nuevo texto, corregido." || last.AuthorKind != "customer" || last.AuthorEmail != "zoe@example.org" {
		t.Fatalf("thread %+v: want the edited text added as the customer's", msgs)
	}
	if len(last.Attachments) != 1 || last.Attachments[0].Filename != "captura.png" {
		t.Errorf("posted files %+v, want captura.png alone", last.Attachments)
	}
	if !strings.Contains(page.body, "Nuevo texto, corregido.") {
		t.Error("the page does not show the posted message")
	}
	if dl := v.get(fmt.Sprintf("%s/attachments/%d", ticket, last.Attachments[0].ID)); dl.body != "png of reply-1@example.org" {
		t.Errorf("the kept file in the thread: %d %q", dl.status, dl.body)
	}
	if status, _ := s.status(t, s.ticket.ID); status != tickets.StatusWaitingReply {
		t.Errorf("status %s, want waiting_reply", status)
	}

	// Posting again (a second tab, the back button) adds nothing.
	again := v.postDraft(post, "Otra vez.", 0, 1)
	if again.status != http.StatusConflict || !again.has("draft-gone") ||
		!strings.Contains(again.body, "This mail has expired, or was already posted or discarded.") {
		t.Errorf("second post: %d, want 409 saying the mail is gone\n%s", again.status, again.body)
	}
	if n := s.messageCount(t); n != 2 {
		t.Errorf("%d messages after posting twice, want 2", n)
	}
	// And the notice's link now says so, pointing to the lookup.
	en := s.visitor(t)
	en.header.Set("Accept-Language", "en")
	link := en.get("/d/" + token)
	if link.status != http.StatusGone || !strings.Contains(link.body, "This mail has expired, or was already posted or discarded.") ||
		!strings.Contains(link.body, `href="/lookup"`) {
		t.Errorf("the link of a posted draft: %d, want 410 saying so, with the lookup\n%s", link.status, link.body)
	}
}

func TestDraftFormErrorsKeepWhatWasTyped(t *testing.T) {
	s := newSite(t, Options{})
	d, token := s.heldDraft(t, "reply-1@example.org")
	_, post, _, _ := s.draftPaths(d)
	v := s.visitor(t)
	v.header.Set("Accept-Language", "en")
	v.get("/d/" + token)
	box := fmt.Sprintf("draft-%d", d.ID)
	long := strings.Repeat("ñ", tickets.MaxMessageLength+1)
	for _, tc := range []struct {
		name, message string
		keep          []int
		wantText      string
	}{
		{"no text and no file", "  ", nil, "This field is required."},
		{"text too long", long, []int{1}, "This text is too long."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := v.postDraft(post, tc.message, tc.keep...)
			if p.status != http.StatusUnprocessableEntity {
				t.Fatalf("%d, want 422", p.status)
			}
			if !p.has("error-"+box+"-message") || !strings.Contains(p.body, tc.wantText) || !p.has("error-summary") {
				t.Errorf("no error next to the draft's text saying %q", tc.wantText)
			}
			if p.has("error-message") {
				t.Error("the error is shown at the reply form")
			}
			if !strings.Contains(p.body, `aria-describedby="error-`+box+`-message">`+tc.message+"</textarea>") {
				t.Error("the typed text is lost")
			}
			for pos := range 2 {
				checked := strings.Contains(p.body, fmt.Sprintf(`id="%s-keep-%d" name="keep" value="%d" checked>`, box, pos, pos))
				if want := len(tc.keep) > 0 && tc.keep[0] == pos; checked != want {
					t.Errorf("file %d checked: %v, want %v as sent", pos, checked, want)
				}
			}
		})
	}
	if n, held := s.messageCount(t), s.heldCount(t); n != 1 || held != 1 {
		t.Errorf("%d messages and %d held drafts after the errors, want 1 and 1", n, held)
	}
	// A file alone is a message.
	if p := v.postDraft(post, "", 1); p.status != http.StatusSeeOther {
		t.Errorf("a file without text: %d, want 303", p.status)
	}
	if p := v.postDraft("/ticket/"+s.ticket.TrackingID+"/drafts/x/post", "x"); p.status != http.StatusNotFound {
		t.Errorf("a malformed draft ID: %d, want 404", p.status)
	}
}

func TestDiscardDraft(t *testing.T) {
	s := newSite(t, Options{})
	d, token := s.heldDraft(t, "reply-1@example.org")
	ticket, post, discard, _ := s.draftPaths(d)
	v := s.visitor(t)
	v.get("/d/" + token)
	p := v.post(discard, nil)
	if p.status != http.StatusSeeOther || p.location() != ticket+"?notice=draft_discarded" {
		t.Fatalf("discard: %d to %q\n%s", p.status, p.location(), p.body)
	}
	after := v.get(p.location())
	if !strings.Contains(after.body, "The mail was discarded; your ticket is unchanged.") || after.has(fmt.Sprintf("draft-%d", d.ID)) {
		t.Error("after discarding: no notice, or the draft still offered")
	}
	if n, held := s.messageCount(t), s.heldCount(t); n != 1 || held != 0 {
		t.Errorf("%d messages and %d held drafts after discarding, want 1 and 0", n, held)
	}
	if status, _ := s.status(t, s.ticket.ID); status != tickets.StatusNew {
		t.Errorf("status %s after discarding, want new", status)
	}
	for name, again := range map[string]page{"discard again": v.post(discard, nil), "post after discarding": v.postDraft(post, "Nuevo texto", 0)} {
		if again.status != http.StatusConflict || !again.has("draft-gone") {
			t.Errorf("%s: %d, want 409 saying the mail is gone", name, again.status)
		}
	}
	if n := s.messageCount(t); n != 1 {
		t.Errorf("%d messages, want 1", n)
	}
}

func TestDraftsOfAnotherTicketAreOutOfReach(t *testing.T) {
	s := newSite(t, Options{})
	d, _ := s.heldDraft(t, "reply-1@example.org")
	_, post, discard, files := s.draftPaths(d)
	// max's session, whose ticket is not the draft's.
	v := s.visitor(t)
	v.open(s.otherT)
	foreign := fmt.Sprintf("/ticket/%s/drafts/%d", s.other.TrackingID, d.ID)
	for _, tc := range []struct {
		name string
		got  page
		want int
	}{
		{"post under the draft's ticket", v.postDraft(post, "mine now", 0, 1), http.StatusForbidden},
		{"discard under the draft's ticket", v.post(discard, nil), http.StatusForbidden},
		{"post under one's own ticket", v.postDraft(foreign+"/post", "mine now", 0, 1), http.StatusNotFound},
		{"discard under one's own ticket", v.post(foreign+"/discard", nil), http.StatusNotFound},
		{"file under the draft's ticket", v.get(files + "1"), http.StatusNotFound},
		{"file under one's own ticket", v.get(foreign + "/files/1"), http.StatusNotFound},
		{"post without a session", s.visitor(t).postDraft(post, "mine now"), http.StatusForbidden},
		{"file without a session", s.visitor(t).get(files + "1"), http.StatusNotFound},
	} {
		if tc.got.status != tc.want || strings.Contains(tc.got.body, "evil()") {
			t.Errorf("%s: %d, want %d", tc.name, tc.got.status, tc.want)
		}
	}
	if n, held := s.messageCount(t), s.heldCount(t); n != 1 || held != 1 {
		t.Errorf("%d messages and %d held drafts, want 1 and 1: untouched", n, held)
	}
	if n := s.count(t, `SELECT count(*) FROM messages WHERE ticket_id = $1`, s.other.ID); n != 1 {
		t.Errorf("the other ticket has %d messages, want its own 1", n)
	}
}

func TestDraftFileDownload(t *testing.T) {
	s := newSite(t, Options{})
	d, token := s.heldDraft(t, "reply-1@example.org")
	_, _, _, files := s.draftPaths(d)
	v := s.visitor(t)
	v.get("/d/" + token)
	p := v.get(files + "1")
	if p.status != 200 || p.body != "<script>evil()</script>" {
		t.Fatalf("download: %d %q", p.status, p.body)
	}
	for key, want := range map[string]string{
		"Content-Type":            "application/octet-stream",
		"Content-Disposition":     `attachment; filename="firma \"nueva\".html"`,
		"Content-Length":          "23",
		"X-Content-Type-Options":  "nosniff",
		"Content-Security-Policy": "default-src 'none'; sandbox",
		"Cache-Control":           "private, no-store",
	} {
		if got := p.header.Get(key); got != want {
			t.Errorf("%s: %q, want %q", key, got, want)
		}
	}
	if p := v.get(files + "0"); p.body != "png of reply-1@example.org" {
		t.Errorf("the other file: %d %q", p.status, p.body)
	}
	for _, n := range []string{"2", "-1", "x", "99999999999999999999"} {
		if p := v.get(files + n); p.status != http.StatusNotFound {
			t.Errorf("file %s: %d, want 404", n, p.status)
		}
	}
	if p := v.get(fmt.Sprintf("/ticket/%s/drafts/x/files/0", s.ticket.TrackingID)); p.status != http.StatusNotFound {
		t.Errorf("a malformed draft ID: %d, want 404", p.status)
	}
}

func TestUnknownAndExpiredDraftLinks(t *testing.T) {
	s := newSite(t, Options{})
	_, token := s.heldDraft(t, "reply-1@example.org")
	for name, path := range map[string]string{
		"unknown token":          "/d/" + strings.Repeat("x", 43),
		"short token":            "/d/abc",
		"a ticket's token":       "/d/" + s.token,
		"a draft token as /t/":   "/t/" + token,
		"nothing after the path": "/d/",
	} {
		p := s.visitor(t).get(path)
		if p.status != http.StatusNotFound || !p.has("error-text") || p.header.Get("Set-Cookie") != "" {
			t.Errorf("%s: %d, want 404 with a page and no session", name, p.status)
		}
	}
	// Past its time.
	if _, err := s.pool.Exec(context.Background(), `UPDATE drafts SET expires_at = now() - interval '1 minute'`); err != nil {
		t.Fatal(err)
	}
	v := s.visitor(t)
	v.header.Set("Accept-Language", "es")
	p := v.get("/d/" + token)
	if p.status != http.StatusGone || !strings.Contains(p.body, "Este correo ha caducado, o ya se publicó o se descartó.") ||
		!strings.Contains(p.body, `href="/lookup"`) || p.header.Get("Set-Cookie") != "" {
		t.Errorf("expired draft link: %d, want 410 saying so, with the lookup and no session\n%s", p.status, p.body)
	}
}

func TestDraftLinksShareTheLinkRateLimit(t *testing.T) {
	s := newSite(t, Options{TokenRate: 2})
	_, token := s.heldDraft(t, "reply-1@example.org")
	v := s.visitor(t)
	bad := strings.Repeat("z", 43)
	for i, want := range []int{404, 404, 429} {
		path := []string{"/d/", "/t/", "/d/"}[i] + bad
		if p := v.get(path); p.status != want {
			t.Errorf("bad token %d (%s): %d, want %d", i+1, path[:3], p.status, want)
		}
	}
	if p := v.get("/d/" + token); p.status != http.StatusTooManyRequests {
		t.Errorf("a good draft link past the client's failures: %d, want 429", p.status)
	}
}

func TestDraftPostsAreCrossOriginProtected(t *testing.T) {
	s := newSite(t, Options{})
	d, token := s.heldDraft(t, "reply-1@example.org")
	_, post, discard, _ := s.draftPaths(d)
	v := s.visitor(t)
	v.get("/d/" + token)
	for _, path := range []string{post, discard} {
		req, err := http.NewRequest("POST", s.srv.URL+path, strings.NewReader(url.Values{"message": {"forged"}, "keep": {"0"}}.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "https://evil.example")
		if p := v.do(req); p.status != http.StatusForbidden || !p.has("error-text") {
			t.Errorf("cross-origin POST %s: %d, want 403", path, p.status)
		}
	}
	if n, held := s.messageCount(t), s.heldCount(t); n != 1 || held != 1 {
		t.Errorf("%d messages and %d held drafts after cross-origin posts, want 1 and 1", n, held)
	}
}

// syncBuffer is a log destination the server's goroutines share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestDraftLinkTokenStaysOutOfTheLog(t *testing.T) {
	var logged syncBuffer
	s := newSite(t, Options{Logger: slog.New(slog.NewTextHandler(io.MultiWriter(&logged, t.Output()), nil))})
	_, token := s.heldDraft(t, "reply-1@example.org")
	s.pool.Close()
	p := s.visitor(t).get("/d/" + token)
	if p.status != http.StatusInternalServerError {
		t.Fatalf("draft link with the database gone: %d, want 500", p.status)
	}
	if !regexp.MustCompile(`path=/d/…`).MatchString(logged.String()) || strings.Contains(logged.String(), token) {
		t.Errorf("log: want the path with its token left out\n%s", logged.String())
	}
}
