package dkg

import (
	"context"
	"crypto/sha256"
	"slices"
	"sync"

	"github.com/drand/kyber"
	"github.com/drand/kyber/encrypt/ecies"
	kdkg "github.com/drand/kyber/share/dkg"
)

func encrypt(to kyber.Point, msg []byte) ([]byte, error) {
	return ecies.Encrypt(suite{}, to, msg, sha256.New)
}

func decrypt(secret kyber.Scalar, ciphertext []byte) ([]byte, error) {
	return ecies.Decrypt(suite{}, secret, ciphertext, sha256.New)
}

// board carries kyber's packets between the members present: what this member pushes is sent to
// the others (and handed back to itself, as kyber counts its own packets), what arrives in the
// inbox is decoded and handed to kyber once.
type board struct {
	m     *member
	ctx   context.Context
	to    []*participant
	deals chan kdkg.DealBundle
	resps chan kdkg.ResponseBundle
	justs chan kdkg.JustificationBundle

	mu         sync.Mutex
	complaints map[Complaint]bool // every complaint seen in a response
}

func (b *board) PushDeals(d *kdkg.DealBundle) {
	if mis := b.m.opts.misbehave; mis != nil {
		if mis.silent {
			return
		}
		if len(mis.badDealTo) > 0 {
			b.spoil(d, mis.badDealTo)
		}
	}
	b.deals <- *d
	if data, err := encodeDeals(d); err == nil {
		b.m.broadcast(b.ctx, b.to, kindDeal, data)
	}
}

func (b *board) PushResponses(r *kdkg.ResponseBundle) {
	if mis := b.m.opts.misbehave; mis != nil && mis.silent {
		return
	}
	b.noteResponses(r)
	b.resps <- *r
	if data, err := encodeResponses(r); err == nil {
		b.m.broadcast(b.ctx, b.to, kindResponse, data)
	}
}

func (b *board) PushJustifications(j *kdkg.JustificationBundle) {
	if mis := b.m.opts.misbehave; mis != nil && (mis.silent || mis.noJustification) {
		return
	}
	b.justs <- *j
	if data, err := encodeJustifications(j); err == nil {
		b.m.broadcast(b.ctx, b.to, kindJustification, data)
	}
}

func (b *board) IncomingDeal() <-chan kdkg.DealBundle                   { return b.deals }
func (b *board) IncomingResponse() <-chan kdkg.ResponseBundle           { return b.resps }
func (b *board) IncomingJustification() <-chan kdkg.JustificationBundle { return b.justs }

func (b *board) noteResponses(r *kdkg.ResponseBundle) {
	b.mu.Lock()
	for _, resp := range r.Responses {
		if !resp.Status {
			b.complaints[Complaint{Dealer: int(resp.DealerIndex) + 1, By: int(r.ShareIndex) + 1}] = true
		}
	}
	b.mu.Unlock()
}

// pump hands kyber every packet that arrives, once, until ctx ends. A packet that does not
// decode is dropped (its sender counts as silent for that phase) and logged.
func (b *board) pump(ctx context.Context) {
	done := map[string]map[int]bool{kindDeal: {}, kindResponse: {}, kindJustification: {}}
	for {
		b.m.mu.Lock()
		wake := b.m.wake
		var fresh []struct {
			kind string
			from int
			data []byte
		}
		for kind, seen := range done {
			for from, data := range b.m.inbox[kind] {
				if !seen[from] && slices.ContainsFunc(b.to, func(x *participant) bool { return x.ID == from }) {
					seen[from] = true
					fresh = append(fresh, struct {
						kind string
						from int
						data []byte
					}{kind, from, data})
				}
			}
		}
		b.m.mu.Unlock()
		for _, f := range fresh {
			var err error
			switch f.kind {
			case kindDeal:
				var d *kdkg.DealBundle
				if d, err = decodeDeals(f.data); err == nil {
					b.deals <- *d
				}
			case kindResponse:
				var r *kdkg.ResponseBundle
				if r, err = decodeResponses(f.data); err == nil {
					b.noteResponses(r)
					b.resps <- *r
				}
			case kindJustification:
				var j *kdkg.JustificationBundle
				if j, err = decodeJustifications(f.data); err == nil {
					b.justs <- *j
				}
			}
			if err != nil {
				b.m.log.Warn("a member's packet does not decode: ignored", "from", f.from, "kind", f.kind, "error", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		}
	}
}

// spoil replaces the shares dealt to the given members with shares that do not match the
// dealer's commitments, and signs the bundle again (tests: a cheating dealer).
func (b *board) spoil(d *kdkg.DealBundle, to []int) {
	for i := range d.Deals {
		if !slices.Contains(to, int(d.Deals[i].ShareIndex)+1) {
			continue
		}
		for _, mem := range b.to {
			if mem.NewIndex == int(d.Deals[i].ShareIndex)+1 {
				pub, _ := pointOfKey(mem.identity)
				wrong, _ := g1.Scalar().Pick(suite{}.RandomStream()).MarshalBinary()
				if c, err := encrypt(pub, wrong); err == nil {
					d.Deals[i].EncryptedShare = c
				}
			}
		}
	}
	d.Signature, _ = b.m.auth.Sign(b.m.id.secret, d.Hash())
}
