package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helpdeskgw/helpdesk/bench/internal/benchkit"
)

// Sizes of the attachments.
const (
	bigAttachment  = 1 << 20  // the -big mails
	hugeAttachment = 25 << 20 // the peak RSS mail
	// hugeLimit is HELPDESK_MAX_MESSAGE_BYTES for the peak RSS run: the
	// 25 MB attachment is about 36 MB once base64-encoded.
	hugeLimit = 40_000_000
)

// bench is one run: where it works, and what it found.
type bench struct {
	opts  options
	tmp   string
	bin   string
	db    *database
	pmPID int
	res   results
	// mailOut is the gateway's HELPDESK_MAIL_OUT.
	mailOut string
}

func run(ctx context.Context, o options) error {
	root, err := benchkit.ModuleRoot()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "helpdesk-bench-")
	if err != nil {
		return fmt.Errorf("temporary directory: %w", err)
	}
	defer keepOrRemove(tmp, o.keep)
	// As root, PostgreSQL runs as another user, which must get through.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("temporary directory: %w", err)
	}
	b := &bench{opts: o, tmp: tmp, res: results{started: time.Now(), opts: o, args: os.Args[1:]}}

	progress("building the gateway")
	if b.bin, err = benchkit.BuildGateway(ctx, root, tmp); err != nil {
		return err
	}
	progress("generating %d mails of 4 KB and %d with a 1 MB attachment", o.mails, o.big)
	nonce := strconv.FormatInt(time.Now().UnixNano(), 36)
	small := textMails(o.mails, nonce)
	big := attachmentMails(o.big, bigAttachment, nonce, "b")
	b.res.smallSize, b.res.bigSize = meanSize(small), meanSize(big)

	progress("starting a durable PostgreSQL")
	if b.db, err = startDatabase(ctx, filepath.Join(tmp, "pg")); err != nil {
		return err
	}
	defer b.db.destroy(o.keep)
	if o.stmts {
		progress("restarting PostgreSQL with pg_stat_statements")
		if err := b.db.enableStatements(ctx, gatewayDB); err != nil {
			return err
		}
	}
	if b.pmPID, err = benchkit.PostmasterPID(b.db.dir); err != nil {
		return err
	}
	if b.res.machine, err = describeMachine(ctx, b.db.url(gatewayDB)); err != nil {
		return err
	}

	if err := b.ceilings(ctx, small, big); err != nil {
		return err
	}
	stopRelay, err := b.startRelay()
	if err != nil {
		return err
	}
	defer stopRelay() //nolint:errcheck // a relay that fails to close changes no figure
	if err := b.gatewayRun(ctx, small, big); err != nil {
		return err
	}
	if err := b.peakRSS(ctx, nonce); err != nil {
		return err
	}
	return b.report(root)
}

// ceilings measures the no-op SMTP server and the bare INSERT loop.
func (b *bench) ceilings(ctx context.Context, small, big []message) error {
	srv, err := benchkit.StartNoopSMTP(hugeLimit)
	if err != nil {
		return err
	}
	probe := cpuProbe{}
	progress("no-op SMTP server: %d mails of 4 KB over %d connections", len(small), b.opts.conns)
	b.res.noopSmall, err = sendAll(ctx, srv.Addr(), b.opts.conns, small, probe)
	if err == nil && len(big) > 0 {
		progress("no-op SMTP server: %d mails with a 1 MB attachment", len(big))
		b.res.noopBig, err = sendAll(ctx, srv.Addr(), b.opts.conns, big, probe)
	}
	if err := errors.Join(err, srv.Close()); err != nil {
		return err
	}
	progress("bare INSERT loop: %d one-row transactions over %d connections", b.opts.mails, b.opts.conns)
	url := b.db.url(ceilingDB)
	b.res.insertCounters, err = measureCounters(ctx, url, ceilingDB, func() error {
		var err error
		b.res.inserts, err = insertAll(ctx, url, b.opts.conns, b.opts.mails, cpuProbe{postmasterPID: b.pmPID})
		return err
	})
	return err
}

// gatewayRun sends the 4 KB mails, then the 1 MB ones, to the gateway, and
// checks after each case that every mail became a ticket with its
// acknowledgement queued, and waits for the acknowledgements to be sent.
func (b *bench) gatewayRun(ctx context.Context, small, big []message) (err error) {
	progress("starting the gateway")
	gw, err := startGateway(ctx, gatewayConfig{bin: b.bin, databaseURL: b.db.url(gatewayDB),
		mailOut: b.mailOut, logPath: filepath.Join(b.tmp, "gateway.log")})
	if err != nil {
		return err
	}
	defer func() {
		b.res.warnings = gw.Problems()
		err = errors.Join(err, gw.Stop())
	}()
	pool, err := pgxpool.New(ctx, b.db.url(gatewayDB))
	if err != nil {
		return fmt.Errorf("connect to the gateway's database: %w", err)
	}
	defer pool.Close()
	probe := cpuProbe{gatewayPID: gw.PID(), postmasterPID: b.pmPID}

	progress("gateway: %d mails of 4 KB over %d connections", len(small), b.opts.conns)
	if b.res.small, err = b.gatewayCase(ctx, gw, pool, small, probe, b.opts.waits || b.opts.stmts, 0); err != nil {
		return err
	}
	b.res.tickets, b.res.acks = b.res.small.tickets, b.res.small.acks
	if len(big) == 0 {
		return nil
	}
	progress("gateway: %d mails with a 1 MB attachment", len(big))
	b.res.big, err = b.gatewayCase(ctx, gw, pool, big, probe, false, b.res.small.tickets)
	b.res.tickets, b.res.acks = b.res.big.tickets, b.res.big.acks
	return err
}

// gatewayCase sends one case's mails, waits for the acknowledgements to be
// sent and counts what was stored; before is the number of tickets the
// database held already. Detailed asks for the optional profiles.
func (b *bench) gatewayCase(ctx context.Context, gw *gateway, pool *pgxpool.Pool, mails []message, probe cpuProbe,
	detailed bool, before int64) (gatewayCase, error) {
	var c gatewayCase
	url := b.db.url(gatewayDB)
	var err error
	c.counters, err = measureCounters(ctx, url, gatewayDB, func() error {
		if detailed && b.opts.stmts {
			if err := resetStatements(ctx, url); err != nil {
				return err
			}
		}
		var stopWaits func() (waitProfile, error)
		if detailed && b.opts.waits {
			var err error
			if stopWaits, err = sampleWaits(ctx, url, gatewayDB, 5*time.Millisecond); err != nil {
				return err
			}
		}
		var err error
		c.load, err = sendAll(ctx, gw.smtpAddr, b.opts.conns, mails, probe)
		if stopWaits != nil {
			p, werr := stopWaits()
			b.res.waits = &p
			err = errors.Join(err, werr)
		}
		if err != nil {
			return err
		}
		c.drain, err = awaitDrain(ctx, pool, c.load.end)
		return err
	})
	if err != nil {
		return c, err
	}
	if detailed && b.opts.stmts {
		if b.res.statements, err = readStatements(ctx, url, gatewayDB); err != nil {
			return c, err
		}
	}
	if c.tickets, c.acks, err = countTickets(ctx, pool); err != nil {
		return c, err
	}
	b.res.check(c.tickets-before == int64(len(mails)), "%d mails sent but %d tickets stored", len(mails), c.tickets-before)
	b.res.check(c.acks == c.tickets, "%d tickets but %d acknowledgements queued", c.tickets, c.acks)
	b.res.check(c.load.errorCount() == 0, "%d mails were not answered 250", c.load.errorCount())
	return c, nil
}

// startRelay decides where the gateway's acknowledgements go: the -outbox
// spool directory when given, else a relay that accepts and discards them
// (as a provider's submission server would accept them), so that the file
// system's cost of creating a file per mail does not stand in for sending.
func (b *bench) startRelay() (stop func() error, err error) {
	if b.opts.outbox != "" {
		b.mailOut = "file://" + b.opts.outbox
		return func() error { return nil }, nil
	}
	relay, err := benchkit.StartNoopSMTP(hugeLimit)
	if err != nil {
		return nil, err
	}
	b.mailOut = "smtp://" + relay.Addr()
	return relay.Close, nil
}

// peakRSS starts a fresh gateway, sends it one mail with a 25 MB attachment
// and reads its peak resident set.
func (b *bench) peakRSS(ctx context.Context, nonce string) (err error) {
	progress("peak RSS: one mail with a 25 MB attachment to a fresh gateway")
	huge := attachmentMails(1, hugeAttachment, nonce, "x")
	gw, err := startGateway(ctx, gatewayConfig{bin: b.bin, databaseURL: b.db.url(gatewayDB),
		mailOut: b.mailOut, logPath: filepath.Join(b.tmp, "gateway-rss.log"), maxMessageBytes: hugeLimit})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, gw.Stop()) }()
	pool, err := pgxpool.New(ctx, b.db.url(gatewayDB))
	if err != nil {
		return fmt.Errorf("connect to the gateway's database: %w", err)
	}
	defer pool.Close()

	time.Sleep(time.Second) // let start-up settle
	if b.res.rss.start, err = readMemory(gw.PID()); err != nil {
		return err
	}
	load, err := sendAll(ctx, gw.smtpAddr, 1, huge, cpuProbe{gatewayPID: gw.PID(), postmasterPID: b.pmPID})
	if err != nil {
		return err
	}
	b.res.rss.load, b.res.rss.wire = load, int64(len(huge[0].data))
	if _, err := awaitDrain(ctx, pool, load.end); err != nil {
		return err
	}
	if b.res.rss.end, err = readMemory(gw.PID()); err != nil {
		return err
	}
	if b.res.rss.stored, err = lastAttachmentSize(ctx, pool); err != nil {
		return err
	}
	b.res.check(load.errorCount() == 0, "the 25 MB mail was not answered 250: %v", load.errs)
	b.res.check(b.res.rss.stored == hugeAttachment, "the 25 MB attachment was stored as %d bytes", b.res.rss.stored)
	return nil
}

// awaitDrain waits until no acknowledgement is pending and returns how long
// after end that was.
func awaitDrain(ctx context.Context, pool *pgxpool.Pool, end time.Time) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	for {
		var pending, failed int64
		err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'failed')
			FROM outbox`).Scan(&pending, &failed)
		if err != nil {
			return 0, fmt.Errorf("outbox: %w", err)
		}
		if failed > 0 {
			return 0, fmt.Errorf("outbox: %d acknowledgements failed", failed)
		}
		if pending == 0 {
			return time.Since(end), nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("outbox: %d acknowledgements still pending: %w", pending, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// countTickets returns the number of tickets and of acknowledgements queued
// for them.
func countTickets(ctx context.Context, pool *pgxpool.Pool) (tickets, acks int64, err error) {
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM tickets`).Scan(&tickets); err != nil {
		return 0, 0, fmt.Errorf("count tickets: %w", err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE kind = 'ack'`).Scan(&acks); err != nil {
		return 0, 0, fmt.Errorf("count outbox: %w", err)
	}
	return tickets, acks, nil
}

func lastAttachmentSize(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	var size int64
	if err := pool.QueryRow(ctx, `SELECT size FROM attachments ORDER BY id DESC LIMIT 1`).Scan(&size); err != nil {
		return 0, fmt.Errorf("stored attachment: %w", err)
	}
	return size, nil
}

func meanSize(mails []message) float64 {
	if len(mails) == 0 {
		return 0
	}
	var n int
	for _, m := range mails {
		n += len(m.data)
	}
	return float64(n) / float64(len(mails))
}

func keepOrRemove(dir string, keep bool) {
	if keep {
		fmt.Fprintf(os.Stderr, "kept %s: gateway logs and the stopped cluster in pg/\n", dir)
		return
	}
	if err := os.RemoveAll(dir); err != nil {
		fmt.Fprintln(os.Stderr, "ingest:", err)
	}
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), strings.TrimSpace(fmt.Sprintf(format, args...)))
}
