package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/helpdeskgw/helpdesk/bench/internal/benchkit"
	"github.com/helpdeskgw/helpdesk/internal/dovecot"
)

// footprint is this process's memory at one moment, after a garbage
// collection that also hands freed pages back to the system.
type footprint struct {
	heap       uint64 // live heap objects
	stacks     uint64 // goroutine stacks
	rss        uint64 // resident set
	goroutines int
}

func measure() footprint {
	for range 5 {
		runtime.GC()
	}
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	var rssKB uint64
	fmt.Sscanf(benchkit.ProcField("/proc/self/status", "VmRSS"), "%d kB", &rssKB) //nolint:errcheck // 0 when unreadable
	return footprint{heap: ms.HeapAlloc, stacks: ms.StackInuse, rss: rssKB << 10, goroutines: runtime.NumGoroutine()}
}

// perItem is what each of n items added between before and after costs.
type perItem struct {
	goMemory   float64 // heap and stacks, bytes
	heap       float64
	stacks     float64
	rss        float64
	goroutines float64
}

func costOf(before, after footprint, n int) perItem {
	d := func(a, b uint64) float64 { return (float64(a) - float64(b)) / float64(n) }
	return perItem{
		goMemory:   d(after.heap+after.stacks, before.heap+before.stacks),
		heap:       d(after.heap, before.heap),
		stacks:     d(after.stacks, before.stacks),
		rss:        d(after.rss, before.rss),
		goroutines: float64(after.goroutines-before.goroutines) / float64(n),
	}
}

func kb(bytes float64) string { return fmt.Sprintf("%.1f KB", bytes/1024) }

// bareIdlers logs in to every mailbox with a bare go-imap client, opens
// its INBOX read-only and idles, as the least a connection per mailbox
// costs; it returns what each costs, and how many connections Dovecot
// counted.
func bareIdlers(ctx context.Context, srv *dovecot.Server, tlsConfig *tls.Config, n int) (perItem, int, error) {
	before := measure()
	type idler struct {
		c    *imapclient.Client
		idle *imapclient.IdleCommand
	}
	idlers := make([]idler, 0, n)
	defer func() {
		for _, in := range idlers {
			if in.idle != nil {
				in.idle.Close() //nolint:errcheck // closing anyway
			}
			in.c.Close()
		}
	}()
	for i := range n {
		c, err := bareLogin(ctx, srv, tlsConfig, user(i))
		if err != nil {
			return perItem{}, 0, err
		}
		idlers = append(idlers, idler{c: c})
		if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			return perItem{}, 0, fmt.Errorf("bare client: open INBOX of %s: %w", user(i), err)
		}
		idle, err := c.Idle()
		if err != nil {
			return perItem{}, 0, fmt.Errorf("bare client: IDLE as %s: %w", user(i), err)
		}
		idlers[i].idle = idle
	}
	time.Sleep(time.Second) // let the logins' transient goroutines end
	cost := costOf(before, measure(), n)
	conns, err := srv.Connections()
	return cost, conns, err
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("heap profile: %w", err)
	}
	return f.Close()
}

// bareLogin logs in as user over the listener the mailboxes use.
func bareLogin(ctx context.Context, srv *dovecot.Server, tlsConfig *tls.Config, user string) (*imapclient.Client, error) {
	if tlsConfig == nil {
		return srv.Login(ctx, user)
	}
	c, err := imapclient.DialTLS(srv.TLSAddr(), &imapclient.Options{TLSConfig: tlsConfig})
	if err != nil {
		return nil, fmt.Errorf("bare client: %w", err)
	}
	if err := c.Login(user, password).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("bare client: login as %s: %w", user, err)
	}
	return c, nil
}
