// Package remote holds what the vault drivers whose keys live outside this process share
// (awskms, cloudkms, azure, hashicorpvault, pkcs11, yubihsm): environment fallbacks, TLS roots,
// public-key and signature formats, and a bounded retry policy.
package remote

import (
	"crypto/x509"
	"fmt"
	"os"
	"time"
)

// Env returns value when it is not empty, else the first non-empty environment variable of
// names. $VARS in a configured value are expanded.
func Env(value string, names ...string) string {
	if value != "" {
		return os.ExpandEnv(value)
	}
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}

// CertPool reads a PEM file of CA certificates. An empty path returns nil (the system roots).
func CertPool(path string) (*x509.CertPool, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(os.ExpandEnv(path))
	if err != nil {
		return nil, fmt.Errorf("cannot read CA certificates: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// Retries resolves the max_retries setting: def when unset, capped at 100, 0 meaning none.
func Retries(set *int, def int) int {
	switch {
	case set == nil:
		return def
	case *set < 0:
		return 0
	case *set > 100:
		return 100
	}
	return *set
}

// Timeout resolves a timeout setting: def when unset or not positive.
func Timeout(set, def time.Duration) time.Duration {
	if set <= 0 {
		return def
	}
	return set
}

// Backoff is an exponential backoff bounded by a deadline: it yields the wait before the next
// attempt, or false when retries are used up or the wait would end past the deadline.
type Backoff struct {
	Initial, Max time.Duration
	Retries      int       // attempts after the first
	Deadline     time.Time // zero: none
	done         int
	next         time.Duration
}

// Next returns the wait before the next attempt and whether to make one.
func (b *Backoff) Next(now time.Time) (time.Duration, bool) {
	if b.done >= b.Retries {
		return 0, false
	}
	if b.next == 0 {
		b.next = b.Initial
	}
	d := b.next
	if !b.Deadline.IsZero() && !now.Add(d).Before(b.Deadline) {
		return 0, false
	}
	b.done++
	b.next = min(2*b.next, b.Max)
	return d, true
}
