// Package durable is the one way this project replaces a file so that a crash cannot lose or
// tear it: write a temp file in the same directory, fsync it, close it, rename it over the
// target, fsync the directory. The watermark file store, the file vault, `watermark export` and
// the audit journal's rotation all use it.
package durable

import (
	"io"
	"os"
	"path/filepath"
)

// WriteFile replaces path with what write produces. When it returns nil the new content is on
// disk and survives a crash; on error path is either untouched or already holds the new
// content, and the temp file (named tmpPrefix + random, mode 0600, in path's directory) is gone.
func WriteFile(path, tmpPrefix string, write func(io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, tmpPrefix+"*") // mode 0600
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close() // may already be closed; the error does not matter then
			os.Remove(tmp)
		}
	}()
	if err = write(f); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	return SyncDir(dir)
}

// WriteBytes is WriteFile of data.
func WriteBytes(path, tmpPrefix string, data []byte) error {
	return WriteFile(path, tmpPrefix, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// SyncDir makes a directory's entries (a rename, a new file) durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
