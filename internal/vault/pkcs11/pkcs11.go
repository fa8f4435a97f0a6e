// Package pkcs11 is the vault of keys held by a PKCS#11 token (an HSM, SoftHSM2, a YubiHSM2
// through yubihsm_pkcs11.so…): tz1 with CKM_EDDSA, tz2 and tz3 with CKM_ECDSA, over the digest.
//
// Sessions are pooled and logged in once; a lost session is dropped and reopened, and a lost
// token or module is re-initialised on the next request. Keys can be imported or generated on
// the token as non-extractable objects.
package pkcs11

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	p11 "github.com/miekg/pkcs11"
	"gopkg.in/yaml.v3"

	"github.com/signatory-go/signatory/internal/vault"
)

// Driver is the driver name in the config.
const Driver = "pkcs11"

// Vault is a PKCS#11 token.
type Vault struct {
	name string
	cfg  *settings
	mod  *module
	log  *slog.Logger
	pool *pool

	mu      sync.Mutex // guards the fields below
	slot    uint       // resolved slot, valid for slotGen when slotOK
	token   string     // token label, for messages
	slotGen uint64
	slotOK  bool
	pinErr  error // sticky: a wrong or locked PIN is never retried

	opened atomic.Bool // Open succeeded: from now on a lost token may re-initialise the module
	life   vault.Lifecycle
}

// New opens the vault described by node (the driver's constructor for the vault table).
func New(ctx context.Context, name string, node *yaml.Node, env vault.Env) (vault.Vault, error) {
	cfg, err := DecodeConfig(node)
	if err != nil {
		return nil, fmt.Errorf("vault %s: %w", name, err)
	}
	return Open(ctx, name, cfg, env)
}

// Open loads the module, finds the token and logs in, so that a missing library, a missing token
// or a wrong PIN is reported at start.
func Open(ctx context.Context, name string, cfg Config, env vault.Env) (*Vault, error) {
	s, err := cfg.settings()
	if err != nil {
		return nil, fmt.Errorf("vault %s: %w", name, err)
	}
	mod, err := acquireModule(s.library)
	if err != nil {
		return nil, fmt.Errorf("vault %s: %w", name, err)
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	v := &Vault{name: name, cfg: s, mod: mod, log: log}
	v.pool = newPool(v, s.sessions)
	sess, err := v.pool.get(ctx)
	if err != nil {
		err = fmt.Errorf("vault %s: %s: %w", name, v.where(), err)
		mod.release()
		return nil, err
	}
	v.pool.put(sess, true)
	v.opened.Store(true)
	return v, nil
}

// Name implements vault.Vault.
func (v *Vault) Name() string { return v.name }

// Driver implements vault.Vault.
func (v *Vault) Driver() string { return Driver }

// where names the token and module for messages; never the PIN.
func (v *Vault) where() string {
	v.mu.Lock()
	slot, token, ok := v.slot, v.token, v.slotOK
	v.mu.Unlock()
	mod := "PKCS#11 module " + v.cfg.library
	if vendor := v.mod.vendor(); vendor != "" {
		mod = fmt.Sprintf("PKCS#11 module %s (%s)", v.cfg.library, vendor)
	}
	switch {
	case ok:
		return fmt.Sprintf("token %q (slot %d) of %s", token, slot, mod)
	case v.cfg.label != "":
		return fmt.Sprintf("token %q of %s", v.cfg.label, mod)
	case v.cfg.slot != nil:
		return fmt.Sprintf("slot %d of %s", *v.cfg.slot, mod)
	}
	return mod
}

// List implements vault.Vault. Without configured keys, every private key on a Tezos curve with
// a findable public key is listed; other keys are skipped with a warning.
func (v *Vault) List(ctx context.Context) ([]vault.Key, error) {
	var keys []vault.Key
	err := v.withSession(ctx, func(c *p11.Ctx, s *session) error {
		var err error
		keys, err = v.discover(c, s.h, s.gen)
		return err
	})
	if err != nil {
		return nil, v.wrap(err)
	}
	return keys, nil
}

// Ready implements vault.ReadinessChecker: it takes a session (opening one, re-initialising the
// module if needed) and asks the token about it.
func (v *Vault) Ready(ctx context.Context) error {
	err := v.withSession(ctx, func(c *p11.Ctx, s *session) error {
		if _, err := c.GetSessionInfo(s.h); err != nil {
			return opErr("C_GetSessionInfo", err)
		}
		return nil
	})
	return v.wrap(err)
}

// Close implements vault.Vault. Sessions still in use are closed when they are given back.
func (v *Vault) Close() error {
	if !v.life.MarkClosed() {
		return nil
	}
	v.pool.drain()
	v.mod.release()
	return nil
}

// errStale is returned when a session outlived its module generation.
var errStale = errors.New("the session belongs to a module that was re-initialised")

// withSession runs fn on a pooled session with the module read-locked. A session that fails with
// a lost-session error is closed, and a lost token marks the module for re-initialisation. A
// session that a concurrent re-initialisation made stale before fn ran is replaced.
func (v *Vault) withSession(ctx context.Context, fn func(c *p11.Ctx, s *session) error) error {
	var err error
	for range 3 {
		if v.life.Closed() {
			return vault.ErrClosed
		}
		var s *session
		if s, err = v.pool.get(ctx); err != nil {
			return err
		}
		err = v.mod.call(func(c *p11.Ctx, gen uint64) error {
			if s.gen != gen {
				return errStale
			}
			return fn(c, s)
		})
		healthy := err == nil || !(sessionLost(err) || errors.Is(err, errStale) || errors.Is(err, errKeyGone))
		if deviceLost(err) || errors.Is(err, errKeyGone) {
			v.mod.markStale(s.gen)
		}
		v.pool.put(s, healthy)
		if !errors.Is(err, errStale) {
			break
		}
	}
	return err
}

// retryable reports whether a failed attempt may succeed on a fresh session or module.
func retryable(err error) bool {
	return sessionLost(err) || errors.Is(err, errStale) || errors.Is(err, errKeyGone)
}

// sign signs data with k, retrying once on a fresh session after a lost session, handle or token.
// Signing the same digest twice is harmless: the watermark was checked before the vault is asked.
func (v *Vault) sign(ctx context.Context, k *Key, data []byte) ([]byte, error) {
	mech := []*p11.Mechanism{p11.NewMechanism(mechanism(k.curve), nil)}
	var sig []byte
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		err = v.withSession(ctx, func(c *p11.Ctx, s *session) error {
			h, err := k.handleFor(c, s.h, s.gen)
			if err != nil {
				return err
			}
			err = c.SignInit(s.h, mech, h)
			if handleLost(err) { // the object went away: look it up again once, on this session
				k.handle.Store(nil)
				if h, err = k.handleFor(c, s.h, s.gen); err != nil {
					return err
				}
				err = c.SignInit(s.h, mech, h)
			}
			if err != nil {
				return opErr("C_SignInit", err)
			}
			if sig, err = c.Sign(s.h, data); err != nil {
				return opErr("C_Sign", err)
			}
			return nil
		})
		if handleLost(err) {
			k.handle.Store(nil)
		}
		if err == nil || !retryable(err) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: key %s: %w", v.where(), k.sel, v.explain(err, k))
	}
	return sig, nil
}

// explain turns a few return values into advice.
func (v *Vault) explain(err error, k *Key) error {
	switch {
	case rvIs(err, p11.CKR_MECHANISM_INVALID), rvIs(err, p11.CKR_MECHANISM_PARAM_INVALID):
		return fmt.Errorf("the token does not support %s for %s keys: %w", mechName(k.curve), k.curve, err)
	case rvIs(err, p11.CKR_KEY_FUNCTION_NOT_PERMITTED):
		return fmt.Errorf("the key may not sign (CKA_SIGN is false): %w", err)
	case rvIs(err, p11.CKR_KEY_TYPE_INCONSISTENT):
		return fmt.Errorf("the key's type does not fit %s: %w", mechName(k.curve), err)
	case deviceLost(err):
		return fmt.Errorf("%w: token removed or module failure; the module is re-initialised on the next request", err)
	case errors.Is(err, errKeyGone):
		return fmt.Errorf("%w (token removed or reset, or key deleted); the module is re-initialised on the next request", err)
	}
	return err
}

// wrap prefixes errors that do not already name the token.
func (v *Vault) wrap(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", v.where(), err)
}

var (
	_ vault.Vault            = (*Vault)(nil)
	_ vault.ReadinessChecker = (*Vault)(nil)
	_ vault.Key              = (*Key)(nil)
)
