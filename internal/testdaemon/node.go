package testdaemon

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// RequireNode returns the path of node (20 or later) once the npm packages that package.json (in
// the test's directory, prefix from the repository's root) pins are installed in exactly those
// versions, or is Unavailable.
func RequireNode(tb testing.TB, prefix string) string {
	tb.Helper()
	if err := checkNodeModules(); err != nil {
		Unavailable(tb, "%v: run `npm ci --prefix %s` first", err, prefix)
	}
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		Unavailable(tb, "node is not in PATH (Node 20 or later is needed)")
	}
	if v, err := RunTool(exec.Command(nodeBin, "--version")); err != nil {
		Unavailable(tb, "%v", err)
	} else if major, _ := strconv.Atoi(strings.SplitN(strings.TrimPrefix(strings.TrimSpace(string(v)), "v"), ".", 2)[0]); major < 20 {
		Unavailable(tb, "node %s is too old: Node 20 or later is needed", strings.TrimSpace(string(v)))
	}
	return nodeBin
}

// checkNodeModules reports whether node_modules holds exactly the versions package.json pins.
func checkNodeModules() error {
	var pkg struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	b, err := os.ReadFile("package.json")
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &pkg); err != nil {
		return fmt.Errorf("package.json: %w", err)
	}
	for name, want := range pkg.Dependencies {
		var got struct {
			Version string `json:"version"`
		}
		b, err := os.ReadFile(filepath.Join("node_modules", filepath.FromSlash(name), "package.json"))
		if err != nil {
			return fmt.Errorf("%s is not installed", name)
		}
		if err := json.Unmarshal(b, &got); err != nil || got.Version != want {
			return fmt.Errorf("node_modules has %s %q, package.json pins %q", name, got.Version, want)
		}
	}
	return nil
}
