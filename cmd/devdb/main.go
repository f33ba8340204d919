// Command devdb starts the local PostgreSQL cluster `make run` uses, under
// ./.data/pg (creating it, and installing Debian's postgresql package if
// the binaries are missing), or finds it already running, and prints the
// URL of its helpdesk database.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/helpdeskgw/helpdesk/internal/pgcluster"
)

func main() {
	dir := flag.String("dir", ".data/pg", "data directory of the cluster")
	stop := flag.Bool("stop", false, "stop the cluster instead")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := run(ctx, *dir, *stop); err != nil {
		fmt.Fprintln(os.Stderr, "devdb:", err)
		os.Exit(1)
	}
}

// run holds the one piece of SQL outside package tickets: creating the
// database itself, which is the cluster's business, not the domain's.
func run(ctx context.Context, dir string, stop bool) error {
	c, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir, Durable: true, Install: true})
	if err != nil {
		return err
	}
	if stop {
		return c.Stop(ctx, false)
	}
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'helpdesk')`).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		if _, err := conn.Exec(ctx, `CREATE DATABASE helpdesk TEMPLATE template0 ENCODING 'UTF8'`); err != nil {
			return err
		}
	}
	fmt.Println(c.URL("helpdesk"))
	return nil
}
