package mem

import (
	"testing"

	"gopkg.in/yaml.v3"

	tv "github.com/signatory-go/signatory/internal/testvectors"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
	"github.com/signatory-go/signatory/internal/vault/vaulttest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	vaulttest.Run(t, vaulttest.Fixture{
		Driver: Driver,
		Open: func(t *testing.T) vault.Vault {
			var node yaml.Node
			tz5, _ := tv.OctezTz5()
			src := "[" + tv.K1SK + ", " + tv.K5SK + ", " + tv.K6SK + ", " + tv.K7SK + ", " + tz5 + "]"
			if err := yaml.Unmarshal([]byte(src), &node); err != nil {
				t.Fatal(err)
			}
			v, err := New(t.Context(), "mem", node.Content[0], vault.Env{})
			if err != nil {
				t.Fatal(err)
			}
			return v
		},
		Curves:   tezos.Curves,
		Generate: tezos.Curves,
		Import:   tezos.Curves,
	})
}
