package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/robfig/cron/v3"

	"github.com/helpdeskgw/helpdesk/mailin"
	"github.com/helpdeskgw/helpdesk/mailout"
	"github.com/helpdeskgw/helpdesk/migrations"
	"github.com/helpdeskgw/helpdesk/templates"
	"github.com/helpdeskgw/helpdesk/tickets"
	"github.com/helpdeskgw/helpdesk/tickets/web"
)

// App is a running gateway: the pieces wired together.
type App struct {
	cfg    Config
	log    *slog.Logger
	pool   *pgxpool.Pool
	store  *tickets.Store
	worker *mailout.Worker
	smtp   *mailin.SMTPServer
	imap   *mailin.Pollers
	web    *http.Server
	pages  *web.Server
	// jobs runs the scheduled work.
	jobs              *cron.Cron
	registry          *prometheus.Registry
	jobRuns, jobItems *prometheus.CounterVec

	smtpLn, httpLn net.Listener
}

// openPool connects to the database, waiting a while for it to come up (a
// database and the gateway are often started together).
func openPool(ctx context.Context, cfg Config, log *slog.Logger) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("HELPDESK_DATABASE_URL: %w", err)
	}
	pc.MaxConns = cfg.DBMaxConns
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := pool.Ping(pctx)
		cancel()
		if err == nil {
			return pool, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			pool.Close()
			return nil, fmt.Errorf("database %s:%d unreachable: %w", pc.ConnConfig.Host, pc.ConnConfig.Port, err)
		}
		log.Warn("database not reachable yet, retrying", "err", err)
		time.Sleep(time.Second)
	}
}

func migrate(ctx context.Context, pool *pgxpool.Pool) (int32, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	defer conn.Release()
	return migrations.Apply(ctx, conn.Conn())
}

// demoDepartment is created by `serve --demo` when there is none, so that a
// first mail has somewhere to go.
var demoDepartment = tickets.Department{Slug: "soporte", Name: "Soporte Técnico", Address: "support@localhost", Locale: "es"}

// NewApp opens the database, applies migrations, binds the listeners and
// builds every piece. Nothing is served until Run.
func NewApp(ctx context.Context, cfg Config, log *slog.Logger, demo bool) (*App, error) {
	a := &App{cfg: cfg, log: log}
	tmpl, err := templates.Load()
	if err != nil {
		return nil, err
	}
	if a.pool, err = openPool(ctx, cfg, log); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			a.Close()
		}
	}()
	version, err := migrate(ctx, a.pool)
	if err != nil {
		return nil, err
	}
	log.Info("database ready", "schema_version", version)

	var worker *mailout.Worker
	a.store = tickets.New(tickets.Options{Pool: a.pool, Logger: log, TokenTTL: cfg.TokenTTL,
		OutboxQueued: func() { worker.Wake() }, Limits: cfg.limits()})
	if demo {
		created, err := a.store.EnsureDepartment(ctx, demoDepartment)
		if err != nil {
			return nil, err
		}
		if created {
			log.Info("demo department created", "slug", demoDepartment.Slug, "address", demoDepartment.Address)
		}
	}
	a.registry = prometheus.NewRegistry()
	a.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		mailout.NewOutboxCollector(a.store), mailin.NewMailboxCollector(a.store))
	a.jobRuns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "helpdesk_job_runs_total", Help: "Runs of the scheduled jobs, by job and outcome (ok, error, skipped: another instance ran it).",
	}, []string{"job", "outcome"})
	a.jobItems = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "helpdesk_job_items_total", Help: "What the scheduled jobs did (drafts expired, tickets resolved, links and sessions deleted, raw sources pruned), by job.",
	}, []string{"job"})
	a.registry.MustRegister(a.jobRuns, a.jobItems)
	tokens, err := tokenSources(a.store, cfg.SecretKey, os.LookupEnv, log.With("component", "oauth"))
	if err != nil {
		return nil, err
	}
	worker, err = mailout.New(mailout.Options{Store: a.store, Templates: tmpl, MailOut: cfg.MailOut,
		BaseURL: cfg.BaseURL, From: cfg.From, Hostname: cfg.SMTPHostname, Logger: log.With("component", "mailout"),
		Metrics: mailout.NewMetrics(a.registry), RelayTokens: relayTokens{store: a.store, sources: tokens}})
	if err != nil {
		return nil, err
	}
	a.worker = worker

	var auth *mailin.Authenticator
	if cfg.CheckSenderAuth {
		auth = mailin.NewAuthenticator(mailin.AuthOptions{})
	}
	rcv := mailin.NewReceiver(mailin.ReceiverOptions{Store: a.store, Logger: log.With("component", "mailin"),
		OwnAddresses: []string{cfg.From}, Authenticator: auth, TrustedAuthServIDs: cfg.TrustedAuthServIDs,
		Metrics: mailin.NewMetrics(a.registry)})
	cronLog := cron.VerbosePrintfLogger(slog.NewLogLogger(log.Handler(), slog.LevelDebug))
	a.jobs = cron.New(cron.WithChain(cron.SkipIfStillRunning(cronLog), cron.Recover(cronLog)))
	a.addJob("expire_drafts", "@every 10m", a.store.ExpireDrafts)
	a.addJob("index_search", "@every 30s", a.store.IndexMessages)
	a.addJob("auto_resolve", "@every 1h", a.store.AutoResolve)
	a.addJob("expire_tokens", "@every 6h", a.store.ExpireTokens)
	if cfg.RawRetention > 0 {
		a.addJob("prune_raw_sources", "@every 6h", func(ctx context.Context) (int, error) {
			return a.store.PruneRawSources(ctx, cfg.RawRetention)
		})
	}
	a.imap = mailin.NewPollers(mailin.PollerOptions{Store: a.store, Receiver: rcv, Logger: log.With("component", "imap"),
		Tokens: tokens})
	if cfg.SMTPAddr != "" {
		a.smtp = mailin.NewSMTPServer(mailin.SMTPOptions{Receiver: rcv, Logger: log.With("component", "smtp"),
			Domain: cfg.SMTPHostname, MaxMessageBytes: cfg.MaxMessageBytes, MaxConns: cfg.SMTPMaxConns})
		if a.smtpLn, err = net.Listen("tcp", cfg.SMTPAddr); err != nil {
			return nil, fmt.Errorf("HELPDESK_SMTP_ADDR: %w", err)
		}
	}
	proxies, _ := cfg.trustedProxies()    // validated
	metricsAllow, _ := cfg.metricsAllow() // validated
	handler := web.New(web.Options{Store: a.store, Templates: tmpl, Logger: log.With("component", "web"),
		Ready: a.ready, TrustedProxies: proxies, BaseURL: cfg.BaseURL, MaxAttachments: cfg.MaxAttachments,
		MaxAttachmentBytes: cfg.MaxAttachmentBytes, MaxUploadBytes: cfg.MaxUploadBytes, SessionTTL: cfg.SessionTTL,
		StaffSessionTTL: cfg.StaffSessionTTL,
		Metrics:         web.NewMetrics(a.registry), MetricsAllow: metricsAllow,
		MetricsHandler: promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)})})
	a.pages = handler
	a.web = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	if a.httpLn, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		return nil, fmt.Errorf("HELPDESK_HTTP_ADDR: %w", err)
	}
	ok = true
	return a, nil
}

// addJob schedules fn, which returns how many things it did. Each instance
// schedules it; a run finds whether another instance runs it already, and
// then skips. Each run is logged when it did something or failed, and
// counted.
func (a *App) addJob(name, spec string, fn func(context.Context) (int, error)) {
	host, _ := os.Hostname()
	instance := fmt.Sprintf("%s:%d", host, os.Getpid())
	_, err := a.jobs.AddFunc(spec, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		n, err := a.store.RunJob(ctx, name, instance, fn)
		if errors.Is(err, tickets.ErrBusy) {
			a.jobRuns.WithLabelValues(name, "skipped").Inc()
			return
		}
		if err != nil {
			a.jobRuns.WithLabelValues(name, "error").Inc()
			a.log.Error("scheduled job failed", "job", name, "err", err)
			return
		}
		a.jobRuns.WithLabelValues(name, "ok").Inc()
		a.jobItems.WithLabelValues(name).Add(float64(n))
		if n > 0 {
			a.log.Info("scheduled job done", "job", name, "count", n)
		}
	})
	if err != nil {
		panic(fmt.Sprintf("job %s: bad schedule %q: %v", name, spec, err)) // a constant in the code
	}
}

// ready is /readyz: the database answers and its schema is the one this
// binary expects.
func (a *App) ready(ctx context.Context) error {
	conn, err := a.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	defer conn.Release()
	current, latest, err := migrations.Status(ctx, conn.Conn())
	if err != nil {
		return err
	}
	if current != latest {
		return fmt.Errorf("schema at version %d, this binary expects %d", current, latest)
	}
	return nil
}

// SMTPAddr is the address the SMTP listener is bound to ("" if disabled).
func (a *App) SMTPAddr() string {
	if a.smtpLn == nil {
		return ""
	}
	return a.smtpLn.Addr().String()
}

// HTTPAddr is the address the web server is bound to.
func (a *App) HTTPAddr() string { return a.httpLn.Addr().String() }

// Run serves until ctx ends, then shuts down in order: stop taking mail and
// requests, let the sessions in progress finish, let the sender finish its
// batch, and close the database last.
func (a *App) Run(ctx context.Context) error {
	a.log.Info("helpdesk serving", "http", a.HTTPAddr(), "smtp", a.SMTPAddr(), "mail_out", a.worker.Destination(),
		"base_url", a.cfg.BaseURL)
	workerCtx, stopWorker := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWorker()
	var wg sync.WaitGroup
	errc := make(chan error, 3)
	wg.Go(func() { a.worker.Run(workerCtx) }) //nolint:errcheck // Run returns nil
	imapCtx, stopIMAP := context.WithCancel(context.WithoutCancel(ctx))
	defer stopIMAP()
	a.jobs.Start()
	imapDone := make(chan struct{})
	go func() { defer close(imapDone); a.imap.Run(imapCtx) }()
	if a.smtp != nil {
		wg.Go(func() {
			if err := a.smtp.Serve(a.smtpLn); err != nil {
				errc <- fmt.Errorf("SMTP listener: %w", err)
			}
		})
	}
	wg.Go(func() {
		if err := a.web.Serve(a.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("web server: %w", err)
		}
	})

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		a.log.Error("stopping", "err", runErr)
	}
	a.log.Info("shutting down", "deadline", a.cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	var shut sync.WaitGroup
	if a.smtp != nil {
		shut.Go(func() {
			if err := a.smtp.Shutdown(sctx); err != nil {
				a.log.Warn("SMTP sessions cut at the deadline; their senders will retry", "err", err)
				a.smtp.Close() //nolint:errcheck // closing anyway
			}
		})
	}
	// Mail being stored finishes; mail fetched but not yet flagged is
	// fetched again at the next start and recognized.
	shut.Go(func() {
		stopIMAP()
		select {
		case <-imapDone:
		case <-sctx.Done():
			a.log.Warn("IMAP pollers still storing mail at the deadline")
		}
	})
	shut.Go(func() {
		if err := a.web.Shutdown(sctx); err != nil {
			a.web.Close() //nolint:errcheck // closing anyway
		}
		a.pages.Wait()
	})
	shut.Go(func() {
		select {
		case <-a.jobs.Stop().Done():
		case <-sctx.Done():
		}
	})
	shut.Wait()
	// The sender stops taking mail and records what it sent; a send in
	// flight past the deadline is abandoned, and its mail, still leased, is
	// sent again after the lease.
	stopWorker()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-sctx.Done():
		a.log.Warn("shutdown deadline reached with mail being sent; it will be sent again", "deadline", a.cfg.ShutdownTimeout)
	}
	a.Close()
	a.log.Info("stopped", "sent", a.worker.Stats().Sent)
	return runErr
}

// Close releases what NewApp opened.
func (a *App) Close() {
	for _, l := range []net.Listener{a.smtpLn, a.httpLn} {
		if l != nil {
			l.Close()
		}
	}
	if a.pool != nil {
		a.pool.Close()
	}
}
