package cluster

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/signatory-go/signatory/internal/testdaemon"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/watermark/etcd/etcdtest"
	"github.com/signatory-go/signatory/internal/watermark/postgres/postgrestest"
)

func TestClusterPostgres(t *testing.T) {
	t.Parallel()
	pg := postgrestest.Start(t)
	runCluster(t, fmt.Sprintf("  driver: postgres\n  config:\n    dsn: %s\n    table: cluster\n    timeout: 2s\n", pg.DSN), pg)
}

func TestClusterEtcd(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	runCluster(t, fmt.Sprintf("  driver: etcd\n  config:\n    endpoints: [%s]\n    prefix: /cluster/\n    timeout: 2s\n", e.Endpoint), e)
}

// totals adds up the phases for the closing log line.
type totals struct{ sent, signed, conflicts, outage, noAnswer int }

func (tt *totals) add(r *recorder) {
	tt.sent += r.total()
	tt.signed += r.count(200)
	tt.conflicts += r.count(409)
	tt.outage += r.count(500)
	tt.noAnswer += r.count(0)
}

// runCluster starts three signers on one store and runs the phases: a steady conflicting load,
// the same while one signer is killed with SIGKILL and restarted, and a store outage (every request
// refused with a 5xx) followed by a load over the levels tried during the outage. At the end no
// (key, class, level, round) may have two different payloads signed.
func runCluster(t *testing.T, watermark string, st testdaemon.SharedStore) {
	const workers = 12
	ks, keyFile := testdaemon.NewKeys(t, tezos.Ed25519, tezos.Ed25519, tezos.Ed25519)
	var pkhs []string
	for _, k := range ks {
		pkhs = append(pkhs, k.PKH)
	}
	insts := testdaemon.StartMembers(t, 3, "signatory", keyFile, watermark, testdaemon.ConsensusPolicy(pkhs...))
	for _, in := range insts {
		in.FailureLogLines = -1 // all of it
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	led := newLedger()
	var tot totals
	l := int32(0)
	rounds := []int32{0, 1}

	// 1. Steady load: every request is signed or refused as a conflict.
	steady := newRecorder(t, led, 200, 409)
	for range 8 {
		l++
		steady.run(level(insts, ks, l, rounds, 3, rng), workers)
	}
	t.Logf("steady: %s", steady.summary())
	tot.add(steady)

	// 2. Kill signatory-1 with SIGKILL while a level is in flight; restart it two levels later.
	kill := newRecorder(t, led, 200, 409, 0)
	for i := range 6 {
		l++
		jobs := level(insts, ks, l, rounds, 3, rng)
		if i != 1 {
			kill.run(jobs, workers)
		} else {
			// Kill from the worker that gets the answer completing a third of the level.
			third := kill.total() + len(jobs)/3
			var once sync.Once
			kill.onAnswer = func(total int) {
				if total >= third {
					once.Do(insts[1].Kill)
				}
			}
			kill.run(jobs, workers)
			kill.onAnswer = nil
		}
		if i == 3 {
			insts[1].ServeMember()
		}
	}
	if kill.count(0) == 0 {
		t.Error("no request hit the killed instance")
	}
	t.Logf("kill -9 and restart: %s", kill.summary())
	tot.add(kill)

	// 3. Store outage: every watermarked request is refused with 500 (never signed without a
	// recorded watermark) and /healthz turns 503.
	st.Stop()
	outage := newRecorder(t, led, 500)
	jobs := level(insts, ks, l+1, []int32{0}, 2, rng)
	outage.run(jobs, len(jobs))
	for _, in := range insts {
		if h, _ := in.GetUtility("/healthz"); h != 503 {
			t.Errorf("%s /healthz with the store down: %d, want 503", in.Name, h)
		}
	}
	t.Logf("store down: %s", outage.summary())
	tot.add(outage)
	st.Start()
	// Each signer signs again once it has reconnected: the same probe payload to each (an
	// identical re-sign is allowed), polled with a deadline.
	probe := newRecorder(t, led, 200, 500, 503)
	for _, in := range insts {
		p := job{inst: in, key: ks[0], magic: 0x13, level: l + 1, round: 0, variant: 0}
		testdaemon.Eventually(t, time.Minute, in.Name+" signing after the store restart", func() error {
			if status := probe.do(p); status != 200 {
				return fmt.Errorf("status %d", status)
			}
			return nil
		})
	}
	tot.add(probe)
	after := newRecorder(t, led, 200, 409)
	for range 6 {
		l++
		after.run(level(insts, ks, l, rounds, 3, rng), workers)
	}
	t.Logf("after the store restart: %s", after.summary())
	tot.add(after)

	slots, double := led.check(t)
	t.Logf("TOTAL: %d requests sent, %d signatures returned (all verified), %d conflicts refused (409), "+
		"%d refused while the store was down (5xx), %d unanswered (instance killed); "+
		"%d distinct (key, class, level, round) signed, %d with conflicting payloads",
		tot.sent, tot.signed, tot.conflicts, tot.outage, tot.noAnswer, slots, double)
	if tot.signed == 0 || tot.conflicts == 0 {
		t.Error("the load produced no signatures or no conflicts")
	}
}
