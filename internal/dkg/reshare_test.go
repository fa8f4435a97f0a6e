package dkg

import (
	"bytes"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/blsthreshold"
)

// party is one identity taking part in ceremonies, with its latest share.
type party struct {
	id    *Identity
	share *crypt.BLSPrivateKey // nil before its first ceremony
}

func newParties(t testing.TB, n int) []*party {
	t.Helper()
	var out []*party
	for range n {
		k, err := NewIdentityKey()
		if err != nil {
			t.Fatal(err)
		}
		id, err := IdentityOf(k)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, &party{id: id})
	}
	return out
}

// ceremonyRun runs a ceremony: the new group is newIdx (index → party), with threshold th; with
// prev set, a resharing of prev's group from the parties at prevIdx (index → party, each holding
// its share). Every party gets a fresh listener. It returns each party's outcome, by identity.
func ceremonyRun(t testing.TB, th int, newIdx map[int]*party, prev *Result, prevIdx map[int]*party) map[*party]outcome {
	t.Helper()
	c := &Ceremony{Name: t.Name() + fmt.Sprint(time.Now().UnixNano()), Threshold: th}
	lns := map[*party]net.Listener{}
	addr := func(p *party) string {
		if ln, ok := lns[p]; ok {
			return ln.Addr().String()
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		lns[p] = ln
		return ln.Addr().String()
	}
	for i := 1; i <= 255; i++ {
		if p, ok := newIdx[i]; ok {
			c.Members = append(c.Members, Member{Index: i, Identity: p.id.Public.String(), Address: addr(p)})
		}
	}
	if prev != nil {
		c.Previous = &Previous{PublicKey: prev.Group.String(), Threshold: prev.Threshold}
		for _, m := range prev.Members {
			p := prevIdx[m.Index]
			if p == nil {
				continue
			}
			c.Previous.Members = append(c.Previous.Members, PreviousMember{Index: m.Index, Identity: p.id.Public.String(), Address: addr(p), Share: m.SharePublic.String()})
		}
	}
	if err := c.check(); err != nil {
		t.Fatal(err)
	}
	out := map[*party]outcome{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for p, ln := range lns {
		wg.Go(func() {
			opts := Options{Listener: ln, Wait: time.Minute, PhaseTimeout: time.Minute}
			if prev != nil {
				for _, q := range prevIdx {
					if q == p {
						opts.OldShare = p.share
					}
				}
			}
			res, err := Run(t.Context(), c, p.id, opts)
			mu.Lock()
			out[p] = outcome{res, err}
			mu.Unlock()
		})
	}
	wg.Wait()
	for p, o := range out {
		if o.err != nil {
			t.Fatalf("%s: %v", p.id.Public.Hash(), o.err)
		}
		if o.res.Share != nil {
			p.share = o.res.Share
		}
	}
	return out
}

// groupSign signs msg with the shares of the parties at the given indices and combines them.
func groupSign(t *testing.T, idx map[int]*party, indices []int, msg []byte) *crypt.BLSSignature {
	t.Helper()
	shares := map[int]*crypt.BLSPrivateKey{}
	for _, i := range indices {
		shares[i] = idx[i].share
	}
	return combine(t, shares, msg)
}

// combine signs msg with each share (index → share) and combines the partial signatures.
func combine(t *testing.T, shares map[int]*crypt.BLSPrivateKey, msg []byte) *crypt.BLSSignature {
	t.Helper()
	partials := map[int]*crypt.BLSSignature{}
	for i, k := range shares {
		sig, err := k.Sign(msg)
		if err != nil {
			t.Fatal(err)
		}
		partials[i] = sig.(*crypt.BLSSignature)
	}
	sig, err := blsthreshold.CombineSignatures(partials)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func anyResult(out map[*party]outcome) *Result {
	for _, o := range out {
		if !o.res.Leaving {
			return o.res
		}
	}
	return nil
}

// TestResharing: a 2-of-3 group made by a ceremony is reshared to 4 members (threshold 3),
// refreshed among the same 4, and then has a member replaced; through all of it the group key is
// the same and the group's signature of the same bytes is byte for byte the one the first group
// made. Shares of different generations do not combine; the member that left is told so and
// gets no share.
func TestResharing(t *testing.T) {
	t.Parallel()
	ps := newParties(t, 5)
	msg := []byte("\x13 an attestation")

	gen1 := map[int]*party{1: ps[0], 2: ps[1], 3: ps[2]}
	r1 := anyResult(ceremonyRun(t, 2, gen1, nil, nil))
	sig1 := groupSign(t, gen1, []int{1, 3}, msg)
	if !r1.Group.VerifySignature(sig1, msg) {
		t.Fatal("the first group's signature does not verify")
	}
	old := map[int]*crypt.BLSPrivateKey{1: ps[0].share, 2: ps[1].share, 3: ps[2].share}

	// 3 → 4 members, threshold 2 → 3.
	gen2 := map[int]*party{1: ps[0], 2: ps[1], 3: ps[2], 4: ps[3]}
	out2 := ceremonyRun(t, 3, gen2, r1, gen1)
	r2 := anyResult(out2)
	checkGeneration(t, out2, r1, gen2, 3, msg, sig1)
	// An old share with new ones does not combine into the group's signature.
	mixed := map[int]*crypt.BLSSignature{}
	for i, k := range map[int]*crypt.BLSPrivateKey{1: old[1], 2: ps[1].share, 3: ps[2].share} {
		s, _ := k.Sign(msg)
		mixed[i] = s.(*crypt.BLSSignature)
	}
	if sig, err := blsthreshold.CombineSignatures(mixed); err == nil && r2.Group.VerifySignature(sig, msg) {
		t.Fatal("an old share combined with new ones")
	}
	if old[1].Public().Equal(ps[0].share.Public()) {
		t.Fatal("member 1's share did not change")
	}

	// A refresh of the same 4 members.
	out3 := ceremonyRun(t, 3, gen2, r2, gen2)
	r3 := anyResult(out3)
	checkGeneration(t, out3, r1, gen2, 3, msg, sig1)

	// Member 2 replaced by a newcomer at index 5 (threshold 3 of 4).
	gen4 := map[int]*party{1: ps[0], 3: ps[2], 4: ps[3], 5: ps[4]}
	out4 := ceremonyRun(t, 3, gen4, r3, gen2)
	checkGeneration(t, out4, r1, gen4, 3, msg, sig1)
	if o := out4[ps[1]]; !o.res.Leaving || o.res.Share != nil || !o.res.Group.Equal(r1.Group) || o.res.Transcript != anyResult(out4).Transcript {
		t.Fatalf("the member that left: %+v", o.res)
	}
}

// checkGeneration checks a resharing's outcome: the group key of the first generation, the same
// transcript and share keys at every member, and every t of the new shares signing msg into
// exactly sig1.
func checkGeneration(t *testing.T, out map[*party]outcome, first *Result, idx map[int]*party, th int, msg []byte, sig1 *crypt.BLSSignature) {
	t.Helper()
	r := anyResult(out)
	keys := map[int]*crypt.BLSPublicKey{}
	for _, m := range r.Members {
		keys[m.Index] = m.SharePublic
	}
	for i, p := range idx {
		o := out[p].res
		if o.Leaving || !o.Group.Equal(first.Group) || o.Transcript != r.Transcript || o.Threshold != th || o.Index != i {
			t.Fatalf("member %d: %+v", i, o)
		}
		if !p.share.Public().Equal(keys[i]) {
			t.Fatalf("member %d's share is not its listed share key", i)
		}
	}
	if err := blsthreshold.CheckShares(first.Group, keys, th); err != nil {
		t.Fatal(err)
	}
	var indices []int
	for i := range 256 {
		if _, ok := idx[i]; ok {
			indices = append(indices, i)
		}
	}
	for s := 0; s+th <= len(indices); s++ {
		sig := groupSign(t, idx, indices[s:s+th], msg)
		if !bytes.Equal(sig.ToBase58(), sig1.ToBase58()) {
			t.Fatalf("members %v sign %s, the first group signed %s", indices[s:s+th], sig, sig1)
		}
	}
}
