package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/helpdeskgw/helpdesk/tickets"
)

// newClient is the load generator's HTTP client: one kept-alive
// connection per worker, redirects not followed (they are the answers
// measured).
func newClient(conns int) *http.Client {
	return &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true,
			IdleConnTimeout: time.Minute},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       30 * time.Second,
	}
}

// session is a visitor's session cookie and the ticket it was opened for.
type session struct {
	cookie     *http.Cookie
	trackingID string
}

// openSessions gives each sampled ticket a visitor: a link token issued by
// the store, as the acknowledgement carries it, opened once at /t/{token}
// to get the session cookie.
func openSessions(ctx context.Context, client *http.Client, base string, store *tickets.Store, sample []seedTicket, conns int) ([]session, error) {
	out := make([]session, len(sample))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(conns)
	for i, t := range sample {
		g.Go(func() error {
			token, err := store.IssueToken(ctx, t.id, tickets.ScopeTicket)
			if err != nil {
				return err
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/t/"+token, nil)
			if err != nil {
				return err
			}
			req.Header.Set("X-Forwarded-For", fmt.Sprintf("10.1.%d.%d", i>>8&255, i&255))
			resp, err := client.Do(req)
			if err != nil {
				return fmt.Errorf("open link of %s: %w", t.trackingID, err)
			}
			io.Copy(io.Discard, resp.Body) //nolint:errcheck // only the headers matter
			resp.Body.Close()
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ticket/"+t.trackingID {
				return fmt.Errorf("open link of %s: %s to %q, want 303 to its page", t.trackingID, resp.Status, resp.Header.Get("Location"))
			}
			for _, c := range resp.Cookies() {
				// "__Host-helpdesk_session" over HTTPS.
				if strings.HasSuffix(c.Name, "helpdesk_session") {
					out[i] = session{cookie: c, trackingID: t.trackingID}
					return nil
				}
			}
			return fmt.Errorf("open link of %s: no session cookie", t.trackingID)
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// endpoint makes one request to measure, and says whether its answer is
// the one expected.
type endpoint struct {
	name    string
	request func(r *rand.Rand) (*http.Request, func(*http.Response, []byte) error)
}

func healthEndpoint(base string) endpoint {
	return endpoint{name: "GET /healthz", request: func(*rand.Rand) (*http.Request, func(*http.Response, []byte) error) {
		req, _ := http.NewRequest(http.MethodGet, base+"/healthz", nil)
		return req, func(resp *http.Response, body []byte) error {
			if resp.StatusCode != http.StatusOK || string(body) != "ok\n" {
				return fmt.Errorf("healthz: %s %q", resp.Status, body)
			}
			return nil
		}
	}}
}

// ticketEndpoint asks for the page of a random session's ticket.
func ticketEndpoint(base string, sessions []session) endpoint {
	return endpoint{name: "GET /ticket/{ID}", request: func(r *rand.Rand) (*http.Request, func(*http.Response, []byte) error) {
		s := sessions[r.IntN(len(sessions))]
		req, _ := http.NewRequest(http.MethodGet, base+"/ticket/"+s.trackingID, nil)
		req.AddCookie(s.cookie)
		return req, func(resp *http.Response, body []byte) error {
			if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`id="tracking-id">`+s.trackingID+"<")) {
				return fmt.Errorf("ticket page of %s: %s, %d bytes without its tracking ID", s.trackingID, resp.Status, len(body))
			}
			return nil
		}
	}}
}

// visitorAddr is one of 65,536 visitors' addresses, as a trusted proxy
// names them: the gateway's rate limits count per visitor, and a budget
// taken while a lookup runs (given back when it succeeds) must not make
// concurrent lookups of one client fail.
func visitorAddr(r *rand.Rand) string {
	n := r.IntN(1 << 16)
	return fmt.Sprintf("10.0.%d.%d", n>>8, n&255)
}

// lookupEndpoint posts the lookup form with a random ticket's tracking ID
// and address, as a visitor without a session does.
func lookupEndpoint(base string, all []seedTicket) endpoint {
	return endpoint{name: "POST /lookup", request: func(r *rand.Rand) (*http.Request, func(*http.Response, []byte) error) {
		t := all[r.IntN(len(all))]
		form := url.Values{"tracking_id": {t.trackingID}, "email": {t.email}}.Encode()
		req, _ := http.NewRequest(http.MethodPost, base+"/lookup", strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-For", visitorAddr(r))
		return req, func(resp *http.Response, _ []byte) error {
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ticket/"+t.trackingID {
				return fmt.Errorf("lookup of %s: %s to %q, want 303 to its page", t.trackingID, resp.Status, resp.Header.Get("Location"))
			}
			return nil
		}
	}}
}

// load is what a phase of load measured.
type load struct {
	requests  int
	failures  int
	failure   error // the first
	latencies []time.Duration
	elapsed   time.Duration
}

func (l load) perSecond() float64 { return float64(l.requests) / l.elapsed.Seconds() }

// runLoad keeps conns requests to ep in flight, each worker sending its
// next as soon as its last is answered, for d. Requests under way at the
// end are answered and counted: cutting them would measure cancellations.
func runLoad(ctx context.Context, client *http.Client, ep endpoint, conns int, d time.Duration, seed uint64) load {
	var mu sync.Mutex
	var total load
	start := time.Now()
	end := start.Add(d)
	var wg sync.WaitGroup
	for w := range conns {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(seed, uint64(w)))
			var mine load
			mine.latencies = make([]time.Duration, 0, 1<<14)
			for ctx.Err() == nil && time.Now().Before(end) {
				req, check := ep.request(r)
				began := time.Now()
				resp, err := client.Do(req.WithContext(ctx))
				var body []byte
				if err == nil {
					body, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				took := time.Since(began)
				if ctx.Err() != nil {
					break // interrupted
				}
				if err == nil {
					err = check(resp, body)
				}
				mine.requests++
				mine.latencies = append(mine.latencies, took)
				if err != nil {
					mine.failures++
					if mine.failure == nil {
						mine.failure = err
					}
				}
			}
			mu.Lock()
			total.requests += mine.requests
			total.failures += mine.failures
			if total.failure == nil {
				total.failure = mine.failure
			}
			total.latencies = append(total.latencies, mine.latencies...)
			mu.Unlock()
		})
	}
	wg.Wait()
	total.elapsed = time.Since(start)
	return total
}

// runPaced sends requests to ep at a steady rate for d, each as it falls
// due whatever the answers' pace, and times each from when it was due: a
// stall delays the requests behind it, and the figures show it.
func runPaced(ctx context.Context, client *http.Client, ep endpoint, rate float64, d time.Duration, seed uint64) load {
	var mu sync.Mutex
	var total load
	r := rand.New(rand.NewPCG(seed, 0))
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	var wg sync.WaitGroup
	for due := start; due.Before(start.Add(d)) && ctx.Err() == nil; due = due.Add(interval) {
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
		}
		req, check := ep.request(r)
		wg.Go(func() {
			resp, err := client.Do(req.WithContext(ctx))
			var body []byte
			if err == nil {
				body, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			took := time.Since(due)
			if ctx.Err() != nil {
				return // interrupted
			}
			if err == nil {
				err = check(resp, body)
			}
			mu.Lock()
			defer mu.Unlock()
			total.requests++
			total.latencies = append(total.latencies, took)
			if err != nil {
				total.failures++
				if total.failure == nil {
					total.failure = err
				}
			}
		})
	}
	wg.Wait()
	total.elapsed = time.Since(start)
	return total
}
