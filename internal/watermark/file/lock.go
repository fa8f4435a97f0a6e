package file

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// LockName is the lock file in the watermark directory. Its name does not end in ".json", so
// loading ignores it.
const LockName = "signatory.lock"

// dirLock is an exclusive flock(2) on <dir>/signatory.lock, held for the life of the Store. The
// kernel releases it when the process ends, however it ends (kill -9 included), so a stale lock
// never blocks a restart. The file's content names the holder, for the error another process gets.
type dirLock struct{ f *os.File }

// ErrLocked is wrapped by Open's error when another process holds the directory.
var ErrLocked = errors.New("watermark directory is locked by another process")

// lockDir takes the lock or fails at once, naming the holder.
func lockDir(dir string) (*dirLock, error) {
	path := filepath.Join(dir, LockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cannot open the lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder := readHolder(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is held by %s. Only one signatory (or `signatory watermark import`) "+
				"may use a watermark directory at a time: a second writer keeps its own memory and could sign "+
				"twice at one level. Stop the other process, or give this one another base_dir", ErrLocked, path, holder)
		}
		return nil, fmt.Errorf("cannot lock %s: %w", path, err)
	}
	host, _ := os.Hostname()
	info := fmt.Sprintf("pid %d on host %s since %s (%s)", os.Getpid(), host,
		time.Now().UTC().Format(time.RFC3339), strings.Join(os.Args, " "))
	info = info[:min(len(info), 511)] + "\n"
	// Best effort: the lock itself is the flock, not the content.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(info), 0)
	}
	return &dirLock{f: f}, nil
}

// readHolder is what the lock file at path says of its holder (at most 200 characters), or
// "unknown holder".
func readHolder(path string) string {
	b, err := os.ReadFile(path)
	holder := strings.TrimSpace(string(b))
	if err != nil || holder == "" {
		return "unknown holder"
	}
	return holder[:min(len(holder), 200)]
}

// Holder reports whether a process holds the watermark directory under base now, and what the
// lock file says of it. It creates nothing; the probe is a non-blocking flock, dropped at once
// (signatory doctor).
func Holder(base string) (holder string, held bool) {
	path := filepath.Join(base, DirName, LockName)
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return readHolder(path), true
	}
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return "", false
}

// release drops the lock; the file stays, so a later holder reuses it.
func (l *dirLock) release() error {
	if l == nil || l.f == nil {
		return nil
	}
	// Unlock explicitly before closing: a child process being started at this moment (fork, then
	// exec) holds a copy of the descriptor until its exec, and the flock belongs to the open file
	// description they share, so closing ours alone would leave the directory locked for that
	// instant. LOCK_UN on any copy releases it.
	uerr := syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	err := l.f.Close()
	l.f = nil
	return errors.Join(uerr, err)
}
