package daemon

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/signatory-go/signatory/internal/request/requesttest"
	"github.com/signatory-go/signatory/internal/testdaemon"
	"github.com/signatory-go/signatory/internal/tezos"
)

// keyFile returns a key file with one fresh key of curve c, and its key.
func keyFile(t *testing.T, c tezos.Curve) (testKey, string) {
	priv, err := tezos.GenerateKey(c)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal([]map[string]string{{"name": "k", "value": "unencrypted:" + string(priv.ToBase58())}})
	return testKey{priv: priv, pkh: priv.Public().Hash().String()}, string(js)
}

func consensusPolicy(pkh string) string {
	return fmt.Sprintf("  %s:\n    allow:\n      block:\n      preattestation:\n      attestation:\n      attestation_with_dal:\n", pkh)
}

// TestECDSAIdenticalGetsStoredSignature is the regression test of a reproduced double-bake: the
// same block bytes for a tz2 or tz3 key, asked twice (also across a kill -9), got two different
// ECDSA signatures — two block hashes at one level and round. The second answer must be the
// first signature.
func TestECDSAIdenticalGetsStoredSignature(t *testing.T) {
	t.Parallel()
	for _, c := range []tezos.Curve{tezos.Secp256k1, tezos.P256} {
		t.Run(string(c), func(t *testing.T) {
			t.Parallel()
			k, js := keyFile(t, c)
			d := newDaemon(t, js, consensusPolicy(k.pkh))
			d.Serve()
			block := requesttest.Block(chainA, 100, 0, 1)
			att := requesttest.ConsensusTag(requesttest.TagAttestation, chainA, 100, 0, 1)
			first := map[string]string{}
			for _, p := range []string{block, att} {
				status, sig := d.Sign(k.pkh, p)
				if status != 200 {
					t.Fatalf("first: %d %s", status, sig)
				}
				verify(t, k, p, sig)
				first[p] = sig
				if status, again := d.Sign(k.pkh, p); status != 200 || again != sig {
					t.Fatalf("identical request: %d %s, want the first signature %s", status, again, sig)
				}
			}
			d.Kill()
			d.Serve()
			for p, sig := range first {
				if status, again := d.Sign(k.pkh, p); status != 200 || again != sig {
					t.Fatalf("identical request after kill -9: %d %s, want %s", status, again, sig)
				}
			}
			if status, msg := d.Sign(k.pkh, requesttest.Block(chainA, 100, 0, 2)); status != 409 || msg != "watermark validation failed" {
				t.Fatalf("other block at the same level and round: %d %s", status, msg)
			}
			// The client sees the reference's message; the log says what blocked the request.
			// (The log reaches the test through a pipe, after the answer: wait for it.)
			if !d.WaitLogWithin("stored_level=100", time.Minute) || !strings.Contains(d.Logs(), "the bytes differ") {
				t.Fatalf("the refusal's log line does not say what blocked it:\n%s", d.Logs())
			}
		})
	}
}

// TestSecondProcessOnOneDirectory is the regression test of a reproduced double-bake: a second
// `signatory serve` on the same base_dir kept its own memory and signed block B at the level
// where the first had signed block A. Now it does not start, and says why; `watermark import`
// refuses while the daemon runs, and `watermark show` still works.
func TestSecondProcessOnOneDirectory(t *testing.T) {
	t.Parallel()
	k, js := keyFile(t, tezos.Ed25519)
	first := newDaemon(t, js, consensusPolicy(k.pkh))
	first.Serve()
	if status, msg := first.Sign(k.pkh, requesttest.Block(chainA, 50, 0, 1)); status != 200 {
		t.Fatalf("%d %s", status, msg)
	}
	// The second process: same config and base_dir, other ports.
	second := testdaemon.New(t)
	second.Name = "second"
	cfg, err := os.ReadFile(first.Config)
	if err != nil {
		t.Fatal(err)
	}
	cfg = []byte(strings.NewReplacer(first.Addr, second.Addr, first.UtilityAddr, second.UtilityAddr).Replace(string(cfg)))
	if err := os.WriteFile(second.Config, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	second.Launch("serve", "-c", second.Config)
	<-second.Done()
	lock := filepath.Join(first.Dir, "data", "watermark_v2", "signatory.lock")
	if !strings.Contains(second.Logs(), lock) || !strings.Contains(second.Logs(), "is held by pid") {
		t.Fatalf("the second process did not refuse with the lock and its holder:\n%s", second.Logs())
	}
	if status, msg := first.Sign(k.pkh, requesttest.Block(chainA, 50, 0, 2)); status != 409 {
		t.Fatalf("block B at the level of block A: %d %s", status, msg)
	}
	// watermark import takes the lock too; watermark show reads a snapshot.
	exp := filepath.Join(t.TempDir(), "export.json")
	os.WriteFile(exp, []byte(`{"version":1,"watermarks":[]}`), 0o600)
	imp := testdaemon.New(t)
	imp.Launch("watermark", "import", "-c", first.Config, exp)
	<-imp.Done()
	if imp.Err() == nil || !strings.Contains(imp.Logs(), "locked by another process") {
		t.Fatalf("watermark import while the daemon runs: %v\n%s", imp.Err(), imp.Logs())
	}
	show := testdaemon.New(t)
	show.Launch("watermark", "show", "-c", first.Config)
	<-show.Done()
	if show.Err() != nil || !strings.Contains(show.Logs(), "level 50 round 0") {
		t.Fatalf("watermark show while the daemon runs: %v\n%s", show.Err(), show.Logs())
	}
	// Once the first is gone (kill -9: the kernel drops the lock), a new process starts.
	first.Kill()
	second.Serve()
	if status, msg := second.Sign(k.pkh, requesttest.Block(chainA, 50, 0, 2)); status != 409 {
		t.Fatalf("after the takeover, block B: %d %s", status, msg)
	}
}

// TestReferenceFileMigrationAndRollback is the regression test of migration on the file store:
// the reference implementation keeps DAL attestations (tag 23) under attestation_with_dal. Its
// mark blocks our attestations at that level; and after we attest, the file carries the mark
// under attestation_with_dal too, so that the reference, started again, cannot attest with DAL at
// a level we attested.
func TestReferenceFileMigrationAndRollback(t *testing.T) {
	t.Parallel()
	k, js := keyFile(t, tezos.Secp256k1)
	d := newDaemon(t, js, consensusPolicy(k.pkh))
	dir := filepath.Join(d.Dir, "data", "watermark_v2")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// What the reference wrote after a tag-23 attestation at level 40 round 1 (hash: any digest).
	ref := fmt.Sprintf(`{
    %q: {
        "attestation_with_dal": {"level": 40, "round": 1, "hash": "vh2UEcdXfsAWcTP1omYSp1q54H5S2x3zqfr2YqAcZ2Neyjauix1K"}
    }
}`, k.pkh)
	chainFile := filepath.Join(dir, "NetXo5iVw1vBoxM.json")
	if err := os.WriteFile(chainFile, []byte(ref), 0o600); err != nil {
		t.Fatal(err)
	}
	d.Serve()
	for _, p := range []string{
		requesttest.ConsensusTag(requesttest.TagAttestation, chainA, 40, 1, 0),
		requesttest.ConsensusTag(requesttest.TagBLSAttestation, chainA, 40, 0, 0),
		requesttest.ConsensusTag(requesttest.TagAttestationWithDAL, chainA, 39, 5, 0),
	} {
		if status, msg := d.Sign(k.pkh, p); status != 409 {
			t.Fatalf("attestation at or below the reference's DAL mark: %d %s", status, msg)
		}
	}
	p := requesttest.ConsensusTag(requesttest.TagAttestation, chainA, 41, 0, 0)
	status, sig := d.Sign(k.pkh, p)
	if status != 200 {
		t.Fatalf("attestation above the mark: %d %s", status, sig)
	}
	d.Stop()
	// Rollback: what the reference reads.
	data, err := os.ReadFile(chainFile)
	if err != nil {
		t.Fatal(err)
	}
	var f map[string]map[string]struct {
		Level, Round int32
		Hash         *string
		Signature    string
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	for _, class := range []string{"attestation", "attestation_with_dal"} {
		if m := f[k.pkh][class]; m.Level != 41 || m.Round != 0 || m.Hash == nil {
			t.Fatalf("%s written as %+v:\n%s", class, m, data)
		}
	}
	if f[k.pkh]["attestation"].Signature != sig {
		t.Fatalf("stored signature %q, released %q", f[k.pkh]["attestation"].Signature, sig)
	}
}
