package tickets_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helpdeskgw/helpdesk/tickets"
)

// openTicket files a mail and returns its result and the Message-ID of its
// acknowledgement.
func openTicket(t *testing.T, s *tickets.Store, d tickets.Department, msgID string) (tickets.IngestResult, string) {
	t.Helper()
	ctx := context.Background()
	res, err := s.IngestMail(ctx, inbound(d, msgID, "Mi impresora no imprime"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.OutboxForTicket(ctx, res.TicketID)
	if err != nil || len(out) != 1 || out[0].Kind != tickets.KindAck {
		t.Fatalf("outbox of new ticket: %+v, %v", out, err)
	}
	return res, out[0].MessageID
}

// reply is a mail from addr answering the mail ackID.
func reply(d tickets.Department, msgID, from, ackID string) *tickets.InboundMail {
	in := inbound(d, msgID, "Ya funciona, gracias.\n\nEl lun, 3 feb 2025, Soporte escribió:\n> Hemos recibido tu solicitud")
	in.From, in.EnvelopeFrom = tickets.Address{Email: from}, from
	in.InReplyTo, in.References = ackID, []string{"original@example.org", ackID}
	in.NewText = "Ya funciona, gracias."
	in.Attachments = []tickets.InboundAttachment{{Filename: "captura.png", ContentType: "image/png", Content: tickets.BytesContent([]byte("png " + msgID))}}
	return in
}

func TestReplyToOurMailIsHeldAsDraftForTheOwner(t *testing.T) {
	s, pool, d := newStore(t, tickets.Options{})
	ctx := context.Background()
	first, ackID := openTicket(t, s, d, "first@example.org")

	// The reply claims to come from someone else: the notice still goes to
	// the ticket's owner, and nothing is added to the ticket.
	res, err := s.IngestMail(ctx, reply(d, "reply-1@example.org", "mallory@example.net", ackID))
	if err != nil {
		t.Fatal(err)
	}
	if res.Disposition != tickets.DispositionDraft || res.TicketID != first.TicketID || res.DraftID == 0 || !res.NoticeQueued || res.AckQueued {
		t.Fatalf("reply: %+v", res)
	}
	if n := count(t, pool, `SELECT count(*) FROM messages WHERE ticket_id = $1`, first.TicketID); n != 1 {
		t.Errorf("%d messages on the ticket, want the first only", n)
	}
	if n := count(t, pool, `SELECT count(*) FROM tickets`); n != 1 {
		t.Errorf("%d tickets, want 1", n)
	}
	out, err := s.OutboxForTicket(ctx, first.TicketID)
	if err != nil || len(out) != 2 || out[1].Kind != tickets.KindDraftNotice || out[1].Recipient != "ana@example.org" {
		t.Fatalf("outbox: %+v, %v", out, err)
	}
	drafts, err := s.HeldDrafts(ctx, first.TicketID)
	if err != nil || len(drafts) != 1 {
		t.Fatalf("held drafts: %+v, %v", drafts, err)
	}
	dr := drafts[0]
	if dr.Text != "Ya funciona, gracias." || dr.FromAddress != "mallory@example.net" || len(dr.Attachments) != 1 ||
		dr.State != tickets.DraftHeld || !dr.ExpiresAt.After(time.Now().Add(6*24*time.Hour)) {
		t.Errorf("draft: %+v", dr)
	}

	// The notice carries a link to the draft.
	mails, err := s.ClaimOutbox(ctx, 10, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var notice *tickets.OutboxMail
	for i := range mails {
		if mails[i].Kind == tickets.KindDraftNotice {
			notice = &mails[i]
		}
	}
	if notice == nil || notice.Draft == nil || notice.Draft.ID != dr.ID || notice.Token == "" || notice.InReplyTo != ackID {
		t.Fatalf("claimed notice: %+v", notice)
	}
	tk, linked, err := s.DraftByToken(ctx, notice.Token)
	if err != nil || tk.ID != first.TicketID || linked.ID != dr.ID {
		t.Fatalf("draft by token: %v %v %v", tk.ID, linked.ID, err)
	}
	if _, err := s.TicketByToken(ctx, notice.Token, tickets.ScopeTicket); !errors.Is(err, tickets.ErrNotFound) {
		t.Errorf("a draft link opened as a ticket link: %v", err)
	}

	// Posted as edited, without the file: it joins the thread.
	if err := s.PostDraft(ctx, first.TicketID, dr.ID, "Ya funciona (editado).", nil); err != nil {
		t.Fatal(err)
	}
	thread, err := s.Thread(ctx, first.TicketID, false)
	if err != nil || len(thread) != 2 || thread[1].Text != "Ya funciona (editado)." || len(thread[1].Attachments) != 0 ||
		thread[1].AuthorEmail != "ana@example.org" {
		t.Fatalf("thread after posting: %+v, %v", thread, err)
	}
	tk, _ = s.Ticket(ctx, first.TicketID)
	if tk.Status != tickets.StatusWaitingReply {
		t.Errorf("status %s after the customer's message, want waiting_reply", tk.Status)
	}
	if err := s.PostDraft(ctx, first.TicketID, dr.ID, "otra vez", nil); !errors.Is(err, tickets.ErrExpired) {
		t.Errorf("posting twice: %v, want ErrExpired", err)
	}
	if _, _, err := s.DraftByToken(ctx, notice.Token); !errors.Is(err, tickets.ErrExpired) {
		t.Errorf("link of a posted draft: %v, want ErrExpired", err)
	}
	if n := count(t, pool, `SELECT count(*) FROM ticket_history WHERE ticket_id = $1 AND action IN ('reply_held', 'draft_posted')`, first.TicketID); n != 2 {
		t.Errorf("%d history rows for holding and posting, want 2", n)
	}
}

func TestDraftFilesKeptAsChosenAndDiscard(t *testing.T) {
	s, pool, d := newStore(t, tickets.Options{})
	ctx := context.Background()
	first, ackID := openTicket(t, s, d, "first@example.org")
	a, err := s.IngestMail(ctx, reply(d, "r-a@example.org", "ana@example.org", ackID))
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.IngestMail(ctx, reply(d, "r-b@example.org", "ana@example.org", ackID))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PostDraft(ctx, first.TicketID, a.DraftID, "", []int{0}); err != nil {
		t.Fatalf("posting only the file: %v", err)
	}
	thread, _ := s.Thread(ctx, first.TicketID, false)
	if len(thread) != 2 || len(thread[1].Attachments) != 1 || thread[1].Attachments[0].Filename != "captura.png" {
		t.Errorf("thread: %+v", thread)
	}
	if err := s.DiscardDraft(ctx, first.TicketID+1000, b.DraftID); !errors.Is(err, tickets.ErrNotFound) {
		t.Errorf("discarding through another ticket: %v", err)
	}
	if err := s.DiscardDraft(ctx, first.TicketID, b.DraftID); err != nil {
		t.Fatal(err)
	}
	if held, _ := s.HeldDrafts(ctx, first.TicketID); len(held) != 0 {
		t.Errorf("held after post and discard: %+v", held)
	}
	if n := count(t, pool, `SELECT count(*) FROM messages WHERE ticket_id = $1`, first.TicketID); n != 2 {
		t.Errorf("%d messages, want 2 (the discarded one not added)", n)
	}
	var errs tickets.FieldErrors
	if err := s.PostDraft(ctx, first.TicketID, b.DraftID, "", nil); !errors.As(err, &errs) && !errors.Is(err, tickets.ErrExpired) {
		t.Errorf("posting nothing: %v", err)
	}
}

func TestDraftsExpire(t *testing.T) {
	s, pool, d := newStore(t, tickets.Options{})
	ctx := context.Background()
	first, ackID := openTicket(t, s, d, "first@example.org")
	res, err := s.IngestMail(ctx, reply(d, "r@example.org", "ana@example.org", ackID))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE drafts SET expires_at = now() - interval '1 minute'`); err != nil {
		t.Fatal(err)
	}
	if held, _ := s.HeldDrafts(ctx, first.TicketID); len(held) != 0 {
		t.Errorf("an expired draft is still offered: %+v", held)
	}
	if err := s.PostDraft(ctx, first.TicketID, res.DraftID, "tarde", nil); !errors.Is(err, tickets.ErrExpired) {
		t.Errorf("posting an expired draft: %v", err)
	}
	n, err := s.ExpireDrafts(ctx)
	if err != nil || n != 1 {
		t.Fatalf("expired %d drafts, %v; want 1", n, err)
	}
	if n := count(t, pool, `SELECT count(*) FROM inbound WHERE id = $1 AND disposition = 'draft'`, res.InboundID); n != 1 {
		t.Error("the expired draft's mail is gone from the inbound log")
	}
	if n, _ := s.ExpireDrafts(ctx); n != 0 {
		t.Errorf("expired %d drafts again", n)
	}
}

func TestSubjectTagLinksWithoutThreadHeaders(t *testing.T) {
	s, _, d := newStore(t, tickets.Options{})
	ctx := context.Background()
	first, _ := openTicket(t, s, d, "first@example.org")
	in := inbound(d, "tagged@example.org", "más datos")
	in.SubjectTracking = first.TrackingID
	res, err := s.IngestMail(ctx, in)
	if err != nil || res.Disposition != tickets.DispositionDraft || res.TicketID != first.TicketID || res.TrackingID != first.TrackingID {
		t.Fatalf("tagged mail: %+v, %v", res, err)
	}
	// A tag naming no ticket is just words: a new ticket.
	in = inbound(d, "tagged-2@example.org", "hola")
	in.SubjectTracking = "AAA-AAA-AAAA"
	res, err = s.IngestMail(ctx, in)
	if err != nil || res.Disposition != tickets.DispositionTicket || res.TicketID == first.TicketID {
		t.Fatalf("unknown tag: %+v, %v", res, err)
	}
}

func TestAutomaticAnswersAndBouncesAreRecordedAgainstTheTicket(t *testing.T) {
	s, pool, d := newStore(t, tickets.Options{})
	ctx := context.Background()
	first, ackID := openTicket(t, s, d, "first@example.org")

	ooo := inbound(d, "ooo@example.org", "Estoy fuera de la oficina")
	ooo.InReplyTo, ooo.Automatic = ackID, "Auto-Submitted: auto-replied"
	res, err := s.IngestMail(ctx, ooo)
	if err != nil || res.Disposition != tickets.DispositionAutoReply || res.TicketID != first.TicketID || res.NoticeQueued || res.AckQueued {
		t.Fatalf("out of office: %+v, %v", res, err)
	}

	dsn := inbound(d, "dsn@mx.example.org", "Delivery failed")
	dsn.From, dsn.EnvelopeFrom, dsn.Automatic = tickets.Address{Email: "MAILER-DAEMON@mx.example.org"}, "", "null return path"
	dsn.Bounce = &tickets.Bounce{OriginalMessageID: ackID, Recipients: []tickets.BouncedRecipient{
		{Address: "Ana@Example.org", Action: "failed", Status: "5.1.1", Diagnostic: "smtp; 550 5.1.1 no such user"},
	}}
	res, err = s.IngestMail(ctx, dsn)
	if err != nil || res.Disposition != tickets.DispositionBounce || res.TicketID != first.TicketID {
		t.Fatalf("bounce: %+v, %v", res, err)
	}
	b, bouncing, err := s.Bouncing(ctx, "ana@example.org")
	if err != nil || !bouncing || b.LastStatus != "5.1.1" || b.Bounces != 1 {
		t.Errorf("bouncing address: %+v %v %v", b, bouncing, err)
	}
	if n := count(t, pool, `SELECT count(*) FROM outbox WHERE message_id = $1 AND bounced_at IS NOT NULL`, ackID); n != 1 {
		t.Error("the bounced acknowledgement is not marked")
	}
	// A delay is recorded, but marks no address.
	delayed := inbound(d, "delay@mx.example.org", "Delayed")
	delayed.Automatic = "null return path"
	delayed.Bounce = &tickets.Bounce{OriginalMessageID: ackID, Recipients: []tickets.BouncedRecipient{{Address: "other@example.org", Action: "delayed", Status: "4.4.1"}}}
	if res, err := s.IngestMail(ctx, delayed); err != nil || res.Disposition != tickets.DispositionBounce {
		t.Fatalf("delay: %+v, %v", res, err)
	}
	if _, bouncing, _ := s.Bouncing(ctx, "other@example.org"); bouncing {
		t.Error("a delayed delivery marked the address as bouncing")
	}
	// A report about a mail we never sent opens nothing and is kept.
	stray := inbound(d, "stray@mx.example.org", "Delivery failed")
	stray.Automatic = "null return path"
	stray.Bounce = &tickets.Bounce{OriginalMessageID: "never-sent@example.com"}
	res, err = s.IngestMail(ctx, stray)
	if err != nil || res.Disposition != tickets.DispositionQuarantined || res.Reason == "" {
		t.Fatalf("stray bounce: %+v, %v", res, err)
	}
	if n := count(t, pool, `SELECT count(*) FROM tickets`); n != 1 {
		t.Errorf("%d tickets, want 1", n)
	}
	if n := count(t, pool, `SELECT count(*) FROM ticket_history WHERE ticket_id = $1 AND action IN ('auto_reply', 'delivery_failed')`, first.TicketID); n != 3 {
		t.Errorf("%d history rows for the automatic answer and the reports, want 3", n)
	}
}

func TestPerSenderLimitsQuarantine(t *testing.T) {
	limits := tickets.Limits{TicketsPerSender: 3, AcksPerAddress: 2, RepliesPerTicket: 2, RepliesPerSender: 100}
	s, pool, d := newStore(t, tickets.Options{Limits: limits})
	ctx := context.Background()
	// Mails in parallel share transactions and race for the counts.
	results := deliverAll(t, s, 6, func(i int) *tickets.InboundMail { return inbound(d, fmt.Sprintf("flood-%d@example.org", i), "spam") })
	byDisp := map[tickets.Disposition]int{}
	acks := 0
	for _, r := range results {
		byDisp[r.Disposition]++
		if r.AckQueued {
			acks++
		}
	}
	if byDisp[tickets.DispositionTicket] != 3 || byDisp[tickets.DispositionQuarantined] != 3 || acks != 2 {
		t.Errorf("dispositions %v with %d acks; want 3 tickets, 3 quarantined, 2 acks", byDisp, acks)
	}
	if n := count(t, pool, `SELECT count(*) FROM inbound WHERE disposition = 'quarantined' AND reason LIKE 'more than 3 new tickets%'`); n != 3 {
		t.Errorf("%d quarantined with the limit as reason, want 3", n)
	}

	// Replies to one ticket: two are held, the rest quarantined.
	var ackID string
	var ticketID int64
	for _, r := range results {
		if r.AckQueued {
			out, _ := s.OutboxForTicket(ctx, r.TicketID)
			ackID, ticketID = out[0].MessageID, r.TicketID
			break
		}
	}
	results = deliverAll(t, s, 5, func(i int) *tickets.InboundMail {
		return reply(d, fmt.Sprintf("re-%d@example.org", i), fmt.Sprintf("forger%d@example.net", i), ackID)
	})
	held := 0
	for _, r := range results {
		if r.Disposition == tickets.DispositionDraft {
			held++
		}
	}
	if held != 2 || count(t, pool, `SELECT count(*) FROM outbox WHERE kind = 'draft_notice' AND ticket_id = $1`, ticketID) != 2 {
		t.Errorf("%d replies held; want 2 with 2 notices", held)
	}
}

func deliverAll(t *testing.T, s *tickets.Store, n int, mail func(int) *tickets.InboundMail) []tickets.IngestResult {
	t.Helper()
	results := make([]tickets.IngestResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { results[i], errs[i] = s.IngestMail(context.Background(), mail(i)) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return results
}

func TestDMARCFailureOpensTicketWithoutAck(t *testing.T) {
	s, _, d := newStore(t, tickets.Options{})
	in := inbound(d, "forged@example.org", "hola")
	in.Auth = tickets.Auth{SPF: "fail", DKIM: "none", DMARC: "fail", Detail: "dmarc=fail (from=example.org p=reject)"}
	res, err := s.IngestMail(context.Background(), in)
	if err != nil || res.Disposition != tickets.DispositionTicket || res.AckQueued {
		t.Fatalf("DMARC failure: %+v, %v", res, err)
	}
	e, err := s.InboundMailEntry(context.Background(), res.InboundID)
	if err != nil || e.AuthDMARC != "fail" || e.AuthSPF != "fail" || e.AuthDetail == "" {
		t.Errorf("stored verdicts: %+v, %v", e, err)
	}
}

func TestReleaseFromQuarantine(t *testing.T) {
	s, pool, d := newStore(t, tickets.Options{Limits: tickets.Limits{TicketsPerSender: 1}})
	ctx := context.Background()
	openTicket(t, s, d, "one@example.org")
	in := inbound(d, "two@example.org", "segunda")
	res, err := s.IngestMail(ctx, in)
	if err != nil || res.Disposition != tickets.DispositionQuarantined {
		t.Fatalf("second mail: %+v, %v", res, err)
	}
	list, err := s.Inbound(ctx, tickets.InboundFilter{Disposition: tickets.DispositionQuarantined})
	if err != nil || len(list) != 1 || list[0].ID != res.InboundID || list[0].Reason == "" || list[0].Department != "soporte" {
		t.Fatalf("quarantine list: %+v, %v", list, err)
	}
	rel, err := s.ReleaseInbound(ctx, res.InboundID, in)
	if err != nil || rel.TicketID == 0 || rel.TrackingID == "" || !rel.AckQueued {
		t.Fatalf("release: %+v, %v", rel, err)
	}
	if _, err := s.ReleaseInbound(ctx, res.InboundID, in); !errors.Is(err, tickets.ErrConflict) {
		t.Errorf("releasing twice: %v", err)
	}
	if n := count(t, pool, `SELECT count(*) FROM inbound WHERE id = $1 AND disposition = 'ticket' AND ticket_id = $2`, res.InboundID, rel.TicketID); n != 1 {
		t.Error("the log does not say the mail became the ticket")
	}
	// Delivered again later, it is the duplicate of the released mail.
	again, err := s.IngestMail(ctx, inbound(d, "two@example.org", "segunda"))
	if err != nil || again.Disposition != tickets.DispositionDuplicate || again.TicketID != rel.TicketID {
		t.Errorf("redelivery after release: %+v, %v", again, err)
	}
}

// The ack bound is shared by web and mail tickets of one address.
func TestAckLimitSharedByWebAndMail(t *testing.T) {
	s, pool, d := newStore(t, tickets.Options{Limits: tickets.Limits{AcksPerAddress: 2}})
	ctx := context.Background()
	if _, err := s.SubmitTicket(ctx, webTicket("ana@example.org")); err != nil {
		t.Fatal(err)
	}
	openTicket(t, s, d, "m1@example.org")
	res, err := s.IngestMail(ctx, inbound(d, "m2@example.org", "tercera"))
	if err != nil || res.AckQueued {
		t.Fatalf("third ticket: %+v, %v", res, err)
	}
	if n := countAcks(t, pool); n != 2 {
		t.Errorf("%d acknowledgements, want 2", n)
	}
}

func countAcks(t *testing.T, pool *pgxpool.Pool) int {
	return count(t, pool, `SELECT count(*) FROM outbox WHERE kind = 'ack'`)
}
