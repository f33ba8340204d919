package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// insertAll is the second ceiling: rows one-row INSERT transactions (BEGIN;
// INSERT; COMMIT) from conns connections at once, each committed durably as
// a ticket is.
func insertAll(ctx context.Context, url string, conns, rows int, probe cpuProbe) (loadResult, error) {
	if err := createRowsTable(ctx, url); err != nil {
		return loadResult{}, err
	}
	payload := strings.Repeat("x", 200)
	setup := func(ctx context.Context) (*pgx.Conn, error) {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return nil, fmt.Errorf("connect for the INSERT loop: %w", err)
		}
		return conn, nil
	}
	job := func(ctx context.Context, conn *pgx.Conn, i int, w *workerResult) (*pgx.Conn, error) {
		t0 := time.Now()
		if err := insertRow(ctx, conn, i, payload); err != nil {
			w.fail(err.Error())
			return conn, nil
		}
		now := time.Now()
		w.done++
		w.last = now
		w.lat = append(w.lat, now.Sub(t0))
		return conn, nil
	}
	teardown := func(conn *pgx.Conn) { conn.Close(context.Background()) } //nolint:errcheck // done with it
	return runTimed(ctx, conns, rows, probe, setup, job, teardown)
}

func createRowsTable(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("connect for the INSERT loop: %w", err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS bench_rows (
		id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		sender     text NOT NULL,
		payload    text NOT NULL,
		created_at timestamptz NOT NULL DEFAULT now())`)
	if err != nil {
		return fmt.Errorf("create bench_rows: %w", err)
	}
	return nil
}

func insertRow(ctx context.Context, conn *pgx.Conn, i int, payload string) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	if _, err := tx.Exec(ctx, `INSERT INTO bench_rows (sender, payload) VALUES ($1, $2)`,
		fmt.Sprintf("cliente-r%05d@example.com", i), payload); err != nil {
		return fmt.Errorf("insert: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
