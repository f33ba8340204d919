package mailin

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/helpdeskgw/helpdesk/tickets"
)

// Metrics counts what mail intake does. A nil *Metrics counts nothing.
type Metrics struct {
	received    *prometheus.CounterVec
	ingest      *prometheus.HistogramVec
	smtpReplies *prometheus.CounterVec
}

// NewMetrics creates mail intake's metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "helpdesk_mail_received_total",
			Help: "Mails received, per department copy, by source (smtp, imap) and what became of them.",
		}, []string{"source", "disposition"}),
		ingest: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "helpdesk_mail_ingest_seconds",
			Help:    "Time from a mail's arrival to its commit (parse, classify, store), by source.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"source"}),
		smtpReplies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "helpdesk_smtp_replies_total",
			Help: "Replies of the SMTP listener to RCPT and DATA, and to connections refused, by code.",
		}, []string{"command", "code"}),
	}
	reg.MustRegister(m.received, m.ingest, m.smtpReplies)
	return m
}

func (m *Metrics) mailStored(source string, res tickets.IngestResult) {
	if m != nil {
		m.received.WithLabelValues(source, string(res.Disposition)).Inc()
	}
}

func (m *Metrics) ingestTook(source string, d time.Duration) {
	if m != nil {
		m.ingest.WithLabelValues(source).Observe(d.Seconds())
	}
}

// smtpReply counts the reply an error from a session becomes (nil is 250;
// go-smtp turns any error but a bare *smtp.SMTPError into 554).
func (m *Metrics) smtpReply(command string, err error) {
	if m == nil {
		return
	}
	code := 250
	var smtpErr *smtp.SMTPError
	switch {
	case err == nil:
	case errors.As(err, &smtpErr) && smtpErr == err:
		code = smtpErr.Code
	default:
		code = 554
	}
	m.smtpReplies.WithLabelValues(command, strconv.Itoa(code)).Inc()
}

// mailboxLister is what the mailbox metrics read.
type mailboxLister interface {
	Mailboxes(ctx context.Context) ([]tickets.Mailbox, error)
}

// mailboxCollector reports each mailbox's state and the age of its last
// success, read from the database at each scrape: every instance reports
// every mailbox, whichever instance polls it.
type mailboxCollector struct {
	store     mailboxLister
	state     *prometheus.Desc
	lastOK    *prometheus.Desc
	ingested  *prometheus.Desc
	scrapeErr *prometheus.Desc
}

// NewMailboxCollector returns the collector of the IMAP mailboxes' states.
func NewMailboxCollector(store mailboxLister) prometheus.Collector {
	return &mailboxCollector{
		store: store,
		state: prometheus.NewDesc("helpdesk_imap_mailbox_state",
			"1 for the state each department's mailbox is in (waiting, connecting, connected, idling, polling, error, disabled).",
			[]string{"department", "state"}, nil),
		lastOK: prometheus.NewDesc("helpdesk_imap_last_success_age_seconds",
			"Seconds since the mailbox was last read successfully (absent before the first success).",
			[]string{"department"}, nil),
		ingested: prometheus.NewDesc("helpdesk_imap_mailbox_ingested_total",
			"Mails taken from the mailbox since it was attached.", []string{"department"}, nil),
		scrapeErr: prometheus.NewDesc("helpdesk_imap_mailbox_scrape_error",
			"1 when the mailboxes could not be read from the database for this scrape.", nil, nil),
	}
}

func (c *mailboxCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.state
	ch <- c.lastOK
	ch <- c.ingested
	ch <- c.scrapeErr
}

func (c *mailboxCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	list, err := c.store.Mailboxes(ctx)
	failed := 0.0
	if err != nil {
		failed = 1
	}
	ch <- prometheus.MustNewConstMetric(c.scrapeErr, prometheus.GaugeValue, failed)
	for _, mb := range list {
		dept := mb.Department.Slug
		ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, 1, dept, string(mb.State))
		ch <- prometheus.MustNewConstMetric(c.ingested, prometheus.CounterValue, float64(mb.Ingested), dept)
		if !mb.LastSuccessAt.IsZero() {
			ch <- prometheus.MustNewConstMetric(c.lastOK, prometheus.GaugeValue, time.Since(mb.LastSuccessAt).Seconds(), dept)
		}
	}
}
