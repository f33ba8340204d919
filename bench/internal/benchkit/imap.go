package benchkit

import (
	"context"
	"fmt"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/helpdeskgw/helpdesk/internal/dovecot"
)

// AppendMail stores raw in folder over c and waits for the server's answer.
func AppendMail(c *imapclient.Client, folder string, raw []byte) error {
	cmd := c.Append(folder, int64(len(raw)), nil)
	if _, err := cmd.Write(raw); err != nil {
		cmd.Close()
		return fmt.Errorf("append to %s: %w", folder, err)
	}
	if err := cmd.Close(); err != nil {
		return fmt.Errorf("append to %s: %w", folder, err)
	}
	if _, err := cmd.Wait(); err != nil {
		return fmt.Errorf("append to %s: %w", folder, err)
	}
	return nil
}

// IdleLatency creates folder, appends the mails one by one while a bare
// go-imap client idles on it, and times each from the start of its APPEND
// until the server's EXISTS reaches the idling client: the floor of any
// pickup that relies on IDLE (Dovecot gathers changes for about half a
// second before it tells idling clients).
func IdleLatency(ctx context.Context, srv *dovecot.Server, user, password, folder string, mails [][]byte) ([]time.Duration, error) {
	if err := srv.CreateMailbox(ctx, user, folder); err != nil {
		return nil, err
	}
	exists := make(chan uint32, 16)
	opts := &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				exists <- *d.NumMessages
			}
		},
	}}
	c, err := imapclient.DialInsecure(srv.Addr(), opts)
	if err != nil {
		return nil, fmt.Errorf("idle client: %w", err)
	}
	defer c.Close()
	if err := c.Login(user, password).Wait(); err != nil {
		return nil, fmt.Errorf("idle client login: %w", err)
	}
	if _, err := c.Select(folder, nil).Wait(); err != nil {
		return nil, fmt.Errorf("idle client select %s: %w", folder, err)
	}
	idle, err := c.Idle()
	if err != nil {
		return nil, fmt.Errorf("idle client: %w", err)
	}
	defer idle.Close()
	appender, err := srv.Login(ctx, user)
	if err != nil {
		return nil, err
	}
	defer appender.Close()
	var lat []time.Duration
	for i, raw := range mails {
		start := time.Now()
		if err := AppendMail(appender, folder, raw); err != nil {
			return nil, err
		}
		for got := uint32(0); got < uint32(i+1); {
			select {
			case got = <-exists:
			case <-time.After(time.Minute):
				return nil, fmt.Errorf("no EXISTS for mail %d after a minute", i)
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		lat = append(lat, time.Since(start))
	}
	return lat, nil
}
