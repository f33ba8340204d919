// Command mailboxes measures the gateway holding many IMAP mailboxes on one
// Dovecot, each with a connection of its own idling, against a private,
// durable PostgreSQL:
//
//   - attach: the mailboxes attached at once, timed until every one idles;
//     the Go heap and stacks, the goroutines and the process's RSS per idle
//     mailbox (measured around the attach, after a garbage collection), and
//     the connections held, counted from Dovecot's side;
//   - latency: a mail appended to a random mailbox at a steady pace,
//     timed from the start of its APPEND until its acknowledgement is
//     committed in the outbox, p50 and p99;
//   - handover: a second instance joins while the mail goes on; the time
//     until each holds half, and the latency of the mail appended meanwhile.
//
// The pollers, receiver and store are the gateway's own, in this process.
// The ceiling, measured in the same run, is a bare go-imap client idling on
// one of the same Dovecot's folders.
//
//	go run ./bench/mailboxes [-mailboxes 200] [-every 50ms] [-duration 60s] [-tls] [-results bench/RESULTS-mailboxes.md]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"
)

// options are the command's flags.
type options struct {
	mailboxes  int
	every      time.Duration
	duration   time.Duration
	handover   time.Duration
	ceiling    int
	results    string
	memProfile string
	tls        bool
}

func main() {
	var o options
	flag.IntVar(&o.mailboxes, "mailboxes", 200, "mailboxes (Dovecot users) attached")
	flag.DurationVar(&o.every, "every", 50*time.Millisecond, "interval between mails appended, each to a random mailbox")
	flag.DurationVar(&o.duration, "duration", 60*time.Second, "how long mail is appended")
	flag.DurationVar(&o.handover, "handover", 20*time.Second, "how long mail is appended while a second instance joins; 0: no handover")
	flag.IntVar(&o.ceiling, "ceiling", 200, "mails appended one by one to a bare go-imap client's IDLE")
	flag.StringVar(&o.results, "results", "bench/RESULTS-mailboxes.md", "where to write the Markdown table; empty: nowhere")
	flag.BoolVar(&o.tls, "tls", false, "attach the mailboxes over imaps:// (Dovecot's self-signed certificate trusted)")
	flag.StringVar(&o.memProfile, "memprofile", "", "write a heap profile, every allocation sampled, once the mailboxes idle")
	flag.Parse()
	if o.memProfile != "" {
		runtime.MemProfileRate = 1
	}
	if o.mailboxes < 1 || o.every <= 0 || o.duration <= 0 || o.handover < 0 || o.ceiling < 1 {
		fmt.Fprintln(os.Stderr, "mailboxes: -mailboxes, -every, -duration and -ceiling must be positive")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "mailboxes:", err)
		os.Exit(1)
	}
}
