package awskms

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
	"github.com/signatory-go/signatory/internal/vault/awskms/awskmstest"
	"github.com/signatory-go/signatory/internal/vault/vaulttest"
	"github.com/signatory-go/signatory/internal/yamlstrict"
)

// recorder keeps the raw DER signatures KMS returned, to show that normalisation mattered.
type recorder struct {
	kmsAPI
	mu  sync.Mutex
	raw map[string][][]byte // ARN → signatures

	getPublicKey atomic.Int32
}

func (r *recorder) GetPublicKey(ctx context.Context, in *kms.GetPublicKeyInput, opt ...func(*kms.Options)) (*kms.GetPublicKeyOutput, error) {
	r.getPublicKey.Add(1)
	return r.kmsAPI.GetPublicKey(ctx, in, opt...)
}

func (r *recorder) Sign(ctx context.Context, in *kms.SignInput, opt ...func(*kms.Options)) (*kms.SignOutput, error) {
	out, err := r.kmsAPI.Sign(ctx, in, opt...)
	if err == nil {
		r.mu.Lock()
		r.raw[*in.KeyId] = append(r.raw[*in.KeyId], out.Signature)
		r.mu.Unlock()
	}
	return out, err
}

func openLocal(t testing.TB, s *awskmstest.Server, keys []string, log *slog.Logger) *Vault {
	t.Helper()
	v, err := Open(t.Context(), "kms", Config{Region: awskmstest.Region, AccessKeyID: awskmstest.AccessKey,
		SecretAccessKey: awskmstest.SecretKey, Endpoint: s.Endpoint, Keys: keys, Timeout: yamlstrict.Duration(10 * time.Second)}, log)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestLocalKMS lists an account with usable and unusable keys across several pages, signs many
// digests with both curves, and checks every signature verifies and is low-S although KMS
// answered high S about half of the time.
func TestLocalKMS(t *testing.T) {
	t.Parallel()
	s := awskmstest.Start(t)
	_, p256 := s.CreateKey(t, types.KeyUsageTypeSignVerify, types.KeySpecEccNistP256)
	_, k1 := s.CreateKey(t, types.KeyUsageTypeSignVerify, types.KeySpecEccSecgP256k1)
	s.CreateKey(t, types.KeyUsageTypeEncryptDecrypt, types.KeySpecSymmetricDefault)
	s.CreateKey(t, types.KeyUsageTypeSignVerify, types.KeySpecEccNistP384)
	s.CreateKey(t, types.KeyUsageTypeSignVerify, types.KeySpecRsa2048)

	var logs bytes.Buffer
	v := openLocal(t, s, nil, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	v.pageSize = 2
	rec := &recorder{kmsAPI: v.client, raw: map[string][][]byte{}}
	v.client = rec
	keys, err := v.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]tezos.Curve{}
	for _, k := range keys {
		got[k.ID()] = tezos.CurveOf(k.PublicKey())
	}
	if len(got) != 2 || got[p256] != tezos.P256 || got[k1] != tezos.Secp256k1 {
		t.Fatalf("listed %v, want %s (p256) and %s (secp256k1)", got, p256, k1)
	}
	if n := strings.Count(logs.String(), "AWS KMS key skipped"); n != 3 {
		t.Fatalf("%d keys skipped, want 3:\n%s", n, &logs)
	}
	// Listing again reads no public key: the usable and the wrong-type keys are remembered.
	if n := rec.getPublicKey.Load(); n != 5 {
		t.Fatalf("%d GetPublicKey calls for 5 keys", n)
	}
	again, err := v.List(t.Context())
	if err != nil || len(again) != 2 || rec.getPublicKey.Load() != 5 {
		t.Fatalf("second List = %d keys, %v, %d GetPublicKey calls in all", len(again), err, rec.getPublicKey.Load())
	}

	const n = 40
	for _, k := range keys {
		for i := range n {
			msg := fmt.Appendf(nil, "\x03message %d", i)
			digest := [32]byte(crypt.DigestFunc(msg))
			sig, err := k.Sign(t.Context(), msg, &digest, vault.SignOptions{})
			if err != nil {
				t.Fatalf("%s: Sign: %v", k.ID(), err)
			}
			if !tezos.Verify(k.PublicKey(), tezos.LowS(sig), msg, 2) {
				t.Fatalf("%s: signature %d does not verify", k.ID(), i)
			}
		}
		high := 0
		for _, der := range rec.raw[k.(*Key).ARN()] {
			raw, err := parseSignature(der, k.(*Key).pub.Curve)
			if err != nil {
				t.Fatal(err)
			}
			if !tezos.IsLowS(raw) {
				high++
			}
		}
		t.Logf("%s: %d of %d KMS signatures were high-S", got[k.ID()], high, n)
		if high == 0 {
			t.Errorf("%s: KMS returned no high-S signature in %d; the signer's normalisation would not be exercised", k.ID(), n)
		}
	}
}

// TestLocalKMSConfiguredKeys: keys given by id, ARN and alias; an unknown key is reported with
// its id and left out; a vault whose every key is unknown fails to list.
func TestLocalKMSConfiguredKeys(t *testing.T) {
	t.Parallel()
	s := awskmstest.Start(t)
	id1, _ := s.CreateKey(t, types.KeyUsageTypeSignVerify, types.KeySpecEccNistP256)
	_, arn2 := s.CreateKey(t, types.KeyUsageTypeSignVerify, types.KeySpecEccSecgP256k1)
	id3, _ := s.CreateKey(t, types.KeyUsageTypeSignVerify, types.KeySpecEccNistP256)
	s.CreateAlias(t, "alias/baker", id3)
	sym, _ := s.CreateKey(t, types.KeyUsageTypeEncryptDecrypt, types.KeySpecSymmetricDefault)
	const unknown = "11111111-2222-3333-4444-555555555555"

	var logs bytes.Buffer
	v := openLocal(t, s, []string{id1, arn2, "alias/baker", unknown, sym}, slog.New(slog.NewTextHandler(&logs, nil)))
	keys, err := v.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, k := range keys {
		ids = append(ids, k.ID())
	}
	if fmt.Sprint(ids) != fmt.Sprint([]string{id1, arn2, "alias/baker"}) {
		t.Fatalf("listed %v", ids)
	}
	for _, want := range []string{"key " + unknown, "NotFoundException", "key " + sym, "UnsupportedOperationException"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, &logs)
		}
	}
	// alias/baker signs with the key it named when listed.
	msg := []byte("\x05alias")
	digest := [32]byte(crypt.DigestFunc(msg))
	sig, err := keys[2].Sign(t.Context(), msg, &digest, vault.SignOptions{})
	if err != nil || !tezos.Verify(keys[2].PublicKey(), sig, msg, 2) {
		t.Fatalf("alias sign: %v", err)
	}

	_, err = openLocal(t, s, []string{unknown}, nil).List(t.Context())
	if err == nil || !strings.Contains(err.Error(), "key "+unknown) || !strings.Contains(err.Error(), "NotFoundException") {
		t.Fatalf("List of an unknown key = %v", err)
	}
}

// BenchmarkLocalKMSSign measures one Sign round trip through local-kms per curve. local-kms is
// an emulator on loopback: the figure is our overhead plus the emulator's, not AWS's latency.
func BenchmarkLocalKMSSign(b *testing.B) {
	s := awskmstest.Start(b)
	for _, spec := range []types.KeySpec{types.KeySpecEccNistP256, types.KeySpecEccSecgP256k1} {
		id, _ := s.CreateKey(b, types.KeyUsageTypeSignVerify, spec)
		v := openLocal(b, s, []string{id}, nil)
		keys, err := v.List(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		b.Run(string(spec), func(b *testing.B) {
			var digest [32]byte
			_, _ = rand.Read(digest[:])
			for b.Loop() {
				if _, err := keys[0].Sign(context.Background(), nil, &digest, vault.SignOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestConformance runs the vault suite against local-kms, through a proxy that can stall it.
func TestConformance(t *testing.T) {
	t.Parallel()
	s := awskmstest.Start(t)
	s.CreateKey(t, types.KeyUsageTypeSignVerify, types.KeySpecEccNistP256)
	s.CreateKey(t, types.KeyUsageTypeSignVerify, types.KeySpecEccSecgP256k1)
	proxy := vaulttest.NewProxy(t, s.Endpoint)
	vaulttest.Run(t, vaulttest.Fixture{
		Driver: Driver,
		Open: func(t *testing.T) vault.Vault {
			return openLocal(t, &awskmstest.Server{Endpoint: proxy.URL}, nil, nil)
		},
		Curves: []tezos.Curve{tezos.Secp256k1, tezos.P256},
		Stall:  proxy.Stall,
	})
}
