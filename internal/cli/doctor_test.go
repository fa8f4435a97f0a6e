package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signatory-go/signatory/internal/doctor"
)

// TestDoctor: the command prints each finding with its fix, as text or JSON, and fails only when
// one is an error.
func TestDoctor(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(address string) string {
		cfg := filepath.Join(dir, "signatory.yaml")
		src := "base_dir: " + filepath.Join(dir, "data") + "\nserver: {address: \"" + address + "\", utility_address: 127.0.0.1:9583}\nwatermark: {driver: mem}\n"
		if err := os.WriteFile(cfg, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	out, _, err := run(t, "doctor", "-c", write("127.0.0.1:6732"))
	if err != nil || !strings.Contains(out, "base-dir") || !strings.Contains(out, "fix: ") {
		t.Fatalf("a config with only an info: %v\n%s", err, out)
	}
	out, _, err = run(t, "doctor", "-c", write("0.0.0.0:6732"), "--json")
	if err == nil || !strings.Contains(err.Error(), "1 error") {
		t.Fatalf("a signing port open to all without authentication: %v", err)
	}
	var findings []doctor.Finding
	if jerr := json.Unmarshal([]byte(out), &findings); jerr != nil || len(findings) == 0 || findings[0].Check != "authentication" || findings[0].Severity != doctor.Error {
		t.Fatalf("JSON: %v\n%s", jerr, out)
	}
}
