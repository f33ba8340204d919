// Package pgcluster runs a private PostgreSQL server with the system's
// initdb and pg_ctl: the local database of `make run`, and the throwaway one
// of the tests.
package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// Options says where and how to run the server.
type Options struct {
	// Dir is the data directory; initdb creates it when it holds no cluster.
	Dir string
	// Port to listen on at 127.0.0.1. Zero picks a free one for a new
	// cluster and keeps the one recorded for an existing one.
	Port int
	// Durable keeps fsync and synchronous_commit on. Tests turn them off.
	Durable bool
	// Install lets Start install Debian's postgresql package when the
	// binaries are missing (as root, with apt-get).
	Install bool
}

// Cluster is a running server.
type Cluster struct {
	dir  string
	bin  string
	port int
	opts Options
	cred *syscall.Credential
}

const portFile = "helpdesk-port"

// Start starts the server at opts.Dir, creating the cluster first if needed,
// or attaches to it if it already runs.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	bin, err := findBinaries(ctx, opts.Install)
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("data directory %s: %w", opts.Dir, err)
	}
	c := &Cluster{dir: dir, bin: bin, port: opts.Port, opts: opts}
	if os.Geteuid() == 0 {
		// initdb refuses to run as root, and the server must not.
		if c.cred, err = unprivilegedUser(); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		if err := c.initdb(ctx); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("data directory %s: %w", dir, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, portFile)); err == nil && opts.Port == 0 {
		c.port, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	if c.Running(ctx) {
		return c, nil
	}
	if err := c.start(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// URL is the connection URL of database db as the superuser.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
}

// Port is the TCP port the server listens on.
func (c *Cluster) Port() int { return c.port }

// Running reports whether the server is up.
func (c *Cluster) Running(ctx context.Context) bool {
	return c.pgctl(ctx, "status", "-D", c.dir) == nil
}

// Stop shuts the server down. Immediate skips the checkpoint: quicker, and
// what a crash looks like to the clients.
func (c *Cluster) Stop(ctx context.Context, immediate bool) error {
	mode := "fast"
	if immediate {
		mode = "immediate"
	}
	if err := c.pgctl(ctx, "stop", "-D", c.dir, "-m", mode, "-w"); err != nil {
		return fmt.Errorf("stop PostgreSQL at %s: %w", c.dir, err)
	}
	return nil
}

// Restart starts a stopped server again on the same port.
func (c *Cluster) Restart(ctx context.Context) error {
	if c.Running(ctx) {
		return nil
	}
	return c.start(ctx)
}

// Destroy stops the server and removes its data directory.
func (c *Cluster) Destroy(ctx context.Context) error {
	stopErr := c.Stop(ctx, true)
	if err := os.RemoveAll(c.dir); err != nil {
		return fmt.Errorf("remove %s: %w", c.dir, err)
	}
	return stopErr
}

func (c *Cluster) initdb(ctx context.Context) error {
	if err := c.makeDataDir(); err != nil {
		return err
	}
	args := []string{"-D", c.dir, "-U", "postgres", "--auth=trust", "-E", "UTF8"}
	if !c.opts.Durable {
		args = append(args, "--no-sync")
	}
	// C.UTF-8 keeps lower() and full-text search right for accented text;
	// fall back to no locale where it is missing.
	if err := c.run(ctx, "initdb", append(args, "--locale=C.UTF-8")...); err != nil {
		os.RemoveAll(c.dir) //nolint:errcheck // recreated below
		if err := c.makeDataDir(); err != nil {
			return err
		}
		if err2 := c.run(ctx, "initdb", append(args, "--no-locale")...); err2 != nil {
			hint := ""
			if c.cred != nil && strings.Contains(err2.Error(), "Permission denied") {
				hint = fmt.Sprintf("; the server runs as uid %d, which must be able to reach %s: move the checkout out of a private directory such as /root, or set HELPDESK_DATABASE_URL", c.cred.Uid, c.dir)
			}
			return fmt.Errorf("initdb %s: %w (with C.UTF-8: %v)%s", c.dir, err2, err, hint)
		}
	}
	return nil
}

// makeDataDir creates the data directory for the server's user. Its parents
// must let that user through: as root, the server runs as another user.
func (c *Cluster) makeDataDir() error {
	if err := os.MkdirAll(filepath.Dir(c.dir), 0o755); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	if err := os.Mkdir(c.dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create data directory: %w", err)
	}
	if c.cred != nil {
		if err := os.Chown(c.dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			return fmt.Errorf("hand data directory to uid %d: %w", c.cred.Uid, err)
		}
	}
	return nil
}

func (c *Cluster) start(ctx context.Context) error {
	if c.port == 0 {
		p, err := freePort()
		if err != nil {
			return err
		}
		c.port = p
	}
	if err := os.WriteFile(filepath.Join(c.dir, portFile), []byte(strconv.Itoa(c.port)+"\n"), 0o644); err != nil {
		return fmt.Errorf("record port: %w", err)
	}
	settings := []string{
		"-p " + strconv.Itoa(c.port),
		"-c listen_addresses=127.0.0.1",
		"-c unix_socket_directories=''",
		"-c max_connections=200",
	}
	if !c.opts.Durable {
		settings = append(settings, "-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off")
	}
	logFile := filepath.Join(c.dir, "server.log")
	if err := c.pgctl(ctx, "start", "-D", c.dir, "-w", "-t", "60", "-l", logFile, "-o", strings.Join(settings, " ")); err != nil {
		tail, _ := os.ReadFile(logFile)
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		return fmt.Errorf("start PostgreSQL at %s: %w\n%s", c.dir, err, tail)
	}
	return nil
}

func (c *Cluster) pgctl(ctx context.Context, args ...string) error {
	return c.run(ctx, "pg_ctl", args...)
}

func (c *Cluster) run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, name), args...)
	cmd.Dir = os.TempDir()
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// findBinaries returns the directory of initdb and pg_ctl: from PATH, else
// Debian's /usr/lib/postgresql/<version>/bin, installing the package if
// allowed.
func findBinaries(ctx context.Context, install bool) (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		return filepath.Dir(p), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return versionOf(b) - versionOf(a) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if !install {
		return "", errors.New("PostgreSQL's initdb was not found: install Debian's postgresql package (apt-get install postgresql)")
	}
	if os.Geteuid() != 0 {
		return "", errors.New("PostgreSQL's initdb was not found: run `sudo apt-get install postgresql`, then try again")
	}
	for _, args := range [][]string{{"install", "-y", "--no-install-recommends", "postgresql"}, {"update"}, {"install", "-y", "--no-install-recommends", "postgresql"}} {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if cmd.Run() == nil && args[0] == "install" {
			return findBinaries(ctx, false)
		}
	}
	return "", errors.New("installing Debian's postgresql package failed; install it by hand and try again")
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// unprivilegedUser is the account the server runs as when we are root:
// Debian's postgres, else nobody.
func unprivilegedUser() (*syscall.Credential, error) {
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, errors.New("running as root, and neither a postgres nor a nobody user exists to run PostgreSQL as")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
