package signer

import (
	"context"
	"encoding/hex"
	"fmt"
	"sort"

	"golang.org/x/crypto/blake2b"

	"github.com/signatory-go/signatory/internal/blsthreshold"
	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/watermark"
)

// ShareMarks answers another member of a threshold group (GET /threshold/marks/<share>): the
// highest watermarks this signer holds on a chain, in each class, over every key it holds that
// is a share of the same group (its old and new shares, after a resharing), signed with the
// named share over the requester's nonce. A member whose history was lost takes them from enough
// others before it signs again (docs/threshold.md). Only a key whose policy has share_of answers;
// statements are made one at a time (a request waits for the one before it), so that a flood of
// requests costs one BLS signature at a time.
func (s *Signer) ShareMarks(ctx context.Context, pkh, chain, nonceHex string) (*blsthreshold.Marks, error) {
	if _, err := tezos.ParsePublicKeyHash(pkh); err != nil {
		return nil, fault.Wrap(fault.BadRequest, err)
	}
	if _, err := tezos.ParseChainID(chain); err != nil {
		return nil, fault.Wrap(fault.BadRequest, fmt.Errorf("chain: %w", err))
	}
	nonce, err := hex.DecodeString(nonceHex)
	if err != nil || len(nonce) != blsthreshold.MarksNonceSize {
		return nil, fault.New(fault.BadRequest, fmt.Sprintf("nonce: %d bytes in hex are required", blsthreshold.MarksNonceSize))
	}
	pol := s.cfg.Policies[pkh]
	if pol == nil {
		return nil, fault.New(fault.Forbidden, pkh+" is not listed in config")
	}
	if pol.ShareOf == "" {
		return nil, fault.New(fault.Forbidden, pkh+" is not a threshold share (no share_of in its policy)")
	}
	select {
	case s.marksBusy <- struct{}{}:
		defer func() { <-s.marksBusy }()
	case <-ctx.Done():
		return nil, fault.Wrap(fault.Unavailable, ctx.Err())
	}
	k, err := s.lookup(ctx, pkh)
	if err != nil {
		return nil, err
	}
	var shares []string
	for p, other := range s.cfg.Policies {
		if other.ShareOf == pol.ShareOf {
			shares = append(shares, p)
		}
	}
	sort.Strings(shares)
	m := &blsthreshold.Marks{Key: pkh, PublicKey: k.pub.String(), Group: pol.ShareOf, Chain: chain, Nonce: nonceHex,
		Marks: map[string]*blsthreshold.MarkLevel{}}
	for _, c := range blsthreshold.MarksClasses {
		var high *blsthreshold.MarkLevel
		for _, share := range shares {
			mark, ok, err := s.cfg.Store.Load(ctx, watermark.Key{Chain: chain, PKH: share, Class: watermark.Class(c)})
			if err != nil {
				s.log.Error("watermark store failed; no marks statement made", "pkh", pkh, "backend", s.cfg.Store.Name(), "err", err)
				return nil, &fault.Error{Kind: fault.Internal, Msg: "watermark store error (the signer's log has the cause)", Err: err}
			}
			if ok {
				high = blsthreshold.Higher(high, &blsthreshold.MarkLevel{Level: mark.Level, Round: mark.Round})
			}
		}
		m.Marks[c] = high
	}
	msg := m.Statement()
	digest := blake2b.Sum256(msg)
	sig, err := s.signWith(ctx, k, msg, &digest, tezos.VersionLatest)
	if err != nil {
		return nil, err
	}
	m.Signature = tezos.SignatureString(sig)
	return m, nil
}
