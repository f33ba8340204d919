// Package dovecot runs a private Dovecot IMAP server on loopback for
// integration tests: a throwaway configuration, users and maildirs in a
// temporary directory, and helpers that fill mailboxes and read them back.
//
// Dovecot refuses to touch mail as root, so when the tests run as root the
// mail belongs to Debian's dovenull user and the login and internal services
// run as dovenull and dovecot; otherwise everything runs as the current user.
package dovecot

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/big"
	"net"
	"net/mail"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// ErrNotInstalled says the dovecot binary was not found.
var ErrNotInstalled = errors.New("dovecot is not installed (Debian: apt-get install dovecot-imapd)")

// Options says which users the server has and how it behaves.
type Options struct {
	// Users maps each user name to its plaintext password.
	Users map[string]string
	// Capabilities, when set, replaces the capability list the server
	// announces after login (imap_capability), e.g. "IMAP4rev1 LITERAL+
	// UIDPLUS" to hide MOVE and IDLE. Dovecot only stops announcing what is
	// left out: it still executes MOVE or IDLE if a client sends them.
	Capabilities string
	// TLS adds an imaps listener (implicit TLS) with a self-signed
	// certificate for 127.0.0.1, and offers STARTTLS on the plain one.
	TLS bool
	// ExtraConfig is appended verbatim to the generated dovecot.conf.
	ExtraConfig string
	// OAuth2, when set, lets the users log in with OAuth2 access tokens
	// as well as their passwords.
	OAuth2 *OAuth2
}

// OAuth2 has Dovecot accept OAuth2 access tokens (XOAUTH2, OAUTHBEARER),
// checking each at a token introspection endpoint (RFC 7662) by POST. The
// endpoint must answer {"active": true, "username": USER} for a valid
// token of USER.
type OAuth2 struct {
	IntrospectionURL string
	// Mechanisms are those offered: "xoauth2", "oauthbearer" or both
	// (the default).
	Mechanisms []string
}

func (o *OAuth2) mechanisms() string {
	if len(o.Mechanisms) == 0 {
		return "xoauth2 oauthbearer"
	}
	return strings.Join(o.Mechanisms, " ")
}

// Server is a Dovecot instance with its own directory. It keeps its ports
// and mail across Stop, Kill and Restart.
type Server struct {
	bin     string
	dir     string
	opts    Options
	port    int
	tlsPort int
	cert    *x509.Certificate
	ids     identities

	mu      sync.Mutex
	proc    *process // nil while stopped
	seedSeq int
	closed  bool
}

// process is one run of the master; its services share its process group.
type process struct {
	cmd    *exec.Cmd
	pgid   int
	exited chan struct{}
	err    error // of cmd.Wait, valid once exited is closed
}

const (
	confName   = "dovecot.conf"
	logName    = "dovecot.log"
	stderrName = "stderr.log"
	usersName  = "users"
	oauth2Name = "oauth2.conf.ext"
	mailDir    = "mail"
)

// Start writes a configuration into a new temporary directory, starts
// Dovecot and returns once it greets clients.
func Start(ctx context.Context, opts Options) (*Server, error) {
	bin, err := findBinary()
	if err != nil {
		return nil, err
	}
	if err := checkUsers(opts.Users); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "helpdesk-dovecot-")
	if err != nil {
		return nil, fmt.Errorf("dovecot temp dir: %w", err)
	}
	opts.Users = maps.Clone(opts.Users)
	s := &Server{bin: bin, dir: dir, opts: opts}
	if err := s.prepare(); err != nil {
		os.RemoveAll(dir) //nolint:errcheck // nothing runs in it yet
		return nil, err
	}
	// A port picked free can be taken by someone else before Dovecot binds
	// it; pick again then, which only the first start may do.
	for attempt := 1; ; attempt++ {
		if err := s.pickPorts(); err != nil {
			os.RemoveAll(dir) //nolint:errcheck // nothing runs in it yet
			return nil, err
		}
		err = s.start(ctx)
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, errAddrInUse) || attempt == 3 {
			os.RemoveAll(dir) //nolint:errcheck // start left nothing running
			return nil, err
		}
	}
}

// StartT starts a server for a test and stops it and removes its directory
// when the test ends, printing Dovecot's log if the test failed. Without
// Dovecot the test is skipped, unless CI=true, where it fails.
func StartT(t testing.TB, opts Options) *Server {
	t.Helper()
	if _, err := findBinary(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v; CI=true requires it", err)
		}
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("start dovecot: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dovecot log (%s):\n%s", s.dir, s.Logs())
		}
		if err := s.Close(); err != nil {
			t.Errorf("close dovecot: %v", err)
		}
	})
	return s
}

// Addr is the plain IMAP listener, host:port on 127.0.0.1.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// TLSAddr is the imaps listener, or "" without Options.TLS.
func (s *Server) TLSAddr() string {
	if s.tlsPort == 0 {
		return ""
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.tlsPort))
}

// Certificate is the self-signed certificate of the imaps listener (valid
// for 127.0.0.1 and localhost), or nil without Options.TLS.
func (s *Server) Certificate() *x509.Certificate { return s.cert }

// Logs returns what Dovecot logged and wrote to stderr so far.
func (s *Server) Logs() string {
	var b strings.Builder
	for _, name := range []string{logName, stderrName} {
		data, err := os.ReadFile(filepath.Join(s.dir, name))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(&b, "[%s: %v]\n", name, err)
		}
		b.Write(data)
	}
	return b.String()
}

// Stop shuts Dovecot down gracefully (connected clients are disconnected)
// and returns once every one of its processes has exited and the port is
// closed. If ctx ends first, the processes are killed.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stop(ctx)
}

// Kill kills the master and all its processes at once with SIGKILL, the
// way a crash looks to clients: connections drop without a goodbye.
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.kill()
}

// Restart stops the server if it runs and starts it again on the same port
// with the same mail.
func (s *Server) Restart(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("restart dovecot: server closed")
	}
	if err := s.stop(ctx); err != nil {
		return err
	}
	return s.start(ctx)
}

// Close stops the server and removes its directory.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stopErr := s.stop(ctx)
	if err := os.RemoveAll(s.dir); err != nil {
		return errors.Join(stopErr, fmt.Errorf("remove dovecot dir: %w", err))
	}
	return stopErr
}

// identities are the accounts Dovecot's processes run as.
type identities struct {
	root          bool // we are root: Dovecot switches users, files need chown
	loginUser     string
	internalUser  string
	internalGroup string
	internalGID   int
	mailUID       int
	mailGID       int
}

// lookupIdentities picks Debian's dovenull and dovecot as root, the current
// user otherwise.
func lookupIdentities() (identities, error) {
	if os.Geteuid() == 0 {
		mail, err := user.Lookup("dovenull")
		if err != nil {
			return identities{}, fmt.Errorf("running as root, Dovecot needs Debian's dovenull user to own the mail: %w", err)
		}
		internal, err := user.Lookup("dovecot")
		if err != nil {
			return identities{}, fmt.Errorf("running as root, Dovecot needs Debian's dovecot user: %w", err)
		}
		group, err := user.LookupGroupId(internal.Gid)
		if err != nil {
			return identities{}, fmt.Errorf("group of the dovecot user: %w", err)
		}
		ids := identities{root: true, loginUser: mail.Username, internalUser: internal.Username, internalGroup: group.Name}
		ids.mailUID, _ = strconv.Atoi(mail.Uid)
		ids.mailGID, _ = strconv.Atoi(mail.Gid)
		ids.internalGID, _ = strconv.Atoi(internal.Gid)
		return ids, nil
	}
	me, err := user.Current()
	if err != nil {
		return identities{}, fmt.Errorf("current user: %w", err)
	}
	group, err := user.LookupGroupId(me.Gid)
	if err != nil {
		return identities{}, fmt.Errorf("current user's group: %w", err)
	}
	return identities{
		loginUser: me.Username, internalUser: me.Username, internalGroup: group.Name,
		internalGID: os.Getegid(), mailUID: os.Geteuid(), mailGID: os.Getegid(),
	}, nil
}

// prepare lays out the directory: users, mail root, certificate.
func (s *Server) prepare() error {
	// Dovecot does not unquote the args of passdb and userdb, and expands
	// % in them: the directory must need neither quotes nor escapes.
	if strings.ContainsFunc(s.dir, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-", r))
	}) {
		return fmt.Errorf("dovecot dir %s: Dovecot's paths take only ASCII letters, digits and / . _ -; point TMPDIR elsewhere", s.dir)
	}
	var err error
	if s.ids, err = lookupIdentities(); err != nil {
		return err
	}
	if s.ids.root {
		// The services run as other users, who must reach the directory.
		if err := os.Chmod(s.dir, 0o755); err != nil {
			return fmt.Errorf("dovecot dir: %w", err)
		}
		if err := reachableByOthers(s.dir); err != nil {
			return err
		}
	}
	if err := s.writeUsers(); err != nil {
		return err
	}
	if err := s.writeOAuth2(); err != nil {
		return err
	}
	if err := s.mkdirOwned(filepath.Join(s.dir, mailDir)); err != nil {
		return err
	}
	if s.opts.TLS {
		if err := s.writeCertificate(); err != nil {
			return err
		}
	}
	return nil
}

// writeUsers writes the passwd-file. Passwords go base64-encoded, so any
// byte (a colon included) survives the file format.
func (s *Server) writeUsers() error {
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(s.opts.Users)) {
		pass := base64.StdEncoding.EncodeToString([]byte(s.opts.Users[name]))
		fmt.Fprintf(&b, "%s:{PLAIN.BASE64}%s::::::\n", name, pass)
	}
	path := filepath.Join(s.dir, usersName)
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("dovecot users file: %w", err)
	}
	if s.ids.root {
		// The auth service reads it as the internal user.
		if err := os.Chown(path, 0, s.ids.internalGID); err != nil {
			return fmt.Errorf("dovecot users file: %w", err)
		}
		if err := os.Chmod(path, 0o640); err != nil {
			return fmt.Errorf("dovecot users file: %w", err)
		}
	}
	return nil
}

// writeOAuth2 writes the oauth2 passdb's settings, read by the auth
// service.
func (s *Server) writeOAuth2() error {
	o := s.opts.OAuth2
	if o == nil {
		return nil
	}
	if strings.ContainsAny(o.IntrospectionURL, "\r\n") || !strings.HasPrefix(o.IntrospectionURL, "http") {
		return fmt.Errorf("dovecot OAuth2: introspection URL %q: want one http(s) URL", o.IntrospectionURL)
	}
	conf := "introspection_url = " + o.IntrospectionURL + "\n" +
		"introspection_mode = post\n" +
		"username_attribute = username\n" +
		"active_attribute = active\n" +
		"active_value = true\n"
	if err := os.WriteFile(filepath.Join(s.dir, oauth2Name), []byte(conf), 0o644); err != nil {
		return fmt.Errorf("dovecot OAuth2 settings: %w", err)
	}
	return nil
}

func (s *Server) writeCertificate() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("dovecot TLS key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("dovecot TLS certificate: %w", err)
	}
	if s.cert, err = x509.ParseCertificate(der); err != nil {
		return fmt.Errorf("dovecot TLS certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("dovecot TLS key: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	if err := os.WriteFile(filepath.Join(s.dir, "cert.pem"), certPEM, 0o644); err != nil {
		return fmt.Errorf("dovecot TLS certificate: %w", err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, "key.pem"), keyPEM, 0o600); err != nil {
		return fmt.Errorf("dovecot TLS key: %w", err)
	}
	return nil
}

func (s *Server) pickPorts() error {
	var err error
	if s.port, err = freePort(); err != nil {
		return err
	}
	if s.opts.TLS {
		if s.tlsPort, err = freePort(); err != nil {
			return err
		}
	}
	return nil
}

// configTemplate is the whole dovecot.conf: nothing comes from /etc/dovecot.
var configTemplate = template.Must(template.New(confName).Parse(`# Every path is inside this server's own directory.
instance_name = {{.Instance}}
base_dir = {{.Dir}}/run
state_dir = {{.Dir}}/state
log_path = {{.Dir}}/` + logName + `
protocols = imap
listen = 127.0.0.1
shutdown_clients = yes
default_login_user = {{.IDs.LoginUser}}
default_internal_user = {{.IDs.InternalUser}}
default_internal_group = {{.IDs.InternalGroup}}
mail_uid = {{.IDs.MailUID}}
mail_gid = {{.IDs.MailGID}}
first_valid_uid = 1
first_valid_gid = 1

disable_plaintext_auth = no
auth_mechanisms = plain login{{with .OAuth2Mechanisms}} {{.}}{{end}}
auth_username_format = %u
# Tests try wrong passwords: no delay, and no penalty slowing the next logins.
auth_failure_delay = 0
{{- if .OAuth2Mechanisms}}
# Access tokens, checked at the test's introspection endpoint.
passdb {
  driver = oauth2
  mechanisms = {{.OAuth2Mechanisms}}
  args = {{.Dir}}/` + oauth2Name + `
}
{{- end}}
passdb {
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN username_format=%u {{.Dir}}/` + usersName + `
}
userdb {
  driver = passwd-file
  args = username_format=%u {{.Dir}}/` + usersName + `
  default_fields = home={{.Dir}}/` + mailDir + `/%u
}

mail_location = maildir:~/Maildir
namespace inbox {
  inbox = yes
  separator = /
}

service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
{{- if not .IDs.Root}}
  chroot =
{{- end}}
}
service imap-login {
{{- if not .IDs.Root}}
  chroot =
{{- end}}
  inet_listener imap {
    address = 127.0.0.1
    port = {{.Port}}
  }
  inet_listener imaps {
{{- if .TLSPort}}
    address = 127.0.0.1
    port = {{.TLSPort}}
    ssl = yes
{{- else}}
    port = 0
{{- end}}
  }
}
{{if .TLSPort -}}
ssl = yes
ssl_cert = <{{.Dir}}/cert.pem
ssl_key = <{{.Dir}}/key.pem
{{- else -}}
ssl = no
{{- end}}
{{with .Capabilities}}imap_capability = {{.}}{{end}}
{{.ExtraConfig}}
`))

func (s *Server) config() (string, error) {
	// Exported names for the template only.
	type ids struct {
		Root                                   bool
		LoginUser, InternalUser, InternalGroup string
		MailUID, MailGID                       int
	}
	data := struct {
		Instance, Dir             string
		IDs                       ids
		Port, TLSPort             int
		Capabilities, ExtraConfig string
		OAuth2Mechanisms          string
	}{
		Instance: filepath.Base(s.dir), Dir: s.dir,
		IDs: ids{
			Root: s.ids.root, LoginUser: s.ids.loginUser, InternalUser: s.ids.internalUser,
			InternalGroup: s.ids.internalGroup, MailUID: s.ids.mailUID, MailGID: s.ids.mailGID,
		},
		Port: s.port, TLSPort: s.tlsPort,
		Capabilities: s.opts.Capabilities, ExtraConfig: s.opts.ExtraConfig,
	}
	if s.opts.OAuth2 != nil {
		data.OAuth2Mechanisms = s.opts.OAuth2.mechanisms()
	}
	var b strings.Builder
	if err := configTemplate.Execute(&b, data); err != nil {
		return "", fmt.Errorf("dovecot config: %w", err)
	}
	return b.String(), nil
}

var errAddrInUse = errors.New("address already in use")

// start runs the master in its own process group and waits for the
// greeting. s.mu is held or s is not shared yet.
func (s *Server) start(ctx context.Context) error {
	conf, err := s.config()
	if err != nil {
		return err
	}
	confPath := filepath.Join(s.dir, confName)
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return fmt.Errorf("write dovecot config: %w", err)
	}
	check := exec.CommandContext(ctx, s.bin, "-c", confPath, "-n")
	if out, err := check.CombinedOutput(); err != nil {
		return fmt.Errorf("dovecot rejects %s: %w\n%s", confPath, err, lastLines(out, 20))
	}

	stderr, err := os.OpenFile(filepath.Join(s.dir, stderrName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("dovecot stderr file: %w", err)
	}
	defer stderr.Close()
	mark := s.logMark()
	cmd := exec.Command(s.bin, "-F", "-c", confPath)
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = stderr, stderr
	// Its own process group, so that Kill reaches every service: killing
	// only the master leaves logged-in imap processes serving clients.
	// Pdeathsig takes the master down with a test binary that crashes or
	// times out; the services follow once their master and clients are gone.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start dovecot: %w", err)
	}
	p := &process{cmd: cmd, pgid: cmd.Process.Pid, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	s.proc = p

	if err := s.waitGreeting(ctx, p, mark); err != nil {
		killErr := s.kill()
		logs := s.logsSince(mark)
		if strings.Contains(logs, "Address already in use") {
			err = fmt.Errorf("%w: %w", errAddrInUse, err)
		}
		return errors.Join(fmt.Errorf("start dovecot on %s: %w\n%s", s.Addr(), err, lastLines([]byte(logs), 30)), killErr)
	}
	return nil
}

// waitGreeting polls until a login process greets with its capabilities:
// the master accepts connections before the services behind it are ready,
// and greets with "Waiting for authentication process" until auth is. A
// service that dies at startup is only throttled and retried by the
// master, so its fatal log line ends the wait.
func (s *Server) waitGreeting(ctx context.Context, p *process, mark logMark) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if greeted(ctx, s.Addr()) {
			return nil
		}
		for line := range strings.Lines(s.logsSince(mark)) {
			if strings.Contains(line, " Fatal: ") {
				return fmt.Errorf("a service failed: %s", strings.TrimSpace(line))
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the greeting: %w", ctx.Err())
		case <-p.exited:
			return fmt.Errorf("dovecot exited: %v", p.err)
		case <-tick.C:
		}
	}
}

func greeted(ctx context.Context, addr string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline) //nolint:errcheck // a failed read says the same
	r := bufio.NewReader(conn)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return false
		}
		if strings.HasPrefix(line, "* OK [CAPABILITY ") {
			return true
		}
	}
}

// stop sends SIGTERM and waits for every process of the group and the port.
func (s *Server) stop(ctx context.Context) error {
	p := s.proc
	if p == nil {
		return nil
	}
	// The whole group: told by the master alone, logged-in imap processes
	// take ten seconds to notice the shutdown.
	if err := syscall.Kill(-p.pgid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop dovecot: %w", err)
	}
	select {
	case <-p.exited:
	case <-ctx.Done():
		return errors.Join(fmt.Errorf("stop dovecot: %w", ctx.Err()), s.kill())
	}
	if err := waitGone(ctx, p.pgid); err != nil {
		return errors.Join(fmt.Errorf("stop dovecot: %w", err), s.kill())
	}
	s.proc = nil
	return nil
}

func (s *Server) kill() error {
	p := s.proc
	if p == nil {
		return nil
	}
	if err := syscall.Kill(-p.pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill dovecot: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	select {
	case <-p.exited:
	case <-ctx.Done():
		return errors.New("kill dovecot: the master survived SIGKILL for 30s")
	}
	if err := waitGone(ctx, p.pgid); err != nil {
		return fmt.Errorf("kill dovecot: %w", err)
	}
	s.proc = nil
	return s.removeStaleLocks()
}

// removeStaleLocks deletes the dotlocks (dovecot-uidlist.lock) a killed
// Dovecot left in the maildirs. Dovecot breaks them itself, but only after
// two minutes; a test restarting it at once would wait that long.
func (s *Server) removeStaleLocks() error {
	return filepath.WalkDir(filepath.Join(s.dir, mailDir), func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(d.Name(), ".lock") {
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("remove stale lock: %w", err)
			}
		}
		return nil
	})
}

// waitGone waits until no live process is left in the group. The
// listening sockets close with the last of them; a dial to check would be
// fooled by anyone else who took the freed port meanwhile.
func waitGone(ctx context.Context, pgid int) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		alive, err := groupAlive(pgid)
		if err != nil || !alive {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("processes of group %d still running: %w", pgid, ctx.Err())
		case <-tick.C:
		}
	}
}

// groupAlive reports whether a process of group pgid runs.
func groupAlive(pgid int) (bool, error) {
	pids, err := groupProcesses(pgid)
	return len(pids) > 0, err
}

// groupProcesses lists the running processes of group pgid. Zombies do
// not count: the reparented services are reaped by whatever runs as PID 1,
// which in a container may never do it.
func groupProcesses(pgid int) ([]string, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var pids []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // exited meanwhile
		}
		// pid (comm) state ppid pgrp …; comm may hold spaces and parentheses.
		end := strings.LastIndexByte(string(stat), ')')
		if end < 0 {
			continue
		}
		fields := strings.Fields(string(stat[end+1:]))
		if len(fields) < 3 || fields[0] == "Z" || fields[0] == "X" {
			continue
		}
		if g, _ := strconv.Atoi(fields[2]); g == pgid {
			pids = append(pids, e.Name())
		}
	}
	return pids, nil
}

// Login connects to the plain listener and logs in as user. The context
// bounds the dial and the login only; the caller closes the client.
func (s *Server) Login(ctx context.Context, user string) (*imapclient.Client, error) {
	pass, ok := s.opts.Users[user]
	if !ok {
		return nil, fmt.Errorf("dovecot login: no user %q in Options.Users", user)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.Addr())
	if err != nil {
		return nil, fmt.Errorf("dovecot login as %s: %w", user, err)
	}
	c := imapclient.New(conn, nil)
	stop := context.AfterFunc(ctx, func() { c.Close() })
	err = c.Login(user, pass).Wait()
	if !stop() {
		err = errors.Join(err, ctx.Err())
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("dovecot login as %s: %w", user, err)
	}
	return c, nil
}

// session logs in as user, runs fn and logs out. Ending ctx closes the
// connection, which fails whatever fn is waiting for.
func (s *Server) session(ctx context.Context, user string, fn func(*imapclient.Client) error) error {
	c, err := s.Login(ctx, user)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	err = fn(c)
	if !stop() {
		return errors.Join(err, ctx.Err())
	}
	if err != nil {
		return err
	}
	if err := c.Logout().Wait(); err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	return nil
}

// CreateMailbox creates a mailbox of user.
func (s *Server) CreateMailbox(ctx context.Context, user, name string) error {
	err := s.session(ctx, user, func(c *imapclient.Client) error {
		return c.Create(name, nil).Wait()
	})
	if err != nil {
		return fmt.Errorf("create mailbox %s of %s: %w", name, user, err)
	}
	return nil
}

// Append stores raw in a mailbox of user with the given flags (such as
// `\Seen`) and returns its UID.
func (s *Server) Append(ctx context.Context, user, mailbox string, raw []byte, flags ...string) (uint32, error) {
	var uid imap.UID
	err := s.session(ctx, user, func(c *imapclient.Client) error {
		opts := &imap.AppendOptions{}
		for _, f := range flags {
			opts.Flags = append(opts.Flags, imap.Flag(f))
		}
		cmd := c.Append(mailbox, int64(len(raw)), opts)
		if _, err := cmd.Write(raw); err != nil {
			cmd.Close()
			return err
		}
		if err := cmd.Close(); err != nil {
			return err
		}
		data, err := cmd.Wait()
		if err != nil {
			return err
		}
		// Dovecot answers APPENDUID even when UIDPLUS is not announced.
		if data.UID == 0 {
			return errors.New("the server did not say the new UID (APPENDUID)")
		}
		uid = data.UID
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("append to %s of %s: %w", mailbox, user, err)
	}
	return uint32(uid), nil
}

// Message is what Messages reports of one message.
type Message struct {
	UID       uint32
	Flags     []string // as the server spells them, e.g. `\Seen`
	MessageID string   // without angle brackets; "" when there is none
}

// Has reports whether the message carries flag (case-insensitive).
func (m Message) Has(flag string) bool {
	return slices.ContainsFunc(m.Flags, func(f string) bool { return strings.EqualFold(f, flag) })
}

// Messages lists a mailbox of user in UID order. It opens the mailbox
// read-only and never sets \Seen.
func (s *Server) Messages(ctx context.Context, user, mailbox string) ([]Message, error) {
	var msgs []Message
	err := s.session(ctx, user, func(c *imapclient.Client) error {
		sel, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			return err
		}
		if sel.NumMessages == 0 {
			return nil
		}
		section := &imap.FetchItemBodySection{
			Specifier:    imap.PartSpecifierHeader,
			HeaderFields: []string{"Message-ID"},
			Peek:         true,
		}
		all := imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}} // 1:*
		bufs, err := c.Fetch(all, &imap.FetchOptions{UID: true, Flags: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
		if err != nil {
			return err
		}
		for _, b := range bufs {
			m := Message{UID: uint32(b.UID), MessageID: messageID(b.FindBodySection(section))}
			for _, f := range b.Flags {
				m.Flags = append(m.Flags, string(f))
			}
			msgs = append(msgs, m)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s of %s: %w", mailbox, user, err)
	}
	slices.SortFunc(msgs, func(a, b Message) int { return int(a.UID) - int(b.UID) })
	return msgs, nil
}

func messageID(header []byte) string {
	msg, err := mail.ReadMessage(io.MultiReader(strings.NewReader(string(header)), strings.NewReader("\r\n")))
	if err != nil {
		return ""
	}
	return strings.Trim(strings.TrimSpace(msg.Header.Get("Message-ID")), "<>")
}

// Seed puts raw mails into a mailbox of user by writing maildir files
// directly into new/, as a delivery agent would: far quicker than APPEND
// for thousands of mails. Dovecot gives them UIDs in the order given, after
// the mailbox's existing ones, when a client next opens or polls it. The
// mailbox is INBOX or a name of ASCII letters, digits, spaces, '-' and '_',
// with '/' between levels; it is created if missing.
func (s *Server) Seed(user, mailbox string, raws [][]byte) error {
	dir, err := s.maildir(user, mailbox)
	if err != nil {
		return fmt.Errorf("seed %s of %s: %w", mailbox, user, err)
	}
	s.mu.Lock()
	first := s.seedSeq
	s.seedSeq += len(raws)
	s.mu.Unlock()
	// Dovecot orders new files by the seconds, then the microseconds
	// ("M…") of their names; a counter in place of the microseconds keeps
	// the order of raws, and of successive calls, within one second.
	secs := time.Now().Unix()
	for i, raw := range raws {
		name := fmt.Sprintf("%d.M%dP%d.helpdesk-seed,S=%d", secs, first+i, os.Getpid(), len(raw))
		if err := s.deliver(dir, name, raw); err != nil {
			return fmt.Errorf("seed %s of %s: %w", mailbox, user, err)
		}
	}
	return nil
}

// deliver writes into tmp/ and renames into new/, so Dovecot never sees a
// partial file.
func (s *Server) deliver(dir, name string, raw []byte) error {
	tmp := filepath.Join(dir, "tmp", name)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(raw)
	if err == nil && s.ids.root {
		err = f.Chown(s.ids.mailUID, s.ids.mailGID)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, "new", name))
	}
	if err != nil {
		os.Remove(tmp) //nolint:errcheck // the write error matters
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// maildir returns the directory of a mailbox in Dovecot's Maildir++ layout
// (INBOX at the root, "a/b" as ".a.b"), creating it if needed.
func (s *Server) maildir(user, mailbox string) (string, error) {
	if _, ok := s.opts.Users[user]; !ok {
		return "", fmt.Errorf("no user %q in Options.Users", user)
	}
	home := filepath.Join(s.dir, mailDir, user)
	root := filepath.Join(home, "Maildir")
	dirs := []string{home, root}
	if !strings.EqualFold(mailbox, "INBOX") {
		if !plainMailboxName(mailbox) {
			return "", fmt.Errorf("mailbox name %q: Seed takes INBOX or ASCII letters, digits, spaces, '-', '_' and '/' between levels", mailbox)
		}
		dirs = append(dirs, filepath.Join(root, "."+strings.ReplaceAll(mailbox, "/", ".")))
	}
	box := dirs[len(dirs)-1]
	for _, d := range append(dirs, filepath.Join(box, "cur"), filepath.Join(box, "new"), filepath.Join(box, "tmp")) {
		if err := s.mkdirOwned(d); err != nil {
			return "", err
		}
	}
	if box != root {
		// Dovecot marks its folders with this file.
		marker := filepath.Join(box, "maildirfolder")
		if err := os.WriteFile(marker, nil, 0o600); err != nil {
			return "", fmt.Errorf("mark maildir folder: %w", err)
		}
		if err := s.chown(marker); err != nil {
			return "", err
		}
	}
	return box, nil
}

func plainMailboxName(name string) bool {
	if name == "" || strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") || strings.Contains(name, "//") {
		return false
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(" -_/", r)
		if !ok {
			return false
		}
	}
	return true
}

// mkdirOwned creates dir (if missing) for the mail user.
func (s *Server) mkdirOwned(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil
		}
		return fmt.Errorf("create %s: %w", dir, err)
	}
	return s.chown(dir)
}

func (s *Server) chown(path string) error {
	if !s.ids.root {
		return nil
	}
	if err := os.Chown(path, s.ids.mailUID, s.ids.mailGID); err != nil {
		return fmt.Errorf("hand %s to uid %d: %w", path, s.ids.mailUID, err)
	}
	return nil
}

// logMark is where the log files ended, to read what one run added.
type logMark struct{ log, stderr int64 }

func (s *Server) logMark() logMark {
	return logMark{fileSize(filepath.Join(s.dir, logName)), fileSize(filepath.Join(s.dir, stderrName))}
}

func (s *Server) logsSince(mark logMark) string {
	var b strings.Builder
	for _, f := range []struct {
		name string
		from int64
	}{{logName, mark.log}, {stderrName, mark.stderr}} {
		if data, err := os.ReadFile(filepath.Join(s.dir, f.name)); err == nil && int64(len(data)) >= f.from {
			b.Write(data[f.from:])
		}
	}
	return b.String()
}

func findBinary() (string, error) {
	if p, err := exec.LookPath("dovecot"); err == nil {
		return p, nil
	}
	// /usr/sbin is often missing from an unprivileged PATH.
	if _, err := os.Stat("/usr/sbin/dovecot"); err == nil {
		return "/usr/sbin/dovecot", nil
	}
	return "", ErrNotInstalled
}

// checkUsers refuses names Dovecot would reject at login (its default
// auth_username_chars) and that would break the passwd-file or a path.
func checkUsers(users map[string]string) error {
	for name := range users {
		if name == "" || name == "." || name == ".." {
			return fmt.Errorf("dovecot user name %q is not allowed", name)
		}
		for _, r := range name {
			ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(".-_@", r)
			if !ok {
				return fmt.Errorf("dovecot user name %q: only ASCII letters, digits and . - _ @ are allowed", name)
			}
		}
	}
	return nil
}

// reachableByOthers checks that the services' users can get to dir.
func reachableByOthers(dir string) error {
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("dovecot dir: %w", err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("dovecot runs as dovenull, which cannot enter %s: point TMPDIR at a directory others can traverse, such as /tmp", d)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
