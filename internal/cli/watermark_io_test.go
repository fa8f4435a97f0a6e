package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signatory-go/signatory/internal/watermark/postgres/postgrestest"
)

// wmConfig writes a config with only a watermark section and returns its path and base_dir.
func wmConfig(t *testing.T, watermark string) (string, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "signatory.yaml")
	src := fmt.Sprintf("base_dir: %s\nwatermark:\n%s", filepath.Join(dir, "data"), watermark)
	if err := os.WriteFile(cfg, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg, filepath.Join(dir, "data")
}

const chainFile = `{
    "tz1WGcYos3hL7GXYXjKrMnSFdkT7FyXnFBvf": {
        "block":          {"level": 34, "round": 4, "hash": "vh2QmrcNURnrNwT5HEJv6ZA8n2gfw1MzThoBHK7dgyJsjHmVJhvj"},
        "preattestation": {"level": 34, "round": 4, "hash": "vh1mTiEJuJiyimZf5sctgbnHBTLFthMVRNbiViYpLDMGK79TzUwB"},
        "attestation":    {"level": 35, "round": 0, "hash": null}
    }
}`

type importReport struct {
	Backend string
	DryRun  bool `json:"dry_run"`
	Raised  int
	Kept    int
	Items   []struct{ Outcome, Class string }
}

// migrate runs the documented move from the file store to the store of dstCfg: export from the
// file store, import into the destination, and check that a second import keeps everything.
func migrate(t *testing.T, dstCfg string) {
	srcCfg, srcBase := wmConfig(t, "  driver: file\n")
	if err := os.MkdirAll(filepath.Join(srcBase, "watermark_v2"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(srcBase, "watermark_v2", "NetXdQprcVkpaWU.json"), []byte(chainFile), 0o600); err != nil {
		t.Fatal(err)
	}
	export := filepath.Join(t.TempDir(), "wm.json")
	if _, stderr, err := run(t, "-c", srcCfg, "watermark", "export", "-o", export); err != nil || !strings.Contains(stderr, "exported 3 watermarks") {
		t.Fatalf("export: %v %s", err, stderr)
	}
	data, _ := os.ReadFile(export)
	if !strings.Contains(string(data), `"version": 1`) || !strings.Contains(string(data), `"digest": null`) {
		t.Fatalf("export:\n%s", data)
	}
	var rep importReport
	out, _, err := run(t, "-c", dstCfg, "watermark", "import", "--dry-run", "--json", export)
	if err != nil || json.Unmarshal([]byte(out), &rep) != nil || !rep.DryRun || rep.Raised != 3 {
		t.Fatalf("dry run: %v %s", err, out)
	}
	out, _, err = run(t, "-c", dstCfg, "watermark", "import", "--json", export)
	if err != nil || json.Unmarshal([]byte(out), &rep) != nil || rep.Raised != 3 || rep.Kept != 0 {
		t.Fatalf("import: %v %s", err, out)
	}
	// Importing the reference files themselves now changes nothing.
	out, _, err = run(t, "-c", dstCfg, "watermark", "import", srcBase)
	if err != nil || !strings.Contains(out, "0 raised, 3 kept") || !strings.Contains(out, "(already recorded)") {
		t.Fatalf("second import: %v\n%s", err, out)
	}
	out, _, err = run(t, "-c", dstCfg, "watermark", "show", "--json")
	if err != nil || strings.Count(out, `"chain_id": "NetXdQprcVkpaWU"`) != 3 {
		t.Fatalf("show: %v\n%s", err, out)
	}
}

func TestWatermarkExportImportFile(t *testing.T) {
	dst, dstBase := wmConfig(t, "  driver: file\n")
	migrate(t, dst)
	// A lower octez mark is kept, a higher one raised.
	octez := filepath.Join(t.TempDir(), "attestation_high_watermarks")
	src := `{"NetXdQprcVkpaWU": {"tz1WGcYos3hL7GXYXjKrMnSFdkT7FyXnFBvf": {"level": 36, "round": 1, "hash": "` + strings.Repeat("ab", 32) + `"}}}`
	if err := os.WriteFile(octez, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err := run(t, "-c", dst, "watermark", "import", octez)
	if err != nil || !strings.Contains(out, "1 raised, 0 kept") || !strings.Contains(out, "(was level 35 round 0)") {
		t.Fatalf("octez import: %v\n%s", err, out)
	}
	data, err := os.ReadFile(filepath.Join(dstBase, "watermark_v2", "NetXdQprcVkpaWU.json"))
	if err != nil || !strings.Contains(string(data), `"level": 36`) {
		t.Fatalf("file store after import: %v\n%s", err, data)
	}
	if _, _, err := run(t, "-c", dst, "watermark", "import", "--format", "bogus", octez); err == nil {
		t.Fatal("--format bogus accepted")
	}
	bad := filepath.Join(t.TempDir(), "x.json")
	os.WriteFile(bad, []byte(`{"version":1,"watermarks":[{"chain_id":"nope"}]}`), 0o600)
	if _, _, err := run(t, "-c", dst, "watermark", "import", bad, octez); err == nil || !strings.Contains(err.Error(), "chain_id") {
		t.Fatalf("bad file: %v", err)
	}
}

func TestWatermarkMigrateToPostgres(t *testing.T) {
	pg := postgrestest.Start(t)
	dst, _ := wmConfig(t, "  driver: postgres\n  config:\n    dsn: "+pg.DSN+"\n    table: migrated\n")
	migrate(t, dst)
}
