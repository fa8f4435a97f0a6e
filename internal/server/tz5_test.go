package server

import (
	"regexp"
	"strings"
	"testing"

	"github.com/cloudflare/circl/sign/mldsa/mldsa44"
	"github.com/ecadlabs/gotez/v2/crypt"
	"golang.org/x/crypto/blake2b"

	tv "github.com/signatory-go/signatory/internal/testvectors"
	"github.com/signatory-go/signatory/internal/tezos"
)

// tz5Signed, as an expected body, stands for "a tz5 signature of the request", checked by
// checkTz5Signature: ML-DSA-44 signatures are randomized, so there is no body to compare with.
const tz5Signed = "<a tz5 signature that verifies>"

var tz5Body = regexp.MustCompile(`^\{"signature":"(mdsig[1-9A-HJ-NP-Za-km-z]+)"\}` + "\n$")

// checkTz5Signature checks a sign answer of the octez tz5 key over msgHex: exactly
// {"signature":"mdsig…"} and a newline, and a signature that verifies as octez verifies it, with
// circl directly (pure ML-DSA-44 over blake2b-256 of the bytes, empty context), and with
// tezos.Verify. It returns the signature.
func checkTz5Signature(t *testing.T, body, msgHex string) string {
	t.Helper()
	m := tz5Body.FindStringSubmatch(body)
	if m == nil || len(m[1]) != tezos.MLDSA44SignatureLength {
		t.Fatalf("body %.80q… is not a tz5 signature answer", body)
	}
	sig, err := tezos.ParseSignature(m[1])
	if err != nil {
		t.Fatal(err)
	}
	raw, ok := sig.(crypt.MLDSA44Signature)
	if !ok || len(raw) != mldsa44.SignatureSize {
		t.Fatalf("signature is a %T of %d bytes", sig, len(raw))
	}
	_, pkText := tv.OctezTz5()
	pub, err := tezos.ParsePublicKey(pkText)
	if err != nil {
		t.Fatal(err)
	}
	var pk mldsa44.PublicKey
	if err := pk.UnmarshalBinary(pub.(*tezos.MLDSA44PublicKey).Bytes()); err != nil {
		t.Fatal(err)
	}
	msg := tv.Hex(msgHex)
	d := blake2b.Sum256(msg)
	if !mldsa44.Verify(&pk, d[:], []byte{}, raw) {
		t.Fatal("circl: the signature does not verify over blake2b-256 of the bytes with an empty context")
	}
	if !tezos.Verify(pub, sig, msg, 3) || tezos.Verify(pub, sig, append(msg, 0), 3) {
		t.Fatal("tezos.Verify disagrees")
	}
	return m[1]
}

// TestTz5OverHTTP: octez's fixed tz5 key through the server: its public key; generic operations
// signed (randomized: two answers differ, both verify); block and consensus requests refused by
// its policy (the only one a tz5 key may have); no proof of possession.
func TestTz5OverHTTP(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil, 0)
	_, pk := tv.OctezTz5()
	path := "/keys/" + tv.OctezTz5PKH
	if status, body := e.get(t, path); status != 200 || body != `{"public_key":"`+pk+`"}`+"\n" {
		t.Fatalf("public key: %d %.80q", status, body)
	}
	ph := tv.LoadPolicyHex()
	seen := map[string]bool{}
	for _, name := range []string{"generic ok", "generic ok", "transaction ok"} {
		status, body := e.post(t, path+"?version=3", `"`+ph[name]+`"`)
		if status != 200 {
			t.Fatalf("%s: %d %s", name, status, body)
		}
		sig := checkTz5Signature(t, body, ph[name])
		if seen[sig] {
			t.Fatal("the same signature twice: signing is not randomized")
		}
		seen[sig] = true
	}
	d := tv.LoadDerived()
	for _, c := range []struct {
		name, method, path, body string
		status                   int
		want                     string
	}{
		{"attestation", "POST", path, `"` + d.DerivedPayloads["attestation_with_dal_tag23"] + `"`, 403, errBody("request kind `attestation_with_dal' is not allowed")},
		{"block", "POST", path, `"` + d.W["A1"] + `"`, 403, errBody("request kind `block' is not allowed")},
		{"preattestation", "POST", path, `"` + d.DerivedPayloads["bls_preattestation_tag40"] + `"`, 403, errBody("request kind `preattestation' is not allowed")},
		{"operation not allowed", "POST", path, `"` + ph["origination ok"] + `"`, 403, errBody("operation `origination' is not allowed")},
		{"proof of possession", "GET", "/bls_prove_possession/" + tv.OctezTz5PKH, "", 400, errBody("proof of possession is not supported")},
		{"mdpk as bls_pk", "GET", "/bls_prove_possession/" + tv.K7PKH + "?bls_pk=" + pk, "", 400, errBody("bls_pk: not a BLS public key (BLpk…)")},
	} {
		var status int
		var body string
		if c.method == "GET" {
			status, body = e.get(t, c.path)
		} else {
			status, body = e.post(t, c.path, c.body)
		}
		if status != c.status || body != c.want {
			t.Errorf("%s: %d %q, want %d %q", c.name, status, body, c.status, c.want)
		}
	}
}

// TestTz5Authentication: a tz5 key in server.authorized_keys authenticates requests with its
// mdsig over 0x04 0x01 ‖ pkh ‖ bytes; without one, a signature that long is refused before it
// is decoded.
func TestTz5Authentication(t *testing.T) {
	t.Parallel()
	client, err := tezos.GenerateKey(tezos.MLDSA44)
	if err != nil {
		t.Fatal(err)
	}
	msg := tv.LoadPolicyHex()["generic ok"]
	pkh, _ := tezos.ParsePublicKeyHash(tv.K1PKH)
	sig, err := client.Sign(tezos.AuthenticatedBytes(pkh, tv.Hex(msg)))
	if err != nil {
		t.Fatal(err)
	}
	auth := tezos.SignatureString(sig)
	want := `{"signature":"` + tv.LoadDerived().UnitSigs["generic ok"] + `"}` + "\n"
	e := newEnv(t, nil, []crypt.PublicKey{client.Public()}, 0)
	if status, body := e.post(t, "/keys/"+tv.K1PKH+"?version=3&authentication="+auth, `"`+msg+`"`); status != 200 || body != want {
		t.Fatalf("tz5 client: %d %s", status, body)
	}
	if status, body := e.get(t, "/authorized_keys"); status != 200 || body != `{"authorized_keys":["`+client.Public().Hash().String()+`"]}`+"\n" {
		t.Fatalf("authorized keys: %d %s", status, body)
	}
	if !strings.HasPrefix(client.Public().Hash().String(), "tz5") {
		t.Fatal("not a tz5 client")
	}
	k3, _ := tezos.ParsePublicKey(tv.K3PK)
	e = newEnv(t, nil, []crypt.PublicKey{k3}, 0)
	if status, body := e.post(t, "/keys/"+tv.K1PKH+"?authentication="+auth, `"`+msg+`"`); status != 400 ||
		body != errBody("invalid authentication signature: 3316 characters is too long (tz5 signatures only when a tz5 key is in server.authorized_keys)") {
		t.Fatalf("tz5 signature, no tz5 key authorized: %d %s", status, body)
	}
}
