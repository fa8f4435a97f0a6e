package signer

import (
	"context"
	"crypto/ed25519"
	"runtime"
	"testing"

	"github.com/ecadlabs/gotez/v2/crypt"
	"github.com/signatory-go/signatory/internal/sched"
	"github.com/signatory-go/signatory/internal/testdaemon"
	"github.com/signatory-go/signatory/internal/vault"
	"golang.org/x/crypto/blake2b"
)

// threadNice is the nice value of the calling thread.
func threadNice(t *testing.T) int {
	t.Helper()
	n, err := testdaemon.Nice("/proc/thread-self/stat")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// nicedKey records the nice value of the thread each of its signings ran on.
type nicedKey struct {
	*vault.SoftwareKey
	t    *testing.T
	nice []int
}

func (k *nicedKey) SignChecked(ctx context.Context, msg []byte, digest *[32]byte, opts vault.SignOptions, pub crypt.PublicKey) (crypt.Signature, bool, error) {
	k.nice = append(k.nice, threadNice(k.t))
	return k.SoftwareKey.SignChecked(ctx, msg, digest, opts, pub)
}

// remoteKey is a key with only Sign, as an HSM's or a KMS's: the signer verifies its signatures.
type remoteKey struct{ k *nicedKey }

func (r remoteKey) PublicKey() crypt.PublicKey { return r.k.PublicKey() }
func (r remoteKey) ID() string                 { return r.k.ID() }
func (r remoteKey) Sign(ctx context.Context, msg []byte, digest *[32]byte, opts vault.SignOptions) (crypt.Signature, error) {
	r.k.nice = append(r.k.nice, threadNice(r.k.t))
	return r.k.SoftwareKey.Sign(ctx, msg, digest, opts)
}

// TestGenericSigningYieldsToConsensus: while consensus requests contend, a generic request's
// in-process signing (with its check) runs on a thread of low priority (sched.Low); a remote
// vault's call, which waits on the network, stays on the request's own thread; without
// contention both run there.
func TestGenericSigningYieldsToConsensus(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	base := threadNice(t)
	low := min(19, base+sched.LowerBy)
	if low == base {
		t.Skipf("the test runs at nice %d already", base)
	}
	l, err := sched.StartLow(1, sched.LowerBy)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Stop()
	cpu := sched.NewCPU(2, 4)
	contending := true
	cpu.SetLow(l, func() bool { return contending })
	ctx := sched.WithGeneric(t.Context(), cpu)

	key := &nicedKey{SoftwareKey: &vault.SoftwareKey{Priv: crypt.Ed25519PrivateKey(ed25519.NewKeyFromSeed(make([]byte, 32)))}, t: t}
	msg := []byte{0x03, 1, 2, 3}
	digest := blake2b.Sum256(msg)
	for _, tc := range []struct {
		name       string
		key        vault.Key
		contending bool
		want       int
	}{
		{"in process, contending", key, true, low},
		{"in process, alone", key, false, base},
		{"remote, contending", remoteKey{key}, true, base},
	} {
		contending = tc.contending
		key.nice = nil
		sig, _, err := SignChecked(ctx, tc.key, key.PublicKey(), msg, &digest, 0)
		if err != nil || sig == nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(key.nice) != 1 || key.nice[0] != tc.want {
			t.Errorf("%s: signed at nice %v, want %d", tc.name, key.nice, tc.want)
		}
	}
}
