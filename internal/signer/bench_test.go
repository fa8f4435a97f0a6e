package signer

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/metrics"
	"github.com/signatory-go/signatory/internal/policy"
	"github.com/signatory-go/signatory/internal/request"
	"github.com/signatory-go/signatory/internal/request/requesttest"
	"github.com/signatory-go/signatory/internal/spending"
	tv "github.com/signatory-go/signatory/internal/testvectors"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
	vaultmem "github.com/signatory-go/signatory/internal/vault/mem"
	"github.com/signatory-go/signatory/internal/watermark"
	wmfile "github.com/signatory-go/signatory/internal/watermark/file"
	wmmem "github.com/signatory-go/signatory/internal/watermark/mem"
)

func benchSigner(b *testing.B, store watermark.Store, keys ...crypt.PrivateKey) *Signer {
	pols := map[string]*policy.Policy{}
	for _, k := range keys {
		pkh := k.Public().Hash().String()
		pols[pkh] = &policy.Policy{PKH: pkh, Requests: []request.Kind{request.Generic, request.Attestation}, Ops: []string{"transaction"}}
	}
	s, err := New(context.Background(), Config{Vaults: []vault.Vault{vaultmem.NewFromKeys("mem", keys...)}, Policies: pols,
		Store: store, Observer: metrics.New("bench"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

var c3 = tv.Hex(tv.LoadDerived().W["C3"])

func attestationAt(level int32) []byte {
	msg := append([]byte{}, c3...)
	binary.BigEndian.PutUint32(msg[40:], uint32(level)) // 0x13 ‖ chain[4] ‖ branch[32] ‖ tag ‖ slot[2] ‖ level
	return msg
}

// BenchmarkSignGeneric is the whole sign path (decode, policy, watermark pass-through, sign,
// low-S, verify) for a generic transaction, per curve.
func BenchmarkSignGeneric(b *testing.B) {
	msg := tv.Hex(tv.LoadPolicyHex()["transaction ok"])
	for _, c := range tezos.Curves {
		b.Run(string(c), func(b *testing.B) {
			k, _ := tezos.GenerateKey(c)
			s := benchSigner(b, wmmem.NewStore(), k)
			r := &SignRequest{PKH: k.Public().Hash().String(), Message: msg, Version: 3} // the latest: every curve signs with it
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Sign(context.Background(), r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSignAttestation is the consensus path with each watermark backend.
func BenchmarkSignAttestation(b *testing.B) {
	for _, backend := range []string{"mem", "file"} {
		b.Run(backend, func(b *testing.B) {
			var store watermark.Store = wmmem.NewStore()
			if backend == "file" {
				fs, err := wmfile.Open(b.TempDir())
				if err != nil {
					b.Fatal(err)
				}
				defer fs.Close()
				store = fs
			}
			k, _ := tezos.ParseSecretKey(tv.K2SK, nil)
			s := benchSigner(b, store, k)
			pkh := k.Public().Hash().String()
			level := int32(1)
			b.ReportAllocs()
			for b.Loop() {
				level++
				if _, err := s.Sign(context.Background(), &SignRequest{PKH: pkh, Message: attestationAt(level), Version: 2}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSignAttestationParallel signs attestations for 16 keys at once on the file backend:
// group commit shares fsyncs between keys.
func BenchmarkSignAttestationParallel(b *testing.B) {
	fs, err := wmfile.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer fs.Close()
	var keys []crypt.PrivateKey
	for i := 0; i < 16; i++ {
		k, _ := tezos.GenerateKey(tezos.Ed25519)
		keys = append(keys, k)
	}
	s := benchSigner(b, fs, keys...)
	var next atomic.Int32
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		k := keys[int(next.Add(1)-1)%len(keys)]
		pkh := k.Public().Hash().String()
		level := int32(1)
		for pb.Next() {
			level++
			if _, err := s.Sign(context.Background(), &SignRequest{PKH: pkh, Message: attestationAt(level), Version: 2}); err != nil {
				b.Fatal(fmt.Sprint(pkh, err))
			}
		}
	})
}

// BenchmarkDecode measures payload decoding alone.
func BenchmarkDecode(b *testing.B) {
	for name, h := range map[string]string{"transaction": tv.LoadPolicyHex()["transaction ok"], "attestation": tv.LoadDerived().W["C3"], "block": tv.LoadDerived().W["A1"]} {
		msg := tv.Hex(h)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := request.Decode(msg, 2); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSignGenericLimits is a 1 mutez transfer by a tz1 key: without limits; with the
// per-content rules only (a full decode of the contents); and with max_total as well, whose
// window is recorded in the store before each signature (mem; file: one durable write each).
// The budget is large enough that nothing is refused; each transfer has its own counter, so each
// is a new entry, and the test clock moves one minute a transfer, so the 100 min window holds 100
// (and the record, which keeps entries twice the window and an hour, 260).
func BenchmarkSignGenericLimits(b *testing.B) {
	k, _ := tezos.GenerateKey(tezos.Ed25519)
	pkh := k.Public().Hash().String()
	rules := &policy.Limits{MaxAmount: big.NewInt(100_000_000), MaxFee: big.NewInt(1_000_000)}
	windows := *rules
	windows.Windows = spending.Windows{Amount: 1 << 60, AmountPeriod: 100 * time.Minute}
	for _, c := range []struct {
		name   string
		limits *policy.Limits
		store  func(b *testing.B) watermark.Store
	}{
		{"none", nil, func(*testing.B) watermark.Store { return wmmem.NewStore() }},
		{"rules", rules, func(*testing.B) watermark.Store { return wmmem.NewStore() }},
		{"window-mem", &windows, func(*testing.B) watermark.Store { return wmmem.NewStore() }},
		{"window-file", &windows, func(b *testing.B) watermark.Store {
			st, err := wmfile.Open(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
			return st
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			s := benchSigner(b, c.store(b), k)
			s.cfg.Policies[pkh].Limits = c.limits
			counter := uint64(0)
			t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
			s.cfg.Now = func() time.Time { return t0.Add(time.Duration(counter) * time.Minute) }
			b.ReportAllocs()
			for b.Loop() {
				counter++
				msg, _ := hex.DecodeString(requesttest.Operation(requesttest.Op{Kind: "transaction", Counter: counter, Fee: 1000, Amount: 1, Dest: pkh}))
				if _, err := s.Sign(context.Background(), &SignRequest{PKH: pkh, Message: msg, Version: 3}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
