package yubihsmfake

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"testing"

	"github.com/certusone/yubihsm-go/commands"
	"github.com/certusone/yubihsm-go/connector"
	"github.com/certusone/yubihsm-go/securechannel"
	"github.com/ecadlabs/gotez/v2/crypt"
)

// List Objects applies each filter.
func TestListFilters(t *testing.T) {
	dev, c := start(t)
	for i, alg := range []commands.Algorithm{commands.AlgorithmP256, commands.AlgorithmSecp256k1, commands.AlgorithmED25519} {
		priv := map[commands.Algorithm]func() crypt.PrivateKey{
			commands.AlgorithmP256: func() crypt.PrivateKey {
				k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				return (*crypt.ECDSAPrivateKey)(k)
			},
			commands.AlgorithmSecp256k1: func() crypt.PrivateKey {
				k, _ := ecdsa.GenerateKey(crypt.S256(), rand.Reader)
				return (*crypt.ECDSAPrivateKey)(k)
			},
			commands.AlgorithmED25519: func() crypt.PrivateKey {
				_, k, _ := ed25519.GenerateKey(rand.Reader)
				return crypt.Ed25519PrivateKey(k)
			},
		}[alg]()
		if err := dev.PutKey(uint16(0x20+i), "f", uint16(1<<i), 0, priv); err != nil {
			t.Fatal(err)
		}
	}
	ch, _, err := open(t, c, "password")
	if err != nil {
		t.Fatal(err)
	}
	list := func(opts ...commands.ListCommandOption) []uint16 {
		cmd, _ := commands.CreateListObjectsCommand(opts...)
		r, err := ch.SendEncryptedCommand(cmd)
		if err != nil {
			t.Fatal(err)
		}
		var ids []uint16
		for _, o := range r.(*commands.ListObjectsResponse).Objects {
			ids = append(ids, o.ObjectID)
		}
		return ids
	}
	caps := func(c uint64) commands.ListCommandOption {
		return func(w io.Writer) {
			w.Write(append([]byte{commands.ListObjectParamCapabilities}, binary.BigEndian.AppendUint64(nil, c)...))
		}
	}
	alg := func(a commands.Algorithm) commands.ListCommandOption {
		return func(w io.Writer) { w.Write([]byte{commands.ListObjectParamAlgorithm, byte(a)}) }
	}
	for _, c := range []struct {
		opts []commands.ListCommandOption
		want string
	}{
		{nil, "[1 32 33 34]"}, // the authentication key too
		{[]commands.ListCommandOption{commands.NewObjectTypeOption(commands.ObjectTypeAsymmetricKey)}, "[32 33 34]"},
		{[]commands.ListCommandOption{commands.NewIDOption(0x21)}, "[33]"},
		{[]commands.ListCommandOption{commands.NewDomainOption(4)}, "[1 34]"},
		{[]commands.ListCommandOption{caps(commands.CapabilityAsymmetricSignEddsa)}, "[1 34]"},
		{[]commands.ListCommandOption{alg(commands.AlgorithmSecp256k1)}, "[33]"},
		{[]commands.ListCommandOption{alg(commands.AlgorithmP256), commands.NewDomainOption(1)}, "[32]"},
	} {
		if got := fmt.Sprint(list(c.opts...)); got != c.want {
			t.Errorf("filter %d: %s, want %s", len(c.opts), got, c.want)
		}
	}
}

// Put and Generate Asymmetric Key check IDs, capabilities, delegated capabilities and domains.
func TestCreateChecks(t *testing.T) {
	dev, c := start(t)
	dev.PutAuthKey(2, "limited", 0x0003, CapSignECDSA|CapGenerateAsymmetric) // no put-asymmetric-key
	send := func(ch *securechannel.SecureChannel, cmd *commands.CommandMessage, err error) error {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		_, err = ch.SendEncryptedCommand(cmd)
		return err
	}
	admin, _, err := open(t, c, "password")
	if err != nil {
		t.Fatal(err)
	}
	adminSend := func(cmd *commands.CommandMessage, err error) error { return send(admin, cmd, err) }
	if err := adminSend(commands.CreateGenerateAsymmetricKeyCommand(0x30, []byte("a"), 1, commands.CapabilityAsymmetricSignEcdsa, commands.AlgorithmP256)); err != nil {
		t.Fatal(err)
	}
	if err := adminSend(commands.CreateGenerateAsymmetricKeyCommand(0x30, []byte("b"), 1, commands.CapabilityAsymmetricSignEcdsa, commands.AlgorithmP256)); deviceError(err) != commands.ErrorCodeObjectExists {
		t.Fatalf("existing ID: %v", err)
	}
	if err := adminSend(commands.CreateGenerateAsymmetricKeyCommand(0x31, []byte("c"), 1, commands.CapabilityAsymmetricSignEcdsa, commands.AlgorithmP384)); deviceError(err) != commands.ErrorCodeInvalidData {
		t.Fatalf("P-384: %v", err)
	}
	d := make([]byte, 31)
	if err := adminSend(commands.CreatePutAsymmetricKeyCommand(0, []byte("d"), 1, commands.CapabilityAsymmetricSignEcdsa, commands.AlgorithmSecp256k1, d, nil)); deviceError(err) != commands.ErrorCodeWrongLength {
		t.Fatalf("31-byte scalar: %v", err)
	}
	conn := connector.NewHTTPConnector(c.Addr())
	limited, err := securechannel.NewSecureChannel(conn, 2, "limited")
	if err != nil || limited.Authenticate() != nil {
		t.Fatal("limited session", err)
	}
	key := make([]byte, 32)
	key[31] = 1
	for _, tc := range []struct {
		cmd  func() (*commands.CommandMessage, error)
		what string
	}{
		{func() (*commands.CommandMessage, error) {
			return commands.CreatePutAsymmetricKeyCommand(0, []byte("e"), 1, commands.CapabilityAsymmetricSignEcdsa, commands.AlgorithmP256, key, nil)
		}, "put without put-asymmetric-key"},
		{func() (*commands.CommandMessage, error) {
			return commands.CreateGenerateAsymmetricKeyCommand(0, []byte("f"), 4, commands.CapabilityAsymmetricSignEcdsa, commands.AlgorithmP256)
		}, "domain outside the authentication key's"},
		{func() (*commands.CommandMessage, error) {
			return commands.CreateGenerateAsymmetricKeyCommand(0, []byte("g"), 1, commands.CapabilityAsymmetricSignEddsa, commands.AlgorithmED25519)
		}, "capability not delegated"},
	} {
		cmd, err := tc.cmd()
		if err := send(limited, cmd, err); deviceError(err) != commands.ErrorCodeInvalidPermission {
			t.Errorf("%s: %v", tc.what, err)
		}
	}
	if len(dev.Keys()) != 1 {
		t.Fatalf("keys: %+v", dev.Keys())
	}
}
