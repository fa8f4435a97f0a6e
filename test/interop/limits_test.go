package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signatory-go/signatory/internal/testdaemon"
	"github.com/signatory-go/signatory/internal/tezos"
)

// forgeScript forges, with Taquito's LocalForger (protocol 024 encodings), each named list of
// operation contents in the JSON file argv[1], and prints {name: hex with the 0x03 prefix}.
const forgeScript = `import { LocalForger } from '@taquito/local-forging';
import { readFileSync } from 'node:fs';
const { branch, ops } = JSON.parse(readFileSync(process.argv[1], 'utf8'));
const forger = new LocalForger();
const out = {};
for (const [name, contents] of Object.entries(ops)) out[name] = '03' + await forger.forge({ branch, contents });
console.log(JSON.stringify(out));`

// forge has Taquito forge ops (name → contents, in Taquito's JSON shapes).
func forge(t *testing.T, nodeBin string, ops map[string][]map[string]any) map[string]string {
	t.Helper()
	js, err := json.Marshal(map[string]any{"branch": "BLockGenesisGenesisGenesisGenesisGenesisf79b5d1CoW2", "ops": ops})
	if err != nil {
		t.Fatal(err)
	}
	input := filepath.Join(t.TempDir(), "ops.json")
	if err := os.WriteFile(input, js, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), nodeTimeout)
	defer cancel()
	out, err := testdaemon.RunTool(exec.CommandContext(ctx, nodeBin, "--input-type=module", "-e", forgeScript, input))
	if err != nil {
		t.Fatalf("Taquito's forger: %v", err)
	}
	var hexes map[string]string
	if err := json.Unmarshal(out, &hexes); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return hexes
}

// TestSpendingLimits: operations forged by Taquito's LocalForger (transactions to implicit and
// originated accounts with parameters, stake and unstake, delegations, batches) against a real
// daemon with limits: each rule at, just below and just above its value; then 50 concurrent 30 tez
// transfers against max_total 1000 tez: exactly 33 signed; and after kill -9 and a restart, the
// spent amount is still counted (then max_total just above, just below and at its value); and
// max_operations, counting a batch as one.
func TestSpendingLimits(t *testing.T) {
	nodeBin := requireNode(t)
	payer, err := tezos.GenerateKey(tezos.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	payouts, err := tezos.GenerateKey(tezos.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	rated, err := tezos.GenerateKey(tezos.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	const (
		payee = "tz1gjaF81ZRRvdzjobyfVNsAeSC6PScjfQwN"
		other = "tz1WGcYos3hL7GXYXjKrMnSFdkT7FyXnFBvf"
		token = "KT1BEqzn5Wx8uJrZNvuS9DVHmLvG9td3fDLi"
		baker = "tz3ZbCsUveF3Q6WUNkThT1wyJyhPunanaAXK"
	)
	a, b, c := payer.Public().Hash().String(), payouts.Public().Hash().String(), rated.Public().Hash().String()
	keyFile := filepath.Join(t.TempDir(), "secret_keys.json")
	testdaemon.WriteKeyFile(t, keyFile, "k", payer, payouts, rated)
	d := testdaemon.New(t)
	d.WriteConfig(testdaemon.FileVault(keyFile) + "watermark:\n  driver: file\ntezos:\n" +
		"  " + a + ":\n    allow:\n      generic: [transaction, delegation, stake, unstake]\n    limits:\n" +
		"      max_amount: 100\n      max_fee: 0.5\n      max_total: {amount: 100000, period: 24h}\n" +
		"      destinations: [" + payee + ", " + token + "]\n      delegates: [" + baker + "]\n" +
		"      entrypoints: {" + token + ": [transfer]}\n" +
		"  " + b + ":\n    allow:\n      generic: [transaction]\n    limits:\n      max_total: {amount: 1000, period: 24h}\n" +
		"  " + c + ":\n    allow:\n      generic: [transaction]\n    limits:\n      max_operations: {count: 3, period: 1h}\n")
	d.Serve("--no-list")

	counter := 0
	manager := func(src string, fee string) map[string]any {
		counter++
		return map[string]any{"source": src, "fee": fee, "counter": fmt.Sprint(counter), "gas_limit": "10600", "storage_limit": "300"}
	}
	with := func(m map[string]any, kv ...any) map[string]any {
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	transfer := func(src, mutez, dest string) map[string]any {
		return with(manager(src, "1420"), "kind", "transaction", "amount", mutez, "destination", dest)
	}
	// payout: no fee and no storage, so that max_total (which counts both) sees exact amounts.
	payout := func(src, mutez string) map[string]any {
		return with(transfer(src, mutez, payee), "fee", "0", "storage_limit", "0")
	}
	call := func(entrypoint string) map[string]any {
		return with(manager(a, "1420"), "kind", "transaction", "amount", "0", "destination", token,
			"parameters", map[string]any{"entrypoint": entrypoint, "value": map[string]any{"prim": "Unit"}})
	}
	pseudo := func(entrypoint, mutez string) map[string]any {
		return with(manager(a, "1420"), "kind", "transaction", "amount", mutez, "destination", a,
			"parameters", map[string]any{"entrypoint": entrypoint, "value": map[string]any{"prim": "Unit"}})
	}
	delegate := func(to string) map[string]any { return with(manager(a, "1420"), "kind", "delegation", "delegate", to) }
	one := func(c map[string]any) []map[string]any { return []map[string]any{c} }
	cases := []struct {
		name string
		ops  []map[string]any
		want string // "" signed; else the 403 message contains it
	}{
		{"amount below", one(transfer(a, "99999999", payee)), ""},
		{"amount at", one(transfer(a, "100000000", payee)), ""},
		{"amount above", one(transfer(a, "100000001", payee)), "max_amount: transaction of 100.000001 tez exceeds the limit of 100 tez"},
		{"fee below", one(with(transfer(a, "1", payee), "fee", "499999")), ""},
		{"fee at", one(with(transfer(a, "1", payee), "fee", "500000")), ""},
		{"fee above", one(with(transfer(a, "1", payee), "fee", "500001")), "max_fee: a fee of 0.500001 tez exceeds the limit of 0.5 tez"},
		{"other destination", one(transfer(a, "1", other)), "destinations: " + other + " is not an allowed destination"},
		{"contract call, allowed entrypoint", one(call("transfer")), ""},
		{"contract call, other entrypoint", one(call("mint")), "entrypoints: " + token + "%mint is not allowed"},
		{"stake at", one(pseudo("stake", "100000000")), ""},
		{"stake above", one(pseudo("stake", "100000001")), "max_amount: stake of 100.000001 tez exceeds"},
		{"unstake above", one(pseudo("unstake", "100000001")), "max_amount: unstake of 100.000001 tez exceeds"},
		{"delegation to the allowed baker", one(delegate(baker)), ""},
		{"delegation to another", one(delegate(other)), "delegates: " + other + " is not an allowed delegate"},
		{"batch, all allowed", []map[string]any{transfer(a, "1000000", payee), call("transfer"), delegate(baker)}, ""},
		{"batch, one content over", []map[string]any{transfer(a, "1000000", payee), transfer(a, "100000001", payee)}, "(content 2 of 2)"},
	}
	ops := map[string][]map[string]any{}
	for _, c := range cases {
		ops[c.name] = c.ops
	}
	for i := range 50 {
		ops[fmt.Sprint("payout ", i)] = one(payout(b, "30000000"))
	}
	for name, mutez := range map[string]string{"30 tez": "30000000", "10.000001 tez": "10000001", "9.999999 tez": "9999999",
		"1 mutez": "1", "1 more mutez": "1"} {
		ops["after restart, "+name] = one(payout(b, mutez))
	}
	for i := range 4 { // max_operations 3: two batches and a transfer at, a fourth above
		if i < 2 {
			ops[fmt.Sprint("rated ", i)] = []map[string]any{transfer(c, "1", payee), transfer(c, "1", payee)}
		} else {
			ops[fmt.Sprint("rated ", i)] = one(transfer(c, "1", payee))
		}
	}
	hexes := forge(t, nodeBin, ops)

	for _, c := range cases {
		status, body := d.Sign(a, hexes[c.name])
		switch {
		case c.want == "" && status != 200:
			t.Errorf("%s: %d %s", c.name, status, body)
		case c.want != "" && (status != 403 || !strings.Contains(body, c.want)):
			t.Errorf("%s: %d %s, want 403 with %q", c.name, status, body, c.want)
		}
	}

	signed, refused := testdaemon.SignAtOnce(t, 50, func(i int) (int, string) {
		return d.Sign(b, hexes[fmt.Sprint("payout ", i)])
	}, func(status int, body string) bool { return status == 403 && strings.Contains(body, "max_total") })
	if signed != 33 || refused != 17 {
		t.Fatalf("50 concurrent 30 tez payouts against 1000 tez: %d signed, %d refused; want 33 and 17", signed, refused)
	}

	d.Kill()
	d.Serve("--no-list")
	for _, step := range []struct {
		name   string
		status int
		want   string
	}{
		{"30 tez", 403, "max_total: 1020 tez"},               // 990 spent before the kill: still counted
		{"10.000001 tez", 403, "max_total: 1000.000001 tez"}, // just above the limit
		{"9.999999 tez", 200, ""},                            // just below
		{"1 mutez", 200, ""},                                 // exactly at 1000 tez
		{"1 more mutez", 403, "max_total: 1000.000001 tez"},
	} {
		if status, body := d.Sign(b, hexes["after restart, "+step.name]); status != step.status || !strings.Contains(body, step.want) {
			t.Fatalf("after kill -9 and a restart, %s: %d %s, want %d %q", step.name, status, body, step.status, step.want)
		}
	}
	for i := range 4 {
		status, body := d.Sign(c, hexes[fmt.Sprint("rated ", i)])
		if want := map[bool]int{true: 200, false: 403}[i < 3]; status != want ||
			i == 3 && !strings.Contains(body, "max_operations: 4 operations in 1h0m0s would exceed the limit of 3") {
			t.Fatalf("max_operations 3, request %d: %d %s", i+1, status, body)
		}
	}
}
