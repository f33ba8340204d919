// Command load runs mixed traffic against the real gateway for a minute
// and then reconciles, exactly, what was accepted against what was stored
// and sent:
//
//   - 20 SMTP senders that behave like a mail server (retrying 4xx and
//     broken connections with backoff), mails of 2 KB to 5 MB, each with its
//     own Message-ID and its own sender address;
//   - a mail appended to the department's Dovecot mailbox every 200 ms,
//     timed until its ticket is committed;
//   - web visitors looking tickets up, opening them and replying;
//   - the gateway's acknowledgements going to a relay that records each.
//
// The ceilings are measured in the same run: the same senders and mix
// against a no-op SMTP server, /healthz of the same gateway through the
// same web client, and a bare go-imap client idling on the same Dovecot.
// The table goes to the load section of bench/RESULTS.md.
//
//	go run ./bench/load [-duration 60s] [-senders 20] [-visitors 4] [-keep]
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
	duration  time.Duration
	senders   int
	visitors  int
	imapEvery time.Duration
	ceiling   time.Duration
	keep      bool
	results   string
	bin       string
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 60*time.Second, "how long the mixed traffic runs")
	flag.IntVar(&o.senders, "senders", 20, "concurrent SMTP senders")
	flag.IntVar(&o.visitors, "visitors", 4, "concurrent web visitors")
	flag.DurationVar(&o.imapEvery, "imap-every", 200*time.Millisecond, "interval between mails appended to the mailbox")
	flag.DurationVar(&o.ceiling, "ceiling", 15*time.Second, "how long the no-op SMTP ceiling runs")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (database, logs) for inspection")
	flag.StringVar(&o.results, "results", "bench/RESULTS.md", "the results file, relative to the module root; empty: nowhere")
	flag.StringVar(&o.bin, "bin", "", "a gateway binary built already (default: build ./cmd/helpdesk)")
	flag.Parse()
	if o.duration <= 0 || o.senders < 1 || o.visitors < 1 || o.imapEvery <= 0 || o.ceiling <= 0 {
		fmt.Fprintln(os.Stderr, "load: -duration, -senders, -visitors, -imap-every and -ceiling must be positive")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}
