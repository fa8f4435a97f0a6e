package pkcs11

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/ecadlabs/gotez/v2/crypt"
	p11 "github.com/miekg/pkcs11"

	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
)

// Import implements vault.Importer. The key is written to the token as a private key object
// (CKA_SENSITIVE, CKA_EXTRACTABLE false where the token accepts it) and a public key object, both
// with CKA_ID = the 20-byte key hash and CKA_LABEL = name (default: the key hash).
func (v *Vault) Import(ctx context.Context, priv crypt.PrivateKey, name string) (vault.Key, error) {
	pub := priv.Public()
	curve := tezos.CurveOf(pub)
	var value []byte
	switch k := priv.(type) {
	case crypt.Ed25519PrivateKey:
		value = append([]byte(nil), k.Seed()...)
	case *crypt.ECDSAPrivateKey:
		value = k.D.FillBytes(make([]byte, 32))
	default:
		return nil, fmt.Errorf("vault %s: PKCS#11 tokens take Ed25519, secp256k1 and P-256 keys, not %s", v.name, curve)
	}
	defer clear(value)
	sel := selector{label: name, id: pub.Hash().PublicKeyHash()}
	if sel.label == "" {
		sel.label = pub.Hash().String()
	}
	k := &Key{v: v, sel: sel, kt: keyType(curve), curve: curve, pub: pub}
	err := v.withRW(ctx, func(c *p11.Ctx, sh p11.SessionHandle) error {
		if err := v.checkFree(c, sh, sel, true); err != nil {
			return err
		}
		var hPriv p11.ObjectHandle
		var params []byte
		err := forEachParams(curve, func(p []byte) error {
			h, err := v.createPrivate(c, sh, k, p, value)
			hPriv, params = h, p
			return err
		})
		if err != nil {
			return err
		}
		pubT := append(objectTemplate(p11.CKO_PUBLIC_KEY, k, params),
			p11.NewAttribute(p11.CKA_VERIFY, true), p11.NewAttribute(p11.CKA_EC_POINT, encodePoint(pub)))
		if _, err := c.CreateObject(sh, pubT); err != nil {
			_ = c.DestroyObject(sh, hPriv)
			return opErr("C_CreateObject (public key)", err)
		}
		return nil // no handle kept: closing this session may end them (SoftHSM forgets handles with the last session)
	})
	if err != nil {
		return nil, fmt.Errorf("vault %s: import into %s: %w", v.name, v.where(), err)
	}
	return k, nil
}

// createPrivate writes the private key object, without CKA_EXTRACTABLE if the token refuses it.
func (v *Vault) createPrivate(c *p11.Ctx, sh p11.SessionHandle, k *Key, params, value []byte) (p11.ObjectHandle, error) {
	t := append(objectTemplate(p11.CKO_PRIVATE_KEY, k, params),
		p11.NewAttribute(p11.CKA_PRIVATE, true), p11.NewAttribute(p11.CKA_SENSITIVE, true),
		p11.NewAttribute(p11.CKA_SIGN, true), p11.NewAttribute(p11.CKA_VALUE, value))
	h, err := c.CreateObject(sh, append(t, p11.NewAttribute(p11.CKA_EXTRACTABLE, false)))
	if templateRefused(err) {
		if h, err = c.CreateObject(sh, t); err == nil {
			v.log.Warn("the token refused CKA_EXTRACTABLE=false on an imported key; its own policy decides whether the key can leave it",
				"vault", v.name, "key", k.sel.String())
		}
	}
	if err != nil {
		return 0, opErr("C_CreateObject (private key)", err)
	}
	return h, nil
}

// Generate implements vault.Generator: C_GenerateKeyPair on the token, private key sensitive and
// not extractable. The objects get CKA_ID = the key hash and CKA_LABEL = name (default: the key
// hash) where the token lets them be renamed.
func (v *Vault) Generate(ctx context.Context, curve tezos.Curve, name string) (vault.Key, error) {
	mech := uint(p11.CKM_EC_KEY_PAIR_GEN)
	switch curve {
	case tezos.Ed25519:
		mech = ckmECEdwardsKeyPairGen
	case tezos.Secp256k1, tezos.P256:
	default:
		return nil, fmt.Errorf("vault %s: PKCS#11 tokens hold Ed25519, secp256k1 and P-256 keys (tz1, tz2, tz3), not %s", v.name, curve)
	}
	sel := selector{label: name} // no CKA_ID yet: some tokens (YubiHSM 2) assign their own
	if name == "" {
		tmp := make([]byte, 4)
		_, _ = rand.Read(tmp)
		sel.label = fmt.Sprintf("signatory-%s-%x", curve, tmp)
	}
	k := &Key{v: v, sel: sel, kt: keyType(curve), curve: curve}
	err := v.withRW(ctx, func(c *p11.Ctx, sh p11.SessionHandle) error {
		if name != "" {
			if err := v.checkFree(c, sh, selector{label: name}, false); err != nil {
				return err
			}
		}
		var hPub, hPriv p11.ObjectHandle
		err := forEachParams(curve, func(params []byte) error {
			pubT := append(objectTemplate(p11.CKO_PUBLIC_KEY, k, params), p11.NewAttribute(p11.CKA_VERIFY, true))
			privT := append(objectTemplate(p11.CKO_PRIVATE_KEY, k, nil),
				p11.NewAttribute(p11.CKA_PRIVATE, true), p11.NewAttribute(p11.CKA_SENSITIVE, true),
				p11.NewAttribute(p11.CKA_EXTRACTABLE, false), p11.NewAttribute(p11.CKA_SIGN, true))
			var err error
			hPub, hPriv, err = c.GenerateKeyPair(sh, []*p11.Mechanism{p11.NewMechanism(mech, nil)}, pubT, privT)
			if rvIs(err, p11.CKR_MECHANISM_INVALID) {
				return fmt.Errorf("the token cannot generate %s keys: %w", curve, opErr("C_GenerateKeyPair", err))
			}
			if err != nil {
				return opErr("C_GenerateKeyPair", err)
			}
			return nil
		})
		if err != nil {
			return err
		}
		a, err := attrs(c, sh, hPub, p11.CKA_EC_POINT)
		if err == nil {
			k.pub, err = parsePoint(curve, a[p11.CKA_EC_POINT])
		}
		if err != nil {
			_ = c.DestroyObject(sh, hPriv)
			_ = c.DestroyObject(sh, hPub)
			return fmt.Errorf("reading the new public key: %w", err)
		}
		v.rename(c, sh, k, name, hPub, hPriv)
		return nil // the handle is looked up on first use, as after Import
	})
	if err != nil {
		return nil, fmt.Errorf("vault %s: generate on %s: %w", v.name, v.where(), err)
	}
	return k, nil
}

// rename sets CKA_ID to the key hash, and CKA_LABEL too when no name was given, on the public
// then the private object. A token that refuses keeps the first values on both.
func (v *Vault) rename(c *p11.Ctx, sh p11.SessionHandle, k *Key, name string, hPub, hPriv p11.ObjectHandle) {
	sel := selector{label: k.sel.label, id: k.pub.Hash().PublicKeyHash()}
	if name == "" {
		sel.label = k.pub.Hash().String()
	}
	attrsOf := func(s selector) []*p11.Attribute {
		return []*p11.Attribute{p11.NewAttribute(p11.CKA_ID, s.id), p11.NewAttribute(p11.CKA_LABEL, s.label)}
	}
	old, err := attrs(c, sh, hPriv, p11.CKA_ID)
	if err == nil {
		if err = c.SetAttributeValue(sh, hPub, attrsOf(sel)); err == nil {
			if err = c.SetAttributeValue(sh, hPriv, attrsOf(sel)); err != nil {
				_ = c.SetAttributeValue(sh, hPub, attrsOf(selector{label: k.sel.label, id: old[p11.CKA_ID]}))
			}
		}
	}
	if err != nil {
		v.log.Warn("the token did not let the new key be relabelled; keeping its first label and ID",
			"vault", v.name, "key", k.sel.String(), "err", rvText(err))
		if a, err := attrs(c, sh, hPriv, p11.CKA_ID); err == nil {
			k.sel.id = a[p11.CKA_ID]
		}
		return
	}
	k.sel = sel
}

// checkFree refuses a label (and, with byID, an ID) already used by a private key on the token.
func (v *Vault) checkFree(c *p11.Ctx, sh p11.SessionHandle, sel selector, byID bool) error {
	hs, err := findObjects(c, sh, privateTemplate(selector{label: sel.label}, 0), 1)
	if err != nil {
		return err
	}
	if len(hs) > 0 {
		return fmt.Errorf("a private key labelled %q is already on the token", sel.label)
	}
	if byID {
		if hs, err = findObjects(c, sh, privateTemplate(selector{id: sel.id}, 0), 1); err != nil {
			return err
		}
		if len(hs) > 0 {
			return fmt.Errorf("this key (CKA_ID %x) is already on the token", sel.id)
		}
	}
	return nil
}

// withRW runs fn on a read-write session of its own (creating objects needs one). A session
// that a concurrent re-initialisation of the module (another vault on the same library) made
// stale before fn ran is replaced, as withSession does: fn has not run, so nothing was created.
func (v *Vault) withRW(ctx context.Context, fn func(c *p11.Ctx, sh p11.SessionHandle) error) error {
	v.mod.writeMu.Lock()
	defer v.mod.writeMu.Unlock()
	var err error
	for range 3 {
		if _, needInit := v.mod.state(); needInit {
			if err := v.mod.reinit(v.log); err != nil {
				return err
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		var s *session
		if s, err = v.openSession(p11.CKF_SERIAL_SESSION | p11.CKF_RW_SESSION); err != nil {
			return err
		}
		err = v.mod.call(func(c *p11.Ctx, gen uint64) error {
			if s.gen != gen {
				return errStale
			}
			return fn(c, s.h)
		})
		v.closeSession(s)
		if !errors.Is(err, errStale) {
			break
		}
	}
	return err
}

// objectTemplate holds the attributes shared by both objects of a key pair.
func objectTemplate(class uint, k *Key, params []byte) []*p11.Attribute {
	t := []*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, class), p11.NewAttribute(p11.CKA_KEY_TYPE, k.kt),
		p11.NewAttribute(p11.CKA_TOKEN, true),
	}
	t = append(t, selectorAttrs(k.sel, true, true)...)
	if params != nil {
		t = append(t, p11.NewAttribute(p11.CKA_EC_PARAMS, params))
	}
	return t
}

// forEachParams calls fn with each accepted CKA_EC_PARAMS form of curve until the token accepts one.
func forEachParams(curve tezos.Curve, fn func(params []byte) error) error {
	var err error
	for _, p := range ecParams(curve) {
		if err = fn(p); err == nil || !paramsRefused(err) {
			return err
		}
	}
	return err
}

func paramsRefused(err error) bool {
	return templateRefused(err) || rvIs(err, 0x140 /* CKR_CURVE_NOT_SUPPORTED */) || rvIs(err, p11.CKR_DOMAIN_PARAMS_INVALID)
}

func templateRefused(err error) bool {
	return rvIs(err, p11.CKR_ATTRIBUTE_TYPE_INVALID) || rvIs(err, p11.CKR_ATTRIBUTE_VALUE_INVALID) ||
		rvIs(err, p11.CKR_TEMPLATE_INCONSISTENT) || rvIs(err, p11.CKR_ATTRIBUTE_READ_ONLY)
}
