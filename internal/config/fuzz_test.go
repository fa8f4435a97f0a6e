package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzConfig: no YAML input may panic the config reader; what it accepts is complete.
func FuzzConfig(f *testing.F) {
	example, _ := os.ReadFile(filepath.Join("..", "..", "examples", "signatory.yaml"))
	f.Add(example)
	f.Add([]byte("server: {address: ':1', authorized_keys: [[a, [b]]]}\ntezos: {tz1x: }\n"))
	f.Add([]byte("server:\n  jwt: {users: {u: {password: 'Aa1!Aa1!Aa1!Aa1!', secret: 'Aa1!Aa1!Aa1!Aa1!Aa1!Aa1!Aa1!Aa1!'}}}\n"))
	f.Add([]byte("policy_hook: {address: 'http://h', timeout: 3}\naudit: {file: x}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "")
		if err != nil {
			return
		}
		if c.Server.Address == "" || c.Watermark.Driver == "" || c.BaseDir == "" || c.Policies == nil {
			t.Fatalf("accepted config without defaults: %+v", c)
		}
	})
}
