package mailin

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-message/charset"

	"github.com/helpdeskgw/helpdesk/tickets"
)

// imapConn is a logged-in IMAP connection.
type imapConn struct {
	*imapclient.Client
	// wake receives a value when the server reports new mail.
	wake chan struct{}
}

// dialIMAP connects and logs in. Its errors say which step failed, in words
// an admin can act on.
func dialIMAP(ctx context.Context, addr MailboxAddress, password string, tlsConfig *tls.Config) (*imapConn, error) {
	c := &imapConn{wake: make(chan struct{}, 1)}
	opts := &imapclient.Options{
		WordDecoder: &mime.WordDecoder{CharsetReader: charset.Reader},
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(data *imapclient.UnilateralDataMailbox) {
				if data.NumMessages != nil {
					c.signal()
				}
			},
		},
	}
	if tlsConfig != nil {
		opts.TLSConfig = tlsConfig.Clone()
	} else {
		opts.TLSConfig = &tls.Config{}
	}
	opts.TLSConfig.ServerName = addr.ServerName
	opts.TLSConfig.MinVersion = tls.VersionTLS12
	dialer := &net.Dialer{Timeout: 30 * time.Second,
		// A peer that vanished while we idle is otherwise noticed only when
		// IDLE is restarted.
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 10 * time.Second, Count: 3}}
	raw, err := dialer.DialContext(ctx, "tcp", addr.Host)
	if err != nil {
		return nil, fmt.Errorf("cannot reach %s: %w", addr.Host, err)
	}
	switch addr.Security {
	case ImplicitTLS:
		tc := tls.Client(raw, opts.TLSConfig)
		hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			raw.Close()
			return nil, fmt.Errorf("TLS with %s failed: %w", addr.Host, err)
		}
		c.Client = imapclient.New(tc, opts)
	case StartTLS:
		if c.Client, err = imapclient.NewStartTLS(raw, opts); err != nil {
			return nil, fmt.Errorf("STARTTLS with %s failed (use imaps:// if the server speaks TLS at once): %w", addr.Host, err)
		}
	default:
		c.Client = imapclient.New(raw, opts)
	}
	// A cancelled context ends whatever the connection is doing.
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if err := c.WaitGreeting(); err != nil {
		c.Close()
		return nil, fmt.Errorf("no IMAP greeting from %s: %w", addr.Host, err)
	}
	if err := c.Login(addr.User, password).Wait(); err != nil {
		c.Close()
		var imapErr *imap.Error
		if errors.As(err, &imapErr) {
			return nil, fmt.Errorf("login as %s refused: %s: %w", addr.User, describeIMAPError(imapErr), errLoginRefused)
		}
		return nil, fmt.Errorf("login as %s at %s: %w", addr.User, addr.Host, err)
	}
	return c, nil
}

// errLoginRefused marks a login the server refused (bad credentials, most
// likely): retrying at once will not help.
var errLoginRefused = errors.New("check the user and the password")

func describeIMAPError(e *imap.Error) string {
	if e.Code != "" {
		return fmt.Sprintf("%s [%s]", strings.TrimSpace(e.Text), e.Code)
	}
	return strings.TrimSpace(e.Text)
}

func (c *imapConn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// selectFolder opens the folder, read-write unless readOnly.
func (c *imapConn) selectFolder(folder string, readOnly bool) (*imap.SelectData, error) {
	sel, err := c.Select(folder, &imap.SelectOptions{ReadOnly: readOnly}).Wait()
	if err != nil {
		var imapErr *imap.Error
		if errors.As(err, &imapErr) {
			return nil, fmt.Errorf("cannot open folder %q: %s", folder, describeIMAPError(imapErr))
		}
		return nil, fmt.Errorf("open folder %q: %w", folder, err)
	}
	return sel, nil
}

// folderExists reports whether the folder is on the server.
func (c *imapConn) folderExists(folder string) (bool, error) {
	list, err := c.List("", folder, nil).Collect()
	if err != nil {
		return false, fmt.Errorf("look for folder %q: %w", folder, err)
	}
	for _, d := range list {
		if d.Mailbox == folder || (strings.EqualFold(folder, "INBOX") && strings.EqualFold(d.Mailbox, "INBOX")) {
			return !slices.Contains(d.Attrs, imap.MailboxAttrNoSelect), nil
		}
	}
	return false, nil
}

// MailboxReport is what a check of a mailbox found.
type MailboxReport struct {
	Address     MailboxAddress
	Messages    uint32
	UIDValidity uint32
	UIDNext     uint32
	IDLE        bool
	MOVE        bool
	// MoveTo exists, when a folder to move processed mail to is set.
	MoveToExists bool
}

// CheckMailbox logs in to a mailbox, opens its folder, and reports what it
// found. It changes nothing on the server.
func CheckMailbox(ctx context.Context, mb tickets.Mailbox, lookupEnv func(string) (string, bool), tlsConfig *tls.Config) (MailboxReport, error) {
	addr, err := ParseMailboxURL(mb.URL)
	if err != nil {
		return MailboxReport{}, err
	}
	r := MailboxReport{Address: addr}
	password, err := ResolvePassword(mb.PasswordRef, lookupEnv)
	if err != nil {
		return r, err
	}
	c, err := dialIMAP(ctx, addr, password, tlsConfig)
	if err != nil {
		return r, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	r.IDLE, r.MOVE = c.Caps().Has(imap.CapIdle), c.Caps().Has(imap.CapMove)
	sel, err := c.selectFolder(addr.Folder, true)
	if err != nil {
		return r, err
	}
	r.Messages, r.UIDValidity, r.UIDNext = sel.NumMessages, sel.UIDValidity, uint32(sel.UIDNext)
	if mb.MoveTo != "" {
		if r.MoveToExists, err = c.folderExists(mb.MoveTo); err != nil {
			return r, err
		}
		if !r.MoveToExists {
			return r, fmt.Errorf("folder %q to move processed mail to does not exist; create it or change --move-to", mb.MoveTo)
		}
	}
	c.Logout().Wait() //nolint:errcheck // closing anyway
	return r, nil
}

// fetched is one mail read from the folder.
type fetched struct {
	uid     imap.UID
	raw     tickets.Content
	release func()
}

// fetchBodies streams the mails with the given UIDs to the spool, one after
// the other, handing each to deliver as soon as it is read. Each body is read
// to its end before the next: go-imap discards what is left unread.
func fetchBodies(c *imapConn, uids imap.UIDSet, tmpDir string, deliver func(fetched)) error {
	cmd := c.Fetch(uids, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
	var spoolErr error
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		f := fetched{release: func() {}}
		haveBody := false
		for {
			item := msg.Next()
			if item == nil {
				break
			}
			switch item := item.(type) {
			case imapclient.FetchItemDataUID:
				f.uid = item.UID
			case imapclient.FetchItemDataBodySection:
				if item.Literal == nil {
					continue
				}
				raw, release, err := spool(item.Literal, tmpDir)
				if err != nil {
					release()
					io.Copy(io.Discard, item.Literal) //nolint:errcheck // the fetch reports a broken connection
					if errors.Is(err, errSpool) && spoolErr == nil {
						spoolErr = err
					}
					continue
				}
				f.raw, f.release, haveBody = raw, release, true
			}
		}
		switch {
		case f.uid == 0 || spoolErr != nil:
			f.release()
		case !haveBody:
			// The server has the mail but sends no body (it happens with
			// broken stores): record it empty rather than fetch it forever.
			f.raw = tickets.BytesContent(nil)
			deliver(f)
		default:
			deliver(f)
		}
	}
	if err := cmd.Close(); err != nil {
		return fmt.Errorf("fetch mail: %w", err)
	}
	if spoolErr != nil {
		return fmt.Errorf("keep fetched mail: %w", spoolErr)
	}
	return nil
}

// newUIDs lists the UIDs above after in the selected folder, oldest first,
// leaving out mail flagged \Deleted.
func newUIDs(c *imapConn, after imap.UID) ([]imap.UID, error) {
	msgs, err := c.Fetch(imap.UIDSet{{Start: after + 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil {
		return nil, fmt.Errorf("list new mail: %w", err)
	}
	uids := make([]imap.UID, 0, len(msgs))
	for _, m := range msgs {
		// "UID n:*" always answers with the last mail, even below n.
		if m.UID > after && !slices.Contains(m.Flags, imap.FlagDeleted) {
			uids = append(uids, m.UID)
		}
	}
	slices.Sort(uids)
	return uids, nil
}

// deliveries runs mail through the receiver on several goroutines, so
// that the store's group commit can write many at once while the next
// bodies arrive.
type deliveries struct {
	jobs chan fetched
	wg   sync.WaitGroup

	mu     sync.Mutex
	failed map[imap.UID]error
}

func startDeliveries(ctx context.Context, workers int, deliver func(ctx context.Context, f fetched) error) *deliveries {
	d := &deliveries{jobs: make(chan fetched, workers), failed: map[imap.UID]error{}}
	for range workers {
		d.wg.Go(func() {
			for f := range d.jobs {
				err := deliver(ctx, f)
				f.release()
				if err != nil {
					d.mu.Lock()
					d.failed[f.uid] = err
					d.mu.Unlock()
				}
			}
		})
	}
	return d
}

// wait waits for every delivery and returns the failed ones.
func (d *deliveries) wait() map[imap.UID]error {
	close(d.jobs)
	d.wg.Wait()
	return d.failed
}

// logLevel picks the level of a connection's error: a cancelled one is
// the gateway stopping.
func logLevel(ctx context.Context, err error) slog.Level {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) {
		return slog.LevelInfo
	}
	return slog.LevelWarn
}
