package tickets

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"os"
)

// ErrSpool is a failure to keep an upload while it arrives (a full disk,
// say): the server's trouble, not the sender's.
var ErrSpool = errors.New("spool upload")

// uploadMemory is the size up to which an upload stays in memory; larger
// ones continue in a temporary file, so memory stays bounded.
const uploadMemory = 256 << 10

// ContentWriter takes in a file as it streams, hashing it: in memory at
// first, in a temporary file once it grows. Content then hands it to the
// store; Close removes the temporary file.
type ContentWriter struct {
	dir  string
	mem  bytes.Buffer
	file *os.File
	sum  hash.Hash
	size int64
}

// NewContentWriter returns a ContentWriter whose temporary file, if it
// needs one, goes in dir ("" for the system's).
func NewContentWriter(dir string) *ContentWriter {
	return &ContentWriter{dir: dir, sum: sha256.New()}
}

func (w *ContentWriter) Write(p []byte) (int, error) {
	if w.file == nil && w.mem.Len()+len(p) > uploadMemory {
		f, err := os.CreateTemp(w.dir, "helpdesk-upload-*")
		if err != nil {
			return 0, fmt.Errorf("%w: %w", ErrSpool, err)
		}
		w.file = f
		if _, err := f.Write(w.mem.Bytes()); err != nil {
			return 0, fmt.Errorf("%w: %w", ErrSpool, err)
		}
		w.mem = bytes.Buffer{}
	}
	var n int
	var err error
	if w.file != nil {
		n, err = w.file.Write(p)
	} else {
		n, err = w.mem.Write(p)
	}
	w.sum.Write(p[:n])
	w.size += int64(n)
	if err != nil {
		return n, fmt.Errorf("%w: %w", ErrSpool, err)
	}
	return n, nil
}

// Size is how many bytes were written.
func (w *ContentWriter) Size() int64 { return w.size }

// Content is what was written, readable until Close.
func (w *ContentWriter) Content() Content {
	c := Content{SHA256: [32]byte(w.sum.Sum(nil)), Size: w.size}
	if w.file != nil {
		c.Data = w.file
	} else {
		c.Data = bytes.NewReader(w.mem.Bytes())
	}
	return c
}

// Close releases the content: its temporary file is removed.
func (w *ContentWriter) Close() error {
	if w.file == nil {
		return nil
	}
	w.file.Close()
	if err := os.Remove(w.file.Name()); err != nil {
		return fmt.Errorf("remove spooled upload: %w", err)
	}
	return nil
}
