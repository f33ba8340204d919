// Package suite is the harness of the load and fault suite (bench/load,
// bench/faults): a gateway with everything around it (a private durable
// PostgreSQL, a relay that records what it is sent, a Dovecot mailbox),
// senders that behave like a mail server, web visitors, and the exact
// reconciliation of what was accepted against what was stored and sent.
package suite

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helpdeskgw/helpdesk/bench/internal/benchkit"
	"github.com/helpdeskgw/helpdesk/internal/dovecot"
)

// The department every environment has, and its mailbox.
const (
	Department   = "soporte"
	Address      = "support@example.com"
	IMAPUser     = "support"
	Processed    = "Processed"
	imapPassword = "suite-imap-password"
	// imapPasswordVar holds the mailbox's password in the gateway's
	// environment, as an operator's secret would.
	imapPasswordVar = "SUITE_IMAP_PASSWORD"
)

// Options says what an environment holds.
type Options struct {
	// Bin is the gateway binary.
	Bin string
	// Dir is the environment's own directory; it is created.
	Dir string
	// Mailbox adds a Dovecot and attaches its INBOX to the department.
	Mailbox bool
	// TempDir is the gateway's TMPDIR, where large mails are spooled;
	// empty: a directory of its own under Dir.
	TempDir string
	// LogLevel is HELPDESK_LOG_LEVEL; empty: info.
	LogLevel string
	// Deferred leaves the gateway to be started with StartGateway.
	Deferred bool
	// Keep leaves the data directory and logs in place after Close.
	Keep bool
}

// Env is one gateway (the real binary) and what surrounds it.
type Env struct {
	Dir      string
	DB       *benchkit.Database
	Pool     *pgxpool.Pool
	Relay    *Relay
	Dovecot  *dovecot.Server // nil without Options.Mailbox
	Gateway  *benchkit.Gateway
	SMTPAddr string
	BaseURL  string
	LogPath  string

	opts     Options
	httpAddr string
	env      []string
}

// Setup starts an environment: PostgreSQL, the relay, Dovecot when asked,
// the schema, the department and its mailbox, and the gateway.
func Setup(ctx context.Context, o Options) (_ *Env, err error) {
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("environment directory: %w", err)
	}
	// As root, PostgreSQL runs as another user, which must get through.
	if err := os.Chmod(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("environment directory: %w", err)
	}
	e := &Env{Dir: o.Dir, opts: o, LogPath: filepath.Join(o.Dir, "gateway.log")}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	if e.DB, err = benchkit.StartDatabase(ctx, filepath.Join(o.Dir, "pg"), "helpdesk"); err != nil {
		return nil, err
	}
	if e.Relay, err = StartRelay(); err != nil {
		return nil, err
	}
	if e.SMTPAddr, err = benchkit.FreeAddr(); err != nil {
		return nil, err
	}
	if e.httpAddr, err = benchkit.FreeAddr(); err != nil {
		return nil, err
	}
	e.BaseURL = "http://" + e.httpAddr
	tmp := o.TempDir
	if tmp == "" {
		tmp = filepath.Join(o.Dir, "tmp")
		if err := os.MkdirAll(tmp, 0o700); err != nil {
			return nil, fmt.Errorf("gateway's temporary directory: %w", err)
		}
	}
	level := o.LogLevel
	if level == "" {
		level = "info"
	}
	e.env = []string{
		"HELPDESK_DATABASE_URL=" + e.DB.URL,
		"HELPDESK_SMTP_ADDR=" + e.SMTPAddr,
		"HELPDESK_HTTP_ADDR=" + e.httpAddr,
		"HELPDESK_BASE_URL=" + e.BaseURL,
		"HELPDESK_MAIL_OUT=smtp://" + e.Relay.Addr(),
		"HELPDESK_SMTP_HOSTNAME=gateway.localhost",
		"HELPDESK_LOG_LEVEL=" + level,
		// The web visitors are many clients behind one proxy, each named
		// in X-Forwarded-For, so that the per-client limits see them apart.
		"HELPDESK_TRUSTED_PROXIES=127.0.0.1",
		"TMPDIR=" + tmp,
		imapPasswordVar + "=" + imapPassword,
	}
	if err := benchkit.RunCommand(ctx, o.Bin, e.env, "migrate"); err != nil {
		return nil, err
	}
	if err := benchkit.RunCommand(ctx, o.Bin, e.env, "department", "add", "--slug", Department, "--name", "Soporte",
		"--address", Address, "--locale", "es"); err != nil {
		return nil, err
	}
	if o.Mailbox {
		if e.Dovecot, err = dovecot.Start(ctx, dovecot.Options{Users: map[string]string{IMAPUser: imapPassword}}); err != nil {
			return nil, err
		}
		if err := e.Dovecot.CreateMailbox(ctx, IMAPUser, Processed); err != nil {
			return nil, err
		}
		if err := benchkit.RunCommand(ctx, o.Bin, e.env, "mailbox", "add", "--department", Department,
			"--url", "imap://"+IMAPUser+"@"+e.Dovecot.Addr()+"/INBOX", "--password-env", imapPasswordVar,
			"--move-to", Processed); err != nil {
			return nil, err
		}
	}
	if e.Pool, err = pgxpool.New(ctx, e.DB.URL+"&pool_max_conns=4"); err != nil {
		return nil, fmt.Errorf("connect to the gateway's database: %w", err)
	}
	if !o.Deferred {
		if err := e.StartGateway(ctx); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// StartGateway starts the gateway of a Deferred environment.
func (e *Env) StartGateway(ctx context.Context) error {
	g, err := benchkit.StartGateway(ctx, e.opts.Bin, e.httpAddr, e.LogPath, e.env, "serve")
	if err != nil {
		return err
	}
	e.Gateway = g
	return nil
}

// Close stops everything the environment started and, unless Keep, removes
// its data.
func (e *Env) Close() error {
	var errs []error
	if e.Gateway != nil {
		errs = append(errs, e.Gateway.Stop())
	}
	if e.Pool != nil {
		e.Pool.Close()
	}
	if e.Dovecot != nil {
		errs = append(errs, e.Dovecot.Close())
	}
	if e.Relay != nil {
		errs = append(errs, e.Relay.Close())
	}
	if e.DB != nil {
		if e.opts.Keep {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			errs = append(errs, e.DB.Cluster.Stop(ctx, false))
			cancel()
		} else {
			e.DB.Destroy()
		}
	}
	if !e.opts.Keep {
		errs = append(errs, os.RemoveAll(e.Dir))
	}
	return errors.Join(errs...)
}

// mailboxState is the department's mailbox state as the gateway records
// it (idling, polling, error, ...), and since when.
func (e *Env) mailboxState(ctx context.Context) (string, time.Time, error) {
	var state string
	var at time.Time
	err := e.Pool.QueryRow(ctx, `SELECT m.state, m.state_at FROM mailboxes m JOIN departments d ON d.id = m.department_id
		WHERE d.slug = $1`, Department).Scan(&state, &at)
	if err != nil {
		return "", at, fmt.Errorf("mailbox state: %w", err)
	}
	return state, at, nil
}

// WaitMailboxState waits until the mailbox is in state, entered after
// since (when not zero), for at most limit, and returns when it was
// entered, as the gateway recorded it.
func (e *Env) WaitMailboxState(ctx context.Context, state string, since time.Time, limit time.Duration) (time.Time, error) {
	start := time.Now()
	var last string
	for time.Since(start) < limit {
		got, at, err := e.mailboxState(ctx)
		if err != nil && ctx.Err() != nil {
			return at, err
		}
		if got == state && (since.IsZero() || at.After(since)) {
			return at, nil
		}
		last = got
		if err := Sleep(ctx, 5*time.Millisecond); err != nil {
			return at, err
		}
	}
	return time.Time{}, fmt.Errorf("mailbox %s after %v, not %s", last, limit, state)
}

// Sleep waits d or until ctx ends.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Postgres describes the server and its durability settings, for the
// results' machine line.
func (e *Env) Postgres(ctx context.Context) (string, error) {
	var version, fsync, syncCommit string
	err := e.Pool.QueryRow(ctx, `SELECT current_setting('server_version'), current_setting('fsync'), current_setting('synchronous_commit')`).
		Scan(&version, &fsync, &syncCommit)
	if err != nil {
		return "", fmt.Errorf("PostgreSQL settings: %w", err)
	}
	return fmt.Sprintf("PostgreSQL %s (fsync=%s, synchronous_commit=%s)", version, fsync, syncCommit), nil
}

// Workspace is a run's temporary directory and the gateway binary.
type Workspace struct {
	Root string // the module's root
	Dir  string
	Bin  string
	keep bool
}

// NewWorkspace makes a temporary directory and builds the gateway into it,
// unless bin names a binary built already.
func NewWorkspace(ctx context.Context, prefix, bin string, keep bool) (*Workspace, error) {
	root, err := benchkit.ModuleRoot()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, fmt.Errorf("temporary directory: %w", err)
	}
	w := &Workspace{Root: root, Dir: dir, Bin: bin, keep: keep}
	// As root, PostgreSQL and Dovecot run as other users, which must get
	// through.
	if err := os.Chmod(dir, 0o755); err != nil {
		w.Close()
		return nil, fmt.Errorf("temporary directory: %w", err)
	}
	if w.Bin == "" {
		Progress("building the gateway")
		if w.Bin, err = benchkit.BuildGateway(ctx, root, dir); err != nil {
			w.Close()
			return nil, err
		}
	}
	return w, nil
}

// Path is a path given relative to the module's root, made absolute.
func (w *Workspace) Path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(w.Root, p)
}

// Close removes the directory, unless it is to be kept.
func (w *Workspace) Close() {
	if w.keep {
		Progress("kept %s", w.Dir)
		return
	}
	if err := os.RemoveAll(w.Dir); err != nil {
		Progress("remove %s: %v", w.Dir, err)
	}
}

// WaitReady polls the gateway's /readyz until it answers 200, for at most
// limit, and returns how long that took.
func (e *Env) WaitReady(ctx context.Context, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	client := &http.Client{Timeout: time.Second}
	for time.Since(start) < limit {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.BaseURL+"/readyz", nil)
		if err != nil {
			return 0, fmt.Errorf("readiness: %w", err)
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(start), nil
			}
		}
		if err := Sleep(ctx, 20*time.Millisecond); err != nil {
			return 0, err
		}
	}
	return 0, fmt.Errorf("gateway not ready after %v", limit)
}

// CPU is the CPU time used so far by the load generator (this process),
// the gateway and PostgreSQL (the postmaster and its children), and the
// machine's busy and total time over all cores.
type CPU struct{ Self, Gateway, Postgres, Busy, All time.Duration }

// CPU reads the CPU times now.
func (e *Env) CPU() CPU {
	c := CPU{Self: benchkit.SelfCPU()}
	if e.Gateway != nil {
		c.Gateway, _, _ = benchkit.ProcessCPU(e.Gateway.PID(), false)
	}
	if pid, err := benchkit.PostmasterPID(filepath.Join(e.Dir, "pg")); err == nil {
		c.Postgres = benchkit.TreeCPU(pid)
	}
	c.Busy, _, c.All = benchkit.MachineCPU()
	return c
}

// Shares says, of all the machine's cores between before and c, the share
// used by the gateway, PostgreSQL, the load generator and the rest (other
// processes, Dovecot among them, and the kernel).
func (c CPU) Shares(before CPU) string {
	all := float64(c.All - before.All)
	if all <= 0 {
		return "–"
	}
	g, p, s := c.Gateway-before.Gateway, c.Postgres-before.Postgres, c.Self-before.Self
	others := max(0, c.Busy-before.Busy-g-p-s)
	pct := func(d time.Duration) string { return fmt.Sprintf("%.0f%%", float64(d)/all*100) }
	return pct(g) + " / " + pct(p) + " / " + pct(s) + " / " + pct(others)
}

// DovecotWarnings are the distinct warnings Dovecot logged (say, that it
// could not watch the mailbox and polls it every 30 s instead), at most n.
func (e *Env) DovecotWarnings(n int) []string {
	if e.Dovecot == nil {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for line := range strings.Lines(e.Dovecot.Logs()) {
		_, warning, ok := strings.Cut(line, "Warning: ")
		if !ok || seen[warning] || len(out) >= n {
			continue
		}
		seen[warning] = true
		out = append(out, strings.TrimSpace(warning))
	}
	return out
}
