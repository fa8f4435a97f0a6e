// Package cloud runs the real signatory binary against emulators of cloud services: AWS KMS
// (local-kms) and DynamoDB (dynalite), started by the tests on loopback.
package cloud

import (
	"encoding/hex"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/testdaemon"
	"github.com/signatory-go/signatory/internal/tezos"
)

func TestMain(m *testing.M) { testdaemon.Main(m) }

// awsDaemon is one signatory process.
type awsDaemon struct{ *testdaemon.Daemon }

// awsEnv is the environment of the daemon: no ambient AWS credentials, profile or instance role.
func awsEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	return append(env, "AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=/nonexistent", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent")
}

var awsClient = &http.Client{Timeout: 60 * time.Second}

// awsStart writes the config (what follows base_dir and the server section) and runs the daemon.
// When wait is set it returns once /healthz answers; otherwise it returns at once and the caller
// watches Done.
func awsStart(t *testing.T, config string, wait bool) awsDaemon {
	t.Helper()
	d := testdaemon.New(t)
	d.Env = awsEnv()
	d.StartTimeout = 60 * time.Second
	d.Client = awsClient
	d.FailureLogLines = -1
	d.WriteConfig(config)
	if wait {
		d.Serve()
	} else {
		d.Launch("serve", "-c", d.Config)
	}
	return awsDaemon{d}
}

// sign posts hex to /keys/pkh and returns the status and the signature or the error message; it
// fails the test when the request fails or a 200 holds no signature.
func (d awsDaemon) sign(pkh, hexPayload string) (int, string) {
	status, msg := d.Sign(pkh, hexPayload)
	if status == 0 {
		d.TB.Fatalf("POST /keys/%s: %s", pkh, msg)
	}
	if status == http.StatusOK && msg == "" {
		d.TB.Fatal("200 without a signature")
	}
	return status, msg
}

// publicKey is GET /keys/pkh; it returns the status and the parsed key (nil unless 200).
func (d awsDaemon) publicKey(pkh string) (int, crypt.PublicKey) {
	status, pk := d.PublicKey(pkh)
	if status == 0 {
		d.TB.Fatalf("GET /keys/%s: %s", pkh, pk)
	}
	if status != http.StatusOK {
		return status, nil
	}
	pub, err := tezos.ParsePublicKey(pk)
	if err != nil {
		d.TB.Fatalf("GET /keys/%s: %v", pkh, err)
	}
	return 200, pub
}

// vaultSigns returns how many times the vault was asked to sign, from /metrics.
func (d awsDaemon) vaultSigns(vault string) int {
	status, metrics := d.GetUtility("/metrics")
	if status == 0 {
		d.TB.Fatal(metrics)
	}
	total := 0
	for _, line := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(line, "signatory_vault_sign_latency_seconds_count{") && strings.Contains(line, `vault="`+vault+`"`) {
			n, _ := strconv.Atoi(line[strings.LastIndexByte(line, ' ')+1:])
			total += n
		}
	}
	return total
}

// awsVerify checks sig over the payload with pub, its curve prefix and that S is low.
func awsVerify(t *testing.T, pub crypt.PublicKey, payloadHex, sig string) {
	t.Helper()
	s, err := tezos.ParseSignature(sig)
	if err != nil {
		t.Fatalf("signature %q: %v", sig, err)
	}
	want := map[tezos.Curve]string{tezos.P256: "p2sig", tezos.Secp256k1: "spsig1"}[tezos.CurveOf(pub)]
	if !strings.HasPrefix(sig, want) {
		t.Fatalf("signature %s does not start with %s", sig, want)
	}
	msg, err := hex.DecodeString(payloadHex)
	if err != nil {
		t.Fatal(err)
	}
	if !tezos.Verify(pub, s, msg, 2) || !tezos.IsLowS(s) {
		t.Fatalf("signature %s does not verify with %s or is high-S", sig, pub)
	}
}
