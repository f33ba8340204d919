package tickets

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrBusy is a job another instance is running.
var ErrBusy = errors.New("running elsewhere")

// RunJob runs fn unless another instance runs the same job now (then it
// is ErrBusy), and records the run: when, what fn did, and its error. The
// job holds a lock on one of the pool's connections while it runs; the
// lock is released before the connection goes back.
func (s *Store) RunJob(ctx context.Context, name, instance string, fn func(context.Context) (int, error)) (int, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("job %s: %w", name, err)
	}
	defer conn.Release()
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended('job:' || $1, 0))`, name).Scan(&got); err != nil {
		return 0, fmt.Errorf("job %s: lock: %w", name, err)
	}
	if !got {
		return 0, fmt.Errorf("job %s: %w", name, ErrBusy)
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, `SELECT pg_advisory_unlock(hashtextextended('job:' || $1, 0))`, name); err != nil {
			// A connection still holding the lock must not go back to the
			// pool.
			conn.Conn().Close(uctx) //nolint:errcheck // closing anyway
		}
	}()
	if _, err := conn.Exec(ctx, `
		INSERT INTO job_runs (job, started_at, instance) VALUES ($1, now(), $2)
		ON CONFLICT (job) DO UPDATE SET started_at = now(), finished_at = NULL, instance = $2`, name, instance); err != nil {
		return 0, fmt.Errorf("job %s: record start: %w", name, err)
	}
	n, runErr := fn(ctx)
	errText := ""
	if runErr != nil {
		errText = oneLine(runErr.Error(), 1000)
	}
	if _, err := conn.Exec(context.WithoutCancel(ctx), `UPDATE job_runs SET finished_at = now(), items = $2, error = $3 WHERE job = $1`,
		name, n, errText); err != nil && runErr == nil {
		runErr = fmt.Errorf("job %s: record end: %w", name, err)
	}
	return n, runErr
}

// JobRun is a scheduled job's last run.
type JobRun struct {
	Job        string
	StartedAt  time.Time
	FinishedAt *time.Time
	Items      int64
	Error      string
	Instance   string
}

// JobRuns lists each job's last run.
func (s *Store) JobRuns(ctx context.Context) ([]JobRun, error) {
	return queryStructs[JobRun](ctx, s.pool, "read job runs",
		`SELECT job, started_at, finished_at, items, error, instance FROM job_runs ORDER BY job`)
}

// AutoResolve resolves the tickets of departments with auto-resolve days
// that have waited in Replied that long, and mails each customer (who can
// reopen it through the link). It returns how many it resolved.
func (s *Store) AutoResolve(ctx context.Context) (int, error) {
	n := 0
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			SELECT t.id, t.customer_email FROM tickets t JOIN departments d ON d.id = t.department_id
			WHERE t.status = 'replied' AND d.auto_resolve_days IS NOT NULL
			  AND t.updated_at < now() - d.auto_resolve_days * interval '1 day'
			ORDER BY t.id LIMIT 500
			FOR UPDATE OF t SKIP LOCKED`)
		if err != nil {
			return err
		}
		type due struct {
			id       int64
			customer string
		}
		list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (due, error) {
			var d due
			return d, r.Scan(&d.id, &d.customer)
		})
		if err != nil {
			return err
		}
		for _, d := range list {
			if _, err := tx.Exec(ctx, `UPDATE tickets SET status = 'resolved', updated_at = now() WHERE id = $1`, d.id); err != nil {
				return err
			}
			if err := history(ctx, tx, d.id, "system", "status", string(StatusReplied), string(StatusResolved)); err != nil {
				return err
			}
			if err := queueAnswer(ctx, tx, d.id, 0, d.customer, KindAutoResolved); err != nil {
				return err
			}
		}
		n = len(list)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("auto-resolve: %w", err)
	}
	if n > 0 {
		s.outboxQueued()
	}
	return n, nil
}

// ExpireTokens deletes links expired for over a month (a month in which an
// expired link still says "expired" rather than "unknown") and sessions
// past their time. It returns how many rows went.
func (s *Store) ExpireTokens(ctx context.Context) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `
		WITH t AS (DELETE FROM tokens WHERE expires_at < now() - interval '30 days' RETURNING 1),
		     s AS (DELETE FROM sessions WHERE expires_at < now() RETURNING 1),
		     ss AS (DELETE FROM staff_sessions WHERE expires_at < now() RETURNING 1)
		SELECT (SELECT count(*) FROM t) + (SELECT count(*) FROM s) + (SELECT count(*) FROM ss)`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("expire tokens and sessions: %w", err)
	}
	return n, nil
}

// PruneRawSources drops the raw source of mail received longer ago than
// retention (the log row, the tickets and their files stay), then the
// stored contents nothing refers to any more. It returns how many sources
// it dropped.
func (s *Store) PruneRawSources(ctx context.Context, retention time.Duration) (int, error) {
	tag, err := s.pool.Exec(ctx, `
		UPDATE inbound SET raw_sha256 = NULL, raw_pruned_at = now()
		WHERE id IN (SELECT id FROM inbound WHERE raw_sha256 IS NOT NULL AND received_at < now() - $1 * interval '1 second'
		             ORDER BY id LIMIT 5000 FOR UPDATE SKIP LOCKED)`, int64(retention/time.Second))
	if err != nil {
		return 0, fmt.Errorf("prune raw sources: %w", err)
	}
	n := int(tag.RowsAffected())
	if n == 0 {
		return 0, nil
	}
	// Contents nothing refers to any more: raw sources pruned now or
	// before, files of deleted tickets. One pass over each table, not a
	// look-up per content. A content taken up again meanwhile is kept by
	// its foreign keys (the statement fails and the next run tries again).
	_, err = s.pool.Exec(ctx, `
		DELETE FROM blobs WHERE sha256 IN (
			SELECT sha256 FROM blobs WHERE created_at < now() - interval '1 hour'
			EXCEPT SELECT raw_sha256 FROM inbound WHERE raw_sha256 IS NOT NULL
			EXCEPT SELECT sha256 FROM attachments
			EXCEPT SELECT sha256 FROM draft_attachments)`)
	if err != nil {
		return n, fmt.Errorf("prune raw sources: drop unused contents: %w", err)
	}
	return n, nil
}
