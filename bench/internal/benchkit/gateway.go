package benchkit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// BuildGateway builds the real binary into dir.
func BuildGateway(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "helpdesk")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/helpdesk")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/helpdesk: %w\n%s", err, out)
	}
	return bin, nil
}

// Gateway is a running `helpdesk serve`, a process of its own. Its methods
// are called from one goroutine at a time.
type Gateway struct {
	HTTPAddr string
	bin      string
	args     []string
	env      []string
	logPath  string

	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
}

// StartGateway runs the binary with args and the given environment
// variables (HELPDESK_* from this process's environment are not passed on;
// a variable named in env replaces the inherited one), its output going to
// logPath, and waits until /readyz at httpAddr answers.
func StartGateway(ctx context.Context, bin, httpAddr, logPath string, env []string, args ...string) (*Gateway, error) {
	g := &Gateway{HTTPAddr: httpAddr, bin: bin, args: args, env: env, logPath: logPath}
	if err := g.start(ctx); err != nil {
		return nil, err
	}
	return g, nil
}

func (g *Gateway) start(ctx context.Context) error {
	logFile, err := os.OpenFile(g.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("gateway log: %w", err)
	}
	defer logFile.Close()
	cmd := exec.Command(g.bin, g.args...)
	cmd.Env = append(environWithout("HELPDESK_"), g.env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group: a Ctrl-C reaches the benchmark, which stops
	// the gateway before the database.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start gateway: %w", err)
	}
	exited := make(chan struct{})
	g.cmd, g.exited, g.waitErr = cmd, exited, nil
	go func() {
		g.waitErr = cmd.Wait()
		close(exited)
	}()
	if err := g.waitReady(ctx, time.Minute); err != nil {
		g.Stop() //nolint:errcheck // the readiness error says more
		return err
	}
	return nil
}

// Kill ends the gateway with SIGKILL, as a crash or the OOM killer would:
// no shutdown, connections dropped mid-command. It returns once the process
// has exited.
func (g *Gateway) Kill() error {
	select {
	case <-g.exited:
		return errors.New("kill gateway: it is not running")
	default:
	}
	if err := g.cmd.Process.Kill(); err != nil {
		return fmt.Errorf("kill gateway: %w", err)
	}
	<-g.exited
	return nil
}

// Restart starts the gateway again after Kill or Stop: the same binary,
// arguments, environment, addresses and log, and waits until it is ready.
func (g *Gateway) Restart(ctx context.Context) error {
	select {
	case <-g.exited:
	default:
		return errors.New("restart gateway: it is still running")
	}
	return g.start(ctx)
}

// RunCommand runs the binary once (migrate, say) with the given HELPDESK_*
// variables.
func RunCommand(ctx context.Context, bin string, env []string, args ...string) error {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(environWithout("HELPDESK_"), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("helpdesk %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// PID is the gateway's process ID.
func (g *Gateway) PID() int { return g.cmd.Process.Pid }

func (g *Gateway) waitReady(ctx context.Context, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	url := "http://" + g.HTTPAddr + "/readyz"
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
			return fmt.Errorf("gateway exited before it was ready (%v):\n%s", g.waitErr, g.LogTail())
		case <-ctx.Done():
			return fmt.Errorf("gateway not ready at %s: %w\n%s", url, ctx.Err(), g.LogTail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop shuts the gateway down gracefully, killing it if it takes longer
// than its own shutdown deadline.
func (g *Gateway) Stop() error {
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
		return fmt.Errorf("gateway did not stop within 45 s; killed\n%s", g.LogTail())
	}
}

func (g *Gateway) exitError() error {
	if g.waitErr != nil {
		return fmt.Errorf("gateway: %w\n%s", g.waitErr, g.LogTail())
	}
	return nil
}

// LogTail is the end of the gateway's log, for error messages.
func (g *Gateway) LogTail() string {
	b, err := os.ReadFile(g.logPath)
	if err != nil {
		return ""
	}
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return strings.TrimSpace(string(b))
}

// Problems counts the lines the gateway logged at warn level and above.
func (g *Gateway) Problems() int {
	b, err := os.ReadFile(g.logPath)
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "level=WARN") + strings.Count(string(b), "level=ERROR")
}

// FreeAddr is a loopback address with a port free at the moment.
func FreeAddr() (string, error) {
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

// ModuleRoot finds the directory of the helpdesk module's go.mod, from the
// working directory up.
func ModuleRoot() (string, error) {
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
