package testdaemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Daemon is a signatory process (`signatory serve`, usually) on two loopback ports. Its log
// (standard output and error) is kept across restarts. The exported fields are set before Start.
type Daemon struct {
	TB   testing.TB
	Name string // in failure messages; "daemon" from New

	Dir    string // a fresh temp dir, for the config, key files and base_dir (Dir/data)
	Config string // Dir/signatory.yaml

	Addr        string // signing API, host:port
	UtilityAddr string // /healthz and /metrics, host:port

	Env          []string      // the environment; the test's when nil
	StartTimeout time.Duration // how long Start waits for /healthz; 20 s when zero
	// Ready tells whether a /healthz answer means the daemon is up; when nil any answer does
	// (200, or 503 when a store or vault reports a problem).
	Ready  func(status int, body []byte) bool
	Client *http.Client // for the API calls; one with a 30 s timeout when nil
	// ReportRaces fails the test at its end when the log shows a data race (a daemon that Binary
	// built under the race detector reports them there).
	ReportRaces bool
	// FailureLogLines is how many of the last lines of the log a failed test logs at its end:
	// none when 0, all when negative.
	FailureLogLines int

	logs Buffer
	mu   sync.Mutex
	proc *Process
}

var defaultClient = &http.Client{Timeout: 30 * time.Second}

// New returns a daemon with a fresh Dir and two free ports, not started yet. It is killed at the
// end of the test.
func New(tb testing.TB) *Daemon {
	tb.Helper()
	dir := tb.TempDir()
	addrs := FreeAddrs(tb, 2)
	d := &Daemon{TB: tb, Name: "daemon", Dir: dir, Config: filepath.Join(dir, "signatory.yaml"),
		Addr: addrs[0], UtilityAddr: addrs[1]}
	tb.Cleanup(func() {
		d.Kill()
		if d.ReportRaces && strings.Contains(d.Logs(), "WARNING: DATA RACE") {
			tb.Errorf("the %s reported a data race:\n%s", d.Name, d.Logs())
		}
		if n := d.FailureLogLines; n != 0 && tb.Failed() {
			if lines := strings.Split(strings.TrimRight(d.Logs(), "\n"), "\n"); n > 0 && len(lines) > n {
				tb.Logf("%s log (last %d lines):\n%s", d.Name, n, strings.Join(lines[len(lines)-n:], "\n"))
			} else {
				tb.Logf("%s log:\n%s", d.Name, d.Logs())
			}
		}
	})
	return d
}

// Header is the start of a config: base_dir and the server section with the two addresses, to
// which more server lines may be added.
func (d *Daemon) Header() string {
	return fmt.Sprintf("base_dir: %s\nserver:\n  address: %s\n  utility_address: %s\n",
		filepath.Join(d.Dir, "data"), d.Addr, d.UtilityAddr)
}

// WriteConfig writes Header followed by rest to Config.
func (d *Daemon) WriteConfig(rest string) {
	d.TB.Helper()
	if err := os.WriteFile(d.Config, []byte(d.Header()+rest), 0o600); err != nil {
		d.TB.Fatal(err)
	}
}

// FileVault is the vaults section of a config with one file vault, "local", on keyFile.
func FileVault(keyFile string) string {
	return "vaults:\n  local:\n    driver: file\n    config:\n      file: " + keyFile + "\n"
}

// Policy returns a tezos section (its lines, indented) that allows the keys pkhs to sign
// transactions, blocks, preattestations and attestations.
func Policy(pkhs ...string) string {
	var b strings.Builder
	for _, p := range pkhs {
		fmt.Fprintf(&b, "  %s:\n    allow:\n      generic: [transaction]\n      block:\n      preattestation:\n      attestation:\n", p)
	}
	return b.String()
}

// Start runs the binary (see Binary) with args and waits until /healthz answers (see Ready) within
// StartTimeout; it fails the test, with the log, when the process exits or is not up in time.
// A port FreeAddr picked can be taken by another process before the daemon binds it: when the
// daemon exits saying so, Start picks new ports, writes them into Config in place of the old ones
// and starts it again (up to portAttempts times).
func (d *Daemon) Start(args ...string) {
	d.TB.Helper()
	for attempt := 1; ; attempt++ {
		before := len(d.Logs())
		d.Launch(args...)
		err := d.WaitReady()
		if err == nil {
			return
		}
		if attempt < portAttempts && errors.Is(err, ErrExited) &&
			strings.Contains(strings.ToLower(d.Logs()[before:]), "address already in use") && d.rebind() {
			d.TB.Logf("%s: a port was taken meanwhile (%v); trying other ports", d.Name, err)
			continue
		}
		d.TB.Fatalf("%s %v:\n%s", d.Name, err, d.Logs())
	}
}

// rebind gives the daemon two new free ports, in its fields and in its config file; it reports
// false when the config does not hold the old addresses.
func (d *Daemon) rebind() bool {
	cfg, err := os.ReadFile(d.Config)
	if err != nil || !strings.Contains(string(cfg), d.Addr) || !strings.Contains(string(cfg), d.UtilityAddr) {
		return false
	}
	addrs := FreeAddrs(d.TB, 2)
	addr, util := addrs[0], addrs[1]
	// One pass: a new address may be the old other one, which a second pass would replace again.
	s := strings.NewReplacer(d.Addr, addr, d.UtilityAddr, util).Replace(string(cfg))
	if err := os.WriteFile(d.Config, []byte(s), 0o600); err != nil {
		return false
	}
	d.Addr, d.UtilityAddr = addr, util
	return true
}

// Serve is Start("serve", "-c", Config, args...).
func (d *Daemon) Serve(args ...string) {
	d.TB.Helper()
	d.Start(append([]string{"serve", "-c", d.Config}, args...)...)
}

// Launch runs the binary with args and returns at once.
func (d *Daemon) Launch(args ...string) {
	d.TB.Helper()
	cmd := exec.Command(Binary(d.TB), args...)
	cmd.Env = d.Env
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.proc != nil && !d.proc.Exited() {
		d.TB.Fatalf("%s is already running", d.Name)
	}
	p, err := StartProcess(cmd, &d.logs)
	if err != nil {
		d.TB.Fatal(err)
	}
	d.proc = p
}

// WaitReady waits, after Launch, as Start does, and returns what went wrong: an error wrapping
// ErrExited when the process exited.
func (d *Daemon) WaitReady() error {
	timeout := d.StartTimeout
	if timeout == 0 {
		timeout = 20 * time.Second
	}
	return d.process().WaitUntil(timeout, func(ctx context.Context) bool {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+d.UtilityAddr+"/healthz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return d.Ready == nil || d.Ready(resp.StatusCode, body)
	})
}

func (d *Daemon) process() *Process {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.proc == nil {
		d.TB.Fatalf("%s was not started", d.Name)
	}
	return d.proc
}

// Pid is the running daemon's process id.
func (d *Daemon) Pid() int { return d.process().Pid() }

// Done is closed when the process last launched has exited.
func (d *Daemon) Done() <-chan struct{} { return d.process().Done() }

// Err is the result of the process's Wait, once Done is closed.
func (d *Daemon) Err() error { return d.process().Err() }

// CheckAlive fails the test, with the log, if the daemon has exited.
func (d *Daemon) CheckAlive() {
	d.TB.Helper()
	if p := d.process(); p.Exited() {
		d.TB.Fatalf("%s exited: %v\n%s", d.Name, p.Err(), d.Logs())
	}
}

// Kill sends SIGKILL and waits for the exit; it does nothing when the daemon is not running.
func (d *Daemon) Kill() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.proc != nil {
		d.proc.Kill()
	}
}

// Stop sends SIGTERM and returns the exit error; it fails the test when the daemon has not
// exited 20 s later.
func (d *Daemon) Stop() error {
	d.TB.Helper()
	p := d.process()
	p.Signal(syscall.SIGTERM)
	select {
	case <-p.Done():
		return p.Err()
	case <-time.After(20 * time.Second):
		d.TB.Fatalf("%s did not stop within 20 s of SIGTERM", d.Name)
		return nil
	}
}

// Signal sends sig to the daemon's process.
func (d *Daemon) Signal(sig os.Signal) { d.process().Signal(sig) }

// Logs returns the log so far, of every run.
func (d *Daemon) Logs() string { return d.logs.String() }

// Logf adds a line to the log, e.g. to mark a restart.
func (d *Daemon) Logf(format string, args ...any) {
	fmt.Fprintf(&d.logs, format+"\n", args...)
}

// WaitLog waits up to 5 s for the log to contain s: the log travels through a pipe, so it may
// arrive just after the HTTP reply.
func (d *Daemon) WaitLog(s string) bool { return d.WaitLogWithin(s, 5*time.Second) }

// WaitLogWithin is WaitLog with another deadline.
func (d *Daemon) WaitLogWithin(s string, within time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	return d.logs.WaitFor(ctx, s)
}

// WaitLogCount waits up to within for the log to contain s n times or more.
func (d *Daemon) WaitLogCount(s string, n int, within time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	return d.logs.WaitCount(ctx, s, n)
}

// requestIDInBody finds the request id a 5xx body names: "… (request <id>)".
var requestIDInBody = regexp.MustCompile(`\(request ([0-9a-f]+-[0-9]+)\)`)

// ErrorCause returns the log line of the request whose 5xx error message msg names, waiting up to
// a minute for it (the log travels through a pipe): the body only says the kind of failure, the
// cause is logged under the request id. It returns "" when msg names no request or no line comes.
func (d *Daemon) ErrorCause(msg string) string {
	m := requestIDInBody.FindStringSubmatch(msg)
	if m == nil {
		return ""
	}
	key := "request_id=" + m[1]
	if !d.WaitLogWithin(key, time.Minute) {
		return ""
	}
	for _, line := range strings.Split(d.Logs(), "\n") {
		if strings.Contains(line, key) {
			return line
		}
	}
	return ""
}

func (d *Daemon) client() *http.Client {
	if d.Client != nil {
		return d.Client
	}
	return defaultClient
}

// do makes a request and returns the status and the body (as much of it as could be read), or
// 0 and the error.
func (d *Daemon) do(ctx context.Context, method, url, body string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := d.client().Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, nil
}

// Sign posts the hex payload to /keys/pkh and returns the status and the signature (200), the
// error message of a `[{"msg": …}]` body, the body itself, or 0 and the error of the request.
func (d *Daemon) Sign(pkh, hexPayload string) (status int, sigOrMsg string) {
	return d.SignContext(context.Background(), pkh, hexPayload)
}

// SignContext is Sign with a context.
func (d *Daemon) SignContext(ctx context.Context, pkh, hexPayload string) (status int, sigOrMsg string) {
	status, b, err := d.do(ctx, "POST", "http://"+d.Addr+"/keys/"+pkh, `"`+hexPayload+`"`)
	if err != nil {
		return 0, err.Error()
	}
	if status == http.StatusOK {
		var r struct{ Signature string }
		_ = json.Unmarshal(b, &r)
		return status, r.Signature
	}
	return status, errorMessage(b)
}

// errorMessage is the message of a `[{"msg": …}]` error body, or else the body.
func errorMessage(b []byte) string {
	var e []struct{ Msg string }
	if json.Unmarshal(b, &e) == nil && len(e) == 1 {
		return e[0].Msg
	}
	return string(b)
}

// PublicKey is GET /keys/pkh: the status and the public key (200), the error message, or 0 and
// the error of the request.
func (d *Daemon) PublicKey(pkh string) (status int, keyOrMsg string) {
	status, b, err := d.do(context.Background(), "GET", "http://"+d.Addr+"/keys/"+pkh, "")
	if err != nil {
		return 0, err.Error()
	}
	if status == http.StatusOK {
		var r struct {
			PublicKey string `json:"public_key"`
		}
		if err := json.Unmarshal(b, &r); err != nil {
			return status, err.Error()
		}
		return status, r.PublicKey
	}
	return status, errorMessage(b)
}

// Key is a key as `signatory list --json` (or generate, or import) shows it.
type Key struct {
	PKH       string `json:"pkh"`
	PublicKey string `json:"public_key"`
	Curve     string `json:"curve"`
	Reference string `json:"reference"`
}

// CLI runs a signatory command (list, generate, import…) with the daemon's binary, config and
// environment, stdin as its input and --json, and decodes the keys it prints. It fails the test
// when the command fails.
func (d *Daemon) CLI(stdin string, args ...string) []Key {
	d.TB.Helper()
	cmd := exec.Command(Binary(d.TB), append(args, "-c", d.Config, "--json")...)
	cmd.Env = d.Env
	cmd.Stdin = strings.NewReader(stdin)
	DieWithTest(cmd)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		d.TB.Fatalf("signatory %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	var keys []Key
	if err := json.Unmarshal(out, &keys); err != nil {
		d.TB.Fatalf("signatory %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return keys
}

// KeysByReference lists the keys with the CLI: their key hashes by vault reference.
func (d *Daemon) KeysByReference() map[string]string {
	d.TB.Helper()
	out := map[string]string{}
	for _, k := range d.CLI("", "list") {
		out[k.Reference] = k.PKH
	}
	return out
}

// Health is a GET of /healthz on the utility address: the status and the body, or 0 and the
// error.
func (d *Daemon) Health() (int, string) { return d.GetUtility("/healthz") }

// Get is a GET of path on the signing API: the status and the body, or 0 and the error.
func (d *Daemon) Get(path string) (int, string) { return d.get(d.Addr, path) }

// GetUtility is a GET of path (/healthz, /metrics) on the utility address: the status and the
// body, or 0 and the error.
func (d *Daemon) GetUtility(path string) (int, string) { return d.get(d.UtilityAddr, path) }

func (d *Daemon) get(addr, path string) (int, string) {
	status, b, err := d.do(context.Background(), "GET", "http://"+addr+path, "")
	if err != nil {
		return 0, err.Error()
	}
	return status, string(b)
}
