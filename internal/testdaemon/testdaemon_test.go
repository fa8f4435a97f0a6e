package testdaemon

import (
	"context"
	"errors"
	"fmt"
	"github.com/signatory-go/signatory/internal/request/requesttest"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// helperEnv makes the test binary act as a child process for the tests of Process and Service.
const helperEnv = "TESTDAEMON_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "serve": // answer "ok" to every connection on TESTDAEMON_ADDR
		serve(os.Getenv("TESTDAEMON_ADDR"), false)
	case "exit":
		fmt.Println("giving up")
		os.Exit(3)
	case "busy-once": // fail as if the port were taken, the first time only
		if f, err := os.OpenFile(os.Getenv("TESTDAEMON_MARK"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); err == nil {
			f.Close()
			fmt.Println("listen tcp: bind: Address already in use")
			os.Exit(1)
		}
		serve(os.Getenv("TESTDAEMON_ADDR"), true)
	case "terminate": // serve; on SIGTERM, say so and exit 0
		serve(os.Getenv("TESTDAEMON_ADDR"), true)
	case "group": // start a grandchild that serves on TESTDAEMON_ADDR, then wait
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), helperEnv+"=serve")
		cmd.Stdout = os.Stdout
		if err := cmd.Start(); err != nil {
			fmt.Println(err)
			os.Exit(2)
		}
		cmd.Wait()
		os.Exit(0)
	}
	Main(m)
}

// serve answers "ok" to every connection on addr; with onTerm, SIGTERM makes it print
// "terminating" and exit 0.
func serve(addr string, onTerm bool) {
	if onTerm {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		go func() {
			<-sig
			fmt.Println("terminating")
			os.Exit(0)
		}()
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Println(err)
		os.Exit(2)
	}
	fmt.Println("serving")
	for {
		c, err := l.Accept()
		if err != nil {
			os.Exit(2)
		}
		fmt.Fprintln(c, "ok")
		c.Close()
	}
}

func helper(mode, addr string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, "TESTDAEMON_ADDR="+addr)
	return cmd
}

func TestConsensus(t *testing.T) {
	const chain = "b3d79f99"
	branch := "ab" + strings.Repeat("00", 31)
	level, round := "00000064", "00000002" // 100, 2
	tail := "0007" + level + round + strings.Repeat("00", 32)
	if got, want := requesttest.Attestation(chain, 100, 2, 0xab), "13"+chain+branch+"15"+tail; got != want {
		t.Errorf("Attestation = %s, want %s", got, want)
	}
	if got, want := requesttest.Preattestation(chain, 100, 2, 0xab), "12"+chain+branch+"14"+tail; got != want {
		t.Errorf("Preattestation = %s, want %s", got, want)
	}
	if requesttest.Attestation(chain, 100, 2, 0) == requesttest.Attestation(chain, 100, 2, 1) {
		t.Error("variants give the same payload")
	}
	defer func() {
		if recover() == nil {
			t.Error("a chain ID that is not 4 bytes of hex was accepted")
		}
	}()
	requesttest.Attestation("NetXo5iVw1vBoxM", 1, 0, 0)
}

func TestPolicy(t *testing.T) {
	if got := Policy(); got != "" {
		t.Errorf("Policy() = %q", got)
	}
	got := Policy("tz1a", "tz1b")
	if !strings.HasPrefix(got, "  tz1a:\n    allow:\n") || !strings.Contains(got, "\n  tz1b:\n") || strings.Count(got, "      attestation:\n") != 2 {
		t.Errorf("Policy = %q", got)
	}
}

func TestBufferAndFreeAddr(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				fmt.Fprint(&b, "x")
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if n := len(b.String()); n != 800 {
		t.Errorf("%d bytes, want 800", n)
	}
	// FreeAddrs' addresses are distinct (two FreeAddr calls in a row may not be).
	addrs := FreeAddrs(t, 50)
	seen := map[string]bool{}
	for _, x := range addrs {
		if !strings.HasPrefix(x, "127.0.0.1:") || seen[x] {
			t.Fatalf("FreeAddrs: %v", addrs)
		}
		seen[x] = true
	}
	a := FreeAddr(t)
	l, err := net.Listen("tcp", a)
	if err != nil {
		t.Fatalf("the free address cannot be listened on: %v", err)
	}
	l.Close()
}

func TestProcess(t *testing.T) {
	addr := FreeAddr(t)
	var out Buffer
	p, err := StartProcess(helper("serve", addr), &out)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitListening(addr, 20*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	// The child's output comes through a pipe: its line may arrive after the port answers.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	saw := out.WaitFor(ctx, "serving")
	cancel()
	if p.Exited() || !saw {
		t.Fatalf("exited %v, output %q", p.Exited(), out.String())
	}
	p.Kill()
	p.Kill() // again: nothing to do
	if !p.Exited() || p.Err() == nil {
		t.Fatalf("after Kill: exited %v, err %v", p.Exited(), p.Err())
	}
	if err := p.WaitListening(addr, time.Second); !errors.Is(err, ErrExited) {
		t.Fatalf("WaitListening on an exited process: %v", err)
	}

	out = Buffer{}
	p, err = StartProcess(helper("exit", addr), &out)
	if err != nil {
		t.Fatal(err)
	}
	err = p.WaitListening(addr, 20*time.Second)
	if !errors.Is(err, ErrExited) || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("a process that exits: %v", err)
	}
	if !strings.Contains(out.String(), "giving up") {
		t.Fatalf("output %q", out.String())
	}

	p, err = StartProcess(helper("none", addr), &out) // runs no test, and exits 0 at once
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	if p.Err() != nil {
		t.Fatalf("exit: %v", p.Err())
	}
}

func TestDaemon(t *testing.T) {
	// Sandbox bootstrap1, a public test key.
	const sk, pkh = "edsk3gUfUPyBSfrS9CCgmCiQsTCHGkviBDusMxDJstFtojtc1zcpsh", "tz1KqTpEZ7Yob7QbPE4Hy4Wo8fHG8LhKxZSx"
	const chain = "b3d79f99"
	d := New(t)
	d.ReportRaces = true
	keyFile := filepath.Join(d.Dir, "secret_keys.json")
	if err := os.WriteFile(keyFile, []byte(`[{"name": "k", "value": "unencrypted:`+sk+`"}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	d.WriteConfig(FileVault(keyFile) + "watermark:\n  driver: file\ntezos:\n" + Policy(pkh))
	if cfg, _ := os.ReadFile(d.Config); !strings.HasPrefix(string(cfg), d.Header()) || !strings.Contains(d.Header(), "  address: "+d.Addr+"\n") {
		t.Fatalf("config:\n%s", cfg)
	}

	if keys := d.CLI("", "list"); len(keys) != 1 || keys[0].PKH != pkh || keys[0].PublicKey == "" {
		t.Fatalf("list: %+v", keys)
	}
	if refs := d.KeysByReference(); len(refs) != 1 {
		t.Fatalf("keys by reference: %v", refs)
	}

	d.Serve()
	if status, body := d.Health(); status != 200 || !strings.Contains(body, "ready") {
		t.Fatalf("healthz: %d %s", status, body)
	}
	if status, body := d.GetUtility("/metrics"); status != 200 || !strings.Contains(body, "signatory_") {
		t.Fatalf("metrics: %d", status)
	}
	if status, pk := d.PublicKey(pkh); status != 200 || !strings.HasPrefix(pk, "edpk") {
		t.Fatalf("GET /keys: %d %s", status, pk)
	}
	if status, body := d.Get("/authorized_keys"); status != 200 {
		t.Fatalf("GET /authorized_keys: %d %s", status, body)
	}
	if status, sig := d.Sign(pkh, requesttest.Attestation(chain, 10, 0, 0)); status != 200 || !strings.HasPrefix(sig, "edsig") {
		t.Fatalf("sign: %d %s", status, sig)
	}
	if status, msg := d.Sign(pkh, requesttest.Attestation(chain, 10, 0, 1)); status != 409 || msg == "" || strings.HasPrefix(msg, "[") {
		t.Fatalf("conflicting payload: %d %s", status, msg)
	}
	if status, msg := d.Sign("tz1Ke2h7sDdakHJQh8WX4Z372du1KChsksyU", requesttest.Attestation(chain, 10, 0, 0)); status < 400 || strings.HasPrefix(msg, "[") {
		t.Fatalf("unknown key: %d %s", status, msg)
	}

	if err := d.Stop(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, d.Logs())
	}
	d.Logf("---- restart")
	d.Serve()
	d.CheckAlive()
	if status, sig := d.Sign(pkh, requesttest.Attestation(chain, 10, 0, 0)); status != 200 { // identical: served again
		t.Fatalf("identical re-sign after restart: %d %s", status, sig)
	}
	d.Kill()
	select {
	case <-d.Done():
	default:
		t.Fatal("Done is open after Kill")
	}
	if status, _ := d.Sign(pkh, requesttest.Attestation(chain, 11, 0, 0)); status != 0 {
		t.Fatalf("signed by a killed daemon: %d", status)
	}
	if !d.WaitLog("---- restart") || d.WaitLogWithin("never logged", 50*time.Millisecond) {
		t.Fatal("WaitLog")
	}
	if strings.Count(d.Logs(), "---- restart") != 1 {
		t.Fatalf("the log of both runs is not kept:\n%s", d.Logs())
	}

	// A daemon that cannot start: WaitReady reports the exit.
	bad := New(t)
	bad.WriteConfig("vaults: [\n")
	bad.Launch("serve", "-c", bad.Config)
	if err := bad.WaitReady(); !errors.Is(err, ErrExited) {
		t.Fatalf("bad config: %v", err)
	}
}

func TestWaitOutputAndStop(t *testing.T) {
	addr := FreeAddr(t)
	var out Buffer
	p, err := StartProcess(helper("terminate", addr), &out)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Kill()
	if err := p.WaitOutput(&out, "serving\n", time.Minute); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if p.Pid() <= 0 {
		t.Fatalf("pid %d", p.Pid())
	}
	p.Stop(syscall.SIGTERM, time.Minute) // exits by itself: no SIGKILL needed
	if err := p.Err(); err != nil || !strings.Contains(out.String(), "terminating") {
		t.Fatalf("after Stop(SIGTERM): %v, output %q", err, out.String())
	}
	if err := p.WaitOutput(&out, "never printed", time.Minute); !errors.Is(err, ErrExited) {
		t.Fatalf("WaitOutput on an exited process: %v", err)
	}

	out = Buffer{}
	p, err = StartProcess(helper("serve", FreeAddr(t)), &out)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Kill()
	if err := p.WaitOutput(&out, "never printed", 50*time.Millisecond); err == nil || errors.Is(err, ErrExited) {
		t.Fatalf("WaitOutput for a line that does not come: %v", err)
	}
}

func TestBufferWaitFor(t *testing.T) {
	var b Buffer
	ctx, cancel := context.WithCancel(context.Background())
	found := make(chan bool)
	go func() { found <- b.WaitFor(ctx, "needle") }()
	fmt.Fprint(&b, "hay ne")
	fmt.Fprint(&b, "edle hay") // split over two writes
	if !<-found {
		t.Fatal("WaitFor missed a string split over two writes")
	}
	go func() { found <- b.WaitFor(ctx, "absent") }()
	cancel()
	if <-found {
		t.Fatal("WaitFor found what is not there")
	}
}

func TestRunTool(t *testing.T) {
	out, err := RunTool(helper("exit", ""))
	if err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "giving up") ||
		!strings.Contains(string(out), "giving up") {
		t.Fatalf("a tool that fails: %v, output %q", err, out)
	}
	if _, err := RunTool(helper("none", "")); err != nil {
		t.Fatalf("a tool that succeeds: %v", err)
	}
	if _, err := RunTool(exec.Command(filepath.Join(t.TempDir(), "missing"))); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("a tool that does not exist: %v", err)
	}
}

// TestKillGroup: Kill also ends what the process started (a server's workers).
func TestKillGroup(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("process groups are only used on Linux")
	}
	addr := FreeAddr(t)
	var out Buffer
	p, err := StartProcess(helper("group", addr), &out)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitListening(addr, time.Minute); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	p.Kill()
	// The grandchild got SIGKILL too: its port closes (when the kernel has torn it down).
	deadline := time.Now().Add(time.Minute)
	for Listening(context.Background(), addr) {
		if time.Now().After(deadline) {
			t.Fatal("the grandchild outlived Kill")
		}
		time.Sleep(10 * time.Millisecond) // polling the kernel's teardown of a killed process
	}
}

// TestDaemonPortTaken: a port taken by another process between FreeAddr and the daemon's start
// makes Start pick new ports and start again, instead of failing the test.
func TestDaemonPortTaken(t *testing.T) {
	const sk, pkh = "edsk3gUfUPyBSfrS9CCgmCiQsTCHGkviBDusMxDJstFtojtc1zcpsh", "tz1KqTpEZ7Yob7QbPE4Hy4Wo8fHG8LhKxZSx"
	d := New(t)
	keyFile := filepath.Join(d.Dir, "secret_keys.json")
	if err := os.WriteFile(keyFile, []byte(`[{"name": "k", "value": "unencrypted:`+sk+`"}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	d.WriteConfig(FileVault(keyFile) + "watermark:\n  driver: file\ntezos:\n" + Policy(pkh))
	taken := d.Addr
	ln, err := net.Listen("tcp", taken)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d.Serve()
	if d.Addr == taken {
		t.Fatal("the daemon kept the taken port")
	}
	if status, pk := d.PublicKey(pkh); status != 200 || !strings.HasPrefix(pk, "edpk") {
		t.Fatalf("GET /keys on the new port: %d %s", status, pk)
	}
	if cfg, _ := os.ReadFile(d.Config); strings.Contains(string(cfg), taken) {
		t.Fatalf("the config still names %s", taken)
	}
}
