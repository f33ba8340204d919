// Command ingest measures, end to end, how fast the gateway turns mail
// received over SMTP into committed tickets, beside the ceilings it is
// compared with, all measured in the same run on the same machine:
//
//   - the gateway: the real binary (`helpdesk serve --demo`) on a private,
//     durable PostgreSQL (fsync and synchronous_commit on); a 250 after DATA
//     means the ticket and its acknowledgement are committed;
//   - a no-op go-smtp server that discards the mail, fed by the same load
//     generator with the same mails and concurrency;
//   - a bare loop of one-row INSERT transactions on the same PostgreSQL.
//
// It also measures the gateway's peak RSS while it ingests one mail with a
// 25 MB attachment. It prints a table and writes it to bench/RESULTS-ingest.md.
//
//	go run ./bench/ingest [-mails 5000] [-big 200] [-conns 20] [-keep] [-waits] [-statements]
//
// `make bench` runs it with the defaults.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// options are the command's flags.
type options struct {
	mails   int    // 4 KB mails
	big     int    // mails with a 1 MB attachment
	conns   int    // concurrent SMTP connections and INSERT loops
	keep    bool   // keep the temporary directory
	waits   bool   // sample PostgreSQL wait events during the 4 KB run
	stmts   bool   // load pg_stat_statements and report the 4 KB run's statements
	outbox  string // spool directory of the acknowledgements; empty: a no-op relay
	results string // Markdown output, relative to the module root
}

func main() {
	var o options
	flag.IntVar(&o.mails, "mails", 5000, "number of 4 KB mails, each from its own sender")
	flag.IntVar(&o.big, "big", 200, "number of mails with a 1 MB attachment")
	flag.IntVar(&o.conns, "conns", 20, "concurrent SMTP connections (and INSERT loops)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (database, gateway logs) for inspection")
	flag.BoolVar(&o.waits, "waits", false, "sample PostgreSQL's wait events during the 4 KB run and report them")
	flag.BoolVar(&o.stmts, "statements", false, "load pg_stat_statements (it costs a little) and report the statements of the 4 KB run")
	flag.StringVar(&o.outbox, "outbox", "", "spool the acknowledgements to this directory (file://) instead of sending them to a no-op SMTP relay")
	flag.StringVar(&o.results, "results", "bench/RESULTS-ingest.md", "where to write the Markdown table, relative to the module root; empty: nowhere")
	flag.Parse()
	if o.mails < 1 || o.big < 0 || o.conns < 1 {
		fmt.Fprintln(os.Stderr, "ingest: -mails and -conns must be positive, -big not negative")
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "ingest:", err)
		os.Exit(1)
	}
}
