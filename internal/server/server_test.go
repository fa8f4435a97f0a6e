package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/ecadlabs/gotez/v2/crypt"
	"gopkg.in/yaml.v3"

	"github.com/signatory-go/signatory/internal/metrics"
	"github.com/signatory-go/signatory/internal/policy"
	"github.com/signatory-go/signatory/internal/signer"
	tv "github.com/signatory-go/signatory/internal/testvectors"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
	vaultmem "github.com/signatory-go/signatory/internal/vault/mem"
	"github.com/signatory-go/signatory/internal/watermark"
	wmfile "github.com/signatory-go/signatory/internal/watermark/file"
	wmmem "github.com/signatory-go/signatory/internal/watermark/mem"
)

func mustKey(t testing.TB, sk string) crypt.PrivateKey {
	k, err := tezos.ParseSecretKey(sk, nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustPolicy(t testing.TB, pkh, src string) *policy.Policy {
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(src), &n); err != nil {
		t.Fatal(err)
	}
	var node *yaml.Node
	if len(n.Content) > 0 {
		node = n.Content[0]
	}
	p, _, err := policy.Parse(pkh, node)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// octezTz5 is octez's fixed tz5 key, parsed once: its 5298 characters of base58 take
// milliseconds to decode (keys are read-only, so every signer of the tests shares it).
var octezTz5 = sync.OnceValue(func() crypt.PrivateKey {
	sk, _ := tv.OctezTz5()
	k, err := tezos.ParseSecretKey(sk, nil)
	if err != nil {
		panic(err)
	}
	return k
})

type env struct {
	srv   *httptest.Server
	m     *metrics.Metrics
	store watermark.Store
}

// newEnvSigner builds the signer of newEnv: a mem vault with the test keys and their policies.
func newEnvSigner(t testing.TB, store watermark.Store, auth []crypt.PublicKey) (*signer.Signer, *metrics.Metrics, *slog.Logger) {
	if store == nil {
		store = wmmem.NewStore()
	}
	v := vaultmem.NewFromKeys("mem", mustKey(t, tv.K1SK), mustKey(t, tv.K2SK), mustKey(t, tv.K4SK),
		mustKey(t, tv.K5SK), mustKey(t, tv.K6SK), mustKey(t, tv.K7SK), mustKey(t, tv.K8SK), octezTz5())
	pols := map[string]*policy.Policy{
		tv.K1PKH: mustPolicy(t, tv.K1PKH, "allow: {block: , preattestation: , attestation: , generic: [transaction, delegation]}"),
		tv.K2PKH: policy.Default(tv.K2PKH),
		tv.K4PKH: mustPolicy(t, tv.K4PKH, "authorized_keys: ["+tv.K3PK+"]\nallow: {generic: [transaction]}"),
		tv.K5PKH: mustPolicy(t, tv.K5PKH, "allow: {generic: [transaction]}"),
		tv.K6PKH: mustPolicy(t, tv.K6PKH, "allow: {generic: [transaction]}"),
		tv.K7PKH: mustPolicy(t, tv.K7PKH, "allow_proof_of_possession: true\nallow_proof_of_possession_for: ["+tv.K8PK+"]\nallow: {attestation: , preattestation: }"),
		tv.K8PKH: mustPolicy(t, tv.K8PKH, "allow: {attestation: }"),
		// octez's fixed tz5 key: generic operations only, as for every tz5 key.
		tv.OctezTz5PKH: mustPolicy(t, tv.OctezTz5PKH, "allow: {generic: [transaction, delegation]}"),
	}
	m := metrics.New("test")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := signer.New(context.Background(), signer.Config{Vaults: []vault.Vault{v}, Policies: pols, Store: store,
		AuthorizedKeys: auth, Observer: m, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	return s, m, log
}

func newEnv(t testing.TB, store watermark.Store, auth []crypt.PublicKey, maxBody int64) *env {
	if store == nil {
		store = wmmem.NewStore()
	}
	s, m, log := newEnvSigner(t, store, auth)
	srv := New(Config{MaxBodyBytes: maxBody}, s, m, log)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return &env{srv: hs, m: m, store: store}
}

func (e *env) post(t testing.TB, path, body string) (int, string) {
	resp, err := http.Post(e.srv.URL+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (e *env) get(t testing.TB, path string) (int, string) {
	resp, err := http.Get(e.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func errBody(msg string) string {
	b, _ := json.Marshal([]map[string]string{{"id": "failure", "kind": "temporary", "msg": msg}})
	return string(b) + "\n"
}

func TestSignAndErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil, 0)
	ph := tv.LoadPolicyHex()
	d := tv.LoadDerived()
	q := func(h string) string { return `"` + h + `"` }
	k1 := "/keys/" + tv.K1PKH
	cases := []struct {
		name, method, path, body string
		status                   int
		want                     string // exact body, or "~substring"
	}{
		{"get key", "GET", "/keys/" + tv.K1PKH, "", 200, `{"public_key":"` + tv.K1PK + `"}` + "\n"},
		{"get key of a vault key not in policy", "GET", "/keys/" + tv.K3PKH, "", 404, errBody("this key not found in any vault")},
		{"get key bad pkh", "GET", "/keys/tz1nope", "", 400, "~invalid public key hash"},
		{"sign generic (known answer)", "POST", k1, q(ph["generic ok"]), 200, `{"signature":"` + d.UnitSigs["generic ok"] + `"}` + "\n"},
		{"sign upper-case hex", "POST", k1, q(strings.ToUpper(ph["transaction ok"])), 200, `{"signature":"` + d.UnitSigs["transaction ok"] + `"}` + "\n"},
		{"E5 empty body", "POST", k1, "", 400, errBody("unexpected end of JSON input")},
		{"E5 raw byte", "POST", k1, "\x03", 400, errBody(`invalid character '\x03' looking for beginning of value`)},
		{"E5 bad hex", "POST", k1, `"03ZZZZ"`, 400, errBody("encoding/hex: invalid byte: U+005A 'Z'")},
		{"odd hex", "POST", k1, `"031"`, 400, errBody("encoding/hex: odd length hex string")},
		{"not a string", "POST", k1, `{"a":1}`, 400, "~cannot unmarshal"},
		{"deep JSON", "POST", k1, strings.Repeat("[", 10000) + strings.Repeat("]", 10000), 400, "~"},
		{"invalid UTF-8", "POST", k1, "\"\xff\xfe03\"", 400, "~encoding/hex"},
		{"two JSON values", "POST", k1, `"03" "03"`, 400, "~invalid character"},
		{"NUL in hex", "POST", k1, `"03\u0000"`, 400, "~encoding/hex"},
		{"N3 short generic", "POST", k1, `"03123453"`, 400, "~generic"},
		{"legacy magic", "POST", k1, q("02ed9d217c1eb156f3fd57a942ee8d53781c849220309d5d2928c64672fd1c87359174e4360000001035"), 400, "~legacy"},
		{"unknown magic", "POST", k1, `"07aa"`, 400, errBody("unknown magic byte 0x07")},
		{"N2 not listed", "POST", "/keys/" + tv.K3PKH, q(ph["generic ok"]), 403, errBody(tv.K3PKH + " is not listed in config")},
		{"not in vault", "POST", "/keys/tz1Ke2h7sDdakHJQh8WX4Z372du1KChsksyU", q(ph["generic ok"]), 403, "~is not listed"},
		{"policy op", "POST", k1, q(ph["origination ok"]), 403, errBody("operation `origination' is not allowed")},
		{"policy kind", "POST", k1, q(d.Pack), 403, errBody("request kind `pack' is not allowed")},
		{"authorized_keys empty", "GET", "/authorized_keys", "", 200, "{}\n"},
		{"PoP", "GET", "/bls_prove_possession/" + tv.K7PKH, "", 200, `{"bls_prove_possession":"` + d.BLS.PoP + `"}` + "\n"},
		{"PoP over its own key (bls_pk)", "GET", "/bls_prove_possession/" + tv.K7PKH + "?bls_pk=" + tv.K7PK, "", 200, `{"bls_prove_possession":"` + d.BLS.PoP + `"}` + "\n"},
		{"PoP bls_pk not BLS", "GET", "/bls_prove_possession/" + tv.K7PKH + "?bls_pk=" + tv.K1PK, "", 400, errBody("bls_pk: not a BLS public key (BLpk…)")},
		{"PoP not allowed", "GET", "/bls_prove_possession/" + tv.K8PKH, "", 400, errBody("proof of possession is not allowed")},
		{"PoP unsupported", "GET", "/bls_prove_possession/" + tv.K1PKH, "", 400, errBody("proof of possession is not supported")},
		{"PoP not listed", "GET", "/bls_prove_possession/" + tv.K3PKH, "", 403, errBody(tv.K3PKH + " is not listed in config")},
		{"wrong method", "PUT", k1, "", 405, "~"},
		{"unknown route", "GET", "/nope", "", 404, "~404 page not found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, e.srv.URL+c.path, strings.NewReader(c.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, c.status, b)
			}
			if sub, ok := strings.CutPrefix(c.want, "~"); ok {
				if !strings.Contains(string(b), sub) {
					t.Fatalf("body %q does not contain %q", b, sub)
				}
			} else if string(b) != c.want {
				t.Fatalf("body %q, want %q", b, c.want)
			}
			if c.status != 405 && c.status != 404 || strings.HasPrefix(c.path, "/keys") && c.method == "GET" {
				if ct := resp.Header.Get("Content-Type"); c.status < 405 && ct != "application/json; charset=utf-8" {
					t.Fatalf("content type %q", ct)
				}
			}
		})
	}
}

func TestOtherCurvesVerify(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil, 0)
	msg := tv.LoadPolicyHex()["transaction ok"]
	for _, c := range []struct{ pkh, pk, prefix string }{{tv.K5PKH, tv.K5PK, "spsig1"}, {tv.K6PKH, tv.K6PK, "p2sig"}} {
		for i := 0; i < 20; i++ {
			status, body := e.post(t, "/keys/"+c.pkh, `"`+msg+`"`)
			if status != 200 {
				t.Fatalf("%d %s", status, body)
			}
			var r struct{ Signature string }
			_ = json.Unmarshal([]byte(body), &r)
			if !strings.HasPrefix(r.Signature, c.prefix) {
				t.Fatalf("signature %s, want prefix %s", r.Signature, c.prefix)
			}
			sig, err := tezos.ParseSignature(r.Signature)
			if err != nil {
				t.Fatal(err)
			}
			pub, _ := tezos.ParsePublicKey(c.pk)
			if !tezos.Verify(pub, sig, tv.Hex(msg), 2) || !tezos.IsLowS(sig) {
				t.Fatalf("%s: signature does not verify or is high-S", c.pkh)
			}
		}
	}
}

func TestBLSSignVersions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil, 0)
	d := tv.LoadDerived()
	payload := d.DerivedPayloads["bls_attestation_tag41"]
	status, body := e.post(t, "/keys/"+tv.K7PKH, `"`+payload+`"`)
	if status != 200 || !strings.Contains(body, d.BLS.Sigs[0].V2) {
		t.Fatalf("v2: %d %s", status, body)
	}
	// The same bytes with another ciphersuite would be a second, different signature: refused,
	// and the stored one is still served.
	status, body = e.post(t, "/keys/"+tv.K7PKH+"?version=1", `"`+payload+`"`)
	if status != 409 {
		t.Fatalf("v1 after v2 on the same bytes: %d %s", status, body)
	}
	if status, body = e.post(t, "/keys/"+tv.K7PKH, `"`+payload+`"`); status != 200 || !strings.Contains(body, d.BLS.Sigs[0].V2) {
		t.Fatalf("v2 again: %d %s", status, body)
	}
	e = newEnv(t, nil, nil, 0)
	status, body = e.post(t, "/keys/"+tv.K7PKH+"?version=1", `"`+payload+`"`)
	if status != 200 || !strings.Contains(body, d.BLS.Sigs[0].V1) {
		t.Fatalf("v1: %d %s", status, body)
	}
	e = newEnv(t, nil, nil, 0)
	status, body = e.post(t, "/keys/"+tv.K7PKH+"?version=0", `"`+payload+`"`)
	if status != 400 || body != errBody("signing version 0 is not supported for BLS keys") {
		t.Fatalf("v0: %d %s", status, body)
	}
}

// TestVersionParameter: ?version= takes exactly 0, 1, 2 or 3, and absent means 3; anything else
// is a 400 naming the accepted values, whatever the key. Each answer is checked whole: tz1
// (Ed25519) signs the same bytes for every version; tz4 signs with the augmented ciphersuite for
// 1, the proof-of-possession one for 2, 3 and absent, and refuses 0; tz5 signs with 3 and
// absent only (its signatures are randomized: the body must be {"signature":"mdsig…"} with a
// signature that circl verifies), and refuses 0, 1 and 2. Every case runs on a fresh signer, so
// that no watermark of an earlier case answers.
func TestVersionParameter(t *testing.T) {
	t.Parallel()
	d := tv.LoadDerived()
	q := func(h string) string { return `"` + h + `"` }
	sig := func(s string) string { return `{"signature":"` + s + `"}` + "\n" }
	invalid := func(what string) string {
		return errBody("invalid signature version " + what + ": version must be 0, 1, 2 or 3 (3, the latest, when absent)")
	}
	tz1Msg, tz1Sig := q(tv.LoadPolicyHex()["generic ok"]), sig(d.UnitSigs["generic ok"])
	tz5 := tv.OctezTz5PKH
	tz5Refused := func(v string) string {
		return errBody("tz5 (ML-DSA-44) keys sign only with signing version 3, not with version " + v)
	}
	tz4Msg := q(d.DerivedPayloads["bls_attestation_tag41"])
	v1, v2 := sig(d.BLS.Sigs[0].V1), sig(d.BLS.Sigs[0].V2)
	cases := []struct {
		pkh, query, body string
		status           int
		want             string
	}{
		{tv.K1PKH, "", tz1Msg, 200, tz1Sig},
		{tv.K1PKH, "?version=0", tz1Msg, 200, tz1Sig},
		{tv.K1PKH, "?version=1", tz1Msg, 200, tz1Sig},
		{tv.K1PKH, "?version=2", tz1Msg, 200, tz1Sig},
		{tv.K1PKH, "?version=3", tz1Msg, 200, tz1Sig},
		{tv.K1PKH, "?version=4", tz1Msg, 400, invalid(`"4"`)},
		{tv.K1PKH, "?version=x", tz1Msg, 400, invalid(`"x"`)},
		{tv.K1PKH, "?version=-1", tz1Msg, 400, invalid(`"-1"`)},
		{tv.K1PKH, "?version=02", tz1Msg, 400, invalid(`"02"`)},
		{tv.K1PKH, "?version=", tz1Msg, 400, invalid(`""`)},
		{tv.K1PKH, "?version=" + strings.Repeat("9", 40), tz1Msg, 400, invalid(`"9999999999999999…"`)},
		{tv.K1PKH, "?version=3&version=3", tz1Msg, 400, invalid("the version parameter is given more than once")},
		// The version is checked before the body is read.
		{tv.K1PKH, "?version=4", `"zz"`, 400, invalid(`"4"`)},
		{tv.K7PKH, "", tz4Msg, 200, v2},
		{tv.K7PKH, "?version=0", tz4Msg, 400, errBody("signing version 0 is not supported for BLS keys")},
		{tv.K7PKH, "?version=1", tz4Msg, 200, v1},
		{tv.K7PKH, "?version=2", tz4Msg, 200, v2},
		{tv.K7PKH, "?version=3", tz4Msg, 200, v2},
		{tv.K7PKH, "?version=4", tz4Msg, 400, invalid(`"4"`)},
		{tv.K7PKH, "?version=x", tz4Msg, 400, invalid(`"x"`)},
		{tv.K7PKH, "?version=-1", tz4Msg, 400, invalid(`"-1"`)},
		{tz5, "", tz1Msg, 200, tz5Signed},
		{tz5, "?version=0", tz1Msg, 400, tz5Refused("0")},
		{tz5, "?version=1", tz1Msg, 400, tz5Refused("1")},
		{tz5, "?version=2", tz1Msg, 400, tz5Refused("2")},
		{tz5, "?version=3", tz1Msg, 200, tz5Signed},
		{tz5, "?version=4", tz1Msg, 400, invalid(`"4"`)},
		{tz5, "?version=x", tz1Msg, 400, invalid(`"x"`)},
		{tz5, "?version=-1", tz1Msg, 400, invalid(`"-1"`)},
	}
	for _, c := range cases {
		t.Run(c.pkh[:3]+c.query, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil, nil, 0)
			status, body := e.post(t, "/keys/"+c.pkh+c.query, c.body)
			if c.want == tz5Signed && status == 200 {
				checkTz5Signature(t, body, tv.LoadPolicyHex()["generic ok"])
			} else if status != c.status || body != c.want {
				t.Fatalf("%d %q, want %d %q", status, body, c.status, c.want)
			}
		})
	}
}

// TestBLSVersions2And3AreOneSignature: versions 2 and 3 are one ciphersuite, so the same bytes
// asked with the other one get the stored signature (a baker moving from octez v24 to v25), while
// version 1 after either, or either after 1, is a second signature and is refused.
func TestBLSVersions2And3AreOneSignature(t *testing.T) {
	t.Parallel()
	d := tv.LoadDerived()
	msg := `"` + d.DerivedPayloads["bls_attestation_tag41"] + `"`
	v1 := `{"signature":"` + d.BLS.Sigs[0].V1 + `"}` + "\n"
	v2 := `{"signature":"` + d.BLS.Sigs[0].V2 + `"}` + "\n"
	refused := errBody("watermark validation failed")
	for _, seq := range [][]struct {
		query  string
		status int
		want   string
	}{
		{{"?version=2", 200, v2}, {"?version=3", 200, v2}, {"", 200, v2}, {"?version=1", 409, refused}, {"?version=2", 200, v2}},
		{{"?version=3", 200, v2}, {"?version=2", 200, v2}, {"?version=1", 409, refused}},
		{{"?version=1", 200, v1}, {"?version=1", 200, v1}, {"?version=2", 409, refused}, {"?version=3", 409, refused}, {"", 409, refused}},
	} {
		e := newEnv(t, nil, nil, 0)
		for i, step := range seq {
			if status, body := e.post(t, "/keys/"+tv.K7PKH+step.query, msg); status != step.status || body != step.want {
				t.Fatalf("step %d (%s after %v): %d %q, want %d %q", i, step.query, seq[:i], status, body, step.status, step.want)
			}
		}
	}
}

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil, 1024)
	status, body := e.post(t, "/keys/"+tv.K1PKH, `"`+strings.Repeat("00", 1024)+`"`)
	if status != 413 || !strings.Contains(body, "larger than 1024") {
		t.Fatalf("%d %s", status, body)
	}
	e2 := newEnv(t, nil, nil, 0) // default 64 KiB
	status, _ = e2.post(t, "/keys/"+tv.K1PKH, `"`+strings.Repeat("00", 1<<20)+`"`)
	if status != 413 {
		t.Fatalf("1 MiB body: %d", status)
	}
}

func TestWatermarkOverHTTP(t *testing.T) {
	t.Parallel()
	d := tv.LoadDerived()
	store, err := wmfile.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	e := newEnv(t, store, nil, 0)
	k2 := "/keys/" + tv.K2PKH
	sign := func(name string) (int, string) { return e.post(t, k2, `"`+d.W[name]+`"`) }
	// W1, W3 and W7 of the reference integration suite, in one sequence.
	for _, step := range []struct {
		name   string
		status int
	}{{"A1", 200}, {"A2", 409}, {"A1", 200}, {"B1", 200}, {"B2", 409}, {"A1", 409}, {"B1", 200}, {"C1", 200}, {"C2", 200}, {"C3", 200}, {"B1", 409}} {
		status, body := sign(step.name)
		if status != step.status {
			t.Fatalf("%s: %d %s, want %d", step.name, status, body, step.status)
		}
		if status == 200 && !strings.Contains(body, d.BakerSigs[step.name]) {
			t.Fatalf("%s: signature %s, want %s", step.name, body, d.BakerSigs[step.name])
		}
		if status == 409 && body != errBody("watermark validation failed") {
			t.Fatalf("409 body %q", body)
		}
	}
	// Tag 41 and tag 23 at C3's level and round: both share C3's attestation watermark.
	// (K2's default policy does not allow attestation_with_dal, so that one is refused by policy first.)
	for name, want := range map[string]int{"bls_attestation_tag41": 409, "bls_preattestation_tag40": 409, "attestation_with_dal_tag23": 403} {
		if status, body := e.post(t, k2, `"`+d.DerivedPayloads[name]+`"`); status != want {
			t.Fatalf("%s: %d %s, want %d", name, status, body, want)
		}
	}
}

func TestConcurrentConflictingRequests(t *testing.T) {
	t.Parallel()
	d := tv.LoadDerived()
	for _, backend := range []string{"mem", "file"} {
		t.Run(backend, func(t *testing.T) {
			var store watermark.Store = wmmem.NewStore()
			if backend == "file" {
				fs, err := wmfile.Open(t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { fs.Close() })
				store = fs
			}
			e := newEnv(t, store, nil, 0)
			// W9: 5×A1 + 5×A2 concurrently → exactly 5 succeed, all with the same payload's signature.
			var mu sync.Mutex
			codes := map[int]int{}
			sigs := map[string]int{}
			var wg sync.WaitGroup
			for i := 0; i < 10; i++ {
				name := []string{"A1", "A2"}[i%2]
				wg.Add(1)
				go func() {
					defer wg.Done()
					status, body := e.post(t, "/keys/"+tv.K2PKH, `"`+d.W[name]+`"`)
					mu.Lock()
					defer mu.Unlock()
					codes[status]++
					if status == 200 {
						sigs[body]++
					}
				}()
			}
			wg.Wait()
			if codes[200] != 5 || codes[409] != 5 || len(sigs) != 1 {
				t.Fatalf("codes %v, distinct signatures %d", codes, len(sigs))
			}
		})
	}
}

func TestAuthorizedKeys(t *testing.T) {
	t.Parallel()
	d := tv.LoadDerived()
	k3, _ := tezos.ParsePublicKey(tv.K3PK)
	k1pub, _ := tezos.ParsePublicKey(tv.K1PK)
	e := newEnv(t, nil, []crypt.PublicKey{k3, k1pub}, 0)
	path := "/keys/" + tv.K4PKH
	body := `"` + d.Auth.Msg + `"`
	// A2: the exact signature of K3 over 04 01 00 ‖ hash(K4) ‖ message.
	if status, b := e.post(t, path+"?authentication="+d.Auth.Sig, body); status != 200 {
		t.Fatalf("authorized: %d %s", status, b)
	}
	if status, b := e.post(t, path, body); status != 401 || b != errBody("missing authentication signature field") {
		t.Fatalf("missing: %d %s", status, b)
	}
	// Signed by K1: server-authorized but not in K4's per-key list.
	k1 := mustKey(t, tv.K1SK)
	pkh, _ := tezos.ParsePublicKeyHash(tv.K4PKH)
	sig, _ := k1.Sign(tezos.AuthenticatedBytes(pkh, tv.Hex(d.Auth.Msg)))
	if status, b := e.post(t, path+"?authentication="+sig.String(), body); status != 403 || b != errBody("client `"+tv.K1PKH+"' is not allowed") {
		t.Fatalf("other client: %d %s", status, b)
	}
	// Signed by an unknown key.
	k5 := mustKey(t, tv.K5SK)
	sig, _ = k5.Sign(tezos.AuthenticatedBytes(pkh, tv.Hex(d.Auth.Msg)))
	if status, b := e.post(t, path+"?authentication="+sig.String(), body); status != 403 || b != errBody("invalid authentication signature") {
		t.Fatalf("unknown key: %d %s", status, b)
	}
	if status, b := e.post(t, path+"?authentication=edsigNOPE", body); status != 400 {
		t.Fatalf("malformed: %d %s", status, b)
	}
	if status, b := e.get(t, "/authorized_keys"); status != 200 || b != fmt.Sprintf(`{"authorized_keys":["%s","%s"]}`+"\n", tv.K3PKH, tv.K1PKH) {
		t.Fatalf("list: %d %s", status, b)
	}
	// Proof of possession with authentication over an empty message (A2 auth_pop).
	if status, b := e.get(t, "/bls_prove_possession/"+tv.K7PKH+"?authentication="+d.AuthPop.Sig); status != 200 {
		t.Fatalf("PoP with auth: %d %s", status, b)
	}
	if status, _ := e.get(t, "/bls_prove_possession/"+tv.K7PKH); status != 401 {
		t.Fatalf("PoP without auth: %d", status)
	}
}

// TestPossessionOverAnotherKey: with bls_pk, the key signs the other public key with the proof
// tag (octez's override, used by threshold keys) when its policy lists that key in
// allow_proof_of_possession_for; the proof verifies for that key only. Over a key not listed
// (what a rogue-key attack needs) it is 403, and a bls_pk that does not parse is 400.
func TestPossessionOverAnotherKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil, 0)
	other := mustKey(t, tv.K8SK)
	status, body := e.get(t, "/bls_prove_possession/"+tv.K7PKH+"?bls_pk="+other.Public().String())
	if status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	var out struct {
		Proof string `json:"bls_prove_possession"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatal(err)
	}
	proof, err := tezos.ParseSignature(out.Proof)
	if err != nil {
		t.Fatal(err)
	}
	k7 := mustKey(t, tv.K7SK).Public()
	if !tezos.VerifyPossessionOver(k7, other.Public(), proof) || tezos.VerifyPossession(k7, proof) {
		t.Fatal("the proof is not K7's proof over the other key")
	}
	if status, body := e.get(t, "/bls_prove_possession/"+tv.K7PKH+"?bls_pk=BLpkNOTAKEY"); status != 400 || !strings.Contains(body, "bls_pk:") {
		t.Fatalf("garbage bls_pk: %d %s", status, body)
	}
	unlisted, _ := tezos.GenerateKey(tezos.BLS)
	status, body = e.get(t, "/bls_prove_possession/"+tv.K7PKH+"?bls_pk="+unlisted.Public().String())
	if status != 403 || !strings.Contains(body, "allow_proof_of_possession_for") || strings.Contains(body, "BLsig") {
		t.Fatalf("proof over an unlisted key: %d %s", status, body)
	}
}

// TestKnownKeys: GET /known_keys answers the listed keys when allowed, in the config's order, and
// 404 otherwise, as octez-signer with and without --allow-list-known-keys.
func TestKnownKeys(t *testing.T) {
	t.Parallel()
	s, m, log := newEnvSigner(t, nil, nil)
	for _, c := range []struct {
		known  []string
		status int
		body   string
	}{
		{nil, 404, errBody("listing the known keys is not allowed (server.allow_list_known_keys)")},
		{[]string{tv.K7PKH, tv.K1PKH}, 200, `{"known_keys":["` + tv.K7PKH + `","` + tv.K1PKH + `"]}` + "\n"},
		{[]string{}, 200, `{"known_keys":[]}` + "\n"},
	} {
		hs := httptest.NewServer(New(Config{Live: Live{KnownKeys: c.known}}, s, m, log).Handler())
		resp, err := http.Get(hs.URL + "/known_keys")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		hs.Close()
		if resp.StatusCode != c.status || string(b) != c.body {
			t.Errorf("known %v: %d %s, want %d %s", c.known, resp.StatusCode, b, c.status, c.body)
		}
	}
}
