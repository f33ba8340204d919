package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/helpdeskgw/helpdesk/internal/pgcluster"
)

// Databases in the benchmark's cluster: the gateway's, and the one of the
// bare INSERT loop (same server, same WAL, same disk).
const (
	gatewayDB = "helpdesk"
	ceilingDB = "ceiling"
)

// database is the benchmark's private PostgreSQL, durable as production's.
type database struct {
	cluster *pgcluster.Cluster
	dir     string
}

func startDatabase(ctx context.Context, dir string) (*database, error) {
	c, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir, Durable: true})
	if err != nil {
		return nil, err
	}
	db := &database{cluster: c, dir: dir}
	if err := db.create(ctx, gatewayDB, ceilingDB); err != nil {
		db.destroy(false)
		return nil, err
	}
	return db, nil
}

func (db *database) create(ctx context.Context, names ...string) error {
	conn, err := pgx.Connect(ctx, db.url("postgres"))
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	for _, name := range names {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE template0 ENCODING 'UTF8'"); err != nil {
			return fmt.Errorf("create database %s: %w", name, err)
		}
	}
	return nil
}

func (db *database) url(name string) string { return db.cluster.URL(name) }

// destroy stops the server and removes its data, whatever state the
// benchmark is in (it is called on errors and interrupts too); keep stops
// it and leaves the data for inspection.
func (db *database) destroy(keep bool) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var err error
	if keep {
		err = db.cluster.Stop(ctx, false)
	} else {
		err = db.cluster.Destroy(ctx)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ingest: stop PostgreSQL:", err)
	}
}

// settings returns the server's version and durability settings, and fails
// unless fsync and synchronous_commit are on: the figures mean nothing
// without them.
func settings(ctx context.Context, conn *pgx.Conn) (map[string]string, error) {
	out := map[string]string{}
	for _, name := range []string{"server_version", "fsync", "synchronous_commit", "full_page_writes", "wal_sync_method",
		"shared_buffers", "max_wal_size"} {
		var v string
		if err := conn.QueryRow(ctx, "SHOW "+name).Scan(&v); err != nil {
			return nil, fmt.Errorf("SHOW %s: %w", name, err)
		}
		out[name] = v
	}
	if out["fsync"] != "on" || out["synchronous_commit"] != "on" {
		return out, errors.New("PostgreSQL is not durable (fsync or synchronous_commit off): the figures would mean nothing")
	}
	return out, nil
}
