package main

import (
	"context"
	"path/filepath"

	"github.com/helpdeskgw/helpdesk/bench/internal/benchkit"
)

// migrate applies the schema with the binary's own command.
func migrate(ctx context.Context, bin, databaseURL string) error {
	return benchkit.RunCommand(ctx, bin, []string{"HELPDESK_DATABASE_URL=" + databaseURL}, "migrate")
}

// startGateway runs `helpdesk serve` with its web server on a free
// loopback port and the SMTP listener off.
func startGateway(ctx context.Context, bin, databaseURL, dir string) (*benchkit.Gateway, error) {
	httpAddr, err := benchkit.FreeAddr()
	if err != nil {
		return nil, err
	}
	env := []string{
		"HELPDESK_DATABASE_URL=" + databaseURL,
		"HELPDESK_HTTP_ADDR=" + httpAddr,
		"HELPDESK_SMTP_ADDR=",
		"HELPDESK_MAIL_OUT=file://" + filepath.Join(dir, "outbox"),
		// The load generator stands for many visitors: it is a trusted
		// proxy naming each in X-Forwarded-For, so that the per-client
		// rate limits see many clients rather than one.
		"HELPDESK_TRUSTED_PROXIES=127.0.0.1/32",
		// An info line per request would be measured too.
		"HELPDESK_LOG_LEVEL=warn",
	}
	return benchkit.StartGateway(ctx, bin, httpAddr, filepath.Join(dir, "gateway.log"), env, "serve")
}
