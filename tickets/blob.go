package tickets

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"
)

// Contents are stored in rows of chunkSize bytes: small enough that a row
// stays in its heap page (the table keeps rows up to 8160 bytes out of
// TOAST), which costs PostgreSQL a quarter of the work of TOAST's 2 KB
// pieces. They travel windowChunks rows to a statement, so memory stays
// bounded on the way in and out whatever the size.
const (
	chunkSize    = 8000
	windowChunks = 32
	windowSize   = chunkSize * windowChunks
)

// inlineBlobSize is the size up to which contents are stored together, one
// statement for all of a batch's; larger ones are stored a window at a time.
const inlineBlobSize = 64 << 10

// Content is a file to store: its size and SHA-256 are known before it is
// stored (computed while it was spooled), and it is read in chunks.
type Content struct {
	SHA256 [32]byte
	Size   int64
	Data   io.ReaderAt
}

// BytesContent wraps a small in-memory file as Content.
func BytesContent(b []byte) Content {
	return Content{SHA256: sha256.Sum256(b), Size: int64(len(b)), Data: bytes.NewReader(b)}
}

// putBlob stores c unless a blob with its hash exists. Concurrent writers of
// the same content wait for each other on the primary key, so it is stored
// once.
func putBlob(ctx context.Context, tx pgx.Tx, c Content) error {
	tag, err := tx.Exec(ctx, `INSERT INTO blobs (sha256, size) VALUES ($1, $2) ON CONFLICT (sha256) DO NOTHING`, c.SHA256[:], c.Size)
	if err != nil {
		return fmt.Errorf("store blob %x: %w", c.SHA256[:8], err)
	}
	if tag.RowsAffected() == 0 {
		return nil
	}
	buf := make([]byte, min(windowSize, max(c.Size, 1)))
	for off := int64(0); off < c.Size || off == 0; off += int64(len(buf)) {
		window := buf[:min(int64(len(buf)), c.Size-off)]
		if n, err := c.Data.ReadAt(window, off); n < len(window) {
			return fmt.Errorf("read blob %x at %d: %w", c.SHA256[:8], off, err)
		}
		seqs, data := splitChunks(window, int(off/chunkSize))
		_, err := tx.Exec(ctx, `INSERT INTO blob_chunks (sha256, seq, data) SELECT $1, s, d FROM unnest($2::integer[], $3::bytea[]) AS x(s, d)`,
			c.SHA256[:], seqs, data)
		if err != nil {
			return fmt.Errorf("store blob %x at %d: %w", c.SHA256[:8], off, err)
		}
		if c.Size == 0 {
			break
		}
	}
	return nil
}

// splitChunks cuts b into rows, numbered from first. An empty b is one
// empty row, so that every blob has at least one.
func splitChunks(b []byte, first int) ([]int32, [][]byte) {
	n := max((len(b)+chunkSize-1)/chunkSize, 1)
	seqs, data := make([]int32, n), make([][]byte, n)
	for i := range n {
		seqs[i] = int32(first + i)
		data[i] = b[i*chunkSize : min((i+1)*chunkSize, len(b))]
	}
	return seqs, data
}

// WriteBlob copies the blob with the given hash to w, a window of chunks at a
// time.
func (s *Store) WriteBlob(ctx context.Context, sum []byte, w io.Writer) error {
	var size int64
	err := s.pool.QueryRow(ctx, `SELECT size FROM blobs WHERE sha256 = $1`, sum).Scan(&size)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("blob %x: %w", sum, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("blob %x: %w", sum, err)
	}
	var written int64
	for first := 0; written < size; first += windowChunks {
		rows, err := s.pool.Query(ctx, `SELECT data FROM blob_chunks WHERE sha256 = $1 AND seq >= $2 AND seq < $3 ORDER BY seq`,
			sum, first, first+windowChunks)
		if err != nil {
			return fmt.Errorf("blob %x at chunk %d: %w", sum, first, err)
		}
		// The window is read whole and its connection given back before
		// any of it is written: a client that reads slowly (or never) must
		// not hold a connection of the pool.
		window, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
		if err != nil {
			return fmt.Errorf("blob %x at chunk %d: %w", sum, first, err)
		}
		if len(window) == 0 {
			return fmt.Errorf("blob %x: chunk %d missing after %d of %d bytes", sum, first, written, size)
		}
		for _, data := range window {
			n, err := w.Write(data)
			written += int64(n)
			if err != nil {
				return fmt.Errorf("write blob %x: %w", sum, err)
			}
		}
	}
	return nil
}
