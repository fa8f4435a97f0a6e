//go:build !linux

package file

import "os"

// fdatasync is f.Sync where fdatasync is not available.
func fdatasync(f *os.File) error { return f.Sync() }
