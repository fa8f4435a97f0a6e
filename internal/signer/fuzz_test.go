package signer

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/metrics"
	"github.com/signatory-go/signatory/internal/policy"
	"github.com/signatory-go/signatory/internal/request"
	tv "github.com/signatory-go/signatory/internal/testvectors"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
	vaultmem "github.com/signatory-go/signatory/internal/vault/mem"
	wmmem "github.com/signatory-go/signatory/internal/watermark/mem"
)

// FuzzAuthentication: any ?authentication= value and payload is answered with a typed error or,
// only for the real client signature, a signature; never a panic.
func FuzzAuthentication(f *testing.F) {
	d := tv.LoadDerived()
	k4, _ := tezos.ParseSecretKey(tv.K4SK, nil)
	k3, _ := tezos.ParsePublicKey(tv.K3PK)
	s, err := New(context.Background(), Config{Vaults: []vault.Vault{vaultmem.NewFromKeys("mem", k4)},
		Policies: map[string]*policy.Policy{tv.K4PKH: {PKH: tv.K4PKH, Requests: []request.Kind{request.Generic}, Ops: []string{"transaction"}}},
		Store:    wmmem.NewStore(), AuthorizedKeys: []crypt.PublicKey{k3},
		Observer: metrics.New("fuzz"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		f.Fatal(err)
	}
	msg := tv.Hex(d.Auth.Msg)
	f.Add(d.Auth.Sig, msg)
	f.Add("edsigNOPE", msg)
	f.Add(d.AuthPop.Sig, []byte{})
	f.Add("", []byte{3})
	f.Fuzz(func(t *testing.T, auth string, m []byte) {
		res, err := s.Sign(context.Background(), &SignRequest{PKH: tv.K4PKH, Message: m, Version: 2, Authentication: auth})
		if err == nil {
			if auth != d.Auth.Sig || string(m) != string(msg) || res.Signature == nil {
				t.Fatalf("signed with authentication %q", auth)
			}
			return
		}
		switch fault.KindOf(err) {
		case fault.BadRequest, fault.Unauthorized, fault.Forbidden:
		default:
			t.Fatalf("unexpected error kind %v: %v", fault.KindOf(err), err)
		}
	})
}
