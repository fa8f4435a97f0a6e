package file

import (
	"os"
)

// tmpPrefix starts the name of every temp file this package creates in the watermark directory.
// Such files never end in ".json", so loading ignores them; Open removes leftovers of a crash.
const tmpPrefix = ".watermark-tmp-"

// writeDurable replaces path (in dir) by data so that after it returns nil the new content
// survives a crash: temp file in the same dir, fsync, close, rename over path, fsync dir.
// On error path is either untouched or already holds data; the temp file is removed.
func writeDurable(dir, path string, data []byte) (err error) {
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
	if _, err = f.Write(data); err != nil {
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
	return syncDir(dir)
}

// syncDir makes the directory's entries (a rename, a new file) durable.
func syncDir(dir string) error {
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
