package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signatory-go/signatory/internal/tezos"
)

// TestParseKeys: --keys as a comma list and as @file (10,000 keys, comments, blank lines, commas
// and spaces), in order; a malformed entry named with its line; an empty list refused.
func TestParseKeys(t *testing.T) {
	const a, b = "tz1WGcYos3hL7GXYXjKrMnSFdkT7FyXnFBvf", "tz1LggX2HUdvJ1tF4Fvv8fjsrzLeW4Jr9t2Q"
	if got, err := parseKeys(a + "," + b); err != nil || strings.Join(got, ",") != a+","+b {
		t.Fatalf("%v %v", got, err)
	}
	var want []string
	var file strings.Builder
	file.WriteString("# the bench's keys\n\n")
	for i := range 10000 {
		priv, err := tezos.GenerateKey(tezos.Ed25519)
		if err != nil {
			t.Fatal(err)
		}
		k := priv.Public().Hash().String()
		want = append(want, k)
		sep := "\n"
		if i%3 == 1 {
			sep = ", "
		}
		fmt.Fprint(&file, k, sep)
	}
	path := filepath.Join(t.TempDir(), "keys.txt")
	if err := os.WriteFile(path, []byte(file.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := parseKeys("@" + path)
	if err != nil || len(got) != 10000 || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("%d keys, %v", len(got), err)
	}
	if err := os.WriteFile(path, []byte(a+"\n"+"tz1typo\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := parseKeys("@" + path); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("a typo: %v", err)
	}
	for _, bad := range []string{"", "@" + filepath.Join(t.TempDir(), "missing"), "#only\n"} {
		if _, err := parseKeys(bad); err == nil {
			t.Fatalf("%q accepted", bad)
		}
	}
}
