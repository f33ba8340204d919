package main

import (
	"context"
	"strconv"

	"github.com/helpdeskgw/helpdesk/bench/internal/benchkit"
)

// gatewayConfig is how one gateway process is started.
type gatewayConfig struct {
	bin         string
	databaseURL string
	mailOut     string // HELPDESK_MAIL_OUT: where the acknowledgements go
	logPath     string
	// maxMessageBytes is HELPDESK_MAX_MESSAGE_BYTES; zero keeps the default.
	maxMessageBytes int64
}

// gateway is a running `helpdesk serve --demo` with its SMTP listener.
type gateway struct {
	*benchkit.Gateway
	smtpAddr string
}

// startGateway starts the gateway on free loopback ports and waits until
// /readyz answers.
func startGateway(ctx context.Context, cfg gatewayConfig) (*gateway, error) {
	smtpAddr, err := benchkit.FreeAddr()
	if err != nil {
		return nil, err
	}
	httpAddr, err := benchkit.FreeAddr()
	if err != nil {
		return nil, err
	}
	env := []string{
		"HELPDESK_DATABASE_URL=" + cfg.databaseURL,
		"HELPDESK_SMTP_ADDR=" + smtpAddr,
		"HELPDESK_HTTP_ADDR=" + httpAddr,
		"HELPDESK_MAIL_OUT=" + cfg.mailOut,
		// The per-mail info line would otherwise dominate.
		"HELPDESK_LOG_LEVEL=warn",
	}
	if cfg.maxMessageBytes > 0 {
		env = append(env, "HELPDESK_MAX_MESSAGE_BYTES="+strconv.FormatInt(cfg.maxMessageBytes, 10))
	}
	g, err := benchkit.StartGateway(ctx, cfg.bin, httpAddr, cfg.logPath, env, "serve", "--demo")
	if err != nil {
		return nil, err
	}
	return &gateway{Gateway: g, smtpAddr: smtpAddr}, nil
}
