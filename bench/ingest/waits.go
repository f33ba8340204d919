package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// waitProfile is what PostgreSQL's backends serving the gateway were doing,
// sampled from pg_stat_activity: for each state, how many backends were in it
// on average. "idle in transaction" is a transaction kept open while the
// gateway works (or the network carries the next statement); "active" with
// no wait event is a backend on the CPU.
type waitProfile struct {
	samples int
	counts  map[string]int
}

// waitEntry is one line of a profile.
type waitEntry struct {
	state    string
	backends float64 // on average
}

func (p waitProfile) entries() []waitEntry {
	var out []waitEntry
	for k, n := range p.counts {
		out = append(out, waitEntry{state: k, backends: float64(n) / float64(max(p.samples, 1))})
	}
	slices.SortFunc(out, func(a, b waitEntry) int {
		if a.backends != b.backends {
			if a.backends > b.backends {
				return -1
			}
			return 1
		}
		return 0
	})
	return out
}

// sampleWaits samples the client backends of database db every interval
// until stop is called, and returns the profile.
func sampleWaits(ctx context.Context, url, db string, interval time.Duration) (stop func() (waitProfile, error), err error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("connect for wait sampling: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	p := waitProfile{counts: map[string]int{}}
	var sampleErr error
	go func() {
		defer close(done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if err := sampleOnce(ctx, conn, db, &p); err != nil && ctx.Err() == nil {
				sampleErr = err
				return
			}
		}
	}()
	return func() (waitProfile, error) {
		cancel()
		<-done
		conn.Close(context.Background()) //nolint:errcheck // done with it
		return p, sampleErr
	}, nil
}

func sampleOnce(ctx context.Context, conn *pgx.Conn, db string, p *waitProfile) error {
	rows, err := conn.Query(ctx, `
		SELECT CASE WHEN wait_event IS NOT NULL THEN state || ': ' || wait_event_type || ':' || wait_event
		            WHEN state = 'active' THEN 'active: CPU'
		            ELSE state END
		FROM pg_stat_activity
		WHERE datname = $1 AND backend_type = 'client backend' AND pid <> pg_backend_pid()`, db)
	if err != nil {
		return fmt.Errorf("sample pg_stat_activity: %w", err)
	}
	states, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("sample pg_stat_activity: %w", err)
	}
	p.samples++
	for _, s := range states {
		p.counts[s]++
	}
	return nil
}
