package daemon

import (
	"strings"
	"testing"

	"github.com/signatory-go/signatory/internal/testdaemon"
)

// TestNamedEntrypointsThroughBinary: a key allowed only transactions and reveals refuses a
// transaction from an account to itself whose entrypoint is written as the name "stake" (or
// any other reserved name of an operation of its own), as it refuses the short tag: the protocol
// reads the name as that entrypoint. The default entrypoint, however written, is a transaction;
// a name the protocol refuses (over 31 bytes) and a non-canonical encoding are 400.
func TestNamedEntrypointsThroughBinary(t *testing.T) {
	ks, js, _ := keys(t, 1)
	k := ks[0]
	d := newDaemon(t, js, "  "+k.pkh+":\n    allow:\n      generic: [transaction, reveal]\n")
	d.Serve()
	const self = "tz1Ke2h7sDdakHJQh8WX4Z372du1KChsksyU" // the source testdaemon.Operation writes
	tx := func(dest, entry string) string {
		return testdaemon.Operation(testdaemon.Op{Kind: "transaction", Counter: 1, Amount: 1000e6, Dest: dest, Entry: entry})
	}
	emptyName := testdaemon.Operation(testdaemon.Op{Kind: "transaction", Counter: 1, Amount: 1000e6, Dest: k.pkh, EmptyName: true})
	for _, c := range []struct {
		name   string
		hex    string
		status int
		msg    string
	}{
		{"named stake", tx(self, "stake"), 403, "operation `stake' is not allowed"},
		{"named unstake", tx(self, "unstake"), 403, "operation `unstake' is not allowed"},
		{"named finalize_unstake", tx(self, "finalize_unstake"), 403, "operation `finalize_unstake' is not allowed"},
		{"named set_delegate_parameters", tx(self, "set_delegate_parameters"), 403, "operation `set_delegate_parameters' is not allowed"},
		{"named finalize_unstake of another account", tx(k.pkh, "finalize_unstake"), 403, "operation `finalize_unstake' is not allowed"},
		{"named default", tx(k.pkh, "default"), 200, ""},
		{"empty name", emptyName, 200, ""},
		{"no parameters", tx(k.pkh, ""), 200, ""},
		{"name of 32 bytes", tx(k.pkh, strings.Repeat("a", 32)), 400, "entrypoint name"},
		{"a trailing zero byte in the fee", strings.Replace(tx(k.pkh, ""), "6c00"+strings.Repeat("00", 20)+"00", "6c00"+strings.Repeat("00", 20)+"8000", 1), 400, "canonical"},
	} {
		status, msg := d.Sign(k.pkh, c.hex)
		if status != c.status || !strings.Contains(msg, c.msg) {
			t.Errorf("%s: %d %s, want %d %q", c.name, status, msg, c.status, c.msg)
		}
	}
}
