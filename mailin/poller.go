package mailin

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/robfig/cron/v3"

	"github.com/helpdeskgw/helpdesk/tickets"
)

// mailboxStore is what the pollers need of the ticket store.
type mailboxStore interface {
	Mailboxes(ctx context.Context) ([]tickets.Mailbox, error)
	MailboxLocks(ctx context.Context) (*tickets.MailboxLocks, error)
	SetMailboxState(ctx context.Context, id int64, state tickets.MailboxState, holder, errText string) error
	AdvanceMailbox(ctx context.Context, id int64, uidValidity, lastUID uint32, ingested int) error
}

// PollerOptions configures the IMAP pollers.
type PollerOptions struct {
	Store    mailboxStore
	Receiver *Receiver
	Logger   *slog.Logger
	// LookupEnv finds passwords given as variables. Default: os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// Tokens gives OAuth2 mailboxes their access tokens.
	Tokens TokenSource
	// TLSConfig, when set, is the base of every TLS connection (tests give
	// their own certificate authority).
	TLSConfig *tls.Config
	// Holder names this instance in the mailboxes' state. Default:
	// host name and process ID.
	Holder string
	// Refresh is how often the mailbox list and the instances present are
	// read again: how soon a mailbox left by a stopped instance is taken
	// over, and the step by which instances share the mailboxes out.
	// Pollers started together log in at most fifty a second, all within
	// one refresh. Default: 5s.
	Refresh time.Duration
	// Workers is how many mails of one mailbox are stored at once.
	// Default: 32.
	Workers int
	// Batch is how many mails are fetched before they are flagged and the
	// progress is recorded. Default: 200.
	Batch int
	// IdleRestart is how long an IDLE lasts before the folder is checked
	// anyway (a safety net for a lost notification). Default: 5 minutes.
	IdleRestart time.Duration
	// MaxBackoff bounds the wait between reconnections. Default: 5 minutes.
	MaxBackoff time.Duration
}

// Pollers turns the mail of every enabled mailbox into tickets. Among
// several instances, each mailbox is polled by one: the one holding its
// advisory lock. The instances share the mailboxes out evenly (see
// planShare), and share them again when one joins or leaves.
type Pollers struct {
	opts PollerOptions
	log  *slog.Logger
	cron *cron.Cron

	mu    sync.Mutex
	stats map[int64]*PollerStats
}

// PollerStats counts what one mailbox's poller did in this process.
type PollerStats struct {
	Ingested atomic.Int64 // mails committed (tickets, duplicates, quarantined)
	Sessions atomic.Int64 // connections that logged in
}

// NewPollers returns the pollers; Run starts them.
func NewPollers(opts PollerOptions) *Pollers {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.LookupEnv == nil {
		opts.LookupEnv = os.LookupEnv
	}
	if opts.Holder == "" {
		host, _ := os.Hostname()
		opts.Holder = fmt.Sprintf("%s:%d", host, os.Getpid())
	}
	if opts.Refresh <= 0 {
		opts.Refresh = 5 * time.Second
	}
	if opts.Workers <= 0 {
		opts.Workers = 32
	}
	if opts.Batch <= 0 {
		opts.Batch = 200
	}
	if opts.IdleRestart <= 0 {
		opts.IdleRestart = 5 * time.Minute
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 5 * time.Minute
	}
	logger := cron.VerbosePrintfLogger(slog.NewLogLogger(opts.Logger.Handler(), slog.LevelDebug))
	return &Pollers{opts: opts, log: opts.Logger, stats: map[int64]*PollerStats{},
		// Recover inside SkipIfStillRunning: the other order disables a
		// job for good after its first panic.
		cron: cron.New(cron.WithChain(cron.SkipIfStillRunning(logger), cron.Recover(logger)))}
}

// Stats returns the counters of a mailbox's poller in this process.
func (p *Pollers) Stats(mailboxID int64) *PollerStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.stats[mailboxID]
	if !ok {
		s = &PollerStats{}
		p.stats[mailboxID] = s
	}
	return s
}

// Run polls until ctx ends. It returns once every poller has stopped.
func (p *Pollers) Run(ctx context.Context) {
	p.cron.Start()
	defer func() { <-p.cron.Stop().Done() }()
	backoff := newBackoff(time.Second, time.Minute)
	for ctx.Err() == nil {
		locks, err := p.opts.Store.MailboxLocks(ctx)
		if err != nil {
			p.log.Log(ctx, logLevel(ctx, err), "cannot take mailbox locks; retrying", "err", err)
			sleep(ctx, backoff.next())
			continue
		}
		self, err := locks.Announce(ctx)
		if err == nil {
			backoff.reset()
			p.manage(ctx, locks, self)
		} else {
			p.log.Log(ctx, logLevel(ctx, err), "cannot announce the instance; retrying", "err", err)
			sleep(ctx, backoff.next())
		}
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		locks.Close(closeCtx) //nolint:errcheck // the locks go with the connection either way
		cancel()
	}
}

type runningPoller struct {
	version int
	// stop ends the session at once.
	stop context.CancelFunc
	// leave, closed, asks the poller to finish its batch, log out and end.
	leave chan struct{}
	// leftAt is when it was asked to leave; zero while it runs.
	leftAt time.Time
	done   chan struct{}
}

func (r *runningPoller) leaving() bool { return !r.leftAt.IsZero() }

// leaveTimeout bounds how long a poller being let go of may take to finish
// its batch before its session is cut.
const leaveTimeout = time.Minute

// manage holds this instance's share of the enabled mailboxes, a poller
// for each, and follows changes: mailboxes disabled, removed or changed,
// instances joining or leaving. It returns when ctx ends or the lock
// connection is lost, after stopping every poller.
func (p *Pollers) manage(ctx context.Context, locks *tickets.MailboxLocks, self tickets.InstanceID) {
	running := map[int64]*runningPoller{}
	defer func() {
		for _, r := range running {
			r.stop()
		}
		for _, r := range running {
			<-r.done
		}
	}()
	// ended hears from pollers that end, so that a mailbox let go of is
	// unlocked at once rather than at the next refresh.
	ended := make(chan struct{}, 1)
	tick := time.NewTicker(p.opts.Refresh)
	defer tick.Stop()
	for p.refresh(ctx, locks, self, running, ended) {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-ended:
		}
	}
}

// refresh unlocks the mailboxes whose pollers have left, reads who holds
// what, lets go of what this instance should no longer poll and takes what
// it should. It returns false when the lock connection is lost.
func (p *Pollers) refresh(ctx context.Context, locks *tickets.MailboxLocks, self tickets.InstanceID,
	running map[int64]*runningPoller, ended chan<- struct{}) bool {
	for id, r := range running {
		if !r.leaving() {
			continue
		}
		select {
		case <-r.done:
			if err := locks.Unlock(ctx, id); err != nil {
				return false
			}
			delete(running, id)
		default:
			if time.Since(r.leftAt) > leaveTimeout {
				r.stop()
			}
		}
	}
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	holders, err := locks.Holders(hctx)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			p.log.Warn("lost the connection holding the mailbox locks; stopping the pollers", "err", err)
		}
		return false
	}
	list, err := p.opts.Store.Mailboxes(ctx)
	if err != nil {
		if ctx.Err() == nil {
			p.log.Warn("cannot read the mailbox list", "err", err)
		}
		return true
	}
	wanted := map[int64]tickets.Mailbox{}
	view := shareView{self: self, instances: holders.Instances, held: holders.Held, leaving: map[int64]bool{}}
	for _, mb := range list {
		if mb.Enabled {
			wanted[mb.ID] = mb
			view.wanted = append(view.wanted, mb.ID)
		}
	}
	for id, r := range running {
		if mb, ok := wanted[id]; !r.leaving() && (!ok || mb.Version != r.version) {
			// Disabled, removed or changed: a changed one is taken again,
			// with its new settings, once its lock is free.
			p.leave(r)
		}
		if r.leaving() {
			view.leaving[id] = true
		}
	}
	plan := planShare(view)
	if len(plan.release) > 0 {
		p.log.Info("letting mailboxes go to other instances", "mailboxes", plan.release, "instances", len(view.instances))
	}
	for _, id := range plan.release {
		if r := running[id]; r != nil {
			p.leave(r)
		}
	}
	started := 0
	for _, id := range plan.candidates {
		if started == plan.take {
			break
		}
		got, err := locks.TryLock(ctx, id)
		if err != nil {
			return false
		}
		if got {
			running[id] = p.start(ctx, wanted[id], startDelay(started, plan.take, p.opts.Refresh), ended)
			started++
		}
	}
	return true
}

// leave asks a poller to finish its batch and end; its lock is freed once
// it has.
func (p *Pollers) leave(r *runningPoller) {
	close(r.leave)
	r.leftAt = time.Now()
}

func (p *Pollers) start(ctx context.Context, mb tickets.Mailbox, delay time.Duration, ended chan<- struct{}) *runningPoller {
	pctx, cancel := context.WithCancel(ctx)
	r := &runningPoller{version: mb.Version, stop: cancel, leave: make(chan struct{}), done: make(chan struct{})}
	pl := &poller{Pollers: p, mb: mb, stats: p.Stats(mb.ID), leave: r.leave,
		log: p.log.With("mailbox", mb.ID, "department", mb.Department.Slug)}
	go func() {
		defer func() {
			cancel()
			close(r.done)
			select {
			case ended <- struct{}{}:
			default:
			}
		}()
		if pl.pause(pctx, delay) {
			pl.run(pctx)
		}
	}()
	return r
}

// poller polls one mailbox.
type poller struct {
	*Pollers
	mb    tickets.Mailbox
	log   *slog.Logger
	stats *PollerStats
	// leave is closed when the poller should finish its batch and end.
	leave <-chan struct{}
	// recorded is the state last written, so that a poller idling
	// between mails does not write it again for every mail.
	recorded tickets.MailboxState
}

// aside runs f on a goroutine of its own and waits for it. A poller spends
// its life waiting, on the stack of its goroutine; the deep calls of its
// work (TLS, IMAP commands, parsing, the store) would grow that stack for
// good, and every idle mailbox would keep several times the stack it
// needs. Run aside, they grow a stack that goes away with the work.
func aside(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	<-done
}

// errLeaving ends a session whose mailbox was let go of.
var errLeaving = errors.New("the mailbox was let go of")

func (p *poller) leaving() bool {
	select {
	case <-p.leave:
		return true
	default:
		return false
	}
}

// pause waits for d, and reports whether the poller should go on: false
// when ctx ended or the poller was asked to leave meanwhile.
func (p *poller) pause(ctx context.Context, d time.Duration) bool {
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-p.leave:
		case <-t.C:
		}
	}
	return ctx.Err() == nil && !p.leaving()
}

// logOut ends a session politely once the poller is asked to leave.
func (p *poller) logOut(c *imapConn) error {
	t := time.AfterFunc(5*time.Second, func() { c.Close() })
	defer t.Stop()
	if err := c.Logout().Wait(); err != nil {
		p.log.Debug("logout failed", "err", err)
	}
	return errLeaving
}

func (p *poller) setState(ctx context.Context, state tickets.MailboxState, err error) {
	if state == p.recorded && err == nil {
		return
	}
	p.recorded = state
	errText, holder := "", p.opts.Holder
	if err != nil {
		errText = err.Error()
	}
	if state == tickets.MailboxWaiting {
		holder = ""
	}
	aside(func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := p.opts.Store.SetMailboxState(sctx, p.mb.ID, state, holder, errText); err != nil {
			p.log.Debug("cannot record the mailbox state", "state", state, "err", err)
		}
	})
}

// run keeps a session with the server open until ctx ends, reconnecting
// with growing waits after failures.
func (p *poller) run(ctx context.Context) {
	addr, err := ParseMailboxURL(p.mb.URL)
	if err != nil {
		// Checked when the mailbox was added; only a hand-edited row gets
		// here. Nothing will fix it but an admin.
		aside(func() { p.log.Error("mailbox URL unusable", "err", err) })
		p.setState(ctx, tickets.MailboxError, err)
		p.pause(ctx, time.Duration(math.MaxInt64))
		return
	}
	p.log = p.log.With("url", addr.String())
	backoff := newBackoff(time.Second, p.opts.MaxBackoff)
	for ctx.Err() == nil && !p.leaving() {
		start := time.Now()
		err := p.session(ctx, addr)
		if ctx.Err() != nil || errors.Is(err, errLeaving) {
			break
		}
		if errors.Is(err, errRenewLogin) {
			p.log.Info("logging in again with a renewed OAuth2 token")
			backoff.reset()
			continue
		}
		if time.Since(start) > time.Minute {
			backoff.reset()
		}
		wait := backoff.next()
		if needsAdmin(err) {
			// Repeated bad logins can get the account locked, and a
			// revoked authorization stays revoked: wait long.
			wait = max(wait, time.Minute)
		}
		aside(func() {
			p.log.Warn("mailbox session ended; reconnecting", "err", err, "retry_in", wait.Round(time.Millisecond))
		})
		p.setState(ctx, tickets.MailboxError, fmt.Errorf("%w (retrying in %v)", err, wait.Round(time.Second)))
		p.pause(ctx, wait)
	}
	p.setState(ctx, tickets.MailboxWaiting, nil)
}

// session connects, drains what is new, then waits for more (IDLE, or a
// poll on the mailbox's interval) until ctx ends or the connection fails.
func (p *poller) session(ctx context.Context, addr MailboxAddress) error {
	p.setState(ctx, tickets.MailboxConnecting, nil)
	var c *imapConn
	var err error
	aside(func() {
		c, err = connect(ctx, addr, p.mb, Credentials{LookupEnv: p.opts.LookupEnv, Tokens: p.opts.Tokens}, p.opts.TLSConfig)
	})
	if err != nil {
		return err
	}
	defer c.Close()
	guard := &batchGuard{close: func() { c.Close() }}
	stop := context.AfterFunc(ctx, guard.stop)
	defer stop()
	p.stats.Sessions.Add(1)
	var idle bool
	aside(func() { idle, err = p.open(ctx, c, addr.Folder) })
	if err != nil {
		return err
	}
	if !idle {
		every := p.mb.PollInterval
		if every <= 0 {
			every = tickets.DefaultPollInterval
		}
		// At the mailbox's own offset within the interval: mailboxes
		// connected together are not all polled in the same second.
		id := p.cron.Schedule(newPollSchedule(p.mb.ID, every), cron.FuncJob(c.signal))
		defer p.cron.Remove(id)
	}
	// Connected while the first sync takes what waited; after that the
	// state stays idling (or polling) while new mail is taken: a write
	// per mail would cost more than it tells.
	p.setState(ctx, tickets.MailboxConnected, nil)
	for {
		if p.leaving() {
			return p.logOut(c)
		}
		if c.renewDue() {
			p.logOut(c) //nolint:errcheck // logging in again, not leaving
			return errRenewLogin
		}
		// Notifications that arrive while syncing leave a value in wake:
		// the wait below then ends at once and syncs again.
		select {
		case <-c.wake:
		default:
		}
		aside(func() { err = p.sync(ctx, c, guard) })
		if err != nil {
			return err
		}
		if idle {
			if err := p.idle(ctx, c); err != nil {
				return err
			}
			continue
		}
		p.setState(ctx, tickets.MailboxPolling, nil)
		select {
		case <-c.wake:
		case <-p.leave:
		case <-c.renew:
		case <-c.Closed():
			return errors.New("the server closed the connection")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// open opens the folder, checks the one processed mail goes to, and starts
// over when the server renumbered the folder. It reports whether the
// server offers IDLE.
func (p *poller) open(ctx context.Context, c *imapConn, folder string) (idle bool, err error) {
	sel, err := c.selectFolder(folder, false)
	if err != nil {
		return false, err
	}
	if p.mb.MoveTo != "" {
		ok, err := c.folderExists(p.mb.MoveTo)
		if err != nil {
			return false, err
		}
		if !ok {
			return false, fmt.Errorf("folder %q to move processed mail to does not exist", p.mb.MoveTo)
		}
	}
	if sel.UIDValidity != p.mb.UIDValidity {
		if p.mb.UIDValidity != 0 {
			// The server renumbered the folder: every mail in it is looked
			// at again. The inbound log recognizes those already taken, so
			// this costs time, never a second ticket.
			p.log.Warn("folder UIDVALIDITY changed; rescanning it", "was", p.mb.UIDValidity, "now", sel.UIDValidity)
		}
		p.mb.UIDValidity, p.mb.LastUID = sel.UIDValidity, 0
		if err := p.opts.Store.AdvanceMailbox(ctx, p.mb.ID, p.mb.UIDValidity, 0, 0); err != nil {
			return false, err
		}
	}
	idle = c.Caps().Has(imap.CapIdle)
	p.log.Info("mailbox connected", "uidvalidity", sel.UIDValidity, "messages", sel.NumMessages, "idle", idle,
		"move", c.Caps().Has(imap.CapMove), "last_uid", p.mb.LastUID)
	return idle, nil
}

// idle waits with IDLE until the server reports new mail, or IdleRestart
// has passed.
func (p *poller) idle(ctx context.Context, c *imapConn) error {
	var cmd *imapclient.IdleCommand
	var err error
	aside(func() { cmd, err = c.Idle() })
	if err != nil {
		return fmt.Errorf("start IDLE: %w", err)
	}
	p.setState(ctx, tickets.MailboxIdling, nil)
	timer := time.NewTimer(p.opts.IdleRestart)
	defer timer.Stop()
	select {
	case <-c.wake:
	case <-timer.C:
	case <-p.leave:
	case <-c.renew:
	case <-c.Closed():
		return errors.New("the server closed the connection")
	case <-ctx.Done():
		return ctx.Err()
	}
	aside(func() {
		if err = cmd.Close(); err != nil {
			err = fmt.Errorf("stop IDLE: %w", err)
		} else if err = cmd.Wait(); err != nil {
			err = fmt.Errorf("IDLE: %w", err)
		}
	})
	return err
}

// sync turns every mail above the last UID into a ticket (or a logged
// duplicate or quarantined mail), batch by batch: fetch the bodies while
// storing them, then flag (and move) what is committed, then record the
// progress. A crash anywhere leaves the mail to be fetched again and
// recognized as a duplicate. A poller asked to leave, or stopping, stops
// after the batch at hand, the rest left to the next holder.
func (p *poller) sync(ctx context.Context, c *imapConn, guard *batchGuard) error {
	uids, err := newUIDs(c, imap.UID(p.mb.LastUID))
	if err != nil {
		return err
	}
	for len(uids) > 0 && !p.leaving() {
		if !guard.begin() {
			return ctx.Err()
		}
		n := min(len(uids), p.opts.Batch)
		err := p.syncBatch(ctx, c, uids[:n])
		guard.end()
		if err != nil {
			return err
		}
		uids = uids[n:]
	}
	return nil
}

// batchGrace is how long a stopping poller lets the batch at hand finish
// before it closes the connection anyway.
const batchGrace = 10 * time.Second

// batchGuard closes a poller's connection when the poller stops: at once
// while it waits, after the batch at hand while it syncs, so that mail
// already stored is flagged and its progress recorded rather than fetched
// again by the next holder.
type batchGuard struct {
	close func()

	mu       sync.Mutex
	busy     bool
	stopping bool
}

// stop closes the connection, or has the batch at hand close it.
func (g *batchGuard) stop() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.stopping = true
	if !g.busy {
		g.close()
		return
	}
	time.AfterFunc(batchGrace, g.close)
}

// begin reports whether a batch may start: not once the poller stops.
func (g *batchGuard) begin() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.busy = !g.stopping
	return g.busy
}

// end closes the connection if the poller stopped during the batch.
func (g *batchGuard) end() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.busy = false
	if g.stopping {
		g.close()
	}
}

func (p *poller) syncBatch(ctx context.Context, c *imapConn, uids []imap.UID) error {
	// Stores in flight finish even when the gateway is stopping: their
	// mail is then flagged at the next start, as a duplicate.
	dctx := context.WithoutCancel(ctx)
	d := startDeliveries(dctx, p.opts.Workers, func(ctx context.Context, f fetched) error {
		env := Envelope{Source: "imap", SourceRef: fmt.Sprintf("mailbox %d: %d/%d", p.mb.ID, p.mb.UIDValidity, f.uid),
			To: []string{p.mb.Department.Address}, Departments: []tickets.Department{p.mb.Department}}
		_, err := p.opts.Receiver.Deliver(ctx, env, f.raw)
		return err
	})
	var fetchErr error
	var got []imap.UID
	fetchErr = fetchBodies(c, imap.UIDSetNum(uids...), p.opts.Receiver.tmpDir, func(f fetched) {
		got = append(got, f.uid)
		d.jobs <- f
	})
	failed := d.wait()
	// Committed: the UIDs fetched and stored. Progress: the highest UID
	// below which every mail is committed (a mail that vanished between
	// the listing and the fetch was expunged by someone else).
	var done imap.UIDSet
	slices.Sort(got)
	fetched := map[imap.UID]bool{}
	for _, u := range got {
		if failed[u] == nil {
			done.AddNum(u)
			fetched[u] = true
		}
	}
	progress := imap.UID(p.mb.LastUID)
	var firstFailure error
	for _, u := range uids {
		if err, bad := failed[u]; bad {
			firstFailure = fmt.Errorf("store mail %d: %w", u, err)
			break
		}
		if !fetched[u] && fetchErr != nil {
			break
		}
		progress = u
	}
	ingested := len(got) - len(failed)
	if len(done) > 0 {
		if err := p.acknowledge(c, done); err != nil {
			return err
		}
	}
	if progress > imap.UID(p.mb.LastUID) || ingested > 0 {
		if err := p.opts.Store.AdvanceMailbox(dctx, p.mb.ID, p.mb.UIDValidity, uint32(progress), ingested); err != nil {
			return err
		}
		p.mb.LastUID = uint32(progress)
		p.stats.Ingested.Add(int64(ingested))
	}
	if fetchErr != nil {
		return fetchErr
	}
	return firstFailure
}

// acknowledge flags committed mail \Seen and moves it when a folder is set
// (MOVE, or COPY, \Deleted and EXPUNGE where the server lacks MOVE).
func (p *poller) acknowledge(c *imapConn, uids imap.UIDSet) error {
	store := c.Store(uids, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagSeen}}, nil)
	if err := store.Close(); err != nil {
		return fmt.Errorf("flag mail \\Seen: %w", err)
	}
	if p.mb.MoveTo == "" {
		return nil
	}
	if _, err := c.Move(uids, p.mb.MoveTo).Wait(); err != nil {
		return fmt.Errorf("move mail to %q: %w", p.mb.MoveTo, err)
	}
	return nil
}

// backoff doubles a wait up to a bound, with jitter so that instances
// reconnecting after one outage do not all knock at once.
type backoff struct {
	first, max, cur time.Duration
}

func newBackoff(first, max time.Duration) *backoff { return &backoff{first: first, max: max} }

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.first
	} else {
		b.cur = min(b.cur*2, b.max)
	}
	return b.cur/2 + rand.N(b.cur/2+1)
}

func (b *backoff) reset() { b.cur = 0 }

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
