package azuretest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault/remote/remotetest"
)

// Azure is a fake of the Azure Key Vault keys REST API: GET {vault}/keys (paged),
// GET {vault}/keys/{name}[/{version}] and POST {vault}/keys/{name}/{version}/sign. Every request
// needs ?api-version= and "Authorization: Bearer <Token>"; without it the answer is 401 with the
// WWW-Authenticate challenge that Key Vault clients use to find the token's scope and tenant.
type Azure struct {
	remotetest.Faults
	Token  string
	Tenant string
	// URL is the vault's base URL, set by Start (or by the caller when serving Handler itself).
	URL string

	mu    sync.Mutex
	names []string
	keys  map[string]*azureKey
}

type azureKey struct {
	version  string
	kty, crv string
	enabled  bool
	key      *remotetest.Key // nil for key types the fake cannot sign with
}

// New returns a fake that accepts the bearer token.
func New(token string) *Azure {
	return &Azure{Token: token, Tenant: "00000000-0000-0000-0000-00000000cafe", keys: map[string]*azureKey{}}
}

// Start serves the fake over HTTPS on a loopback port and sets URL; cert.PEM is its CA.
func (a *Azure) Start() (cert *remotetest.Cert, stop func()) {
	srv, cert := remotetest.ServeTLS(a)
	a.URL = srv.URL
	return cert, srv.Close
}

// AddKey creates an enabled EC-HSM key on curve (p256 or secp256k1) and returns it.
func (a *Azure) AddKey(name string, c tezos.Curve) *remotetest.Key {
	k := remotetest.NewKey(c)
	crv := map[tezos.Curve]string{tezos.P256: "P-256", tezos.Secp256k1: "P-256K"}[c]
	a.add(name, &azureKey{kty: "EC-HSM", crv: crv, enabled: true, key: k})
	return k
}

// AddOther creates a key the signer cannot use (kty "RSA", or "EC" with crv "P-384"), or a
// disabled P-256 key when kty is "disabled".
func (a *Azure) AddOther(name, kty, crv string) {
	if kty == "disabled" {
		a.add(name, &azureKey{kty: "EC", crv: "P-256", key: remotetest.NewKey(tezos.P256)})
		return
	}
	a.add(name, &azureKey{kty: kty, crv: crv, enabled: true})
}

func (a *Azure) add(name string, k *azureKey) {
	a.mu.Lock()
	defer a.mu.Unlock()
	k.version = fmt.Sprintf("%032x", len(a.names)+1)
	a.names = append(a.names, name)
	a.keys[name] = k
}

type azureError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func azureFail(w http.ResponseWriter, status int, code, msg string) {
	var e azureError
	e.Error.Code, e.Error.Message = code, msg
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(e)
}

func azureReply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(v)
}

var b64url = base64.RawURLEncoding

// ServeHTTP implements http.Handler.
func (a *Azure) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+a.Token {
		msg := "AKV10000: Request is missing a Bearer or PoP token."
		if r.Header.Get("Authorization") != "" {
			msg = "AKV10032: Invalid issuer or token."
		}
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization="https://login.microsoftonline.com/%s", resource="https://vault.azure.net"`, a.Tenant))
		azureFail(w, http.StatusUnauthorized, "Unauthorized", msg)
		return
	}
	if r.URL.Query().Get("api-version") == "" {
		azureFail(w, http.StatusBadRequest, "BadParameter", "The 'api-version' query parameter is missing.")
		return
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if parts[len(parts)-1] == "" { // GET /keys/{name}/ asks for the latest version
		parts = parts[:len(parts)-1]
	}
	switch {
	case r.Method == http.MethodGet && len(parts) == 1 && parts[0] == "keys":
		a.Record("list")
		if a.ListFails() {
			azureFail(w, http.StatusTooManyRequests, "Throttled", "Request was not processed because too many requests were received.")
			return
		}
		a.list(w, r)
	case r.Method == http.MethodGet && len(parts) >= 2 && len(parts) <= 3 && parts[0] == "keys":
		a.Record("get")
		a.get(w, parts[1:])
	case r.Method == http.MethodPost && len(parts) == 4 && parts[0] == "keys" && parts[3] == "sign":
		a.sign(w, r, parts[1], parts[2])
	default:
		azureFail(w, http.StatusBadRequest, "BadParameter", "The request URI or method is not supported by the fake: "+r.Method+" "+r.URL.Path)
	}
}

func (a *Azure) list(w http.ResponseWriter, r *http.Request) {
	size := 2 // small pages exercise the client's paging
	if m := r.URL.Query().Get("maxresults"); m != "" {
		n, err := strconv.Atoi(m)
		if err != nil || n < 1 || n > 25 {
			azureFail(w, http.StatusBadRequest, "BadParameter", "maxresults must be between 1 and 25")
			return
		}
		size = n
	}
	start, _ := strconv.Atoi(r.URL.Query().Get("$skiptoken"))
	a.mu.Lock()
	defer a.mu.Unlock()
	start = min(max(start, 0), len(a.names))
	end := min(start+size, len(a.names))
	type item struct {
		KID        string         `json:"kid"`
		Attributes map[string]any `json:"attributes"`
		Managed    bool           `json:"managed,omitempty"`
	}
	resp := struct {
		Value    []item  `json:"value"`
		NextLink *string `json:"nextLink"`
	}{Value: []item{}}
	for _, n := range a.names[start:end] {
		resp.Value = append(resp.Value, item{KID: a.URL + "/keys/" + n, Attributes: attrs(a.keys[n])})
	}
	if end < len(a.names) {
		next := fmt.Sprintf("%s/keys?api-version=%s&maxresults=%d&$skiptoken=%d", a.URL, r.URL.Query().Get("api-version"), size, end)
		resp.NextLink = &next
	}
	azureReply(w, resp)
}

func attrs(k *azureKey) map[string]any {
	return map[string]any{"enabled": k.enabled, "created": 1700000000, "updated": 1700000000, "recoveryLevel": "Recoverable"}
}

// lookup finds name (and version, when not empty) or answers 404 as Key Vault does.
func (a *Azure) lookup(w http.ResponseWriter, name, version string) *azureKey {
	a.mu.Lock()
	k := a.keys[name]
	a.mu.Unlock()
	if k == nil || (version != "" && version != k.version) {
		id := name
		if version != "" {
			id += "/" + version
		}
		azureFail(w, http.StatusNotFound, "KeyNotFound", fmt.Sprintf("A key with (name/id) %s was not found in this key vault.", id))
		return nil
	}
	return k
}

func (a *Azure) get(w http.ResponseWriter, p []string) {
	version := ""
	if len(p) == 2 {
		version = p[1]
	}
	k := a.lookup(w, p[0], version)
	if k == nil {
		return
	}
	jwk := map[string]any{"kid": a.URL + "/keys/" + p[0] + "/" + k.version, "kty": k.kty, "key_ops": []string{"sign", "verify"}}
	if k.crv != "" {
		jwk["crv"] = k.crv
	}
	if k.key != nil {
		pub := k.key.ECDSAPublic()
		// secp256k1 has no encoding in crypto/ecdsa: the coordinates are read, never set.
		//lint:ignore SA1019 see above
		jwk["x"], jwk["y"] = b64url.EncodeToString(pub.X.FillBytes(make([]byte, 32))), b64url.EncodeToString(pub.Y.FillBytes(make([]byte, 32)))
	} else if k.kty == "RSA" {
		jwk["n"], jwk["e"] = b64url.EncodeToString(make([]byte, 256)), "AQAB"
	}
	azureReply(w, map[string]any{"key": jwk, "attributes": attrs(k)})
}

func (a *Azure) sign(w http.ResponseWriter, r *http.Request, name, version string) {
	if r.Header.Get("Content-Type") != "application/json" {
		azureFail(w, http.StatusBadRequest, "BadParameter", "Content-Type must be application/json")
		return
	}
	var body struct {
		Alg   string `json:"alg"`
		Value string `json:"value"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		azureFail(w, http.StatusBadRequest, "BadParameter", "Invalid request body: "+err.Error())
		return
	}
	// The body is read, so the server now notices a client that gives up.
	if a.SignFault(r.Context().Done()) {
		azureFail(w, http.StatusTooManyRequests, "Throttled", "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached")
		return
	}
	if r.Context().Err() != nil {
		return
	}
	k := a.lookup(w, name, version)
	if k == nil {
		return
	}
	if !k.enabled {
		azureFail(w, http.StatusForbidden, "Forbidden", "Operation sign is not allowed on a disabled key.")
		return
	}
	want := map[string]string{"P-256": "ES256", "P-256K": "ES256K"}[k.crv]
	if k.key == nil || body.Alg != want {
		azureFail(w, http.StatusBadRequest, "BadParameter", fmt.Sprintf("Invalid algorithm %q for a %s %s key.", body.Alg, k.kty, k.crv))
		return
	}
	digest, err := b64url.DecodeString(strings.TrimRight(body.Value, "="))
	if err != nil || len(digest) != 32 {
		azureFail(w, http.StatusBadRequest, "BadParameter", "value must be a base64url SHA-256 digest of 32 bytes.")
		return
	}
	azureReply(w, map[string]string{"kid": a.URL + "/keys/" + name + "/" + k.version, "value": b64url.EncodeToString(k.key.SignRaw(digest))})
}

// Disable disables a key.
func (a *Azure) Disable(name string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if k := a.keys[name]; k != nil {
		k.enabled = false
	}
}
