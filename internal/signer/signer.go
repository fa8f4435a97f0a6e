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
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
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
	s.reload(ctx, 0)
	return s, nil
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

// SignResult is what Sign learned; Request and Vault may be set even when Sign fails.
type SignResult struct {
	Signature crypt.Signature
	Request   *request.Request
	Vault     string
	Client    string // authenticated client key hash

	spent   string // the id of the spending-window entry recorded for this request, if any
	encoded string // Signature's base58, when the watermark record already holds it
}

// SignatureString is the signature's base58 (edsig…, spsig1…, p2sig…, BLsig…), made once: a
// watermarked signature's is the one its record holds.
func (r *SignResult) SignatureString() string {
	if r.encoded != "" {
		return r.encoded
	}
	return tezos.SignatureString(r.Signature)
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
		sig, res.encoded, err = s.signWatermarked(ctx, k, r, req, pol)
	} else {
		s.countGeneric(req)
		sched.Yield(ctx) // a generic request gives its core to consensus requests that need it
		sig, err = s.signWith(ctx, k, r.Message, &req.Digest, r.Version)
	}
	if err != nil {
		s.refund(r.PKH, res.spent) // not signed: it spends nothing (and Sign refunds only a signature)
		s.obs.SignFailed(k.vault.Name(), fault.Status(err), req.ChainID())
		return res, err
	}
	res.Signature = sig
	s.obs.Signed(k.vault.Name(), r.PKH, string(req.Kind), req.ChainID(), time.Since(start), req.OpCounts(), req.Watermarked(), req.Round)
	return res, nil
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
//
// The second result is the new signature's base58, as its record holds it ("" for a stored one).
func (s *Signer) signWatermarked(ctx context.Context, k *keyRef, r *SignRequest, req *request.Request, pol *policy.Policy) (crypt.Signature, string, error) {
	wk, mark := slotOf(r.PKH, req)
	unlock, err := s.slots.lock(ctx, slotKey{wk, mark.Level, mark.Round})
	if err != nil {
		return nil, "", err
	}
	defer unlock()
	backend := s.cfg.Store.Name()
	start := time.Now()
	stored, ok, err := s.cfg.Store.Load(ctx, wk)
	if err != nil {
		return nil, "", s.storeFailed(r.PKH, req, start, err)
	}
	if !ok && pol.ShareOf != "" {
		if err := s.checkHistory(ctx, wk); err != nil {
			if fault.KindOf(err) == fault.Conflict {
				return nil, "", s.refused(r, req, start, err)
			}
			return nil, "", s.storeFailed(r.PKH, req, start, err)
		}
	}
	o, err := watermark.Check(wk, stored, ok, mark)
	switch o {
	case watermark.Refuse:
		return nil, "", s.refused(r, req, start, err)
	case watermark.Identical:
		s.obs.WatermarkStep(backend, string(req.Kind), "success", time.Since(start))
		sig, err := s.storedSignature(k, r, stored)
		return sig, "", err
	}
	loadTime := time.Since(start)
	sig, err := s.signWith(ctx, k, r.Message, &req.Digest, r.Version)
	if err != nil {
		return nil, "", err
	}
	mark.Signature = tezos.SignatureString(sig)
	start = time.Now()
	rec, err := s.cfg.Store.Advance(ctx, wk, mark)
	if err != nil {
		if watermark.IsConflict(err) {
			return nil, "", s.refused(r, req, start, err)
		}
		return nil, "", s.storeFailed(r.PKH, req, start, err)
	}
	took := time.Since(start) + loadTime
	s.obs.WatermarkStep(backend, string(req.Kind), "success", took)
	if rec.Signature != mark.Signature {
		// Another process committed the same bytes first: its signature is the one released.
		s.log.Info("identical request already signed by another signer: returning the stored signature",
			"pkh", r.PKH, "chain", wk.Chain, "class", wk.Class, "level", rec.Level, "round", rec.Round)
		sig, err := s.storedSignature(k, r, rec)
		return sig, "", err
	}
	return sig, mark.Signature, nil
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
	errs := []error{s.CloseVaults(), s.cfg.Store.Close()}
	if s.cfg.Audit != nil {
		errs = append(errs, s.cfg.Audit.Close())
	}
	return errors.Join(errs...)
}

// CloseVaults waits for a key listing in flight, then closes the vaults only: the store and the
// journal go on serving the signer that replaces this one (a config reload).
func (s *Signer) CloseVaults() error {
	s.reloads.Wait()
	var errs []error
	for _, v := range s.cfg.Vaults {
		errs = append(errs, v.Close())
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
