package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	blst "github.com/ecadlabs/goblst"
	"github.com/ecadlabs/goblst/minpk"
	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/blsthreshold"
	tv "github.com/signatory-go/signatory/internal/testvectors"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
	vaultfile "github.com/signatory-go/signatory/internal/vault/file"
)

func runIn(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	root := NewRoot(&out, &errb)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

// TestThresholdSplit: a key read from stdin is split 2-of-3; the group key is the input key's;
// each member's secret_keys file opens as a file vault (encrypted with the given password), and
// the signatures of any two members' vaults combine into exactly the input key's signature.
func TestThresholdSplit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("share password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(dir, "members")
	out, err := runIn(t, "unencrypted:"+tv.K7SK+"\n", "threshold", "split", "-t", "2", "-n", "3", "--json",
		"--password-file", pw, "--secret-keys-dir", keys)
	if err != nil {
		t.Fatal(err)
	}
	var res splitJSON
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if res.GroupPKH != tv.K7PKH || res.Threshold != 2 || len(res.Shares) != 3 {
		t.Fatalf("%+v", res)
	}
	if strings.Contains(out, "BLsk") {
		t.Fatal("an unencrypted share was printed although a password was given")
	}
	priv, err := tezos.ParseSecretKey(tv.K7SK, nil)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("\x13an attestation")
	want := (*minpk.Signature)(minpk.Sign((*minpk.PrivateKey)(priv.(*crypt.BLSPrivateKey)), msg, blst.ProofOfPossession)).Bytes()
	partials := map[int]*crypt.BLSSignature{}
	for _, s := range res.Shares {
		path := filepath.Join(keys, "member-"+string(rune('0'+s.Index)), "secret_keys")
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", path, fi, err)
		}
		v, err := vaultfile.Open("m", vaultfile.Config{File: path, PasswordFile: pw}, vault.Env{})
		if err != nil {
			t.Fatal(err)
		}
		ks, err := v.List(t.Context())
		if err != nil || len(ks) != 1 || ks[0].PublicKey().Hash().String() != s.PKH {
			t.Fatalf("member %d: %v %v", s.Index, ks, err)
		}
		if s.Index == 2 {
			continue // members 1 and 3 sign
		}
		d := [32]byte(crypt.DigestFunc(msg))
		sig, err := ks[0].Sign(t.Context(), msg, &d, vault.SignOptions{Version: 2})
		if err != nil {
			t.Fatal(err)
		}
		partials[s.Index] = sig.(*crypt.BLSSignature)
		v.Close()
	}
	sig, err := blsthreshold.CombineSignatures(partials)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal((*minpk.Signature)(sig).Bytes(), want) {
		t.Fatal("members 1 and 3 did not combine into the key's own signature")
	}
	if _, err := runIn(t, "", "threshold", "split", "-t", "2", "-n", "3", "--generate", "--secret-keys-dir", keys); err == nil ||
		!strings.Contains(err.Error(), "not overwritten") {
		t.Fatalf("existing files: %v", err)
	}
}

// TestThresholdSplitRefuses: thresholds of half or less (unless asked for), keys that are not
// BLS, encrypted input and nothing on stdin are refused with a clear error.
func TestThresholdSplitRefuses(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{tv.K7SK, []string{"-t", "2", "-n", "4"}, "not more than half"},
		{tv.K7SK, []string{"-t", "4", "-n", "3"}, "need 1 ≤ -t ≤ -n"},
		{tv.K1SK, []string{"-t", "2", "-n", "3"}, "only tz4 (BLS) signatures combine"},
		{"", []string{"-t", "2", "-n", "3"}, "no secret key on stdin"},
		{"BLsk1notakey", []string{"-t", "2", "-n", "3"}, "invalid"},
	} {
		_, err := runIn(t, c.stdin, append([]string{"threshold", "split"}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q %v: %v, want %q", c.stdin, c.args, err, c.want)
		}
	}
	out, err := runIn(t, tv.K7SK, "threshold", "split", "-t", "2", "-n", "4", "--unsafe-threshold")
	if err != nil || strings.Count(out, "Member ") != 4 || !strings.Contains(out, tv.K7PKH) {
		t.Fatalf("%v\n%s", err, out)
	}
}

// TestCreateBLSProof: `create bls proof` prints the key's proof of possession (a known answer),
// or its proof over another key with --override-public-key; other curves and unknown keys are
// refused.
func TestCreateBLSProof(t *testing.T) {
	t.Parallel()
	cfg, dir := tempConfig(t, "")
	if err := os.WriteFile(filepath.Join(dir, "keys.json"), []byte(`[{"name":"bls","value":"unencrypted:`+tv.K7SK+`"},{"name":"ed","value":"unencrypted:`+tv.K1SK+`"}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runIn(t, "", "create", "bls", "proof", tv.K7PKH, "-c", cfg)
	if err != nil || strings.TrimSpace(out) != tv.LoadDerived().BLS.PoP {
		t.Fatalf("%v %q, want the known proof", err, out)
	}
	other, _ := tezos.GenerateKey(tezos.BLS)
	out, err = runIn(t, "", "create", "bls", "proof", tv.K7PKH, "-c", cfg, "--override-public-key", other.Public().String())
	if err != nil {
		t.Fatal(err)
	}
	p, err := tezos.ParseSignature(strings.TrimSpace(out))
	if err != nil || !tezos.VerifyPossessionOver(mustParsePub(t, tv.K7PK), other.Public(), p) {
		t.Fatalf("the proof over another key does not verify: %v %q", err, out)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{tv.K1PKH}, "not a tz4 (BLS) key"},
		{[]string{tv.K3PKH}, "no vault holds"},
		{[]string{tv.K7PKH, "--override-public-key", tv.K1PK}, "not a BLS public key"},
	} {
		_, err := runIn(t, "", append([]string{"create", "bls", "proof", "-c", cfg}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.args, err, c.want)
		}
	}
}

func mustParsePub(t *testing.T, s string) crypt.PublicKey {
	p, err := tezos.ParsePublicKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
