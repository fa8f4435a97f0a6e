package dkg

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drand/kyber/sign"
	"github.com/drand/kyber/sign/schnorr"
	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/blsthreshold"
)

// group is a ceremony's members run in this process, each with its own listener on loopback.
type group struct {
	c    *Ceremony
	ids  []*Identity
	lns  []net.Listener
	keys []*crypt.BLSPrivateKey
}

func newGroup(t testing.TB, n, th int) *group {
	t.Helper()
	g := &group{c: &Ceremony{Name: t.Name(), Threshold: th}}
	for i := 1; i <= n; i++ {
		k, err := NewIdentityKey()
		if err != nil {
			t.Fatal(err)
		}
		id, err := IdentityOf(k)
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		g.ids, g.lns, g.keys = append(g.ids, id), append(g.lns, ln), append(g.keys, k)
		g.c.Members = append(g.c.Members, Member{Index: i, Identity: id.Public.String(), Address: ln.Addr().String(), URL: fmt.Sprintf("http://127.0.0.1:%d", 6700+i)})
	}
	if err := g.c.check(); err != nil {
		t.Fatal(err)
	}
	return g
}

type outcome struct {
	res *Result
	err error
}

// run runs every member at once (misbehave: index → how that member cheats) and returns each
// one's outcome, by index.
func (g *group) run(t testing.TB, phase time.Duration, misbehave map[int]*misbehaviour) map[int]outcome {
	t.Helper()
	out := map[int]outcome{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, id := range g.ids {
		wg.Go(func() {
			res, err := Run(t.Context(), g.c, id, Options{Listener: g.lns[i], Wait: time.Minute, PhaseTimeout: phase, misbehave: misbehave[i+1]})
			mu.Lock()
			out[i+1] = outcome{res, err}
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// checkGroup checks what every member in want reports: the same group key, members and
// transcript; its own share matching its share public key; and that t partial signatures
// combine into the group key's signature (any t of them, as the coordinator would).
func checkGroup(t *testing.T, out map[int]outcome, want []int, th int) *Result {
	t.Helper()
	var first *Result
	for _, i := range want {
		o := out[i]
		if o.err != nil {
			t.Fatalf("member %d: %v", i, o.err)
		}
		r := o.res
		if r.Index != i || r.Threshold != th {
			t.Fatalf("member %d: index %d, threshold %d", i, r.Index, r.Threshold)
		}
		if first == nil {
			first = r
		} else if !r.Group.Equal(first.Group) || r.Transcript != first.Transcript || len(r.Members) != len(first.Members) {
			t.Fatalf("member %d reports another outcome: %s %x, member %d: %s %x", i, r.Group, r.Transcript, first.Index, first.Group, first.Transcript)
		}
		mine, ok := memberKey(r, i)
		if !ok || !r.Share.Public().Equal(mine) {
			t.Fatalf("member %d: its share is not its share public key", i)
		}
	}
	if len(first.Members) != len(want) {
		t.Fatalf("members %v, want %v", first.Members, want)
	}
	keys := map[int]*crypt.BLSPublicKey{}
	for _, mem := range first.Members {
		keys[mem.Index] = mem.SharePublic
	}
	if err := blsthreshold.CheckShares(first.Group, keys, th); err != nil {
		t.Fatalf("share keys do not interpolate to the group key: %v", err)
	}
	msg := []byte("\x11 a block, signed by t members")
	for start := 0; start+th <= len(want); start++ {
		shares := map[int]*crypt.BLSPrivateKey{}
		for _, i := range want[start : start+th] {
			shares[i] = out[i].res.Share
		}
		if !first.Group.VerifySignature(combine(t, shares, msg), msg) {
			t.Fatalf("members %v: the combined signature does not verify under the group key", want[start:start+th])
		}
	}
	return first
}

func seq(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

// TestCeremony: 3 members with threshold 2, and 5 with threshold 3, all honest: every member
// reports the same group key and transcript, nobody excluded, and any t shares sign for the group.
func TestCeremony(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ n, t int }{{3, 2}, {5, 3}} {
		t.Run(fmt.Sprintf("%d-of-%d", tc.t, tc.n), func(t *testing.T) {
			t.Parallel()
			g := newGroup(t, tc.n, tc.t)
			r := checkGroup(t, g.run(t, time.Minute, nil), seq(1, tc.n), tc.t)
			if len(r.Excluded) != 0 || len(r.Complaints) != 0 {
				t.Fatalf("excluded %v, complaints %v", r.Excluded, r.Complaints)
			}
		})
	}
}

// TestCheatingDealer (5 members, threshold 3): a dealer whose deal to one member does not match
// its commitments, and which does not answer the complaint, is left out and named by every other
// member; the other four form the group. A dealer that answers the complaint with the right
// share stays in.
func TestCheatingDealer(t *testing.T) {
	t.Parallel()
	t.Run("unanswered", func(t *testing.T) {
		t.Parallel()
		g := newGroup(t, 5, 3)
		out := g.run(t, 5*time.Second, map[int]*misbehaviour{4: {badDealTo: []int{2}, noJustification: true}})
		r := checkGroup(t, out, []int{1, 2, 3, 5}, 3)
		for _, i := range []int{1, 2, 3, 5} {
			ex := out[i].res.Excluded
			if len(ex) != 1 || ex[0].Index != 4 {
				t.Fatalf("member %d: excluded %v, want member 4", i, ex)
			}
		}
		if !hasComplaint(r, 4, 2) {
			t.Fatalf("complaints %v: want member 2's about member 4", r.Complaints)
		}
	})
	t.Run("answered", func(t *testing.T) {
		t.Parallel()
		g := newGroup(t, 5, 3)
		out := g.run(t, 5*time.Second, map[int]*misbehaviour{4: {badDealTo: []int{2}}})
		r := checkGroup(t, out, seq(1, 5), 3)
		if len(r.Excluded) != 0 || !hasComplaint(r, 4, 2) {
			t.Fatalf("excluded %v, complaints %v", r.Excluded, r.Complaints)
		}
	})
}

func hasComplaint(r *Result, dealer, by int) bool {
	for _, c := range r.Complaints {
		if c.Dealer == dealer && c.By == by {
			return true
		}
	}
	return false
}

// TestSilentMember (5 members, threshold 3): a member that joins and then sends nothing is left
// out and named; the others form the group.
func TestSilentMember(t *testing.T) {
	t.Parallel()
	g := newGroup(t, 5, 3)
	out := g.run(t, 5*time.Second, map[int]*misbehaviour{3: {silent: true}})
	checkGroup(t, out, []int{1, 2, 4, 5}, 3)
	for _, i := range []int{1, 2, 4, 5} {
		if ex := out[i].res.Excluded; len(ex) != 1 || ex[0].Index != 3 {
			t.Fatalf("member %d: excluded %v, want member 3", i, ex)
		}
	}
	if out[3].err == nil {
		t.Fatal("the silent member got a share")
	}
}

// TestTooManyCheaters: with 2 of 3 members cheating (threshold 2), the honest member gets no
// share: the ceremony aborts.
func TestTooManyCheaters(t *testing.T) {
	t.Parallel()
	g := newGroup(t, 3, 2)
	out := g.run(t, 3*time.Second, map[int]*misbehaviour{
		2: {badDealTo: []int{1, 3}, noJustification: true},
		3: {badDealTo: []int{1, 2}, noJustification: true},
	})
	if out[1].err == nil {
		t.Fatalf("the honest member got a share of %s", out[1].res.Group)
	}
}

// TestAbsentMember: a member that never joins is named; with enough others (threshold 2 of 3)
// the group forms without it; with fewer than the threshold, nobody gets a share.
func TestAbsentMember(t *testing.T) {
	t.Parallel()
	g := newGroup(t, 3, 2)
	out := map[int]outcome{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			res, err := Run(t.Context(), g.c, g.ids[i], Options{Listener: g.lns[i], Wait: 3 * time.Second, PhaseTimeout: 5 * time.Second, Log: slog.New(slog.NewTextHandler(os.Stderr, nil))})
			mu.Lock()
			out[i+1] = outcome{res, err}
			mu.Unlock()
		})
	}
	wg.Wait()
	r := checkGroup(t, out, []int{1, 2}, 2)
	if len(r.Excluded) != 1 || r.Excluded[0].Index != 3 || !strings.Contains(r.Excluded[0].Reason, "did not join") {
		t.Fatalf("excluded %v", r.Excluded)
	}

	g2 := newGroup(t, 3, 2)
	_, err := Run(t.Context(), g2.c, g2.ids[0], Options{Listener: g2.lns[0], Wait: time.Second})
	if err == nil || !strings.Contains(err.Error(), "only 1 of 3 members joined") {
		t.Fatalf("alone: %v", err)
	}
}

// TestEnvelopes: a member's listener takes only envelopes from a member, to it, signed by the
// sender's identity, that decrypt with its own; an outsider's, a forged or a misaddressed one is
// refused and changes nothing.
func TestEnvelopes(t *testing.T) {
	t.Parallel()
	g := newGroup(t, 3, 2)
	all := participants(g.c)
	m := &member{c: g.c, hash: g.c.Hash(), all: all, me: all[0], id: g.ids[0], opts: Options{Client: http.DefaultClient},
		auth: newGroupAuth(), inbox: map[string]map[int][]byte{}, wake: make(chan struct{}), equivoc: map[int]bool{}}
	m.log = discardLog()
	srv := &http.Server{Handler: m}
	go srv.Serve(g.lns[0])
	t.Cleanup(func() { srv.Close() })
	url := "http://" + g.c.Members[0].Address + path

	// sealed makes an envelope from member `from` (with signing key sk) to member `to`.
	sealed := func(from, to int, signer *Identity, kind string, plain []byte) []byte {
		pub, _ := pointOfKey(g.c.Members[to-1].identity)
		body, err := encrypt(pub, plain)
		if err != nil {
			t.Fatal(err)
		}
		sig, _ := m.auth.Sign(signer.secret, signedBytes(m.hash, from, to, kind, body))
		b, _ := json.Marshal(envelope{From: from, To: to, Kind: kind, Body: body, Sig: sig})
		return b
	}
	post := func(b []byte) int {
		resp, err := http.Post(url, "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	outsiderKey, _ := NewIdentityKey()
	outsider, _ := IdentityOf(outsiderKey)
	for name, tc := range map[string]struct {
		body []byte
		want int
	}{
		"signed by an outsider":    {sealed(2, 1, outsider, kindHello, []byte(`{}`)), http.StatusForbidden},
		"signed by another member": {sealed(2, 1, g.ids[2], kindHello, []byte(`{}`)), http.StatusForbidden},
		"to another member":        {sealed(2, 3, g.ids[1], kindHello, []byte(`{}`)), http.StatusBadRequest},
		"from nobody":              {sealed(9, 1, g.ids[1], kindHello, []byte(`{}`)), http.StatusBadRequest},
		"from itself":              {sealed(1, 1, g.ids[0], kindHello, []byte(`{}`)), http.StatusBadRequest},
		"an unknown kind":          {sealed(2, 1, g.ids[1], "share", []byte(`{}`)), http.StatusBadRequest},
		"not JSON":                 {[]byte("{"), http.StatusBadRequest},
		"larger than an envelope":  {append([]byte(`{"body":"`), bytes.Repeat([]byte("A"), maxEnvelope)...), http.StatusBadRequest},
	} {
		if got := post(tc.body); got != tc.want {
			t.Errorf("%s: status %d, want %d", name, got, tc.want)
		}
	}
	if len(m.inbox) != 0 {
		t.Fatalf("refused envelopes reached the inbox: %v", m.inbox)
	}
	// A member's own message is taken once; a second, different one is refused and noted.
	if got := post(sealed(2, 1, g.ids[1], kindHello, []byte(`{"a":1}`))); got != http.StatusOK {
		t.Fatalf("a member's hello: %d", got)
	}
	if got := post(sealed(2, 1, g.ids[1], kindHello, []byte(`{"a":1}`))); got != http.StatusOK {
		t.Fatalf("the same hello again: %d", got)
	}
	if got := post(sealed(2, 1, g.ids[1], kindHello, []byte(`{"a":2}`))); got != http.StatusConflict {
		t.Fatalf("a different hello: %d", got)
	}
	if !m.equivoc[2] || string(m.inbox[kindHello][2]) != `{"a":1}` {
		t.Fatalf("inbox %s, equivocation %v", m.inbox[kindHello][2], m.equivoc)
	}
}

// TestNotAMember: an identity the ceremony does not list takes no part.
func TestNotAMember(t *testing.T) {
	t.Parallel()
	g := newGroup(t, 3, 2)
	k, _ := NewIdentityKey()
	id, _ := IdentityOf(k)
	_, err := Run(t.Context(), g.c, id, Options{Listener: g.lns[0]})
	if err == nil || !strings.Contains(err.Error(), "not a member") {
		t.Fatal(err)
	}
}

func newGroupAuth() sign.Scheme { return schnorr.NewScheme(suite{}) }

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }
