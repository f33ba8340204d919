package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helpdeskgw/helpdesk/bench/internal/benchkit"
	"github.com/helpdeskgw/helpdesk/internal/dovecot"
)

// Aims of the issue.
const (
	aimP99        = time.Second
	aimPerMailbox = 200 << 10 // bytes of Go heap and stacks per idle mailbox
)

func run(ctx context.Context, o options) error {
	dir, err := os.MkdirTemp("", "helpdesk-bench-mailboxes-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// PostgreSQL runs as its own user when this runs as root.
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "starting PostgreSQL and Dovecot with %d users\n", o.mailboxes)
	db, err := benchkit.StartDatabase(ctx, dir+"/pg", "helpdesk")
	if err != nil {
		return err
	}
	defer db.Destroy()
	users := map[string]string{}
	for i := range o.mailboxes {
		users[user(i)] = password
	}
	// Twice as many connections as mailboxes (the gateway's, and the
	// clients that append), each with a login process of its own over TLS:
	// above Dovecot's default of 100 processes per service. And a hundred
	// sessions to an imap process: every user's mail belongs to one system
	// user here, and the kernel gives a user 128 inotify instances, one per
	// process; past them Dovecot tells idling clients of new mail only
	// every 30 s.
	limits := fmt.Sprintf("default_process_limit = %d\ndefault_client_limit = %d\n"+
		"service imap {\n  service_count = 0\n  client_limit = 100\n}\n", 2*o.mailboxes+100, 8*o.mailboxes+1000)
	srv, err := dovecot.Start(ctx, dovecot.Options{Users: users, TLS: o.tls, ExtraConfig: limits})
	if err != nil {
		return err
	}
	defer srv.Close()
	os.Setenv(passwordVar, password)
	scheme, imapAddr, tlsConfig := "imap://", srv.Addr(), (*tls.Config)(nil)
	if o.tls {
		roots := x509.NewCertPool()
		roots.AddCert(srv.Certificate())
		scheme, imapAddr, tlsConfig = "imaps://", srv.TLSAddr(), &tls.Config{RootCAs: roots}
	}
	g, err := newGateway(ctx, db.URL, scheme, imapAddr, tlsConfig, o.mailboxes)
	if err != nil {
		return err
	}
	defer g.pool.Close()
	ids, err := g.mailboxIDs(ctx)
	if err != nil {
		return err
	}

	fmt.Fprintf(os.Stderr, "ceiling: %d bare go-imap clients idling\n", o.mailboxes)
	bare, bareConns, err := bareIdlers(ctx, srv, tlsConfig, o.mailboxes)
	if err != nil {
		return err
	}
	if bareConns != o.mailboxes {
		return fmt.Errorf("bare clients: %d connections counted by Dovecot, want %d", bareConns, o.mailboxes)
	}

	fmt.Fprintf(os.Stderr, "attach: %d mailboxes\n", o.mailboxes)
	// The pool opens its connections as the pollers first write their
	// states: open them now, so that the measure is of the mailboxes alone.
	if err := warmPool(ctx, g); err != nil {
		return err
	}
	before := measure()
	one := g.start(ctx, "one")
	defer func() { one.stop() }()
	attach, err := g.waitIdling(ctx, "attach", map[string]int{"one": o.mailboxes})
	if err != nil {
		return err
	}
	time.Sleep(2 * time.Second) // the first syncs' deliveries end
	cost := costOf(before, measure(), o.mailboxes)
	if o.memProfile != "" {
		if err := writeHeapProfile(o.memProfile); err != nil {
			return err
		}
	}
	conns, err := srv.Connections()
	if err != nil {
		return err
	}
	pgConns := g.pool.Stat().TotalConns() + 1 // and the one holding the locks

	fmt.Fprintf(os.Stderr, "latency: a mail every %v for %v\n", o.every, o.duration)
	appenders, err := openAppenders(ctx, srv, o.mailboxes)
	if err != nil {
		return err
	}
	defer closeAppenders(appenders)
	tr := &traffic{g: g, appenders: appenders, rng: rand.New(rand.NewPCG(1, 2))}
	lat, err := tr.run(ctx, "steady", o.every, o.duration)
	if err != nil {
		return err
	}
	sent := len(lat)
	p50, p99, worst := benchkit.Percentile(lat, 50), benchkit.Percentile(lat, 99), benchkit.Percentile(lat, 100)
	reconnects := one.sessions(ids) - int64(o.mailboxes)

	var handoverRows []benchkit.Row
	if o.handover > 0 {
		fmt.Fprintf(os.Stderr, "handover: a second instance joins, a mail every %v for %v\n", o.every, o.handover)
		rows, n, err := handover(ctx, g, tr, o)
		if err != nil {
			return err
		}
		handoverRows, sent = rows, sent+n
	}
	tickets, err := g.count(ctx, `SELECT count(*) FROM tickets`)
	if err != nil {
		return err
	}
	dups, err := g.count(ctx, `SELECT count(*) FROM inbound WHERE disposition = 'duplicate'`)
	if err != nil {
		return err
	}
	if tickets != sent || dups != 0 {
		return fmt.Errorf("%d mails made %d tickets and %d duplicates", sent, tickets, dups)
	}

	fmt.Fprintf(os.Stderr, "ceiling: %d mails appended to a bare go-imap client's IDLE\n", o.ceiling)
	idleMails := make([][]byte, o.ceiling)
	for i := range idleMails {
		idleMails[i] = mail(fmt.Sprintf("idle-%d", i), 2048)
	}
	bareLat, err := benchkit.IdleLatency(ctx, srv, user(0), password, "Idle", idleMails)
	if err != nil {
		return err
	}
	bare50, bare99 := benchkit.Percentile(bareLat, 50), benchkit.Percentile(bareLat, 99)

	met := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	rows := []benchkit.Row{
		{Figure: fmt.Sprintf("APPEND → acknowledgement queued, p50 / p99 (%d mails, one every %v to a random mailbox of %d)", len(lat), o.every, o.mailboxes),
			Value:   benchkit.Millis(p50) + " / " + benchkit.Millis(p99) + " (max " + benchkit.Millis(worst) + ")",
			Ceiling: "bare go-imap IDLE: APPEND → EXISTS " + benchkit.Millis(bare50) + " / " + benchkit.Millis(bare99),
			Ratio:   benchkit.Ratio(float64(bare99), float64(p99))},
		{Figure: "Go heap + stacks per idle mailbox",
			Value:   kb(cost.goMemory) + fmt.Sprintf(" (heap %s, stacks %s)", kb(cost.heap), kb(cost.stacks)),
			Ceiling: "bare go-imap client idling: " + kb(bare.goMemory) + fmt.Sprintf(" (heap %s, stacks %s)", kb(bare.heap), kb(bare.stacks)),
			Ratio:   benchkit.Ratio(bare.goMemory, cost.goMemory)},
		{Figure: "process RSS per idle mailbox",
			Value: kb(cost.rss), Ceiling: "bare go-imap client idling: " + kb(bare.rss), Ratio: benchkit.Ratio(bare.rss, cost.rss)},
		{Figure: "goroutines per idle mailbox",
			Value: fmt.Sprintf("%.2f", cost.goroutines), Ceiling: fmt.Sprintf("bare go-imap client idling: %.2f", bare.goroutines),
			Ratio: benchkit.Ratio(bare.goroutines, cost.goroutines)},
		{Figure: fmt.Sprintf("IMAP connections held for %d mailboxes (counted on Dovecot's side)", o.mailboxes),
			Value: fmt.Sprint(conns), Ceiling: fmt.Sprintf("one per mailbox: %d", o.mailboxes), Ratio: benchkit.Ratio(float64(o.mailboxes), float64(conns))},
		{Figure: "PostgreSQL connections held (pool and lock connection)", Value: fmt.Sprint(pgConns), Ceiling: "-", Ratio: "-"},
		{Figure: fmt.Sprintf("%d mailboxes attached at once: every one idling after", o.mailboxes),
			Value: fmt.Sprintf("%.1f s", attach.Seconds()), Ceiling: "-", Ratio: "-"},
		{Figure: "reconnections during the steady mail", Value: fmt.Sprint(reconnects), Ceiling: "-", Ratio: "-"},
	}
	report := benchkit.Report{
		Title:   "Many IMAP mailboxes benchmark",
		Command: "go run ./bench/mailboxes",
		Method: fmt.Sprintf("The gateway's own pollers, receiver and store, in one process, against one Dovecot "+
			"(Debian's dovecot-imapd, on loopback, a throwaway configuration, %[1]d users with a maildir each, up to 100 "+
			"sessions per imap process: every user's mail belongs to one system user here, whose 128 inotify instances "+
			"would otherwise run out, and Dovecot would then tell idling clients of new mail only every 30 s) and a "+
			"private PostgreSQL with fsync and synchronous_commit on. %[1]d departments each have a mailbox, its own "+
			"user's INBOX, attached at once to one instance with the default refresh of 5 s; every mailbox gets a "+
			"connection of its own and idles. Memory is measured with runtime.ReadMemStats (live heap after a forced "+
			"collection, plus goroutine stacks) and /proc/self/status, before and after the attach, divided by the "+
			"mailboxes; the connection pool is opened before the first measure. Connections are counted on Dovecot's "+
			"side (established TCP connections to its port). Then a mail of 2 KB from an address of its own is appended "+
			"to a random mailbox every %[2]v for %[3]v, over a logged-in client per user, and timed from the start of "+
			"its APPEND until its acknowledgement is committed in the outbox (seen by a query every 2 ms). The "+
			"handover: a second instance starts while the mail goes on; the time until each instance idles on half "+
			"the mailboxes, and the latency of the mail appended meanwhile. Ceilings, in the same run: the same "+
			"number of bare go-imap clients logged in and idling (memory), and a bare go-imap client idling on a folder, "+
			"timed from the start of an APPEND until the server's EXISTS reaches it: Dovecot gathers changes for about "+
			"half a second before it tells idling clients, so that is the floor of any IDLE-based pickup.",
			o.mailboxes, o.every, o.duration),
		Rows: append(rows, handoverRows...),
		Aims: []string{
			fmt.Sprintf("Aim: p99 under %v: %s, %s", aimP99, benchkit.Millis(p99), met(p99 < aimP99)),
			fmt.Sprintf("Aim: under 200 KB per idle mailbox: %s of Go heap and stacks (%s of RSS), %s",
				kb(cost.goMemory), kb(cost.rss), met(cost.goMemory < aimPerMailbox)),
		},
	}
	return report.Write(o.results)
}

// handover starts a second instance while mail goes on, and reports how
// long until each instance idles on its half, and the mail's latency
// meanwhile. It returns the report's rows and how many mails it sent.
func handover(ctx context.Context, g *gateway, tr *traffic, o options) ([]benchkit.Row, int, error) {
	type result struct {
		lat []time.Duration
		err error
	}
	done := make(chan result, 1)
	go func() {
		lat, err := tr.run(ctx, "handover", o.every, o.handover)
		done <- result{lat, err}
	}()
	two := g.start(ctx, "two")
	defer two.stop()
	half := o.mailboxes / 2
	took, waitErr := g.waitIdling(ctx, "handover", map[string]int{"one": o.mailboxes - half, "two": half})
	r := <-done
	if waitErr != nil {
		return nil, 0, waitErr
	}
	if r.err != nil {
		return nil, 0, r.err
	}
	p50, p99, worst := benchkit.Percentile(r.lat, 50), benchkit.Percentile(r.lat, 99), benchkit.Percentile(r.lat, 100)
	return []benchkit.Row{
		{Figure: fmt.Sprintf("a second instance joins: each idling on its half (%d / %d) after", o.mailboxes-half, half),
			Value: fmt.Sprintf("%.1f s", took.Seconds()), Ceiling: "-", Ratio: "-"},
		{Figure: fmt.Sprintf("APPEND → acknowledgement queued during the handover, p50 / p99 (%d mails)", len(r.lat)),
			Value:   benchkit.Millis(p50) + " / " + benchkit.Millis(p99) + " (max " + benchkit.Millis(worst) + ")",
			Ceiling: "-", Ratio: "-"},
	}, len(r.lat), nil
}

// warmPool opens every connection the pool may hold.
func warmPool(ctx context.Context, g *gateway) error {
	var held []*pgxpool.Conn
	defer func() {
		for _, c := range held {
			c.Release()
		}
	}()
	for range g.pool.Config().MaxConns {
		c, err := g.pool.Acquire(ctx)
		if err != nil {
			return err
		}
		held = append(held, c)
	}
	return nil
}
