// Command faults breaks what the gateway depends on, and the gateway
// itself, while mail flows, then reconciles exactly, as bench/load does,
// what was accepted against what was stored and sent. Each scenario has an
// environment of its own (PostgreSQL, relay, gateway, Dovecot when it needs
// one), so that its counts stand apart:
//
//  1. outbox-kill: the gateway SIGKILLed while it sends acknowledgements to
//     a slow relay, then restarted;
//  2. postgres: PostgreSQL stopped at once (pg_ctl stop -m immediate) under
//     SMTP load and started again 5 s later;
//  3. imap-kill: the gateway SIGKILLed halfway through a backlog of 2,000
//     mails in its mailbox, then restarted;
//  4. relay: the relay refusing (421, then 451) for 10 s, then accepting;
//  5. dovecot: Dovecot restarted, then killed and started, while the
//     gateway idles on the mailbox;
//  6. disk: the gateway's spool directory (TMPDIR) on a 2 MB tmpfs while
//     mails larger than that arrive; then the tmpfs grown.
//
// A killed gateway's claimed acknowledgements wait for their lease (ten
// minutes) before they are sent again: scenarios 1 and 3 wait for them in
// the background while the others run.
//
//	go run ./bench/faults [-scenarios postgres,imap-kill,...] [-keep]
//
// `make faults` runs them all; the table goes to the faults section of
// bench/RESULTS.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// options are the command's flags.
type options struct {
	scenarios map[string]bool
	keep      bool
	results   string
	bin       string
}

func main() {
	var o options
	list := flag.String("scenarios", strings.Join(scenarioKeys(), ","), "the scenarios to run, comma-separated")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (databases, logs) for inspection")
	flag.StringVar(&o.results, "results", "bench/RESULTS.md", "the results file, relative to the module root; empty: nowhere")
	flag.StringVar(&o.bin, "bin", "", "a gateway binary built already (default: build ./cmd/helpdesk)")
	flag.Parse()
	o.scenarios = map[string]bool{}
	known := map[string]bool{}
	for _, k := range scenarioKeys() {
		known[k] = true
	}
	for _, k := range strings.Split(*list, ",") {
		if k = strings.TrimSpace(k); k == "" {
			continue
		}
		if !known[k] {
			fmt.Fprintf(os.Stderr, "faults: unknown scenario %q; the scenarios are %s\n", k, strings.Join(scenarioKeys(), ", "))
			os.Exit(2)
		}
		o.scenarios[k] = true
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		os.Exit(1)
	}
}
