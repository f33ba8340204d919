package mailin

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/helpdeskgw/helpdesk/tickets"
)

// quarantineStore is what releasing quarantined mail needs of the store.
type quarantineStore interface {
	InboundMailEntry(ctx context.Context, id int64) (tickets.InboundEntry, error)
	WriteBlob(ctx context.Context, sum []byte, w io.Writer) error
	ReleaseInbound(ctx context.Context, id int64, in *tickets.InboundMail) (tickets.IngestResult, error)
}

// Release opens a ticket for a quarantined mail of the inbound log. The
// mail is read again from its raw source; the verdicts on its sender are
// the ones recorded when it arrived.
func (r *Receiver) Release(ctx context.Context, store quarantineStore, id int64) (tickets.IngestResult, error) {
	e, err := store.InboundMailEntry(ctx, id)
	if err != nil {
		return tickets.IngestResult{}, err
	}
	d, err := r.departmentBySlug(ctx, e.Department)
	if err != nil {
		return tickets.IngestResult{}, err
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(store.WriteBlob(ctx, e.RawSHA256, pw)) }()
	raw, release, err := spool(pr, r.tmpDir)
	pr.Close()
	defer release()
	if err != nil {
		return tickets.IngestResult{}, fmt.Errorf("read raw source of inbound mail %d: %w", id, err)
	}
	env := Envelope{Source: e.Source, SourceRef: e.SourceRef, From: e.EnvelopeFrom, NullSender: e.EnvelopeFrom == "" && e.Source == "smtp"}
	m, err := r.read(&env, raw)
	if err != nil {
		return tickets.IngestResult{}, err
	}
	defer m.parsed.Close()
	m.auth = tickets.Auth{SPF: e.AuthSPF, DKIM: e.AuthDKIM, DMARC: e.AuthDMARC, Detail: e.AuthDetail}
	res, err := store.ReleaseInbound(ctx, id, m.inbound(env, d, raw))
	if err != nil {
		return res, err
	}
	r.log.Info("mail released from quarantine", "inbound", id, "message_id", e.MessageID, "ticket", res.TrackingID, "ack", res.AckQueued)
	return res, nil
}

func (r *Receiver) departmentBySlug(ctx context.Context, slug string) (tickets.Department, error) {
	list, err := r.store.Departments(ctx)
	if err != nil {
		return tickets.Department{}, err
	}
	for _, d := range list {
		if strings.EqualFold(d.Slug, slug) {
			return d, nil
		}
	}
	return tickets.Department{}, fmt.Errorf("department %q: %w", slug, tickets.ErrNotFound)
}
