// Package signer runs the steps of a sign request in order, calling each package in turn (it is
// the only place that knows the order): authenticate the client, look up the key's policy (and
// its JWT users), decode, find the key, check the signing version, check the policy, ask the
// policy hook, record the spend of a generic operation under spending limits; then, for a block
// or consensus operation, hold the slot, load its stored mark (a threshold share with no history
// is refused), refuse or answer an identical request with the stored signature, sign, and commit
// mark and signature in one write before the signature leaves; a generic operation is signed
// directly. Signing (signWith) normalises ECDSA to low-S and checks every signature. A failed
// signing refunds the spend; the audit journal records every outcome, and a signature is withheld
// if its line cannot be written.
package signer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	tz "github.com/ecadlabs/gotez/v2"
	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/audit"
	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/policy"
	"github.com/signatory-go/signatory/internal/policyhook"
	"github.com/signatory-go/signatory/internal/request"
	"github.com/signatory-go/signatory/internal/sched"
	"github.com/signatory-go/signatory/internal/spending"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
	"github.com/signatory-go/signatory/internal/watermark"
)

// Config wires a Signer.
type Config struct {
	Vaults   []vault.Vault
	Policies map[string]*policy.Policy
	Store    watermark.Store
	// Spending keeps the spending windows of keys with limits (max_total, max_operations); nil
	// means Store, when it keeps them too (every store of this project does).
	Spending spending.Store
	// AuthorizedKeys are the client public keys allowed to authenticate requests
	// (server.authorized_keys); when empty, requests need no authentication.
	AuthorizedKeys []crypt.PublicKey
	// Audit, when set, records every signature and refusal; a signature is returned only once
	// its record is on disk.
	Audit *audit.Journal
	// Hook, when set, is asked after the policy and before the watermark.
	Hook *policyhook.Hook
	// Observer is told what the signer does (*metrics.Metrics in the daemon); nil: Nop.
	Observer Observer
	Logger   *slog.Logger
	// Now is the clock of the spending windows (time.Now when nil).
	Now func() time.Time
}

// Signer is the signing service. It is safe for concurrent use.
type Signer struct {
	cfg       Config
	log       *slog.Logger
	obs       Observer
	mu        sync.RWMutex
	keys      map[string]*keyRef
	refresh   sync.Mutex
	lastRef   time.Time      // start of the last reload on a miss
	reloading chan struct{}  // closed when the reload in flight ends; nil when none
	reloads   sync.WaitGroup // the reload in flight, for Close
	slots     slotLocks
	// listed holds the parsed key hash of every key listed in the config, so that a request
	// for one does not decode its base58 again.
	listed map[string]tz.PublicKeyHash
	// authLimit bounds the length of ?authentication= before it is decoded: a tz5 signature
	// (3316 characters, milliseconds of base58 decoding) only when a tz5 key is authorized.
	authLimit int
	marksBusy chan struct{} // held while a marks statement is made (ShareMarks)
}

type keyRef struct {
	key   vault.Key
	vault vault.Vault
	pub   crypt.PublicKey
	curve tezos.Curve
}

// KeyInfo describes one key for listing.
type KeyInfo struct {
	PKH       string
	PublicKey crypt.PublicKey
	Curve     tezos.Curve
	Vault     string
	Driver    string
	Ref       string
	Policy    *policy.Policy // nil when the key is not listed under tezos:
}

// New builds a Signer and lists every vault's keys once.
func New(ctx context.Context, cfg Config) (*Signer, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Observer == nil {
		cfg.Observer = Nop{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Spending == nil {
		cfg.Spending, _ = cfg.Store.(spending.Store)
	}
	if cfg.Spending == nil {
		for pkh, p := range cfg.Policies {
			if p != nil && p.Limits != nil && p.Limits.Windows.Enabled() {
				return nil, fmt.Errorf("tezos.%s: limits max_total or max_operations need a store of spending windows, and the %s watermark store keeps none", pkh, cfg.Store.Name())
			}
		}
	}
	s := &Signer{cfg: cfg, log: cfg.Logger, obs: cfg.Observer, keys: map[string]*keyRef{}, listed: map[string]tz.PublicKeyHash{},
		authLimit: tezos.MaxBase58Length, marksBusy: make(chan struct{}, 1)}
	for _, k := range cfg.AuthorizedKeys {
		if tezos.CurveOf(k) == tezos.MLDSA44 {
			s.authLimit = tezos.MLDSA44SignatureLength
		}
	}
	for pkh := range cfg.Policies {
		if parsed, err := tezos.ParsePublicKeyHash(pkh); err == nil {
			s.listed[pkh] = parsed
		}
	}
	if err := s.reload(ctx, 0); err != nil {
		return nil, err
	}
	return s, nil
}

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
func (s *Signer) reload(ctx context.Context, timeout time.Duration) error {
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
	return nil
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
			_ = s.reload(context.WithoutCancel(ctx), ReloadTimeout)
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

// AuthorizedKeyHashes returns the hashes of server.authorized_keys in config order, or nil.
func (s *Signer) AuthorizedKeyHashes() []string {
	if len(s.cfg.AuthorizedKeys) == 0 {
		return nil
	}
	out := make([]string, len(s.cfg.AuthorizedKeys))
	for i, k := range s.cfg.AuthorizedKeys {
		out[i] = k.Hash().String()
	}
	return out
}

// SignRequest is one request to sign.
type SignRequest struct {
	PKH     string
	Message []byte
	// Version is the signing version, 0 to tezos.MaxVersion (the server makes an absent
	// version tezos.VersionLatest).
	Version        int
	Authentication string // base58 signature from ?authentication=, or ""
	// AuthSignature is the authentication signature already decoded (the socket transports
	// carry it raw); when set, Authentication is not read.
	AuthSignature crypt.Signature
	ClientIP      string
	JWTUser       string // the JWT user, when JWT authentication is on
}

// PossessionRequest asks for a BLS proof of possession.
type PossessionRequest struct {
	PKH, Authentication, ClientIP, JWTUser string
	// BLSPK, when set, is the public key the proof is made over instead of the key's own
	// (octez's bls_pk parameter): companion keys and threshold keys need it.
	BLSPK string
}

// checkJWTUser applies the per-key jwt_users list.
func checkJWTUser(pol *policy.Policy, user string) error {
	if user == "" || len(pol.JWTUsers) == 0 || slices.Contains(pol.JWTUsers, user) {
		return nil
	}
	return fault.New(fault.Forbidden, fmt.Sprintf("user `%s' is not authorized to access %s", user, pol.PKH))
}

// SignResult is what Sign learned; Request and Vault may be set even when Sign fails.
type SignResult struct {
	Signature crypt.Signature
	Request   *request.Request
	Vault     string
	Client    string // authenticated client key hash

	spent string // the id of the spending-window entry recorded for this request, if any
}

// Sign signs r.Message with the key r.PKH if every check passes, and journals the outcome.
func (s *Signer) Sign(ctx context.Context, r *SignRequest) (*SignResult, error) {
	res, err := s.sign(ctx, r)
	if s.cfg.Audit == nil {
		return res, err
	}
	e := audit.Entry{Time: time.Now().UTC(), PKH: r.PKH, Client: r.ClientIP, Outcome: "signed", Status: 200}
	if res.Client != "" {
		e.Client += " " + res.Client
	}
	if req := res.Request; req != nil {
		e.Kind, e.Digest = string(req.Kind), hex.EncodeToString(req.Digest[:])
		if req.Watermarked() {
			e.Chain, e.Level, e.Round = req.ChainID(), &req.Level, &req.Round
		}
	}
	if err != nil {
		e.Outcome, e.Status, e.Reason = "refused", fault.Status(err), err.Error()
	}
	if aerr := s.cfg.Audit.Record(ctx, e); aerr != nil {
		s.log.Error("audit journal write failed", "err", aerr, "pkh", r.PKH)
		if err == nil {
			s.refund(r.PKH, res.spent) // withheld: it spends nothing
			// The watermark stays advanced, so the same payload can be retried.
			return &SignResult{Request: res.Request, Vault: res.Vault, Client: res.Client},
				fault.Safe(fault.Internal, "audit journal unavailable: signature withheld", aerr)
		}
	}
	return res, err
}

func (s *Signer) sign(ctx context.Context, r *SignRequest) (*SignResult, error) {
	res := &SignResult{}
	var err error
	pkh, ok := s.listed[r.PKH]
	if !ok {
		if pkh, err = tezos.ParsePublicKeyHash(r.PKH); err != nil {
			return res, fault.Wrap(fault.BadRequest, err)
		}
	}
	if res.Client, err = s.authenticate(pkh, r.Message, r.Authentication, r.AuthSignature, r.ClientIP); err != nil {
		return res, err
	}
	pol := s.cfg.Policies[r.PKH]
	if pol == nil {
		return res, fault.New(fault.Forbidden, r.PKH+" is not listed in config")
	}
	if err := checkJWTUser(pol, r.JWTUser); err != nil {
		return res, err
	}
	decode := request.Decode
	if pol.Limits != nil {
		decode = request.DecodeFull // one full decode serves the policy and the limits
	}
	req, err := decode(r.Message, request.Version(r.Version))
	if err != nil {
		return res, err
	}
	res.Request = req
	k, err := s.lookup(ctx, r.PKH)
	if err != nil {
		return res, err
	}
	res.Vault = k.vault.Name()
	if err := tezos.CheckVersion(k.curve, r.Version); err != nil {
		// Before the watermark: a stored signature is not served to a version that could not
		// have made it.
		return res, &fault.Error{Kind: fault.BadRequest, Msg: err.Error(), Err: err}
	}
	if err := pol.Check(req, res.Client); err != nil {
		var v *policy.Violation
		if errors.As(err, &v) {
			s.obs.PolicyViolation(v.Type, r.PKH)
		}
		return res, err
	}
	if err := s.askHook(ctx, r.Message, r.ClientIP, r.PKH, res.Client); err != nil {
		return res, err
	}
	if req.Kind == request.Generic && pol.Limits != nil {
		if res.spent, err = s.checkLimits(ctx, pol, r, req); err != nil {
			return res, err
		}
	}
	start := time.Now()
	var sig crypt.Signature
	if req.Watermarked() {
		sig, err = s.signWatermarked(ctx, k, r, req, pol)
	} else {
		s.countGeneric(req)
		sched.Yield(ctx) // a generic request gives its core to consensus requests that need it
		sig, err = s.signWith(ctx, k, r.Message, &req.Digest, r.Version)
	}
	if err != nil {
		s.refund(r.PKH, res.spent) // not signed: it spends nothing
		res.spent = ""
		s.obs.SignFailed(k.vault.Name(), fault.Status(err), req.ChainID())
		return res, err
	}
	res.Signature = sig
	s.obs.Signed(k.vault.Name(), r.PKH, string(req.Kind), req.ChainID(), time.Since(start), req.OpCounts(), req.Watermarked(), req.Round)
	return res, nil
}

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
	if _, err := rand.Read(id[:]); err != nil {
		return "", fault.Wrap(fault.Internal, err)
	}
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

// askHook consults the remote policy hook, if any.
func (s *Signer) askHook(ctx context.Context, msg []byte, ip, pkh, client string) error {
	if s.cfg.Hook == nil {
		return nil
	}
	err := s.cfg.Hook.Check(ctx, &policyhook.Request{Message: msg, Source: ip, PKH: pkh, ClientPKH: client})
	if err != nil {
		s.obs.PolicyViolation("policy_hook", pkh)
		s.log.Warn("policy hook refused", "pkh", pkh, "err", err)
	}
	return err
}

// countGeneric records a request without a watermark (generic, pack): it passes the watermark
// step and is counted as a success there, as in the reference.
func (s *Signer) countGeneric(req *request.Request) {
	s.obs.WatermarkPassed(s.cfg.Store.Name(), string(req.Kind))
}

// signWatermarked signs a block or consensus request so that no two signatures ever leave for
// one (chain, key, class, level, round), nor two signatures for the same bytes:
//  1. the slot is reserved in this process (one request per watermark key at a time);
//  2. the stored record decides: the same bytes with a stored signature get that signature back
//     without asking the vault; a request at or below the mark with other bytes is refused;
//  3. otherwise the vault signs, and the signature is verified;
//  4. mark and signature are committed in one durable write (a compare-and-swap in shared
//     stores). Only then does the signature leave. A commit that loses a race to another
//     process returns the winner's stored signature for the same bytes, or a refusal.
//
// A crash at any point before step 4 completes leaves no trace of the signature outside this
// process, and the slot as it was: a retry is safe.
func (s *Signer) signWatermarked(ctx context.Context, k *keyRef, r *SignRequest, req *request.Request, pol *policy.Policy) (crypt.Signature, error) {
	wk, mark := slotOf(r.PKH, req)
	unlock, err := s.slots.lock(ctx, slotKey{wk, mark.Level, mark.Round})
	if err != nil {
		return nil, err
	}
	defer unlock()
	backend := s.cfg.Store.Name()
	start := time.Now()
	stored, ok, err := s.cfg.Store.Load(ctx, wk)
	if err != nil {
		return nil, s.storeFailed(r.PKH, req, start, err)
	}
	if !ok && pol.ShareOf != "" {
		if err := s.checkHistory(ctx, wk); err != nil {
			if fault.KindOf(err) == fault.Conflict {
				return nil, s.refused(r, req, start, err)
			}
			return nil, s.storeFailed(r.PKH, req, start, err)
		}
	}
	o, err := watermark.Check(wk, stored, ok, mark)
	switch o {
	case watermark.Refuse:
		return nil, s.refused(r, req, start, err)
	case watermark.Identical:
		s.obs.WatermarkStep(backend, string(req.Kind), "success", time.Since(start))
		return s.storedSignature(k, r, stored)
	}
	loadTime := time.Since(start)
	sig, err := s.signWith(ctx, k, r.Message, &req.Digest, r.Version)
	if err != nil {
		return nil, err
	}
	mark.Signature = tezos.SignatureString(sig)
	start = time.Now()
	rec, err := s.cfg.Store.Advance(ctx, wk, mark)
	if err != nil {
		if watermark.IsConflict(err) {
			return nil, s.refused(r, req, start, err)
		}
		return nil, s.storeFailed(r.PKH, req, start, err)
	}
	took := time.Since(start) + loadTime
	s.obs.WatermarkStep(backend, string(req.Kind), "success", took)
	if rec.Signature != mark.Signature {
		// Another process committed the same bytes first: its signature is the one released.
		s.log.Info("identical request already signed by another signer: returning the stored signature",
			"pkh", r.PKH, "chain", wk.Chain, "class", wk.Class, "level", rec.Level, "round", rec.Round)
		return s.storedSignature(k, r, rec)
	}
	return sig, nil
}

// slotOf is a block's or consensus operation's watermark key and mark (watermark.ClassOf is the
// one rule from request kind to class).
func slotOf(pkh string, req *request.Request) (watermark.Key, watermark.Mark) {
	class, _ := watermark.ClassOf(string(req.Kind))
	return watermark.Key{Chain: req.ChainID(), PKH: pkh, Class: class},
		watermark.Mark{Level: req.Level, Round: req.Round, Digest: req.Digest, HasDigest: true}
}

// checkHistory is the rule of a threshold share (policy share_of) whose store holds no mark for
// this class: it signs only if the store holds a mark for the key on this chain in another class
// (its history was initialised: imported, or floored by the operator, which sets every class). A
// share with no history at all on the chain is refused: its store is new or was lost, and the
// group may already have signed at this level through other members; with this member's second
// signature a second t-set could form.
func (s *Signer) checkHistory(ctx context.Context, wk watermark.Key) error {
	for _, c := range []watermark.Class{watermark.Block, watermark.Preattestation, watermark.Attestation} {
		if c == wk.Class {
			continue
		}
		_, ok, err := s.cfg.Store.Load(ctx, watermark.Key{Chain: wk.Chain, PKH: wk.PKH, Class: c})
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
	}
	return &fault.Error{Kind: fault.Conflict,
		Msg: fmt.Sprintf("threshold share %s has no watermark history on chain %s: initialise it before it signs (signatory watermark floor, or import the marks of the group's other members)", wk.PKH, wk.Chain),
		Err: &watermark.Conflict{Reason: "a threshold share with no history on this chain"}}
}

// storedSignature returns the signature stored for byte-identical bytes, after checking it
// against the key and the message. One that does not parse or verify is never overwritten: the
// request is refused, and the operator must look at the record.
//
// The record does not say which signing version made the signature; verification tells. Only
// tz4 signatures depend on the version, through the BLS ciphersuite: versions 2 and 3 share one,
// so bytes signed with 2 and asked again with 3 (a baker moving from octez v24 to v25) get the
// stored signature, while bytes signed with 1 and asked again with 2 or 3 (or the reverse) are
// refused.
func (s *Signer) storedSignature(k *keyRef, r *SignRequest, rec watermark.Mark) (crypt.Signature, error) {
	sig, err := tezos.ParseSignature(rec.Signature)
	if err == nil && !tezos.Verify(k.pub, sig, r.Message, r.Version) {
		if k.curve == tezos.BLS {
			for _, v := range []int{1, tezos.VersionLatest} {
				if tezos.Verify(k.pub, sig, r.Message, v) {
					// The same bytes were signed with the other ciphersuite: a second,
					// different signature is what a double sign is made of.
					s.log.Warn("watermark refused the request", "pkh", r.PKH, "level", rec.Level, "round", rec.Round,
						"reason", fmt.Sprintf("these bytes were signed before with the %s; refusing a second signature with the %s",
							tezos.BLSCiphersuite(v), tezos.BLSCiphersuite(r.Version)))
					return nil, watermark.Refused(rec, "signed before with another signing version")
				}
			}
		}
		err = errors.New("it does not verify against the key and these bytes")
	}
	if err != nil {
		s.log.Error("the stored watermark record's signature is unusable; refusing (the record is left as is)",
			"pkh", r.PKH, "level", rec.Level, "round", rec.Round, "err", err)
		return nil, fault.Safe(fault.Internal, "the stored signature for this watermark is invalid: refusing to sign", err)
	}
	return sig, nil
}

// refused records and logs a watermark refusal; the log says what blocked the request.
func (s *Signer) refused(r *SignRequest, req *request.Request, start time.Time, err error) error {
	s.obs.WatermarkStep(s.cfg.Store.Name(), string(req.Kind), "rejected", time.Since(start))
	s.obs.WatermarkRejected(r.PKH, string(req.Kind), req.ChainID(), watermark.ErrConflict.Error())
	attrs := []any{"pkh", r.PKH, "kind", req.Kind, "chain", req.ChainID(), "level", req.Level, "round", req.Round}
	var c *watermark.Conflict
	if errors.As(err, &c) {
		attrs = append(attrs, "stored_level", c.Stored.Level, "stored_round", c.Stored.Round, "reason", c.Reason)
	} else {
		attrs = append(attrs, "reason", "another signer committed this slot first")
	}
	s.log.Warn("watermark refused the request", attrs...)
	return err
}

// storeFailed records a store failure: whatever the trouble (unreachable, timed out, corrupt),
// the answer is 500 and no signature leaves.
func (s *Signer) storeFailed(pkh string, req *request.Request, start time.Time, err error) error {
	backend := s.cfg.Store.Name()
	s.obs.WatermarkStep(backend, string(req.Kind), "error", time.Since(start))
	s.log.Error("watermark store failed; refusing to sign", "pkh", pkh, "backend", backend, "err", err)
	// The client learns the kind of failure; the store's own text (paths, hosts, tables) stays in
	// the log.
	return &fault.Error{Kind: fault.Internal, Msg: "watermark store error: refusing to sign (the signer's log has the cause)", Err: err,
		Client: "watermark store error: refusing to sign"}
}

// signWith has the key sign (SignChecked), and records the vault's time and any failure.
func (s *Signer) signWith(ctx context.Context, k *keyRef, msg []byte, digest *[32]byte, version int) (crypt.Signature, error) {
	sig, took, err := SignChecked(ctx, k.key, k.pub, msg, digest, version)
	s.obs.VaultAnswered(k.vault.Name(), string(k.curve), took)
	if err != nil {
		s.log.Error("vault failed to sign, or its signature failed the check; refusing to return it", "vault", k.vault.Name(), "key", k.key.ID(), "err", err)
		if fault.KindOf(err) != fault.Internal {
			return nil, err
		}
		if _, ok := fault.ClientMsg(err); !ok {
			return nil, &fault.Error{Kind: fault.Internal, Msg: fmt.Sprintf("(%s): %v", k.vault.Name(), err), Err: err}
		}
		return nil, err
	}
	return sig, nil
}

// SignChecked is the one way a signature leaves a key, for requests and for the authentication
// keys of threshold vaults alike: the vault signs (took is how long it took), an ECDSA signature
// is made low-S, and the signature is checked against pub before it is returned: by the key
// itself, a second computation, when its secret is in this process (vault.CheckedSigner), else by
// verification. A signature that fails the check, or that the vault's service returned malformed,
// is an Internal error whose client message says so.
func SignChecked(ctx context.Context, key vault.Key, pub crypt.PublicKey, msg []byte, digest *[32]byte, version int) (_ crypt.Signature, took time.Duration, _ error) {
	start := time.Now()
	var (
		sig     crypt.Signature
		checked bool
		err     error
	)
	opts := vault.SignOptions{Version: version}
	if cs, ok := key.(vault.CheckedSigner); ok {
		// A key whose secret is in this process checks its deterministic signatures itself, by a
		// second computation (see vault.SoftwareKey.SignChecked); the others are verified below.
		sig, checked, err = cs.SignChecked(ctx, msg, digest, opts, pub)
	} else {
		sig, err = key.Sign(ctx, msg, digest, opts)
	}
	took = time.Since(start)
	if errors.Is(err, vault.ErrFault) || errors.Is(err, vault.ErrInvalidSignature) {
		return nil, took, fault.Safe(fault.Internal, "the vault returned an invalid signature", err)
	}
	if err != nil {
		return nil, took, err
	}
	if checked {
		return sig, took, nil
	}
	sig = tezos.LowS(sig)
	sched.Yield(ctx)
	if !tezos.Verify(pub, sig, msg, version) {
		return nil, took, fault.Safe(fault.Internal, "the vault returned an invalid signature",
			errors.New("the signature does not verify against the key"))
	}
	return sig, took, nil
}

// ProvePossession returns a BLS proof of possession for a tz4 key whose policy allows it.
func (s *Signer) ProvePossession(ctx context.Context, r *PossessionRequest) (crypt.Signature, error) {
	pkh, clientIP := r.PKH, r.ClientIP
	parsed, err := tezos.ParsePublicKeyHash(pkh)
	if err != nil {
		return nil, fault.Wrap(fault.BadRequest, err)
	}
	client, err := s.authenticate(parsed, nil, r.Authentication, nil, clientIP)
	if err != nil {
		return nil, err
	}
	pol := s.cfg.Policies[pkh]
	if pol == nil {
		return nil, fault.New(fault.Forbidden, pkh+" is not listed in config")
	}
	if err := checkJWTUser(pol, r.JWTUser); err != nil {
		return nil, err
	}
	if err := pol.CheckClient(client); err != nil {
		return nil, err
	}
	k, err := s.lookup(ctx, pkh)
	if err != nil {
		return nil, err
	}
	prover, ok := k.key.(vault.PossessionProver)
	if !ok || k.curve != tezos.BLS {
		return nil, fault.New(fault.BadRequest, "proof of possession is not supported")
	}
	over := k.pub
	if r.BLSPK != "" {
		if over, err = parseBLSPK(r.BLSPK); err != nil {
			return nil, err
		}
	}
	own := over.String() == k.pub.String()
	if own && !pol.AllowPoP {
		s.log.Warn("Proof of possession is not allowed. Proof of possession is required for key reveals, consensus key updates, and companion key registration. To enable, set 'allow_proof_of_possession: true' in the config for this key.", "pkh", pkh)
		return nil, fault.New(fault.BadRequest, "proof of possession is not allowed")
	}
	if !own && !slices.Contains(pol.AllowPoPFor, over.String()) {
		// A proof over a key of the client's choosing is what a rogue-key attack needs.
		return nil, policy.NewViolation("proof_of_possession", fmt.Sprintf("proof of possession over %s is not allowed for this key: list that key in allow_proof_of_possession_for", over))
	}
	if err := s.askHook(ctx, nil, clientIP, pkh, client); err != nil {
		return nil, err
	}
	var proof crypt.Signature
	if own {
		proof, err = prover.ProvePossession(ctx)
	} else if op, ok := k.key.(vault.PossessionOverProver); ok {
		proof, err = op.ProvePossessionOver(ctx, over.(*crypt.BLSPublicKey))
	} else {
		return nil, fault.New(fault.BadRequest, "this key cannot make a proof of possession over another public key (bls_pk)")
	}
	if err != nil {
		if fault.KindOf(err) != fault.Internal {
			return nil, err
		}
		return nil, &fault.Error{Kind: fault.Internal, Msg: fmt.Sprintf("(%s): %v", k.vault.Name(), err), Err: err}
	}
	if !tezos.VerifyPossessionOver(k.pub, over, proof) {
		return nil, fault.Safe(fault.Internal, "the vault returned an invalid proof of possession", nil)
	}
	return proof, nil
}

// parseBLSPK parses the bls_pk parameter: a BLS public key.
func parseBLSPK(s string) (crypt.PublicKey, error) {
	if !strings.HasPrefix(s, "BLpk") { // refused before decoding (an mdpk is long to decode)
		return nil, fault.Wrap(fault.BadRequest, fmt.Errorf("bls_pk: %w", tezos.ErrNotBLS))
	}
	pub, err := tezos.ParseBLSPublicKey(s)
	if err != nil {
		return nil, fault.Wrap(fault.BadRequest, fmt.Errorf("bls_pk: %w", err))
	}
	return pub, nil
}

// authenticate checks the client's authentication when server.authorized_keys is configured and
// returns the authenticating client's key hash: sig when it is given (already decoded), else auth,
// ?authentication='s base58. The signed bytes are 0x04 0x01 ‖ pkh (21 bytes) ‖ message.
func (s *Signer) authenticate(pkh tz.PublicKeyHash, msg []byte, auth string, sig crypt.Signature, clientIP string) (string, error) {
	if len(s.cfg.AuthorizedKeys) == 0 {
		return "", nil
	}
	fail := func(err error) (string, error) {
		s.obs.AuthFailed(fault.Status(err), clientIP)
		return "", err
	}
	tooLong := func(n int) (string, error) {
		return fail(fault.New(fault.BadRequest, fmt.Sprintf("invalid authentication signature: %d characters is too long (tz5 signatures only when a tz5 key is in server.authorized_keys)", n)))
	}
	if sig == nil {
		if auth == "" {
			return fail(fault.New(fault.Unauthorized, "missing authentication signature field"))
		}
		if len(auth) > s.authLimit {
			return tooLong(len(auth))
		}
		var err error
		if sig, err = tezos.ParseSignature(auth); err != nil {
			return fail(fault.Wrap(fault.BadRequest, err))
		}
	} else if _, tz5 := sig.(crypt.MLDSA44Signature); tz5 && tezos.MLDSA44SignatureLength > s.authLimit {
		return tooLong(tezos.MLDSA44SignatureLength) // as its base58 form would have been refused
	}
	data := tezos.AuthenticatedBytes(pkh, msg)
	for _, k := range s.cfg.AuthorizedKeys {
		if tezos.Verify(k, sig, data, 2) {
			return k.Hash().String(), nil
		}
	}
	return fail(fault.New(fault.Forbidden, "invalid authentication signature"))
}

// Health reports the readiness of the watermark store and of each vault that can tell.
func (s *Signer) Health(ctx context.Context) map[string]error {
	out := map[string]error{"watermark/" + s.cfg.Store.Name(): s.cfg.Store.Health(ctx)}
	if s.cfg.Audit != nil {
		out["audit"] = s.cfg.Audit.Health(ctx)
	}
	for _, v := range s.cfg.Vaults {
		var err error
		if rc, ok := v.(vault.ReadinessChecker); ok {
			err = rc.Ready(ctx)
		}
		out["vault/"+v.Name()] = err
	}
	return out
}

// Close waits for a reload in flight, then closes the vaults, the watermark store and the audit
// journal.
func (s *Signer) Close() error {
	s.reloads.Wait()
	var errs []error
	for _, v := range s.cfg.Vaults {
		errs = append(errs, v.Close())
	}
	errs = append(errs, s.cfg.Store.Close())
	if s.cfg.Audit != nil {
		errs = append(errs, s.cfg.Audit.Close())
	}
	return errors.Join(errs...)
}

// MaxPriorityBytes is the longest body that may skip the generic queue: a Tenderbake block header
// to sign is about 250 bytes, a consensus operation under 150.
const MaxPriorityBytes = 1024

// Priority reports whether msg may be served ahead of generic requests: it starts like a block
// (0x11) or a consensus operation (0x12, 0x13), is no longer than one, and its key is configured
// and allowed that kind. These checks cost nothing; a body that fails them waits its turn with
// generic requests, so that writing 0x13 first skips the queue only for a baker's key and kind
// (authentication, when required, comes after).
func (s *Signer) Priority(pkh string, msg []byte) bool {
	if len(msg) == 0 || len(msg) > MaxPriorityBytes {
		return false
	}
	pol := s.cfg.Policies[pkh]
	if pol == nil {
		return false
	}
	switch msg[0] {
	case request.MagicBlock:
		return slices.Contains(pol.Requests, request.Block)
	case request.MagicPreattestation:
		return slices.Contains(pol.Requests, request.Preattestation)
	case request.MagicAttestation:
		return slices.Contains(pol.Requests, request.Attestation) || slices.Contains(pol.Requests, request.AttestationWithDAL)
	}
	return false
}

// Known reports whether pkh is a configured key (listed under tezos:).
func (s *Signer) Known(pkh string) bool { return s.cfg.Policies[pkh] != nil }

// Policy returns the policy of pkh or nil.
func (s *Signer) Policy(pkh string) *policy.Policy { return s.cfg.Policies[pkh] }

// Store returns the watermark store.
func (s *Signer) Store() watermark.Store { return s.cfg.Store }
