package hashicorptest

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault/remote"
	"github.com/signatory-go/signatory/internal/vault/remote/remotetest"
)

// Vault is a fake of HashiCorp Vault's Transit secrets engine and AppRole login:
// LIST (or GET ?list=true) /v1/<mount>/keys, GET /v1/<mount>/keys/<name>,
// POST or PUT /v1/<mount>/sign/<name>, and POST or PUT /v1/auth/approle/login. Every call but
// the login needs X-Vault-Token with a valid token, or gets 403 "permission denied".
type Vault struct {
	remotetest.Faults
	Mount string // transit mount path, without slashes; default "transit"
	// RoleID and SecretID are the AppRole credentials accepted by the login.
	RoleID, SecretID string

	mu     sync.Mutex
	tokens map[string]bool
	keys   map[string]*transitKey
}

type transitKey struct {
	typ      string
	versions []*remotetest.Key // version n is versions[n-1]; nil keys for types the fake does not sign with
}

// New returns a fake whose transit engine is mounted at "transit" and that accepts token.
func New(token string) *Vault {
	return &Vault{Mount: "transit", tokens: map[string]bool{token: true}, keys: map[string]*transitKey{}}
}

// Start serves the fake over HTTPS on a loopback port; it returns the address (https://…), the
// certificate whose PEM a client must trust, and a function that stops the server.
func (v *Vault) Start() (url string, cert *remotetest.Cert, stop func()) {
	srv, cert := remotetest.ServeTLS(v)
	return srv.URL, cert, srv.Close
}

// transitCurves are the key types the fake signs with.
var transitCurves = map[string]tezos.Curve{"ed25519": tezos.Ed25519, "ecdsa-p256": tezos.P256}

// AddKey creates an ed25519 transit key and returns its first version.
func (v *Vault) AddKey(name string) *remotetest.Key { return v.AddKeyOfType(name, "ed25519") }

// AddKeyOfType creates a transit key of type "ed25519" or "ecdsa-p256" and returns its first
// version.
func (v *Vault) AddKeyOfType(name, typ string) *remotetest.Key {
	c, ok := transitCurves[typ]
	if !ok {
		panic("hashicorptest: the fake does not sign with transit keys of type " + typ)
	}
	k := remotetest.NewKey(c)
	v.mu.Lock()
	defer v.mu.Unlock()
	v.keys[name] = &transitKey{typ: typ, versions: []*remotetest.Key{k}}
	return k
}

// AddOther creates a transit key of a type the fake does not sign with (e.g. "ecdsa-p384",
// "aes256-gcm96").
func (v *Vault) AddOther(name, typ string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.keys[name] = &transitKey{typ: typ, versions: []*remotetest.Key{nil}}
}

// Rotate adds a version to an ed25519 or ecdsa-p256 key and returns it.
func (v *Vault) Rotate(name string) *remotetest.Key {
	v.mu.Lock()
	defer v.mu.Unlock()
	tk := v.keys[name]
	k := remotetest.NewKey(transitCurves[tk.typ])
	tk.versions = append(tk.versions, k)
	return k
}

// RevokeAll revokes every token (as when they expire); static tokens are revoked too.
func (v *Vault) RevokeAll() {
	v.mu.Lock()
	defer v.mu.Unlock()
	clear(v.tokens)
}

func vaultFail(w http.ResponseWriter, status int, errs ...string) {
	if errs == nil {
		errs = []string{}
	}
	vaultReply(w, status, map[string]any{"errors": errs})
}

func vaultReply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func vaultData(data any) map[string]any {
	return map[string]any{"request_id": "00000000-0000-0000-0000-000000000000", "lease_id": "", "renewable": false,
		"lease_duration": 0, "data": data, "wrap_info": nil, "warnings": nil, "auth": nil}
}

// ServeHTTP implements http.Handler.
func (v *Vault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if (r.Method == http.MethodPost || r.Method == http.MethodPut) && r.URL.Path == "/v1/auth/approle/login" {
		v.Record("login")
		v.login(w, r)
		return
	}
	v.mu.Lock()
	ok := v.tokens[r.Header.Get("X-Vault-Token")]
	v.mu.Unlock()
	if !ok {
		vaultFail(w, http.StatusForbidden, "permission denied")
		return
	}
	prefix := "/v1/" + v.Mount + "/"
	rest, found := strings.CutPrefix(r.URL.Path, prefix)
	list := r.Method == "LIST" || (r.Method == http.MethodGet && r.URL.Query().Get("list") == "true")
	switch {
	case !found:
		vaultFail(w, http.StatusNotFound, "no handler for route \""+strings.TrimPrefix(r.URL.Path, "/v1/")+"\". route entry not found.")
	case list && strings.TrimSuffix(rest, "/") == "keys":
		v.Record("list")
		v.list(w)
	case r.Method == http.MethodGet && strings.HasPrefix(rest, "keys/"):
		v.Record("read")
		v.read(w, strings.TrimPrefix(rest, "keys/"))
	case (r.Method == http.MethodPost || r.Method == http.MethodPut) && strings.HasPrefix(rest, "sign/"):
		v.sign(w, r, strings.TrimPrefix(rest, "sign/"))
	default:
		vaultFail(w, http.StatusMethodNotAllowed, "unsupported operation")
	}
}

func (v *Vault) login(w http.ResponseWriter, r *http.Request) {
	var body struct {
		RoleID   string `json:"role_id"`
		SecretID string `json:"secret_id"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		vaultFail(w, http.StatusBadRequest, "failed to parse JSON input: "+err.Error())
		return
	}
	if body.RoleID == "" {
		vaultFail(w, http.StatusBadRequest, "missing role_id")
		return
	}
	if v.RoleID == "" || body.RoleID != v.RoleID || body.SecretID != v.SecretID {
		vaultFail(w, http.StatusBadRequest, "invalid role or secret ID")
		return
	}
	b := make([]byte, 12)
	rand.Read(b)
	token := "hvs." + hex.EncodeToString(b)
	v.mu.Lock()
	v.tokens[token] = true
	v.mu.Unlock()
	reply := vaultData(nil)
	reply["auth"] = map[string]any{"client_token": token, "accessor": "acc", "policies": []string{"default", "signer"},
		"token_policies": []string{"default", "signer"}, "lease_duration": 3600, "renewable": true, "token_type": "service"}
	vaultReply(w, http.StatusOK, reply)
}

func (v *Vault) list(w http.ResponseWriter) {
	v.mu.Lock()
	names := make([]string, 0, len(v.keys))
	for n := range v.keys {
		names = append(names, n)
	}
	v.mu.Unlock()
	if len(names) == 0 {
		vaultFail(w, http.StatusNotFound)
		return
	}
	sort.Strings(names)
	vaultReply(w, http.StatusOK, vaultData(map[string]any{"keys": names}))
}

func (v *Vault) read(w http.ResponseWriter, name string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	k := v.keys[name]
	if k == nil {
		vaultFail(w, http.StatusNotFound)
		return
	}
	versions := map[string]any{}
	for i, key := range k.versions {
		ver := map[string]any{"creation_time": "2026-01-01T00:00:00Z", "name": k.typ}
		switch {
		case key != nil && key.Curve == tezos.Ed25519:
			ver["public_key"] = base64.StdEncoding.EncodeToString([]byte(key.Ed25519Public()))
		case key != nil: // ECDSA: a PEM SubjectPublicKeyInfo, and the curve as the version's name
			der, err := x509.MarshalPKIXPublicKey(key.ECDSAPublic())
			if err != nil {
				panic(err)
			}
			ver["public_key"] = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
			ver["name"] = "P-256"
		case strings.HasPrefix(k.typ, "ecdsa"):
			ver["public_key"] = "-----BEGIN PUBLIC KEY-----\n...\n-----END PUBLIC KEY-----\n"
		default:
			versions[strconv.Itoa(i+1)] = 1700000000 // symmetric keys list creation times only
			continue
		}
		versions[strconv.Itoa(i+1)] = ver
	}
	vaultReply(w, http.StatusOK, vaultData(map[string]any{
		"name": name, "type": k.typ, "keys": versions, "latest_version": len(k.versions),
		"min_available_version": 0, "min_decryption_version": 1, "min_encryption_version": 0,
		"supports_signing": k.typ == "ed25519" || strings.HasPrefix(k.typ, "ecdsa"),
		"deletion_allowed": false, "exportable": false, "derived": false,
	}))
}

func (v *Vault) sign(w http.ResponseWriter, r *http.Request, name string) {
	var body map[string]json.RawMessage
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		vaultFail(w, http.StatusBadRequest, "failed to parse JSON input: "+err.Error())
		return
	}
	// The body is read, so the server now notices a client that gives up.
	if v.SignFault(r.Context().Done()) {
		vaultFail(w, http.StatusTooManyRequests, fmt.Sprintf("request path %q: rate limit quota exceeded", v.Mount+"/sign/"+name))
		return
	}
	if r.Context().Err() != nil {
		return
	}
	known := map[string]bool{"input": true, "key_version": true, "prehashed": true, "hash_algorithm": true, "marshaling_algorithm": true}
	for f := range body {
		if !known[f] {
			vaultFail(w, http.StatusBadRequest, "the fake does not know the sign parameter "+strconv.Quote(f))
			return
		}
	}
	var input, hashAlg, marshaling string
	var version int
	var prehashed bool
	if json.Unmarshal(body["input"], &input) != nil || input == "" {
		vaultFail(w, http.StatusBadRequest, "missing input to process")
		return
	}
	msg, err := base64.StdEncoding.DecodeString(input)
	if err != nil {
		vaultFail(w, http.StatusBadRequest, "unable to decode input as base64: "+err.Error())
		return
	}
	if raw, ok := body["key_version"]; ok && json.Unmarshal(raw, &version) != nil {
		vaultFail(w, http.StatusBadRequest, "key_version must be an integer")
		return
	}
	for f, dst := range map[string]any{"prehashed": &prehashed, "hash_algorithm": &hashAlg, "marshaling_algorithm": &marshaling} {
		if raw, ok := body[f]; ok && json.Unmarshal(raw, dst) != nil {
			vaultFail(w, http.StatusBadRequest, "invalid value for "+f)
			return
		}
	}
	v.mu.Lock()
	k := v.keys[name]
	v.mu.Unlock()
	switch {
	case k == nil:
		vaultFail(w, http.StatusBadRequest, "signing key not found")
		return
	case transitCurves[k.typ] == "":
		vaultFail(w, http.StatusBadRequest, "the fake signs with ed25519 and ecdsa-p256 keys only")
		return
	case k.typ == "ed25519" && (prehashed || hashAlg != "" || marshaling != ""):
		// Tezos signs the digest as the message (pure Ed25519); Ed25519ph is not what it wants.
		vaultFail(w, http.StatusBadRequest, "the fake signs ed25519 input as is: prehashed must be false, and hash_algorithm and marshaling_algorithm absent")
		return
	case k.typ == "ecdsa-p256" && (!prehashed || hashAlg != "sha2-256" || len(msg) != 32):
		// The signer sends the blake2b digest, which must not be hashed again.
		vaultFail(w, http.StatusBadRequest, "the fake signs ecdsa-p256 digests only: prehashed must be true, hash_algorithm sha2-256, input 32 bytes")
		return
	case k.typ == "ecdsa-p256" && marshaling != "" && marshaling != "asn1":
		vaultFail(w, http.StatusBadRequest, "the fake only marshals ECDSA signatures as asn1")
		return
	case version > len(k.versions) || version < 0:
		vaultFail(w, http.StatusBadRequest, "requested version for signing is greater than the latest key version")
		return
	case version == 0:
		version = len(k.versions)
	}
	key := k.versions[version-1]
	var sig []byte
	if key.Curve == tezos.Ed25519 {
		sig = key.SignRaw(msg)
	} else {
		r, s := key.SignECDSA(msg)
		var err error
		if sig, err = remote.MarshalDER(r, s); err != nil {
			vaultFail(w, http.StatusInternalServerError, err.Error())
			return
		}
	}
	vaultReply(w, http.StatusOK, vaultData(map[string]any{
		"signature":   fmt.Sprintf("vault:v%d:%s", version, base64.StdEncoding.EncodeToString(sig)),
		"key_version": version,
	}))
}
