package yamlstrict

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

type inner struct {
	A int `yaml:"a"`
}

type base struct {
	Shared string `yaml:"shared"`
}

type outer struct {
	base   `yaml:",inline"`
	Name   string           `yaml:"name"`
	In     inner            `yaml:"in"`
	Ptr    *inner           `yaml:"ptr"`
	List   []inner          `yaml:"list"`
	Map    map[string]inner `yaml:"map"`
	Ignore string           `yaml:"-"`
}

func TestDecode(t *testing.T) {
	t.Parallel()
	ok := "name: x\nshared: s\nin: {a: 1}\nptr: {a: 2}\nlist: [{a: 3}]\nmap: {k: {a: 4}}\n"
	for src, want := range map[string]string{
		ok:                         "",
		"nme: x\n":                 `line 1: unknown config key "nme" (known keys: in, list, map, name, ptr, shared)`,
		"in: {b: 1}\n":             `line 1: unknown config key "b" (known keys: a)`,
		"ptr:\n  b: 1\n":           `line 2: unknown config key "b"`,
		"list: [{a: 1}, {c: 2}]\n": `unknown config key "c"`,
		"map: {k: {d: 1}}\n":       `unknown config key "d"`,
		"Ignore: x\n":              `unknown config key "Ignore"`,
		"in: {a: notanint}\n":      "cannot unmarshal",
	} {
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(src), &n); err != nil {
			t.Fatal(err)
		}
		var o outer
		err := Decode(&n, &o)
		if want == "" {
			if err != nil || o.Name != "x" || o.Shared != "s" || o.Map["k"].A != 4 || o.List[0].A != 3 || o.Ptr.A != 2 {
				t.Fatalf("%q: %v %+v", src, err, o)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), want) || !IsConfigError(err) {
			t.Errorf("%q: %v, want %q", src, err, want)
		}
	}
	var o outer
	if err := Decode(nil, &o); err != nil {
		t.Fatal(err)
	}
}
