package file

import (
	"os"
	"syscall"
)

// fdatasync makes f's written data durable without its metadata when the size is unchanged
// (fdatasync): a journal is preallocated, so a record costs one device flush.
func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}
