package migrations_test

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/helpdeskgw/helpdesk/internal/testdb"
	"github.com/helpdeskgw/helpdesk/migrations"
)

// Instances starting together all migrate; each migration runs once.
func TestConcurrentApply(t *testing.T) {
	ctx := context.Background()
	db, err := testdb.Open(ctx, testdb.Options{Blank: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var wg sync.WaitGroup
	versions := make([]int32, 6)
	errs := make([]error, 6)
	for i := range versions {
		wg.Go(func() {
			conn, err := pgx.Connect(ctx, db.URL)
			if err != nil {
				errs[i] = err
				return
			}
			defer conn.Close(ctx)
			versions[i], errs[i] = migrations.Apply(ctx, conn)
		})
	}
	wg.Wait()
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	current, latest, err := migrations.Status(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if latest < 1 || current != latest {
		t.Fatalf("schema at %d of %d", current, latest)
	}
	for i := range versions {
		if errs[i] != nil || versions[i] != latest {
			t.Errorf("instance %d: version %d, %v", i, versions[i], errs[i])
		}
	}
	var tables int
	conn.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = 'tickets'`).Scan(&tables)
	if tables != 1 {
		t.Errorf("tickets table missing")
	}
}
