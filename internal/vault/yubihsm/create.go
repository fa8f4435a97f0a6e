package yubihsm

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/certusone/yubihsm-go/commands"
	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
)

// Import implements vault.Importer: Put Asymmetric Key with label name (default
// signatory-<curve>-<unix time>, as in the reference), the configured key_import_domains and the
// curve's signing capability only. The device chooses the object ID. A key or a label already on
// the device is refused.
func (v *Vault) Import(ctx context.Context, priv crypt.PrivateKey, name string) (vault.Key, error) {
	pub := priv.Public()
	curve := tezos.CurveOf(pub)
	alg, ok := algorithmOf(curve)
	var raw []byte
	switch k := priv.(type) {
	case crypt.Ed25519PrivateKey:
		raw = append([]byte(nil), k.Seed()...)
	case *crypt.ECDSAPrivateKey:
		raw = k.D.FillBytes(make([]byte, 32)) // the device wants exactly 32 bytes
	}
	if !ok || raw == nil {
		return nil, fmt.Errorf("vault %s: the YubiHSM 2 holds Ed25519, secp256k1 and P-256 keys (tz1, tz2, tz3), not %s", v.name, curve)
	}
	defer clear(raw)
	label, err := v.freeLabel(ctx, name, curve)
	if err == nil {
		err = v.checkAbsent(ctx, pub)
	}
	if err != nil {
		return nil, fmt.Errorf("vault %s: import into %s: %w", v.name, v.where(), err)
	}
	cmd, err := commands.CreatePutAsymmetricKeyCommand(0, []byte(label), v.cfg.domains, capabilityOf(curve), alg, raw, nil)
	if err != nil {
		return nil, err
	}
	resp, err := v.do(ctx, cmd, false) // not retried: a lost reply must not store the key twice
	clear(cmd.Data)
	if err != nil {
		return nil, fmt.Errorf("vault %s: import into %s: put asymmetric key: %w", v.name, v.where(), explainCreate(err))
	}
	r, ok := resp.(*commands.PutAsymmetricKeyResponse)
	if !ok {
		return nil, fmt.Errorf("vault %s: import: unexpected reply %T", v.name, resp)
	}
	return &Key{v: v, id: r.KeyID, curve: curve, pub: pub}, nil
}

// Generate implements vault.Generator: Generate Asymmetric Key on the device (the secret never
// leaves it), with label name (default signatory-<curve>-<unix time>), the configured domains and
// the curve's signing capability only.
//
// The vault picks a free object ID itself: yubihsm-go v0.3.0 misreads the ID in the device's reply
// (it reads bytes 1–2 of the 2-byte reply), so the reply's ID cannot be trusted.
func (v *Vault) Generate(ctx context.Context, curve tezos.Curve, name string) (vault.Key, error) {
	alg, ok := algorithmOf(curve)
	if !ok {
		return nil, fmt.Errorf("vault %s: the YubiHSM 2 holds Ed25519, secp256k1 and P-256 keys (tz1, tz2, tz3), not %s", v.name, curve)
	}
	label, err := v.freeLabel(ctx, name, curve)
	var used []uint16
	if err == nil {
		used, err = v.listObjects(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("vault %s: generate on %s: %w", v.name, v.where(), err)
	}
	taken := map[uint16]bool{0: true, 0xffff: true}
	for _, id := range used {
		taken[id] = true
	}
	for attempt := 0; attempt < 5; attempt++ {
		id := uint16(rand.IntN(0x10000))
		if taken[id] {
			continue
		}
		cmd, err := commands.CreateGenerateAsymmetricKeyCommand(id, []byte(label), v.cfg.domains, capabilityOf(curve), alg)
		if err != nil {
			return nil, err
		}
		if _, err = v.do(ctx, cmd, false); isCode(err, commands.ErrorCodeObjectExists) {
			taken[id] = true // made by another client meanwhile
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("vault %s: generate on %s: %w", v.name, v.where(), explainCreate(err))
		}
		k, err := v.publicKey(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("vault %s: generate on %s: reading the new key: %w", v.name, v.where(), err)
		}
		return k, nil
	}
	return nil, fmt.Errorf("vault %s: generate on %s: no free object ID found", v.name, v.where())
}

func capabilityOf(c tezos.Curve) uint64 {
	if c == tezos.Ed25519 {
		return commands.CapabilityAsymmetricSignEddsa
	}
	return commands.CapabilityAsymmetricSignEcdsa
}

// freeLabel returns name, or the default label, after checking that no asymmetric key has it.
func (v *Vault) freeLabel(ctx context.Context, name string, curve tezos.Curve) (string, error) {
	label := name
	if label == "" {
		label = fmt.Sprintf("signatory-%s-%d", curve, time.Now().Unix())
	}
	if len(label) > labelLen {
		return "", fmt.Errorf("label %q is longer than %d bytes", label, labelLen)
	}
	opt, err := commands.NewLabelOption([]byte(label))
	if err != nil {
		return "", err
	}
	ids, err := v.listObjects(ctx, opt)
	if err != nil {
		return "", err
	}
	if len(ids) > 0 {
		return "", fmt.Errorf("an asymmetric key labelled %q is already on the device (object %04x)", label, ids[0])
	}
	return label, nil
}

// checkAbsent refuses a key whose public key is already on the device.
func (v *Vault) checkAbsent(ctx context.Context, pub crypt.PublicKey) error {
	keys, err := v.discover(ctx)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if k.pub.Hash().String() == pub.Hash().String() {
			return fmt.Errorf("this key (%s) is already on the device as object %s", pub.Hash(), k.ID())
		}
	}
	return nil
}

// explainCreate adds advice to the device errors of Put and Generate Asymmetric Key.
func explainCreate(err error) error {
	switch {
	case isCode(err, commands.ErrorCodeInvalidPermission):
		return fmt.Errorf("the authentication key lacks the put-asymmetric-key or generate-asymmetric-key capability, "+
			"the sign capability among its delegated capabilities, or key_import_domains among its domains: %w", err)
	case isCode(err, commands.ErrorCodeStorageFailed):
		return fmt.Errorf("the device is full (256 objects, 126 KB): %w", err)
	}
	return err
}
