package mailin

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/helpdeskgw/helpdesk/tickets"
)

// memoryLimit is the size up to which a spooled body stays in memory; larger
// ones go to a temporary file, so memory stays bounded whatever the mail.
const memoryLimit = 64 << 10

// errSpool marks a failure to write the spool (a full disk, say), as opposed
// to one reading the input.
var errSpool = errors.New("spool")

// spool copies r into memory or, past memoryLimit, a temporary file in dir,
// hashing it on the way. The returned Content stays readable until release
// is called. An error reading r is returned as it is, with what was read
// before it; a failure to write the spool is errSpool.
func spool(r io.Reader, dir string) (tickets.Content, func(), error) {
	h := sha256.New()
	buf := bytes.NewBuffer(make([]byte, 0, 16<<10))
	n, err := io.Copy(io.MultiWriter(buf, h), io.LimitReader(r, memoryLimit+1))
	if err != nil || n <= memoryLimit {
		return tickets.Content{SHA256: [32]byte(h.Sum(nil)), Size: n, Data: bytes.NewReader(buf.Bytes())}, func() {}, err
	}
	f, err := os.CreateTemp(dir, "helpdesk-spool-*")
	if err != nil {
		return tickets.Content{}, func() {}, fmt.Errorf("%w: %w", errSpool, err)
	}
	release := func() {
		f.Close()
		os.Remove(f.Name())
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		release()
		return tickets.Content{}, func() {}, fmt.Errorf("%w: %w", errSpool, err)
	}
	rest, err := io.Copy(&fileWriter{f}, io.TeeReader(r, h))
	if errors.Is(err, errSpool) {
		release()
		return tickets.Content{}, func() {}, err
	}
	return tickets.Content{SHA256: [32]byte(h.Sum(nil)), Size: n + rest, Data: f}, release, err
}

// fileWriter marks its write errors as errSpool.
type fileWriter struct{ f *os.File }

func (w *fileWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if err != nil {
		err = fmt.Errorf("%w: %w", errSpool, err)
	}
	return n, err
}

// reader reads c from its start.
func reader(c tickets.Content) io.Reader { return io.NewSectionReader(c.Data, 0, c.Size) }
