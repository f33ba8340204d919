package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/helpdeskgw/helpdesk/bench/internal/benchkit"
	"github.com/helpdeskgw/helpdesk/bench/internal/suite"
)

const (
	// healthFor is how long /healthz is measured.
	healthFor = 5 * time.Second
	// idleMails are appended to the bare IDLE client.
	idleMails = 10
	// settle bounds the wait for the acknowledgements after the load.
	settle = 2 * time.Minute
)

// figures are what the run measured.
type figures struct {
	noop, smtp   suite.SMTPResult
	health, web  suite.WebResult
	bareIdle     []time.Duration
	pickups      []time.Duration
	notPickedUp  int
	appended     int
	rec          suite.Reconciliation
	cpu          string   // shares of the machine during the load
	dovecot      []string // warnings Dovecot logged
	postgres     string
	gatewayWarns int
}

func run(ctx context.Context, o options) (err error) {
	ws, err := suite.NewWorkspace(ctx, "helpdesk-load-", o.bin, o.keep)
	if err != nil {
		return err
	}
	defer ws.Close()
	suite.Progress("starting PostgreSQL, Dovecot, the relay and the gateway")
	env, err := suite.Setup(ctx, suite.Options{Bin: ws.Bin, Dir: filepath.Join(ws.Dir, "load"), Mailbox: true,
		LogLevel: "warn", Keep: o.keep})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, env.Close()) }()
	var f figures
	if f.postgres, err = env.Postgres(ctx); err != nil {
		return err
	}
	nonce := strconv.FormatInt(time.Now().UnixNano(), 36)

	if err := ceilings(ctx, o, env, nonce, &f); err != nil {
		return err
	}
	if _, err := env.WaitMailboxState(ctx, "idling", time.Time{}, time.Minute); err != nil {
		return err
	}
	if err := mixedLoad(ctx, o, env, nonce, &f); err != nil {
		return err
	}
	f.gatewayWarns = env.Gateway.Problems()
	f.dovecot = env.DovecotWarnings(3)
	suite.PrintChecks("reconciliation", f.rec.Checks)
	section := report(o, f)
	fmt.Println()
	fmt.Println(section)
	if path := ws.Path(o.results); path != "" {
		if err := suite.WriteSection(path, "load", section); err != nil {
			return err
		}
		suite.Progress("wrote the load section of %s", path)
	}
	if suite.Failed(f.rec.Checks) {
		return errors.New("the reconciliation failed; see the checks above")
	}
	return nil
}

// ceilings measures, while the gateway is idle: the senders and mix
// against a no-op SMTP server, /healthz, and a bare IDLE client.
func ceilings(ctx context.Context, o options, env *suite.Env, nonce string, f *figures) error {
	noop, err := benchkit.StartNoopSMTP(64 << 20)
	if err != nil {
		return err
	}
	suite.Progress("ceiling: %d senders, the same mix, to a no-op SMTP server for %v", o.senders, o.ceiling)
	f.noop = suite.RunSMTP(ctx, suite.Stream(noop.Addr(), o.senders, suite.NewGenerator(nonce+"-noop"), suite.MixedSizes(), 0,
		time.Now().Add(o.ceiling)))
	if err := noop.Close(); err != nil {
		return err
	}
	suite.Progress("ceiling: GET /healthz with %d clients for %v", o.visitors, healthFor)
	f.health = suite.RunHealth(ctx, env.BaseURL, o.visitors, healthFor)
	suite.Progress("ceiling: %d mails appended to a bare go-imap client's IDLE", idleMails)
	f.bareIdle, err = env.BareIdle(ctx, suite.NewGenerator(nonce+"-idle"), idleMails)
	return err
}

// mixedLoad runs SMTP, IMAP and web traffic together, then reconciles.
func mixedLoad(ctx context.Context, o options, env *suite.Env, nonce string, f *figures) error {
	gen := suite.NewGenerator(nonce)
	watcher, err := suite.WatchInbound(ctx, env.Pool, "imap", 10*time.Millisecond)
	if err != nil {
		return err
	}
	defer watcher.Stop()
	suite.Progress("load: %d SMTP senders, a mail appended every %v, %d web visitors, for %v", o.senders, o.imapEvery,
		o.visitors, o.duration)
	cpuBefore := env.CPU()
	until := time.Now().Add(o.duration)
	var appended []suite.Appended
	var appendErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		f.smtp = suite.RunSMTP(ctx, suite.Stream(env.SMTPAddr, o.senders, gen, suite.MixedSizes(), 0, until))
	})
	wg.Go(func() { appended, appendErr = env.AppendPaced(ctx, gen, o.imapEvery, until) })
	wg.Go(func() {
		f.web = suite.RunWeb(ctx, suite.WebLoad{BaseURL: env.BaseURL, Visitors: o.visitors, Until: until,
			Tickets: env.Relay.AckedTickets})
	})
	wg.Wait()
	f.cpu = env.CPU().Shares(cpuBefore)
	if err := errors.Join(appendErr, ctx.Err()); err != nil {
		return err
	}
	suite.Progress("load over: %d mails answered 250, %d appended, %d web requests; reconciling", len(f.smtp.Accepted),
		len(appended), f.web.Requests)
	ids := make([]string, len(appended))
	for i, a := range appended {
		ids[i] = a.MessageID
	}
	f.rec, err = env.Reconcile(ctx, suite.Expect{SMTP: f.smtp.IDs(), IMAP: ids, WebReplies: f.web.Replies, Settle: settle})
	if err != nil {
		return err
	}
	f.appended = len(appended)
	f.pickups, f.notPickedUp = watcher.Pickups(appended)
	return nil
}

// report writes the load section of the results.
func report(o options, f figures) string {
	s, n := f.smtp, f.noop
	p := benchkit.Percentile
	gLat, nLat := s.Latencies(), n.Latencies()
	webLat, healthLat := f.web.Latencies, f.health.Latencies
	rows := []benchkit.Row{
		{Figure: fmt.Sprintf("SMTP mails accepted/s (%s mails of 2 KB–5 MB, %d senders, %v)", suite.Count(float64(len(s.Accepted))), o.senders, o.duration),
			Value:   suite.Count(s.Rate()),
			Ceiling: fmt.Sprintf("no-op SMTP %s (same senders and mix, %v)", suite.Count(n.Rate()), o.ceiling),
			Ratio:   benchkit.Ratio(s.Rate(), n.Rate())},
		{Figure: "SMTP MB/s accepted", Value: fmt.Sprintf("%.1f", s.MBps()), Ceiling: fmt.Sprintf("no-op SMTP %.1f", n.MBps()),
			Ratio: benchkit.Ratio(s.MBps(), n.MBps())},
		{Figure: "SMTP latency p50 / p99 (MAIL FROM → 250 of the attempt that succeeded)",
			Value:   benchkit.Millis(p(gLat, 50)) + " / " + benchkit.Millis(p(gLat, 99)),
			Ceiling: "no-op SMTP " + benchkit.Millis(p(nLat, 50)) + " / " + benchkit.Millis(p(nLat, 99)),
			Ratio:   benchkit.Ratio(float64(p(nLat, 99)), float64(p(gLat, 99)))},
	}
	for _, c := range suite.MixedSizes() {
		g, nn := byClass(s, c.Name), byClass(n, c.Name)
		rows = append(rows, benchkit.Row{
			Figure: fmt.Sprintf("… %s (%.1f%% of mails): accepted, p50 / p99", c.Name, c.Weight*100),
			Value:  fmt.Sprintf("%s, %s / %s", suite.Count(float64(len(g))), benchkit.Millis(p(g, 50)), benchkit.Millis(p(g, 99))),
			Ceiling: fmt.Sprintf("no-op %s, %s / %s", suite.Count(float64(len(nn))), benchkit.Millis(p(nn, 50)),
				benchkit.Millis(p(nn, 99))),
			Ratio: benchkit.Ratio(float64(p(nn, 99)), float64(p(g, 99)))})
	}
	rows = append(rows,
		benchkit.Row{Figure: "SMTP attempts refused (4xx) / connections refused or broken, seen by the senders",
			Value:   fmt.Sprintf("%d / %d%s", s.Count(suite.Is4xx), s.Count(suite.IsConnection), replies(s)),
			Ceiling: fmt.Sprintf("no-op %d / %d", n.Count(suite.Is4xx), n.Count(suite.IsConnection))},
		benchkit.Row{Figure: fmt.Sprintf("web requests/s (%d visitors: lookup, ticket page, reply, page)", o.visitors),
			Value:   suite.Count(f.web.PerSecond()),
			Ceiling: fmt.Sprintf("GET /healthz %s (same client, gateway idle)", suite.Count(f.health.PerSecond())),
			Ratio:   benchkit.Ratio(f.web.PerSecond(), f.health.PerSecond())},
		benchkit.Row{Figure: "web latency p50 / p99",
			Value:   benchkit.Millis(p(webLat, 50)) + " / " + benchkit.Millis(p(webLat, 99)),
			Ceiling: "GET /healthz " + benchkit.Millis(p(healthLat, 50)) + " / " + benchkit.Millis(p(healthLat, 99)),
			Ratio:   benchkit.Ratio(float64(p(healthLat, 99)), float64(p(webLat, 99)))},
		benchkit.Row{Figure: "web replies accepted / lookups answered 429 / errors",
			Value: fmt.Sprintf("%d / %d / %d%s", f.web.Replies, f.web.RateLimited, f.web.Errors, firstError(f.web))},
		benchkit.Row{Figure: fmt.Sprintf("IMAP pickup p50 / p99 (%d mails appended every %v; APPEND → ticket committed)", f.appended, o.imapEvery),
			Value:   benchkit.Millis(p(f.pickups, 50)) + " / " + benchkit.Millis(p(f.pickups, 99)),
			Ceiling: "bare go-imap IDLE, APPEND → EXISTS " + benchkit.Millis(p(f.bareIdle, 50)) + " / " + benchkit.Millis(p(f.bareIdle, 99)),
			Ratio:   benchkit.Ratio(float64(p(f.bareIdle, 99)), float64(p(f.pickups, 99)))},
		benchkit.Row{Figure: "CPU during the load, share of all cores: gateway / PostgreSQL / load generator / the rest (Dovecot, other processes)",
			Value: f.cpu},
		benchkit.Row{Figure: "tickets / acknowledgements all sent, after the load ended",
			Value: fmt.Sprintf("%s / %s", suite.Count(float64(f.rec.Tickets)), settled(f.rec))},
	)
	verdict := "every check passed"
	if suite.Failed(f.rec.Checks) {
		verdict = "**some checks FAILED**"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "## Load\n\nMeasured %s with `go run ./bench/load` (`make bench`); reconciliation: %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), verdict)
	fmt.Fprintf(&b, "The real binary (`helpdesk serve`, log level warn) on a private PostgreSQL with fsync and synchronous_commit on, "+
		"its department's mailbox on a private Dovecot (`--move-to %s`), its mail going to a relay on loopback that records each mail. "+
		"For %v at once: %d SMTP senders, each one connection sending mail after mail like a mail server (a 4xx or a broken "+
		"connection is retried after 100 ms doubling to 5 s, jittered), each mail with its own Message-ID and its own sender "+
		"address (so no per-sender limit is reached; the limits are the defaults), sizes drawn from the mix below; a small mail "+
		"appended to the mailbox every %v, timed from the start of its APPEND until its row in the inbound log (committed "+
		"with its ticket) is seen, the log read every 10 ms; %d web visitors, each visit a new visitor (its own cookies and X-Forwarded-For "+
		"address, the gateway trusting the load generator as a proxy) looking up a ticket whose acknowledgement reached the "+
		"relay, opening its page, replying (every third reply with a 20 KB file) and opening the page again. Then the "+
		"reconciliation below, from PostgreSQL, the relay and Dovecot. The ceilings are measured in the same run before the "+
		"load, on the same machine: the same senders and mix against a go-smtp server that discards the mail, `GET /healthz` "+
		"of the same gateway through the same client, and a bare go-imap client idling on a folder of the same Dovecot "+
		"(Dovecot gathers changes for about half a second before it tells an idling client). Ratios are value/ceiling for "+
		"rates and ceiling/value for latencies (p99): 1 is as good as the ceiling. Load generator, gateway, PostgreSQL and "+
		"Dovecot share the machine's cores.\n\n", suite.Processed, o.duration, o.senders, o.imapEvery, o.visitors)
	fmt.Fprintf(&b, "- %s\n- %s\n\n", benchkit.Machine(), f.postgres)
	b.WriteString(benchkit.Table(rows))
	b.WriteString("\nReconciliation:\n\n")
	b.WriteString(suite.ChecksTable(f.rec.Checks))
	fmt.Fprintf(&b, "\nThe gateway logged %d lines at warn or error level.\n", f.gatewayWarns)
	for _, w := range f.dovecot {
		fmt.Fprintf(&b, "\nDovecot warned: `%s`\n", strings.ReplaceAll(w, "`", "'"))
	}
	return b.String()
}

func byClass(r suite.SMTPResult, class string) []time.Duration {
	var out []time.Duration
	for _, a := range r.Accepted {
		if a.Class == class {
			out = append(out, a.Latency)
		}
	}
	return out
}

// replies names the refusals by reply, when there were any.
func replies(r suite.SMTPResult) string {
	if len(r.Refusals) == 0 {
		return ""
	}
	return " (" + suite.Tally(r.Replies()) + ")"
}

func firstError(r suite.WebResult) string {
	if r.FirstError == "" {
		return ""
	}
	return " (first: " + r.FirstError + ")"
}

func settled(r suite.Reconciliation) string {
	if r.Unsettled {
		return fmt.Sprintf("not within %v", settle)
	}
	return suite.Seconds(r.Settled)
}
