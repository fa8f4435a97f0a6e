package daemon

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signatory-go/signatory/internal/config"
	"github.com/signatory-go/signatory/internal/metrics"
)

// TestOpen: the shipped example config opens into a signer with its keys, on a fresh base
// directory; Close then releases the watermark directory, so a second Open succeeds.
func TestOpen(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile(filepath.Join("..", "..", "examples", "signatory.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// The example names its key file relative to the repository.
	src = []byte(strings.ReplaceAll(string(src), "examples/", filepath.Join("..", "..", "examples")+"/"))
	base := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for range 2 {
		cfg, err := config.Parse(src, base)
		if err != nil {
			t.Fatal(err)
		}
		d, err := Open(t.Context(), cfg, log, metrics.New("test"))
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Signer().Keys()) == 0 || len(d.Vaults()) == 0 {
			t.Fatalf("%d keys in %d vaults", len(d.Signer().Keys()), len(d.Vaults()))
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOpenUnknownStore: a watermark driver that does not exist stops Open, naming it and the
// drivers that do.
func TestOpenUnknownStore(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse([]byte("watermark: {driver: flie}\n"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(t.Context(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), metrics.New("test"))
	if err == nil || !strings.Contains(err.Error(), `"flie"`) || !strings.Contains(err.Error(), "file") {
		t.Fatalf("Open with an unknown watermark driver: %v", err)
	}
}
