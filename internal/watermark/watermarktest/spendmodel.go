package watermarktest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signatory-go/signatory/internal/spending"
)

// spendModel is a plain restatement of the spending rule, independent of spending.ApplySpend:
// per key, groups of identical requests (one digest), each with the ids of the requests it holds,
// the time of the latest of them and the amount counted once.
type spendModel struct {
	w      spending.Windows
	groups []modelGroup
}

type modelGroup struct {
	digest [32]byte
	at     time.Time
	amount int64
	ids    []string
}

func inWindow(at, now time.Time, period time.Duration) bool {
	return period > 0 && at.After(now.Add(-period))
}

// record applies a request and returns "" when it is admitted, or the rule that refuses it; joined
// says it was admitted as a copy of a group's bytes.
func (m *spendModel) record(id string, digest [32]byte, at time.Time, amount int64) (rule string, joined bool) {
	keepFor := 2*max(m.w.AmountPeriod, m.w.CountPeriod) + time.Hour
	var live []modelGroup
	for _, g := range m.groups {
		if g.at.After(at.Add(-keepFor)) {
			live = append(live, g)
		}
	}
	var total int64
	count := 0
	for _, g := range live {
		if inWindow(g.at, at, m.w.AmountPeriod) {
			total += g.amount
		}
		if inWindow(g.at, at, m.w.CountPeriod) {
			count++
		}
	}
	for i, g := range live {
		if g.digest == digest && (m.w.AmountPeriod == 0 || inWindow(g.at, at, m.w.AmountPeriod)) &&
			(m.w.CountPeriod == 0 || inWindow(g.at, at, m.w.CountPeriod)) {
			if len(g.ids) >= spending.MaxCopies {
				return "window_full", false
			}
			live[i].ids = append(slices.Clone(g.ids), id)
			if at.After(g.at) {
				live[i].at = at
			}
			m.groups = live
			return "", true
		}
	}
	if m.w.AmountPeriod > 0 && total+amount > m.w.Amount {
		return "max_total", false
	}
	if m.w.CountPeriod > 0 && count+1 > m.w.Count {
		return "max_operations", false
	}
	m.groups = append(live, modelGroup{digest: digest, at: at, amount: amount, ids: []string{id}})
	return "", false
}

func (m *spendModel) refund(id string) {
	var out []modelGroup
	for _, g := range m.groups {
		g.ids = slices.DeleteFunc(slices.Clone(g.ids), func(x string) bool { return x == id })
		if len(g.ids) > 0 {
			out = append(out, g)
		}
	}
	m.groups = out
}

// entries are the model's groups, and a store's list, written alike for comparison.
func (m *spendModel) entries() []string {
	var out []string
	for _, g := range m.groups {
		out = append(out, entryString(g.digest, g.at, g.amount, g.ids))
	}
	slices.Sort(out)
	return out
}

func storedEntries(list []spending.Spend) []string {
	var out []string
	for _, s := range list {
		out = append(out, entryString(s.Digest, s.At, s.Amount, append([]string{s.ID}, s.Also...)))
	}
	slices.Sort(out)
	return out
}

func entryString(d [32]byte, at time.Time, amount int64, ids []string) string {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	return fmt.Sprintf("%x@%d:%d[%s]", d[:2], at.UnixNano(), amount, strings.Join(ids, ","))
}

// modelRequest is one request of the random run.
type modelRequest struct {
	key     int
	id      string
	digest  [32]byte
	at      time.Time
	amount  int64
	pending bool // recorded, neither signed nor refunded yet
	signed  bool
}

// SpendModel runs a seeded random sequence of spending operations — requests recorded (new bytes
// or a copy of earlier ones), signed or refunded, clients gone before the record, the clock
// moving, the store reopened — on keys with both windows, max_total alone and max_operations
// alone, through every given store instance in turn, and after every step compares each key's
// stored list with spendModel's and checks the invariants: the amount and the number of requests
// counted in any window are within the limits, and every signed request is still held by an entry
// that counts it.
func SpendModel(t *testing.T, seed uint64, steps int, s spending.Store, shared []spending.Store,
	reopen func(t *testing.T, s spending.Store) spending.Store) {
	t.Helper()
	ctx := context.Background()
	r := rand.New(rand.NewPCG(seed, seed^0x5bd1e995))
	windows := []spending.Windows{
		{Amount: Tez(100), AmountPeriod: time.Hour, Count: 6, CountPeriod: 10 * time.Minute},
		{Amount: Tez(50), AmountPeriod: 30 * time.Minute},
		{Count: 4, CountPeriod: 20 * time.Minute},
	}
	models := make([]*spendModel, len(windows))
	for i, w := range windows {
		models[i] = &spendModel{w: w}
	}
	keys := []string{PKH(11), PKH(12), PKH(13)}
	instances := append([]spending.Store{s}, shared...)
	now := spendEpoch
	var reqs []*modelRequest
	var log []string
	refusals := map[string]int{}
	joins, sharedRefunds := 0, 0 // copies admitted; refunds of a request whose entry held copies
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d, step %d: %s\nsteps so far:\n%s", seed, len(log), fmt.Sprintf(format, args...), strings.Join(log, "\n"))
	}
	for step := range steps {
		inst := instances[r.IntN(len(instances))]
		switch n := r.IntN(100); {
		case n < 45: // a request
			k := r.IntN(len(keys))
			req := &modelRequest{key: k, id: fmt.Sprint("m", step), at: now, amount: Tez(int64(r.IntN(30)))}
			req.digest[0], req.digest[1] = byte(step), byte(step>>8)
			var same []*modelRequest // the key's recent requests: a copy of one of them
			for i := len(reqs) - 1; i >= 0 && len(same) < 4; i-- {
				if reqs[i].key == k {
					same = append(same, reqs[i])
				}
			}
			if len(same) > 0 && r.IntN(2) == 0 {
				prev := same[r.IntN(len(same))]
				req.digest, req.amount = prev.digest, prev.amount
			}
			spend := spending.Spend{ID: req.id, Digest: req.digest, At: req.at, Amount: req.amount}
			if r.IntN(10) == 0 { // the client is gone before the record: nothing is recorded
				cctx, cancel := context.WithCancel(ctx)
				cancel()
				_, err := spending.Record(cctx, inst, keys[k], spend, windows[k])
				log = append(log, fmt.Sprintf("%s: %s %x %d mutez, client gone: %v", keys[k], req.id, req.digest[:2], req.amount, err))
				if err == nil || errors.Is(err, spending.ErrOverLimit) {
					fail("a request whose client is gone: %v, want its context's error", err)
				}
				break
			}
			want, joined := models[k].record(req.id, req.digest, req.at, req.amount)
			_, err := spending.Record(ctx, inst, keys[k], spend, windows[k])
			log = append(log, fmt.Sprintf("%s: %s %x %d mutez at %s: %v (model: %q)", keys[k], req.id, req.digest[:2], req.amount, now.Sub(spendEpoch), err, want))
			var le *spending.LimitError
			switch {
			case want == "" && err != nil:
				fail("admitted by the model, refused by the store: %v", err)
			case want != "" && (!errors.As(err, &le) || le.Rule != want):
				fail("refused by the model (%s), the store says %v", want, err)
			}
			if err == nil {
				req.pending = true
				reqs = append(reqs, req)
				if joined {
					joins++
				}
			} else {
				refusals[want]++
			}
		case n < 80: // a recorded request is signed, or fails and is refunded
			var pending []*modelRequest
			for _, q := range reqs {
				if q.pending {
					pending = append(pending, q)
				}
			}
			if len(pending) == 0 {
				break
			}
			q := pending[r.IntN(len(pending))]
			q.pending = false
			if r.IntN(2) == 0 {
				q.signed = true
				log = append(log, fmt.Sprintf("%s: %s signed", keys[q.key], q.id))
				break
			}
			for _, g := range models[q.key].groups {
				if slices.Contains(g.ids, q.id) && len(g.ids) > 1 {
					sharedRefunds++
				}
			}
			models[q.key].refund(q.id)
			err := spending.Refund(ctx, inst, keys[q.key], q.id)
			log = append(log, fmt.Sprintf("%s: %s refunded: %v", keys[q.key], q.id, err))
			if err != nil {
				fail("refund: %v", err)
			}
		case n < 95: // time passes: seconds, minutes or hours
			d := []time.Duration{time.Second, time.Second, time.Minute, time.Minute, 7 * time.Minute, 40 * time.Minute, 3 * time.Hour}[r.IntN(7)]
			now = now.Add(time.Duration(1+r.IntN(3)) * d)
			log = append(log, fmt.Sprintf("clock: %s", now.Sub(spendEpoch)))
		default: // the signer restarts
			if reopen == nil {
				break
			}
			s = reopen(t, s)
			instances[0] = s
			log = append(log, "restart")
		}
		all, err := instances[r.IntN(len(instances))].ListSpends(ctx)
		if err != nil {
			fail("ListSpends: %v", err)
		}
		for k, pkh := range keys {
			got, want := storedEntries(all[pkh]), models[k].entries()
			if !slices.Equal(got, want) {
				fail("%s: stored %v, model %v", pkh, got, want)
			}
			w := windows[k]
			u := spending.UsageAt(all[pkh], w, now)
			if w.AmountPeriod > 0 && u.Amount > w.Amount || w.CountPeriod > 0 && u.Count > w.Count {
				fail("%s: %+v counted in the windows %+v", pkh, u, w)
			}
			for _, q := range reqs { // signed, or pending (it may yet be): still held
				if q.key != k || !q.signed && !q.pending || !inWindow(q.at, now, max(w.AmountPeriod, w.CountPeriod)) {
					continue
				}
				held := false
				for _, e := range all[pkh] {
					if e.Digest == q.digest && !e.At.Before(q.at) && (e.ID == q.id || slices.Contains(e.Also, q.id)) {
						held = true
					}
				}
				if !held {
					fail("%s: request %s (signed or pending) is no longer held: %+v", pkh, q.id, all[pkh])
				}
			}
		}
	}
	var signed, refunded int
	for _, q := range reqs {
		if q.signed {
			signed++
		} else if !q.pending {
			refunded++
		}
	}
	t.Logf("seed %d: %d steps, %d requests admitted (%d signed, %d refunded, %d copies joining an entry, %d refunds of a request whose entry held copies), refused %v, over %d store instances",
		seed, steps, len(reqs), signed, refunded, joins, sharedRefunds, refusals, len(instances))
	// The run must have exercised what it is for: copies, and refunds among copies.
	if joins < 10 || sharedRefunds < 3 {
		t.Fatalf("seed %d: %d copies joined and %d refunds among copies: the run does not exercise copies enough", seed, joins, sharedRefunds)
	}
}
