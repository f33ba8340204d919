package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helpdeskgw/helpdesk/bench/internal/benchkit"
	"github.com/helpdeskgw/helpdesk/tickets"
)

// aimP99 is the latency both pages should stay under on the 2-core machine.
const aimP99 = 20 * time.Millisecond

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// phase is one endpoint measured, under closed-loop load (conns
// connections) or paced (a steady rate).
type phase struct {
	ep    endpoint
	paced float64 // requests/s; 0: closed-loop
	res   load
	cpu   cpuTimes
	// writes are the sessions written during the phase: extended (ticket
	// page) or created (lookup).
	writes int64
}

func (p phase) cpuPerRequest() string {
	n := time.Duration(max(1, p.res.requests))
	us := func(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d/n)/float64(time.Microsecond)) }
	return us(p.cpu.gateway) + " / " + us(p.cpu.postgres) + " / " + us(p.cpu.self)
}

func (p phase) p50() time.Duration { return benchkit.Percentile(p.res.latencies, 50) }
func (p phase) p99() time.Duration { return benchkit.Percentile(p.res.latencies, 99) }
func (p phase) latency() string    { return benchkit.Millis(p.p50()) + " / " + benchkit.Millis(p.p99()) }

// pacedShare is the rate of a paced phase, as a share of what the same
// endpoint served with all connections busy.
const pacedShare = 0.5

func run(ctx context.Context, o options) error {
	root, err := benchkit.ModuleRoot()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "helpdesk-bench-web-")
	if err != nil {
		return err
	}
	if o.keep {
		defer progress("kept %s", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	// PostgreSQL runs as its own user when this runs as root.
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}

	progress("building the gateway")
	bin, err := benchkit.BuildGateway(ctx, root, dir)
	if err != nil {
		return err
	}
	progress("starting PostgreSQL (durable: fsync and synchronous_commit on)")
	pgDir := filepath.Join(dir, "pg")
	db, err := benchkit.StartDatabase(ctx, pgDir, "helpdesk")
	if err != nil {
		return err
	}
	if o.keep {
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			db.Cluster.Stop(sctx, false) //nolint:errcheck // the data stays for inspection either way
		}()
	} else {
		defer db.Destroy()
	}
	pgPID, err := benchkit.PostmasterPID(pgDir)
	if err != nil {
		return err
	}
	if err := migrate(ctx, bin, db.URL); err != nil {
		return err
	}
	progress("seeding %d tickets", o.tickets)
	all, counts, err := seed(ctx, db.URL, o.tickets)
	if err != nil {
		return err
	}
	progress("seeded %d tickets, %d messages, %d attachments, %d history rows (%.0f MB) in %.1f s",
		counts.tickets, counts.messages, counts.attachments, counts.history, float64(counts.databaseBytes)/1e6, counts.took.Seconds())

	g, err := startGateway(ctx, bin, db.URL, dir)
	if err != nil {
		return err
	}
	defer func() {
		if err := g.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "web:", err)
		}
	}()
	pool, err := pgxpool.New(ctx, db.URL)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer pool.Close()
	store := tickets.New(tickets.Options{Pool: pool})
	client := newClient(o.conns)
	base := "http://" + g.HTTPAddr
	progress("writing %d knowledge base articles", o.articles)
	articles, err := seedArticles(ctx, store, []string{"soporte", "facturacion", "support"}, o.articles)
	if err != nil {
		return err
	}

	r := rand.New(rand.NewPCG(3, 4))
	sample := make([]seedTicket, o.sessions)
	for i, j := range r.Perm(len(all))[:o.sessions] {
		sample[i] = all[j]
	}
	progress("picking the articles of the %d tickets to be seen", o.sessions)
	picks, err := pickArticles(ctx, store, sample, o.conns)
	if err != nil {
		return err
	}
	progress("opening %d sessions through mailed links", o.sessions)
	sessions, err := openSessions(ctx, client, base, store, sample, o.conns)
	if err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, `VACUUM (ANALYZE) sessions, session_tickets, tokens`); err != nil {
		return fmt.Errorf("vacuum sessions: %w", err)
	}

	probe := cpuProbe{gatewayPID: g.PID(), postmasterPID: pgPID}
	health := &phase{ep: healthEndpoint(base)}
	// Each endpoint busy, then paced at half what it served busy.
	var endpoints [][2]*phase
	phases := []*phase{health}
	for _, ep := range []endpoint{ticketEndpoint(base, sessions), lookupEndpoint(base, all),
		kbSearchEndpoint(base), kbSuggestEndpoint(base), kbArticleEndpoint(base, articles)} {
		pair := [2]*phase{{ep: ep}, {ep: ep}}
		endpoints = append(endpoints, pair)
		phases = append(phases, pair[0], pair[1])
	}
	ticket := endpoints[0]
	// Paced requests each take a connection of their own while they wait.
	pacedClient := newClient(256)
	for i, p := range phases {
		for _, pair := range endpoints {
			if p == pair[1] {
				p.paced = pacedShare * pair[0].res.perSecond()
			}
		}
		how := fmt.Sprintf("%d connections", o.conns)
		if p.paced > 0 {
			how = fmt.Sprintf("paced at %.0f requests/s", p.paced)
		}
		progress("%s, %s: %v warm-up, then %v measured", p.ep.name, how, o.warmup, o.duration)
		measure := func(d time.Duration, seed uint64) load {
			if p.paced > 0 {
				return runPaced(ctx, pacedClient, p.ep, p.paced, d, seed)
			}
			return runLoad(ctx, client, p.ep, o.conns, d, seed)
		}
		measure(o.warmup, uint64(100+i))
		if p == ticket[0] || p == ticket[1] {
			// Visitors coming back: the first page of a visit extends the
			// session's life, a write, as it does after a minute away.
			// The vacuum clears what the aging left, which is no visitor's.
			if _, err := pool.Exec(ctx, `UPDATE sessions SET last_seen = now() - interval '2 minutes'`); err != nil {
				return fmt.Errorf("age sessions: %w", err)
			}
			if _, err := pool.Exec(ctx, `VACUUM sessions`); err != nil {
				return fmt.Errorf("vacuum sessions: %w", err)
			}
		}
		var since time.Time
		if err := pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&since); err != nil {
			return fmt.Errorf("database clock: %w", err)
		}
		before := probe.snapshot()
		p.res = measure(o.duration, uint64(i))
		p.cpu = probe.snapshot().sub(before)
		if err := ctx.Err(); err != nil {
			return err
		}
		if p.res.failures > 0 {
			return fmt.Errorf("%s: %d of %d answers wrong, the first: %w", p.ep.name, p.res.failures, p.res.requests, p.res.failure)
		}
		err := pool.QueryRow(ctx, `SELECT count(*) FROM sessions WHERE last_seen >= $1 OR created_at >= $1`, since).Scan(&p.writes)
		if err != nil {
			return fmt.Errorf("count session writes: %w", err)
		}
		progress("%s, %s: %.0f requests/s, p50 %s, p99 %s", p.ep.name, how, p.res.perSecond(),
			benchkit.Millis(p.p50()), benchkit.Millis(p.p99()))
	}
	return report(o, counts, len(articles), picks, health, endpoints, g.Problems())
}

// report writes the table: healthz, then each endpoint with all
// connections busy and paced.
func report(o options, counts seedCounts, articles int, picks []time.Duration, health *phase, endpoints [][2]*phase, problems int) error {
	healthRate := health.res.perSecond()
	verdict := func(p *phase) string {
		if p.p99() < aimP99 {
			return benchkit.Millis(p.p99()) + ", met"
		}
		return benchkit.Millis(p.p99()) + ", NOT met"
	}
	rows := []benchkit.Row{
		{Figure: fmt.Sprintf("GET /healthz (trivial handler), %d connections: requests/s", o.conns), Value: fmt.Sprintf("%.0f", healthRate)},
		{Figure: "GET /healthz, p50 / p99", Value: health.latency()},
	}
	var aims, cpu []string
	for _, e := range endpoints {
		busy, paced := e[0], e[1]
		rows = append(rows,
			benchkit.Row{Figure: fmt.Sprintf("%s, %d connections: requests/s", busy.ep.name, o.conns), Value: fmt.Sprintf("%.0f", busy.res.perSecond()),
				Ceiling: fmt.Sprintf("healthz %.0f", healthRate), Ratio: benchkit.Ratio(busy.res.perSecond(), healthRate)},
			benchkit.Row{Figure: fmt.Sprintf("%s, %d connections: p50 / p99", busy.ep.name, o.conns), Value: busy.latency(),
				Ceiling: "healthz " + health.latency(), Ratio: benchkit.Ratio(float64(busy.p99()), float64(health.p99()))},
			benchkit.Row{Figure: fmt.Sprintf("%s, paced at %.0f requests/s (half the above): p50 / p99", busy.ep.name, paced.paced),
				Value: paced.latency(), Ceiling: "aim p99 < " + aimP99.String(), Ratio: benchkit.Ratio(float64(paced.p99()), float64(aimP99))},
		)
		aims = append(aims, fmt.Sprintf("Aim: %s p99 under %v: with %d connections %s; paced at half that throughput %s",
			busy.ep.name, aimP99, o.conns, verdict(busy), verdict(paced)))
		cpu = append(cpu, busy.ep.name+" "+busy.cpuPerRequest())
	}
	ticket, lookup := endpoints[0], endpoints[1]
	rows = append(rows,
		benchkit.Row{Figure: fmt.Sprintf("CPU per request (%d connections), gateway / PostgreSQL / load generator", o.conns),
			Value: strings.Join(append([]string{"GET /healthz " + health.cpuPerRequest()}, cpu...), "; ")},
		benchkit.Row{Figure: fmt.Sprintf("picking a ticket's articles (once, for its acknowledgement), %d one at a time: p50 / p99", len(picks)),
			Value: benchkit.Millis(benchkit.Percentile(picks, 50)) + " / " + benchkit.Millis(benchkit.Percentile(picks, 99))},
		benchkit.Row{Figure: "session writes per request: GET /ticket/{ID} (the first page of a visit) busy / paced; POST /lookup (a new session)",
			Value: fmt.Sprintf("%.2f / %.2f; %.2f", writesPerRequest(ticket[0]), writesPerRequest(ticket[1]), writesPerRequest(lookup[0]))},
	)
	checked := []string{fmt.Sprintf("%d %s", health.res.requests, health.ep.name)}
	for _, e := range endpoints {
		checked = append(checked, fmt.Sprintf("%d %s", e[0].res.requests+e[1].res.requests, e[0].ep.name))
	}
	aims = append(aims, fmt.Sprintf("Answers checked: %s, none wrong; the gateway logged %d warnings or errors.",
		strings.Join(checked, ", "), problems))
	rep := benchkit.Report{
		Title:   "Web portal benchmark",
		Command: "go run ./bench/web",
		Method: fmt.Sprintf("The real binary (`helpdesk serve`, SMTP listener off) on a private PostgreSQL with fsync and "+
			"synchronous_commit on, seeded through COPY with %d tickets in three departments (%d messages: the customer's, "+
			"an agent's answer and for some a follow-up, the mailed ones with their HTML; %d attachments over 64 stored "+
			"files; %d history rows; %.0f MB), then VACUUM ANALYZE and a checkpoint. A Go load generator in this process "+
			"measures each endpoint for %v after %v of warm-up, twice: with %d kept-alive connections busy (each sends "+
			"its next request when the last is answered: the throughput), then paced at half that throughput (each "+
			"request sent when due and timed from then: the latency with headroom). It checks every answer: "+
			"`GET /healthz` (200 `ok`, the trivial handler of the same server), `GET /ticket/{ID}` with the session "+
			"cookie of one of %d visitors, each opened through a link token the store issued for a random ticket (200 "+
			"with that ticket's ID in the page; after the warm-up the sessions are aged by two minutes and vacuumed, so that "+
			"the first page of each visit extends the session, a write, as after a minute away), and `POST /lookup` with the "+
			"tracking ID and address of a random ticket of all %d (303 to its page, a new session each time). The rate "+
			"limits count per visitor, and a lookup holds one unit of its visitor's budget while it runs (given back when "+
			"it succeeds), so concurrent lookups from one address would be refused: the gateway trusts the load generator "+
			"as a proxy (`HELPDESK_TRUSTED_PROXIES=127.0.0.1/32`) and each lookup names one of 65,536 visitors in "+
			"`X-Forwarded-For`; every lookup succeeds, so no limit is reached. The knowledge base holds %d published "+
			"articles (half Spanish, half English, about 1.5 KB of text each, written through the store's import; titles "+
			"from 16 topics and 10 aspects, texts from the tickets' own vocabulary of about 120 words, so a common word "+
			"matches hundreds of articles: a hard case for search). Before the sessions are opened, each of their "+
			"tickets has its articles picked (by its subject and message, as its acknowledgement does; the first "+
			"500 one at a time and timed), which its page then offers; `GET /kb?q=` searches it as a visitor does "+
			"(words without their accents, plurals; 200 with a marked word), `GET /kb/suggest` asks for the submit "+
			"form's live suggestions of a subject being typed (200 with an article), `GET /kb/{article}` opens a random "+
			"article (200 with its title); these too come from 65,536 visitors. Load generator, gateway and PostgreSQL "+
			"share the machine's cores.",
			counts.tickets, counts.messages, counts.attachments, counts.history, float64(counts.databaseBytes)/1e6,
			o.duration, o.warmup, o.conns, o.sessions, counts.tickets, articles),
		Rows: rows,
		Aims: aims,
	}
	if o.results == "" {
		return rep.Write("")
	}
	root, err := benchkit.ModuleRoot()
	if err != nil {
		return err
	}
	return rep.Write(filepath.Join(root, o.results))
}

func writesPerRequest(p *phase) float64 { return float64(p.writes) / float64(max(1, p.res.requests)) }
