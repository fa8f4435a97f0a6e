package blsthreshold

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/signatory-go/signatory/internal/tezos"
)

// MarksClasses are the watermark classes a marks statement covers, in its order.
var MarksClasses = []string{"block", "preattestation", "attestation"}

// marksPrefix starts every marks statement. Its first byte, 's' (0x73), is no watermark octez
// gives an operation, a block or a consensus operation, so no statement can be mistaken for
// anything the chain accepts; each statement also names its own share key, so the statements of
// t members are never the same bytes and never combine into a group signature.
const marksPrefix = "signatory threshold marks v1\n"

// MarksNonceSize is the size of the requester's nonce, which binds an answer to one request: an
// answer recorded earlier (with lower marks) cannot be replayed.
const MarksNonceSize = 32

// MarkLevel is a member's highest mark in one class: the level and round it signed last.
type MarkLevel struct {
	Level int32 `json:"level"`
	Round int32 `json:"round"`
}

// Higher returns the higher of two marks (by level, then round); nil is below every mark.
func Higher(a, b *MarkLevel) *MarkLevel {
	if a == nil || b != nil && (b.Level > a.Level || b.Level == a.Level && b.Round > a.Round) {
		return b
	}
	return a
}

// Marks is a member's signed statement of its highest watermarks on a chain, over every share of
// the group it holds (GET /threshold/marks/<share>?chain=…&nonce=…). A member whose history was
// lost takes the highest marks of enough other members before it signs again (`signatory
// threshold marks`); docs/threshold.md gives the rule and the reasoning.
type Marks struct {
	Key       string                `json:"key"`        // the answering share's tz4 address
	PublicKey string                `json:"public_key"` // its BLpk, which signs the statement
	Group     string                `json:"group"`      // the group key (its share_of)
	Chain     string                `json:"chain"`
	Nonce     string                `json:"nonce"`     // the requester's, in hex
	Marks     map[string]*MarkLevel `json:"marks"`     // by class; absent or null: no mark
	Signature string                `json:"signature"` // BLsig over Statement(), version 3
}

// Statement is the bytes the member signs: the prefix, then one line per field and per class in
// MarksClasses' order ("<class> <level> <round>" or "<class> none").
func (m *Marks) Statement() []byte {
	var b strings.Builder
	b.WriteString(marksPrefix)
	fmt.Fprintf(&b, "key %s\npublic_key %s\ngroup %s\nchain %s\nnonce %s\n", m.Key, m.PublicKey, m.Group, m.Chain, m.Nonce)
	for _, c := range MarksClasses {
		if l := m.Marks[c]; l != nil {
			fmt.Fprintf(&b, "%s %d %d\n", c, l.Level, l.Round)
		} else {
			fmt.Fprintf(&b, "%s none\n", c)
		}
	}
	return []byte(b.String())
}

// Verify checks an answer against what the requester asked and expects: the share key listed for
// that member, the group, the chain and the nonce it sent, marks only in known classes and
// never negative, and the share's signature over the statement.
func (m *Marks) Verify(key, group, chain string, nonce []byte) error {
	switch {
	case m.Key != key:
		return fmt.Errorf("the answer is for %s, not %s", m.Key, key)
	case m.Group != group:
		return fmt.Errorf("the answer is for the group %s, not %s", m.Group, group)
	case m.Chain != chain:
		return fmt.Errorf("the answer is for chain %s, not %s", m.Chain, chain)
	case m.Nonce != hex.EncodeToString(nonce):
		return errors.New("the answer does not carry this request's nonce (a replayed answer?)")
	}
	for c, l := range m.Marks {
		if !isClass(c) {
			return fmt.Errorf("the answer names an unknown class %q", c)
		}
		if l != nil && (l.Level < 0 || l.Round < 0) {
			return fmt.Errorf("the answer's %s mark is negative", c)
		}
	}
	pub, err := tezos.ParseBLSPublicKey(m.PublicKey)
	if err != nil {
		return fmt.Errorf("the answer's public key: %w", err)
	}
	if pub.Hash().String() != key {
		return fmt.Errorf("the answer's public key %s is not the key of %s", m.PublicKey, key)
	}
	sig, err := tezos.ParseSignature(m.Signature)
	if err != nil {
		return fmt.Errorf("the answer's signature: %w", err)
	}
	if !tezos.Verify(pub, sig, m.Statement(), tezos.VersionLatest) {
		return fmt.Errorf("the answer's signature does not verify against %s", key)
	}
	return nil
}

func isClass(c string) bool {
	for _, k := range MarksClasses {
		if c == k {
			return true
		}
	}
	return false
}

// MarksQuorum is how many other members' answers a member must take its marks from, out of a
// group of n with threshold t: enough that every t-set which may have signed a slot with this
// member shares at least one member with the answers. A set that signed a slot holds at least
// t−1 of the n−1 other members; the answers come from q of those n−1; they meet when
// (t−1) + q > n−1, that is q ≥ n−t+1. With t > n/2 that is at most t; t answers are asked all
// the same, never fewer. The same q covers a new
// member taking the marks of an old group of n with threshold t after a resharing: a t-set of
// the old n meets q ≥ n−t+1 of them.
func MarksQuorum(t, n int) int {
	return max(t, n-t+1)
}
