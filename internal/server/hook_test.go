package server

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signatory-go/signatory/internal/metrics"
	"github.com/signatory-go/signatory/internal/policy"
	"github.com/signatory-go/signatory/internal/policyhook"
	"github.com/signatory-go/signatory/internal/signer"
	tv "github.com/signatory-go/signatory/internal/testvectors"
	"github.com/signatory-go/signatory/internal/vault"
	vaultmem "github.com/signatory-go/signatory/internal/vault/mem"
	wmmem "github.com/signatory-go/signatory/internal/watermark/mem"
)

// TestPolicyHookGatesTheWatermark: a hook refusal is a 403 that leaves the watermark untouched,
// so the same level can be signed once the hook allows it.
func TestPolicyHookGatesTheWatermark(t *testing.T) {
	t.Parallel()
	var allow atomic.Bool
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if allow.Load() {
			w.WriteHeader(204)
		} else {
			w.WriteHeader(403)
		}
	}))
	defer hook.Close()
	m := metrics.New("test")
	s, err := signer.New(t.Context(), signer.Config{
		Vaults:   []vault.Vault{vaultmem.NewFromKeys("mem", mustKey(t, tv.K2SK))},
		Policies: map[string]*policy.Policy{tv.K2PKH: policy.Default(tv.K2PKH)},
		Store:    wmmem.NewStore(), Observer: m, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Hook: &policyhook.Hook{Address: hook.URL, Timeout: time.Second, Client: hook.Client()},
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(New(Config{}, s, m, slog.New(slog.NewTextHandler(io.Discard, nil))).Handler())
	defer hs.Close()
	e := &env{srv: hs, m: m}
	d := tv.LoadDerived()
	if status, body := e.post(t, "/keys/"+tv.K2PKH, `"`+d.W["A1"]+`"`); status != 403 || body != errBody("policy hook: 403 Forbidden") {
		t.Fatalf("refused by hook: %d %s", status, body)
	}
	allow.Store(true)
	// A2 (same level, other bytes) is signed: the refused A1 never reached the watermark.
	if status, body := e.post(t, "/keys/"+tv.K2PKH, `"`+d.W["A2"]+`"`); status != 200 {
		t.Fatalf("allowed by hook: %d %s", status, body)
	}
}
