package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// recipient is the demo department's address (`helpdesk serve --demo`).
const recipient = "support@localhost"

// message is one pre-generated mail.
type message struct {
	from string
	data []byte
}

// loadResult is what one timed run measured.
type loadResult struct {
	done    int   // mails answered 250 (or transactions committed)
	bytes   int64 // bytes of the mails answered 250
	elapsed time.Duration
	end     time.Time // the last success
	// lat holds one latency per success, sorted.
	lat  []time.Duration
	errs map[string]int // failure → count
	cpu  cpuUsage
}

func (r loadResult) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.done) / r.elapsed.Seconds()
}

// megabytesPerSecond is the rate in MB (10⁶ bytes) of mail per second.
func (r loadResult) megabytesPerSecond() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.bytes) / 1e6 / r.elapsed.Seconds()
}

// percentile returns the p-th percentile (0 < p ≤ 100) of the latencies.
func (r loadResult) percentile(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(float64(len(r.lat))*p/100+0.5) - 1
	return r.lat[min(max(i, 0), len(r.lat)-1)]
}

func (r loadResult) errorCount() int {
	n := 0
	for _, c := range r.errs {
		n += c
	}
	return n
}

// workerResult is what one connection or loop measured.
type workerResult struct {
	done  int
	bytes int64
	last  time.Time
	lat   []time.Duration
	errs  map[string]int
	err   error // a failure that stopped the worker
}

func (w *workerResult) fail(what string) {
	if w.errs == nil {
		w.errs = map[string]int{}
	}
	w.errs[what]++
}

// runTimed runs n workers, released together, and merges what they
// measured. Each worker takes jobs from a shared counter (so a slow job does
// not hold the others back) until total are taken or ctx ends; setup runs
// before the clock starts, teardown after it stops.
func runTimed[S any](ctx context.Context, n, total int, probe cpuProbe,
	setup func(ctx context.Context) (S, error),
	job func(ctx context.Context, s S, i int, w *workerResult) (S, error),
	teardown func(S),
) (loadResult, error) {
	states := make([]S, n)
	for k := range states {
		s, err := setup(ctx)
		if err != nil {
			for _, s := range states[:k] {
				teardown(s)
			}
			return loadResult{}, err
		}
		states[k] = s
	}
	var next atomic.Int64
	results := make([]workerResult, n)
	startGate := make(chan struct{})
	var wg sync.WaitGroup
	for k := range states {
		wg.Go(func() {
			w := &results[k]
			<-startGate
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= total {
					return
				}
				s, err := job(ctx, states[k], i, w)
				states[k] = s
				if err != nil {
					w.err = err
					return
				}
			}
		})
	}
	before := probe.snapshot()
	start := time.Now()
	close(startGate)
	wg.Wait()
	r := merge(results, start)
	// Before teardown: a backend's CPU time goes with its process.
	r.cpu = probe.snapshot().sub(before)
	for _, s := range states {
		teardown(s)
	}
	var errs []error
	for _, w := range results {
		if w.err != nil {
			errs = append(errs, w.err)
		}
	}
	if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	return r, errors.Join(errs...)
}

func merge(results []workerResult, start time.Time) loadResult {
	r := loadResult{errs: map[string]int{}}
	for _, w := range results {
		r.done += w.done
		r.bytes += w.bytes
		r.lat = append(r.lat, w.lat...)
		if w.last.After(r.end) {
			r.end = w.last
		}
		for k, v := range w.errs {
			r.errs[k] += v
		}
	}
	slices.Sort(r.lat)
	if !r.end.IsZero() {
		r.elapsed = r.end.Sub(start)
	}
	return r
}

// smtpConn is one load generator connection; nil after a broken one that
// could not be redialled.
type smtpConn struct {
	addr string
	c    *smtp.Client
}

// sendAll sends every mail to the SMTP server at addr over conns
// connections, each sending one mail after the other (MAIL, RCPT, DATA),
// and measures from the first MAIL to the last 250.
func sendAll(ctx context.Context, addr string, conns int, mails []message, probe cpuProbe) (loadResult, error) {
	setup := func(ctx context.Context) (*smtpConn, error) {
		c, err := dial(ctx, addr)
		if err != nil {
			return nil, err
		}
		return &smtpConn{addr: addr, c: c}, nil
	}
	job := func(ctx context.Context, sc *smtpConn, i int, w *workerResult) (*smtpConn, error) {
		return sc, sc.send(ctx, mails[i], w)
	}
	teardown := func(sc *smtpConn) {
		if sc != nil && sc.c != nil {
			sc.c.Quit() //nolint:errcheck // the server may be gone already
		}
	}
	return runTimed(ctx, conns, len(mails), probe, setup, job, teardown)
}

// send sends one mail and records its outcome. A refusal is counted and the
// connection reset; a broken connection is counted and redialled, and only
// a failure to redial stops the worker.
func (sc *smtpConn) send(ctx context.Context, m message, w *workerResult) error {
	t0 := time.Now()
	err := sendMail(sc.c, m)
	if err == nil {
		now := time.Now()
		w.done++
		w.bytes += int64(len(m.data))
		w.last = now
		w.lat = append(w.lat, now.Sub(t0))
		return nil
	}
	var smtpErr *smtp.SMTPError
	if errors.As(err, &smtpErr) {
		w.fail(fmt.Sprintf("%d %d.%d.%d %s", smtpErr.Code, smtpErr.EnhancedCode[0], smtpErr.EnhancedCode[1],
			smtpErr.EnhancedCode[2], smtpErr.Message))
		if err := sc.c.Reset(); err == nil {
			return nil
		}
	} else {
		w.fail("connection: " + err.Error())
	}
	sc.c.Close() //nolint:errcheck // replaced below
	c, err := dial(ctx, sc.addr)
	if err != nil {
		sc.c = nil
		return fmt.Errorf("redial %s: %w", sc.addr, err)
	}
	sc.c = c
	return nil
}

func sendMail(c *smtp.Client, m message) error {
	if err := c.Mail(m.from, &smtp.MailOptions{Size: int64(len(m.data))}); err != nil {
		return err
	}
	if err := c.Rcpt(recipient, nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(m.data); err != nil {
		return err
	}
	return w.Close()
}

func dial(ctx context.Context, addr string) (*smtp.Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	c := smtp.NewClient(conn)
	if err := c.Hello("loadgen.localhost"); err != nil {
		c.Close() //nolint:errcheck // reporting the greeting's error
		return nil, fmt.Errorf("greet %s: %w", addr, err)
	}
	return c, nil
}
