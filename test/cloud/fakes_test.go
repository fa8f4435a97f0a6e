package cloud

// The real daemon against in-repo fakes of Google Cloud KMS, Azure Key Vault and HashiCorp Vault
// Transit (internal/vault/cloudkms/cloudkmstest, azure/azuretest, hashicorp/hashicorptest), served on loopback by this test process. The fakes follow
// the services' documented wire protocols and sign with real keys; they are not the services.

import (
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/testdaemon"
	tv "github.com/signatory-go/signatory/internal/testvectors"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault/azure/azuretest"
	"github.com/signatory-go/signatory/internal/vault/cloudkms/cloudkmstest"
	"github.com/signatory-go/signatory/internal/vault/hashicorp/hashicorptest"
	"github.com/signatory-go/signatory/internal/vault/remote/remotetest"
)

// fakeStartDaemon runs the daemon with the config (server and base_dir are added) and waits
// until /healthz answers. Cloud credentials in the environment are dropped.
func fakeStartDaemon(t *testing.T, config string) *testdaemon.Daemon {
	t.Helper()
	d := testdaemon.New(t)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AZURE_") && !strings.HasPrefix(kv, "VAULT_") && !strings.HasPrefix(kv, "GOOGLE_") {
			d.Env = append(d.Env, kv)
		}
	}
	d.StartTimeout = 60 * time.Second
	d.FailureLogLines = -1
	d.WriteConfig(config)
	d.Serve()
	return d
}

func fakeCAFile(t *testing.T, cert *remotetest.Cert) string {
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
	keys := map[string]*remotetest.Key{} // by pkh
	vaultOf := map[string]string{}
	add := func(vault string, k *remotetest.Key) {
		pkh := k.Public().Hash().String()
		keys[pkh], vaultOf[pkh] = k, vault
	}

	gcp := cloudkmstest.New("ya29.e2e")
	ring := gcp.KeyRing("proj", "europe-west6", "signers")
	en, sign := kmspb.CryptoKeyVersion_ENABLED, kmspb.CryptoKey_ASYMMETRIC_SIGN
	add("gcp", gcp.AddKey(ring, "baker-p256", sign, kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256, en)[0])
	add("gcp", gcp.AddKey(ring, "baker-k1", sign, kmspb.CryptoKeyVersion_EC_SIGN_SECP256K1_SHA256, en)[0])
	add("gcp", gcp.AddKey(ring, "baker-ed25519", sign, kmspb.CryptoKeyVersion_EC_SIGN_ED25519, en)[0])
	gcpCert := remotetest.NewCert()
	gcpAddr, stop := gcp.Start(gcpCert)
	t.Cleanup(stop)

	az := azuretest.New("eyJ.e2e")
	add("azure", az.AddKey("baker-p256", tezos.P256))
	add("azure", az.AddKey("baker-k1", tezos.Secp256k1))
	azCert, stop := az.Start()
	t.Cleanup(stop)

	hc := hashicorptest.New("unused-root-token")
	hc.RoleID, hc.SecretID = "signatory-role", "signatory-secret"
	add("hashicorp", hc.AddKey("baker-ed25519"))
	add("hashicorp", hc.AddKeyOfType("baker-p256", "ecdsa-p256"))
	hcURL, hcCert, stop := hc.Start()
	t.Cleanup(stop)

	var policy strings.Builder
	for pkh := range keys {
		fmt.Fprintf(&policy, "  %s:\n    allow:\n      generic: [transaction]\n", pkh)
	}
	d := fakeStartDaemon(t, fmt.Sprintf(`vaults:
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
			status, pk := d.PublicKey(pkh)
			if status != http.StatusOK {
				t.Fatalf("GET /keys/%s: %d %s", pkh, status, pk)
			}
			pub, err := tezos.ParsePublicKey(pk)
			if err != nil || !pub.Equal(k.Public()) {
				t.Fatalf("GET /keys: %q (%v), want the fake's key %s", pk, err, k.Public())
			}
			for i := 0; i < 6; i++ {
				status, res := d.Sign(pkh, payload)
				if status != http.StatusOK {
					t.Fatalf("POST /keys/%s: %d %s", pkh, status, res)
				}
				sig, err := tezos.ParseSignature(res)
				if err != nil {
					t.Fatal(err)
				}
				if !tezos.Verify(pub, sig, msg, 2) {
					t.Fatalf("signature %d (%s) does not verify", i, res)
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
	if !d.WaitLog(want) {
		t.Fatalf("no log line %q", want)
	}
}

// TestKeysNeverForgotten is the regression test of a reproduced outage: a GET /keys/<unknown>
// relisted every vault with the client's context and replaced the key map, so a client that
// hung up, or a throttled List, emptied a vault's keys and the baker's next request got 404.
func TestKeysNeverForgotten(t *testing.T) {
	az := azuretest.New("eyJ.e2e")
	k := az.AddKey("baker-p256", tezos.P256)
	azCert, stop := az.Start()
	t.Cleanup(stop)
	pkh := k.Public().Hash().String()
	d := fakeStartDaemon(t, fmt.Sprintf(`vaults:
  azure:
    driver: azure
    config:
      vault: %s
      access_token: eyJ.e2e
      tls_ca_cert: %s
      disable_challenge_resource_verification: true
watermark:
  driver: file
tezos:
  %s:
    allow:
      generic: [transaction]
`, az.URL, fakeCAFile(t, azCert), pkh))
	payload := tv.LoadPolicyHex()["transaction ok"]
	if status, msg := d.Sign(pkh, payload); status != 200 {
		t.Fatalf("before: %d %s", status, msg)
	}
	az.FailList(true) // the vault's List is throttled from now on
	lists := az.Calls("list")
	// A client asks for an unknown key and hangs up without waiting for the answer; another
	// waits for its 404.
	conn, err := net.Dial("tcp", d.Addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET /keys/tz1Ke2h7sDdakHJQh8WX4Z372du1KChsksyU HTTP/1.1\r\nHost: signer\r\n\r\n")
	conn.Close()
	if status, _ := d.PublicKey("tz1Ke2h7sDdakHJQh8WX4Z372du1KChsksyU"); status != 404 {
		t.Fatalf("unknown key: %d", status)
	}
	if az.Calls("list") == lists {
		t.Fatal("the miss did not relist the vault: the test proves nothing")
	}
	for range 3 {
		if status, msg := d.Sign(pkh, payload); status != 200 {
			t.Fatalf("after a failed relist the key is forgotten: %d %s", status, msg)
		}
		if status, _ := d.PublicKey(pkh); status != 200 {
			t.Fatalf("GET /keys after a failed relist: %d", status)
		}
	}
	if !d.WaitLogWithin("keeping the keys it had", time.Minute) {
		t.Fatalf("no log of the failed relist:\n%s", d.Logs())
	}
}
