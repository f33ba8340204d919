package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/helpdeskgw/helpdesk/internal/oauth"
	"github.com/helpdeskgw/helpdesk/mailout"
	"github.com/helpdeskgw/helpdesk/tickets"
)

// Config is the process's configuration, read from the environment.
type Config struct {
	DatabaseURL string `env:"HELPDESK_DATABASE_URL"`
	HTTPAddr    string `env:"HELPDESK_HTTP_ADDR" envDefault:"127.0.0.1:8080"`
	// SMTPAddr is read by hand: set and empty disables the listener, which
	// env's defaults cannot express.
	SMTPAddr        string        `env:"-"`
	BaseURL         string        `env:"HELPDESK_BASE_URL" envDefault:"http://localhost:8080"`
	MailOut         string        `env:"HELPDESK_MAIL_OUT" envDefault:"file://./.data/outbox"`
	From            string        `env:"HELPDESK_FROM"`
	LogFormat       string        `env:"HELPDESK_LOG_FORMAT" envDefault:"text"`
	LogLevel        string        `env:"HELPDESK_LOG_LEVEL" envDefault:"info"`
	SMTPHostname    string        `env:"HELPDESK_SMTP_HOSTNAME"`
	MaxMessageBytes int64         `env:"HELPDESK_MAX_MESSAGE_BYTES" envDefault:"26214400"`
	TokenTTL        time.Duration `env:"HELPDESK_TOKEN_TTL" envDefault:"2160h"`
	DBMaxConns      int32         `env:"HELPDESK_DB_MAX_CONNS" envDefault:"30"`
	SMTPMaxConns    int           `env:"HELPDESK_SMTP_MAX_CONNS" envDefault:"500"`
	TrustedProxies  []string      `env:"HELPDESK_TRUSTED_PROXIES" envSeparator:","`
	ShutdownTimeout time.Duration `env:"HELPDESK_SHUTDOWN_TIMEOUT" envDefault:"30s"`
	// The web page's limits on what a form may carry, and how long a
	// visitor's access to their tickets lasts unused.
	MaxAttachments     int           `env:"HELPDESK_MAX_ATTACHMENTS" envDefault:"5"`
	MaxAttachmentBytes int64         `env:"HELPDESK_MAX_ATTACHMENT_BYTES" envDefault:"10485760"`
	MaxUploadBytes     int64         `env:"HELPDESK_MAX_UPLOAD_BYTES" envDefault:"26214400"`
	SessionTTL         time.Duration `env:"HELPDESK_SESSION_TTL" envDefault:"72h"`
	StaffSessionTTL    time.Duration `env:"HELPDESK_STAFF_SESSION_TTL" envDefault:"12h"`
	// What mail from one address may make the helpdesk do in an hour;
	// past it, mail is quarantined or left unanswered.
	SenderTicketsPerHour int           `env:"HELPDESK_SENDER_TICKETS_PER_HOUR" envDefault:"20"`
	SenderAcksPerHour    int           `env:"HELPDESK_SENDER_ACKS_PER_HOUR" envDefault:"5"`
	TicketRepliesPerHour int           `env:"HELPDESK_TICKET_REPLIES_PER_HOUR" envDefault:"5"`
	SenderRepliesPerHour int           `env:"HELPDESK_SENDER_REPLIES_PER_HOUR" envDefault:"10"`
	DraftTTL             time.Duration `env:"HELPDESK_DRAFT_TTL" envDefault:"168h"`
	RawRetention         time.Duration `env:"HELPDESK_RAW_RETENTION" envDefault:"2160h"`
	CheckSenderAuth      bool          `env:"HELPDESK_SMTP_CHECK_AUTH" envDefault:"true"`
	TrustedAuthServIDs   []string      `env:"HELPDESK_TRUSTED_AUTHSERV_IDS" envSeparator:","`
	MetricsAllowed       []string      `env:"HELPDESK_METRICS_ALLOW" envSeparator:","`
	// SecretKey seals the OAuth2 tokens of mailboxes at rest: 32 bytes,
	// base64. Changing it means authorizing those mailboxes again.
	SecretKey string `env:"HELPDESK_SECRET_KEY"`
}

const defaultSMTPAddr = "127.0.0.1:2525"

// loadConfig reads the configuration from environ ("KEY=value" pairs) and
// checks it, naming the variable at fault. Only serve needs all of it; the
// other commands need the database.
func loadConfig(environ []string, forServe bool) (Config, error) {
	vars := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			vars[k] = v
		}
	}
	var cfg Config
	if err := env.ParseWithOptions(&cfg, env.Options{Environment: vars}); err != nil {
		return cfg, namedParseErrors(err)
	}
	cfg.SMTPAddr = defaultSMTPAddr
	if v, ok := vars["HELPDESK_SMTP_ADDR"]; ok {
		cfg.SMTPAddr = v
	}
	if cfg.SMTPHostname == "" {
		cfg.SMTPHostname, _ = os.Hostname()
	}
	if cfg.DatabaseURL == "" {
		return cfg, errors.New("HELPDESK_DATABASE_URL: not set; give a PostgreSQL URL such as postgres://user:pass@host:5432/helpdesk (make run starts a local database and sets it)")
	}
	if !forServe {
		return cfg, nil
	}
	return cfg, cfg.validate()
}

// namedParseErrors rewrites env's errors, which name struct fields, to name
// the variables a person sets.
func namedParseErrors(err error) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return fmt.Errorf("configuration: %w", err)
	}
	errs := make([]error, 0, len(agg.Errors))
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) {
			if f, ok := reflect.TypeFor[Config]().FieldByName(pe.Name); ok {
				name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
				errs = append(errs, fmt.Errorf("%s: %w", name, pe.Err))
				continue
			}
		}
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}

func (c Config) validate() error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		bad("HELPDESK_HTTP_ADDR", "%q is not host:port", c.HTTPAddr)
	}
	if c.SMTPAddr != "" {
		if _, _, err := net.SplitHostPort(c.SMTPAddr); err != nil {
			bad("HELPDESK_SMTP_ADDR", "%q is not host:port (empty disables the listener)", c.SMTPAddr)
		}
	}
	if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("HELPDESK_BASE_URL", "%q is not an http(s) URL", c.BaseURL)
	}
	if _, err := mailout.NewSender(c.MailOut); err != nil {
		bad("HELPDESK_MAIL_OUT", "%v", err)
	}
	if c.SecretKey != "" {
		if _, err := oauth.ParseKey(c.SecretKey); err != nil {
			errs = append(errs, err) // it names the variable
		}
	} else if slug := mailout.RelayOAuthMailbox(c.MailOut); slug != "" {
		bad("HELPDESK_SECRET_KEY", "not set, but HELPDESK_MAIL_OUT logs in with the OAuth2 tokens of the mailbox of %s; generate one with: openssl rand -base64 32", slug)
	}
	if c.From != "" && (!strings.Contains(c.From, "@") || strings.ContainsAny(c.From, " <>")) {
		bad("HELPDESK_FROM", "%q is not a plain address", c.From)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("HELPDESK_LOG_FORMAT", "%q: want text or json", c.LogFormat)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		bad("HELPDESK_LOG_LEVEL", "%q: want debug, info, warn or error", c.LogLevel)
	}
	if c.MaxMessageBytes < 1<<10 {
		bad("HELPDESK_MAX_MESSAGE_BYTES", "%d is too small", c.MaxMessageBytes)
	}
	if c.TokenTTL < time.Hour {
		bad("HELPDESK_TOKEN_TTL", "%s is shorter than an hour", c.TokenTTL)
	}
	if c.DBMaxConns < 8 {
		bad("HELPDESK_DB_MAX_CONNS", "%d: want at least 8 (mail in, mail out and the web share it)", c.DBMaxConns)
	}
	if c.SMTPMaxConns < 1 {
		bad("HELPDESK_SMTP_MAX_CONNS", "%d: want at least 1", c.SMTPMaxConns)
	}
	if _, err := c.trustedProxies(); err != nil {
		bad("HELPDESK_TRUSTED_PROXIES", "%v", err)
	}
	if _, err := c.metricsAllow(); err != nil {
		bad("HELPDESK_METRICS_ALLOW", "%v", err)
	}
	if c.ShutdownTimeout <= 0 {
		bad("HELPDESK_SHUTDOWN_TIMEOUT", "%s: want a positive duration", c.ShutdownTimeout)
	}
	if c.MaxAttachments < 1 {
		bad("HELPDESK_MAX_ATTACHMENTS", "%d: want at least 1", c.MaxAttachments)
	}
	if c.MaxAttachmentBytes < 1<<10 {
		bad("HELPDESK_MAX_ATTACHMENT_BYTES", "%d is too small", c.MaxAttachmentBytes)
	}
	if c.MaxUploadBytes < c.MaxAttachmentBytes {
		bad("HELPDESK_MAX_UPLOAD_BYTES", "%d is less than HELPDESK_MAX_ATTACHMENT_BYTES (%d)", c.MaxUploadBytes, c.MaxAttachmentBytes)
	}
	if c.SessionTTL < time.Minute {
		bad("HELPDESK_SESSION_TTL", "%s is shorter than a minute", c.SessionTTL)
	}
	if c.StaffSessionTTL < time.Minute {
		bad("HELPDESK_STAFF_SESSION_TTL", "%s is shorter than a minute", c.StaffSessionTTL)
	}
	for _, l := range []struct {
		name string
		v    int
	}{
		{"HELPDESK_SENDER_TICKETS_PER_HOUR", c.SenderTicketsPerHour}, {"HELPDESK_SENDER_ACKS_PER_HOUR", c.SenderAcksPerHour},
		{"HELPDESK_TICKET_REPLIES_PER_HOUR", c.TicketRepliesPerHour}, {"HELPDESK_SENDER_REPLIES_PER_HOUR", c.SenderRepliesPerHour},
	} {
		if l.v < 1 {
			bad(l.name, "%d: want at least 1", l.v)
		}
	}
	if c.RawRetention != 0 && c.RawRetention < 24*time.Hour {
		bad("HELPDESK_RAW_RETENTION", "%s: want 0 (keep for ever) or at least 24h", c.RawRetention)
	}
	if c.DraftTTL < time.Hour {
		bad("HELPDESK_DRAFT_TTL", "%s is shorter than an hour", c.DraftTTL)
	}
	return errors.Join(errs...)
}

func (c Config) logger() *slog.Logger {
	var lvl slog.Level
	lvl.UnmarshalText([]byte(c.LogLevel)) //nolint:errcheck // validated
	opts := &slog.HandlerOptions{Level: lvl}
	if c.LogFormat == "json" {
		// Durations as "1.5s", not as nanoseconds.
		opts.ReplaceAttr = func(_ []string, a slog.Attr) slog.Attr {
			if a.Value.Kind() == slog.KindDuration {
				a.Value = slog.StringValue(a.Value.Duration().String())
			}
			return a
		}
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// limits are the per-sender limits of the ticket store.
func (c Config) limits() tickets.Limits {
	return tickets.Limits{TicketsPerSender: c.SenderTicketsPerHour, AcksPerAddress: c.SenderAcksPerHour,
		RepliesPerTicket: c.TicketRepliesPerHour, RepliesPerSender: c.SenderRepliesPerHour, DraftTTL: c.DraftTTL}
}

// trustedProxies parses HELPDESK_TRUSTED_PROXIES: addresses or CIDR
// prefixes, comma-separated.
func (c Config) trustedProxies() ([]netip.Prefix, error) { return parsePrefixes(c.TrustedProxies) }

// metricsAllow parses HELPDESK_METRICS_ALLOW, the clients /metrics answers
// (nil, for the default, when unset).
func (c Config) metricsAllow() ([]netip.Prefix, error) { return parsePrefixes(c.MetricsAllowed) }

// parsePrefixes reads addresses or CIDR prefixes.
func parsePrefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range list {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		if p, err := netip.ParsePrefix(v); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(v)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a prefix such as 10.0.0.0/8", v)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}
