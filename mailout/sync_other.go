//go:build !linux

package mailout

import "os"

// syncFiles makes files written and renamed in dir durable: each file, then
// the directory.
func syncFiles(dir string, files []string) error {
	for _, n := range append(files, dir) {
		f, err := os.Open(n)
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
