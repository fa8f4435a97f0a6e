package pkcs11

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/ecadlabs/gotez/v2/crypt"
	p11 "github.com/miekg/pkcs11"

	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
)

// Key is a private key on the token. It is found again by its label and ID when its handle dies
// (a re-initialised module, a reopened token), so a Key stays usable for the signer's lifetime.
type Key struct {
	v      *Vault
	sel    selector // CKA_LABEL and CKA_ID of the private key
	kt     uint     // CKA_KEY_TYPE (some older tokens type Ed25519 keys CKK_EC)
	curve  tezos.Curve
	pub    crypt.PublicKey
	handle atomic.Pointer[handleRef]
}

type handleRef struct {
	h   p11.ObjectHandle
	gen uint64
}

// PublicKey implements vault.Key.
func (k *Key) PublicKey() crypt.PublicKey { return k.pub }

// ID implements vault.Key: the key's label, or its hex CKA_ID when it has none.
func (k *Key) ID() string {
	if k.sel.label != "" {
		return k.sel.label
	}
	return "id:" + hex.EncodeToString(k.sel.id)
}

// Sign implements vault.Key: EdDSA or ECDSA over the 32-byte digest, on the token.
func (k *Key) Sign(ctx context.Context, message []byte, digest *[32]byte, opts vault.SignOptions) (crypt.Signature, error) {
	if err := k.v.life.Usable(ctx); err != nil {
		return nil, err
	}
	raw, err := k.v.sign(ctx, k, digest[:])
	if err != nil {
		return nil, err
	}
	sig, err := signature(k.curve, raw)
	if err != nil {
		return nil, fmt.Errorf("%s: key %s: %w", k.v.where(), k.sel, err)
	}
	return sig, nil
}

// errKeyGone means a key that was on the token cannot be found any more: the token was removed
// or reset, or the key was deleted. The module is re-initialised before the next attempt.
var errKeyGone = errors.New("the key is no longer on the token")

// handleFor returns the key's object handle for generation gen, finding it again if needed.
func (k *Key) handleFor(c *p11.Ctx, sh p11.SessionHandle, gen uint64) (p11.ObjectHandle, error) {
	if ref := k.handle.Load(); ref != nil && ref.gen == gen {
		return ref.h, nil
	}
	hs, err := findObjects(c, sh, privateTemplate(k.sel, k.kt), 2)
	switch {
	case err != nil:
		return 0, err
	case len(hs) == 0:
		return 0, errKeyGone
	case len(hs) > 1:
		return 0, fmt.Errorf("more than one private key has %s", k.sel)
	}
	k.handle.Store(&handleRef{h: hs[0], gen: gen})
	return hs[0], nil
}

func privateTemplate(sel selector, kt uint) []*p11.Attribute {
	t := []*p11.Attribute{p11.NewAttribute(p11.CKA_CLASS, p11.CKO_PRIVATE_KEY)}
	if kt != 0 {
		t = append(t, p11.NewAttribute(p11.CKA_KEY_TYPE, kt))
	}
	return append(t, selectorAttrs(sel, true, true)...)
}

func selectorAttrs(sel selector, label, id bool) []*p11.Attribute {
	var t []*p11.Attribute
	if label && sel.label != "" {
		t = append(t, p11.NewAttribute(p11.CKA_LABEL, sel.label))
	}
	if id && len(sel.id) > 0 {
		t = append(t, p11.NewAttribute(p11.CKA_ID, sel.id))
	}
	return t
}

// findObjects returns up to max handles (all when max is 0) of the objects matching t.
func findObjects(c *p11.Ctx, sh p11.SessionHandle, t []*p11.Attribute, max int) ([]p11.ObjectHandle, error) {
	if err := c.FindObjectsInit(sh, t); err != nil {
		return nil, opErr("C_FindObjectsInit", err)
	}
	var out []p11.ObjectHandle
	for max == 0 || len(out) < max {
		hs, _, err := c.FindObjects(sh, 64)
		if err != nil {
			_ = c.FindObjectsFinal(sh)
			return nil, opErr("C_FindObjects", err)
		}
		if len(hs) == 0 {
			break
		}
		out = append(out, hs...)
	}
	if err := c.FindObjectsFinal(sh); err != nil {
		return nil, opErr("C_FindObjectsFinal", err)
	}
	return out, nil
}

// attrs reads the attributes types of object h; an attribute the object lacks is nil.
func attrs(c *p11.Ctx, sh p11.SessionHandle, h p11.ObjectHandle, types ...uint) (map[uint][]byte, error) {
	out := make(map[uint][]byte, len(types))
	t := make([]*p11.Attribute, len(types))
	for i, typ := range types {
		t[i] = p11.NewAttribute(typ, nil)
	}
	got, err := c.GetAttributeValue(sh, h, t)
	if err == nil {
		for _, a := range got {
			out[a.Type] = a.Value
		}
		return out, nil
	}
	if !rvIs(err, p11.CKR_ATTRIBUTE_TYPE_INVALID) && !rvIs(err, p11.CKR_ATTRIBUTE_SENSITIVE) {
		return nil, opErr("C_GetAttributeValue", err)
	}
	for _, typ := range types { // one by one, to learn which ones the object has
		got, err := c.GetAttributeValue(sh, h, []*p11.Attribute{p11.NewAttribute(typ, nil)})
		if err == nil && len(got) == 1 {
			out[typ] = got[0].Value
		} else if err != nil && sessionLost(err) {
			return nil, opErr("C_GetAttributeValue", err)
		}
	}
	return out, nil
}

// ulong decodes a CK_ULONG attribute value (native byte order).
func ulong(b []byte) (uint, bool) {
	switch len(b) {
	case 8:
		return uint(binary.NativeEndian.Uint64(b)), true
	case 4:
		return uint(binary.NativeEndian.Uint32(b)), true
	}
	return 0, false
}

// candidate is a private key met while listing.
type candidate struct {
	h     p11.ObjectHandle
	sel   selector
	kt    uint
	curve tezos.Curve
}

// inspect reads a private key's label, ID and curve. skip says why a key cannot sign for Tezos
// (not an EC key, which is quiet when discovering, or a curve Tezos does not use).
func inspect(c *p11.Ctx, sh p11.SessionHandle, h p11.ObjectHandle) (cand candidate, skip string, quiet bool, err error) {
	a, err := attrs(c, sh, h, p11.CKA_KEY_TYPE, p11.CKA_LABEL, p11.CKA_ID, p11.CKA_EC_PARAMS)
	if err != nil {
		return cand, "", false, err
	}
	cand = candidate{h: h, sel: selector{label: string(a[p11.CKA_LABEL]), id: a[p11.CKA_ID]}}
	kt, _ := ulong(a[p11.CKA_KEY_TYPE])
	if kt != p11.CKK_EC && kt != ckkECEdwards {
		return cand, fmt.Sprintf("key type 0x%x is not EC or EC Edwards", kt), true, nil
	}
	curve, name := curveParams(a[p11.CKA_EC_PARAMS])
	if curve == "" {
		return cand, "unsupported curve " + name + " (Tezos keys are Ed25519, secp256k1 or P-256)", false, nil
	}
	cand.curve, cand.kt = curve, kt
	return cand, "", false, nil
}

// publicKey finds the public key of a private key: the configured value, the private object's
// own CKA_EC_POINT (CloudHSM), or the public key object with the same label and/or ID.
func (v *Vault) publicKey(c *p11.Ctx, sh p11.SessionHandle, cand candidate, spec *keySpec) (crypt.PublicKey, error) {
	if spec != nil && spec.publicValue != nil {
		if tezos.CurveOf(spec.publicValue) != cand.curve {
			return nil, fmt.Errorf("public_value is a %s key but the private key is %s", tezos.CurveOf(spec.publicValue), cand.curve)
		}
		return spec.publicValue, nil
	}
	if (spec != nil && spec.extended) || v.cfg.search.ExtendedPrivate {
		if a, err := attrs(c, sh, cand.h, p11.CKA_EC_POINT); err == nil && a[p11.CKA_EC_POINT] != nil {
			return parsePoint(cand.curve, a[p11.CKA_EC_POINT])
		}
	}
	t := []*p11.Attribute{p11.NewAttribute(p11.CKA_CLASS, p11.CKO_PUBLIC_KEY), p11.NewAttribute(p11.CKA_KEY_TYPE, cand.kt)}
	var extra []*p11.Attribute
	if spec != nil {
		extra = selectorAttrs(spec.pub, true, true)
	} else {
		extra = selectorAttrs(cand.sel, v.cfg.search.MatchLabel, v.cfg.search.MatchID)
	}
	if len(extra) == 0 {
		return nil, errors.New("no public key: the private key has no CKA_EC_POINT, and no label or ID to match a public key object by")
	}
	hs, err := findObjects(c, sh, append(t, extra...), 2)
	switch {
	case err != nil:
		return nil, err
	case len(hs) == 0:
		return nil, errors.New("no public key object with the same label/ID, and the private key has no CKA_EC_POINT")
	case len(hs) > 1:
		return nil, errors.New("more than one public key object matches; give keys[].public or public_value")
	}
	a, err := attrs(c, sh, hs[0], p11.CKA_EC_PARAMS, p11.CKA_EC_POINT)
	if err != nil {
		return nil, err
	}
	if curve, name := curveParams(a[p11.CKA_EC_PARAMS]); curve != cand.curve {
		return nil, fmt.Errorf("the public key object is on %s but the private key on %s", name, cand.curve)
	}
	return parsePoint(cand.curve, a[p11.CKA_EC_POINT])
}

// discover lists the vault's keys on session sh.
func (v *Vault) discover(c *p11.Ctx, sh p11.SessionHandle, gen uint64) ([]vault.Key, error) {
	type item struct {
		cand candidate
		spec *keySpec
	}
	var items []item
	if len(v.cfg.keys) == 0 {
		hs, err := findObjects(c, sh, privateTemplate(selector{}, 0), 0)
		if err != nil {
			return nil, err
		}
		for _, h := range hs {
			items = append(items, item{cand: candidate{h: h}})
		}
	} else {
		for i := range v.cfg.keys {
			spec := &v.cfg.keys[i]
			hs, err := findObjects(c, sh, privateTemplate(spec.priv, 0), 2)
			switch {
			case err != nil:
				return nil, err
			case len(hs) == 0:
				return nil, fmt.Errorf("key not found: no private key with %s", spec.priv)
			case len(hs) > 1:
				return nil, fmt.Errorf("more than one private key has %s; give both label and id", spec.priv)
			}
			items = append(items, item{cand: candidate{h: hs[0]}, spec: spec})
		}
	}
	mechs := v.mechanisms(c)
	var out []vault.Key
	seen := map[string]string{}
	for _, it := range items {
		cand, skip, quiet, err := inspect(c, sh, it.cand.h)
		if err != nil {
			return nil, err
		}
		if skip != "" {
			if it.spec != nil || !quiet {
				v.log.Warn("PKCS#11 key skipped", "vault", v.name, "key", cand.sel.String(), "reason", skip)
			}
			continue
		}
		if cand.sel.label == "" && len(cand.sel.id) == 0 {
			v.log.Warn("PKCS#11 key skipped: it has neither CKA_LABEL nor CKA_ID to find it by", "vault", v.name)
			continue
		}
		pub, err := v.publicKey(c, sh, cand, it.spec)
		if err != nil {
			if it.spec != nil {
				return nil, fmt.Errorf("key %s: %w", cand.sel, err)
			}
			v.log.Warn("PKCS#11 key skipped", "vault", v.name, "key", cand.sel.String(), "reason", err.Error())
			continue
		}
		pkh := pub.Hash().String()
		if other, dup := seen[pkh]; dup {
			v.log.Warn("PKCS#11 key listed twice; using the first", "vault", v.name, "pkh", pkh, "key", cand.sel.String(), "first", other)
			continue
		}
		seen[pkh] = cand.sel.String()
		if mechs != nil && !mechs[mechanism(cand.curve)] {
			v.log.Warn("the token does not list the mechanism this key signs with; signing may fail",
				"vault", v.name, "key", cand.sel.String(), "mechanism", mechName(cand.curve))
		}
		k := &Key{v: v, sel: cand.sel, kt: cand.kt, curve: cand.curve, pub: pub}
		k.handle.Store(&handleRef{h: cand.h, gen: gen})
		out = append(out, k)
	}
	return out, nil
}

// mechanisms returns the token's mechanisms, or nil when it cannot tell.
func (v *Vault) mechanisms(c *p11.Ctx) map[uint]bool {
	v.mu.Lock()
	slot := v.slot
	v.mu.Unlock()
	list, err := c.GetMechanismList(slot)
	if err != nil {
		return nil
	}
	out := map[uint]bool{}
	for _, m := range list {
		out[m.Mechanism] = true
	}
	return out
}

func mechName(c tezos.Curve) string {
	if c == tezos.Ed25519 {
		return "CKM_EDDSA"
	}
	return "CKM_ECDSA"
}
