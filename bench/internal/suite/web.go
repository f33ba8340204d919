package suite

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Ticket is what a customer knows of a ticket: its tracking ID, from the
// acknowledgement, and their address.
type Ticket struct{ TrackingID, Email string }

// AckedTickets are the tickets whose acknowledgement reached the relay, in
// the order they did.
func (r *Relay) AckedTickets() []Ticket {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tickets[:len(r.tickets):len(r.tickets)]
}

// WebLoad is visitors using the portal: each visit looks a ticket up
// (tracking ID and address), opens its page, replies (every third reply
// with a file) and sees the page again.
type WebLoad struct {
	BaseURL  string
	Visitors int
	Until    time.Time
	// Tickets returns the tickets known so far.
	Tickets func() []Ticket
}

// WebResult is what the visitors saw.
type WebResult struct {
	Elapsed  time.Duration
	Requests int
	// Replies accepted (a 303 to the ticket's page saying so).
	Replies int
	// RateLimited are 429 answers, which a lookup may get when visitors
	// look the same ticket up at once (its budget is spent while a lookup
	// runs and given back when it succeeds).
	RateLimited int
	// Errors are other answers than the one expected, and failed requests.
	Errors     int
	FirstError string
	Latencies  []time.Duration
}

// PerSecond is requests per second.
func (r WebResult) PerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

func (r *WebResult) add(o WebResult) {
	r.Requests += o.Requests
	r.Replies += o.Replies
	r.RateLimited += o.RateLimited
	r.Errors += o.Errors
	if r.FirstError == "" {
		r.FirstError = o.FirstError
	}
	r.Latencies = append(r.Latencies, o.Latencies...)
}

// visitor is one simulated person: its own cookies and its own address,
// which the gateway reads from X-Forwarded-For.
type visitor struct {
	base   string
	client *http.Client
	addr   string
	res    WebResult
}

func newVisitor(base string, transport http.RoundTripper, addr string) *visitor {
	jar, _ := cookiejar.New(nil) // never fails without options
	return &visitor{base: base, addr: addr, client: &http.Client{
		Transport: transport, Jar: jar, Timeout: 30 * time.Second,
		// Each redirect is checked and followed by hand, and timed apart.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// do sends one request and returns the answer; the answer's status must
// be one of want, else it counts as an error and do returns false.
func (v *visitor) do(ctx context.Context, method, path, contentType string, body []byte, want ...int) (*http.Response, []byte, bool) {
	req, err := http.NewRequestWithContext(ctx, method, v.base+path, bytes.NewReader(body))
	if err != nil {
		v.fail(fmt.Sprintf("%s %s: %v", method, path, err))
		return nil, nil, false
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("X-Forwarded-For", v.addr)
	// What a browser sends with a form of the site itself.
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	start := time.Now()
	resp, err := v.client.Do(req)
	var b []byte
	if err == nil {
		b, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if ctx.Err() != nil {
		return nil, nil, false // the run ended: not an answer
	}
	v.res.Requests++
	v.res.Latencies = append(v.res.Latencies, time.Since(start))
	if err != nil {
		v.fail(fmt.Sprintf("%s %s: %v", method, path, err))
		return nil, nil, false
	}
	if resp.StatusCode == http.StatusTooManyRequests && method == http.MethodPost && path == "/lookup" {
		v.res.RateLimited++
		return resp, b, false
	}
	for _, w := range want {
		if resp.StatusCode == w {
			return resp, b, true
		}
	}
	v.fail(fmt.Sprintf("%s %s: %s", method, path, resp.Status))
	return resp, b, false
}

func (v *visitor) fail(what string) {
	v.res.Errors++
	if v.res.FirstError == "" {
		v.res.FirstError = what
	}
}

// visit looks t up, opens its page, replies and opens the page again.
func (v *visitor) visit(ctx context.Context, t Ticket, n int, withFile bool) {
	form := url.Values{"tracking_id": {t.TrackingID}, "email": {t.Email}}.Encode()
	resp, _, ok := v.do(ctx, http.MethodPost, "/lookup", "application/x-www-form-urlencoded", []byte(form), http.StatusSeeOther)
	if !ok {
		return
	}
	page := "/ticket/" + t.TrackingID
	if loc := resp.Header.Get("Location"); loc != page {
		v.fail(fmt.Sprintf("lookup of %s: redirected to %q", t.TrackingID, loc))
		return
	}
	if !v.page(ctx, page, t) {
		return
	}
	body, contentType := replyForm(n, withFile)
	resp, _, ok = v.do(ctx, http.MethodPost, page+"/reply", contentType, body, http.StatusSeeOther)
	if !ok {
		return
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, page) || !strings.Contains(loc, "notice=replied") {
		v.fail(fmt.Sprintf("reply to %s: redirected to %q", t.TrackingID, loc))
		return
	}
	v.res.Replies++
	v.page(ctx, loc, t)
}

// page opens a ticket's page and checks that it is that ticket's.
func (v *visitor) page(ctx context.Context, path string, t Ticket) bool {
	_, body, ok := v.do(ctx, http.MethodGet, path, "", nil, http.StatusOK)
	if ok && !bytes.Contains(body, []byte(t.TrackingID)) {
		v.fail(fmt.Sprintf("page of %s does not show its tracking ID", t.TrackingID))
		return false
	}
	return ok
}

// replyForm is the reply form as a browser posts it: multipart, the
// message and, when withFile, a small file.
func replyForm(n int, withFile bool) ([]byte, string) {
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	w.WriteField("message", fmt.Sprintf("Respuesta %d: sigue sin funcionar después de reiniciar el equipo.", n)) //nolint:errcheck // a buffer
	if withFile {
		f, _ := w.CreateFormFile("attachments", fmt.Sprintf("captura-%d.txt", n))                 // a buffer: never fails
		f.Write(bytes.Repeat([]byte("registro de errores: código 500 al iniciar sesión\n"), 400)) //nolint:errcheck // a buffer
	}
	w.Close() //nolint:errcheck // a buffer
	return b.Bytes(), w.FormDataContentType()
}

// RunWeb runs the visitors until load.Until, each visit by a new visitor
// (new cookies, new address), on tickets drawn from load.Tickets.
func RunWeb(ctx context.Context, load WebLoad) WebResult {
	transport := &http.Transport{MaxIdleConnsPerHost: load.Visitors, DisableCompression: true}
	defer transport.CloseIdleConnections()
	var mu sync.Mutex
	var total WebResult
	start := time.Now()
	var wg sync.WaitGroup
	for k := range load.Visitors {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(k), 11))
			var mine WebResult
			for n := 0; ctx.Err() == nil && time.Now().Before(load.Until); n++ {
				known := load.Tickets()
				if len(known) == 0 {
					Sleep(ctx, 50*time.Millisecond) //nolint:errcheck // the loop checks ctx
					continue
				}
				v := newVisitor(load.BaseURL, transport, fmt.Sprintf("10.%d.%d.%d", k+1, n>>8&255, n&255))
				v.visit(ctx, known[rng.IntN(len(known))], n, n%3 == 0)
				mine.add(v.res)
			}
			mu.Lock()
			total.add(mine)
			mu.Unlock()
		})
	}
	wg.Wait()
	total.Elapsed = time.Since(start)
	return total
}

// RunHealth asks for /healthz with as many workers for d: the trivial
// handler of the same server, through the same client code.
func RunHealth(ctx context.Context, base string, workers int, d time.Duration) WebResult {
	transport := &http.Transport{MaxIdleConnsPerHost: workers, DisableCompression: true}
	defer transport.CloseIdleConnections()
	var mu sync.Mutex
	var total WebResult
	start := time.Now()
	var wg sync.WaitGroup
	for k := range workers {
		wg.Go(func() {
			v := newVisitor(base, transport, fmt.Sprintf("10.200.0.%d", k+1))
			for ctx.Err() == nil && time.Since(start) < d {
				v.do(ctx, http.MethodGet, "/healthz", "", nil, http.StatusOK)
			}
			mu.Lock()
			total.add(v.res)
			mu.Unlock()
		})
	}
	wg.Wait()
	total.Elapsed = time.Since(start)
	return total
}
