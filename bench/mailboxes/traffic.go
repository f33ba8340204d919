package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/jackc/pgx/v5"

	"github.com/helpdeskgw/helpdesk/bench/internal/benchkit"
	"github.com/helpdeskgw/helpdesk/internal/dovecot"
)

// appender is a logged-in client of one mailbox's user; one APPEND at a
// time goes over it.
type appender struct {
	mu sync.Mutex
	c  *imapclient.Client
}

func openAppenders(ctx context.Context, srv *dovecot.Server, n int) ([]*appender, error) {
	out := make([]*appender, n)
	for i := range out {
		c, err := srv.Login(ctx, user(i))
		if err != nil {
			closeAppenders(out)
			return nil, err
		}
		out[i] = &appender{c: c}
	}
	return out, nil
}

func closeAppenders(as []*appender) {
	for _, a := range as {
		if a != nil {
			a.c.Close()
		}
	}
}

// traffic appends a mail to a random mailbox every interval for d and
// times each from the start of its APPEND until its acknowledgement is
// committed in the outbox. Each mail comes from an address of its own,
// which the acknowledgement goes back to.
type traffic struct {
	g         *gateway
	appenders []*appender
	rng       *rand.Rand
}

func (t *traffic) run(ctx context.Context, tag string, every, d time.Duration) ([]time.Duration, error) {
	w, err := t.g.watchAcks(ctx)
	if err != nil {
		return nil, err
	}
	defer w.close()
	var (
		mu      sync.Mutex
		started = map[string]time.Time{}
		failure error
		wg      sync.WaitGroup
	)
	tick := time.NewTicker(every)
	defer tick.Stop()
	deadline := time.Now().Add(d)
	for seq := 0; time.Now().Before(deadline); seq++ {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
		a := t.appenders[t.rng.IntN(len(t.appenders))]
		id := fmt.Sprintf("%s-%d", tag, seq)
		raw := mail(id, 2048)
		wg.Go(func() {
			a.mu.Lock()
			defer a.mu.Unlock()
			start := time.Now()
			err := benchkit.AppendMail(a.c, "INBOX", raw)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failure = errors.Join(failure, err)
				return
			}
			started[customer(id)] = start
		})
	}
	wg.Wait()
	if failure != nil {
		return nil, failure
	}
	acked, err := w.waitFor(ctx, len(started))
	if err != nil {
		return nil, err
	}
	lat := make([]time.Duration, 0, len(started))
	for who, start := range started {
		at, ok := acked[who]
		if !ok {
			return nil, fmt.Errorf("mail from %s acknowledged to someone else", who)
		}
		lat = append(lat, at.Sub(start))
	}
	return lat, nil
}

// ackWatcher notes when each acknowledgement is committed, reading the new
// outbox rows every 2 ms on a connection of its own (the primary key's
// end: cheap to ask that often).
type ackWatcher struct {
	conn *pgx.Conn
	stop chan struct{}
	done chan struct{}

	mu    sync.Mutex
	acked map[string]time.Time
	err   error
}

func (g *gateway) watchAcks(ctx context.Context) (*ackWatcher, error) {
	conn, err := pgx.Connect(ctx, g.url)
	if err != nil {
		return nil, fmt.Errorf("watch the outbox: %w", err)
	}
	var last int64
	if err := conn.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM outbox`).Scan(&last); err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("watch the outbox: %w", err)
	}
	w := &ackWatcher{conn: conn, stop: make(chan struct{}), done: make(chan struct{}), acked: map[string]time.Time{}}
	go func() {
		defer close(w.done)
		for {
			rows, err := conn.Query(ctx, `SELECT id, recipient FROM outbox WHERE id > $1 ORDER BY id`, last)
			if err == nil {
				var id int64
				var recipient string
				_, err = pgx.ForEachRow(rows, []any{&id, &recipient}, func() error {
					now := time.Now()
					w.mu.Lock()
					w.acked[strings.ToLower(recipient)] = now
					w.mu.Unlock()
					last = id
					return nil
				})
			}
			if err != nil {
				w.mu.Lock()
				w.err = fmt.Errorf("watch the outbox: %w", err)
				w.mu.Unlock()
				return
			}
			select {
			case <-w.stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	return w, nil
}

// waitFor waits until n acknowledgements have been seen and returns them.
func (w *ackWatcher) waitFor(ctx context.Context, n int) (map[string]time.Time, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		w.mu.Lock()
		got, err := len(w.acked), w.err
		w.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if got >= n {
			w.mu.Lock()
			defer w.mu.Unlock()
			return w.acked, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d of %d mails acknowledged after 2 minutes", got, n)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (w *ackWatcher) close() {
	close(w.stop)
	<-w.done
	w.conn.Close(context.Background())
}

// customer is the address a mail with this ID comes from.
func customer(id string) string { return id + "@example.org" }

// mail is a customer's mail of about size bytes.
func mail(id string, size int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: Customer %[1]s <%[2]s>\r\nTo: support@example.com\r\nSubject: Question %[1]s\r\n"+
		"Message-ID: <%[1]s@example.org>\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: text/plain; charset=utf-8\r\n\r\n", id, customer(id))
	line := "Hola, tengo un problema con mi cuenta y no puedo iniciar sesión desde ayer.\r\n"
	for b.Len() < size {
		b.WriteString(line)
	}
	return []byte(b.String())
}
