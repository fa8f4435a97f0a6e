package signer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"time"

	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/policy"
	"github.com/signatory-go/signatory/internal/request"
	"github.com/signatory-go/signatory/internal/spending"
)

// checkLimits applies pol's spending limits to a generic request: every content must pass the
// per-content rules; then, when the key has windows, the request is recorded in its spending list
// (atomically with the check that the windows stay within their limits) before it is signed. It
// returns the id of that entry ("" when none), for refund should the signing fail.
func (s *Signer) checkLimits(ctx context.Context, pol *policy.Policy, r *SignRequest, req *request.Request) (string, error) {
	contents := req.Contents // decoded by DecodeFull
	if err := pol.Limits.CheckContents(contents); err != nil {
		return "", s.violated(r.PKH, err)
	}
	w := pol.Limits.Windows
	if !w.Enabled() {
		return "", nil
	}
	var id [16]byte
	rand.Read(id[:]) // never fails (it ends the program instead)
	spend := spending.Spend{ID: hex.EncodeToString(id[:]), Digest: req.Digest, At: s.cfg.Now(), Amount: policy.Amount(contents)}
	if _, err := spending.Record(ctx, s.cfg.Spending, r.PKH, spend, w); err != nil {
		var le *spending.LimitError
		if errors.As(err, &le) {
			return "", s.violated(r.PKH, policy.NewViolation(le.Rule, le.Error()))
		}
		if !errors.As(err, new(*fault.Error)) {
			err = fault.Wrap(fault.Unavailable, err)
		}
		if ctx.Err() == nil { // a client that hung up while queued is no store problem
			s.log.Error("spending window not recorded: refusing", "pkh", r.PKH, "err", err)
		}
		return "", err
	}
	return spend.ID, nil
}

// violated counts a policy refusal under its rule and returns it.
func (s *Signer) violated(pkh string, err error) error {
	var v *policy.Violation
	if errors.As(err, &v) {
		s.obs.PolicyViolation(v.Type, pkh)
	}
	return err
}

// refund takes a spending-window entry out again (its request was not signed). A refund that
// fails leaves the amount counted: the budget errs on the side of signing less.
func (s *Signer) refund(pkh, id string) {
	if id == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := spending.Refund(ctx, s.cfg.Spending, pkh, id); err != nil {
		s.log.Error("spending window: the amount of a request that was not signed stays counted", "pkh", pkh, "err", err)
	}
}
