package tickets

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Mails that arrive while others are being committed are committed together:
// one transaction and one statement per table for all of them. Nothing
// waits to fill a batch; a batch is whatever queued up during the previous
// commit, so a lone mail goes at once and a burst shares the cost of each
// statement and of each WAL flush.
const (
	// maxBatch bounds the mails of one transaction.
	maxBatch = 32
	// maxCommitters is how many batches may be in flight at once.
	maxCommitters = 1
	// batchableSize: a mail larger than this is committed on its own, so
	// that small mails never wait behind the chunks of a large one.
	batchableSize = 256 << 10
	// batchTimeout bounds one batch's transaction.
	batchTimeout = 2 * time.Minute
)

// ingestCall is one caller waiting for its mail to be committed. It keeps
// the caller's context (against the usual rule) because the committer, not
// the caller, decides when the mail is taken: one whose caller has given up
// by then is left out.
type ingestCall struct {
	ctx  context.Context
	in   *InboundMail
	res  IngestResult
	err  error
	done chan struct{}
}

// ingestQueue holds the calls waiting for a committer. Committers are
// goroutines started on demand; none runs while nothing is queued.
type ingestQueue struct {
	mu         sync.Mutex
	pending    []*ingestCall
	committers int
}

// IngestMail records an inbound mail and, unless it is a copy of a mail the
// department already has, opens a ticket for it with its attachments and
// queues the acknowledgement, all in one transaction. When it returns nil the
// mail is committed and its source may be acknowledged. When it returns an
// error the mail may or may not be committed: delivering it again is safe,
// as the copy is recognized.
func (s *Store) IngestMail(ctx context.Context, in *InboundMail) (IngestResult, error) {
	call := &ingestCall{ctx: ctx, in: in, done: make(chan struct{})}
	if in.Raw.Size+attachmentsSize(in) > batchableSize {
		s.commit([]*ingestCall{call})
		return call.res, call.err
	}
	q := &s.queue
	q.mu.Lock()
	q.pending = append(q.pending, call)
	start := q.committers < maxCommitters
	if start {
		q.committers++
	}
	q.mu.Unlock()
	if start {
		go s.commitQueued()
	}
	// Wait even when ctx ends: the committer may be reading the mail's
	// contents, which the caller frees once this returns. A call whose ctx
	// has ended before its batch starts is not committed.
	<-call.done
	return call.res, call.err
}

func attachmentsSize(in *InboundMail) int64 {
	var n int64
	for _, a := range in.Attachments {
		n += a.Content.Size
	}
	return n
}

// commitQueued commits batches of queued calls until none is left.
func (s *Store) commitQueued() {
	q := &s.queue
	for {
		q.mu.Lock()
		n := min(len(q.pending), maxBatch)
		if n == 0 {
			q.committers--
			q.mu.Unlock()
			return
		}
		calls := make([]*ingestCall, n)
		copy(calls, q.pending)
		q.pending = q.pending[n:]
		q.mu.Unlock()
		s.commit(calls)
	}
}

// commit records calls in one transaction. Should that fail with several
// mails in it, each is tried on its own, so that one mail the database
// refuses cannot keep the others out.
func (s *Store) commit(calls []*ingestCall) {
	// A defect must cost these mails a retry, not the process.
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("storing mail failed with a panic", "panic", p, "stack", string(debug.Stack()))
			for _, c := range calls {
				select {
				case <-c.done:
				default:
					c.err = fmt.Errorf("ingest mail %q: internal error: %v", dedupeKey(c.in), p)
					close(c.done)
				}
			}
		}
	}()
	live := calls[:0:0]
	for _, c := range calls {
		if err := c.ctx.Err(); err != nil {
			c.err = fmt.Errorf("ingest mail %q: %w", dedupeKey(c.in), err)
			close(c.done)
			continue
		}
		live = append(live, c)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	mails := make([]*InboundMail, len(live))
	for i, c := range live {
		mails[i] = c.in
	}
	results, err := s.ingestTx(ctx, mails)
	if err != nil && len(live) > 1 && refusedForContent(err) {
		s.log.Warn("batch of mails failed; storing them one by one", "mails", len(live), "err", err)
		for _, c := range live {
			s.commit([]*ingestCall{c})
		}
		return
	}
	queued := false
	for i, c := range live {
		if err != nil {
			c.err = fmt.Errorf("ingest mail %q: %w", dedupeKey(c.in), err)
		} else {
			c.res = results[i]
			queued = queued || c.res.AckQueued
		}
	}
	// The sender hears of the mail before any caller returns.
	if queued {
		s.outboxQueued()
	}
	for _, c := range live {
		close(c.done)
	}
}

// refusedForContent reports whether the database refused a statement for
// what it held (bad data, a constraint, a limit, a deadlock), which one
// mail of a batch may cause; not for being unreachable or shutting down,
// which trying each mail alone would only repeat.
func refusedForContent(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code[:2] {
	case "22", "23", "40", "54":
		return true
	}
	return false
}
