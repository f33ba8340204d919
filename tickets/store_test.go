package tickets_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helpdeskgw/helpdesk/internal/testdb"
	"github.com/helpdeskgw/helpdesk/tickets"
)

var db *testdb.DB

func TestMain(m *testing.M) { testdb.Main(m, &db) }

func newStore(t *testing.T, opts tickets.Options) (*tickets.Store, *pgxpool.Pool, tickets.Department) {
	t.Helper()
	db.Reset(t)
	pool := db.Pool(t)
	opts.Pool = pool
	s := tickets.New(opts)
	d, err := s.AddDepartment(context.Background(), tickets.Department{Slug: "soporte", Name: "Soporte", Address: "Support@Example.com"})
	if err != nil {
		t.Fatal(err)
	}
	return s, pool, d
}

func inbound(d tickets.Department, msgID, body string, atts ...tickets.InboundAttachment) *tickets.InboundMail {
	raw := fmt.Sprintf("From: ana@example.org\r\nMessage-ID: <%s>\r\n\r\n%s", msgID, body)
	return &tickets.InboundMail{
		Source: "smtp", Department: d, EnvelopeFrom: "ana@example.org", MessageID: msgID,
		From: tickets.Address{Name: "Ana", Email: "ana@example.org"}, Subject: "Ayuda", Text: body,
		Raw: tickets.BytesContent([]byte(raw)), Attachments: atts,
	}
}

func count(t *testing.T, pool *pgxpool.Pool, query string, args ...any) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func TestConcurrentDeliveriesOfOneMailMakeOneTicket(t *testing.T) {
	s, pool, d := newStore(t, tickets.Options{})
	ctx := context.Background()
	var wg sync.WaitGroup
	results := make([]tickets.IngestResult, 12)
	errs := make([]error, 12)
	for i := range results {
		wg.Go(func() {
			// Different bytes (relays add headers), same Message-ID.
			in := inbound(d, "race@example.org", "hola")
			in.Raw = tickets.BytesContent(fmt.Appendf(nil, "Received: by relay%d\r\n\r\nhola", i))
			results[i], errs[i] = s.IngestMail(ctx, in)
		})
	}
	wg.Wait()
	tickets := map[int64]bool{}
	created := 0
	for i, r := range results {
		if errs[i] != nil {
			t.Fatalf("delivery %d: %v", i, errs[i])
		}
		tickets[r.TicketID] = true
		if r.Disposition == "ticket" {
			created++
		}
	}
	if created != 1 || len(tickets) != 1 {
		t.Fatalf("%d deliveries created tickets, %d distinct ticket IDs; want 1 and 1", created, len(tickets))
	}
	if n := count(t, pool, `SELECT count(*) FROM inbound`); n != 12 {
		t.Errorf("inbound log has %d rows, want one per delivery (12)", n)
	}
}

// Many mails at once are committed in shared transactions; each must still
// get exactly its own outcome.
func TestConcurrentMixedMails(t *testing.T) {
	// One sender writes them all: the per-sender limits are not what this
	// test is about.
	s, pool, d := newStore(t, tickets.Options{Limits: tickets.Limits{TicketsPerSender: 1000, AcksPerAddress: 1000}})
	ctx := context.Background()
	shared := tickets.BytesContent([]byte("the same logo in every mail"))
	type want struct {
		disp      tickets.Disposition
		ack       bool
		ticket    bool
		wantError bool
	}
	var mails []*tickets.InboundMail
	var wants []want
	for i := range 30 {
		in := inbound(d, fmt.Sprintf("mix-%d@example.org", i), fmt.Sprintf("mail %d", i),
			tickets.InboundAttachment{Filename: "logo.png", ContentType: "image/png", Inline: true, Content: shared},
			tickets.InboundAttachment{Filename: fmt.Sprintf("own-%d.txt", i), ContentType: "text/plain", Content: tickets.BytesContent(fmt.Appendf(nil, "own %d", i))})
		w := want{disp: tickets.DispositionTicket, ack: true, ticket: true}
		switch i % 6 {
		case 1: // a copy of mail 0, possibly in the same batch
			in = inbound(d, "mix-0@example.org", "mail 0")
			w = want{disp: tickets.DispositionDuplicate, ticket: true}
		case 2:
			in.Automatic = "Auto-Submitted: auto-replied"
			w.ack = false
		case 3:
			in.From, in.EnvelopeFrom = tickets.Address{}, ""
			w = want{disp: tickets.DispositionQuarantined}
		case 4: // a department that does not exist: refused, alone
			in.Department = tickets.Department{ID: 999999, Address: "gone@example.com"}
			w = want{wantError: true}
		}
		mails, wants = append(mails, in), append(wants, w)
	}
	results := make([]tickets.IngestResult, len(mails))
	errs := make([]error, len(mails))
	var wg sync.WaitGroup
	for i, in := range mails {
		wg.Go(func() { results[i], errs[i] = s.IngestMail(ctx, in) })
	}
	wg.Wait()
	// Mail 0 and its copies: exactly one of them made the ticket.
	first := map[tickets.Disposition]int{}
	for i, w := range wants {
		r, err := results[i], errs[i]
		if w.wantError {
			if err == nil {
				t.Errorf("mail %d to a missing department: stored as %+v", i, r)
			}
			continue
		}
		if err != nil {
			t.Fatalf("mail %d: %v", i, err)
		}
		if i == 0 || i%6 == 1 {
			first[r.Disposition]++
			if r.TicketID == 0 || r.TrackingID == "" {
				t.Errorf("copy %d of mail 0: %+v, want it tied to the ticket", i, r)
			}
			continue
		}
		if r.Disposition != w.disp || r.AckQueued != w.ack || (r.TicketID != 0) != w.ticket || r.InboundID == 0 {
			t.Errorf("mail %d: %+v, want %+v", i, r, w)
		}
		if w.ticket {
			msgs, err := s.Thread(ctx, r.TicketID, false)
			if err != nil || len(msgs) != 1 || msgs[0].Text != fmt.Sprintf("mail %d", i) || len(msgs[0].Attachments) != 2 ||
				msgs[0].Attachments[1].Filename != fmt.Sprintf("own-%d.txt", i) {
				t.Errorf("mail %d's ticket holds %+v (%v)", i, msgs, err)
			}
		}
	}
	if first[tickets.DispositionTicket] != 1 || first[tickets.DispositionDuplicate] != 5 {
		t.Errorf("mail 0 and its 5 copies: %v, want 1 ticket and 5 duplicates", first)
	}
	if n := count(t, pool, `SELECT count(*) FROM blobs b WHERE b.sha256 = $1`, shared.SHA256[:]); n != 1 {
		t.Errorf("the shared file is stored %d times", n)
	}
	if n := count(t, pool, `SELECT count(*) FROM tickets`); n != 15 {
		t.Errorf("%d tickets, want 15 (every sixth mail from 0, 2 and 5)", n)
	}
	if n := count(t, pool, `SELECT count(*) FROM inbound i LEFT JOIN tickets t ON t.id = i.ticket_id WHERE i.ticket_id IS NOT NULL AND t.id IS NULL`); n != 0 {
		t.Errorf("%d inbound rows point at missing tickets", n)
	}
	// Stored files all belong to a ticket (quarantined and duplicate mails
	// keep their raw source only).
	if n := count(t, pool, `SELECT count(*) FROM blobs b WHERE NOT EXISTS (SELECT 1 FROM attachments a WHERE a.sha256 = b.sha256)
		AND NOT EXISTS (SELECT 1 FROM inbound i WHERE i.raw_sha256 = b.sha256)`); n != 0 {
		t.Errorf("%d stored contents belong to nothing", n)
	}
}

func TestSameMessageIDFromAnotherSenderIsAnotherMail(t *testing.T) {
	s, _, d := newStore(t, tickets.Options{})
	ctx := context.Background()
	a := inbound(d, "12345", "de Ana")
	b := inbound(d, "12345", "de Luis")
	b.From.Email = "luis@example.net"
	again := inbound(d, "12345", "de Ana")
	again.From.Email = "ANA@example.org"
	var got []tickets.Disposition
	for _, in := range []*tickets.InboundMail{a, b, again} {
		res, err := s.IngestMail(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, res.Disposition)
	}
	if fmt.Sprint(got) != "[ticket ticket duplicate]" {
		t.Errorf("dispositions %v, want [ticket ticket duplicate]", got)
	}
}

// Copies of one mail reaching two instances at once (two stores, each with
// its own committer), one copy large enough to be committed on its own:
// one ticket, the rest duplicates, no deadlock.
func TestCopiesAcrossInstancesMakeOneTicket(t *testing.T) {
	a, pool, d := newStore(t, tickets.Options{})
	b := tickets.New(tickets.Options{Pool: pool})
	ctx := context.Background()
	big := make([]byte, 300<<10)
	rand.Read(big)
	for round := range 10 {
		id := fmt.Sprintf("instances-%d@example.org", round)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := range 8 {
			wg.Go(func() {
				in := inbound(d, id, "hola")
				in.Raw = tickets.BytesContent(fmt.Appendf(nil, "Received: by mx%d\r\n\r\nhola", i))
				if i == 0 {
					in.Attachments = []tickets.InboundAttachment{{Filename: "big.bin", ContentType: "application/octet-stream", Content: tickets.BytesContent(big)}}
				}
				s := a
				if i%2 == 1 {
					s = b
				}
				_, err := s.IngestMail(ctx, in)
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
	if n := count(t, pool, `SELECT count(*) FROM tickets`); n != 10 {
		t.Errorf("%d tickets for 10 mails delivered 8 times each, want 10", n)
	}
	if n := count(t, pool, `SELECT count(*) FROM inbound WHERE disposition = 'duplicate'`); n != 70 {
		t.Errorf("%d duplicates logged, want 70", n)
	}
}

func TestAttachmentsAreStoredOncePerContentInChunks(t *testing.T) {
	s, pool, d := newStore(t, tickets.Options{})
	ctx := context.Background()
	// Over two windows of 32 rows of 8000 bytes, the last row partial.
	big := make([]byte, 2*256<<10+12345)
	rand.Read(big)
	empty := tickets.BytesContent(nil)
	att := func(name string, b []byte) tickets.InboundAttachment {
		return tickets.InboundAttachment{Filename: name, ContentType: "application/octet-stream", Content: tickets.BytesContent(b)}
	}
	for i := range 2 {
		in := inbound(d, fmt.Sprintf("att-%d@example.org", i), "x", att("a.bin", big), att("copy.bin", big),
			tickets.InboundAttachment{Filename: "empty.txt", ContentType: "text/plain", Content: empty})
		if _, err := s.IngestMail(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	sum := sha256.Sum256(big)
	if n := count(t, pool, `SELECT count(*) FROM blob_chunks WHERE sha256 = $1`, sum[:]); n != (len(big)+7999)/8000 {
		t.Errorf("%d chunks for the big file, want %d (stored once)", n, (len(big)+7999)/8000)
	}
	if n := count(t, pool, `SELECT count(*) FROM attachments`); n != 6 {
		t.Errorf("%d attachment rows, want 6", n)
	}
	var buf bytes.Buffer
	if err := s.WriteBlob(ctx, sum[:], &buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), big) {
		t.Errorf("read back %d bytes, differing from the %d stored", buf.Len(), len(big))
	}
	buf.Reset()
	if err := s.WriteBlob(ctx, empty.SHA256[:], &buf); err != nil || buf.Len() != 0 {
		t.Errorf("empty file: %v, %d bytes", err, buf.Len())
	}
	missing := sha256.Sum256([]byte("nothing"))
	if err := s.WriteBlob(ctx, missing[:], &buf); !errors.Is(err, tickets.ErrNotFound) {
		t.Errorf("unknown blob: %v, want ErrNotFound", err)
	}
}

func TestHostileTextIsStored(t *testing.T) {
	s, _, d := newStore(t, tickets.Options{})
	ctx := context.Background()
	in := inbound(d, "nul@example.org", "a\x00b \xff\xfe c")
	in.Subject = "sub\x00ject"
	in.From.Name = "An\x00a"
	in.Attachments = []tickets.InboundAttachment{{Filename: "f\x00.txt", ContentType: "text/plain", Content: tickets.BytesContent([]byte("x"))}}
	res, err := s.IngestMail(ctx, in)
	if err != nil {
		t.Fatalf("mail with NUL bytes and invalid UTF-8: %v", err)
	}
	tk, err := s.Ticket(ctx, res.TicketID)
	if err != nil || tk.Subject != "subject" {
		t.Errorf("subject %q, %v", tk.Subject, err)
	}
}

// Header fields are whatever a sender makes them: an address too long for
// an index, a subject of pages, a name with line breaks. The mail is still
// stored, with fields fit to show.
func TestOversizedFieldsAreStored(t *testing.T) {
	s, _, d := newStore(t, tickets.Options{})
	ctx := context.Background()
	in := inbound(d, "long-"+strings.Repeat("m", 2000)+"@example.org", "x")
	in.From = tickets.Address{Name: "Ana\r\nBcc: victim@example.net \u202eevil", Email: strings.Repeat("a", 3000) + "@example.org"}
	in.Subject = strings.Repeat("asunto ", 1000)
	res, err := s.IngestMail(ctx, in)
	if err != nil {
		t.Fatalf("mail with a 3000-character From: address: %v", err)
	}
	tk, err := s.Ticket(ctx, res.TicketID)
	if err != nil {
		t.Fatal(err)
	}
	if tk.CustomerEmail != "ana@example.org" {
		t.Errorf("customer %q: want the envelope sender when From: is unusable", tk.CustomerEmail)
	}
	if tk.CustomerName != "Ana Bcc: victim@example.net evil" {
		t.Errorf("name %q: want one line without the override", tk.CustomerName)
	}
	if n := len([]rune(tk.Subject)); n != 500 || !strings.HasSuffix(tk.Subject, "…") {
		t.Errorf("subject of %d characters, want it cut to 500", n)
	}
	// The same mail again is still recognized.
	if res, err := s.IngestMail(ctx, in); err != nil || res.Disposition != tickets.DispositionDuplicate {
		t.Errorf("again: %+v, %v", res, err)
	}
}

func TestQuarantineWhenNoSenderAddress(t *testing.T) {
	s, pool, d := newStore(t, tickets.Options{})
	in := inbound(d, "nosender@example.org", "x")
	in.From, in.EnvelopeFrom = tickets.Address{}, ""
	res, err := s.IngestMail(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if res.Disposition != tickets.DispositionQuarantined || res.Reason == "" || res.TicketID != 0 {
		t.Errorf("result %+v, want quarantined with a reason and no ticket", res)
	}
	if n := count(t, pool, `SELECT count(*) FROM inbound WHERE disposition = 'quarantined' AND raw_size > 0`); n != 1 {
		t.Errorf("quarantined mail not kept in the inbound log with its source")
	}
}

func TestTokens(t *testing.T) {
	s, pool, d := newStore(t, tickets.Options{TokenTTL: time.Hour})
	ctx := context.Background()
	res, err := s.IngestMail(ctx, inbound(d, "tok@example.org", "x"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := s.IssueToken(ctx, res.TicketID, tickets.ScopeTicket)
	if err != nil {
		t.Fatal(err)
	}
	if len(tok) != 43 {
		t.Errorf("token %q: want 43 base64url characters (256 bits)", tok)
	}
	got, err := s.TicketByToken(ctx, tok, tickets.ScopeTicket)
	if err != nil || got.ID != res.TicketID || got.TrackingID != res.TrackingID {
		t.Fatalf("TicketByToken: %+v, %v", got, err)
	}
	// Only the hash is stored.
	if n := count(t, pool, `SELECT count(*) FROM tokens WHERE hash = $1 OR encode(hash, 'escape') LIKE '%' || $2 || '%'`, []byte(tok), tok); n != 0 {
		t.Error("the token itself is in the database")
	}
	for _, bad := range []string{"", "short", strings.Repeat("A", 43), tok[:42] + "B", tok + "A"} {
		if _, err := s.TicketByToken(ctx, bad, tickets.ScopeTicket); !errors.Is(err, tickets.ErrNotFound) {
			t.Errorf("token %q: %v, want ErrNotFound", bad, err)
		}
	}
	// Expired.
	if _, err := pool.Exec(ctx, `UPDATE tokens SET expires_at = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TicketByToken(ctx, tok, tickets.ScopeTicket); !errors.Is(err, tickets.ErrExpired) {
		t.Errorf("expired token: %v, want ErrExpired", err)
	}
	// Revoked.
	tok2, _ := s.IssueToken(ctx, res.TicketID, tickets.ScopeTicket)
	if err := s.RevokeToken(ctx, tok2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TicketByToken(ctx, tok2, tickets.ScopeTicket); !errors.Is(err, tickets.ErrNotFound) {
		t.Errorf("revoked token: %v, want ErrNotFound", err)
	}
	var ttl time.Duration
	pool.QueryRow(ctx, `SELECT expires_at - created_at FROM tokens WHERE revoked_at IS NOT NULL`).Scan(&ttl)
	if ttl != time.Hour {
		t.Errorf("token lifetime %s, want the configured 1h", ttl)
	}
}

func TestOutboxClaimsLeaseRowsAndRecordOutcomes(t *testing.T) {
	woken := 0
	s, pool, d := newStore(t, tickets.Options{OutboxQueued: func() { woken++ }})
	ctx := context.Background()
	for i := range 4 {
		if _, err := s.IngestMail(ctx, inbound(d, fmt.Sprintf("ob-%d@example.org", i), "x")); err != nil {
			t.Fatal(err)
		}
	}
	if woken != 4 {
		t.Errorf("OutboxQueued called %d times, want 4", woken)
	}
	a, err := s.ClaimOutbox(ctx, 3, time.Hour)
	if err != nil || len(a) != 3 {
		t.Fatalf("first claim: %v, %d mails", err, len(a))
	}
	// A second sender sees only the row the first did not lease.
	b, err := s.ClaimOutbox(ctx, 10, time.Hour)
	if err != nil || len(b) != 1 {
		t.Fatalf("second claim: %v, %d mails", err, len(b))
	}
	if c, err := s.ClaimOutbox(ctx, 10, time.Hour); err != nil || len(c) != 0 {
		t.Fatalf("third claim: %v, %d mails; want nothing left", err, len(c))
	}
	m := a[0]
	if m.Kind != tickets.KindAck || m.Recipient != "ana@example.org" || m.Ticket.Department.Address != "support@example.com" || m.MessageID == "" {
		t.Errorf("claimed mail %+v", m)
	}
	// Each claimed mail carries a token that already opens its ticket.
	if got, err := s.TicketByToken(ctx, m.Token, tickets.ScopeTicket); err != nil || got.ID != m.Ticket.ID {
		t.Errorf("the claimed mail's token: %+v, %v", got, err)
	}
	retryAt := time.Now().Add(2 * time.Hour)
	err = s.RecordOutbox(ctx, []tickets.Outcome{
		{ID: a[0].ID, State: "sent"},
		{ID: a[1].ID, State: "pending", RetryAt: retryAt, Reason: "421 try later"},
		{ID: a[2].ID}, // not tried: due again at once, the try not counted
		{ID: b[0].ID, State: "failed", Reason: "550 no such user"},
	})
	if err != nil {
		t.Fatal(err)
	}
	states, _ := s.OutboxForTicket(ctx, a[1].Ticket.ID)
	if len(states) != 1 || states[0].State != "pending" || states[0].Attempts != 1 || states[0].LastError != "421 try later" {
		t.Errorf("retried mail: %+v", states)
	}
	if n := count(t, pool, `SELECT count(*) FROM outbox WHERE state = 'sent' AND sent_at IS NOT NULL AND attempts = 1`); n != 1 {
		t.Errorf("%d sent, want 1", n)
	}
	if n := count(t, pool, `SELECT count(*) FROM outbox WHERE state = 'failed' AND last_error = '550 no such user'`); n != 1 {
		t.Errorf("%d failed with their reason, want 1", n)
	}
	// The untried one is claimable again, its attempts untouched.
	c, err := s.ClaimOutbox(ctx, 10, time.Hour)
	if err != nil || len(c) != 1 || c[0].ID != a[2].ID || c[0].Attempts != 0 {
		t.Fatalf("after handing one back: %v, %+v", err, c)
	}
	// A lease that ends (its sender died) makes the mail claimable again.
	if _, err := pool.Exec(ctx, `UPDATE outbox SET next_attempt = now() - interval '1 second' WHERE id = $1`, c[0].ID); err != nil {
		t.Fatal(err)
	}
	if again, err := s.ClaimOutbox(ctx, 10, time.Hour); err != nil || len(again) != 1 || again[0].Token == c[0].Token {
		t.Errorf("after the lease ended: %v, %+v; want it claimed with a fresh token", err, again)
	}
	next, ok, err := s.NextOutboxAttempt(ctx)
	if err != nil || !ok || next.Before(time.Now().Add(30*time.Minute)) {
		t.Errorf("next attempt %s %v %v, want the leases' and the retry's, an hour or more away", next, ok, err)
	}
}

func TestDepartments(t *testing.T) {
	s, _, d := newStore(t, tickets.Options{})
	ctx := context.Background()
	if d.Address != "support@example.com" || d.Locale != "es" {
		t.Errorf("department %+v: want the address lower-cased and locale es by default", d)
	}
	for _, bad := range []tickets.Department{
		{Slug: "soporte", Name: "Otro", Address: "otro@example.com"},
		{Slug: "otro", Name: "Otro", Address: "SUPPORT@example.com"},
	} {
		if _, err := s.AddDepartment(ctx, bad); !errors.Is(err, tickets.ErrConflict) {
			t.Errorf("%+v: %v, want ErrConflict", bad, err)
		}
	}
	for _, bad := range []tickets.Department{
		{Slug: "", Name: "x", Address: "x@example.com"},
		{Slug: "x", Name: "", Address: "x@example.com"},
		{Slug: "x", Name: "x", Address: "Name <x@example.com>"},
		{Slug: "x", Name: "x", Address: "x+tag@example.com"},
		{Slug: "x", Name: "x", Address: "x@example.com", Locale: "de"},
	} {
		if _, err := s.AddDepartment(ctx, bad); !errors.Is(err, tickets.ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", bad, err)
		}
	}
	created, err := s.EnsureDepartment(ctx, tickets.Department{Slug: "demo", Name: "Demo", Address: "demo@example.com"})
	if err != nil || created {
		t.Errorf("EnsureDepartment with one present: created %v, %v", created, err)
	}
	got, err := s.DepartmentBySlug(ctx, "soporte")
	if err != nil || got.ID != d.ID {
		t.Errorf("DepartmentBySlug: %+v %v", got, err)
	}
	if _, err := s.DepartmentBySlug(ctx, "nope"); !errors.Is(err, tickets.ErrNotFound) {
		t.Errorf("unknown slug: %v", err)
	}
}
