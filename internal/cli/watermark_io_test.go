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

// exportDoc is a signatory export with two chains, a tz1 and a tz4 key, marks with and without a
// signature and one without a digest.
const exportDoc = `{"version": 1, "watermarks": [
  {"chain_id": "NetXdQprcVkpaWU", "pkh": "tz1WGcYos3hL7GXYXjKrMnSFdkT7FyXnFBvf", "class": "block", "level": 34, "round": 4,
   "digest": "vh1gZf68GrDewSDmrqjEs84VAbQxS2BMtGNZuGVMBm3MK9k2E6RM",
   "signature": "edsigtpcsXBZdWMB5u6bReSpyydaP51U3vJG9UY8ES3W4s8JTtMZmxeDRS3wBhCf4C3rPcrspBDv5JRrELKtFv5CPX8zCEsQGq5"},
  {"chain_id": "NetXdQprcVkpaWU", "pkh": "tz1WGcYos3hL7GXYXjKrMnSFdkT7FyXnFBvf", "class": "attestation", "level": 34, "round": 4,
   "digest": "vh1h1CczSppsKv7qqsHzjRGZqHVjtEndwBZpC4JxgjgRr42PGetq"},
  {"chain_id": "NetXdQprcVkpaWU", "pkh": "tz4Es11RKNNmN99tRJYtyKV2XF4GeNoXuXNX", "class": "preattestation", "level": 35, "round": 0,
   "digest": "vh1hSk9rcoS5iQ1uptrkbiUeVyaXLTPuz6m4Ur8aBiKWNxGUEGNk",
   "signature": "BLsig4XnuGo4NgSHnCoDJNtJs8zz8qz3BYcHDZ9pyKY1gcQCAepcsdMcsmytX7LgqoxCT92adgcbJM8z4yh61nHyXQQey81Wt1RCy7aL4GAwyVYAvEWmxv5ttEH2QygsccDzbgT2F6zynU"},
  {"chain_id": "NetXnHfVqm9iesp", "pkh": "tz1WGcYos3hL7GXYXjKrMnSFdkT7FyXnFBvf", "class": "block", "level": 100, "round": 1, "digest": null},
  {"chain_id": "NetXnHfVqm9iesp", "pkh": "tz4Es11RKNNmN99tRJYtyKV2XF4GeNoXuXNX", "class": "attestation", "level": 7, "round": 2,
   "digest": "vh1htHginn3J6suyovRWU1gjAffJng1C31xJmdxBggxaurUdLYTC",
   "signature": "BLsig4XnuGo4NgSHnCoDJNtJs8zz8qz3BYcHDZ9pyKY1gcQCAepcsdMcsmytX7LgqoxCT92adgcbJM8z4yh61nHyXQQey81Wt1RCy7aL4GAwyVYAvEWmxv5ttEH2QygsccDzbgT2F6zynU"}]}`

// TestWatermarkExportOtherSigners: the file store's marks exported as octez-signer's and the
// reference's files and imported into an empty store give the same export again; importing them
// over a higher mark keeps it.
func TestWatermarkExportOtherSigners(t *testing.T) {
	srcCfg, _ := wmConfig(t, "  driver: file\n")
	doc := filepath.Join(t.TempDir(), "marks.json")
	if err := os.WriteFile(doc, []byte(exportDoc), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, _, err := run(t, "-c", srcCfg, "watermark", "import", doc); err != nil || !strings.Contains(out, "5 raised, 0 kept") {
		t.Fatalf("import: %v\n%s", err, out)
	}
	want, _, err := run(t, "-c", srcCfg, "watermark", "export")
	if err != nil || strings.Count(want, `"signature"`) != 3 || !strings.Contains(want, `"digest": null`) {
		t.Fatalf("export: %v\n%s", err, want)
	}
	for _, c := range []struct {
		format string
		files  []string
	}{
		{"octez", []string{"block_high_watermarks", "preattestation_high_watermarks", "attestation_high_watermarks"}},
		{"reference", []string{"watermark_v2/NetXdQprcVkpaWU.json", "watermark_v2/NetXnHfVqm9iesp.json"}},
	} {
		dir := filepath.Join(t.TempDir(), "out")
		_, stderr, err := run(t, "-c", srcCfg, "watermark", "export", "--format", c.format, "-o", dir)
		if err != nil || !strings.Contains(stderr, "exported 5 watermarks from the file store to "+dir) {
			t.Fatalf("%s: export: %v %s", c.format, err, stderr)
		}
		for _, f := range c.files {
			if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("%s: %s: %v", c.format, f, err)
			}
		}
		// ours → other signer's files → ours: the same marks, digests and signatures.
		dst, _ := wmConfig(t, "  driver: file\n")
		if out, _, err := run(t, "-c", dst, "watermark", "import", dir); err != nil || !strings.Contains(out, "5 raised, 0 kept") {
			t.Fatalf("%s: import: %v\n%s", c.format, err, out)
		}
		if got, _, err := run(t, "-c", dst, "watermark", "export"); err != nil || got != want {
			t.Fatalf("%s: round trip: %v\n%s\nwant\n%s", c.format, err, got, want)
		}
		// Into a store with a higher block mark: that one is kept, the others raised.
		high, _ := wmConfig(t, "  driver: file\n")
		higher := filepath.Join(t.TempDir(), "higher.json")
		if err := os.WriteFile(higher, []byte(`{"version": 1, "watermarks": [{"chain_id": "NetXdQprcVkpaWU",
			"pkh": "tz1WGcYos3hL7GXYXjKrMnSFdkT7FyXnFBvf", "class": "block", "level": 40, "round": 0, "digest": null}]}`), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, err := run(t, "-c", high, "watermark", "import", higher); err != nil {
			t.Fatal(err)
		}
		out, _, err := run(t, "-c", high, "watermark", "import", dir)
		if err != nil || !strings.Contains(out, "4 raised, 1 kept") || !strings.Contains(out, "(store has level 40 round 0)") {
			t.Fatalf("%s: import over higher marks: %v\n%s", c.format, err, out)
		}
		if out, _, err := run(t, "-c", high, "watermark", "show"); err != nil || !strings.Contains(out, "block           level 40 round 0") {
			t.Fatalf("%s: the higher mark was lowered: %v\n%s", c.format, err, out)
		}
		// The documented merge over existing files: import them (done above), then export with
		// --force: the files now hold the higher mark and all the others.
		if _, _, err := run(t, "-c", high, "watermark", "export", "--format", c.format, "-o", dir, "--force"); err != nil {
			t.Fatalf("%s: export --force: %v", c.format, err)
		}
		merged, _ := wmConfig(t, "  driver: file\n")
		if out, _, err := run(t, "-c", merged, "watermark", "import", dir); err != nil || !strings.Contains(out, "5 raised, 0 kept") {
			t.Fatalf("%s: import of the merged files: %v\n%s", c.format, err, out)
		}
		if out, _, err := run(t, "-c", merged, "watermark", "show"); err != nil || !strings.Contains(out, "block           level 40 round 0") {
			t.Fatalf("%s: merged files lack the higher mark: %v\n%s", c.format, err, out)
		}
	}
}

// TestWatermarkExportErrors: no -o, an unknown format and existing files are refused before
// anything is written; --force replaces the files.
func TestWatermarkExportErrors(t *testing.T) {
	cfg, _ := wmConfig(t, "  driver: file\n")
	doc := filepath.Join(t.TempDir(), "marks.json")
	if err := os.WriteFile(doc, []byte(exportDoc), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(t, "-c", cfg, "watermark", "import", doc); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "out")
	for args, want := range map[string]string{
		"--format octez":             "give the directory with -o DIR",
		"--format reference":         "give the directory with -o DIR",
		"--format octez -o -":        "give the directory with -o DIR",
		"--format bogus -o " + dir:   `--format "bogus": want signatory, octez or reference`,
		"--format Octez -o " + dir:   `--format "Octez"`,
		"--format reference-v1 -o -": `--format "reference-v1"`,
	} {
		_, _, err := run(t, append([]string{"-c", cfg, "watermark", "export"}, strings.Fields(args)...)...)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", args, err, want)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("a refused export created %s: %v", dir, err)
	}
	// An existing file: nothing written, the file unchanged.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	existing := filepath.Join(dir, "attestation_high_watermarks")
	if err := os.WriteFile(existing, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := run(t, "-c", cfg, "watermark", "export", "--format", "octez", "-o", dir)
	if err == nil || !strings.Contains(err.Error(), existing) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("existing file: %v", err)
	}
	if des, _ := os.ReadDir(dir); len(des) != 1 {
		t.Fatalf("files written next to the existing one: %v", des)
	}
	if data, _ := os.ReadFile(existing); string(data) != "{}" {
		t.Fatalf("existing file changed: %s", data)
	}
	if _, _, err := run(t, "-c", cfg, "watermark", "export", "--format", "octez", "-o", dir, "--force"); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(existing); !strings.Contains(string(data), "tz4Es11RKNNmN99tRJYtyKV2XF4GeNoXuXNX") {
		t.Fatalf("--force did not replace the file:\n%s", data)
	}
	// The reference files too.
	if _, _, err := run(t, "-c", cfg, "watermark", "export", "--format", "reference", "-o", dir); err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(t, "-c", cfg, "watermark", "export", "--format", "reference", "-o", dir); err == nil ||
		!strings.Contains(err.Error(), "NetXdQprcVkpaWU.json") || !strings.Contains(err.Error(), "NetXnHfVqm9iesp.json") {
		t.Fatalf("existing reference files: %v", err)
	}
}

// TestWatermarkFloor: `watermark floor` raises a key's marks on a chain to a level in every
// class, every round of it unless --round says otherwise, only ever raising; bad input changes
// nothing.
func TestWatermarkFloor(t *testing.T) {
	cfg, _ := wmConfig(t, "  driver: file\n")
	const key, chain = "tz4HVR6aty9KwsQFHh81C1G7gBdhxT8kuytm", "NetXdQprcVkpaWU"
	for _, args := range [][]string{
		{"--key", "tz1nope", "--chain", chain, "--level", "5"},
		{"--key", key, "--chain", "NetXnope", "--level", "5"},
		{"--key", key, "--chain", chain, "--level", "-1"},
		{"--key", key, "--chain", chain},
	} {
		if _, _, err := run(t, append([]string{"-c", cfg, "watermark", "floor"}, args...)...); err == nil {
			t.Fatalf("%v accepted", args)
		}
	}
	out, _, err := run(t, "-c", cfg, "watermark", "show", "--json")
	if err != nil || strings.TrimSpace(out) != "[]" {
		t.Fatalf("after refused floors: %v %s", err, out)
	}
	var rep importReport
	out, _, err = run(t, "-c", cfg, "watermark", "floor", "--key", key, "--chain", chain, "--level", "100", "--json")
	if err != nil || json.Unmarshal([]byte(out), &rep) != nil || rep.Raised != 3 {
		t.Fatalf("floor 100: %v %s", err, out)
	}
	out, _, err = run(t, "-c", cfg, "watermark", "floor", "--key", key, "--chain", chain, "--level", "100", "--round", "3", "--json")
	if err != nil || json.Unmarshal([]byte(out), &rep) != nil || rep.Raised != 0 || rep.Kept != 3 {
		t.Fatalf("floor 100 round 3 under 100, every round: %v %s", err, out)
	}
	out, _, err = run(t, "-c", cfg, "watermark", "show")
	for _, class := range []string{"block", "preattestation", "attestation"} {
		if err != nil || !strings.Contains(out, chain+"  "+key+"  "+class) || strings.Count(out, "level 100 round 2147483647") != 3 {
			t.Fatalf("show: %v\n%s", err, out)
		}
	}
}

// TestWatermarkShowIncomplete: when a mark cannot be read (here a corrupt chain file beside a good
// one), `watermark show` fails; its text output still lists the marks it read, for the operator's
// repair, and says it is incomplete; --json prints nothing.
func TestWatermarkShowIncomplete(t *testing.T) {
	cfg, base := wmConfig(t, "  driver: file\n")
	dir := filepath.Join(base, "watermark_v2")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "NetXdQprcVkpaWU.json"), []byte(chainFile), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "NetXnHfVqm9iesp.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err := run(t, "-c", cfg, "watermark", "show")
	if err == nil || !strings.Contains(err.Error(), "NetXnHfVqm9iesp") || !strings.Contains(out, "block           level 34 round 4") ||
		!strings.Contains(out, "INCOMPLETE") || strings.Contains(out, "no watermarks recorded") {
		t.Fatalf("show with a corrupt chain file: %v\n%s", err, out)
	}
	if out, _, err := run(t, "-c", cfg, "watermark", "show", "--json"); err == nil || out != "" {
		t.Fatalf("show --json with a corrupt chain file: %v\n%s", err, out)
	}
}
