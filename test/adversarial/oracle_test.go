package adversarial

import (
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/signatory-go/signatory/internal/tezos"
)

// lr is a (level, round) pair, ordered lexicographically.
type lr struct{ level, round int32 }

func (a lr) less(b lr) bool { return a.level < b.level || (a.level == b.level && a.round < b.round) }

// slotKey is one watermark slot: no two payloads may be signed for it.
type slotKey struct {
	chain, pkh, class string
	at                lr
}

// classKey is one watermark record.
type classKey struct{ chain, pkh, class string }

// oracle records every answer and checks the three safety properties:
//
//	(a) per (chain, key, class, level, round) at most one distinct payload signed;
//	(b) per payload at most one distinct signature ever returned;
//	(c) marks only rise: once a signature for slot S has been returned, no request sent after
//	    that at a slot below S (same chain, key and class) is signed.
//
// For a store that keeps nothing across restarts (mem), newEpoch starts the checks afresh.
type oracle struct {
	t  testing.TB
	mu sync.Mutex

	epoch    int
	payloads map[int]map[slotKey]map[string]bool
	sigs     map[string]map[string]bool // pkh+payload → signatures (across epochs: (b) holds always)
	done     map[int]map[classKey]lr    // highest slot answered 200, per epoch

	signedReqs []*request // every request answered 200 once, for replays after restarts

	sent, signed, refused, failed, unanswered, violations, replays int
	statuses                                                       map[int]int
}

func newOracle(t testing.TB) *oracle {
	o := &oracle{t: t, payloads: map[int]map[slotKey]map[string]bool{}, sigs: map[string]map[string]bool{},
		done: map[int]map[classKey]lr{}, statuses: map[int]int{}}
	o.newEpoch()
	return o
}

// newEpoch forgets (a) and (c) state: for the mem store after a restart.
func (o *oracle) newEpoch() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.epoch++
	o.payloads[o.epoch] = map[slotKey]map[string]bool{}
	o.done[o.epoch] = map[classKey]lr{}
}

// before is called just before a request is sent; it returns what (c) needs.
func (o *oracle) before(r *request) (epoch int, highest lr, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	highest, ok = o.done[o.epoch][r.classKey()]
	return o.epoch, highest, ok
}

func (o *oracle) violation(format string, args ...any) {
	o.violations++
	o.t.Errorf("VIOLATION: "+format, args...)
}

// record checks and records one answer. status 0 means no HTTP answer.
func (o *oracle) record(r *request, epoch int, highest lr, hadHighest bool, status int, msg string) {
	if status == 200 {
		sig, err := tezos.ParseSignature(msg)
		m, _ := hex.DecodeString(r.payload)
		if err != nil || !tezos.Verify(r.key.Pub, sig, m, 2) {
			o.mu.Lock()
			o.violation("%s: signature %q for %s does not verify (%v)", r.key.Curve, msg, r, err)
			o.mu.Unlock()
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.sent++
	o.statuses[status]++
	switch {
	case status == 200:
		o.signed++
	case status == 409:
		o.refused++
	case status == 0:
		o.unanswered++
	default:
		o.failed++
	}
	if status != 200 {
		return
	}
	sk := r.slotKey()
	ps := o.payloads[epoch][sk]
	if ps == nil {
		ps = map[string]bool{}
		o.payloads[epoch][sk] = ps
	}
	ps[r.payload] = true
	if len(ps) == 2 {
		o.violation("(a) two payloads signed for %s %s %s level %d round %d", sk.chain, sk.pkh, sk.class, sk.at.level, sk.at.round)
	}
	id := r.key.PKH + r.payload
	ss := o.sigs[id]
	if ss == nil {
		ss = map[string]bool{}
		o.sigs[id] = ss
	}
	if len(ss) == 0 {
		o.signedReqs = append(o.signedReqs, r)
	}
	ss[msg] = true
	if len(ss) == 2 {
		o.violation("(b) two signatures returned for one payload (%s): %v", r, keys(ss))
	}
	if hadHighest && epoch == o.epoch && r.at().less(highest) {
		o.violation("(c) %s signed after a signature at level %d round %d was returned", r, highest.level, highest.round)
	}
	if epoch == o.epoch {
		if h, ok := o.done[epoch][r.classKey()]; !ok || h.less(r.at()) {
			o.done[epoch][r.classKey()] = r.at()
		}
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// sample returns up to n requests answered 200 so far, picked with rng.
func (o *oracle) sample(rng interface{ IntN(int) int }, n int) []*request {
	o.mu.Lock()
	defer o.mu.Unlock()
	// From the most recent ones: those are likely still the stored record, so the answer must be
	// the very signature returned before the restart.
	recent := o.signedReqs[max(0, len(o.signedReqs)-2*n):]
	out := make([]*request, 0, n)
	for range min(n, len(recent)) {
		out = append(out, recent[rng.IntN(len(recent))])
	}
	o.replays += len(out)
	return out
}

// summary is the closing line of a run.
func (o *oracle) summary(name string, kills, storeRestarts int) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var codes []string
	var cs []int
	for c := range o.statuses {
		cs = append(cs, c)
	}
	sort.Ints(cs)
	for _, c := range cs {
		codes = append(codes, fmt.Sprintf("%d×%d", c, o.statuses[c]))
	}
	slots := 0
	for _, m := range o.payloads {
		slots += len(m)
	}
	return fmt.Sprintf("ADVERSARIAL %s: %d requests, %d signatures (all verified), %d slots signed, %d refused (409), "+
		"%d failed (5xx), %d unanswered, %d kills, %d store restarts, %d replays of signed payloads after restarts, %d violations [%s]",
		name, o.sent, o.signed, slots, o.refused, o.failed, o.unanswered, kills, storeRestarts, o.replays, o.violations, strings.Join(codes, " "))
}
