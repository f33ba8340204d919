package tickets_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/helpdeskgw/helpdesk/tickets"
)

// stalledWriter is a client that stops reading: its first write blocks
// until released.
type stalledWriter struct {
	started, release chan struct{}
	buf              bytes.Buffer
}

func (w *stalledWriter) Write(p []byte) (int, error) {
	if w.buf.Len() == 0 {
		close(w.started)
		<-w.release
	}
	return w.buf.Write(p)
}

// A download stalled by its client holds no database connection: with a
// pool of one, the store still answers meanwhile.
func TestWriteBlobHoldsNoConnectionWhileTheClientStalls(t *testing.T) {
	_, _, d := newStore(t, tickets.Options{})
	cfg, err := pgxpool.ParseConfig(db.ConnString(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1
	ctx := context.Background()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	store := tickets.New(tickets.Options{Pool: pool})
	file := bytes.Repeat([]byte("attachment "), 100_000) // over one window of chunks
	if _, err := store.IngestMail(ctx, inbound(d, "big@example.org", "see attached",
		tickets.InboundAttachment{Filename: "big.txt", ContentType: "text/plain", Content: tickets.BytesContent(file)})); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(file)
	w := &stalledWriter{started: make(chan struct{}), release: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- store.WriteBlob(ctx, sum[:], w) }()
	<-w.started
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = store.Ping(pctx)
	cancel()
	close(w.release)
	if err != nil {
		t.Fatalf("the store is stuck while a download stalls: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(w.buf.Bytes(), file) {
		t.Errorf("downloaded %d bytes, want the %d of the file", w.buf.Len(), len(file))
	}
}
