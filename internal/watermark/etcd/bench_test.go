package etcd

import (
	"testing"

	"github.com/signatory-go/signatory/internal/watermark"
	"github.com/signatory-go/signatory/internal/watermark/etcd/etcdtest"
	"github.com/signatory-go/signatory/internal/watermark/watermarktest"
)

// BenchmarkAdvance against a scratch single-member etcd on loopback: serial is one key at rising
// levels, each Advance a linearizable read and a compare-and-swap transaction (two raft round
// trips); parallel runs 32 goroutines with a key each over one client connection.
func BenchmarkAdvance(b *testing.B) {
	e := etcdtest.Start(b)
	watermarktest.BenchAdvance(b, func(b *testing.B) watermark.Store { return openStore(b, e.Endpoint, freshPrefix()) })
}
