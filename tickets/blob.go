package tickets

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"
)

// chunkSize bounds the memory a blob costs on its way in or out.
const chunkSize = 256 << 10

// inlineBlobSize is the size up to which contents are stored together, one
// statement for all of a batch's; larger ones are stored a chunk at a time.
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
	return Content{SHA256: sha256.Sum256(b), Size: int64(len(b)), Data: &bytesReaderAt{b}}
}

type bytesReaderAt struct{ b []byte }

func (r *bytesReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(r.b)) {
		return 0, io.EOF
	}
	n := copy(p, r.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
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
	buf := make([]byte, min(int64(chunkSize), max(c.Size, 1)))
	var off int64
	for seq := 0; off < c.Size || seq == 0; seq++ {
		n, err := c.Data.ReadAt(buf[:min(int64(len(buf)), c.Size-off)], off)
		if err != nil && !(errors.Is(err, io.EOF) && int64(n) == c.Size-off) {
			return fmt.Errorf("read blob %x at %d: %w", c.SHA256[:8], off, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO blob_chunks (sha256, seq, data) VALUES ($1, $2, $3)`, c.SHA256[:], seq, buf[:n]); err != nil {
			return fmt.Errorf("store blob %x chunk %d: %w", c.SHA256[:8], seq, err)
		}
		off += int64(n)
	}
	return nil
}

// WriteBlob copies the blob with the given hash to w, a chunk at a time.
func (s *Store) WriteBlob(ctx context.Context, sum []byte, w io.Writer) error {
	var size int64
	err := s.pool.QueryRow(ctx, `SELECT size FROM blobs WHERE sha256 = $1`, sum).Scan(&size)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("blob %x: %w", sum, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("blob %x: %w", sum, err)
	}
	// One chunk per query: a cursor over all of them would buffer rows.
	var written int64
	for seq := 0; written < size; seq++ {
		var data []byte
		if err := s.pool.QueryRow(ctx, `SELECT data FROM blob_chunks WHERE sha256 = $1 AND seq = $2`, sum, seq).Scan(&data); err != nil {
			return fmt.Errorf("blob %x chunk %d: %w", sum, seq, err)
		}
		n, err := w.Write(data)
		written += int64(n)
		if err != nil {
			return fmt.Errorf("write blob %x: %w", sum, err)
		}
	}
	return nil
}
