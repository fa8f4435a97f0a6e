package docs

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestArchitectureTable: docs/architecture.md's package table names every package of the module
// (by its path, or as `sub/` or `sub` in the row of a package above it), and every path it lists
// exists, so that the table cannot drift from the code.
func TestArchitectureTable(t *testing.T) {
	t.Parallel()
	golist := func(args ...string) ([]byte, error) {
		cmd := exec.Command("go", append([]string{"list"}, args...)...)
		cmd.Dir = root
		return cmd.Output()
	}
	out, err := golist("-f", "{{.ImportPath}}", "./...")
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	if n := len(strings.Fields(string(out))); n < 40 {
		t.Fatalf("go list found %d packages: not run from the module's root?", n)
	}
	mod, err := golist("-m")
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	prefix := strings.TrimSpace(string(mod)) + "/"
	b, err := os.ReadFile(filepath.Join(root, "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{} // the first column's path → the whole row
	rowRE := regexp.MustCompile("(?m)^\\| `([^`]+)` \\|(.*)$")
	for _, m := range rowRE.FindAllStringSubmatch(string(b), -1) {
		rows[strings.TrimSuffix(m[1], "/")] = m[2]
	}
	if len(rows) < 20 {
		t.Fatalf("only %d rows read from the package table: its format changed", len(rows))
	}
	for path := range rows {
		if fi, err := os.Stat(filepath.Join(root, path)); err != nil || !fi.IsDir() {
			t.Errorf("docs/architecture.md lists %s, which is not a directory of the repository", path)
		}
	}
	for _, pkg := range strings.Fields(string(out)) {
		rel := strings.TrimPrefix(pkg, prefix)
		if !described(rows, rel) {
			t.Errorf("package %s is not in docs/architecture.md's table (a row of its own, or `%s/` in the row of a package above it)", rel, filepath.Base(rel))
		}
	}
}

// described reports whether rel has a row, or is named relative to an ancestor's row.
func described(rows map[string]string, rel string) bool {
	if _, ok := rows[rel]; ok {
		return true
	}
	for dir := filepath.Dir(rel); dir != "." && dir != "/"; dir = filepath.Dir(dir) {
		row, ok := rows[dir]
		if !ok {
			continue
		}
		sub := strings.TrimPrefix(rel, dir+"/")
		if strings.Contains(row, "`"+sub+"/`") || strings.Contains(row, "`"+sub+"`") {
			return true
		}
	}
	return false
}
