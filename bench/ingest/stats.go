package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// statsSettle is how long to wait before reading PostgreSQL's cumulative
// statistics: backends flush theirs about a second after they go idle.
const statsSettle = 1500 * time.Millisecond

// counters are PostgreSQL's cumulative counters: the commits of one
// database, and the WAL of the whole server.
type counters struct {
	commits, walRecords, walBytes, walSyncs, walWrites int64
}

func readCounters(ctx context.Context, url, db string) (counters, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return counters{}, fmt.Errorf("read statistics: %w", err)
	}
	defer conn.Close(ctx)
	var c counters
	err = conn.QueryRow(ctx, `
		SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = $1),
		       wal_records, wal_bytes::bigint, wal_sync, wal_write
		FROM pg_stat_wal`, db).Scan(&c.commits, &c.walRecords, &c.walBytes, &c.walSyncs, &c.walWrites)
	if err != nil {
		return c, fmt.Errorf("read statistics: %w", err)
	}
	return c, nil
}

func (c counters) sub(before counters) counters {
	return counters{commits: c.commits - before.commits, walRecords: c.walRecords - before.walRecords,
		walBytes: c.walBytes - before.walBytes, walSyncs: c.walSyncs - before.walSyncs,
		walWrites: c.walWrites - before.walWrites}
}

// measureCounters runs fn between two readings of the counters, each taken
// once the statistics have settled.
func measureCounters(ctx context.Context, url, db string, fn func() error) (counters, error) {
	time.Sleep(statsSettle)
	before, err := readCounters(ctx, url, db)
	if err != nil {
		return counters{}, err
	}
	if err := fn(); err != nil {
		return counters{}, err
	}
	time.Sleep(statsSettle)
	after, err := readCounters(ctx, url, db)
	if err != nil {
		return counters{}, err
	}
	return after.sub(before), nil
}

// enableStatements restarts the server with pg_stat_statements loaded and
// creates the extension in db.
func (db *database) enableStatements(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, db.url("postgres"))
	if err != nil {
		return fmt.Errorf("pg_stat_statements: %w", err)
	}
	_, err = conn.Exec(ctx, `ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'`)
	conn.Close(ctx) //nolint:errcheck // done with it
	if err != nil {
		return fmt.Errorf("pg_stat_statements: %w", err)
	}
	if err := db.cluster.Stop(ctx, false); err != nil {
		return err
	}
	if err := db.cluster.Restart(ctx); err != nil {
		return err
	}
	conn, err = pgx.Connect(ctx, db.url(name))
	if err != nil {
		return fmt.Errorf("pg_stat_statements: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`); err != nil {
		return fmt.Errorf("pg_stat_statements: %w", err)
	}
	return nil
}

// statement is one line of pg_stat_statements.
type statement struct {
	query string
	calls int64
	total time.Duration // execution time, all calls
	rows  int64
}

func resetStatements(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("pg_stat_statements: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `SELECT pg_stat_statements_reset()`); err != nil {
		return fmt.Errorf("pg_stat_statements: %w", err)
	}
	return nil
}

// readStatements returns the statements run in database db, the most
// costly first.
func readStatements(ctx context.Context, url, db string) ([]statement, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("pg_stat_statements: %w", err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `
		SELECT s.query, s.calls, s.total_exec_time, s.rows
		FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
		WHERE d.datname = $1 AND s.query NOT LIKE '%pg_stat_statements%'
		ORDER BY s.total_exec_time DESC`, db)
	if err != nil {
		return nil, fmt.Errorf("pg_stat_statements: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (statement, error) {
		var s statement
		var ms float64
		err := r.Scan(&s.query, &s.calls, &ms, &s.rows)
		s.total = time.Duration(ms * float64(time.Millisecond))
		s.query = strings.Join(strings.Fields(s.query), " ")
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("pg_stat_statements: %w", err)
	}
	return list, nil
}
