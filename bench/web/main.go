// Command web measures the customer portal of the real binary (`helpdesk
// serve`) with 100,000 tickets in a private, durable PostgreSQL: requests/s
// and latency of a ticket's page (a visitor with a session) and of the
// lookup form (tracking ID and address), and of the knowledge base's search,
// the submit form's live suggestions and an article's page, beside the
// trivial /healthz of the same server, measured in the same run with the
// same load generator.
//
//	go run ./bench/web [-tickets 100000] [-sessions 20000] [-articles 2000] [-conns 16] [-duration 10s] [-warmup 3s]
//
// `make bench` runs it with the defaults and it writes its table to
// bench/RESULTS-web.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// options are the command's flags.
type options struct {
	tickets  int
	sessions int
	articles int
	conns    int
	duration time.Duration
	warmup   time.Duration
	keep     bool
	results  string
}

func main() {
	var o options
	flag.IntVar(&o.tickets, "tickets", 100000, "tickets in the database, each with 2–3 messages")
	flag.IntVar(&o.sessions, "sessions", 20000, "visitor sessions, each opened by one random ticket's link, for the ticket page")
	flag.IntVar(&o.articles, "articles", 2000, "published knowledge base articles, half in Spanish, half in English")
	flag.IntVar(&o.conns, "conns", 16, "concurrent connections of the load generator")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measured time of each phase")
	flag.DurationVar(&o.warmup, "warmup", 3*time.Second, "unmeasured load before each phase")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (database, gateway log) for inspection")
	flag.StringVar(&o.results, "results", "bench/RESULTS-web.md", "where to write the Markdown table, relative to the module root; empty: nowhere")
	flag.Parse()
	if o.tickets < 1 || o.sessions < 1 || o.sessions > o.tickets || o.articles < 1 || o.conns < 1 || o.duration <= 0 || o.warmup < 0 {
		fmt.Fprintln(os.Stderr, "web: -tickets, -sessions (at most -tickets), -articles, -conns and -duration must be positive")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "web:", err)
		os.Exit(1)
	}
}
