package testdaemon

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/tezos"
)

// What the suites that run several daemons on one shared watermark store (test/cluster,
// test/adversarial) have in common: fresh keys in one key file, members that differ only by
// their ports and base_dir, and the store that the test stops and starts.

// TestKey is a fresh key of a test, written by NewKeys to a key file.
type TestKey struct {
	Priv  crypt.PrivateKey
	Pub   crypt.PublicKey
	PKH   string
	Curve tezos.Curve
}

// NewKeys generates one key per curve (several of one curve if it is repeated) and writes them,
// unencrypted and named k0, k1, …, to a secret_keys.json in a temp dir for a file vault. It
// returns the keys and the path of the file.
func NewKeys(tb testing.TB, curves ...tezos.Curve) ([]TestKey, string) {
	tb.Helper()
	var ks []TestKey
	var privs []crypt.PrivateKey
	for _, c := range curves {
		priv, err := tezos.GenerateKey(c)
		if err != nil {
			tb.Fatal(err)
		}
		pub := priv.Public()
		ks = append(ks, TestKey{Priv: priv, Pub: pub, PKH: pub.Hash().String(), Curve: c})
		privs = append(privs, priv)
	}
	path := filepath.Join(tb.TempDir(), "secret_keys.json")
	WriteKeyFile(tb, path, "k", privs...)
	return ks, path
}

// WriteKeyFile writes keys, unencrypted, as a file vault's key file at path (mode 0600), named
// prefix0, prefix1, …
func WriteKeyFile(tb testing.TB, path, prefix string, keys ...crypt.PrivateKey) {
	tb.Helper()
	type entry struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
	entries := []entry{}
	for i, k := range keys {
		entries = append(entries, entry{Name: fmt.Sprintf("%s%d", prefix, i), Value: "unencrypted:" + string(k.ToBase58())})
	}
	js, err := json.MarshalIndent(entries, "", "  ")
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, js, 0o600); err != nil {
		tb.Fatal(err)
	}
}

// ConsensusPolicy returns a tezos section (its lines, indented) that allows the keys pkhs to sign
// every watermarked kind: blocks, preattestations, attestations and attestations with DAL.
func ConsensusPolicy(pkhs ...string) string {
	var b strings.Builder
	for _, p := range pkhs {
		fmt.Fprintf(&b, "  %s:\n    allow:\n      block:\n      preattestation:\n      attestation:\n      attestation_with_dal:\n", p)
	}
	return b.String()
}

// SharedStore is the watermark server that the members of a cluster share, which a test stops
// and starts: postgrestest, etcdtest and dynamotest servers are.
type SharedStore interface {
	Stop()
	Start()
}

// memberClient is the HTTP client of every member: many concurrent requests to one address,
// each of which may wait for the store's timeout.
var memberClient = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// NewMember returns a daemon, not started yet, that is one member of a cluster of signers on one
// watermark store: a file vault on keyFile (see NewKeys), its own ports and base_dir, the shared
// watermark section (its lines, already indented under `watermark:`) and tezos (the lines of the
// tezos section, e.g. from ConsensusPolicy). It is ready when /healthz answers 200, and a failed
// test logs the end of its log.
func NewMember(tb testing.TB, name, keyFile, watermark, tezos string) *Daemon {
	tb.Helper()
	d := New(tb)
	d.Name = name
	d.StartTimeout = 60 * time.Second
	d.Ready = func(status int, _ []byte) bool { return status == http.StatusOK }
	d.Client = memberClient
	d.FailureLogLines = 100
	d.WriteConfig(FileVault(keyFile) + "watermark:\n" + watermark + "tezos:\n" + tezos)
	return d
}

// StartMembers starts n members named name-0 … name-(n-1) (see NewMember and ServeMember).
func StartMembers(tb testing.TB, n int, name, keyFile, watermark, tezos string) []*Daemon {
	tb.Helper()
	var ds []*Daemon
	for i := range n {
		d := NewMember(tb, fmt.Sprintf("%s-%d", name, i), keyFile, watermark, tezos)
		d.ServeMember()
		ds = append(ds, d)
	}
	return ds
}

// ServeMember is Serve("--no-list") after a "---- start" line in the log, so that the runs of a
// member that a test kills and starts again can be told apart.
func (d *Daemon) ServeMember() {
	d.TB.Helper()
	d.Logf("---- start %s", time.Now().Format(time.RFC3339Nano))
	d.Serve("--no-list")
}

// Eventually calls try until it returns nil, pausing briefly between tries, and fails tb with the
// last error when that has not happened within timeout. It is for a server coming back after an
// outage, which nothing signals: the timeout is a bound against a hang, not a measure.
func Eventually(tb testing.TB, timeout time.Duration, what string, try func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := try()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(20 * time.Millisecond) // between tries of a recovering server, not synchronisation
	}
}

// Until spins, yielding the processor, until cond holds, or fails the test after a minute: for
// goroutines of the test reaching a queue or a lock, which takes no time worth sleeping for.
func Until(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("never: %s", what)
		}
		runtime.Gosched()
	}
}

// SignAtOnce sends n requests at once (sign(i) makes request i and returns the HTTP status and
// body) and counts those signed (200) and those refused as expected (refused says which); any
// other answer fails the test.
func SignAtOnce(tb testing.TB, n int, sign func(i int) (int, string), refused func(status int, body string) bool) (signedN, refusedN int) {
	tb.Helper()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			status, body := sign(i)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case status == http.StatusOK:
				signedN++
			case refused(status, body):
				refusedN++
			default:
				tb.Errorf("request %d: %d %s", i, status, body)
			}
		})
	}
	wg.Wait()
	return signedN, refusedN
}
