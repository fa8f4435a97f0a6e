// Command vulndb builds a govulncheck database directory from the OSV files of the
// golang.org/x/vulndb module (which the Go module proxy serves), for machines that cannot reach
// vuln.go.dev. Usage: go run ./tools/vulndb <vulndb module dir> <output dir>
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

type osv struct {
	ID       string `json:"id"`
	Modified string `json:"modified"`
	Affected []struct {
		Package struct {
			Name string `json:"name"`
		} `json:"package"`
		Ranges []struct {
			Events []map[string]string `json:"events"`
		} `json:"ranges"`
	} `json:"affected"`
}

type vuln struct {
	ID       string `json:"id"`
	Modified string `json:"modified"`
	Fixed    string `json:"fixed,omitempty"`
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: vulndb <vulndb module dir> <output dir>")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "vulndb:", err)
		os.Exit(1)
	}
}

func run(src, out string) error {
	files, err := filepath.Glob(filepath.Join(src, "data", "osv", "*.json"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no OSV files under %s/data/osv (%v)", src, err)
	}
	for _, d := range []string{"index", "ID"} {
		if err := os.MkdirAll(filepath.Join(out, d), 0o755); err != nil {
			return err
		}
	}
	modules := map[string][]vuln{}
	latest := ""
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var e osv
		if err := json.Unmarshal(raw, &e); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		if err := os.WriteFile(filepath.Join(out, "ID", filepath.Base(f)), raw, 0o644); err != nil {
			return err
		}
		if e.Modified > latest {
			latest = e.Modified
		}
		for _, a := range e.Affected {
			if a.Package.Name == "" {
				continue
			}
			v := vuln{ID: e.ID, Modified: e.Modified}
			for _, r := range a.Ranges {
				for _, ev := range r.Events {
					if fx := ev["fixed"]; fx > v.Fixed {
						v.Fixed = fx
					}
				}
			}
			modules[a.Package.Name] = append(modules[a.Package.Name], v)
		}
	}
	paths := make([]string, 0, len(modules))
	for p := range modules {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	type entry struct {
		Path  string `json:"path"`
		Vulns []vuln `json:"vulns"`
	}
	index := make([]entry, 0, len(paths))
	for _, p := range paths {
		index = append(index, entry{p, modules[p]})
	}
	write := func(name string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(out, "index", name), b, 0o644)
	}
	if err := write("modules.json", index); err != nil {
		return err
	}
	if err := write("db.json", map[string]string{"modified": latest}); err != nil {
		return err
	}
	fmt.Printf("vulndb: %d OSV entries, %d modules\n", len(files), len(paths))
	return nil
}
