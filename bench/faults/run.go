package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/helpdeskgw/helpdesk/bench/internal/benchkit"
	"github.com/helpdeskgw/helpdesk/bench/internal/suite"
)

// outcome is what one scenario found.
type outcome struct {
	key, title string
	// notRun says why the scenario could not run here; err, that the
	// harness failed (not a finding about the gateway).
	notRun string
	err    error
	// The summary's columns.
	fourxx, recovery, reference, duplicates string
	notes                                   []string
	checks                                  []suite.Check
}

func (o outcome) verdict() string {
	switch {
	case o.notRun != "":
		return "not run: " + o.notRun
	case o.err != nil:
		return "harness error"
	case suite.Failed(o.checks):
		return "**FAIL**"
	}
	return "pass"
}

func (o *outcome) note(format string, args ...any) {
	o.notes = append(o.notes, fmt.Sprintf(format, args...))
}

func (o *outcome) check(name string, ok bool, format string, args ...any) {
	c := suite.Check{Name: name, Status: suite.Pass, Detail: fmt.Sprintf(format, args...)}
	if !ok {
		c.Status = suite.Fail
	}
	o.checks = append(o.checks, c)
}

// scenario is one fault. start runs it up to the point where it only
// waits, and returns what finishes it: scenarios that wait long finish in
// the background while the next ones run.
type scenario struct {
	key, title string
	start      func(ctx context.Context, r *runner, o *outcome) (finish func(ctx context.Context), err error)
}

func scenarios() []scenario {
	return []scenario{
		{"outbox-kill", "Gateway SIGKILLed while it sends acknowledgements to a slow relay", outboxKilled},
		{"postgres", "PostgreSQL stopped at once (immediate) under SMTP load, started 5 s later", postgresKilled},
		{"imap-kill", "Gateway SIGKILLed halfway through a backlog of 2,000 mails in its mailbox", imapKilled},
		{"relay", "Relay refusing (421, then 451) for 10 s, then accepting", relayRefusing},
		{"dovecot", "Dovecot restarted, then killed and started, while the gateway idles", dovecotRestarted},
		{"disk", "Spool directory (TMPDIR) full: a 2 MB tmpfs, mails larger than that", diskFull},
	}
}

func scenarioKeys() []string {
	var keys []string
	for _, s := range scenarios() {
		keys = append(keys, s.key)
	}
	return keys
}

// runner is what the scenarios share.
type runner struct {
	ws    *suite.Workspace
	opts  options
	nonce string
}

// env starts a scenario's own environment.
func (r *runner) env(ctx context.Context, key string, o suite.Options) (*suite.Env, error) {
	o.Bin, o.Dir, o.Keep = r.ws.Bin, filepath.Join(r.ws.Dir, key), r.opts.keep
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
	return suite.Setup(ctx, o)
}

// generator gives a scenario Message-IDs of its own.
func (r *runner) generator(key string) *suite.Generator {
	return suite.NewGenerator(r.nonce + "-" + key)
}

func run(ctx context.Context, o options) error {
	ws, err := suite.NewWorkspace(ctx, "helpdesk-faults-", o.bin, o.keep)
	if err != nil {
		return err
	}
	defer ws.Close()
	r := &runner{ws: ws, opts: o, nonce: strconv.FormatInt(time.Now().UnixNano(), 36)}
	started := time.Now()
	var outcomes []*outcome
	var background []chan struct{}
	for _, s := range scenarios() {
		if !o.scenarios[s.key] {
			continue
		}
		out := &outcome{key: s.key, title: s.title}
		outcomes = append(outcomes, out)
		suite.Progress("%s: %s", s.key, s.title)
		finish, err := s.start(ctx, r, out)
		if err != nil {
			out.err = err
			suite.Progress("%s: %v", s.key, err)
			continue
		}
		if finish == nil {
			suite.PrintChecks(s.key+": "+out.verdict(), out.checks)
			continue
		}
		done := make(chan struct{})
		background = append(background, done)
		go func() {
			defer close(done)
			finish(ctx)
			if out.err != nil {
				suite.Progress("%s: %v", s.key, out.err)
			}
			suite.PrintChecks(s.key+": "+out.verdict(), out.checks)
		}()
	}
	for _, done := range background {
		<-done
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	section := report(outcomes, time.Since(started))
	fmt.Println()
	fmt.Println(section)
	if path := ws.Path(o.results); path != "" {
		if err := suite.WriteSection(path, "faults", section); err != nil {
			return err
		}
		suite.Progress("wrote the faults section of %s", path)
	}
	var failed []string
	for _, out := range outcomes {
		if out.err != nil || suite.Failed(out.checks) {
			failed = append(failed, out.key)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("scenarios failed: %s", strings.Join(failed, ", "))
	}
	return nil
}

// report writes the faults section of the results.
func report(outcomes []*outcome, took time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Faults\n\nMeasured %s with `go run ./bench/faults` (`make faults`), %s in all.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), suite.Seconds(took.Round(time.Second)))
	b.WriteString("Each scenario has an environment of its own, set up as the load's (the real binary, log level info, on a " +
		"private PostgreSQL with fsync and synchronous_commit on; a relay on loopback recording every mail; a Dovecot mailbox " +
		"where the scenario needs one), senders that retry 4xx and broken connections like a mail server, each mail with its " +
		"own Message-ID and sender; and each ends with the load's exact reconciliation. \"4xx seen\" are the replies the " +
		"senders (or, for the relay, the gateway) were refused with and retried; \"time to recover\" runs from the end of " +
		"the fault; \"beside it\" is what it is compared with, measured in the same run. A scenario that waits long (the " +
		"outbox's lease) finishes in the background while the next ones run.\n\n")
	fmt.Fprintf(&b, "- %s\n\n", benchkit.Machine())
	b.WriteString("| scenario | result | 4xx seen | time to recover | beside it | duplicates at the relay |\n|---|---|---|---|---|---|\n")
	for i, o := range outcomes {
		fmt.Fprintf(&b, "| %d. %s | %s | %s | %s | %s | %s |\n", i+1, o.title, o.verdict(), dash(o.fourxx), dash(o.recovery),
			dash(o.reference), dash(o.duplicates))
	}
	for i, o := range outcomes {
		fmt.Fprintf(&b, "\n### %d. %s (`%s`): %s\n\n", i+1, o.title, o.key, o.verdict())
		if o.err != nil {
			fmt.Fprintf(&b, "The harness failed: %s\n\n", strings.ReplaceAll(o.err.Error(), "\n", " "))
		}
		for _, n := range o.notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
		if len(o.notes) > 0 {
			b.WriteString("\n")
		}
		if len(o.checks) > 0 {
			b.WriteString(suite.ChecksTable(o.checks))
		}
	}
	return b.String()
}

func dash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

// closeEnv stops an environment at the end of a scenario; a failure to
// stop the gateway cleanly is the scenario's error.
func closeEnv(env *suite.Env, o *outcome) {
	if err := env.Close(); err != nil {
		o.err = errors.Join(o.err, err)
	}
}
