package suite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helpdeskgw/helpdesk/bench/internal/benchkit"
)

// Appended is a mail appended to the mailbox, and when its APPEND started.
type Appended struct {
	MessageID string
	At        time.Time
}

// AppendPaced appends a small mail to INBOX every interval until until (at
// least one), each over one IMAP connection kept open.
func (e *Env) AppendPaced(ctx context.Context, gen *Generator, every time.Duration, until time.Time) ([]Appended, error) {
	c, err := e.Dovecot.Login(ctx, IMAPUser)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	rng := rand.New(rand.NewPCG(3, 5))
	var out []Appended
	next := time.Now()
	for len(out) == 0 || time.Now().Before(until) {
		m := gen.Mixed(rng, SmallText())
		at := time.Now()
		if err := benchkit.AppendMail(c, "INBOX", m.Data); err != nil {
			return out, err
		}
		out = append(out, Appended{MessageID: m.MessageID, At: at})
		next = next.Add(every)
		if err := Sleep(ctx, time.Until(next)); err != nil {
			return out, err
		}
	}
	return out, nil
}

// Watcher notes when each mail's inbound row first becomes visible: the
// mail is then a ticket (or has its disposition), committed.
type Watcher struct {
	mu   sync.Mutex
	seen map[string]time.Time
	stop context.CancelFunc
	done chan struct{}
	err  error
}

// WatchInbound polls the inbound log every interval for rows of source
// (smtp or imap) newer than those there now.
func WatchInbound(ctx context.Context, pool *pgxpool.Pool, source string, every time.Duration) (*Watcher, error) {
	var last int64
	if err := pool.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM inbound`).Scan(&last); err != nil {
		return nil, fmt.Errorf("inbound log: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &Watcher{seen: map[string]time.Time{}, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			rows, err := pool.Query(ctx, `SELECT id, message_id FROM inbound WHERE id > $1 AND source = $2 ORDER BY id`, last, source)
			now := time.Now()
			if err == nil {
				var id int64
				var mid string
				for rows.Next() {
					if err = rows.Scan(&id, &mid); err != nil {
						break
					}
					last = id
					w.mu.Lock()
					if _, ok := w.seen[mid]; !ok {
						w.seen[mid] = now
					}
					w.mu.Unlock()
				}
				rows.Close()
				if err == nil {
					err = rows.Err()
				}
			}
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				// PostgreSQL may be down on purpose; keep trying.
				w.mu.Lock()
				w.err = err
				w.mu.Unlock()
			}
			if Sleep(ctx, every) != nil {
				return
			}
		}
	}()
	return w, nil
}

// Seen returns when the mail's row was first seen.
func (w *Watcher) Seen(messageID string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, ok := w.seen[messageID]
	return t, ok
}

// Stop ends the watching.
func (w *Watcher) Stop() {
	w.stop()
	<-w.done
}

// Pickups are the delays from each APPEND's start until its row was seen;
// missing counts the mails not seen.
func (w *Watcher) Pickups(appended []Appended) (delays []time.Duration, missing int) {
	for _, a := range appended {
		if t, ok := w.Seen(a.MessageID); ok {
			delays = append(delays, t.Sub(a.At))
		} else {
			missing++
		}
	}
	return delays, missing
}

// WaitSeen waits until every mail's row is seen, for at most limit.
func (w *Watcher) WaitSeen(ctx context.Context, ids []string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		missing := 0
		for _, id := range ids {
			if _, ok := w.Seen(id); !ok {
				missing++
			}
		}
		if missing == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d mails not in the inbound log after %v", missing, len(ids), limit)
		}
		if err := Sleep(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
}

// BareIdle times n small mails appended to a folder of the environment's
// Dovecot that a bare go-imap client idles on (see benchkit.IdleLatency):
// the ceiling of the gateway's IMAP pickup.
func (e *Env) BareIdle(ctx context.Context, gen *Generator, n int) ([]time.Duration, error) {
	rng := rand.New(rand.NewPCG(4, 6))
	mails := make([][]byte, n)
	for i := range mails {
		mails[i] = gen.Mixed(rng, SmallText()).Data
	}
	return benchkit.IdleLatency(ctx, e.Dovecot, IMAPUser, imapPassword, "Idle", mails)
}
