package server

import (
	"bytes"
	"crypto/ed25519"
	"net/http/httptest"
	"testing"

	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/tezos"
)

// FuzzDecodeMessage: decodeMessage's path without encoding/json gives what encoding/json gives:
// the same bytes, or an error for the same bodies (a bad request, with encoding/json's message).
func FuzzDecodeMessage(f *testing.F) {
	for _, s := range []string{`"03ab"`, `"03AB"`, `"0"`, `""`, `"`, `"\u0030\u0031"`, ` "00"`, `"00" `,
		`"0g"`, `"00"""`, `"0\""`, `null`, `"ab"x"cd"`, `"é0"`, "\"\xff0\"", `"0`, `0"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := decodeMessage(body)
		want, wantErr := decodeMessageJSON(body)
		if (err == nil) != (wantErr == nil) || !bytes.Equal(got, want) {
			t.Fatalf("%q: %x %v; through encoding/json %x %v", body, got, err, want, wantErr)
		}
		if err != nil && (err.Error() != wantErr.Error() || fault.KindOf(err) != fault.BadRequest) {
			t.Fatalf("%q: %v; through encoding/json %v", body, err, wantErr)
		}
	})
}

// TestWriteSignatureIsWriteJSON: the answer to a signing request has writeJSON's bytes, status and
// headers, for a signature of every base58 character.
func TestWriteSignatureIsWriteJSON(t *testing.T) {
	t.Parallel()
	sigs := []string{"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"}
	priv := ed25519.NewKeyFromSeed(make([]byte, 32))
	sigs = append(sigs, tezos.SignatureString(crypt.Ed25519Signature(ed25519.Sign(priv, []byte("x")))))
	for _, sig := range sigs {
		a, b := httptest.NewRecorder(), httptest.NewRecorder()
		writeSignature(a, sig)
		writeJSON(b, 200, map[string]string{"signature": sig})
		if a.Code != b.Code || a.Body.String() != b.Body.String() || a.Header().Get("Content-Type") != b.Header().Get("Content-Type") || len(a.Header()) != len(b.Header()) {
			t.Fatalf("%d %q %v; writeJSON %d %q %v", a.Code, a.Body, a.Header(), b.Code, b.Body, b.Header())
		}
	}
}
