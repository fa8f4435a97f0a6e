package file

import "github.com/signatory-go/signatory/internal/durable"

// tmpPrefix starts the name of every temp file this package creates in the watermark directory.
// Such files never end in ".json", so loading ignores them; Open removes leftovers of a crash.
const tmpPrefix = ".watermark-tmp-"

// writeDurable replaces path by data so that after it returns nil the new content survives a
// crash (durable.WriteFile). On error path is either untouched or already holds data; the temp
// file is removed. A variable, so that tests can make it fail.
var writeDurable = writeDurableFile

func writeDurableFile(path string, data []byte) error {
	return durable.WriteBytes(path, tmpPrefix, data)
}

// syncDir makes the directory's entries (a rename, a new file) durable.
func syncDir(dir string) error { return durable.SyncDir(dir) }
