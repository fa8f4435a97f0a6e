package daemon

import (
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signatory-go/signatory/internal/request/requesttest"
	"github.com/signatory-go/signatory/internal/testdaemon"
	tv "github.com/signatory-go/signatory/internal/testvectors"
	"github.com/signatory-go/signatory/internal/tezos"
)

var soakFlag = flag.Duration("soak", 30*time.Second, "how long TestHostileSoak attacks the daemon")

// processStats reads what /metrics says of the process, and how many series it exports.
type processStats struct {
	goroutines, fds, rss float64
	series               int
}

var sampleLine = regexp.MustCompile(`^([a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$`)

func stats(t *testing.T, d *testdaemon.Daemon) processStats {
	t.Helper()
	status, body := d.GetUtility("/metrics")
	if status != 200 {
		t.Fatalf("/metrics: %d", status)
	}
	var s processStats
	for _, line := range strings.Split(body, "\n") {
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		s.series++
		v, _ := strconv.ParseFloat(m[3], 64)
		switch m[1] {
		case "go_goroutines":
			s.goroutines = v
		case "process_open_fds":
			s.fds = v
		case "process_resident_memory_bytes":
			s.rss = v
		}
	}
	return s
}

// TestHostileSoak attacks the real binary for -soak (30 s by default) from several connections
// with every input of the hostile-client table — long key hashes and authentication strings,
// base58 values one character short of a valid one or with a bad checksum (tz5 signatures in
// ?authentication=, which the signer checks since a tz5 key is authorized; BLS keys in bls_pk),
// bodies that start like an attestation and are not one, made-up key hashes, attestations on
// made-up chain ids, 60 KB refused payloads, deeply nested Micheline, a flood of generic
// operations, slowloris and half-open connections — while a baker signs a stream of
// authenticated attestations. Every baker request must be signed correctly; afterwards the
// process's goroutines, open files, memory, metric series and log must be within fixed bounds of
// where they started.
func TestHostileSoak(t *testing.T) {
	// Not parallel: it loads the machine on purpose, and the package's other tests have
	// timeouts of their own.
	ks, js, _ := keys(t, 1)
	k := ks[0]
	tz := fmt.Sprintf("  %s:\n    allow:\n      attestation:\n      generic: [transaction]\n", k.pkh)
	// Requests must be authenticated, by the baker's client key or a tz5 key: so every
	// ?authentication= below is parsed, and tz5 signatures (the longest base58 there is) accepted.
	clientKey, err := tezos.GenerateKey(tezos.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	tz5Key, err := tezos.GenerateKey(tezos.MLDSA44)
	if err != nil {
		t.Fatal(err)
	}
	d := newDaemonWith(t, js, tz, "  read_timeout: 2s\n  authorized_keys: ["+clientKey.Public().String()+", "+tz5Key.Public().String()+"]\n")
	signerPKH, err := tezos.ParsePublicKeyHash(k.pkh)
	if err != nil {
		t.Fatal(err)
	}
	// auth is the ?authentication= of the client key for payload (hex) to the baker's key.
	auth := func(payload string) string {
		sig, err := clientKey.Sign(tezos.AuthenticatedBytes(signerPKH, tv.Hex(payload)))
		if err != nil {
			t.Fatal(err)
		}
		return "?authentication=" + sig.String()
	}
	d.StartTimeout = time.Minute
	d.Serve()
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	post := func(path, body string) int {
		resp, err := client.Post("http://"+d.Addr+path, "application/json", strings.NewReader(body))
		if err != nil {
			return 0
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	get := func(path string) int {
		resp, err := client.Get("http://" + d.Addr + path)
		if err != nil {
			return 0
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	// Warm up, then the baseline.
	level := int32(1)
	for ; level <= 20; level++ {
		p := attestation(chainA, level, 0, 0)
		if status, msg := d.Sign(k.pkh+auth(p), p); status != 200 {
			t.Fatalf("warm-up: %d %s", status, msg)
		}
	}
	base := stats(t, d)
	baseLog := len(d.Logs())

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var attacks, signedByAttackers atomic.Int64
	attack := func(name string, f func(rng *rand.Rand) int) {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(len(name)), 7))
			for {
				select {
				case <-stop:
					return
				default:
				}
				if f(rng) == 200 {
					signedByAttackers.Add(1)
				}
				attacks.Add(1)
			}
		})
	}
	long := strings.Repeat("tz1", 20<<10)
	garbage := `"` + strings.Repeat("ab", 30<<10) + `"`
	deep := `"` + requesttest.DeepTransaction(16<<10) + `"`
	transferHex := tv.LoadPolicyHex()["transaction ok"]
	transfer := `"` + transferHex + `"`
	transferAuth := auth(transferHex)
	randomPKH := func(rng *rand.Rand) string {
		priv, _ := tezos.GenerateKey(tezos.Ed25519)
		return priv.Public().Hash().String()
	}
	attack("long key hash", func(*rand.Rand) int { return get("/keys/" + long) })
	attack("long authentication", func(*rand.Rand) int {
		return post("/keys/"+k.pkh+"?authentication="+long, `"`+attestation(chainA, 1, 0, 9)+`"`)
	})
	attack("made-up keys", func(rng *rand.Rand) int {
		if rng.IntN(2) == 0 {
			return get("/keys/" + randomPKH(rng))
		}
		return post("/keys/"+randomPKH(rng), transfer)
	})
	attack("made-up chains", func(rng *rand.Rand) int {
		chain := fmt.Sprintf("%08x", rng.Uint32())
		return post("/keys/"+k.pkh, `"`+attestation(chain, 5, 0, 0)+`"`)
	})
	attack("refused 60 KB payloads", func(*rand.Rand) int { return post("/keys/"+k.pkh, garbage) })
	attack("deep Micheline", func(*rand.Rand) int { return post("/keys/"+k.pkh, deep) })
	for range 3 {
		attack("generic flood", func(*rand.Rand) int { return post("/keys/"+k.pkh+transferAuth, transfer) })
	}
	// Base58 one character short of a valid value, or at its length with a bad checksum: refused
	// before decoding, or decoded at the cost of a valid one.
	shortMdsig := "mdsig" + strings.Repeat("z", tezos.MLDSA44SignatureLength-6)
	badMdsig := "mdsig" + strings.Repeat("z", tezos.MLDSA44SignatureLength-5)
	attack("tz5 signatures one short or with a bad checksum", func(rng *rand.Rand) int {
		s := shortMdsig
		if rng.IntN(2) == 0 {
			s = badMdsig
		}
		return post("/keys/"+k.pkh+"?authentication="+s, `"`+attestation(chainA, 1, 0, 9)+`"`)
	})
	attack("bls_pk one short", func(*rand.Rand) int {
		return get("/bls_prove_possession/" + k.pkh + "?bls_pk=BLpk" + strings.Repeat("z", 71))
	})
	// Bodies that start like an attestation but are 60 KB long wait with the generic requests.
	fake := `"13` + strings.Repeat("ab", 30<<10) + `"`
	attack("0x13 bodies that are not attestations", func(*rand.Rand) int { return post("/keys/"+k.pkh, fake) })
	attack("slowloris and half-open", func(rng *rand.Rand) int {
		conn, err := net.Dial("tcp", d.Addr)
		if err != nil {
			return 0
		}
		defer conn.Close()
		switch rng.IntN(3) {
		case 0: // headers that never end
			io.WriteString(conn, "POST /keys/"+k.pkh+" HTTP/1.1\r\nHost: x\r\n")
		case 1: // a body that never comes
			io.WriteString(conn, "POST /keys/"+k.pkh+" HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n\"13")
		}
		// case 2: nothing at all
		select {
		case <-stop:
		case <-time.After(time.Second):
		}
		return 0
	})

	// The baker's stream, while the attacks run.
	deadline := time.Now().Add(*soakFlag)
	baker := 0
	for time.Now().Before(deadline) {
		level++
		p := attestation(chainA, level, 0, 0)
		status, sig := d.Sign(k.pkh+auth(p), p)
		if status != 200 {
			t.Fatalf("baker's attestation at level %d during the attack: %d %s", level, status, sig)
		}
		verify(t, k, p, sig)
		baker++
	}
	close(stop)
	wg.Wait()
	client.CloseIdleConnections()

	// The process settles back within bounds: connections the server closes take a moment, so
	// this polls (at most a minute) instead of judging a single sample.
	logBound := baseLog + 600*(baker+int(signedByAttackers.Load())) + 256<<10
	var after processStats
	settle := time.Now().Add(time.Minute)
	for {
		after = stats(t, d)
		ok := after.goroutines <= base.goroutines+20 && after.fds <= base.fds+20
		if ok || time.Now().After(settle) {
			break
		}
		time.Sleep(200 * time.Millisecond) // polling a settling server, not synchronisation
	}
	t.Logf("SOAK %v: %d baker attestations signed, %d hostile requests (%d signed: generic and made-up chains); "+
		"goroutines %.0f → %.0f, open fds %.0f → %.0f, RSS %.0f → %.0f MiB, metric series %d → %d, log %d → %d bytes",
		*soakFlag, baker, attacks.Load(), signedByAttackers.Load(), base.goroutines, after.goroutines, base.fds, after.fds,
		base.rss/(1<<20), after.rss/(1<<20), base.series, after.series, baseLog, len(d.Logs()))
	if baker == 0 {
		t.Fatal("the baker signed nothing")
	}
	if after.goroutines > base.goroutines+20 {
		t.Errorf("goroutines %v → %v", base.goroutines, after.goroutines)
	}
	if after.fds > base.fds+20 {
		t.Errorf("open files %v → %v", base.fds, after.fds)
	}
	if after.rss > base.rss+256<<20 {
		t.Errorf("RSS %.0f → %.0f MiB", base.rss/(1<<20), after.rss/(1<<20))
	}
	// Client-controlled label values are bounded (chain ids, rounds, client addresses, key
	// hashes): the series that may appear are those of at most 8 chains plus "other".
	if after.series > base.series+400 {
		t.Errorf("metric series %d → %d", base.series, after.series)
	}
	if n := len(d.Logs()); n > logBound {
		t.Errorf("log grew from %d to %d bytes (bound %d)", baseLog, n, logBound)
	}
	d.CheckAlive()
}
