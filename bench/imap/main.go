// Command imap measures how fast mail in a department's IMAP mailbox becomes
// tickets, against a real Dovecot on loopback and a private, durable
// PostgreSQL, beside a ceiling measured in the same run:
//
//   - latency: mails appended one by one while the poller idles; the time
//     from the start of each APPEND until its ticket's acknowledgement is
//     queued (committed in the outbox), p50 and p99;
//   - backlog: mails of 4 KB waiting in the mailbox when the poller starts;
//     mails/s until every one is a ticket (and flagged \Seen), beside a bare
//     go-imap FETCH of the same mailbox's bodies.
//
// The poller, receiver and store are the gateway's own, in this process.
//
//	go run ./bench/imap [-latency 200] [-backlog 10000] [-results bench/RESULTS-imap.md]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helpdeskgw/helpdesk/bench/internal/benchkit"
	"github.com/helpdeskgw/helpdesk/internal/dovecot"
	"github.com/helpdeskgw/helpdesk/mailin"
	"github.com/helpdeskgw/helpdesk/migrations"
	"github.com/helpdeskgw/helpdesk/tickets"
)

// Settings from the flags.
var (
	profile        string // where the drain's CPU profile goes, if anywhere
	workers, batch int
)

const (
	user, password = "support", "bench-password"
	passwordVar    = "BENCH_IMAP_PASSWORD"
)

// Aims on the 2-core machine.
const (
	aimP99      = time.Second
	aimDrainMPS = 1000
)

func main() {
	latencyMails := flag.Int("latency", 200, "mails appended one by one while the poller idles")
	backlogMails := flag.Int("backlog", 10000, "4 KB mails waiting in the mailbox")
	results := flag.String("results", "bench/RESULTS-imap.md", "where to write the Markdown table; empty: nowhere")
	flag.IntVar(&workers, "workers", 0, "mails stored at once (0: the gateway's default)")
	flag.IntVar(&batch, "batch", 0, "mails fetched between flags and progress records (0: the gateway's default)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the backlog drain to this file")
	flag.Parse()
	profile = *cpuProfile
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *latencyMails, *backlogMails, *results); err != nil {
		fmt.Fprintln(os.Stderr, "imap:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, latencyMails, backlogMails int, results string) error {
	dir, err := os.MkdirTemp("", "helpdesk-bench-imap-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// PostgreSQL runs as its own user when this runs as root.
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "starting PostgreSQL and Dovecot")
	db, err := benchkit.StartDatabase(ctx, dir+"/pg", "helpdesk")
	if err != nil {
		return err
	}
	defer db.Destroy()
	srv, err := dovecot.Start(ctx, dovecot.Options{Users: map[string]string{user: password}})
	if err != nil {
		return err
	}
	defer srv.Close()
	os.Setenv(passwordVar, password)

	g, err := newGateway(ctx, db.URL, srv.Addr())
	if err != nil {
		return err
	}
	defer g.pool.Close()

	// The backlog first, on a young database: PostgreSQL's periodic
	// checkpoint (at five minutes) would otherwise fall inside the drain
	// after the latency phase, and the figure would be a matter of timing.
	fmt.Fprintf(os.Stderr, "backlog: %d mails of 4 KB\n", backlogMails)
	raws := make([][]byte, backlogMails)
	for i := range raws {
		raws[i] = mail(fmt.Sprintf("backlog-%d", i), 4096)
	}
	if err := srv.Seed(user, "Backlog", raws); err != nil {
		return err
	}
	// Dovecot indexes new maildir files when the folder is first opened:
	// open it once so that neither measurement pays for that.
	if _, err := bareFetch(ctx, srv, "Backlog", false); err != nil {
		return err
	}
	bare, err := bareFetch(ctx, srv, "Backlog", true)
	if err != nil {
		return err
	}
	bareRate := float64(backlogMails) / bare.Seconds()
	drain, err := g.drain(ctx, backlogMails)
	if err != nil {
		return err
	}
	drainRate := float64(backlogMails) / drain.Seconds()

	fmt.Fprintf(os.Stderr, "latency: %d mails appended one by one\n", latencyMails)
	lat, err := g.latency(ctx, srv, latencyMails)
	if err != nil {
		return err
	}
	p50, p99 := benchkit.Percentile(lat, 50), benchkit.Percentile(lat, 99)
	fmt.Fprintf(os.Stderr, "ceiling: %d mails appended to a bare go-imap client's IDLE\n", latencyMails)
	idleMails := make([][]byte, latencyMails)
	for i := range idleMails {
		idleMails[i] = mail(fmt.Sprintf("idle-%d", i), 2048)
	}
	bareLat, err := benchkit.IdleLatency(ctx, srv, user, password, "Idle", idleMails)
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
	report := benchkit.Report{
		Title:   "IMAP benchmark",
		Command: "go run ./bench/imap",
		Method: "The gateway's own poller, receiver and store, in one process, against Dovecot " +
			"(Debian's dovecot-imapd, on loopback, a throwaway configuration and maildir) and a private PostgreSQL with " +
			"fsync and synchronous_commit on. Latency: each mail is appended while the poller idles, and timed from the " +
			"start of its APPEND until its acknowledgement is committed in the outbox. Backlog: mails of 4 KB waiting " +
			"in the folder when the poller starts, timed until every one is a ticket, flagged \\Seen and recorded as " +
			"progress; the ceiling is a bare go-imap `UID FETCH 1:* BODY.PEEK[]` of the same folder reading each body " +
			"to the end, in the same run, measured first, before PostgreSQL's first periodic checkpoint (a checkpoint " +
			"in progress roughly halves the drain rate). The latency's ceiling is a bare go-imap client idling on a folder, timed " +
			"from the start of an APPEND until the server's EXISTS reaches it: Dovecot gathers changes for about half a " +
			"second before it tells idling clients, so that is the floor of any IDLE-based pickup.",
		Rows: []benchkit.Row{
			{Figure: fmt.Sprintf("APPEND → acknowledgement queued, p50 / p99 (%d mails, IDLE)", latencyMails),
				Value:   benchkit.Millis(p50) + " / " + benchkit.Millis(p99),
				Ceiling: "bare go-imap IDLE: APPEND → EXISTS " + benchkit.Millis(bare50) + " / " + benchkit.Millis(bare99),
				Ratio:   benchkit.Ratio(float64(bare99), float64(p99))},
			{Figure: fmt.Sprintf("backlog drained into tickets (%d mails of 4 KB), mails/s", backlogMails),
				Value: fmt.Sprintf("%.0f", drainRate), Ceiling: fmt.Sprintf("bare FETCH %.0f mails/s", bareRate),
				Ratio: benchkit.Ratio(drainRate, bareRate)},
		},
		Aims: []string{
			fmt.Sprintf("Aim: p99 under %v: %s, %s", aimP99, benchkit.Millis(p99), met(p99 < aimP99)),
			fmt.Sprintf("Aim: drain at least %d mails/s: %.0f mails/s, %s", aimDrainMPS, drainRate, met(drainRate >= aimDrainMPS)),
		},
	}
	return report.Write(results)
}

// gateway is the store, receiver and pollers of one department whose
// mailbox is on the Dovecot under test.
type gateway struct {
	pool  *pgxpool.Pool
	store *tickets.Store
	addr  string
}

func newGateway(ctx context.Context, url, addr string) (*gateway, error) {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	_, err = migrations.Apply(ctx, conn.Conn())
	conn.Release()
	if err != nil {
		return nil, err
	}
	store := tickets.New(tickets.Options{Pool: pool})
	if _, err := store.AddDepartment(ctx, tickets.Department{Slug: "soporte", Name: "Soporte", Address: "support@example.com"}); err != nil {
		return nil, err
	}
	return &gateway{pool: pool, store: store, addr: addr}, nil
}

// poll runs pollers for the folder until the returned stop is called.
func (g *gateway) poll(ctx context.Context, folder string) (stop func(), err error) {
	if err := g.store.RemoveMailbox(ctx, "soporte"); err != nil && !strings.Contains(err.Error(), "no mailbox") {
		return nil, err
	}
	if _, err := g.store.AddMailbox(ctx, tickets.Mailbox{Department: tickets.Department{Slug: "soporte"},
		URL: "imap://" + user + "@" + g.addr + "/" + folder, PasswordRef: "env:" + passwordVar}); err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rcv := mailin.NewReceiver(mailin.ReceiverOptions{Store: g.store, Logger: log})
	p := mailin.NewPollers(mailin.PollerOptions{Store: g.store, Receiver: rcv, Logger: log, Refresh: 50 * time.Millisecond,
		Workers: workers, Batch: batch})
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); p.Run(pctx) }()
	return func() { cancel(); <-done }, nil
}

func (g *gateway) count(ctx context.Context, query string) (int, error) {
	var n int
	err := g.pool.QueryRow(ctx, query).Scan(&n)
	return n, err
}

func (g *gateway) waitState(ctx context.Context, state tickets.MailboxState) error {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		mb, err := g.store.MailboxOf(ctx, "soporte")
		if err != nil {
			return err
		}
		if mb.State == state {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("mailbox not %s after a minute", state)
}

// latency appends n mails one by one to INBOX while the poller idles.
func (g *gateway) latency(ctx context.Context, srv *dovecot.Server, n int) ([]time.Duration, error) {
	stop, err := g.poll(ctx, "INBOX")
	if err != nil {
		return nil, err
	}
	defer stop()
	c, err := srv.Login(ctx, user)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	// The newest outbox row's ID, read from the primary key's end: cheap
	// enough to ask every half millisecond.
	const newest = `SELECT coalesce(max(id), 0) FROM outbox`
	before, err := g.count(ctx, newest)
	if err != nil {
		return nil, err
	}
	var lat []time.Duration
	for i := range n {
		if err := g.waitState(ctx, tickets.MailboxIdling); err != nil {
			return nil, err
		}
		raw := mail(fmt.Sprintf("latency-%d", i), 2048)
		start := time.Now()
		if err := benchkit.AppendMail(c, "INBOX", raw); err != nil {
			return nil, err
		}
		for {
			got, err := g.count(ctx, newest)
			if err != nil {
				return nil, err
			}
			if got > before {
				before = got
				break
			}
			if time.Since(start) > time.Minute {
				return nil, fmt.Errorf("mail %d not acknowledged after a minute", i)
			}
			time.Sleep(500 * time.Microsecond)
		}
		lat = append(lat, time.Since(start))
	}
	return lat, nil
}

// drain starts a poller on the backlog folder and times it until every
// mail is a ticket and the progress is recorded.
func (g *gateway) drain(ctx context.Context, n int) (time.Duration, error) {
	before, err := g.count(ctx, `SELECT count(*) FROM tickets`)
	if err != nil {
		return 0, err
	}
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return 0, err
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	stop, err := g.poll(ctx, "Backlog")
	if err != nil {
		return 0, err
	}
	defer stop()
	// Watch the mailbox's progress (one row), not the tickets table: a
	// count of a growing table, asked often, would slow what it measures.
	for {
		mb, err := g.store.MailboxOf(ctx, "soporte")
		if err != nil {
			return 0, err
		}
		if mb.Ingested >= int64(n) {
			elapsed := time.Since(start)
			got, err := g.count(ctx, `SELECT count(*) FROM tickets`)
			if err != nil {
				return 0, err
			}
			if got-before != n {
				return 0, fmt.Errorf("backlog of %d mails made %d tickets", n, got-before)
			}
			return elapsed, nil
		}
		if time.Since(start) > 10*time.Minute {
			return 0, fmt.Errorf("backlog not drained after 10 minutes: %d of %d", mb.Ingested, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// bareFetch reads every body of the folder with go-imap alone (bodies
// when withBodies, else only UIDs) and returns how long it took.
func bareFetch(ctx context.Context, srv *dovecot.Server, folder string, withBodies bool) (time.Duration, error) {
	start := time.Now()
	c, err := srv.Login(ctx, user)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if _, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		return 0, err
	}
	opts := &imap.FetchOptions{UID: true}
	if withBodies {
		opts.BodySection = []*imap.FetchItemBodySection{{Peek: true}}
	}
	cmd := c.Fetch(imap.UIDSet{{Start: 1, Stop: 0}}, opts)
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		for {
			item := msg.Next()
			if item == nil {
				break
			}
			if body, ok := item.(imapclient.FetchItemDataBodySection); ok && body.Literal != nil {
				if _, err := io.Copy(io.Discard, body.Literal); err != nil {
					return 0, err
				}
			}
		}
	}
	if err := cmd.Close(); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// mail is a customer's mail of about size bytes.
func mail(id string, size int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: Customer %[1]s <%[1]s@example.org>\r\nTo: support@example.com\r\nSubject: Question %[1]s\r\n"+
		"Message-ID: <%[1]s@example.org>\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: text/plain; charset=utf-8\r\n\r\n", id)
	line := "Hola, tengo un problema con mi cuenta y no puedo iniciar sesión desde ayer.\r\n"
	for b.Len() < size {
		b.WriteString(line)
	}
	return []byte(b.String())
}
