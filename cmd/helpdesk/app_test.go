package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-message/mail"

	"github.com/helpdeskgw/helpdesk/internal/smtptest"
	"github.com/helpdeskgw/helpdesk/internal/testdb"
)

var db *testdb.DB

func TestMain(m *testing.M) { testdb.Main(m, &db) }

const testBaseURL = "http://helpdesk.test"

// startApp runs the whole gateway on loopback ports with a spool directory.
func startApp(t *testing.T, env ...string) (*App, string) {
	t.Helper()
	app, spool, stop := runApp(t, env...)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("app stopped with %v", err)
		}
	})
	return app, spool
}

// runApp runs the whole gateway, with env (KEY=value) added to its
// configuration; stop shuts it down as SIGTERM does and returns what Run
// returned.
func runApp(t *testing.T, env ...string) (*App, string, func() error) {
	t.Helper()
	db.Reset(t)
	spool := t.TempDir()
	cfg, err := loadConfig(append([]string{
		"HELPDESK_DATABASE_URL=" + db.ConnString(t),
		"HELPDESK_SMTP_ADDR=127.0.0.1:0",
		"HELPDESK_HTTP_ADDR=127.0.0.1:0",
		"HELPDESK_BASE_URL=" + testBaseURL,
		"HELPDESK_MAIL_OUT=file://" + spool,
		"HELPDESK_SMTP_HOSTNAME=mx.test",
	}, env...), true)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	app, err := NewApp(ctx, cfg, slog.New(slog.DiscardHandler), true)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	var once sync.Once
	var runErr error
	return app, spool, func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
}

// waitForFile waits for the n-th file of the spool to appear.
func waitForFile(t *testing.T, dir string, n int) []byte {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
		if len(files) >= n {
			b, err := os.ReadFile(files[n-1])
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("no mail number %d in the spool after 5s (%d there)", n, len(files))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var (
	pdfBytes = append([]byte("%PDF-1.4\n"), bytes.Repeat([]byte{0, 1, 2, 250, 251, 252, '\n'}, 3000)...)
	pngBytes = append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{9, 8, 7, 0xff}, 500)...)
)

// customerMail has a text body, an HTML alternative with an inline image and
// a PDF attachment, as a mail client would write it.
func customerMail() []byte {
	return smtptest.CRLF(`From: "Ana García" <ana@example.org>
To: Soporte <support@localhost>
Subject: =?UTF-8?Q?No_puedo_iniciar_sesi=C3=B3n?=
Message-ID: <e2e-1@mail.example.org>
Date: Fri, 27 Nov 2026 10:00:00 +0100
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="mixed"

--mixed
Content-Type: multipart/alternative; boundary="alt"

--alt
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Hola:
Al iniciar sesi=C3=B3n aparece un error. Adjunto captura y el informe.
--alt
Content-Type: multipart/related; boundary="rel"

--rel
Content-Type: text/html; charset=utf-8

<p>Hola:</p><p>Al iniciar sesión aparece un error.</p><img src="cid:shot@x"><script>alert(1)</script>
--rel
Content-Type: image/png; name="captura.png"
Content-Transfer-Encoding: base64
Content-ID: <shot@x>
Content-Disposition: inline; filename="captura.png"

` + smtptest.Base64Lines(pngBytes) + `--rel--
--alt--
--mixed
Content-Type: application/pdf
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename="informe.pdf"

` + smtptest.Base64Lines(pdfBytes) + `--mixed--
`)
}

func TestMailInTicketOutEndToEnd(t *testing.T) {
	app, spool := startApp(t)

	c := smtptest.Dial(t, app.SMTPAddr())
	if code, msg := c.Send("ana@example.org", []string{"support@localhost"}, customerMail()); code != 250 {
		t.Fatalf("mail refused: %d %s", code, msg)
	}
	c.Quit()

	// The acknowledgement.
	raw := waitForFile(t, spool, 1)
	r, err := mail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	h := r.Header
	subject, _ := h.Subject()
	tag := regexp.MustCompile(`^\[([A-Z1-9]{3}-[A-Z1-9]{3}-[A-Z1-9]{4})\] `).FindStringSubmatch(subject)
	if tag == nil {
		t.Fatalf("acknowledgement subject %q does not start with [ABC-DEF-GHIJ]", subject)
	}
	if !strings.Contains(subject, "No puedo iniciar sesión") {
		t.Errorf("subject %q lacks the customer's subject", subject)
	}
	if !strings.HasPrefix(h.Get("Subject"), "["+tag[1]+"] ") {
		t.Errorf("raw Subject %q: the tag must be readable without decoding", h.Get("Subject"))
	}
	for key, want := range map[string]string{
		"Auto-Submitted": "auto-replied",
		"In-Reply-To":    "<e2e-1@mail.example.org>",
		"References":     "<e2e-1@mail.example.org>",
	} {
		if got := h.Get(key); got != want {
			t.Errorf("%s: %q, want %q", key, got, want)
		}
	}
	to, _ := h.AddressList("To")
	from, _ := h.AddressList("From")
	if len(to) != 1 || to[0].Address != "ana@example.org" || len(from) != 1 || from[0].Address != "support@localhost" {
		t.Errorf("To %v From %v; want ana@example.org from support@localhost", to, from)
	}
	msgID, _ := h.MessageID()
	var text string
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if ct, _, _ := p.Header.(*mail.InlineHeader).ContentType(); ct == "text/plain" {
			b, _ := io.ReadAll(p.Body)
			text = string(b)
		}
	}
	if !strings.Contains(text, tag[1]) {
		t.Errorf("acknowledgement text lacks the tracking ID:\n%s", text)
	}
	link := regexp.MustCompile(regexp.QuoteMeta(testBaseURL) + `/t/[A-Za-z0-9_-]{43}`).FindString(text)
	if link == "" {
		t.Fatalf("acknowledgement text has no %s/t/<token> link:\n%s", testBaseURL, text)
	}

	// The outbox recorded the Message-ID the mail went out with (once the
	// batch's files are synced, just after they appear).
	var state, recorded string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		err = db.Pool(t).QueryRow(context.Background(), `SELECT state, message_id FROM outbox`).Scan(&state, &recorded)
		if err != nil || state == "sent" {
			break
		}
	}
	if err != nil || state != "sent" || recorded != msgID {
		t.Errorf("outbox row: state %q message_id %q (%v); want sent with %q", state, recorded, err, msgID)
	}

	// The link opens the ticket (through the session it gives the browser).
	base := "http://" + app.HTTPAddr()
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	page := get(t, browser, base+strings.TrimPrefix(link, testBaseURL), http.StatusOK)
	for _, want := range []string{tag[1], "No puedo iniciar sesión", "Al iniciar sesión aparece un error", "captura.png", "informe.pdf", "Nuevo", "Media"} {
		if !strings.Contains(page, want) {
			t.Errorf("ticket page lacks %q", want)
		}
	}
	if strings.Contains(page, "<script>alert") {
		t.Error("ticket page carries the customer's script")
	}
	hrefs := regexp.MustCompile(`href="(/ticket/[^"]+/attachments/\d+)"`).FindAllStringSubmatch(page, -1)
	if len(hrefs) != 2 {
		t.Fatalf("%d attachment links on the page, want 2", len(hrefs))
	}
	got := map[string][]byte{}
	for _, m := range hrefs {
		resp, err := browser.Get(base + m[1])
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/octet-stream" ||
			!strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment;") {
			t.Errorf("download %s: %d %q %q; want 200, octet-stream, attachment", m[1], resp.StatusCode,
				resp.Header.Get("Content-Type"), resp.Header.Get("Content-Disposition"))
		}
		got[resp.Header.Get("Content-Disposition")] = body
	}
	if !bytes.Equal(got[`attachment; filename=informe.pdf`], pdfBytes) {
		t.Errorf("informe.pdf: got %d bytes, want the %d sent", len(got[`attachment; filename=informe.pdf`]), len(pdfBytes))
	}
	if !bytes.Equal(got[`attachment; filename=captura.png`], pngBytes) {
		t.Errorf("captura.png: got %d bytes, want the %d sent", len(got[`attachment; filename=captura.png`]), len(pngBytes))
	}

	// A made-up token opens nothing, and neither does another ticket's
	// attachment number.
	get(t, browser, base+"/t/"+strings.Repeat("A", 43), http.StatusNotFound)
	get(t, browser, base+"/ticket/"+tag[1]+"/attachments/999", http.StatusNotFound)
}

func get(t *testing.T, client *http.Client, url string, status int) string {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("GET %s: %d, want %d\n%s", url, resp.StatusCode, status, b)
	}
	return string(b)
}

func TestDepartmentCommands(t *testing.T) {
	db.Reset(t)
	environ := []string{"HELPDESK_DATABASE_URL=" + db.ConnString(t)}
	ctx := context.Background()
	var out bytes.Buffer
	err := run(ctx, []string{"department", "add", "--slug", "facturacion", "--name", "Facturación", "--address", "Facturacion@Example.com", "--locale", "es"}, environ, &out)
	if err != nil {
		t.Fatal(err)
	}
	err = run(ctx, []string{"department", "add", "--slug", "facturacion", "--name", "Otra", "--address", "otra@example.com"}, environ, &out)
	if err == nil || !strings.Contains(err.Error(), "taken") {
		t.Errorf("second department with the same slug: %v, want an error saying it is taken", err)
	}
	for _, bad := range [][]string{
		{"department", "add", "--slug", "Bad Slug", "--name", "x", "--address", "x@example.com"},
		{"department", "add", "--slug", "x", "--name", "x", "--address", "not an address"},
		{"department", "add", "--slug", "x", "--name", "x", "--address", "x@example.com", "--locale", "fr"},
		{"department", "add", "--slug", "x"},
	} {
		if err := run(ctx, bad, environ, &out); err == nil {
			t.Errorf("%v: accepted, want an error", bad)
		}
	}
	out.Reset()
	if err := run(ctx, []string{"department", "list"}, environ, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "facturacion") || !strings.Contains(out.String(), "facturacion@example.com") {
		t.Errorf("department list:\n%s", out.String())
	}
	out.Reset()
	if err := run(ctx, []string{"migrate"}, environ, &out); err != nil || !strings.Contains(out.String(), "schema version") {
		t.Errorf("migrate: %v %q", err, out.String())
	}
}

func TestConfigErrorsNameTheVariable(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{nil, "HELPDESK_DATABASE_URL"},
		{[]string{"HELPDESK_DATABASE_URL=postgres://x/y", "HELPDESK_HTTP_ADDR=nonsense"}, "HELPDESK_HTTP_ADDR"},
		{[]string{"HELPDESK_DATABASE_URL=postgres://x/y", "HELPDESK_MAIL_OUT=ftp://x"}, "HELPDESK_MAIL_OUT"},
		{[]string{"HELPDESK_DATABASE_URL=postgres://x/y", "HELPDESK_BASE_URL=localhost"}, "HELPDESK_BASE_URL"},
		{[]string{"HELPDESK_DATABASE_URL=postgres://x/y", "HELPDESK_LOG_FORMAT=xml"}, "HELPDESK_LOG_FORMAT"},
		{[]string{"HELPDESK_DATABASE_URL=postgres://x/y", "HELPDESK_TOKEN_TTL=soon"}, "HELPDESK_TOKEN_TTL"},
		{[]string{"HELPDESK_DATABASE_URL=postgres://x/y", "HELPDESK_TRUSTED_PROXIES=10.0.0.0/8,proxy.local"}, "HELPDESK_TRUSTED_PROXIES"},
		{[]string{"HELPDESK_DATABASE_URL=postgres://x/y", "HELPDESK_SHUTDOWN_TIMEOUT=0s"}, "HELPDESK_SHUTDOWN_TIMEOUT"},
		{[]string{"HELPDESK_DATABASE_URL=postgres://x/y", "HELPDESK_MAX_UPLOAD_BYTES=1024"}, "HELPDESK_MAX_UPLOAD_BYTES"},
		{[]string{"HELPDESK_DATABASE_URL=postgres://x/y", "HELPDESK_SESSION_TTL=30s"}, "HELPDESK_SESSION_TTL"},
		{[]string{"HELPDESK_DATABASE_URL=postgres://x/y", "HELPDESK_SENDER_TICKETS_PER_HOUR=0"}, "HELPDESK_SENDER_TICKETS_PER_HOUR"},
		{[]string{"HELPDESK_DATABASE_URL=postgres://x/y", "HELPDESK_DRAFT_TTL=5m"}, "HELPDESK_DRAFT_TTL"},
		{[]string{"HELPDESK_DATABASE_URL=postgres://x/y", "HELPDESK_SMTP_CHECK_AUTH=perhaps"}, "HELPDESK_SMTP_CHECK_AUTH"},
		{[]string{"HELPDESK_DATABASE_URL=postgres://x/y", "HELPDESK_SECRET_KEY=c2hvcnQ="}, "HELPDESK_SECRET_KEY: 5 bytes, want 32"},
		{[]string{"HELPDESK_DATABASE_URL=postgres://x/y", "HELPDESK_MAIL_OUT=smtp://support@relay.example.com?auth=oauth2&mailbox=soporte"},
			"HELPDESK_SECRET_KEY: not set, but HELPDESK_MAIL_OUT logs in with the OAuth2 tokens of the mailbox of soporte"},
	} {
		_, err := loadConfig(tc.env, true)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("env %v: error %v, want one naming %s", tc.env, err, tc.want)
		}
	}
	cfg, err := loadConfig([]string{"HELPDESK_DATABASE_URL=postgres://x/y", "HELPDESK_SMTP_ADDR=", "HELPDESK_MAIL_OUT=file://" + t.TempDir()}, true)
	if err != nil || cfg.SMTPAddr != "" {
		t.Errorf("empty HELPDESK_SMTP_ADDR: %q, %v; want the listener disabled", cfg.SMTPAddr, err)
	}
	cfg, err = loadConfig([]string{"HELPDESK_DATABASE_URL=postgres://x/y", "HELPDESK_TRUSTED_PROXIES=10.0.0.0/8, 192.0.2.1,2001:db8::/32"}, true)
	if proxies, perr := cfg.trustedProxies(); err != nil || perr != nil || len(proxies) != 3 || !proxies[1].Contains(netip.MustParseAddr("192.0.2.1")) {
		t.Errorf("trusted proxies: %v %v %v", proxies, err, perr)
	}
	cfg, err = loadConfig([]string{"HELPDESK_DATABASE_URL=postgres://x/y", "HELPDESK_MAIL_OUT=file://" + t.TempDir()}, true)
	if err != nil || cfg.SMTPAddr != defaultSMTPAddr || cfg.HTTPAddr != "127.0.0.1:8080" {
		t.Errorf("defaults: %+v, %v", cfg, err)
	}
}
