package etcdtest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/signatory-go/signatory/internal/watermark/etcd/etcdtest"
)

// TestRestart starts a scratch etcd, writes a key, stops it, restarts it and reads the key back.
func TestRestart(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	if !strings.HasPrefix(e.Endpoint, "http://127.0.0.1:") || len(e.Ports) != 2 {
		t.Fatalf("endpoint %s, ports %v", e.Endpoint, e.Ports)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	e.Stop()
	short, cancelShort := context.WithTimeout(ctx, time.Second)
	defer cancelShort()
	if _, err := c.Get(short, "k"); err == nil {
		t.Fatal("read from a stopped server")
	}
	e.Start()
	resp, err := c.Get(ctx, "k")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("after a restart: %v, %v", resp, err)
	}
}
