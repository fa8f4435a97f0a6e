package policy

import (
	"fmt"
	"math/big"
	"slices"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/signatory-go/signatory/internal/request"
	"github.com/signatory-go/signatory/internal/spending"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/yamlstrict"
)

// Limits is a key's spending policy (`limits:` beside `allow:`). Amounts are exact, in mutez.
// Every content of a generic request must pass the per-content rules; the windows count a request
// (a batch as one, its amounts summed) once it is signed.
type Limits struct {
	MaxAmount    *big.Int            // per transaction / origination content; nil: none
	MaxFee       *big.Int            // per content; nil: none
	Windows      spending.Windows    // max_total and max_operations
	Destinations []string            // transactions only to these; nil: any
	Delegates    []string            // delegations only to these; nil: any
	Entrypoints  map[string][]string // KT1 → entrypoints allowed; nil: any
}

// Tez is an amount written in tez in the config ("100", "0.5"), read exactly into mutez.
type Tez struct{ Mutez int64 }

// UnmarshalYAML reads the number's text, never a float: 0.1 tez is exactly 100000 mutez.
func (t *Tez) UnmarshalYAML(n *yaml.Node) error {
	m, err := ParseTez(n.Value)
	if err != nil || n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: %q is not an amount in tez (a number ≥ 0 with at most 6 decimals)", n.Line, n.Value)
	}
	t.Mutez = m
	return nil
}

// ParseTez reads "12", "0.5" or "1000.000001" tez as mutez. Negative numbers, exponents, more
// than six decimals and amounts above 2^62 mutez are refused.
func ParseTez(s string) (int64, error) {
	whole, frac, _ := strings.Cut(strings.TrimSpace(s), ".")
	if whole == "" || len(frac) > 6 || strings.Trim(whole+frac, "0123456789") != "" || len(whole) > 13 {
		return 0, fmt.Errorf("not an amount in tez: %q", s)
	}
	frac += strings.Repeat("0", 6-len(frac))
	n, ok := new(big.Int).SetString(whole+frac, 10)
	if !ok || n.BitLen() > 62 {
		return 0, fmt.Errorf("not an amount in tez: %q", s)
	}
	return n.Int64(), nil
}

type totalConfig struct {
	Amount *Tez                 `yaml:"amount"`
	Period *yamlstrict.Duration `yaml:"period"`
}

type countConfig struct {
	Count  *int                 `yaml:"count"`
	Period *yamlstrict.Duration `yaml:"period"`
}

// LimitsConfig is the YAML shape of `limits:`.
type LimitsConfig struct {
	MaxAmount     *Tez                `yaml:"max_amount"`
	MaxFee        *Tez                `yaml:"max_fee"`
	MaxTotal      *totalConfig        `yaml:"max_total"`
	MaxOperations *countConfig        `yaml:"max_operations"`
	Destinations  []string            `yaml:"destinations"`
	Delegates     []string            `yaml:"delegates"`
	Entrypoints   map[string][]string `yaml:"entrypoints"`
}

// parseLimits checks c (node is `limits:` itself, for line numbers).
func parseLimits(c *LimitsConfig, node *yaml.Node) (*Limits, error) {
	l := &Limits{}
	line := func(key string) int {
		if _, v := entry(node, key); v != nil {
			return v.Line
		}
		return node.Line
	}
	if c.MaxAmount != nil {
		l.MaxAmount = big.NewInt(c.MaxAmount.Mutez)
	}
	if c.MaxFee != nil {
		l.MaxFee = big.NewInt(c.MaxFee.Mutez)
	}
	if c.MaxTotal != nil {
		if c.MaxTotal.Amount == nil || c.MaxTotal.Period == nil {
			return nil, fmt.Errorf("line %d: limits.max_total needs amount and period, e.g. {amount: 1000, period: 24h}", line("max_total"))
		}
		if time.Duration(*c.MaxTotal.Period) <= 0 {
			return nil, fmt.Errorf("line %d: limits.max_total.period must be more than 0", line("max_total"))
		}
		l.Windows.Amount, l.Windows.AmountPeriod = c.MaxTotal.Amount.Mutez, time.Duration(*c.MaxTotal.Period)
	}
	if c.MaxOperations != nil {
		if c.MaxOperations.Count == nil || c.MaxOperations.Period == nil {
			return nil, fmt.Errorf("line %d: limits.max_operations needs count and period, e.g. {count: 100, period: 1h}", line("max_operations"))
		}
		if *c.MaxOperations.Count < 1 {
			return nil, fmt.Errorf("line %d: limits.max_operations.count must be at least 1 (remove `generic` from allow to sign none)", line("max_operations"))
		}
		if time.Duration(*c.MaxOperations.Period) <= 0 {
			return nil, fmt.Errorf("line %d: limits.max_operations.period must be more than 0", line("max_operations"))
		}
		l.Windows.Count, l.Windows.CountPeriod = *c.MaxOperations.Count, time.Duration(*c.MaxOperations.Period)
	}
	for _, d := range c.Destinations {
		if !validAddress(d, true) {
			return nil, fmt.Errorf("line %d: limits.destinations: %q is not an address (tz1…tz4, KT1…)", line("destinations"), d)
		}
		l.Destinations = append(l.Destinations, d)
	}
	if c.Destinations != nil && len(c.Destinations) == 0 {
		return nil, fmt.Errorf("line %d: limits.destinations is empty: list addresses, or remove transaction from allow", line("destinations"))
	}
	for _, d := range c.Delegates {
		if !validAddress(d, false) {
			return nil, fmt.Errorf("line %d: limits.delegates: %q is not an implicit address (tz1…tz4)", line("delegates"), d)
		}
		l.Delegates = append(l.Delegates, d)
	}
	if c.Delegates != nil && len(c.Delegates) == 0 {
		return nil, fmt.Errorf("line %d: limits.delegates is empty: list delegates, or remove delegation from allow", line("delegates"))
	}
	if c.Entrypoints != nil {
		l.Entrypoints = map[string][]string{}
		for kt, eps := range c.Entrypoints {
			if !strings.HasPrefix(kt, "KT1") || !validAddress(kt, true) {
				return nil, fmt.Errorf("line %d: limits.entrypoints: %q is not a contract address (KT1…)", line("entrypoints"), kt)
			}
			if len(eps) == 0 {
				return nil, fmt.Errorf("line %d: limits.entrypoints.%s lists no entrypoint", line("entrypoints"), kt)
			}
			for _, ep := range eps {
				if ep == "" || len(ep) > 31 || strings.Trim(ep, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.%@") != "" {
					return nil, fmt.Errorf("line %d: limits.entrypoints.%s: %q is not an entrypoint name", line("entrypoints"), kt, ep)
				}
			}
			l.Entrypoints[kt] = slices.Clone(eps)
		}
	}
	return l, nil
}

func validAddress(s string, originated bool) bool {
	if strings.HasPrefix(s, "KT1") {
		return originated && tezos.ValidContractAddress(s)
	}
	_, err := tezos.ParsePublicKeyHash(s)
	return err == nil
}

// entry returns the key and value nodes of key in node, a mapping (nil, nil when absent). Its
// callers pass nodes that decoded into a struct: a mapping, or an alias (no Content: absent).
func entry(node *yaml.Node, key string) (k, v *yaml.Node) {
	for pair := range slices.Chunk(node.Content, 2) {
		if len(pair) == 2 && pair[0].Value == key {
			return pair[0], pair[1]
		}
	}
	return nil, nil
}

// BurnPerByte is the protocol's cost of a byte of storage (cost_per_byte, 250 mutez).
const BurnPerByte = 250

// Amount is the most a request may take out of the account, in mutez, capped at 2^62: its
// contents' amounts (transactions, stake and unstake included) and origination balances, their
// fees, and the storage they may burn (storage_limit × 250 mutez). max_total counts this.
func Amount(contents []request.Content) int64 {
	sum := new(big.Int)
	for _, c := range contents {
		for _, v := range []*big.Int{c.Amount, c.Fee} {
			if v != nil {
				sum.Add(sum, v)
			}
		}
		if c.StorageLimit != nil {
			sum.Add(sum, new(big.Int).Mul(c.StorageLimit, big.NewInt(BurnPerByte)))
		}
	}
	if sum.BitLen() > 62 {
		return 1 << 62
	}
	return sum.Int64()
}

// unbounded are the generic operation kinds whose effect on the account's tez limits cannot
// bound: they drain (drain_delegate, and the consensus-key changes that enable it), lock or
// forfeit bonds (smart rollup commitments and games), or move value the limits do not count
// (tickets, paid storage, zk rollups). A key with limits may not allow them.
var unbounded = []string{"drain_delegate", "update_consensus_key", "update_companion_key", "increase_paid_storage",
	"transfer_ticket", "smart_rollup_publish", "smart_rollup_refute", "smart_rollup_timeout",
	"zk_rollup_origination", "zk_rollup_publish", "zk_rollup_update"}

// checkBounded refuses limits on a key that may sign what they cannot bound.
func checkBounded(p *Policy, line int) error {
	for _, op := range p.Ops {
		if slices.Contains(unbounded, op) {
			return fmt.Errorf("line %d: limits cannot bound `%s` (it can move, lock or burn tez the limits do not count): remove it from allow.generic, or the limits", line, op)
		}
	}
	if slices.Contains(p.Requests, request.Pack) {
		return fmt.Errorf("line %d: limits cannot bound `pack` (packed data can authorize transfers from a contract, e.g. a multisig): remove it from allow, or the limits", line)
	}
	return nil
}

// CheckContents applies the per-content rules to a generic request's contents: the first
// content that breaks one is refused, naming the rule, the limit and the value.
func (l *Limits) CheckContents(contents []request.Content) error {
	for i, c := range contents {
		at := ""
		if len(contents) > 1 {
			at = fmt.Sprintf(" (content %d of %d)", i+1, len(contents))
		}
		if l.MaxFee != nil && c.Fee != nil && c.Fee.Cmp(l.MaxFee) > 0 {
			return violation("max_fee", "spending limit max_fee: a fee of %s tez%s exceeds the limit of %s tez", tez(c.Fee), at, tez(l.MaxFee))
		}
		if l.MaxAmount != nil && c.Amount != nil && c.Amount.Cmp(l.MaxAmount) > 0 {
			return violation("max_amount", "spending limit max_amount: %s of %s tez%s exceeds the limit of %s tez", c.Kind, tez(c.Amount), at, tez(l.MaxAmount))
		}
		// Every transfer to another account, whatever its kind's name (stake and unstake go to
		// the key itself; a transaction to a contract's "stake" entrypoint is a transaction).
		elsewhere := c.Destination != "" && c.Destination != c.Source
		if elsewhere && l.Destinations != nil && !slices.Contains(l.Destinations, c.Destination) {
			return violation("destinations", "spending limit destinations: %s%s is not an allowed destination", c.Destination, at)
		}
		if c.Kind == "origination" && l.Destinations != nil && c.Amount != nil && c.Amount.Sign() > 0 {
			// The balance goes to a new contract, which no list can name in advance.
			return violation("destinations", "spending limit destinations: an origination with a balance of %s tez%s moves tez to a new contract, not to an allowed destination", tez(c.Amount), at)
		}
		if elsewhere && l.Entrypoints != nil && strings.HasPrefix(c.Destination, "KT1") {
			eps, ok := l.Entrypoints[c.Destination]
			if !ok {
				return violation("entrypoints", "spending limit entrypoints: no entrypoint of %s is allowed%s", c.Destination, at)
			}
			if !slices.Contains(eps, c.Entrypoint) {
				return violation("entrypoints", "spending limit entrypoints: %s%%%s%s is not allowed (allowed: %s)", c.Destination, c.Entrypoint, at, strings.Join(eps, ", "))
			}
		}
		// A delegation's delegate, and the delegate an origination gives its new contract.
		if c.Delegate != "" && l.Delegates != nil && !slices.Contains(l.Delegates, c.Delegate) {
			return violation("delegates", "spending limit delegates: %s%s is not an allowed delegate", c.Delegate, at)
		}
	}
	return nil
}

// tez prints an amount of mutez (a natural, of any size) in tez, as tezos.FormatTez does.
func tez(m *big.Int) string {
	q, r := new(big.Int).QuoRem(m, big.NewInt(1_000_000), new(big.Int))
	if r.Sign() == 0 {
		return q.String()
	}
	return q.String() + "." + strings.TrimRight(fmt.Sprintf("%06d", r.Int64()), "0")
}

// Summary lists the limits in config words, for `decode --key` and `limits show`.
func (l *Limits) Summary() []string {
	var out []string
	if l.MaxAmount != nil {
		out = append(out, "max_amount "+tez(l.MaxAmount)+" tez")
	}
	if l.MaxFee != nil {
		out = append(out, "max_fee "+tez(l.MaxFee)+" tez")
	}
	if l.Windows.AmountPeriod > 0 {
		out = append(out, fmt.Sprintf("max_total %s tez per %s", tezos.FormatTez(l.Windows.Amount), l.Windows.AmountPeriod))
	}
	if l.Windows.CountPeriod > 0 {
		out = append(out, fmt.Sprintf("max_operations %d per %s", l.Windows.Count, l.Windows.CountPeriod))
	}
	if l.Destinations != nil {
		out = append(out, "destinations "+strings.Join(l.Destinations, ", "))
	}
	if l.Delegates != nil {
		out = append(out, "delegates "+strings.Join(l.Delegates, ", "))
	}
	if l.Entrypoints != nil {
		kts := make([]string, 0, len(l.Entrypoints))
		for kt := range l.Entrypoints {
			kts = append(kts, kt)
		}
		sort.Strings(kts)
		for _, kt := range kts {
			out = append(out, fmt.Sprintf("entrypoints %s: %s", kt, strings.Join(l.Entrypoints[kt], ", ")))
		}
	}
	return out
}
