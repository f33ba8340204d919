package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// buildGateway builds the real binary into dir.
func buildGateway(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "helpdesk")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/helpdesk")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/helpdesk: %w\n%s", err, out)
	}
	return bin, nil
}

// gatewayConfig is how one gateway process is started.
type gatewayConfig struct {
	bin         string
	databaseURL string
	mailOut     string // HELPDESK_MAIL_OUT: where the acknowledgements go
	logPath     string
	// maxMessageBytes is HELPDESK_MAX_MESSAGE_BYTES; zero keeps the default.
	maxMessageBytes int64
}

// gateway is a running `helpdesk serve --demo`.
type gateway struct {
	cmd      *exec.Cmd
	smtpAddr string
	httpAddr string
	logPath  string
	exited   chan struct{}
	waitErr  error
}

// startGateway starts the gateway on free loopback ports and waits until
// /readyz answers.
func startGateway(ctx context.Context, cfg gatewayConfig) (*gateway, error) {
	smtpAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	httpAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	logFile, err := os.OpenFile(cfg.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("gateway log: %w", err)
	}
	defer logFile.Close()
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
	cmd := exec.Command(cfg.bin, "serve", "--demo")
	cmd.Env = append(environWithout("HELPDESK_"), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group: a Ctrl-C reaches the benchmark, which stops
	// the gateway before the database.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start gateway: %w", err)
	}
	g := &gateway{cmd: cmd, smtpAddr: smtpAddr, httpAddr: httpAddr, logPath: cfg.logPath, exited: make(chan struct{})}
	go func() {
		g.waitErr = cmd.Wait()
		close(g.exited)
	}()
	if err := g.waitReady(ctx, time.Minute); err != nil {
		g.stop()
		return nil, err
	}
	return g, nil
}

func (g *gateway) pid() int { return g.cmd.Process.Pid }

func (g *gateway) waitReady(ctx context.Context, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	url := "http://" + g.httpAddr + "/readyz"
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("gateway readiness: %w", err)
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-g.exited:
			return fmt.Errorf("gateway exited before it was ready (%v):\n%s", g.waitErr, g.logTail())
		case <-ctx.Done():
			return fmt.Errorf("gateway not ready at %s: %w\n%s", url, ctx.Err(), g.logTail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop shuts the gateway down gracefully, killing it if it takes longer
// than its own shutdown deadline.
func (g *gateway) stop() error {
	select {
	case <-g.exited:
		return g.exitError()
	default:
	}
	g.cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck // exited meanwhile; Wait says
	select {
	case <-g.exited:
		return g.exitError()
	case <-time.After(45 * time.Second):
		g.cmd.Process.Kill() //nolint:errcheck // see above
		<-g.exited
		return fmt.Errorf("gateway did not stop within 45 s; killed\n%s", g.logTail())
	}
}

func (g *gateway) exitError() error {
	if g.waitErr != nil {
		return fmt.Errorf("gateway: %w\n%s", g.waitErr, g.logTail())
	}
	return nil
}

// logTail is the end of the gateway's log, for error messages.
func (g *gateway) logTail() string {
	b, err := os.ReadFile(g.logPath)
	if err != nil {
		return ""
	}
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return strings.TrimSpace(string(b))
}

// warnings counts the lines the gateway logged (at warn level and above).
func (g *gateway) warnings() int {
	b, err := os.ReadFile(g.logPath)
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "level=WARN") + strings.Count(string(b), "level=ERROR")
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// environWithout is the environment minus the variables with prefix.
func environWithout(prefix string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, prefix) {
			out = append(out, kv)
		}
	}
	return out
}

// moduleRoot finds the directory of the helpdesk module's go.mod, from the
// working directory up.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/helpdeskgw/helpdesk\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run from inside the helpdesk module (its go.mod was not found)")
		}
		dir = parent
	}
}
