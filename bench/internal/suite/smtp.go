package suite

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// SMTPLoad is mail sent by senders that behave like a mail server
// relaying to the gateway: one connection each, kept open; a 4xx reply or a
// broken connection is retried after a growing, jittered wait (a real MTA
// waits minutes; this one 100 ms doubling to 5 s); a 5xx reply is final.
type SMTPLoad struct {
	Addr    string
	Senders int
	// Next returns sender k's next mail, or false when it has no more.
	Next func(k int) (Mail, bool)
	// GiveUp bounds how long one mail is retried. Default: 5 minutes.
	GiveUp time.Duration
}

// Accepted is a mail answered 250.
type Accepted struct {
	MessageID string
	Class     string
	Bytes     int
	// Latency is the successful attempt's, MAIL FROM to 250.
	Latency time.Duration
	// Attempts counts tries, the successful one included.
	Attempts int
	At       time.Time
}

// Refusal is one attempt that failed: a reply other than 250, or a
// connection that could not be opened or broke.
type Refusal struct {
	At    time.Time
	Class string
	// Reply is the code and enhanced code ("451 4.3.0"), or
	// "connection refused" / "connection broken".
	Reply string
	Text  string
}

// Temporary says whether the sender retries after it.
func (r Refusal) Temporary() bool { return r.Reply == "" || r.Reply[0] != '5' }

// SMTPResult is what the senders saw.
type SMTPResult struct {
	Start    time.Time
	End      time.Time // the last 250
	Accepted []Accepted
	Refusals []Refusal
	// Rejected are mails refused with 5xx; GivenUp those still refused
	// when GiveUp passed or the run was cancelled.
	Rejected, GivenUp []string
}

// IDs are the Message-IDs answered 250.
func (r SMTPResult) IDs() []string {
	ids := make([]string, len(r.Accepted))
	for i, a := range r.Accepted {
		ids[i] = a.MessageID
	}
	return ids
}

// Rate is mails answered 250 per second, from the start to the last 250.
func (r SMTPResult) Rate() float64 {
	if d := r.End.Sub(r.Start); d > 0 {
		return float64(len(r.Accepted)) / d.Seconds()
	}
	return 0
}

// MBps is megabytes (10⁶ bytes) answered 250 per second.
func (r SMTPResult) MBps() float64 {
	var n int
	for _, a := range r.Accepted {
		n += a.Bytes
	}
	if d := r.End.Sub(r.Start); d > 0 {
		return float64(n) / 1e6 / d.Seconds()
	}
	return 0
}

// Latencies are the successful attempts' latencies.
func (r SMTPResult) Latencies() []time.Duration {
	out := make([]time.Duration, len(r.Accepted))
	for i, a := range r.Accepted {
		out[i] = a.Latency
	}
	return out
}

// Count counts the refusals that match.
func (r SMTPResult) Count(match func(Refusal) bool) int {
	n := 0
	for _, f := range r.Refusals {
		if match(f) {
			n++
		}
	}
	return n
}

// Is4xx matches SMTP replies 4xx (not connection failures).
func Is4xx(f Refusal) bool { return len(f.Reply) > 0 && f.Reply[0] == '4' }

// IsConnection matches connections refused or broken.
func IsConnection(f Refusal) bool { return len(f.Reply) > 0 && f.Reply[0] == 'c' }

// Replies counts refusals by reply.
func (r SMTPResult) Replies() map[string]int {
	out := map[string]int{}
	for _, f := range r.Refusals {
		out[f.Reply]++
	}
	return out
}

// RunSMTP runs the senders until each has no more mail, and merges what
// they saw. A mail under way when ctx ends is given up.
func RunSMTP(ctx context.Context, load SMTPLoad) SMTPResult {
	if load.GiveUp <= 0 {
		load.GiveUp = 5 * time.Minute
	}
	res := SMTPResult{Start: time.Now()}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for k := range load.Senders {
		wg.Go(func() {
			s := &sender{addr: load.Addr, giveUp: load.GiveUp}
			defer s.close()
			for ctx.Err() == nil {
				m, ok := load.Next(k)
				if !ok {
					break
				}
				s.deliver(ctx, m)
			}
			mu.Lock()
			defer mu.Unlock()
			res.Accepted = append(res.Accepted, s.res.Accepted...)
			res.Refusals = append(res.Refusals, s.res.Refusals...)
			res.Rejected = append(res.Rejected, s.res.Rejected...)
			res.GivenUp = append(res.GivenUp, s.res.GivenUp...)
		})
	}
	wg.Wait()
	slices.SortFunc(res.Accepted, func(a, b Accepted) int { return a.At.Compare(b.At) })
	slices.SortFunc(res.Refusals, func(a, b Refusal) int { return a.At.Compare(b.At) })
	if n := len(res.Accepted); n > 0 {
		res.End = res.Accepted[n-1].At
	}
	return res
}

// sender is one connection's worth of a mail server's queue runner.
type sender struct {
	addr   string
	giveUp time.Duration
	c      *smtp.Client
	res    SMTPResult
}

// Backoff of a sender after a failed attempt.
const (
	firstRetry = 100 * time.Millisecond
	lastRetry  = 5 * time.Second
)

func (s *sender) deliver(ctx context.Context, m Mail) {
	deadline := time.Now().Add(s.giveUp)
	wait := firstRetry
	for attempt := 1; ; attempt++ {
		t0 := time.Now()
		err := s.dial(ctx)
		if err == nil {
			t0 = time.Now()
			err = s.transaction(m)
		}
		if err == nil {
			now := time.Now()
			s.res.Accepted = append(s.res.Accepted, Accepted{MessageID: m.MessageID, Class: m.Class, Bytes: len(m.Data),
				Latency: now.Sub(t0), Attempts: attempt, At: now})
			return
		}
		smtpErr, isReply := errors.AsType[*smtp.SMTPError](err)
		switch {
		case isReply:
			s.refused(m, fmt.Sprintf("%d %d.%d.%d", smtpErr.Code, smtpErr.EnhancedCode[0], smtpErr.EnhancedCode[1],
				smtpErr.EnhancedCode[2]), err)
			if smtpErr.Code >= 500 {
				s.res.Rejected = append(s.res.Rejected, m.MessageID)
				s.reset()
				return
			}
			if smtpErr.Code == 421 {
				s.close()
			} else {
				s.reset()
			}
		case s.c == nil:
			s.refused(m, "connection refused", err)
		default:
			s.refused(m, "connection broken", err)
			s.close()
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			s.res.GivenUp = append(s.res.GivenUp, m.MessageID)
			return
		}
		// Jittered, so that senders refused together do not return together.
		if Sleep(ctx, wait/2+rand.N(wait/2+1)) != nil {
			s.res.GivenUp = append(s.res.GivenUp, m.MessageID)
			return
		}
		wait = min(2*wait, lastRetry)
	}
}

func (s *sender) refused(m Mail, reply string, err error) {
	s.res.Refusals = append(s.res.Refusals, Refusal{At: time.Now(), Class: m.Class, Reply: reply, Text: err.Error()})
}

func (s *sender) transaction(m Mail) error {
	if err := s.c.Mail(m.From, &smtp.MailOptions{Size: int64(len(m.Data))}); err != nil {
		return err
	}
	if err := s.c.Rcpt(Address, nil); err != nil {
		return err
	}
	w, err := s.c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(m.Data); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// dial opens the connection unless it is open. A greeting refused (421
// from a gateway at its connection limit) is returned as the reply.
func (s *sender) dial(ctx context.Context) error {
	if s.c != nil {
		return nil
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(dctx, "tcp", s.addr)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", s.addr, err)
	}
	c := smtp.NewClient(conn)
	// Bounds a hung gateway: a mail server gives up on a silent peer too.
	c.CommandTimeout, c.SubmissionTimeout = 2*time.Minute, 3*time.Minute
	if err := c.Hello("mta.example.net"); err != nil {
		c.Close()
		return err
	}
	s.c = c
	return nil
}

// reset ends a refused transaction, or the connection if that fails.
func (s *sender) reset() {
	if s.c != nil && s.c.Reset() != nil {
		s.close()
	}
}

func (s *sender) close() {
	if s.c != nil {
		s.c.Close()
		s.c = nil
	}
}

// Stream is senders sending mails drawn from classes: count of them in all
// when count > 0, and none started after until when it is not zero.
func Stream(addr string, senders int, gen *Generator, classes []SizeClass, count int, until time.Time) SMTPLoad {
	rngs := make([]*rand.Rand, senders)
	for k := range rngs {
		rngs[k] = rand.New(rand.NewPCG(uint64(k), 2))
	}
	var taken atomic.Int64
	return SMTPLoad{Addr: addr, Senders: senders, Next: func(k int) (Mail, bool) {
		if !until.IsZero() && time.Now().After(until) || count > 0 && taken.Add(1) > int64(count) {
			return Mail{}, false
		}
		return gen.Mixed(rngs[k], classes), true
	}}
}

// SenderCheck checks that every mail the senders took on was answered 250
// in the end: none refused for good (5xx), none given up.
func SenderCheck(r SMTPResult) Check {
	return check("every mail sent was answered 250 in the end", len(r.Rejected) == 0 && len(r.GivenUp) == 0,
		"%d answered 250 after %d attempts refused (%s); %d refused 5xx%s, %d given up%s", len(r.Accepted), len(r.Refusals),
		Tally(r.Replies()), len(r.Rejected), sample(r.Rejected), len(r.GivenUp), sample(r.GivenUp))
}
