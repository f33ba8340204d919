package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helpdeskgw/helpdesk/mailin"
	"github.com/helpdeskgw/helpdesk/migrations"
	"github.com/helpdeskgw/helpdesk/tickets"
)

const (
	password    = "bench-password"
	passwordVar = "BENCH_IMAP_PASSWORD"
)

// user is the Dovecot user, and the department, of the i-th mailbox.
func user(i int) string { return fmt.Sprintf("desk%03d", i) }

// gateway is the store and receiver of n departments, each with its
// mailbox on the Dovecot under test, and the instances polling them.
type gateway struct {
	url   string
	tls   *tls.Config // for imaps:// mailboxes; nil for plain ones
	pool  *pgxpool.Pool
	store *tickets.Store
	rcv   *mailin.Receiver
	log   *slog.Logger
}

// newGateway attaches n mailboxes at imapURL + user + "@" + imapAddr.
func newGateway(ctx context.Context, url, imapURL, imapAddr string, tlsConfig *tls.Config, n int) (*gateway, error) {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		pool.Close()
		return nil, err
	}
	_, err = migrations.Apply(ctx, conn.Conn())
	conn.Release()
	if err != nil {
		pool.Close()
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	store := tickets.New(tickets.Options{Pool: pool})
	g := &gateway{url: url, tls: tlsConfig, pool: pool, store: store, log: log,
		rcv: mailin.NewReceiver(mailin.ReceiverOptions{Store: store, Logger: log})}
	for i := range n {
		d := tickets.Department{Slug: user(i), Name: "Desk " + user(i), Address: user(i) + "@example.com"}
		if _, err := store.AddDepartment(ctx, d); err != nil {
			pool.Close()
			return nil, err
		}
		_, err := store.AddMailbox(ctx, tickets.Mailbox{Department: tickets.Department{Slug: d.Slug},
			URL: imapURL + user(i) + "@" + imapAddr + "/INBOX", PasswordRef: "env:" + passwordVar})
		if err != nil {
			pool.Close()
			return nil, err
		}
	}
	return g, nil
}

// instance is one set of pollers, as one `helpdesk serve` runs them.
type instance struct {
	pollers *mailin.Pollers
	stop    func()
}

// start runs pollers named holder until stop, with the gateway's default
// refresh.
func (g *gateway) start(ctx context.Context, holder string) *instance {
	p := mailin.NewPollers(mailin.PollerOptions{Store: g.store, Receiver: g.rcv, Logger: g.log, Holder: holder, TLSConfig: g.tls})
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); p.Run(pctx) }()
	return &instance{pollers: p, stop: func() { cancel(); <-done }}
}

// sessions is how many times the instance's pollers logged in.
func (in *instance) sessions(ids []int64) int64 {
	var n int64
	for _, id := range ids {
		n += in.pollers.Stats(id).Sessions.Load()
	}
	return n
}

func (g *gateway) mailboxIDs(ctx context.Context) ([]int64, error) {
	list, err := g.store.Mailboxes(ctx)
	if err != nil {
		return nil, err
	}
	ids := make([]int64, len(list))
	for i, mb := range list {
		ids[i] = mb.ID
	}
	return ids, nil
}

// idlingBy counts the mailboxes idling, by the instance holding them.
func (g *gateway) idlingBy(ctx context.Context) (map[string]int, error) {
	list, err := g.store.Mailboxes(ctx)
	if err != nil {
		return nil, err
	}
	by := map[string]int{}
	for _, mb := range list {
		if mb.State == tickets.MailboxIdling {
			by[mb.Holder]++
		}
	}
	return by, nil
}

// waitIdling waits until the instances hold and idle on the mailboxes as
// want says, and returns how long that took.
func (g *gateway) waitIdling(ctx context.Context, what string, want map[string]int) (time.Duration, error) {
	start := time.Now()
	for {
		by, err := g.idlingBy(ctx)
		if err != nil {
			return 0, err
		}
		ok := len(by) == len(want)
		for holder, n := range want {
			ok = ok && by[holder] == n
		}
		if ok {
			return time.Since(start), nil
		}
		if time.Since(start) > 3*time.Minute {
			return 0, fmt.Errorf("%s: idling by holder %v after 3 minutes, want %v", what, by, want)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (g *gateway) count(ctx context.Context, query string) (int, error) {
	var n int
	err := g.pool.QueryRow(ctx, query).Scan(&n)
	return n, err
}
