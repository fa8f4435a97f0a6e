package yamlstrict

import (
	"strings"
	"testing"
	"time"

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
		"- name\n":                 "line 1: expected a mapping of settings",
		"just a string\n":          "line 1: expected a mapping of settings",
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

func TestInvalid(t *testing.T) {
	t.Parallel()
	if Invalid(nil) != nil {
		t.Fatal("Invalid(nil) is not nil")
	}
	err := Invalidf("keys[%d] is empty", 2)
	if !IsConfigError(err) || err.Error() != "keys[2] is empty" {
		t.Fatalf("%v", err)
	}
	if again := Invalid(err); again != err {
		t.Fatalf("Invalid wrapped a config error twice: %v", again)
	}
}

func TestTypes(t *testing.T) {
	t.Parallel()
	var c struct {
		D  Duration   `yaml:"d"`
		S  Duration   `yaml:"s"`
		L  StringList `yaml:"l"`
		L2 StringList `yaml:"l2"`
	}
	if err := yaml.Unmarshal([]byte("d: 1m30s\ns: 2.5\nl: one\nl2: [a, [b, c]]\n"), &c); err != nil {
		t.Fatal(err)
	}
	if time.Duration(c.D) != 90*time.Second || time.Duration(c.S) != 2500*time.Millisecond ||
		strings.Join(c.L, ",") != "one" || strings.Join(c.L2, ",") != "a,b,c" {
		t.Fatalf("%+v", c)
	}
	if err := yaml.Unmarshal([]byte("d: soon\n"), &c); err == nil || !strings.Contains(err.Error(), `invalid duration "soon"`) {
		t.Fatalf("%v", err)
	}
	if err := yaml.Unmarshal([]byte("l: {a: b}\n"), &c); err == nil {
		t.Fatal("a mapping was accepted as a string list")
	}
}

// TestNodeField: a yaml.Node field is its owner's to decode later, so its keys are not checked
// here; the keys around it are.
func TestNodeField(t *testing.T) {
	t.Parallel()
	var c struct {
		Driver string    `yaml:"driver"`
		Config yaml.Node `yaml:"config"`
	}
	var n yaml.Node
	if err := yaml.Unmarshal([]byte("driver: file\nconfig: {anything: 1, nested: {x: y}}\n"), &n); err != nil {
		t.Fatal(err)
	}
	if err := Decode(&n, &c); err != nil || c.Driver != "file" || c.Config.Kind != yaml.MappingNode {
		t.Fatalf("%v %+v", err, c)
	}
	if err := yaml.Unmarshal([]byte("driver: file\nconfig: {}\ndriverr: x\n"), &n); err != nil {
		t.Fatal(err)
	}
	if err := Decode(&n, &c); err == nil || !strings.Contains(err.Error(), `line 3: unknown config key "driverr" (known keys: config, driver)`) {
		t.Fatalf("%v", err)
	}
	// A null document decodes like a null node.
	if err := yaml.Unmarshal([]byte("~\n"), &n); err != nil {
		t.Fatal(err)
	}
	if err := Decode(&n, &c); err != nil {
		t.Fatal(err)
	}
}
