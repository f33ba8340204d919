// Package testdb gives tests a real, migrated PostgreSQL database: a fresh
// database in the server named by HELPDESK_TEST_DATABASE_URL, or else in a
// throwaway cluster started with the system's initdb and pg_ctl.
package testdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helpdeskgw/helpdesk/internal/pgcluster"
	"github.com/helpdeskgw/helpdesk/migrations"
)

// EnvURL names a server tests may use instead of starting their own.
const EnvURL = "HELPDESK_TEST_DATABASE_URL"

// DB is a migrated database for one test binary.
type DB struct {
	URL     string
	Cluster *pgcluster.Cluster // nil when the server was given by EnvURL
	drop    func()

	// A database from Main opens at its first use, so that test binaries
	// (and fuzz workers) that never touch it do not start PostgreSQL.
	lazy    bool
	once    sync.Once
	openErr error
}

// Main runs a test binary's tests with a database that is created when a
// test first needs it and removed afterwards. Use it from TestMain:
//
//	func TestMain(m *testing.M) { testdb.Main(m, &db) }
func Main(m *testing.M, out **DB) {
	db := &DB{lazy: true}
	*out = db
	code := m.Run()
	db.Close()
	os.Exit(code)
}

func (db *DB) ensure(t testing.TB) {
	t.Helper()
	if !db.lazy {
		return
	}
	db.once.Do(func() {
		opened, err := Open(context.Background(), Options{})
		if err != nil {
			db.openErr = err
			return
		}
		db.URL, db.Cluster, db.drop = opened.URL, opened.Cluster, opened.drop
	})
	if db.openErr != nil {
		t.Fatalf("test database: %v", db.openErr)
	}
}

// ConnString is the database's connection URL.
func (db *DB) ConnString(t testing.TB) string {
	db.ensure(t)
	return db.URL
}

// Options says what kind of database a test needs.
type Options struct {
	// Own starts a private, durable cluster even when EnvURL is set: tests
	// that stop the server need one.
	Own bool
	// Blank leaves the database without the schema.
	Blank bool
}

// Open creates a database, migrated unless opts.Blank.
func Open(ctx context.Context, opts Options) (*DB, error) {
	own := opts.Own
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	server := os.Getenv(EnvURL)
	db := &DB{drop: func() {}}
	if server == "" || own {
		dir, err := os.MkdirTemp("", "helpdesk-pg-")
		if err != nil {
			return nil, fmt.Errorf("temp dir: %w", err)
		}
		os.Chmod(dir, 0o755) //nolint:errcheck // initdb says if it cannot use it
		c, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir + "/data", Durable: own})
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		db.Cluster = c
		server = c.URL("postgres")
		db.drop = func() {
			c.Destroy(context.Background()) //nolint:errcheck // best effort at exit
			os.RemoveAll(dir)
		}
	}
	name := "helpdesk_test_" + randomSuffix()
	admin, err := pgx.Connect(ctx, server)
	if err != nil {
		db.drop()
		return nil, fmt.Errorf("connect to %s: %w", redact(server), err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE template0 ENCODING 'UTF8'"); err != nil {
		db.drop()
		return nil, fmt.Errorf("create database %s: %w", name, err)
	}
	dropCluster := db.drop
	db.drop = func() {
		if db.Cluster == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if c, err := pgx.Connect(ctx, server); err == nil {
				c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") //nolint:errcheck // best effort at exit
				c.Close(ctx)
			}
		}
		dropCluster()
	}
	db.URL = withDatabase(server, name)
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		db.drop()
		return nil, fmt.Errorf("connect to %s: %w", name, err)
	}
	defer conn.Close(ctx)
	if opts.Blank {
		return db, nil
	}
	if _, err := migrations.Apply(ctx, conn); err != nil {
		db.drop()
		return nil, err
	}
	return db, nil
}

// Close removes the database (and the cluster, if it started one).
func (db *DB) Close() {
	if db.drop != nil {
		db.drop()
	}
}

// Pool opens a connection pool to the database, closed when t ends.
func (db *DB) Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	db.ensure(t)
	cfg, err := pgxpool.ParseConfig(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 30
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// Reset empties every table but the schema version, between tests.
func (db *DB) Reset(t testing.TB) {
	t.Helper()
	db.ensure(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `DO $$ DECLARE tables text; BEGIN
		SELECT string_agg(quote_ident(tablename), ', ') INTO tables FROM pg_tables
		WHERE schemaname = 'public' AND tablename <> 'schema_version';
		IF tables IS NOT NULL THEN EXECUTE 'TRUNCATE ' || tables || ' RESTART IDENTITY CASCADE'; END IF;
	END $$`)
	if err != nil {
		t.Fatalf("reset database: %v", err)
	}
}

func randomSuffix() string {
	var b [6]byte
	rand.Read(b[:]) //nolint:errcheck // never fails since Go 1.24
	return hex.EncodeToString(b[:])
}

// withDatabase names another database in a connection string: a
// postgres:// URL or a "key=value" one.
func withDatabase(conn, name string) string {
	u, err := url.Parse(conn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return conn + " dbname=" + name
	}
	u.Path = "/" + name
	return u.String()
}

func redact(url string) string {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return "(unparsable URL)"
	}
	return fmt.Sprintf("%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
}
