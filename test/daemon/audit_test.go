package daemon

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signatory-go/signatory/internal/testdaemon"
)

// TestAuditJournal: every signature and refusal is journaled before the reply, and
// `signatory audit verify` detects a changed, removed or reordered line.
func TestAuditJournal(t *testing.T) {
	ks, js, tz := keys(t, 1)
	k := ks[0]
	d := newDaemon(t, js, tz)
	journal := filepath.Join(d.Dir, "audit", "audit.jsonl")
	cfg, _ := os.ReadFile(d.Config)
	if err := os.WriteFile(d.Config, append(cfg, []byte("audit:\n  file: "+journal+"\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	d.Serve()
	var signed int
	for level := int32(1); level <= 10; level++ {
		if status, _ := d.Sign(k.pkh, attestation(chainA, level, 0, 0)); status == 200 {
			signed++
		}
		d.Sign(k.pkh, attestation(chainA, level, 0, 1)) // 409
	}
	d.Sign(k.pkh, "0201")                                                        // 400
	d.Sign("tz1Ke2h7sDdakHJQh8WX4Z372du1KChsksyU", attestation(chainA, 1, 0, 0)) // 403
	// The journal holds every outcome already: no need to stop the daemon.
	f, err := os.Open(journal)
	if err != nil {
		t.Fatal(err)
	}
	outcomes := map[string]int{}
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e struct {
			Outcome string
			Status  int
			Level   *int32
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		outcomes[e.Outcome]++
		lines = append(lines, sc.Text())
	}
	f.Close()
	if outcomes["signed"] != signed || signed != 10 || outcomes["refused"] != 12 {
		t.Fatalf("journal outcomes %v, signed %d", outcomes, signed)
	}
	verify := func() (string, error) {
		out, err := testdaemon.RunTool(exec.Command(testdaemon.Binary(t), "audit", "verify", journal))
		return string(out), err
	}
	if out, err := verify(); err != nil || !strings.Contains(out, "ok: 22 lines") {
		t.Fatalf("verify: %v %s", err, out)
	}
	d.Stop()
	for name, edit := range map[string]func([]string) []string{
		"changed":   func(l []string) []string { l[5] = strings.Replace(l[5], `"refused"`, `"signed"`, 1); return l },
		"removed":   func(l []string) []string { return append(l[:4], l[5:]...) },
		"reordered": func(l []string) []string { l[4], l[5] = l[5], l[4]; return l },
	} {
		tampered := edit(append([]string{}, lines...))
		if err := os.WriteFile(journal, []byte(strings.Join(tampered, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := verify()
		if err == nil || !strings.Contains(out, "hash chain broken") || !strings.Contains(out, "line 5") && !strings.Contains(out, "line 7") {
			t.Fatalf("%s line not reported: %v %s", name, err, out)
		}
	}
}
