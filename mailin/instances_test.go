package mailin

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/helpdeskgw/helpdesk/internal/dovecot"
	"github.com/helpdeskgw/helpdesk/tickets"
)

// Several instances against one store and many mailboxes.

const sharedPasswordVar = "TEST_IMAP_SHARED_PASSWORD"

// sharedSite is a store with n departments, each with a mailbox of its own
// user on one IMAP server at addr.
type sharedSite struct {
	store *tickets.Store
	rcv   *Receiver
	users map[int64]string // mailbox ID → IMAP user
}

func mailboxUser(i int) string { return fmt.Sprintf("desk%02d", i) }

func newSharedSite(t *testing.T, addr string, n int, password string, poll time.Duration) *sharedSite {
	t.Helper()
	db.Reset(t)
	ctx := context.Background()
	store := tickets.New(tickets.Options{Pool: db.Pool(t)})
	t.Setenv(sharedPasswordVar, password)
	site := &sharedSite{store: store, users: map[int64]string{},
		rcv: NewReceiver(ReceiverOptions{Store: store, TempDir: t.TempDir()})}
	for i := range n {
		slug := mailboxUser(i)
		if _, err := store.AddDepartment(ctx, tickets.Department{Slug: slug, Name: slug, Address: slug + "@example.com"}); err != nil {
			t.Fatal(err)
		}
		mb, err := store.AddMailbox(ctx, tickets.Mailbox{Department: tickets.Department{Slug: slug},
			URL: "imap://" + slug + "@" + addr + "/INBOX", PasswordRef: "env:" + sharedPasswordVar, PollInterval: poll})
		if err != nil {
			t.Fatal(err)
		}
		site.users[mb.ID] = slug
	}
	return site
}

// run starts an instance until the test ends; stop stops it.
func (s *sharedSite) run(t *testing.T, holder string) (p *Pollers, stop func()) {
	t.Helper()
	p = NewPollers(PollerOptions{Store: s.store, Receiver: s.rcv, Holder: holder, Refresh: 100 * time.Millisecond,
		MaxBackoff: 200 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return p, stop
}

// idlingBy counts the mailboxes idling, by the instance holding them.
func (s *sharedSite) idlingBy(t *testing.T) map[string]int {
	t.Helper()
	list, err := s.store.Mailboxes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]int{}
	for _, mb := range list {
		if mb.State == tickets.MailboxIdling {
			by[mb.Holder]++
		}
	}
	return by
}

// shared waits until the instances hold the given numbers of mailboxes,
// in any order, each idling.
func (s *sharedSite) shared(t *testing.T, what string, want ...int) map[string]int {
	t.Helper()
	slices.Sort(want)
	var by map[string]int
	eventually(t, what, func() (bool, string) {
		by = s.idlingBy(t)
		got := slices.Sorted(maps.Values(by))
		return slices.Equal(got, want), fmt.Sprintf("idling by holder %v", by)
	})
	return by
}

// sessionCounter is a go-imap in-memory server that counts each user's
// logged-in sessions, and remembers the most ever open at once.
type sessionCounter struct {
	addr  string
	users map[string]*imapmemserver.User

	mu      sync.Mutex
	open    map[string]int
	maxOpen map[string]int
}

func startCountingIMAP(t *testing.T, n int, password string) *sessionCounter {
	t.Helper()
	mem := imapmemserver.New()
	sc := &sessionCounter{users: map[string]*imapmemserver.User{}, open: map[string]int{}, maxOpen: map[string]int{}}
	for i := range n {
		u := imapmemserver.NewUser(mailboxUser(i), password)
		if err := u.Create("INBOX", nil); err != nil {
			t.Fatal(err)
		}
		mem.AddUser(u)
		sc.users[mailboxUser(i)] = u
	}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return &countedSession{Session: mem.NewSession(), counter: sc}, nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}},
		InsecureAuth: true,
		Logger:       discardLogger{},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	t.Cleanup(func() { srv.Close() })
	sc.addr = ln.Addr().String()
	return sc
}

func (sc *sessionCounter) change(user string, by int) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.open[user] += by
	sc.maxOpen[user] = max(sc.maxOpen[user], sc.open[user])
}

// mostAtOnce is the most sessions any user had open at once.
func (sc *sessionCounter) mostAtOnce() (string, int) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	user, most := "", 0
	for u, n := range sc.maxOpen {
		if n > most {
			user, most = u, n
		}
	}
	return user, most
}

type countedSession struct {
	imapserver.Session
	counter *sessionCounter
	user    string
}

func (s *countedSession) Login(username, password string) error {
	if err := s.Session.Login(username, password); err != nil {
		return err
	}
	s.user = username
	s.counter.change(username, 1)
	return nil
}

// Idle answers DONE slowly: a mailbox being let go of stays open a while
// longer, and an instance that took it before the logout would be caught
// with two sessions at once.
func (s *countedSession) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	err := s.Session.Idle(w, stop)
	time.Sleep(300 * time.Millisecond)
	return err
}

func (s *countedSession) Close() error {
	if s.user != "" {
		s.counter.change(s.user, -1)
	}
	return s.Session.Close()
}

// mailEach appends one mail to every mailbox, numbered from first.
func (sc *sessionCounter) mailEach(t *testing.T, first int) int {
	t.Helper()
	for i, name := range slices.Sorted(maps.Keys(sc.users)) {
		if _, err := sc.users[name].Append("INBOX", literal(numbered(first+i)), &imap.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return first + len(sc.users)
}

func TestInstancesShareTheMailboxesOut(t *testing.T) {
	const n = 10
	srv := startCountingIMAP(t, n, "s3cret")
	site := newSharedSite(t, srv.addr, n, "s3cret", 0)
	count := func(query string) int {
		var got int
		if err := db.Pool(t).QueryRow(context.Background(), query).Scan(&got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	ticketsAfter := func(what string, want int) {
		t.Helper()
		eventually(t, what, func() (bool, string) {
			got := count(`SELECT count(*) FROM tickets`)
			return got == want, fmt.Sprintf("%d tickets", got)
		})
	}

	_, stopFirst := site.run(t, "first")
	site.run(t, "second")
	by := site.shared(t, "two instances share ten mailboxes", 5, 5)
	if by["first"] != 5 || by["second"] != 5 {
		t.Fatalf("shares %v, want five each for first and second", by)
	}
	next := srv.mailEach(t, 0)
	ticketsAfter("mail to every mailbox taken", next)

	stopFirst()
	site.shared(t, "the remaining instance takes every mailbox", n)
	if by := site.idlingBy(t); by["second"] != n {
		t.Fatalf("shares %v, want all ten with second", by)
	}
	next = srv.mailEach(t, next)
	ticketsAfter("mail after the stop taken", next)

	site.run(t, "third")
	site.run(t, "fourth")
	by = site.shared(t, "three instances share ten mailboxes", 3, 3, 4)
	for _, holder := range []string{"second", "third", "fourth"} {
		if by[holder] < 3 {
			t.Errorf("%s polls %d mailboxes, want 3 or 4: %v", holder, by[holder], by)
		}
	}
	next = srv.mailEach(t, next)
	ticketsAfter("mail after the third joined taken", next)

	if got := count(`SELECT count(*) FROM inbound`); got != next {
		t.Errorf("%d mails logged for %d sent", got, next)
	}
	if got := count(`SELECT count(*) FROM inbound WHERE disposition = 'duplicate'`); got != 0 {
		t.Errorf("%d mails fetched twice; handovers finish their batch before letting go", got)
	}
	if got := count(`SELECT count(DISTINCT message_id) FROM inbound WHERE disposition = 'ticket'`); got != next {
		t.Errorf("%d distinct mails made tickets, want %d", got, next)
	}
	if user, most := srv.mostAtOnce(); most != 1 {
		t.Errorf("mailbox %s was polled by %d sessions at once", user, most)
	}
	if got := count(`SELECT coalesce(sum(ingested), 0) FROM mailboxes`); got != next {
		t.Errorf("progress counts %d mails, want %d", got, next)
	}
}

// Mailboxes of a server without IDLE are polled on schedules of their
// own, spread over the interval.
func TestDovecotPolledMailboxesAreSpreadOverTheInterval(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Dovecot")
	}
	const n, every = 6, 30 * time.Second
	users := map[string]string{}
	for i := range n {
		users[mailboxUser(i)] = dovecotPassword
	}
	srv := dovecot.StartT(t, dovecot.Options{Users: users, Capabilities: "IMAP4rev1 LITERAL+ UIDPLUS"})
	site := newSharedSite(t, srv.Addr(), n, dovecotPassword, every)
	p, _ := site.run(t, "one")
	eventually(t, "every mailbox polling", func() (bool, string) {
		list, err := site.store.Mailboxes(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		polling := 0
		for _, mb := range list {
			if mb.State == tickets.MailboxPolling {
				polling++
			}
		}
		return polling == n, fmt.Sprintf("%d polling", polling)
	})
	entries := p.cron.Entries()
	if len(entries) != n {
		t.Fatalf("%d scheduled polls, want %d", len(entries), n)
	}
	offsets := map[time.Duration]bool{}
	for _, e := range entries {
		s, ok := e.Schedule.(pollSchedule)
		if !ok {
			t.Fatalf("poll scheduled as %T, want a pollSchedule", e.Schedule)
		}
		if s.every != every {
			t.Errorf("polled every %v, want the mailbox's %v", s.every, every)
		}
		if phase := (e.Next.UnixNano() - int64(s.offset)) % int64(every); phase != 0 {
			t.Errorf("next poll at %v is %v off the mailbox's offset %v", e.Next, time.Duration(phase), s.offset)
		}
		offsets[s.offset] = true
	}
	if len(offsets) != n {
		t.Errorf("%d mailboxes polled at %d offsets, want all different", n, len(offsets))
	}
	var want []time.Duration
	for id := range site.users {
		want = append(want, pollOffset(id, every))
	}
	if got := slices.Sorted(maps.Keys(offsets)); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
		t.Errorf("offsets %v, want those of the mailboxes' IDs %v", got, want)
	}
}

// sessionsOpen is how many sessions the user has open now.
func (sc *sessionCounter) sessionsOpen(user string) int {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.open[user]
}

// A poller let go of in the middle of a backlog finishes the batch at
// hand (flagged, progress recorded) and logs out; the next one takes the
// rest, and no mail is fetched twice.
func TestLeavingPollerFinishesItsBatch(t *testing.T) {
	const backlog = 300
	srv := startCountingIMAP(t, 1, "s3cret")
	site := newSharedSite(t, srv.addr, 1, "s3cret", 0)
	ctx := context.Background()
	for i := range backlog {
		if _, err := srv.users[mailboxUser(0)].Append("INBOX", literal(numbered(i)), &imap.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	p := NewPollers(PollerOptions{Store: site.store, Receiver: site.rcv, Holder: "one", Refresh: 50 * time.Millisecond,
		Batch: 1, Workers: 1})
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); p.Run(pctx) }()
	t.Cleanup(func() { cancel(); <-done })
	count := func(query string) int {
		var got int
		if err := db.Pool(t).QueryRow(ctx, query).Scan(&got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	eventually(t, "the backlog under way", func() (bool, string) {
		n := count(`SELECT count(*) FROM tickets`)
		return n >= 3, fmt.Sprintf("%d tickets", n)
	})
	// Disabling lets the mailbox go, as a handover does.
	if err := site.store.SetMailboxEnabled(ctx, mailboxUser(0), false); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the poller logs out", func() (bool, string) {
		n := srv.sessionsOpen(mailboxUser(0))
		return n == 0, fmt.Sprintf("%d sessions open", n)
	})
	taken := count(`SELECT count(*) FROM tickets`)
	if taken >= backlog {
		t.Fatalf("the backlog was done before the poller was let go (%d tickets); the test proves nothing", taken)
	}
	mb, err := site.store.MailboxOf(ctx, mailboxUser(0))
	if err != nil {
		t.Fatal(err)
	}
	if int(mb.LastUID) != taken || int(mb.Ingested) != taken {
		t.Errorf("%d mails taken, progress recorded up to UID %d with %d ingested", taken, mb.LastUID, mb.Ingested)
	}

	if err := site.store.SetMailboxEnabled(ctx, mailboxUser(0), true); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the rest taken", func() (bool, string) {
		n := count(`SELECT count(*) FROM inbound`)
		return n >= backlog, fmt.Sprintf("%d logged", n)
	})
	if got := count(`SELECT count(*) FROM inbound WHERE disposition = 'duplicate'`); got != 0 {
		t.Errorf("%d mails fetched twice", got)
	}
	if got := count(`SELECT count(*) FROM tickets`); got != backlog {
		t.Errorf("%d tickets, want %d", got, backlog)
	}
}
