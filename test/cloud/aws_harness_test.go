// Package cloud runs the real signatory binary against emulators of cloud services: AWS KMS
// (local-kms) and DynamoDB (dynalite), started by the tests on loopback.
package cloud

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/tezos"
)

// awsBuild builds the daemon into dir.
func awsBuild(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "signatory")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/signatory-go/signatory/cmd/signatory")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building signatory: %v\n%s", err, out)
	}
	return bin
}

func awsFreeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type awsLogs struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *awsLogs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *awsLogs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// awsDaemon is one signatory process.
type awsDaemon struct {
	t       *testing.T
	addr    string
	utility string
	cmd     *exec.Cmd
	logs    *awsLogs
	done    chan error
}

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

// awsStart writes config, with {{base}}, {{addr}} and {{utility}} replaced by the base dir and
// the two listen addresses, and runs the daemon. When wait is set it returns once /healthz answers; otherwise it returns
// at once and the caller watches done.
func awsStart(t *testing.T, bin, config string, wait bool) *awsDaemon {
	t.Helper()
	dir := t.TempDir()
	d := &awsDaemon{t: t, addr: awsFreeAddr(t), utility: awsFreeAddr(t), logs: &awsLogs{}, done: make(chan error, 1)}
	path := filepath.Join(dir, "signatory.yaml")
	if err := os.WriteFile(path, []byte(strings.NewReplacer("{{base}}", filepath.Join(dir, "data"), "{{addr}}", d.addr, "{{utility}}", d.utility).Replace(config)), 0o600); err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(bin, "serve", "-c", path)
	d.cmd.Env = awsEnv()
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			_ = d.cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.logs)
		}
	})
	if !wait {
		return d
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-d.done:
			t.Fatalf("daemon exited at start: %v\n%s", err, d.logs)
		default:
		}
		if resp, err := http.Get("http://" + d.utility + "/healthz"); err == nil {
			resp.Body.Close()
			return d
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("daemon not up within 60 s:\n%s", d.logs)
	return nil
}

// waitLog polls the log for s until the deadline (the log travels through a pipe).
func (d *awsDaemon) waitLog(s string, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if strings.Contains(d.logs.String(), s) {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

var awsClient = &http.Client{Timeout: 60 * time.Second}

// sign posts hex to /keys/pkh and returns the status and the signature or the error message.
func (d *awsDaemon) sign(pkh, hexPayload string) (int, string) {
	resp, err := awsClient.Post("http://"+d.addr+"/keys/"+pkh, "application/json", strings.NewReader(`"`+hexPayload+`"`))
	if err != nil {
		d.t.Fatalf("POST /keys/%s: %v", pkh, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		var r struct{ Signature string }
		if err := json.Unmarshal(b, &r); err != nil || r.Signature == "" {
			d.t.Fatalf("200 without a signature: %s", b)
		}
		return 200, r.Signature
	}
	var e []struct{ Msg string }
	if json.Unmarshal(b, &e) == nil && len(e) == 1 {
		return resp.StatusCode, e[0].Msg
	}
	return resp.StatusCode, string(b)
}

// publicKey is GET /keys/pkh; it returns the status and the parsed key (nil unless 200).
func (d *awsDaemon) publicKey(pkh string) (int, crypt.PublicKey) {
	resp, err := awsClient.Get("http://" + d.addr + "/keys/" + pkh)
	if err != nil {
		d.t.Fatalf("GET /keys/%s: %v", pkh, err)
	}
	defer resp.Body.Close()
	var r struct {
		PublicKey string `json:"public_key"`
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		d.t.Fatal(err)
	}
	pub, err := tezos.ParsePublicKey(r.PublicKey)
	if err != nil {
		d.t.Fatalf("GET /keys/%s: %v", pkh, err)
	}
	return 200, pub
}

// vaultSigns returns how many times the vault was asked to sign, from /metrics.
func (d *awsDaemon) vaultSigns(vault string) int {
	resp, err := awsClient.Get("http://" + d.utility + "/metrics")
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	total := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
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
