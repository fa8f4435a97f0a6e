package dkg

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/drand/kyber"
	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/durable"
	"github.com/signatory-go/signatory/internal/tezos"
)

// Identity is a member's long-term identity key: a BLS12-381 key whose public part (BLpk…)
// every member's ceremony config lists. It authenticates the member's messages and decrypts the
// ones sent to it; it never signs for the baker, and it is not a share.
type Identity struct {
	secret kyber.Scalar
	public kyber.Point
	// Public is the key the ceremony config lists.
	Public *crypt.BLSPublicKey
}

// NewIdentityKey makes a new identity key, to be written with WriteIdentity.
func NewIdentityKey() (*crypt.BLSPrivateKey, error) {
	k, err := tezos.GenerateKey(tezos.BLS)
	if err != nil {
		return nil, err
	}
	return k.(*crypt.BLSPrivateKey), nil
}

// IdentityOf is the identity of a key (tests, and NewIdentityKey's caller).
func IdentityOf(k *crypt.BLSPrivateKey) (*Identity, error) { return identityOf(k) }

func identityOf(k *crypt.BLSPrivateKey) (*Identity, error) {
	s := scalarOfKey(k)
	pub := k.Public().(*crypt.BLSPublicKey)
	p, err := pointOfKey(pub)
	if err != nil {
		return nil, err
	}
	if !g1.Point().Mul(s, nil).Equal(p) {
		return nil, errors.New("identity key: public key mismatch")
	}
	return &Identity{secret: s, public: p, Public: pub}, nil
}

// WriteIdentity writes id to path (mode 0600; an existing file is never overwritten), as the
// text BLsk… followed by a newline.
func WriteIdentity(path string, k *crypt.BLSPrivateKey) error {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%s exists: not overwritten", path)
	}
	return durable.WriteBytes(path, ".identity-tmp-", append(k.ToProtocol().ToBase58(), '\n'))
}

// ReadIdentity reads an identity key file written by WriteIdentity. It refuses a file others
// can read.
func ReadIdentity(path string) (*Identity, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s: mode %04o: an identity key must be readable by its owner only (chmod 600)", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := tezos.ParseSecretKey(strings.TrimSpace(string(b)), nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	bk, ok := k.(*crypt.BLSPrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: an identity key is a BLS (BLsk) key", path)
	}
	return identityOf(bk)
}
