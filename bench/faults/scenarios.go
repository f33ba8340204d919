package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/helpdeskgw/helpdesk/bench/internal/benchkit"
	"github.com/helpdeskgw/helpdesk/bench/internal/suite"
)

// settle bounds the reconciliation's wait for mail still in progress.
const settle = 3 * time.Minute

// reconcile runs the reconciliation and adds its checks to the outcome.
func reconcile(ctx context.Context, env *suite.Env, o *outcome, exp suite.Expect) (suite.Reconciliation, error) {
	if exp.Settle == 0 {
		exp.Settle = settle
	}
	rec, err := env.Reconcile(ctx, exp)
	o.checks = append(o.checks, rec.Checks...)
	return rec, err
}

// postgresKilled stops PostgreSQL at once (as a crash does: no checkpoint,
// connections cut) under SMTP load and starts it again 5 s later; the
// senders must see 4xx, retry, and every mail must be stored once.
func postgresKilled(ctx context.Context, r *runner, o *outcome) (func(context.Context), error) {
	const (
		senders   = 10
		before    = 5 * time.Second
		down      = 5 * time.Second
		after     = 15 * time.Second
		recoverBy = 2 * time.Minute
	)
	env, err := r.env(ctx, o.key, suite.Options{})
	if err != nil {
		return nil, err
	}
	defer closeEnv(env, o)
	// Ends the senders if the scenario does not get to its end.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	until := time.Now().Add(before + down + after)
	results := make(chan suite.SMTPResult, 1)
	go func() {
		results <- suite.RunSMTP(sctx, suite.Stream(env.SMTPAddr, senders, r.generator(o.key), suite.SmallText(), 0, until))
	}()
	if err := suite.Sleep(ctx, before); err != nil {
		return nil, err
	}
	suite.Progress("%s: stopping PostgreSQL (immediate)", o.key)
	killedAt := time.Now()
	if err := env.DB.Cluster.Stop(ctx, true); err != nil {
		return nil, err
	}
	if err := suite.Sleep(ctx, down); err != nil {
		return nil, err
	}
	suite.Progress("%s: starting PostgreSQL", o.key)
	startAt := time.Now()
	if err := env.DB.Cluster.Restart(ctx); err != nil {
		return nil, err
	}
	upAt := time.Now()
	ready, readyErr := env.WaitReady(ctx, recoverBy)
	res := <-results
	var during, after4xx int
	for _, f := range res.Refusals {
		switch {
		case f.At.Before(killedAt):
		case f.At.Before(upAt):
			during++
		default:
			after4xx++
		}
	}
	firstOK := time.Time{}
	var lastBefore time.Time
	for _, a := range res.Accepted {
		if a.At.Before(killedAt) {
			lastBefore = a.At
		}
		if a.At.After(upAt) && firstOK.IsZero() {
			firstOK = a.At
		}
	}
	o.fourxx = fmt.Sprintf("%d (%s)", res.Count(suite.Is4xx), tally(res))
	if !firstOK.IsZero() {
		o.recovery = fmt.Sprintf("first 250 %s after PostgreSQL was up", suite.Seconds(firstOK.Sub(upAt)))
	}
	o.reference = fmt.Sprintf("PostgreSQL's start with crash recovery: %s; the gateway's /readyz 200 %s after it",
		suite.Seconds(upAt.Sub(startAt)), suite.Seconds(ready))
	o.note("%d senders of 2–8 KB mails for %v; PostgreSQL stopped %v in, down for %s; the last 250 before it came %s before the stop",
		senders, before+down+after, before, suite.Seconds(upAt.Sub(killedAt)), suite.Seconds(killedAt.Sub(lastBefore)))
	o.note("attempts refused or cut while PostgreSQL was down: %d; after it was up: %d; mails answered 250: %d; "+
		"the first 250 after the restart waits for a sender's retry (100 ms doubling to 5 s)", during, after4xx, len(res.Accepted))
	o.check("senders were told 4xx while PostgreSQL was down", res.Count(suite.Is4xx) > 0, "%d 4xx replies (%s)",
		res.Count(suite.Is4xx), tally(res))
	o.check("the gateway was ready again once PostgreSQL was up", readyErr == nil, "/readyz 200 after %s%s",
		suite.Seconds(ready), errText(readyErr))
	o.check("mail was accepted again once PostgreSQL was up", !firstOK.IsZero() && firstOK.Sub(upAt) < recoverBy,
		"first 250 %s after", seconds(firstOK, upAt))
	o.checks = append(o.checks, suite.SenderCheck(res))
	rec, err := reconcile(ctx, env, o, suite.Expect{SMTP: res.IDs()})
	o.duplicates = fmt.Sprint(rec.RelayCopies)
	o.note("copies logged as duplicates (a mail stored, its 250 lost, sent again): %d", rec.InboundCopies)
	return nil, err
}

// leaseWait bounds the wait for the acknowledgements a killed gateway had
// claimed: their lease (ten minutes), and then some.
const leaseWait = 12 * time.Minute

// imapKilled SIGKILLs the gateway when about half of a backlog of mails in
// its mailbox is stored, and restarts it: every mail must be one ticket.
// The gateway is sending the first mails' acknowledgements when it dies, so
// the scenario ends, as outboxKilled does, when their lease has run out.
func imapKilled(ctx context.Context, r *runner, o *outcome) (func(context.Context), error) {
	const backlog = 2000
	env, err := r.env(ctx, o.key, suite.Options{Mailbox: true, Deferred: true})
	if err != nil {
		return nil, err
	}
	finished := false
	defer func() {
		if !finished {
			closeEnv(env, o)
		}
	}()
	gen := r.generator(o.key)
	rng := rand.New(rand.NewPCG(1, 2))
	raws := make([][]byte, backlog)
	ids := make([]string, backlog)
	for i := range raws {
		m := gen.Mixed(rng, suite.SmallText())
		raws[i], ids[i] = m.Data, m.MessageID
	}
	if err := env.Dovecot.Seed(suite.IMAPUser, "INBOX", raws); err != nil {
		return nil, err
	}
	watcher, err := suite.WatchInbound(ctx, env.Pool, "imap", 5*time.Millisecond)
	if err != nil {
		return nil, err
	}
	defer watcher.Stop()
	suite.Progress("%s: %d mails in the mailbox; starting the gateway", o.key, backlog)
	started := time.Now()
	if err := env.StartGateway(ctx); err != nil {
		return nil, err
	}
	ready := time.Now()
	var stored int
	for stored < backlog/2 {
		if time.Since(started) > 2*time.Minute {
			return nil, fmt.Errorf("only %d of %d mails stored after 2 minutes", stored, backlog)
		}
		if err := env.Pool.QueryRow(ctx, `SELECT count(*) FROM inbound WHERE source = 'imap'`).Scan(&stored); err != nil {
			return nil, fmt.Errorf("count stored mail: %w", err)
		}
		if err := suite.Sleep(ctx, 2*time.Millisecond); err != nil {
			return nil, err
		}
	}
	if err := env.Gateway.Kill(); err != nil {
		return nil, err
	}
	killedAt := time.Now()
	var atKill, progress, moved int
	err = env.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM inbound WHERE source = 'imap'), (SELECT ingested FROM mailboxes)`).
		Scan(&atKill, &progress)
	if err != nil {
		return nil, fmt.Errorf("count stored mail: %w", err)
	}
	if processed, err := env.Dovecot.Messages(ctx, suite.IMAPUser, suite.Processed); err == nil {
		moved = len(processed)
	}
	out, err := readOutbox(ctx, env)
	if err != nil {
		return nil, err
	}
	suite.Progress("%s: gateway killed with %d of %d mails stored; restarting it", o.key, atKill, backlog)
	if err := env.Gateway.Restart(ctx); err != nil {
		return nil, err
	}
	restarted := time.Now()
	o.note("killed %s after the gateway was ready (%s to start), with %d of %d mails stored; the mailbox's recorded "+
		"progress then: %d mails, %d moved to %s", suite.Seconds(killedAt.Sub(ready)), suite.Seconds(ready.Sub(started)),
		atKill, backlog, progress, moved, suite.Processed)
	o.note("the acknowledgements at the kill: %s", out)
	o.check("the kill came mid-backlog", atKill > 0 && atKill < backlog, "%d of %d stored at the kill", atKill, backlog)
	o.reference = fmt.Sprintf("before the kill: %s mails/s", suite.Count(float64(atKill)/killedAt.Sub(ready).Seconds()))
	if err := watcher.WaitSeen(ctx, ids, settle); err != nil {
		o.note("after the restart: %v", err)
	} else {
		o.recovery = fmt.Sprintf("all %d stored %s after the restart", backlog, suite.Seconds(time.Since(restarted)))
	}
	finished = true
	return func(ctx context.Context) {
		defer closeEnv(env, o)
		recovery, rec, err := afterLease(ctx, env, o, restarted, out.claimed, suite.Expect{IMAP: ids, AtLeastOnce: true})
		o.recovery = strings.TrimPrefix(o.recovery+"; "+recovery, "; ")
		o.err = err
		o.duplicates = fmt.Sprintf("%d (of %d claimed at the kill)", rec.RelayCopies, out.claimed)
		o.note("mails fetched again after the restart and logged as duplicates: %d", rec.InboundCopies)
	}, nil
}

// outbox is what the outbox held at a kill.
type outbox struct{ recorded, claimed, waiting int }

func (b outbox) String() string {
	return fmt.Sprintf("%d recorded as sent, %d claimed by the killed gateway (leased for ten minutes), %d waiting",
		b.recorded, b.claimed, b.waiting)
}

// readOutbox counts the acknowledgements sent, claimed (leased past the
// next five minutes) and waiting.
func readOutbox(ctx context.Context, env *suite.Env) (outbox, error) {
	var b outbox
	err := env.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state = 'sent'),
		count(*) FILTER (WHERE state = 'pending' AND next_attempt > now() + interval '5 minutes'),
		count(*) FILTER (WHERE state = 'pending' AND next_attempt <= now() + interval '5 minutes')
		FROM outbox WHERE kind = 'ack'`).Scan(&b.recorded, &b.claimed, &b.waiting)
	if err != nil {
		return b, fmt.Errorf("read outbox: %w", err)
	}
	return b, nil
}

// afterLease waits, up to leaseWait, until every acknowledgement is sent,
// notes when those the killed gateway had not claimed were and when all
// were, and reconciles. It returns how the acknowledgements recovered.
func afterLease(ctx context.Context, env *suite.Env, o *outcome, restarted time.Time, claimed int, exp suite.Expect) (string, suite.Reconciliation, error) {
	suite.Progress("%s: waiting (in the background) for the %d acknowledgements the killed gateway had claimed, up to %v",
		o.key, claimed, leaseWait)
	unclaimedAt, allAt, err := waitOutbox(ctx, env, restarted, leaseWait)
	if err != nil {
		return "", suite.Reconciliation{}, err
	}
	if !unclaimedAt.IsZero() {
		o.note("acknowledgements not claimed at the kill: all sent %s after the restart", suite.Seconds(unclaimedAt.Sub(restarted)))
	}
	recovery := fmt.Sprintf("acks not all sent within %v of the restart", leaseWait)
	if !allAt.IsZero() {
		recovery = fmt.Sprintf("every ack sent %s after the restart", suite.Seconds(allAt.Sub(restarted)))
	}
	o.note("%s (the outbox's lease of claimed mail is 10 min)", recovery)
	exp.Settle = time.Minute
	rec, err := reconcile(ctx, env, o, exp)
	return recovery, rec, err
}

// waitOutbox waits until no acknowledgement is pending, and says when the
// ones not claimed by a killed gateway (not leased past since + 5 min)
// were all sent, and when all were.
func waitOutbox(ctx context.Context, env *suite.Env, since time.Time, limit time.Duration) (unclaimed, all time.Time, err error) {
	for time.Since(since) < limit {
		var waiting, claimed int
		err := env.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE next_attempt <= $1::timestamptz + interval '5 minutes'),
			count(*) FILTER (WHERE next_attempt > $1::timestamptz + interval '5 minutes')
			FROM outbox WHERE state = 'pending'`, since).Scan(&waiting, &claimed)
		if err != nil {
			return unclaimed, all, fmt.Errorf("read outbox: %w", err)
		}
		now := time.Now()
		if waiting == 0 && unclaimed.IsZero() {
			unclaimed = now
		}
		if waiting+claimed == 0 {
			return unclaimed, now, nil
		}
		if err := suite.Sleep(ctx, 100*time.Millisecond); err != nil {
			return unclaimed, all, err
		}
	}
	return unclaimed, all, nil
}

// outboxKilled SIGKILLs the gateway while it sends acknowledgements to a
// relay that takes 50 ms per mail, and restarts it. Every acknowledgement
// must arrive; those sent but not recorded before the kill are sent again
// (the outbox sends at least once): counted. The mails the killed gateway
// had claimed wait for their lease to end, ten minutes, so the rest runs in
// the background.
func outboxKilled(ctx context.Context, r *runner, o *outcome) (func(context.Context), error) {
	const (
		mails     = 800
		killAfter = 200 // acknowledgements at the relay
		delay     = 50 * time.Millisecond
	)
	env, err := r.env(ctx, o.key, suite.Options{})
	if err != nil {
		return nil, err
	}
	finished := false
	defer func() {
		if !finished {
			closeEnv(env, o)
		}
	}()
	env.Relay.SetDelay(delay)
	res := suite.RunSMTP(ctx, suite.Stream(env.SMTPAddr, 10, r.generator(o.key), suite.SmallText(), mails, time.Time{}))
	o.checks = append(o.checks, suite.SenderCheck(res))
	o.fourxx = fmt.Sprint(res.Count(suite.Is4xx))
	deadline := time.Now().Add(time.Minute)
	for env.Relay.Delivered() < killAfter && time.Now().Before(deadline) {
		if err := suite.Sleep(ctx, 2*time.Millisecond); err != nil {
			return nil, err
		}
	}
	if err := env.Gateway.Kill(); err != nil {
		return nil, err
	}
	atKill := env.Relay.Delivered()
	out, err := readOutbox(ctx, env)
	if err != nil {
		return nil, err
	}
	suite.Progress("%s: gateway killed with %d acknowledgements at the relay (%s); restarting it", o.key, atKill, out)
	if err := env.Gateway.Restart(ctx); err != nil {
		return nil, err
	}
	restarted := time.Now()
	o.note("%d mails answered 250; the relay holds each mail 50 ms; killed with %d acknowledgements at the relay: %s",
		len(res.Accepted), atKill, out)
	o.reference = "the outbox's lease of claimed mail: 10 min"
	finished = true
	return func(ctx context.Context) {
		defer closeEnv(env, o)
		recovery, rec, err := afterLease(ctx, env, o, restarted, out.claimed, suite.Expect{SMTP: res.IDs(), AtLeastOnce: true})
		o.recovery, o.err = recovery, err
		o.duplicates = fmt.Sprintf("%d (of %d claimed, %d at the relay at the kill)", rec.RelayCopies, out.claimed, atKill)
	}, nil
}

// relayRefusing has the relay greet with 421 for 5 s, then refuse MAIL
// FROM with 451 for 5 s, then accept, with mail arriving in both phases:
// every acknowledgement must arrive, once, on a retry.
func relayRefusing(ctx context.Context, r *runner, o *outcome) (func(context.Context), error) {
	const phase = 5 * time.Second
	env, err := r.env(ctx, o.key, suite.Options{})
	if err != nil {
		return nil, err
	}
	defer closeEnv(env, o)
	gen := r.generator(o.key)
	start := time.Now()
	env.Relay.Refuse(421)
	first := suite.RunSMTP(ctx, suite.Stream(env.SMTPAddr, 10, gen, suite.SmallText(), 200, time.Time{}))
	if err := suite.Sleep(ctx, time.Until(start.Add(phase))); err != nil {
		return nil, err
	}
	env.Relay.Refuse(451)
	second := suite.RunSMTP(ctx, suite.Stream(env.SMTPAddr, 10, gen, suite.SmallText(), 100, time.Time{}))
	if err := suite.Sleep(ctx, time.Until(start.Add(2*phase))); err != nil {
		return nil, err
	}
	env.Relay.Accept()
	acceptAt := time.Now()
	suite.Progress("%s: the relay accepts again; waiting for the retries", o.key)
	_, allAt, err := waitOutbox(ctx, env, acceptAt, settle)
	if err != nil {
		return nil, err
	}
	refused := env.Relay.Refused()
	o.fourxx = fmt.Sprintf("relay: 421 × %d (greeting), 451 × %d (MAIL FROM)", refused[421], refused[451])
	var minDelay, maxDelay time.Duration
	var maxAttempts int
	err = env.Pool.QueryRow(ctx, `SELECT coalesce(min(sent_at - created_at), '0'), coalesce(max(sent_at - created_at), '0'),
		coalesce(max(attempts), 0) FROM outbox WHERE kind = 'ack' AND state = 'sent'`).Scan(&minDelay, &maxDelay, &maxAttempts)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	if allAt.IsZero() {
		o.recovery = "not within " + settle.String()
	} else {
		o.recovery = fmt.Sprintf("all acks sent %s after the relay accepted again (%s after the first refusal)",
			suite.Seconds(allAt.Sub(acceptAt)), suite.Seconds(allAt.Sub(start)))
	}
	o.reference = fmt.Sprintf("queued → sent per ack: %s to %s (the gateway's first retry is due 15–30 s after a failure)",
		suite.Seconds(minDelay), suite.Seconds(maxDelay))
	o.note("%d mails while the relay greeted with 421, %d while it refused MAIL FROM with 451; relay refused %d connections "+
		"and %d transactions; at most %d attempts per acknowledgement", len(first.Accepted), len(second.Accepted),
		refused[421], refused[451], maxAttempts)
	o.check("the relay refused in both phases", refused[421] > 0 && refused[451] > 0, "421 × %d, 451 × %d", refused[421], refused[451])
	merged := first
	merged.Accepted = append(merged.Accepted, second.Accepted...)
	merged.Refusals = append(merged.Refusals, second.Refusals...)
	merged.Rejected = append(merged.Rejected, second.Rejected...)
	merged.GivenUp = append(merged.GivenUp, second.GivenUp...)
	o.checks = append(o.checks, suite.SenderCheck(merged))
	rec, err := reconcile(ctx, env, o, suite.Expect{SMTP: merged.IDs()})
	o.duplicates = fmt.Sprint(rec.RelayCopies)
	return nil, err
}

// dovecotRestarted appends mail right after Dovecot restarts under the
// gateway's IDLE, gracefully and then after a kill, and times each pickup.
func dovecotRestarted(ctx context.Context, r *runner, o *outcome) (func(context.Context), error) {
	const (
		every = 250 * time.Millisecond
		span  = 5 * time.Second
	)
	env, err := r.env(ctx, o.key, suite.Options{Mailbox: true})
	if err != nil {
		return nil, err
	}
	defer closeEnv(env, o)
	if _, err := env.WaitMailboxState(ctx, "idling", time.Time{}, time.Minute); err != nil {
		return nil, err
	}
	watcher, err := suite.WatchInbound(ctx, env.Pool, "imap", 5*time.Millisecond)
	if err != nil {
		return nil, err
	}
	defer watcher.Stop()
	gen := r.generator(o.key)
	var all []suite.Appended
	baseline, err := env.AppendPaced(ctx, gen, time.Second, time.Now().Add(span))
	if err != nil {
		return nil, err
	}
	all = append(all, baseline...)
	if err := watcher.WaitSeen(ctx, ids(baseline), time.Minute); err != nil {
		return nil, err
	}
	base, _ := watcher.Pickups(baseline)
	o.reference = fmt.Sprintf("pickup before any restart: p50 %s, max %s", benchkit.Millis(benchkit.Percentile(base, 50)),
		benchkit.Millis(benchkit.Percentile(base, 100)))
	var worst time.Duration
	for _, fault := range []struct {
		name    string
		breakIt func(context.Context) error
	}{
		{"restarted (stopped gracefully, started)", env.Dovecot.Restart},
		{"killed (SIGKILL to all its processes) and started", func(ctx context.Context) error {
			if err := env.Dovecot.Kill(); err != nil {
				return err
			}
			return env.Dovecot.Restart(ctx)
		}},
	} {
		suite.Progress("%s: Dovecot %s", o.key, fault.name)
		broken := time.Now()
		if err := fault.breakIt(ctx); err != nil {
			return nil, err
		}
		upAt := time.Now()
		idle := make(chan string, 1)
		go func() {
			at, err := env.WaitMailboxState(ctx, "idling", broken, time.Minute)
			if err != nil {
				idle <- err.Error()
				return
			}
			idle <- fmt.Sprintf("the mailbox idling again %s after Dovecot was up", suite.Seconds(at.Sub(upAt)))
		}()
		appended, err := env.AppendPaced(ctx, gen, every, time.Now().Add(span))
		if err != nil {
			return nil, err
		}
		all = append(all, appended...)
		if err := watcher.WaitSeen(ctx, ids(appended), time.Minute); err != nil {
			o.note("Dovecot %s: %v", fault.name, err)
		}
		delays, _ := watcher.Pickups(appended)
		first := "never"
		if t, ok := watcher.Seen(appended[0].MessageID); ok {
			first = benchkit.Millis(t.Sub(appended[0].At))
		}
		worst = max(worst, benchkit.Percentile(delays, 100))
		o.note("Dovecot %s: %d mails appended from then on, one every %v; the first picked up after %s, p50 %s, max %s; %s",
			fault.name, len(appended), every, first, benchkit.Millis(benchkit.Percentile(delays, 50)),
			benchkit.Millis(benchkit.Percentile(delays, 100)), <-idle)
	}
	o.recovery = "pickup after a restart: max " + benchkit.Millis(worst)
	rec, err := reconcile(ctx, env, o, suite.Expect{IMAP: ids(all)})
	o.duplicates = fmt.Sprint(rec.RelayCopies)
	o.note("mails logged as duplicates (fetched again after a cut): %d", rec.InboundCopies)
	return nil, err
}

func ids(appended []suite.Appended) []string {
	out := make([]string, len(appended))
	for i, a := range appended {
		out[i] = a.MessageID
	}
	return out
}

// diskFull puts the gateway's TMPDIR on a 2 MB tmpfs and sends mails of
// 3 MB, which spool there, beside small mails, which do not: the large
// ones must be refused with 452 and retried, the small ones accepted; once
// the tmpfs is grown, every mail must be stored.
func diskFull(ctx context.Context, r *runner, o *outcome) (func(context.Context), error) {
	const (
		full      = 12 * time.Second
		afterGrow = 5 * time.Second
		bigSize   = 3 << 20
		bigMails  = 6 // over two senders
	)
	spool := filepath.Join(r.ws.Dir, o.key+"-spool")
	if err := os.MkdirAll(spool, 0o755); err != nil {
		return nil, err
	}
	if out, err := exec.CommandContext(ctx, "mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", spool).CombinedOutput(); err != nil {
		o.notRun = fmt.Sprintf("mounting a tmpfs failed (%v: %s); it needs root and a kernel that lets this process mount",
			err, strings.TrimSpace(string(out)))
		return nil, nil
	}
	defer func() {
		if out, err := exec.Command("umount", spool).CombinedOutput(); err != nil {
			o.note("umount %s: %v: %s", spool, err, strings.TrimSpace(string(out)))
		}
	}()
	env, err := r.env(ctx, o.key, suite.Options{TempDir: spool})
	if err != nil {
		return nil, err
	}
	defer closeEnv(env, o)
	gen := r.generator(o.key)
	big := []suite.SizeClass{{Name: "3 MB with a file", Min: bigSize, Max: bigSize, Weight: 1}}
	start := time.Now()
	growAt := start.Add(full)
	bigLoad := suite.Stream(env.SMTPAddr, 2, gen, big, bigMails, time.Time{})
	smallLoad := suite.Stream(env.SMTPAddr, 4, gen, suite.SmallText(), 0, growAt.Add(afterGrow))
	load := suite.SMTPLoad{Addr: env.SMTPAddr, Senders: 6, Next: func(k int) (suite.Mail, bool) {
		if k < 2 {
			return bigLoad.Next(k)
		}
		return smallLoad.Next(k - 2)
	}}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan suite.SMTPResult, 1)
	go func() { results <- suite.RunSMTP(sctx, load) }()
	if err := suite.Sleep(ctx, time.Until(growAt)); err != nil {
		return nil, err
	}
	suite.Progress("%s: growing the tmpfs to 256 MB", o.key)
	if out, err := exec.CommandContext(ctx, "mount", "-o", "remount,size=256m", spool).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("grow the tmpfs: %v: %s", err, strings.TrimSpace(string(out)))
	}
	grownAt := time.Now()
	res := <-results
	var b452, bigOther, smallFull, smallRefusedFull, bigEarly int
	var lastBig time.Time
	for _, f := range res.Refusals {
		switch {
		case f.Class == big[0].Name && strings.HasPrefix(f.Reply, "452"):
			b452++
		case f.Class == big[0].Name:
			bigOther++
		case f.At.Before(grownAt):
			smallRefusedFull++
		}
	}
	for _, a := range res.Accepted {
		switch {
		case a.Class == big[0].Name && a.At.Before(grownAt):
			bigEarly++
		case a.Class == big[0].Name:
			lastBig = a.At
		case a.At.Before(grownAt):
			smallFull++
		}
	}
	o.fourxx = fmt.Sprintf("%d (%s)", res.Count(suite.Is4xx), tally(res))
	if !lastBig.IsZero() {
		o.recovery = fmt.Sprintf("every large mail stored %s after the tmpfs grew", suite.Seconds(lastBig.Sub(grownAt)))
	}
	o.reference = "the senders' retry: 100 ms doubling to 5 s"
	o.note("TMPDIR on a 2 MB tmpfs for %v: 2 senders of %d mails of %s, 4 senders of 2–8 KB mails; then grown to 256 MB",
		full, bigMails, big[0].Name)
	o.note("while full: the large mails got 452 × %d (other refusals: %d), %d accepted; %d small mails accepted, %d refused",
		b452, bigOther, bigEarly, smallFull, smallRefusedFull)
	o.check("mails larger than the spool were refused with 452 and retried", b452 > 0 && bigEarly == 0,
		"452 × %d; %d large mails accepted while full", b452, bigEarly)
	o.check("small mails kept being accepted while the spool was full", smallFull > 0 && smallRefusedFull == 0,
		"%d accepted, %d refused", smallFull, smallRefusedFull)
	o.checks = append(o.checks, suite.SenderCheck(res))
	rec, err := reconcile(ctx, env, o, suite.Expect{SMTP: res.IDs()})
	o.duplicates = fmt.Sprint(rec.RelayCopies)
	return nil, err
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return " (" + err.Error() + ")"
}

// tally names the refusals by reply.
func tally(r suite.SMTPResult) string { return suite.Tally(r.Replies()) }

func seconds(t, since time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return suite.Seconds(t.Sub(since))
}
