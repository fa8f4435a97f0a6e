// Package vaulttest is the conformance suite every vault driver passes, as watermarktest is for
// watermark stores. A driver's test gives Run a Fixture that opens the vault over its real token,
// emulator or in-repo fake; Run checks the vault contract (package vault):
//
//   - Name and Driver are set, and List returns distinct keys with a key of every curve the
//     fixture says the backend holds;
//   - every listed key signs random messages, concurrently too, and each signature verifies
//     against the listed public key (after low-S normalisation, which is the signer's job: a
//     driver returns what its backend gives). BLS keys sign with signing versions 1, 2 and 3, and
//     refuse version 0 and the unknown version 4; tz5 (ML-DSA-44) keys sign with version 3 only;
//   - a request whose deadline has already passed is refused with the context's error and signs
//     nothing; while a backend stalls (when the fixture can make it stall), Sign returns once its
//     deadline passes, and signs again once the backend answers;
//   - after Close, Sign fails with vault.ErrClosed;
//   - Generate and Import, where the vault implements them, create keys of the curves the fixture
//     lists, which List then returns (after a reopen too, for persistent backends) and which sign;
//     other curves (tz5 for every backend but file and mem) are refused.
package vaulttest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
)

// Fixture describes the backend under test.
type Fixture struct {
	// Driver is the driver name the vault must report.
	Driver string
	// Open opens a new Vault over the backend. Run calls it several times, and closes what it
	// opens. It fails t when the vault cannot be opened.
	Open func(t *testing.T) vault.Vault
	// Curves are the curves of the keys the backend holds when Open returns; List must return at
	// least one key of each.
	Curves []tezos.Curve
	// Generate lists the curves the vault creates keys on, when it implements vault.Generator.
	Generate []tezos.Curve
	// Import lists the curves of the secret keys the vault stores, when it implements
	// vault.Importer.
	Import []tezos.Curve
	// Persistent says that keys created through one Open are listed by the next.
	Persistent bool
	// Stall, when set, makes the backend hold every sign request until release is called, as a
	// remote service that stops answering does.
	Stall func(t *testing.T) (release func())
	// BLSVersions are the signing versions BLS keys sign with (default 1, 2 and 3); the others
	// are refused.
	BLSVersions []int
}

// Run runs the suite.
func Run(t *testing.T, f Fixture) {
	t.Helper()
	if f.Open == nil || f.Driver == "" {
		t.Fatal("vaulttest: the fixture needs Driver and Open")
	}
	t.Run("Identity", func(t *testing.T) { identity(t, f) })
	t.Run("List", func(t *testing.T) { list(t, f) })
	t.Run("Sign", func(t *testing.T) { sign(t, f) })
	t.Run("Concurrent", func(t *testing.T) { concurrent(t, f) })
	t.Run("ExpiredDeadline", func(t *testing.T) { expired(t, f) })
	if f.Stall != nil {
		t.Run("StalledBackend", func(t *testing.T) { stalled(t, f) })
	}
	t.Run("SignAfterClose", func(t *testing.T) { afterClose(t, f) })
	t.Run("Generate", func(t *testing.T) { generate(t, f) })
	t.Run("Import", func(t *testing.T) { importKeys(t, f) })
}

func open(t *testing.T, f Fixture) vault.Vault {
	t.Helper()
	v := f.Open(t)
	t.Cleanup(func() { v.Close() })
	return v
}

func listKeys(t *testing.T, v vault.Vault) []vault.Key {
	t.Helper()
	keys, err := v.List(context.Background())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return keys
}

func identity(t *testing.T, f Fixture) {
	v := open(t, f)
	if v.Name() == "" {
		t.Error("Name is empty")
	}
	if v.Driver() != f.Driver {
		t.Errorf("Driver() = %q, want %q", v.Driver(), f.Driver)
	}
}

func list(t *testing.T, f Fixture) {
	v := open(t, f)
	keys := listKeys(t, v)
	seen := map[string]bool{}
	curves := map[tezos.Curve]bool{}
	for _, k := range keys {
		pub := k.PublicKey()
		if pub == nil {
			t.Fatalf("key %q has no public key", k.ID())
		}
		pkh := pub.Hash().String()
		if k.ID() == "" {
			t.Errorf("key %s has an empty ID", pkh)
		}
		if seen[pkh] {
			t.Errorf("List returned %s twice", pkh)
		}
		seen[pkh] = true
		curves[tezos.CurveOf(pub)] = true
	}
	for _, c := range f.Curves {
		if !curves[c] {
			t.Errorf("List returned no %s key (got %d keys)", c, len(keys))
		}
	}
	again := listKeys(t, v)
	if len(again) != len(keys) {
		t.Errorf("a second List returned %d keys, the first %d", len(again), len(keys))
	}
	for _, k := range again {
		if !seen[k.PublicKey().Hash().String()] {
			t.Errorf("a second List returned %s, the first did not", k.PublicKey().Hash())
		}
	}
}

// transaction is a valid generic operation (one transaction) after its 32-byte branch, so that a
// backend that decodes what it signs (a threshold key's member signers) accepts it.
var transaction, _ = hex.DecodeString("6c004b415314d2b56b0481a3ae8c992ce8bb8dba0369d086039ecb2dc35000c0843d000076b2f1ea1cf6753888ac5488693977446652d79e00")

// message returns a generic-operation payload with a random branch, and its digest.
func message() ([]byte, *[32]byte) {
	msg := make([]byte, 1+32, 1+32+len(transaction))
	msg[0] = 0x03
	rand.Read(msg[1:]) // never fails (crypto/rand crashes the program instead)
	msg = append(msg, transaction...)
	d := [32]byte(crypt.DigestFunc(msg))
	return msg, &d
}

// versions returns the signing versions a key of pub's curve is asked to sign with.
func (f Fixture) versions(pub crypt.PublicKey) []int {
	if tezos.CurveOf(pub) == tezos.MLDSA44 {
		return []int{3}
	}
	if tezos.CurveOf(pub) == tezos.BLS {
		if len(f.BLSVersions) > 0 {
			return f.BLSVersions
		}
		return []int{1, 2, 3}
	}
	return []int{2, 3}
}

// signVerify signs a random message with k and checks the signature against k's public key.
func signVerify(ctx context.Context, k vault.Key, version int) error {
	msg, d := message()
	sig, err := k.Sign(ctx, msg, d, vault.SignOptions{Version: version})
	if err != nil {
		return fmt.Errorf("key %s (%s): Sign: %w", k.PublicKey().Hash(), k.ID(), err)
	}
	if sig == nil {
		return fmt.Errorf("key %s (%s): Sign returned neither a signature nor an error", k.PublicKey().Hash(), k.ID())
	}
	if !tezos.Verify(k.PublicKey(), tezos.LowS(sig), msg, version) {
		return fmt.Errorf("key %s (%s): the signature does not verify (version %d)", k.PublicKey().Hash(), k.ID(), version)
	}
	return nil
}

func sign(t *testing.T, f Fixture) {
	v := open(t, f)
	for _, k := range listKeys(t, v) {
		for _, ver := range f.versions(k.PublicKey()) {
			if err := signVerify(context.Background(), k, ver); err != nil {
				t.Error(err)
			}
		}
		if tezos.CurveOf(k.PublicKey()) == tezos.BLS {
			for _, ver := range []int{1, 2, 3} {
				if slices.Contains(f.versions(k.PublicKey()), ver) {
					continue
				}
				msg, d := message()
				if sig, err := k.Sign(context.Background(), msg, d, vault.SignOptions{Version: ver}); err == nil {
					t.Errorf("key %s signed with signing version %d (%v), which the fixture says it refuses", k.PublicKey().Hash(), ver, sig)
				}
			}
			for _, ver := range []int{0, 4} {
				msg, d := message()
				if sig, err := k.Sign(context.Background(), msg, d, vault.SignOptions{Version: ver}); err == nil {
					t.Errorf("key %s signed with signing version %d (%v), which has no BLS form", k.PublicKey().Hash(), ver, sig)
				}
			}
		}
		if tezos.CurveOf(k.PublicKey()) == tezos.MLDSA44 {
			for _, ver := range []int{0, 1, 2, 4} {
				msg, d := message()
				if sig, err := k.Sign(context.Background(), msg, d, vault.SignOptions{Version: ver}); err == nil {
					t.Errorf("tz5 key %s signed with signing version %d (%v): tz5 signs with version 3 only", k.PublicKey().Hash(), ver, sig)
				}
			}
		}
	}
}

func concurrent(t *testing.T, f Fixture) {
	v := open(t, f)
	keys := listKeys(t, v)
	var wg sync.WaitGroup
	errs := make(chan error, 4*3*len(keys))
	for range 4 {
		wg.Go(func() {
			for range 3 {
				for _, k := range keys {
					errs <- signVerify(context.Background(), k, f.versions(k.PublicKey())[0])
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func expired(t *testing.T, f Fixture) {
	v := open(t, f)
	ctx, cancel := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancel()
	for _, k := range listKeys(t, v) {
		msg, d := message()
		sig, err := k.Sign(ctx, msg, d, vault.SignOptions{Version: f.versions(k.PublicKey())[0]})
		if err == nil || sig != nil {
			t.Errorf("key %s signed for a request whose deadline had passed (%v, %v)", k.PublicKey().Hash(), sig, err)
		} else if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("key %s: %v, want the context's error", k.PublicKey().Hash(), err)
		}
	}
}

// stalled: while the backend holds every sign request, Sign returns an error once the request's
// deadline passes (the test would hang otherwise, since the backend answers only when released),
// and the same vault signs again once the backend answers.
func stalled(t *testing.T, f Fixture) {
	v := open(t, f)
	keys := listKeys(t, v)
	if len(keys) == 0 {
		t.Fatal("no keys")
	}
	k := keys[0]
	release := f.Stall(t)
	released := false
	defer func() {
		if !released {
			release()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	msg, d := message()
	if sig, err := k.Sign(ctx, msg, d, vault.SignOptions{Version: f.versions(k.PublicKey())[0]}); err == nil {
		t.Fatalf("a stalled backend returned a signature (%v)", sig)
	}
	release()
	released = true
	if err := signVerify(context.Background(), k, f.versions(k.PublicKey())[0]); err != nil {
		t.Fatalf("after the backend answers again: %v", err)
	}
}

func afterClose(t *testing.T, f Fixture) {
	v := f.Open(t)
	keys := listKeys(t, v)
	if err := v.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, k := range keys {
		msg, d := message()
		sig, err := k.Sign(context.Background(), msg, d, vault.SignOptions{Version: f.versions(k.PublicKey())[0]})
		if !errors.Is(err, vault.ErrClosed) || sig != nil {
			t.Errorf("key %s after Close: %v, %v; want vault.ErrClosed", k.PublicKey().Hash(), sig, err)
		}
	}
	if err := v.Close(); err != nil {
		t.Errorf("a second Close: %v", err)
	}
}

// created checks a key returned by Generate or Import: it is of curve c (and pub, when given),
// List returns it, it signs, and, for a persistent backend, the next Open lists it too.
func created(t *testing.T, f Fixture, v vault.Vault, k vault.Key, c tezos.Curve, pub crypt.PublicKey) {
	t.Helper()
	if got := tezos.CurveOf(k.PublicKey()); got != c {
		t.Fatalf("asked for a %s key, got a %s key", c, got)
	}
	pkh := k.PublicKey().Hash().String()
	if pub != nil && pub.Hash().String() != pkh {
		t.Fatalf("the stored key is %s, the imported one %s", pkh, pub.Hash())
	}
	has := func(keys []vault.Key) vault.Key {
		for _, k := range keys {
			if k.PublicKey().Hash().String() == pkh {
				return k
			}
		}
		return nil
	}
	listed := has(listKeys(t, v))
	if listed == nil {
		t.Fatalf("List does not return the new key %s", pkh)
	}
	for _, key := range []vault.Key{k, listed} {
		if err := signVerify(context.Background(), key, f.versions(key.PublicKey())[0]); err != nil {
			t.Fatal(err)
		}
	}
	if f.Persistent {
		again := has(listKeys(t, open(t, f)))
		if again == nil {
			t.Fatalf("the new key %s is gone after reopening the vault", pkh)
		}
		if err := signVerify(context.Background(), again, f.versions(again.PublicKey())[0]); err != nil {
			t.Fatalf("after reopening: %v", err)
		}
	}
}

func generate(t *testing.T, f Fixture) {
	v := open(t, f)
	g, ok := v.(vault.Generator)
	switch {
	case !ok && len(f.Generate) > 0:
		t.Fatalf("the fixture lists curves to generate, but %T is not a vault.Generator", v)
	case !ok:
		t.Skip("the vault does not generate keys")
	case len(f.Generate) == 0:
		t.Fatalf("%T is a vault.Generator, but the fixture lists no curve for it", v)
	}
	for i, c := range tezos.Curves {
		name := fmt.Sprintf("vaulttest-gen-%d-%d", time.Now().UnixNano(), i)
		k, err := g.Generate(context.Background(), c, name)
		if !slices.Contains(f.Generate, c) {
			if err == nil {
				t.Errorf("generated a %s key (%s), a curve the fixture says it cannot", c, k.PublicKey().Hash())
			}
			continue
		}
		if err != nil {
			t.Fatalf("Generate %s: %v", c, err)
		}
		created(t, f, v, k, c, nil)
	}
}

func importKeys(t *testing.T, f Fixture) {
	v := open(t, f)
	im, ok := v.(vault.Importer)
	switch {
	case !ok && len(f.Import) > 0:
		t.Fatalf("the fixture lists curves to import, but %T is not a vault.Importer", v)
	case !ok:
		t.Skip("the vault does not import keys")
	case len(f.Import) == 0:
		t.Fatalf("%T is a vault.Importer, but the fixture lists no curve for it", v)
	}
	for i, c := range tezos.Curves {
		priv, err := tezos.GenerateKey(c)
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("vaulttest-imp-%d-%d", time.Now().UnixNano(), i)
		k, err := im.Import(context.Background(), priv, name)
		if !slices.Contains(f.Import, c) {
			if err == nil {
				t.Errorf("imported a %s key (%s), a curve the fixture says it cannot", c, k.PublicKey().Hash())
			}
			continue
		}
		if err != nil {
			t.Fatalf("Import %s: %v", c, err)
		}
		created(t, f, v, k, c, priv.Public())
	}
}
