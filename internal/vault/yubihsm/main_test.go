package yubihsm

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/testdaemon"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
	"github.com/signatory-go/signatory/internal/vault/yubihsm/yubihsmfake"
)

const password = "correct horse battery staple"

// testDevice is an emulated YubiHSM 2 with authentication key 1 and the keys
//
//	0101 P-256 "k1", 0102 secp256k1 "k2", 0103 Ed25519 "k3", 0104 RSA-2048 "k9" (unusable)
type testDevice struct {
	dev  *yubihsmfake.Device
	conn *yubihsmfake.Connector
	priv map[uint16]crypt.PrivateKey
}

func newDevice(t *testing.T) *testDevice {
	t.Helper()
	d := &testDevice{dev: yubihsmfake.New(), priv: map[uint16]crypt.PrivateKey{}}
	d.dev.PutAuthKey(1, password, 0, 0)
	for i, c := range []tezos.Curve{tezos.P256, tezos.Secp256k1, tezos.Ed25519} {
		priv, err := tezos.GenerateKey(c)
		if err != nil {
			t.Fatal(err)
		}
		id := uint16(0x0101 + i)
		if err := d.dev.PutKey(id, "k"+string(rune('1'+i)), 1, 0, priv); err != nil {
			t.Fatal(err)
		}
		d.priv[id] = priv
	}
	d.dev.PutUnusableKey(0x0104, "k9", yubihsmfake.AlgRSA2048)
	conn, err := yubihsmfake.Start(d.dev, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Stop)
	d.conn = conn
	return d
}

func (d *testDevice) config() Config {
	return Config{Address: d.conn.Addr(), Password: password, AuthKeyID: 1}
}

func (d *testDevice) open(t *testing.T, edit func(*Config)) (*Vault, *testdaemon.Buffer) {
	t.Helper()
	cfg := d.config()
	if edit != nil {
		edit(&cfg)
	}
	logs := &testdaemon.Buffer{}
	v, err := Open(t.Context(), "yubi", cfg, vault.Env{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v, logs
}

// trySign signs a random message with k and checks the signature as Tezos would.
func trySign(k vault.Key) (crypt.Signature, error) {
	msg := make([]byte, 40)
	_, _ = rand.Read(msg)
	digest := [32]byte(crypt.DigestFunc(msg))
	sig, err := k.Sign(context.Background(), msg, &digest, vault.SignOptions{Version: 2})
	if err != nil {
		return nil, err
	}
	if !tezos.Verify(k.PublicKey(), tezos.LowS(sig), msg, 2) {
		return nil, fmt.Errorf("key %s: the signature does not verify", k.ID())
	}
	return sig, nil
}

func signAndVerify(t testing.TB, k vault.Key) crypt.Signature {
	t.Helper()
	sig, err := trySign(k)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func byID(t *testing.T, keys []vault.Key) map[string]vault.Key {
	t.Helper()
	out := map[string]vault.Key{}
	for _, k := range keys {
		out[k.ID()] = k
	}
	return out
}

// noPassword fails when an error message holds the password.
func noPassword(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), password) {
		t.Fatalf("the error holds the password: %v", err)
	}
}
