// Package threshold is the vault of a threshold tz4 key (driver "threshold"): the group key, whose
// signatures are combined from the partial signatures of member signers, each holding one Shamir
// share of the key in any vault that holds BLS keys (see docs/threshold.md). A member is an
// ordinary remote signer: this vault asks every member's POST /keys/<share> for the same bytes,
// verifies each partial against the member's share public key, combines the first t valid ones by
// Lagrange interpolation, and returns the result (which the signer verifies against the group key,
// as for every vault). Safety never depends on this coordinator: each member's own watermark
// refuses a second payload for a slot, and with t > n/2 two conflicting payloads would need a
// member to sign both.
package threshold

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	tz "github.com/ecadlabs/gotez/v2"
	"github.com/ecadlabs/gotez/v2/crypt"
	"gopkg.in/yaml.v3"

	"github.com/signatory-go/signatory/internal/blsthreshold"
	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/metrics"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
	"github.com/signatory-go/signatory/internal/yamlstrict"
)

// Driver is the driver name in the config.
const Driver = "threshold"

// DefaultTimeout bounds one signature: collecting the partials of the members.
const DefaultTimeout = 2 * time.Second

// Config is the vault's config section.
type Config struct {
	// PublicKey is the group key (BLpk…); its tz4 address is the baker's key.
	PublicKey string `yaml:"public_key"`
	// Threshold is the number of partial signatures combined (more than half of the members).
	Threshold int `yaml:"threshold"`
	// Timeout bounds each signature (default 2 s).
	Timeout yamlstrict.Duration `yaml:"timeout"`
	Members []Member            `yaml:"members"`
	// TLS configures the client side of HTTPS to the members.
	TLS *TLS `yaml:"tls"`
	// AuthenticationKey is the address of a key in one of this signer's other vaults: when set,
	// every request to a member carries ?authentication=, that key's signature over the request
	// (for members with server.authorized_keys).
	AuthenticationKey string `yaml:"authentication_key"`
}

// Member is one member signer.
type Member struct {
	Index int    `yaml:"index"` // the share's index, 1 … 255, as `signatory threshold split` printed it
	URL   string `yaml:"url"`   // the member's signing port, e.g. https://10.0.0.1:6732
	Key   string `yaml:"key"`   // the share's tz4 address on that member
}

// TLS names the files of the client side of TLS: ca_file verifies the members' certificates;
// cert_file and key_file present a client certificate.
type TLS struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Vault is a threshold vault.
type Vault struct {
	life    vault.Lifecycle
	name    string
	group   *crypt.BLSPublicKey
	t       int
	timeout time.Duration
	members []*member
	client  *http.Client
	key     *Key
	metrics *metrics.ThresholdMembers // nil: not exported

	authKey  string // authentication_key, or ""
	signWith func(ctx context.Context, pkh string, message []byte) (string, error)

	asks sync.WaitGroup // requests to members in flight, some past their gather's answer
}

type member struct {
	index int
	url   string // without a trailing slash
	pkh   string
	hash  tz.PublicKeyHash // pkh, parsed

	mu  sync.Mutex
	pub *crypt.BLSPublicKey // the share's public key, once read and checked
}

// New builds the vault from its config node. It makes no request: the members are read by List.
func New(ctx context.Context, name string, node *yaml.Node, env vault.Env) (vault.Vault, error) {
	var cfg Config
	if err := yamlstrict.Decode(node, &cfg); err != nil {
		return nil, fmt.Errorf("vault %s: %w", name, err)
	}
	v, err := Open(name, cfg, env)
	if err != nil {
		return nil, err
	}
	if env.Registerer != nil {
		if v.metrics, err = metrics.NewThresholdMembers(env.Registerer); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// Open checks the config and builds the vault; env.SignWith makes the authentication signatures
// when authentication_key is set.
func Open(name string, cfg Config, env vault.Env) (*Vault, error) {
	bad := func(format string, args ...any) (*Vault, error) {
		return nil, yamlstrict.Invalidf("vault %s: "+format, append([]any{name}, args...)...)
	}
	pub, err := tezos.ParsePublicKey(os.ExpandEnv(cfg.PublicKey))
	if err != nil {
		return bad("public_key: %v", err)
	}
	group, ok := pub.(*crypt.BLSPublicKey)
	if !ok {
		return bad("public_key must be a BLS (BLpk…) key, the group key of `signatory threshold split`")
	}
	n := len(cfg.Members)
	if n == 0 {
		return bad("no members")
	}
	if cfg.Threshold < 1 || cfg.Threshold > n || 2*cfg.Threshold <= n {
		return bad("threshold %d: it must be more than half of the %d members and at most %d: with half or fewer, two coordinators could each gather enough members for conflicting payloads",
			cfg.Threshold, n, n)
	}
	v := &Vault{name: name, group: group, t: cfg.Threshold, timeout: time.Duration(cfg.Timeout)}
	if cfg.AuthenticationKey != "" {
		h, err := tezos.ParsePublicKeyHash(cfg.AuthenticationKey)
		if err != nil {
			return bad("authentication_key %q is not a key address (tz1…, tz2…, tz3…, tz4…)", cfg.AuthenticationKey)
		}
		if env.SignWith == nil {
			return nil, fmt.Errorf("vault %s: authentication_key needs the signer's other vaults, which this command does not open", name)
		}
		v.authKey, v.signWith = h.String(), env.SignWith
	}
	if v.timeout <= 0 {
		v.timeout = DefaultTimeout
	}
	seenIndex, seenKey := map[int]bool{}, map[string]bool{}
	for i, m := range cfg.Members {
		if m.Index < 1 || m.Index > blsthreshold.MaxShares || seenIndex[m.Index] {
			return bad("members[%d]: index %d must be 1 … %d and distinct", i, m.Index, blsthreshold.MaxShares)
		}
		seenIndex[m.Index] = true
		u, err := url.Parse(os.ExpandEnv(m.URL))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("members[%d]: url %q is not an http(s) URL", i, m.URL)
		}
		h, err := tezos.ParsePublicKeyHash(m.Key)
		if err != nil || !strings.HasPrefix(h.String(), "tz4") {
			return bad("members[%d]: key %q is not a tz4 address", i, m.Key)
		}
		if seenKey[m.Key] {
			return bad("members[%d]: key %s is listed twice", i, m.Key)
		}
		seenKey[m.Key] = true
		v.members = append(v.members, &member{index: m.Index, url: strings.TrimRight(u.String(), "/"), pkh: m.Key, hash: h})
	}
	sort.Slice(v.members, func(a, b int) bool { return v.members[a].index < v.members[b].index })
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if cfg.TLS != nil {
		tc, err := tlsConfig(cfg.TLS)
		if err != nil {
			return bad("tls: %v", err)
		}
		tr.TLSClientConfig = tc
	}
	tr.MaxIdleConnsPerHost = 64
	v.client = &http.Client{Transport: tr}
	v.key = &Key{v: v}
	return v, nil
}

func tlsConfig(c *TLS) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(os.ExpandEnv(c.CAFile))
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s: no PEM certificate", c.CAFile)
		}
		tc.RootCAs = pool
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return nil, errors.New("cert_file and key_file go together")
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(os.ExpandEnv(c.CertFile), os.ExpandEnv(c.KeyFile))
		if err != nil {
			return nil, err
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Name implements vault.Vault.
func (v *Vault) Name() string { return v.name }

// Driver implements vault.Vault.
func (v *Vault) Driver() string { return Driver }

// Close implements vault.Vault.
// Close waits for the requests to members still in flight (each canceled once its gather has
// answered), so that their outcomes are counted and no goroutine outlives the vault.
func (v *Vault) Close() error {
	if v.life.MarkClosed() {
		v.asks.Wait()
		v.client.CloseIdleConnections()
	}
	return nil
}

// List implements vault.Vault: the group key, once the members reachable now have shown their
// share public keys and those keys interpolate to the group key (at least t must answer).
func (v *Vault) List(ctx context.Context) ([]vault.Key, error) {
	if err := v.life.Usable(ctx); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, v.timeout)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(v.members))
	for i, m := range v.members {
		wg.Go(func() { _, errs[i] = v.memberKey(ctx, m) })
	}
	wg.Wait()
	known := map[int]*crypt.BLSPublicKey{}
	var reasons []string
	for i, m := range v.members {
		if errs[i] != nil {
			reasons = append(reasons, errs[i].Error())
			continue
		}
		known[m.index] = m.pub
	}
	if len(known) < v.t {
		return nil, fmt.Errorf("threshold vault %s: %d of %d members answered, %d needed: %s", v.name, len(known), len(v.members), v.t, strings.Join(reasons, "; "))
	}
	if err := v.checkShares(known); err != nil {
		return nil, err
	}
	return []vault.Key{v.key}, nil
}

// checkShares checks that the share keys interpolate to the group key (blsthreshold.CheckShares), so
// that a member serving a wrong share is named.
func (v *Vault) checkShares(known map[int]*crypt.BLSPublicKey) error {
	err := blsthreshold.CheckShares(v.group, known, v.t)
	var m *blsthreshold.Mismatch
	if errors.As(err, &m) {
		return fmt.Errorf("threshold vault %s: the share of member %d (with members %v) does not interpolate to the group key %s: check the member's key and index",
			v.name, m.Index, m.With, v.group)
	}
	if err != nil {
		return fmt.Errorf("threshold vault %s: %w", v.name, err)
	}
	return nil
}

// memberKey returns member m's share public key, reading it once with GET /keys/<share>.
func (v *Vault) memberKey(ctx context.Context, m *member) (*crypt.BLSPublicKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pub != nil {
		return m.pub, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.url+"/keys/"+m.pkh, nil)
	if err != nil {
		return nil, err
	}
	var body struct {
		PublicKey string `json:"public_key"`
	}
	if status, msg, err := v.do(req, &body); err != nil {
		return nil, fmt.Errorf("member %d: %w", m.index, err)
	} else if status != http.StatusOK {
		return nil, fmt.Errorf("member %d: GET /keys/%s: %d %s", m.index, m.pkh, status, msg)
	}
	pub, err := tezos.ParsePublicKey(body.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("member %d: %w", m.index, err)
	}
	bls, ok := pub.(*crypt.BLSPublicKey)
	if !ok || pub.Hash().String() != m.pkh {
		return nil, fmt.Errorf("member %d: GET /keys/%s answered the key of %s", m.index, m.pkh, pub.Hash())
	}
	m.pub = bls
	return bls, nil
}

// do sends req and decodes a JSON answer into out when the status is 200; otherwise it returns
// the status and the member's message.
func (v *Vault) do(req *http.Request, out any) (int, string, error) {
	resp, err := v.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return 0, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, strings.TrimSpace(string(bytes.TrimSpace(data))), nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return 0, "", fmt.Errorf("%s answered %q: %w", req.URL.Path, data, err)
	}
	return resp.StatusCode, "", nil
}

// Ready implements vault.ReadinessChecker: at least t members answer GET /keys now.
func (v *Vault) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, v.timeout)
	defer cancel()
	var mu sync.Mutex
	up := 0
	var wg sync.WaitGroup
	for _, m := range v.members {
		wg.Go(func() {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.url+"/keys/"+m.pkh, nil)
			if err != nil {
				return
			}
			var body struct {
				PublicKey string `json:"public_key"`
			}
			if status, _, err := v.do(req, &body); err == nil && status == http.StatusOK {
				mu.Lock()
				up++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if up < v.t {
		return fmt.Errorf("%d of %d members reachable, %d needed", up, len(v.members), v.t)
	}
	return nil
}

// Key is the group key.
type Key struct{ v *Vault }

// PublicKey implements vault.Key.
func (k *Key) PublicKey() crypt.PublicKey { return k.v.group }

// ID implements vault.Key.
func (k *Key) ID() string { return fmt.Sprintf("threshold %d of %d", k.v.t, len(k.v.members)) }

// partial is one member's answer.
type partial struct {
	index  int
	sig    *crypt.BLSSignature
	status int // the member's HTTP status when it refused
	err    error
	public string // what a client may be told: no address, no member's own words
	local  bool   // the coordinator failed before asking (authentication_key)
	// notWaited: the outcome was decided before this member answered, and its request was cut.
	notWaited bool
}

// Sign implements vault.Key: the same bytes to every member at once; the first t partial
// signatures that verify against their share keys are combined.
func (k *Key) Sign(ctx context.Context, message []byte, digest *[32]byte, opts vault.SignOptions) (crypt.Signature, error) {
	v := k.v
	if err := v.life.Usable(ctx); err != nil {
		return nil, err
	}
	switch opts.Version {
	case 0:
		return nil, vault.ErrBLSVersion0
	case 1:
		return nil, fault.New(fault.BadRequest, "signing version 1 (the augmented BLS ciphersuite) cannot be made by a threshold key: each share would sign its own public key; use version 2 or 3")
	case 2, 3:
		// Versions 2 and 3 are one BLS ciphersuite (proof of possession). The members are asked
		// for version 2, which every signer that knows tz4 signing versions accepts (octez v23
		// and v24 refuse 3).
	default:
		return nil, fmt.Errorf("%w %d", vault.ErrUnknownVersion, opts.Version)
	}
	body, _ := json.Marshal(hex.EncodeToString(message))
	return v.gather(ctx, func(ctx context.Context, m *member) partial {
		auth, err := v.authentication(ctx, m, message)
		var req *http.Request
		if err == nil {
			req, err = http.NewRequestWithContext(ctx, http.MethodPost, m.url+"/keys/"+m.pkh+"?version=2"+auth, bytes.NewReader(body))
		}
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
		}
		return v.askMember(ctx, m, req, err, "signature", "partial signature",
			func(sig *crypt.BLSSignature, share *crypt.BLSPublicKey) bool {
				return tezos.Verify(share, sig, message, 2)
			})
	})
}

// authentication returns "&authentication=<sig>" for a request to member m over message (the
// payload, or nothing for a proof of possession) when authentication_key is set, else "".
func (v *Vault) authentication(ctx context.Context, m *member, message []byte) (string, error) {
	if v.authKey == "" {
		return "", nil
	}
	sig, err := v.signWith(ctx, v.authKey, tezos.AuthenticatedBytes(m.hash, message))
	if err != nil {
		return "", fmt.Errorf("authentication_key: %w", err)
	}
	return "&authentication=" + url.QueryEscape(sig), nil
}

// gather asks every member at once (ask), records each answer in the member metrics, and
// combines the first t valid partials; with fewer, it explains why (tooFew). It answers as soon
// as the outcome is decided: the members still working when t partials are in are not waited
// for, nor are they once too many have refused for t to be reached (a slow or frozen member
// never holds up an answer that cannot change).
func (v *Vault) gather(ctx context.Context, ask func(context.Context, *member) partial) (crypt.Signature, error) {
	ctx, cancel := context.WithTimeout(ctx, v.timeout)
	defer cancel()
	var decided atomic.Bool // set when this returns: a request cut short then was not waited for
	defer decided.Store(true)
	results := make(chan partial, len(v.members))
	for _, m := range v.members {
		v.asks.Go(func() {
			start := time.Now()
			p := ask(ctx, m)
			p.notWaited = p.sig == nil && ctx.Err() != nil && decided.Load()
			observe(v.metrics, v.name, p, time.Since(start))
			results <- p
		})
	}
	good := map[int]*crypt.BLSSignature{}
	answered := map[int]bool{}
	var refusals []partial
	for pending := len(v.members); pending > 0; pending-- {
		p := <-results
		answered[p.index] = true
		if p.err != nil || p.sig == nil {
			refusals = append(refusals, p)
			if len(good)+pending-1 < v.t {
				// t can no longer be reached: the members still working are named, not waited for.
				for _, m := range v.members {
					if !answered[m.index] {
						refusals = append(refusals, partial{index: m.index, err: fmt.Errorf("member %d: no answer yet", m.index),
							public: fmt.Sprintf("member %d not answered yet", m.index)})
					}
				}
				break
			}
			continue
		}
		good[p.index] = p.sig
		if len(good) == v.t {
			return blsthreshold.CombineSignatures(good)
		}
	}
	return nil, v.tooFew(len(good), refusals)
}

// askMember sends req (built with buildErr) to member m, reads the BLS signature under field of
// its JSON answer and checks it against m's share key with valid; what names it in messages.
func (v *Vault) askMember(ctx context.Context, m *member, req *http.Request, buildErr error, field, what string,
	valid func(sig *crypt.BLSSignature, share *crypt.BLSPublicKey) bool) partial {
	unreachable := fmt.Sprintf("member %d unreachable", m.index)
	share, err := v.memberKey(ctx, m)
	if err != nil {
		return partial{index: m.index, err: err, public: unreachable}
	}
	if buildErr != nil {
		return partial{index: m.index, err: fmt.Errorf("member %d: %w", m.index, buildErr), local: true,
			public: fmt.Sprintf("member %d not asked: this coordinator could not make the request (see its log)", m.index)}
	}
	var out map[string]any // other fields of the answer are ignored, as a struct decode would
	status, msg, err := v.do(req, &out)
	if err != nil {
		return partial{index: m.index, err: fmt.Errorf("member %d: %w", m.index, err), public: unreachable}
	}
	if status != http.StatusOK {
		return partial{index: m.index, status: status, err: fmt.Errorf("member %d: %d %s", m.index, status, msg),
			public: fmt.Sprintf("member %d refused (%d)", m.index, status)}
	}
	bad := fmt.Sprintf("member %d: its %s does not verify against its share key", m.index, what)
	text, _ := out[field].(string)
	sig, err := tezos.ParseSignature(text)
	if err != nil {
		return partial{index: m.index, err: fmt.Errorf("member %d: %w", m.index, err), public: bad}
	}
	bls, ok := sig.(*crypt.BLSSignature)
	if !ok || !valid(bls, share) {
		return partial{index: m.index, err: errors.New(bad), public: bad}
	}
	return partial{index: m.index, sig: bls}
}

// tooFew explains why fewer than t partials came: a conflict when members refused on their
// watermarks (409), else unavailable. The client sees which members failed and how; the log gets
// the members' own words.
func (v *Vault) tooFew(got int, refusals []partial) error {
	sort.Slice(refusals, func(a, b int) bool { return refusals[a].index < refusals[b].index })
	public := make([]string, len(refusals))
	detail := make([]string, len(refusals))
	conflict := false
	for i, r := range refusals {
		public[i], detail[i] = r.public, r.err.Error()
		conflict = conflict || r.status == http.StatusConflict
	}
	msg := fmt.Sprintf("threshold key: %d of %d needed partial signatures (%s)", got, v.t, strings.Join(public, "; "))
	cause := fmt.Errorf("threshold vault %s: %s", v.name, strings.Join(detail, "; "))
	if conflict {
		return &fault.Error{Kind: fault.Conflict, Msg: msg, Err: cause}
	}
	return fault.Safe(fault.Unavailable, msg, cause)
}

// ProvePossession implements vault.PossessionProver: the group key's proof of possession, combined
// from the members' proofs over the group key (each member signs the group key's bytes with its
// share: GET /bls_prove_possession/<share>?bls_pk=<group key>).
func (k *Key) ProvePossession(ctx context.Context) (crypt.Signature, error) {
	return k.ProvePossessionOver(ctx, k.v.group)
}

// ProvePossessionOver implements vault.PossessionOverProver: the members' proofs over over,
// combined.
func (k *Key) ProvePossessionOver(ctx context.Context, over *crypt.BLSPublicKey) (crypt.Signature, error) {
	v := k.v
	if err := v.life.Usable(ctx); err != nil {
		return nil, err
	}
	return v.gather(ctx, func(ctx context.Context, m *member) partial {
		auth, err := v.authentication(ctx, m, nil)
		var req *http.Request
		if err == nil {
			u := m.url + "/bls_prove_possession/" + m.pkh + "?bls_pk=" + url.QueryEscape(over.String()) + auth
			req, err = http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		}
		return v.askMember(ctx, m, req, err, "bls_prove_possession", "proof of possession",
			func(sig *crypt.BLSSignature, share *crypt.BLSPublicKey) bool {
				return tezos.VerifyPossessionOver(share, over, sig)
			})
	})
}

// observe counts a member's answer in the vault's metrics (nil: none), by what it was.
func observe(m *metrics.ThresholdMembers, vaultName string, p partial, d time.Duration) {
	if m == nil {
		return
	}
	result := "signed"
	switch {
	case p.sig != nil:
	case p.notWaited:
		result = "not_waited"
	case p.status != 0:
		result = "refused"
	case p.local:
		result = "error"
	case strings.Contains(p.public, "unreachable"):
		result = "unreachable"
	default:
		result = "invalid"
	}
	m.Observe(vaultName, strconv.Itoa(p.index), result, d)
}

var (
	_ vault.Vault                = (*Vault)(nil)
	_ vault.ReadinessChecker     = (*Vault)(nil)
	_ vault.PossessionProver     = (*Key)(nil)
	_ vault.PossessionOverProver = (*Key)(nil)
)
