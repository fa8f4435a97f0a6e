package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/signatory-go/signatory/internal/tezos"
)

// parseKeys reads --keys: key hashes separated by commas, or @FILE for a file of them (one per
// line, or separated by commas or spaces; blank lines and lines starting with # skipped), since
// 10,000 keys do not fit in one argument. Every entry must be a key hash: a typo is an error, not
// a stream of 404s.
func parseKeys(arg string) ([]string, error) {
	text, from := arg, "--keys"
	if path, ok := strings.CutPrefix(arg, "@"); ok {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("--keys: %w", err)
		}
		text, from = string(b), path
	}
	var keys []string
	for i, line := range strings.Split(text, "\n") {
		if t := strings.TrimSpace(line); t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		for _, k := range strings.FieldsFunc(line, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\r' }) {
			if _, err := tezos.ParsePublicKeyHash(k); err != nil {
				return nil, fmt.Errorf("%s, line %d: %w", from, i+1, err)
			}
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no key", from)
	}
	return keys, nil
}
