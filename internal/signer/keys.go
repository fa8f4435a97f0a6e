package signer

import (
	"context"
	"sort"
	"time"

	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/tezos"
)

// Reload timing: a lookup miss relists the vaults at most once per ReloadInterval, detached from
// the request that missed, each vault's List bounded by ReloadTimeout.
const (
	ReloadInterval = 10 * time.Second
	ReloadTimeout  = 30 * time.Second
)

// reload lists all vaults, each List bounded by timeout when it is not 0 (at start-up only the
// caller's context bounds it: a vault may take long to list many keys). A vault that fails to
// list is logged and keeps the keys it had (none at start-up, as in the reference): a throttled
// or unreachable vault never makes the signer forget a key it was signing with.
func (s *Signer) reload(ctx context.Context, timeout time.Duration) {
	s.mu.RLock()
	prev := s.keys
	s.mu.RUnlock()
	keys := map[string]*keyRef{}
	for _, v := range s.cfg.Vaults {
		lctx, cancel := ctx, context.CancelFunc(func() {})
		if timeout > 0 {
			lctx, cancel = context.WithTimeout(ctx, timeout)
		}
		list, err := v.List(lctx)
		cancel()
		if err != nil {
			kept := 0
			for pkh, k := range prev {
				if k.vault == v {
					if _, dup := keys[pkh]; !dup {
						keys[pkh] = k
						kept++
					}
				}
			}
			s.log.Error("cannot list vault keys; keeping the keys it had", "vault", v.Name(), "kept", kept, "err", err)
			continue
		}
		for _, k := range list {
			pub := k.PublicKey()
			pkh := pub.Hash().String()
			if other, dup := keys[pkh]; dup {
				s.log.Warn("key is held by two vaults; using the first", "pkh", pkh, "vault", other.vault.Name(), "other_vault", v.Name())
				continue
			}
			keys[pkh] = &keyRef{key: k, vault: v, pub: pub, curve: tezos.CurveOf(pub)}
		}
	}
	s.mu.Lock()
	s.keys = keys
	s.mu.Unlock()
}

// lookup finds a key. On a miss it relists the vaults, at most once per ReloadInterval, in a
// reload that does not depend on this request: a client that hangs up cannot cut it short, and
// the request stops waiting for it when its own context ends.
func (s *Signer) lookup(ctx context.Context, pkh string) (*keyRef, error) {
	s.mu.RLock()
	k := s.keys[pkh]
	s.mu.RUnlock()
	if k != nil {
		return k, nil
	}
	s.refresh.Lock()
	done := s.reloading
	if done == nil && (s.lastRef.IsZero() || time.Since(s.lastRef) >= ReloadInterval) {
		s.lastRef = time.Now()
		done = make(chan struct{})
		s.reloading = done
		s.reloads.Add(1)
		go func() {
			defer s.reloads.Done()
			defer close(done)
			s.reload(context.WithoutCancel(ctx), ReloadTimeout)
			s.refresh.Lock()
			s.reloading = nil
			s.refresh.Unlock()
		}()
	}
	s.refresh.Unlock()
	if done != nil {
		select {
		case <-done:
		case <-ctx.Done():
			return nil, fault.Wrap(fault.Unavailable, ctx.Err())
		}
	}
	s.mu.RLock()
	k = s.keys[pkh]
	s.mu.RUnlock()
	if k == nil {
		return nil, fault.New(fault.NotFound, "this key not found in any vault")
	}
	return k, nil
}

// Keys lists every key in every vault, sorted by pkh.
func (s *Signer) Keys() []KeyInfo {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]KeyInfo, 0, len(s.keys))
	for pkh, k := range s.keys {
		out = append(out, KeyInfo{PKH: pkh, PublicKey: k.pub, Curve: k.curve, Vault: k.vault.Name(),
			Driver: k.vault.Driver(), Ref: k.key.ID(), Policy: s.cfg.Policies[pkh]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PKH < out[j].PKH })
	return out
}

// PublicKey returns the public key of pkh. Keys absent from the policy are served too.
func (s *Signer) PublicKey(ctx context.Context, pkh string) (crypt.PublicKey, error) {
	if _, err := tezos.ParsePublicKeyHash(pkh); err != nil {
		return nil, fault.Wrap(fault.BadRequest, err)
	}
	k, err := s.lookup(ctx, pkh)
	if err != nil {
		return nil, err
	}
	return k.pub, nil
}
