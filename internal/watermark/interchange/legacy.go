package interchange

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/ecadlabs/gotez/v2/b58"

	"github.com/signatory-go/signatory/internal/watermark"
)

// The reference signer's older layouts (which it migrated at start-up):
//   - v1: <base_dir>/watermark_v1/<chain>.json = {pkh: {"level", "round"?, "order", "hash"}},
//     where order 0 is a block, 1 a preendorsement (preattestation) and anything else an
//     endorsement (attestation);
//   - v0: <base_dir>/watermark/<chain>.json = {kind: {pkh: {"level", "round"?, "hash"}}}.
// Unlike the reference's own migration, which keeps the obsolete kind names and so in effect drops
// consensus watermarks, these are mapped to today's classes, so importing them keeps the protection.

type legacyMark struct {
	Level *int32  `json:"level"`
	Round int32   `json:"round"`
	Order *int    `json:"order"`
	Hash  *string `json:"hash"`
}

func (l legacyMark) mark() (watermark.Mark, error) {
	if l.Level == nil {
		return watermark.Mark{}, fmt.Errorf("missing level")
	}
	m := watermark.Mark{Level: *l.Level, Round: l.Round}
	if l.Hash != nil && *l.Hash != "" {
		h, err := b58.ParseBlockPayloadHash([]byte(*l.Hash))
		if err != nil {
			return m, fmt.Errorf("hash %q: %w", *l.Hash, err)
		}
		m.Digest, m.HasDigest = *h, true
	}
	return m, nil
}

func legacyClass(kind string) (watermark.Class, bool) {
	switch kind {
	case "preendorsement":
		kind = "preattestation"
	case "endorsement", "endorsement_with_dal":
		kind = "attestation"
	}
	return watermark.ClassOf(kind)
}

// parseReferenceV1 reads a watermark_v1/<chain>.json file.
func parseReferenceV1(chain string, data []byte) ([]watermark.Entry, error) {
	var in map[string]legacyMark
	if err := json.Unmarshal(data, &in); err != nil {
		return nil, fmt.Errorf("reference v1 watermark file: %w", err)
	}
	var out []watermark.Entry
	for _, pkh := range sortedKeys(in) {
		l := in[pkh]
		if err := checkChainPKH(chain, pkh); err != nil {
			return nil, err
		}
		class := watermark.Attestation
		switch {
		case l.Order == nil:
			return nil, fmt.Errorf("%s: missing order", pkh)
		case *l.Order == 0:
			class = watermark.Block
		case *l.Order == 1:
			class = watermark.Preattestation
		}
		m, err := l.mark()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", pkh, err)
		}
		out = append(out, watermark.Entry{Key: watermark.Key{Chain: chain, PKH: pkh, Class: class}, Mark: m})
	}
	return out, nil
}

// parseReferenceV0 reads a watermark/<chain>.json file.
func parseReferenceV0(chain string, data []byte) ([]watermark.Entry, error) {
	var in map[string]map[string]legacyMark
	if err := json.Unmarshal(data, &in); err != nil {
		return nil, fmt.Errorf("reference v0 watermark file: %w", err)
	}
	var out []watermark.Entry
	for _, kind := range sortedKeys(in) {
		class, ok := legacyClass(kind)
		if !ok {
			return nil, fmt.Errorf("unknown request kind %q", kind)
		}
		for _, pkh := range sortedKeys(in[kind]) {
			if err := checkChainPKH(chain, pkh); err != nil {
				return nil, err
			}
			m, err := in[kind][pkh].mark()
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", kind, pkh, err)
			}
			out = append(out, watermark.Entry{Key: watermark.Key{Chain: chain, PKH: pkh, Class: class}, Mark: m})
		}
	}
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
