package mailout

import (
	"context"
	"errors"
	"net"
	"os"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/helpdeskgw/helpdesk/tickets"
)

// Metrics counts what the sender does. A nil *Metrics counts nothing.
type Metrics struct {
	sent     *prometheus.CounterVec
	failures *prometheus.CounterVec
}

// NewMetrics creates the sender's metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "helpdesk_mail_sent_total",
			Help: "Mails sent, by kind (ack, reminder, draft_notice, answer, auto_resolved, agent_new_ticket, agent_customer_reply).",
		}, []string{"kind"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "helpdesk_mail_send_failures_total",
			Help: "Failed attempts to send a mail, by reason (rejected, deferred, connection, timeout, compose, other) " +
				"and outcome (retry, given_up).",
		}, []string{"reason", "outcome"}),
	}
	reg.MustRegister(m.sent, m.failures)
	return m
}

func (m *Metrics) recordSent(kind tickets.MailKind) {
	if m != nil {
		m.sent.WithLabelValues(string(kind)).Inc()
	}
}

func (m *Metrics) recordFailure(err error, givenUp bool) {
	if m == nil {
		return
	}
	outcome := "retry"
	if givenUp {
		outcome = "given_up"
	}
	m.failures.WithLabelValues(failureReason(err), outcome).Inc()
}

// errCompose marks a mail that could not be written.
var errCompose = errors.New("compose")

// failureReason sorts a send error into a few kinds a person can act on.
func failureReason(err error) string {
	var smtpErr *smtp.SMTPError
	var netErr net.Error
	switch {
	case errors.Is(err, errCompose):
		return "compose"
	case errors.As(err, &smtpErr) && smtpErr.Code >= 500:
		return "rejected"
	case errors.As(err, &smtpErr):
		return "deferred"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	case errors.As(err, &netErr):
		return "connection"
	}
	return "other"
}

// outboxReader is what the outbox metrics read.
type outboxReader interface {
	OutboxDepth(ctx context.Context) (tickets.OutboxDepth, error)
}

// outboxCollector reports the outbox's depth, read from the database at each
// scrape: the queue is shared by all instances.
type outboxCollector struct {
	store     outboxReader
	pending   *prometheus.Desc
	oldest    *prometheus.Desc
	failed    *prometheus.Desc
	scrapeErr *prometheus.Desc
}

// NewOutboxCollector returns the collector of the outbox's depth.
func NewOutboxCollector(store outboxReader) prometheus.Collector {
	return &outboxCollector{
		store:   store,
		pending: prometheus.NewDesc("helpdesk_outbox_pending", "Mails waiting to be sent (due or retrying).", nil, nil),
		oldest: prometheus.NewDesc("helpdesk_outbox_oldest_pending_age_seconds",
			"Age of the oldest mail waiting to be sent (0 when none waits).", nil, nil),
		failed: prometheus.NewDesc("helpdesk_outbox_failed", "Mails given up on, kept in the outbox for the staff.", nil, nil),
		scrapeErr: prometheus.NewDesc("helpdesk_outbox_scrape_error",
			"1 when the outbox could not be read from the database for this scrape.", nil, nil),
	}
}

func (c *outboxCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pending
	ch <- c.oldest
	ch <- c.failed
	ch <- c.scrapeErr
}

func (c *outboxCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	d, err := c.store.OutboxDepth(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.scrapeErr, prometheus.GaugeValue, 1)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.scrapeErr, prometheus.GaugeValue, 0)
	ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(d.Pending))
	age := 0.0
	if !d.OldestPending.IsZero() {
		age = time.Since(d.OldestPending).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age)
	ch <- prometheus.MustNewConstMetric(c.failed, prometheus.GaugeValue, float64(d.Failed))
}
