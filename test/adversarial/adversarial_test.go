// Package adversarial fires randomized streams of conflicting, identical and stale block and
// consensus requests at real `signatory serve` processes — one process on the file and mem
// stores, three on one PostgreSQL, etcd or DynamoDB (dynalite) store — while instances are killed
// with SIGKILL and restarted and the shared store is stopped and started, and checks every answer
// with an oracle (see oracle): never two payloads signed for one slot, never two signatures for
// one payload, marks only rise.
//
// The default run (fixed seed, a few levels) is part of the test suite. A longer one:
//
//	go test ./test/adversarial -run Adversarial -v -args -levels 200 -seed 7
package adversarial

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/signatory-go/signatory/internal/request/requesttest"
	"github.com/signatory-go/signatory/internal/testdaemon"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/watermark/dynamodb/dynamotest"
	"github.com/signatory-go/signatory/internal/watermark/etcd/etcdtest"
	"github.com/signatory-go/signatory/internal/watermark/postgres/postgrestest"
)

var (
	levelsFlag = flag.Int("levels", 8, "levels of requests per store")
	seedFlag   = flag.Uint64("seed", 1, "random seed of the request streams")
)

func TestMain(m *testing.M) { testdaemon.Main(m) }

// chains are two chain ids (hex): NetXo5iVw1vBoxM and another.
var chains = []string{"b3d79f99", "7a06a770"}

// kinds per class: the tags a request of that class is built with.
var kinds = map[string][]byte{
	"block":          {0},
	"preattestation": {requesttest.TagPreattestation, requesttest.TagBLSPreattestation},
	"attestation":    {requesttest.TagAttestation, requesttest.TagAttestationWithDAL, requesttest.TagBLSAttestation},
}

var classes = []string{"block", "preattestation", "attestation"}

// request is one sign request of the stream.
type request struct {
	key          *testdaemon.TestKey
	chain, class string
	tag          byte
	level, round int32
	variant      byte
	payload      string
}

func (r *request) at() lr             { return lr{r.level, r.round} }
func (r *request) classKey() classKey { return classKey{r.chain, r.key.PKH, r.class} }
func (r *request) slotKey() slotKey   { return slotKey{r.chain, r.key.PKH, r.class, r.at()} }
func (r *request) String() string {
	return fmt.Sprintf("%s %s %s tag %d level %d round %d variant %d", r.key.Curve, r.chain, r.class, r.tag, r.level, r.round, r.variant)
}

func newRequest(k *testdaemon.TestKey, chain, class string, tag byte, level, round int32, variant byte) *request {
	r := &request{key: k, chain: chain, class: class, tag: tag, level: level, round: round, variant: variant}
	if class == "block" {
		r.payload = requesttest.Block(chain, level, round, variant)
	} else {
		r.payload = requesttest.ConsensusTag(tag, chain, level, round, variant)
	}
	return r
}

// stream returns the requests of one level, shuffled: for every key, chain and class, three
// different payloads at each of rounds 0 and 1 (with the class's tags in turn, so a DAL or BLS-mode
// attestation conflicts with a plain one), each sent once or twice (identical retries), plus stale
// requests two levels down.
func stream(rng *rand.Rand, ks []*testdaemon.TestKey, level int32) []*request {
	var out []*request
	for _, k := range ks {
		for _, c := range chains {
			for _, class := range classes {
				tags := kinds[class]
				for round := int32(0); round < 2; round++ {
					for v := range 3 {
						r := newRequest(k, c, class, tags[(v+int(round))%len(tags)], level, round, byte(v))
						for range 1 + rng.IntN(2) {
							out = append(out, r)
						}
					}
				}
				if level > 2 && rng.IntN(3) == 0 {
					out = append(out, newRequest(k, c, class, tags[0], level-2, rng.Int32N(2), byte(10+rng.IntN(3))))
				}
			}
		}
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// run is one store's adversarial run.
type run struct {
	t       *testing.T
	name    string
	rng     *rand.Rand
	keys    []*testdaemon.TestKey
	insts   []*testdaemon.Daemon
	oracle  *oracle
	workers int
	kills   int
	stores  int
	// allowed answers, per phase
	mu      sync.Mutex
	allowed map[int]bool
}

func (r *run) allow(codes ...int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.allowed = map[int]bool{}
	for _, c := range codes {
		r.allowed[c] = true
	}
}

// send fires reqs at random instances with r.workers workers and returns when all are answered.
// onProgress, when set, is called once after about a third of them, from a worker.
func (r *run) send(reqs []*request, onProgress func()) {
	type job struct {
		req  *request
		inst *testdaemon.Daemon
	}
	jobs := make(chan job)
	var wg sync.WaitGroup
	var n int
	var nmu sync.Mutex
	var once sync.Once
	for range r.workers {
		wg.Go(func() {
			for j := range jobs {
				epoch, highest, had := r.oracle.before(j.req)
				status, msg := j.inst.Sign(j.req.key.PKH, j.req.payload)
				r.oracle.record(j.req, epoch, highest, had, status, msg)
				r.mu.Lock()
				ok := r.allowed[status]
				r.mu.Unlock()
				if !ok {
					r.t.Errorf("%s: %s answered %d: %s", j.inst.Name, j.req, status, msg)
				}
				nmu.Lock()
				n++
				third := n == len(reqs)/3
				nmu.Unlock()
				if third && onProgress != nil {
					once.Do(onProgress)
				}
			}
		})
	}
	for _, q := range reqs {
		jobs <- job{q, r.insts[r.rng.IntN(len(r.insts))]}
	}
	close(jobs)
	wg.Wait()
}

// adversarial runs the phases on the instances: steady load; an instance killed with SIGKILL in
// the middle of a level and restarted two levels later (its requests unanswered meanwhile); for
// a shared store, an outage (every request refused with 5xx) and its restart; then load again.
// memStore: the store forgets everything at a restart, so the oracle starts a new epoch then.
func adversarial(t *testing.T, name string, n int, watermark string, st testdaemon.SharedStore, memStore bool) {
	keys, keyFile := testdaemon.NewKeys(t, tezos.Ed25519, tezos.Secp256k1, tezos.P256, tezos.BLS)
	var ks []*testdaemon.TestKey
	var pkhs []string
	for i := range keys {
		ks = append(ks, &keys[i])
		pkhs = append(pkhs, keys[i].PKH)
	}
	r := &run{t: t, name: name, rng: rand.New(rand.NewPCG(*seedFlag, uint64(len(name)))), keys: ks,
		oracle: newOracle(t), workers: 8}
	r.insts = testdaemon.StartMembers(t, n, name, keyFile, watermark, testdaemon.ConsensusPolicy(pkhs...))
	levels := int32(*levelsFlag)
	victim := r.insts[len(r.insts)-1]
	down := false // the victim is killed and not restarted yet: its requests go unanswered
	ok := func(codes ...int) {
		if down {
			codes = append(codes, 0)
		}
		r.allow(codes...)
	}
	for l := int32(1); l <= levels; l++ {
		reqs := stream(r.rng, ks, l)
		phase := (l-1)%8 + 1 // the phases repeat every 8 levels in a longer run
		switch {
		case phase == 3: // SIGKILL in the middle of a level
			r.allow(200, 409, 0)
			r.send(reqs, func() { victim.Kill(); r.kills++ })
			if n == 1 {
				if memStore {
					r.oracle.newEpoch() // mem keeps nothing: a new process starts from scratch
				}
				victim.ServeMember()
				r.replay(memStore)
			} else {
				down = true
			}
		case phase == 5 && down: // the killed instance comes back, two levels later
			victim.ServeMember()
			down = false
			r.replay(memStore)
			ok(200, 409)
			r.send(reqs, nil)
		case phase == 6 && st != nil: // store outage, then a new stream at the same level once it is back
			st.Stop()
			ok(500, 503)
			// A sample is enough: each request waits for the store's timeout.
			r.send(reqs[:min(len(reqs), 4*r.workers)], nil)
			st.Start()
			r.stores++
			r.waitSigning(l)
			r.replay(memStore)
			ok(200, 409)
			r.send(stream(r.rng, ks, l), nil)
		default:
			ok(200, 409)
			r.send(reqs, nil)
		}
	}
	if down {
		victim.ServeMember()
	}
	t.Log(r.oracle.summary(name, r.kills, r.stores))
	if r.oracle.signed == 0 || r.oracle.refused == 0 {
		t.Error("the stream produced no signatures or no refusals")
	}
}

// replay asks again for payloads signed before a restart: each must get its first signature back
// (or a refusal, once the mark has moved above it), never a second one. The mem store keeps
// nothing across a restart, so there a replay would be a fresh request: skipped.
func (r *run) replay(memStore bool) {
	if memStore {
		return
	}
	r.allow(200, 409)
	r.send(r.oracle.sample(r.rng, 48), nil)
}

// waitSigning polls every instance with a fresh probe payload until it signs again after a store
// restart (each probe is one more request for the oracle).
func (r *run) waitSigning(level int32) {
	r.allow(200, 409, 500, 503)
	for i, in := range r.insts {
		v := byte(0)
		testdaemon.Eventually(r.t, time.Minute, in.Name+" signing after the store restart", func() error {
			q := newRequest(r.keys[0], chains[0], "attestation", requesttest.TagAttestation, level, 10+int32(i), 100+v)
			v++
			epoch, h, had := r.oracle.before(q)
			status, msg := in.Sign(q.key.PKH, q.payload)
			r.oracle.record(q, epoch, h, had, status, msg)
			if status != 200 {
				return fmt.Errorf("%d %s", status, msg)
			}
			return nil
		})
	}
}

// TestAdversarialFile: the file store as configured by default, with its journal (kill -9 of the
// daemon leaves the newest marks in the journal only).
func TestAdversarialFile(t *testing.T) {
	t.Parallel()
	adversarial(t, "file", 1, "  driver: file\n", nil, false)
}

// TestAdversarialFileChainFiles: the same with the journal off, every commit replacing the chain
// file.
func TestAdversarialFileChainFiles(t *testing.T) {
	t.Parallel()
	adversarial(t, "file-chain-files", 1, "  driver: file\n  config: {journal: false}\n", nil, false)
}

func TestAdversarialMem(t *testing.T) {
	t.Parallel()
	adversarial(t, "mem", 1, "  driver: mem\n", nil, true)
}

func TestAdversarialPostgres(t *testing.T) {
	t.Parallel()
	pg := postgrestest.Start(t)
	adversarial(t, "postgres", 3, fmt.Sprintf("  driver: postgres\n  config:\n    dsn: %s\n    table: adversarial\n    timeout: 5s\n", pg.DSN), pg, false)
}

func TestAdversarialEtcd(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	adversarial(t, "etcd", 3, fmt.Sprintf("  driver: etcd\n  config:\n    endpoints: [%s]\n    prefix: /adversarial/\n    timeout: 5s\n", e.Endpoint), e, false)
}

func TestAdversarialDynamoDB(t *testing.T) {
	t.Parallel()
	srv := dynamotest.Start(t)
	adversarial(t, "dynamodb", 3, fmt.Sprintf("  driver: dynamodb\n  config:\n    table: adversarial\n    region: %s\n    access_key_id: %s\n"+
		"    secret_access_key: %s\n    endpoint: %s\n    timeout: 5s\n", dynamotest.Region, dynamotest.AccessKey, dynamotest.SecretKey, srv.Endpoint), srv, false)
}
