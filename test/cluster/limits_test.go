package cluster

import (
	"fmt"
	"strings"
	"testing"

	"github.com/signatory-go/signatory/internal/request/requesttest"
	"github.com/signatory-go/signatory/internal/testdaemon"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/watermark/etcd/etcdtest"
	"github.com/signatory-go/signatory/internal/watermark/postgres/postgrestest"
)

func TestClusterLimitsPostgres(t *testing.T) {
	t.Parallel()
	pg := postgrestest.Start(t)
	runClusterLimits(t, fmt.Sprintf("  driver: postgres\n  config:\n    dsn: %s\n    table: limits\n    timeout: 10s\n", pg.DSN))
}

func TestClusterLimitsEtcd(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	runClusterLimits(t, fmt.Sprintf("  driver: etcd\n  config:\n    endpoints: [%s]\n    prefix: /limits/\n    timeout: 10s\n", e.Endpoint))
}

// runClusterLimits: three real signers share one store and a payout key's max_total of 1000 tez in
// 24 h. 50 concurrent 30 tez transfers, spread over the three, sign exactly 33 (never 34: the
// window is checked and recorded in one atomic step of the shared store). One signer is then
// killed with SIGKILL and restarted: the spent amount still counts, on it and on the others.
func runClusterLimits(t *testing.T, watermark string) {
	const payee = "tz1gjaF81ZRRvdzjobyfVNsAeSC6PScjfQwN"
	ks, keyFile := testdaemon.NewKeys(t, tezos.Ed25519)
	pkh := ks[0].PKH
	insts := testdaemon.StartMembers(t, 3, "signatory", keyFile, watermark,
		"  "+pkh+":\n    allow:\n      generic: [transaction]\n    limits:\n      max_amount: 100\n      max_total: {amount: 1000, period: 24h}\n")
	transfer := func(counter, tez uint64) string {
		return requesttest.Operation(requesttest.Op{Kind: "transaction", Counter: counter, Amount: tez * 1_000_000, Dest: payee}) // no fee: exact amounts
	}
	signed, refused := testdaemon.SignAtOnce(t, 50, func(i int) (int, string) {
		return insts[i%3].Sign(pkh, transfer(uint64(i+1), 30))
	}, func(status int, body string) bool { return status == 403 && strings.Contains(body, "max_total") })
	if signed != 33 || refused != 17 {
		t.Fatalf("50 concurrent 30 tez transfers over three signers against 1000 tez: %d signed, %d refused; want 33 and 17", signed, refused)
	}

	insts[0].Kill()
	insts[0].ServeMember()
	for _, in := range insts {
		if status, body := in.Sign(pkh, transfer(100, 30)); status != 403 || !strings.Contains(body, "max_total: 1020 tez") {
			t.Fatalf("%s after kill -9 and a restart, 30 more tez: %d %s", in.Name, status, body)
		}
	}
	if status, body := insts[0].Sign(pkh, transfer(101, 10)); status != 200 {
		t.Fatalf("the 10 tez left, through the restarted signer: %d %s", status, body)
	}
	if status, body := insts[1].Sign(pkh, transfer(102, 1)); status != 403 {
		t.Fatalf("nothing left, through another signer: %d %s", status, body)
	}
}
