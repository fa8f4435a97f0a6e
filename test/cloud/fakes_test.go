package cloud

// The real daemon against in-repo fakes of Google Cloud KMS, Azure Key Vault and HashiCorp Vault
// Transit (internal/vault/cloudfake), served on loopback by this test process. The fakes follow
// the services' documented wire protocols and sign with real keys; they are not the services.

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"github.com/ecadlabs/gotez/v2/crypt"

	tv "github.com/signatory-go/signatory/internal/testvectors"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault/cloudfake"
)

var (
	fakeBinOnce sync.Once
	fakeBin     string
	fakeBinErr  error
)

// fakeDaemonBinary builds the daemon once per test process, next to the test binary: go test
// removes that work directory when the run ends.
func fakeDaemonBinary(t *testing.T) string {
	t.Helper()
	fakeBinOnce.Do(func() {
		dir, err := os.MkdirTemp(fakeWorkDir(), "signatory-fakes-")
		if err != nil {
			fakeBinErr = err
			return
		}
		fakeBin = filepath.Join(dir, "signatory")
		out, err := exec.Command("go", "build", "-o", fakeBin, "github.com/signatory-go/signatory/cmd/signatory").CombinedOutput()
		if err != nil {
			fakeBinErr = fmt.Errorf("building signatory: %v\n%s", err, out)
		}
	})
	if fakeBinErr != nil {
		t.Fatal(fakeBinErr)
	}
	return fakeBin
}

func fakeWorkDir() string {
	if exe, err := os.Executable(); err == nil {
		if f, err := os.CreateTemp(filepath.Dir(exe), ".w"); err == nil {
			f.Close()
			os.Remove(f.Name())
			return filepath.Dir(exe)
		}
	}
	return os.TempDir()
}

func fakeFreeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type fakeLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *fakeLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *fakeLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// fakeStartDaemon runs the daemon with the config (server and base_dir are added) and waits
// until /healthz answers. Cloud credentials in the environment are dropped.
func fakeStartDaemon(t *testing.T, config string) (addr string, logs *fakeLog) {
	t.Helper()
	dir := t.TempDir()
	addr, utility := fakeFreeAddr(t), fakeFreeAddr(t)
	config = fmt.Sprintf("base_dir: %s\nserver:\n  address: %s\n  utility_address: %s\n%s", filepath.Join(dir, "data"), addr, utility, config)
	path := filepath.Join(dir, "signatory.yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(fakeDaemonBinary(t), "serve", "-c", path)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AZURE_") && !strings.HasPrefix(kv, "VAULT_") && !strings.HasPrefix(kv, "GOOGLE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	logs = &fakeLog{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs)
		}
	})
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-done:
			t.Fatalf("daemon exited at start: %v\n%s", err, logs)
		default:
		}
		if resp, err := http.Get("http://" + utility + "/healthz"); err == nil {
			resp.Body.Close()
			return addr, logs
		}
	}
	t.Fatalf("daemon not up within 60 s:\n%s", logs)
	return "", nil
}

var fakeClient = &http.Client{Timeout: 30 * time.Second}

// fakeCall makes a request and decodes a 200 JSON body into out.
func fakeCall(t *testing.T, method, url, body string, out any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	resp, err := fakeClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
}

func fakeCAFile(t *testing.T, cert *cloudfake.Cert) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(p, cert.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestFakeClouds runs the daemon with a cloudkms, an azure and a hashicorpvault vault, each
// served by its fake over TLS with its own credentials, and signs generic operations with every
// curve each backend supports; every signature is verified with the key from GET /keys, and the
// ECDSA ones must be low-S although the fakes return high-S half the time. A fourth vault with a
// wrong token is skipped with a clear log line and does not disturb the others.
func TestFakeClouds(t *testing.T) {
	keys := map[string]*cloudfake.Key{} // by pkh
	vaultOf := map[string]string{}
	add := func(vault string, k *cloudfake.Key) {
		pkh := k.Public().Hash().String()
		keys[pkh], vaultOf[pkh] = k, vault
	}

	gcp := cloudfake.NewGCP("ya29.e2e")
	ring := gcp.KeyRing("proj", "europe-west6", "signers")
	en, sign := kmspb.CryptoKeyVersion_ENABLED, kmspb.CryptoKey_ASYMMETRIC_SIGN
	add("gcp", gcp.AddKey(ring, "baker-p256", sign, kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256, en)[0])
	add("gcp", gcp.AddKey(ring, "baker-k1", sign, kmspb.CryptoKeyVersion_EC_SIGN_SECP256K1_SHA256, en)[0])
	gcpCert := cloudfake.NewCert()
	gcpAddr, stop := gcp.Start(gcpCert)
	t.Cleanup(stop)

	az := cloudfake.NewAzure("eyJ.e2e")
	add("azure", az.AddKey("baker-p256", tezos.P256))
	add("azure", az.AddKey("baker-k1", tezos.Secp256k1))
	azCert, stop := az.Start()
	t.Cleanup(stop)

	hc := cloudfake.NewVault("unused-root-token")
	hc.RoleID, hc.SecretID = "signatory-role", "signatory-secret"
	add("hashicorp", hc.AddKey("baker-ed25519"))
	hcURL, hcCert, stop := hc.Start()
	t.Cleanup(stop)

	var policy strings.Builder
	for pkh := range keys {
		fmt.Fprintf(&policy, "  %s:\n    allow:\n      generic: [transaction]\n", pkh)
	}
	addr, logs := fakeStartDaemon(t, fmt.Sprintf(`vaults:
  gcp:
    driver: cloudkms
    config:
      project: proj
      location: europe-west6
      key_ring: signers
      endpoint: %s
      tls_ca_cert: %s
      access_token: ya29.e2e
  azure:
    driver: azure
    config:
      vault: %s
      access_token: eyJ.e2e
      tls_ca_cert: %s
      disable_challenge_resource_verification: true
  azure-wrong-token:
    driver: azure
    config:
      vault: %[3]s
      access_token: wrong
      tls_ca_cert: %[4]s
      disable_challenge_resource_verification: true
  hashicorp:
    driver: hashicorpvault
    config:
      address: %[5]s
      role_id: signatory-role
      secret_id: signatory-secret
      tls_ca_cert: %[6]s
watermark:
  driver: file
tezos:
%[7]s`, gcpAddr, fakeCAFile(t, gcpCert), az.URL, fakeCAFile(t, azCert), hcURL, fakeCAFile(t, hcCert), policy.String()))

	payload := tv.LoadPolicyHex()["transaction ok"]
	msg, _ := hex.DecodeString(payload)
	for pkh, k := range keys {
		t.Run(vaultOf[pkh]+"/"+string(k.Curve), func(t *testing.T) {
			var got struct {
				PublicKey string `json:"public_key"`
			}
			fakeCall(t, "GET", "http://"+addr+"/keys/"+pkh, "", &got)
			pub, err := tezos.ParsePublicKey(got.PublicKey)
			if err != nil || !pub.Equal(k.Public()) {
				t.Fatalf("GET /keys: %q (%v), want the fake's key %s", got.PublicKey, err, k.Public())
			}
			for i := 0; i < 6; i++ {
				var res struct{ Signature string }
				fakeCall(t, "POST", "http://"+addr+"/keys/"+pkh, `"`+payload+`"`, &res)
				sig, err := tezos.ParseSignature(res.Signature)
				if err != nil {
					t.Fatal(err)
				}
				if !tezos.Verify(pub, sig, msg, 2) {
					t.Fatalf("signature %d (%s) does not verify", i, res.Signature)
				}
				if e, ok := sig.(*crypt.ECDSASignature); ok && !tezos.IsLowS(e) {
					t.Fatalf("signature %d is high-S", i)
				}
			}
			if k.Curve != tezos.Ed25519 && k.HighS() == 0 {
				t.Fatal("the fake returned no high-S signature; normalisation was not exercised")
			}
		})
	}
	if n := hc.Calls("login"); n != 1 {
		t.Errorf("%d AppRole logins, want 1", n)
	}
	want := "vault azure-wrong-token: list keys: Key Vault answered 401 Unauthorized"
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(logs.String(), want); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no log line %q", want)
		}
	}
}
