package mailin

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
)

// MailboxAddress is where a mailbox is, read from its URL.
type MailboxAddress struct {
	// Host is host:port.
	Host string
	// ServerName is the host name the certificate must be for.
	ServerName string
	User       string
	Folder     string
	// Security is how the connection is protected.
	Security Security
}

// Security says how an IMAP connection is protected.
type Security int

const (
	// ImplicitTLS (imaps://, port 993) speaks TLS from the first byte.
	ImplicitTLS Security = iota
	// StartTLS (imap://, port 143) upgrades the connection before login.
	StartTLS
	// Plain (imap:// to a loopback address) sends the password as it is:
	// only for a server on the same machine.
	Plain
)

func (s Security) String() string {
	switch s {
	case ImplicitTLS:
		return "TLS"
	case StartTLS:
		return "STARTTLS"
	}
	return "plain (loopback)"
}

// ParseMailboxURL reads imaps://user@host[:port]/FOLDER or
// imap://user@host[:port]/FOLDER. The user may be an address itself
// (imaps://support@example.com@mail.example.com/INBOX, or with %40). The
// folder defaults to INBOX. A password in the URL is refused: URLs end up in
// listings and logs.
func ParseMailboxURL(raw string) (MailboxAddress, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		// url.Error repeats the whole URL, which may hold a password.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return MailboxAddress{}, fmt.Errorf("mailbox URL is not a URL (percent-encode special characters of the user name; give the password with --password-env or --password-file): %w", err)
	}
	if u.User != nil {
		if _, set := u.User.Password(); set {
			return MailboxAddress{}, errors.New("mailbox URL: remove the password from the URL and give it with --password-env or --password-file")
		}
	}
	shown := (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
	var a MailboxAddress
	port := ""
	switch u.Scheme {
	case "imaps":
		a.Security, port = ImplicitTLS, "993"
	case "imap":
		a.Security, port = StartTLS, "143"
	default:
		return a, fmt.Errorf("mailbox URL %q: scheme must be imaps:// or imap://", shown)
	}
	if u.User == nil || u.User.Username() == "" {
		return a, fmt.Errorf("mailbox URL %q: no user (imaps://USER@host/INBOX)", shown)
	}
	a.User = u.User.Username()
	a.ServerName = u.Hostname()
	if a.ServerName == "" {
		return a, fmt.Errorf("mailbox URL %q: no host", shown)
	}
	if p := u.Port(); p != "" {
		port = p
	}
	a.Host = net.JoinHostPort(a.ServerName, port)
	if a.Security == StartTLS && isLoopback(a.ServerName) {
		a.Security = Plain
	}
	a.Folder = strings.TrimPrefix(u.Path, "/")
	if a.Folder == "" {
		a.Folder = "INBOX"
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return a, fmt.Errorf("mailbox URL %q: unexpected query or fragment", shown)
	}
	return a, nil
}

// String is the URL in a canonical form.
func (a MailboxAddress) String() string {
	scheme := "imaps"
	if a.Security != ImplicitTLS {
		scheme = "imap"
	}
	u := url.URL{Scheme: scheme, User: url.User(a.User), Host: a.Host, Path: "/" + a.Folder}
	return u.String()
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// PasswordRef returns the reference stored for a password given as an
// environment variable or a file: the password itself is never stored.
func PasswordRef(envVar, file string) (string, error) {
	switch {
	case envVar != "" && file != "":
		return "", errors.New("give the password with --password-env or --password-file, not both")
	case envVar != "":
		return "env:" + envVar, nil
	case file != "":
		return "file:" + file, nil
	}
	return "", errors.New("give the password with --password-env VAR or --password-file FILE")
}

// ResolvePassword reads the password a reference points to, now: a changed
// variable or file takes effect at the next login.
func ResolvePassword(ref string, lookupEnv func(string) (string, bool)) (string, error) {
	return resolveSecret(ref, "password", lookupEnv)
}

// ResolveClientSecret reads an OAuth2 client secret given, like passwords,
// as env:VAR or file:PATH.
func ResolveClientSecret(ref string, lookupEnv func(string) (string, bool)) (string, error) {
	return resolveSecret(ref, "client secret", lookupEnv)
}

func resolveSecret(ref, what string, lookupEnv func(string) (string, bool)) (string, error) {
	kind, where, _ := strings.Cut(ref, ":")
	switch kind {
	case "env":
		v, ok := lookupEnv(where)
		if !ok || v == "" {
			return "", fmt.Errorf("%s variable %s is not set in the gateway's environment", what, where)
		}
		return v, nil
	case "file":
		b, err := os.ReadFile(where)
		if err != nil {
			return "", fmt.Errorf("%s file: %w", what, err)
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			return "", fmt.Errorf("%s file %s is empty", what, where)
		}
		return v, nil
	}
	return "", fmt.Errorf("%s reference %q: want env:VAR or file:PATH", what, ref)
}
