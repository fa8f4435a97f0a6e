package cloud

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/signatory-go/signatory/internal/config"
	"github.com/signatory-go/signatory/internal/request/requesttest"
	"github.com/signatory-go/signatory/internal/testdaemon"
	"github.com/signatory-go/signatory/internal/testvectors"
	"github.com/signatory-go/signatory/internal/vault/awskms"
	"github.com/signatory-go/signatory/internal/vault/awskms/awskmstest"
	"github.com/signatory-go/signatory/internal/watermark"
	"github.com/signatory-go/signatory/internal/watermark/dynamodb"
	"github.com/signatory-go/signatory/internal/watermark/dynamodb/dynamotest"
)

const awsChain = "b3d79f99" // NetXo5iVw1vBoxM

// awsConsensus builds a tag-20 preattestation or tag-21 attestation on awsChain; variant changes
// the branch, so two variants at one level and round are different payloads.
func awsConsensus(attestation bool, level, round int32, variant byte) string {
	if attestation {
		return requesttest.Attestation(awsChain, level, round, variant)
	}
	return requesttest.Preattestation(awsChain, level, round, variant)
}

// awsPKHs lists keys through the vault package to learn their key hashes before the daemon
// starts (the config's tezos: section needs them).
func awsPKHs(t *testing.T, endpoint string, keys ...string) []string {
	v, err := awskms.Open(context.Background(), "probe", awskms.Config{Region: awskmstest.Region, AccessKeyID: awskmstest.AccessKey,
		SecretAccessKey: awskmstest.SecretKey, Endpoint: endpoint, Keys: keys, Timeout: config.Duration(10 * time.Second)}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	list, err := v.List(context.Background())
	if err != nil || len(list) != len(keys) {
		t.Fatalf("List = %v, %v", list, err)
	}
	var out []string
	for _, k := range list {
		out = append(out, k.PublicKey().Hash().String())
	}
	return out
}

// TestAWS runs the daemon with an awskms vault (one P-256 and one secp256k1 key in local-kms)
// and a dynamodb watermark (dynalite): signatures over HTTP verify with the key from GET /keys;
// replays with other bytes are refused; an emulator that is frozen or stopped turns requests
// into 500 within the configured timeouts, never into a signature without a watermark; and the
// same request is served once the emulator is back.
func TestAWS(t *testing.T) {
	kms := awskmstest.Start(t)
	dyn := dynamotest.Start(t)
	_, p256 := kms.CreateKey(t, types.KeyUsageTypeSignVerify, types.KeySpecEccNistP256)
	kms.CreateAlias(t, "alias/tz3-baker", p256)
	_, k1 := kms.CreateKey(t, types.KeyUsageTypeSignVerify, types.KeySpecEccSecgP256k1)
	pkhs := awsPKHs(t, kms.Endpoint, "alias/tz3-baker", k1)
	if !strings.HasPrefix(pkhs[0], "tz3") || !strings.HasPrefix(pkhs[1], "tz2") {
		t.Fatalf("key hashes %v", pkhs)
	}
	d := awsStart(t, fmt.Sprintf(`vaults:
  kms:
    driver: awskms
    config:
      region: %[1]s
      access_key_id: %[2]s
      secret_access_key: %[3]s
      endpoint: %[4]s
      keys: [alias/tz3-baker, %[5]s]
      timeout: 2s
      max_retries: 1
watermark:
  driver: dynamodb
  config:
    table: signatory_e2e
    region: %[1]s
    access_key_id: %[2]s
    secret_access_key: %[3]s
    endpoint: %[6]s
    timeout: 2s
    max_retries: 1
tezos:
%[7]s`, awskmstest.Region, awskmstest.AccessKey, awskmstest.SecretKey, kms.Endpoint, k1, dyn.Endpoint, testdaemon.Policy(pkhs...)), true)

	// expect500 signs payload and wants a 500 within bound and no call to the vault when
	// noVault is set (the watermark store was down).
	expect500 := func(t *testing.T, pkh, payload string, noVault bool) {
		t.Helper()
		before := d.vaultSigns("kms")
		start := time.Now()
		code, msg := d.sign(pkh, payload)
		if code != http.StatusInternalServerError {
			t.Fatalf("sign = %d %q, want 500", code, msg)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Fatalf("the 500 took %v; the timeouts are 2 s", took)
		}
		if after := d.vaultSigns("kms"); noVault && after != before {
			t.Fatalf("the vault signed %d times while the watermark store was down", after-before)
		}
		t.Logf("%s after %v: %s", pkh[:3], time.Since(start).Round(time.Millisecond), msg)
	}
	expect200 := func(t *testing.T, pkh, payload string) {
		t.Helper()
		code, sig := d.sign(pkh, payload)
		if code != 200 {
			t.Fatalf("sign = %d %q, want 200", code, sig)
		}
		_, pub := d.publicKey(pkh)
		awsVerify(t, pub, payload, sig)
	}

	t.Run("SignBothCurves", func(t *testing.T) {
		generic := testvectors.LoadPolicyHex()["transaction ok"]
		block := testvectors.LoadPolicyHex()["block ok"]
		for _, pkh := range pkhs {
			code, pub := d.publicKey(pkh)
			if code != 200 || pub.Hash().String() != pkh {
				t.Fatalf("GET /keys/%s = %d %v", pkh, code, pub)
			}
			for i := range 5 {
				expect200(t, pkh, generic)
				expect200(t, pkh, awsConsensus(false, int32(10+i), 0, 0))
				expect200(t, pkh, awsConsensus(true, int32(10+i), 0, 0))
			}
			expect200(t, pkh, block)
		}
	})

	t.Run("ReplayConflict", func(t *testing.T) {
		for _, pkh := range pkhs {
			expect200(t, pkh, awsConsensus(true, 20, 1, 0))
			expect200(t, pkh, awsConsensus(true, 20, 1, 0)) // byte-identical: served again
			for _, p := range []string{awsConsensus(true, 20, 1, 1), awsConsensus(true, 20, 0, 0), awsConsensus(true, 19, 5, 0)} {
				if code, msg := d.sign(pkh, p); code != http.StatusConflict {
					t.Fatalf("replay = %d %q, want 409", code, msg)
				}
			}
		}
		// The marks are in the table, as another signer process sharing it would see them.
		s, err := dynamodb.Open(context.Background(), dynamodb.Config{Table: "signatory_e2e", Region: dynamotest.Region,
			AccessKeyID: dynamotest.AccessKey, SecretAccessKey: dynamotest.SecretKey, Endpoint: dyn.Endpoint}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		es, err := s.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		found := 0
		for _, e := range es {
			if e.Class == watermark.Attestation && e.Level == 20 && e.Round == 1 && e.HasDigest && e.Chain == "NetXo5iVw1vBoxM" {
				found++
			}
		}
		if found != len(pkhs) || len(es) != 3*len(pkhs) { // block, preattestation, attestation per key
			t.Fatalf("table holds %v", es)
		}
	})

	t.Run("DynamoDBFrozen", func(t *testing.T) {
		p := awsConsensus(true, 30, 0, 0)
		dyn.Pause()
		expect500(t, pkhs[0], p, true)
		dyn.Resume()
		expect200(t, pkhs[0], p)
	})

	t.Run("DynamoDBRestarted", func(t *testing.T) {
		p := awsConsensus(true, 31, 0, 0)
		dyn.Stop()
		expect500(t, pkhs[1], p, true)
		dyn.Restart()
		expect200(t, pkhs[1], p)
		if code, msg := d.sign(pkhs[1], awsConsensus(true, 30, 0, 1)); code != http.StatusConflict {
			t.Fatalf("after the restart a lower level = %d %q, want 409", code, msg)
		}
	})

	t.Run("KMSFrozenAndStopped", func(t *testing.T) {
		for i, pkh := range pkhs {
			p := awsConsensus(true, int32(40+i), 0, 0)
			kms.Pause()
			expect500(t, pkh, p, false)
			kms.Resume()
			expect200(t, pkh, p) // the watermark already holds this digest: the retry is served
			if code, msg := d.sign(pkh, awsConsensus(true, int32(40+i), 0, 1)); code != http.StatusConflict {
				t.Fatalf("other bytes at the same level = %d %q, want 409", code, msg)
			}
		}
		p := awsConsensus(true, 50, 0, 0)
		kms.Stop()
		expect500(t, pkhs[1], p, false)
		kms.Restart()
		expect200(t, pkhs[1], p)
	})

	t.Run("BadCredentialsAndUnknownKey", func(t *testing.T) {
		const secret = "wrong-secret-must-not-leak"
		fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			w.WriteHeader(400)
			fmt.Fprint(w, `{"__type":"UnrecognizedClientException","message":"The security token included in the request is invalid."}`)
		}))
		defer fake.Close()
		const unknown = "11111111-2222-3333-4444-555555555555"
		bad := awsStart(t, fmt.Sprintf(`vaults:
  badcreds:
    driver: awskms
    config: {region: us-east-1, access_key_id: AKIDWRONG, secret_access_key: %s, endpoint: "%s", max_retries: 0}
  unknown:
    driver: awskms
    config: {region: us-east-1, access_key_id: AKID, secret_access_key: x, endpoint: "%s", keys: [%s]}
watermark:
  driver: mem
tezos:
%s`, secret, fake.URL, kms.Endpoint, unknown, testdaemon.Policy(pkhs...)), true)
		if code, _ := bad.publicKey(pkhs[0]); code != http.StatusNotFound {
			t.Fatalf("GET /keys = %d, want 404", code)
		}
		if code, msg := bad.sign(pkhs[0], awsConsensus(true, 1, 0, 0)); code != http.StatusNotFound {
			t.Fatalf("sign = %d %q, want 404", code, msg)
		}
		for _, want := range []string{"UnrecognizedClientException", "key " + unknown, "NotFoundException"} {
			if !bad.WaitLogWithin(want, 5*time.Second) {
				t.Errorf("the log does not say %q", want)
			}
		}
		if strings.Contains(bad.Logs(), secret) {
			t.Fatal("the log shows the secret access key")
		}
	})

	t.Run("NoCredentials", func(t *testing.T) {
		base := `vaults:
  kms:
    driver: awskms
    config: {region: us-east-1, endpoint: "` + kms.Endpoint + `"}
`
		v := awsStart(t, base+"watermark:\n  driver: mem\n", true)
		if !v.WaitLogWithin("credentials", 10*time.Second) {
			t.Error("the vault's missing credentials are not reported")
		}
		w := awsStart(t, base+"watermark:\n  driver: dynamodb\n  config: {region: us-east-1, endpoint: \""+dyn.Endpoint+"\"}\n", false)
		select {
		case <-w.Done():
			if err := w.Err(); err == nil || !strings.Contains(w.Logs(), "dynamodb watermark") || !strings.Contains(w.Logs(), "credentials") {
				t.Fatalf("exit %v with log:\n%s", err, w.Logs())
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("the daemon did not refuse to start without credentials:\n%s", w.Logs())
		}
	})
}
