// Package policy holds each key's signing rules (request kinds, operation kinds, chains, clients)
// and decides whether a decoded request may be signed. It does no I/O.
package policy

import (
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/request"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/yamlstrict"
)

// Policy is one key's rules.
type Policy struct {
	PKH string
	// Requests are the allowed request kinds.
	Requests []request.Kind
	// Ops are the allowed generic operation kinds (with ballot sub-kinds), when generic is allowed.
	Ops []string
	// LogPayloads logs the raw bytes of every request at info level.
	LogPayloads bool
	// AllowedChains restricts block and consensus requests to these chain ids; empty means any.
	AllowedChains []string
	// AuthorizedKeys restricts which authenticated clients (by key hash) may use the key; empty means any.
	AuthorizedKeys []string
	// AllowPoP allows GET /bls_prove_possession for a tz4 key over its own public key (proofs of
	// possession are BLS only: octez defines none for tz5).
	AllowPoP bool
	// AllowPoPFor are the other BLS public keys (BLpk…) a proof of possession may be made over
	// (octez's bls_pk parameter), e.g. a threshold member's group key. A proof over any other key
	// is refused: sk·H(pk′) for a pk′ of the client's choosing is what forging a proof of
	// possession for a rogue key pk′ = x·G − pk needs.
	AllowPoPFor []string
	// ShareOf marks a share of a threshold key (the group's BLpk…): the share signs no block or
	// consensus operation on a chain until its watermark store holds a mark for it there (an
	// imported history, or an operator's floor: `signatory watermark floor`), so that a member
	// whose store is new or was lost never signs at a level the group already signed.
	ShareOf string
	// AllowDeterministicNonce answers octez-signer's Deterministic_nonce and
	// Deterministic_nonce_hash requests for the key (the socket transports): a value derived
	// from the secret key, which a baker commits to and reveals later. Off by default.
	AllowDeterministicNonce bool
	// JWTUsers restricts JWT users; empty means any.
	JWTUsers []string
	// Limits is the key's spending policy for generic requests; nil: none.
	Limits *Limits
}

// DefaultRequests are the kinds a key listed with a null value may sign.
var DefaultRequests = []request.Kind{request.Block, request.Preattestation, request.Attestation}

// Default returns the policy of a key listed with no rules: block, preattestation and
// attestation, no generic operations.
func Default(pkh string) *Policy {
	return &Policy{PKH: pkh, Requests: slices.Clone(DefaultRequests)}
}

// Violation is a policy refusal; Type is the metric's violation_type (the kind refused).
type Violation struct {
	Fault *fault.Error
	Type  string
}

func (v *Violation) Error() string { return v.Fault.Msg }

func violation(typ, format string, args ...any) error {
	return &Violation{Fault: &fault.Error{Kind: fault.Forbidden, Msg: fmt.Sprintf(format, args...)}, Type: typ}
}

// NewViolation is a policy refusal (403) of type typ (the metric's violation_type) with msg.
func NewViolation(typ, msg string) error {
	return &Violation{Fault: &fault.Error{Kind: fault.Forbidden, Msg: msg}, Type: typ}
}

// Unwrap exposes the fault.
func (v *Violation) Unwrap() error { return v.Fault }

// Check decides whether req may be signed. client is the key hash of the authenticated client,
// or "" when the request was not authenticated. The checks and messages follow the reference.
func (p *Policy) Check(req *request.Request, client string) error {
	if len(p.AllowedChains) > 0 && req.Chain != nil {
		if c := req.ChainID(); !slices.Contains(p.AllowedChains, c) {
			return violation("chain", "chain `%s' is not allowed", c)
		}
	}
	if err := p.CheckClient(client); err != nil {
		return err
	}
	if !slices.Contains(p.Requests, req.Kind) {
		return violation(string(req.Kind), "request kind `%s' is not allowed", req.Kind)
	}
	if req.Kind == request.Generic {
		for _, op := range req.Ops {
			if slices.Contains(p.Ops, op) {
				continue
			}
			if base, _, ok := strings.Cut(op, ":"); ok && slices.Contains(p.Ops, base) {
				continue
			}
			return violation(op, "operation `%s' is not allowed", op)
		}
	}
	return nil
}

// CheckClient applies the per-key authorized_keys list.
func (p *Policy) CheckClient(client string) error {
	if len(p.AuthorizedKeys) == 0 {
		return nil
	}
	if client == "" {
		return violation("authentication", "authentication required")
	}
	if !slices.Contains(p.AuthorizedKeys, client) {
		return violation("authentication", "client `%s' is not allowed", client)
	}
	return nil
}

// Config is the YAML shape of one key under `tezos:`, in the reference implementation's schema.
type Config struct {
	Allow                   map[string][]string `yaml:"allow"`
	LogPayloads             bool                `yaml:"log_payloads"`
	AllowedChains           []string            `yaml:"allowed_chains"`
	AllowProofOfPossession  bool                `yaml:"allow_proof_of_possession"`
	AllowPoPFor             []string            `yaml:"allow_proof_of_possession_for"`
	ShareOf                 string              `yaml:"share_of"`
	AllowDeterministicNonce bool                `yaml:"allow_deterministic_nonce"`
	AuthorizedKeys          []string            `yaml:"authorized_keys"`
	JWTUsers                []string            `yaml:"jwt_users"`
	Limits                  *LimitsConfig       `yaml:"limits"`
	// Deprecated: used only when Allow is absent.
	AllowedOperations []string `yaml:"allowed_operations"`
	AllowedKinds      []string `yaml:"allowed_kinds"`
	// Vault is accepted because the reference implementation's documentation shows it, but it
	// has no effect there nor here: a key is found in whichever vault holds it. A warning says so.
	Vault string `yaml:"vault"`
}

var requestAliases = map[string]string{"endorsement": "attestation", "preendorsement": "preattestation"}

var opAliases = map[string]string{
	"endorsement": "attestation", "preendorsement": "preattestation",
	"double_endorsement_evidence": "double_attestation_evidence", "double_preendorsement_evidence": "double_preattestation_evidence",
}

// Parse builds and validates the policy of pkh from its YAML node (nil or null means Default).
// Warnings are returned for deprecated but accepted settings.
func Parse(pkh string, node *yaml.Node) (p *Policy, warnings []string, err error) {
	p, warnings, err = parseNode(pkh, node)
	if err == nil {
		err = checkTz5(p)
	}
	if err != nil {
		return nil, nil, err
	}
	return p, warnings, nil
}

// checkTz5 refuses block and consensus requests for a tz5 (ML-DSA-44) key: the protocol (from
// Ushuaia, where tz5 appears) lets no tz5 key be a delegate or a consensus key, so such a key
// signs generic operations and packed data only.
func checkTz5(p *Policy) error {
	if !strings.HasPrefix(p.PKH, "tz5") {
		return nil
	}
	for _, k := range p.Requests {
		if k != request.Generic && k != request.Pack {
			what := fmt.Sprintf("request kind `%s` cannot be allowed", k)
			if slices.Equal(p.Requests, DefaultRequests) {
				what = "the default policy (block, preattestation, attestation) does not fit"
			}
			return fmt.Errorf("%s for a tz5 (ML-DSA-44) key: tz5 keys cannot be delegates or consensus keys, so they sign generic operations and packed data only (allow: {generic: [...]} or pack)", what)
		}
	}
	return nil
}

func parseNode(pkh string, node *yaml.Node) (p *Policy, warnings []string, err error) {
	if node == nil || node.Tag == "!!null" {
		return Default(pkh), nil, nil
	}
	var c Config
	// Strict: an unknown key (a typo, or a rule this version does not have) is an error, never a rule the operator believes applies and does not.
	if err := yamlstrict.Decode(node, &c); err != nil {
		return nil, nil, err
	}
	p = &Policy{PKH: pkh, LogPayloads: c.LogPayloads, JWTUsers: c.JWTUsers}
	if c.Vault != "" {
		warnings = append(warnings, "`vault` under a key has no effect: the key is used from whichever vault holds it")
	}
	allow := c.Allow
	hasAllow := hasKey(node, "allow")
	if !hasAllow && (len(c.AllowedOperations) > 0 || len(c.AllowedKinds) > 0) {
		allow = map[string][]string{}
		for _, k := range c.AllowedOperations {
			allow[k] = nil
		}
		if len(c.AllowedKinds) > 0 {
			allow["generic"] = c.AllowedKinds
		}
		warnings = append(warnings, "allowed_operations and allowed_kinds are deprecated; use `allow:` instead")
	}
	for kind, ops := range allow {
		if a, ok := requestAliases[kind]; ok {
			warnings = append(warnings, fmt.Sprintf("request kind `%s` is deprecated; use `%s`", kind, a))
			kind = a
		}
		if !request.ValidKind(kind) {
			return nil, nil, fmt.Errorf("invalid request kind `%s` in `allow` list (valid: %s)", kind, kindList())
		}
		if !slices.Contains(p.Requests, request.Kind(kind)) {
			p.Requests = append(p.Requests, request.Kind(kind))
		}
		if kind != string(request.Generic) {
			if len(ops) > 0 {
				return nil, nil, fmt.Errorf("request kind `%s` takes no operation list in `allow`", kind)
			}
			continue
		}
		for _, op := range ops {
			name := op
			base, sub, hasSub := strings.Cut(op, ":")
			if a, ok := opAliases[base]; ok {
				name = a
				if hasSub {
					name += ":" + sub
				}
			}
			if !request.ValidOpKind(name) {
				return nil, nil, fmt.Errorf("invalid operation kind `%s` in `allow.generic` list", name)
			}
			if !slices.Contains(p.Ops, name) {
				p.Ops = append(p.Ops, name)
			}
		}
	}
	slices.Sort(p.Requests)
	slices.Sort(p.Ops)
	for _, chain := range c.AllowedChains {
		if _, err := tezos.ParseChainID(chain); err != nil {
			return nil, nil, fmt.Errorf("allowed_chains: %w", err)
		}
		p.AllowedChains = append(p.AllowedChains, chain)
	}
	for _, s := range c.AuthorizedKeys {
		pub, err := tezos.ParsePublicKey(s)
		if err != nil {
			return nil, nil, fmt.Errorf("authorized_keys: %w", err)
		}
		p.AuthorizedKeys = append(p.AuthorizedKeys, pub.Hash().String())
	}
	if c.Limits != nil {
		_, limitsNode := entry(node, "limits")
		if p.Limits, err = parseLimits(c.Limits, limitsNode); err != nil {
			return nil, nil, err
		}
		if err := checkBounded(p, keyLine(node, "limits")); err != nil {
			return nil, nil, err
		}
		if !slices.Contains(p.Requests, request.Generic) {
			warnings = append(warnings, "limits apply to generic operations, which this key may not sign: they have no effect")
		}
	}
	for _, s := range c.AllowPoPFor {
		if !strings.HasPrefix(pkh, "tz4") {
			return nil, nil, fmt.Errorf("allow_proof_of_possession_for: %s is not a tz4 key; proofs of possession are BLS only", pkh)
		}
		pub, err := tezos.ParseBLSPublicKey(s)
		if err != nil {
			return nil, nil, fmt.Errorf("allow_proof_of_possession_for: %q is not a BLS public key (BLpk…)", s)
		}
		if k := pub.String(); !slices.Contains(p.AllowPoPFor, k) {
			p.AllowPoPFor = append(p.AllowPoPFor, k)
		}
	}
	if c.ShareOf != "" {
		if !strings.HasPrefix(pkh, "tz4") {
			return nil, nil, fmt.Errorf("share_of: %s is not a tz4 key; threshold shares are BLS keys", pkh)
		}
		pub, err := tezos.ParseBLSPublicKey(c.ShareOf)
		if err != nil {
			return nil, nil, fmt.Errorf("share_of: %q is not a BLS public key (BLpk…): the group key this key is a share of", c.ShareOf)
		}
		p.ShareOf = pub.String()
	}
	p.AllowDeterministicNonce = c.AllowDeterministicNonce
	if c.AllowProofOfPossession {
		if strings.HasPrefix(pkh, "tz4") {
			p.AllowPoP = true
		} else {
			warnings = append(warnings, fmt.Sprintf("proof of possession is not supported for %s; allow_proof_of_possession is ignored", pkh))
		}
	}
	return p, warnings, nil
}

// keyLine is the line of key in the mapping node (the node's when absent).
func keyLine(node *yaml.Node, key string) int {
	if k, _ := entry(node, key); k != nil {
		return k.Line
	}
	return node.Line
}

func hasKey(node *yaml.Node, key string) bool {
	k, _ := entry(node, key)
	return k != nil
}

func kindList() string {
	s := make([]string, len(request.Kinds))
	for i, k := range request.Kinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}
