package cluster

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/signatory-go/signatory/internal/request/requesttest"
	"github.com/signatory-go/signatory/internal/testdaemon"
	"github.com/signatory-go/signatory/internal/tezos"
)

const chain = "b3d79f99" // NetXo5iVw1vBoxM

var classOf = map[byte]string{0x12: "preattestation", 0x13: "attestation"}

// job is one sign request.
type job struct {
	inst         *testdaemon.Daemon
	key          testdaemon.TestKey
	magic        byte
	level, round int32
	variant      byte
}

type slot struct {
	pkh, class   string
	level, round int32
}

// ledger keeps every signed payload per (key, class, level, round), across all phases.
type ledger struct {
	mu     sync.Mutex
	signed map[slot]map[string]bool
}

func newLedger() *ledger { return &ledger{signed: map[slot]map[string]bool{}} }

func (l *ledger) add(s slot, payload string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.signed[s] == nil {
		l.signed[s] = map[string]bool{}
	}
	l.signed[s][payload] = true
}

// check fails t for every (key, class, level, round) with more than one distinct signed payload,
// and returns how many slots were signed and how many had two or more payloads.
func (l *ledger) check(t testing.TB) (slots, double int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for s, payloads := range l.signed {
		if len(payloads) > 1 {
			double++
			var ps []string
			for p := range payloads {
				ps = append(ps, p[:80]+"…")
			}
			t.Errorf("DOUBLE SIGN: %s %s level %d round %d signed %d payloads: %v", s.pkh, s.class, s.level, s.round, len(payloads), ps)
		}
	}
	return len(l.signed), double
}

// recorder sends the requests of one phase, records signatures in the ledger, counts statuses and
// fails t on a status the phase does not allow.
type recorder struct {
	t        testing.TB
	ledger   *ledger
	mu       sync.Mutex
	statuses map[int]int // 0 = no HTTP answer (instance down)
	sent     int
	allowed  map[int]bool
	// onAnswer, when set, is called (outside the lock) with the number of answers so far after
	// each one.
	onAnswer func(total int)
}

func newRecorder(t testing.TB, l *ledger, allowed ...int) *recorder {
	r := &recorder{t: t, ledger: l, statuses: map[int]int{}, allowed: map[int]bool{}}
	for _, s := range allowed {
		r.allowed[s] = true
	}
	return r
}

// do sends j and records the outcome; every returned signature is verified.
func (r *recorder) do(j job) int {
	payload := requesttest.Consensus(j.magic, chain, j.level, j.round, j.variant)
	status, msg := j.inst.Sign(j.key.PKH, payload)
	if status == 200 {
		if sig, err := tezos.ParseSignature(msg); err != nil {
			r.t.Errorf("bad signature %q: %v", msg, err)
		} else if m, _ := hex.DecodeString(payload); !tezos.Verify(j.key.Pub, sig, m, 2) {
			r.t.Errorf("signature from %s does not verify", j.inst.Name)
		}
	}
	r.mu.Lock()
	r.sent++
	total := r.sent
	r.statuses[status]++
	if !r.allowed[status] {
		r.t.Errorf("%s: status %d in this phase: %s", j.inst.Name, status, msg)
	}
	if status == 200 {
		r.ledger.add(slot{j.key.PKH, classOf[j.magic], j.level, j.round}, payload)
	}
	onAnswer := r.onAnswer
	r.mu.Unlock()
	if onAnswer != nil {
		onAnswer(total)
	}
	return status
}

// run sends jobs with the given number of workers and returns when all have answered.
func (r *recorder) run(jobs []job, workers int) {
	ch := make(chan job)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for j := range ch {
				r.do(j)
			}
		})
	}
	for _, j := range jobs {
		ch <- j
	}
	close(ch)
	wg.Wait()
}

// level returns every combination for one level, shuffled: each key, class, round and variant is
// sent to each instance, so identical payloads race across instances and different payloads of
// one (key, class, level, round) race against each other.
func level(insts []*testdaemon.Daemon, ks []testdaemon.TestKey, l int32, rounds []int32, variants int, rng *rand.Rand) []job {
	var jobs []job
	for _, in := range insts {
		for _, k := range ks {
			for _, magic := range []byte{0x12, 0x13} {
				for _, r := range rounds {
					for v := range variants {
						jobs = append(jobs, job{inst: in, key: k, magic: magic, level: l, round: r, variant: byte(v)})
					}
				}
			}
		}
	}
	rng.Shuffle(len(jobs), func(i, j int) { jobs[i], jobs[j] = jobs[j], jobs[i] })
	return jobs
}

// summary returns the counters as text, e.g. "sent 1296: 200×412 409×884".
func (r *recorder) summary() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var codes []int
	for c := range r.statuses {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	var parts []string
	for _, c := range codes {
		name := fmt.Sprint(c)
		if c == 0 {
			name = "no-answer"
		}
		parts = append(parts, fmt.Sprintf("%s×%d", name, r.statuses[c]))
	}
	return fmt.Sprintf("sent %d: %s", r.sent, strings.Join(parts, " "))
}

func (r *recorder) count(status int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.statuses[status]
}

func (r *recorder) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sent
}
