package yubihsmfake

import (
	"crypto/aes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/certusone/yubihsm-go/commands"
	"github.com/certusone/yubihsm-go/connector"
	"github.com/certusone/yubihsm-go/securechannel"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	secpecdsa "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
)

func unhex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// The factory authentication key derived from "password" (python-yubihsm's test_password_to_key).
func TestDeriveAuthKeyKnownAnswer(t *testing.T) {
	enc, mac := DeriveAuthKey("password")
	if hex.EncodeToString(enc) != "090b47dbed595654901dee1cc655e420" || hex.EncodeToString(mac) != "592fd483f759e29909a04c4505d2ce0a" {
		t.Fatalf("K-ENC %x K-MAC %x", enc, mac)
	}
}

// RFC 4493 section 4 examples pin the AES-CMAC implementation.
func TestCMACRFC4493(t *testing.T) {
	key := unhex("2b7e151628aed2a6abf7158809cf4f3c")
	msg := unhex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710")
	for _, c := range []struct {
		n   int
		mac string
	}{{0, "bb1d6929e95937287fa37d129b756746"}, {16, "070a16b46b4d4144f79bdd9dd04a287c"},
		{40, "dfa66747de9ae63030ca32611497c827"}, {64, "51f0bebf7e3b9d92fc49741779363cfe"}} {
		if got := hex.EncodeToString(cmacSum(key, msg[:c.n])); got != c.mac {
			t.Errorf("CMAC of %d bytes = %s, want %s", c.n, got, c.mac)
		}
	}
}

func TestPadding(t *testing.T) {
	for n := 0; n < 40; n++ {
		b := make([]byte, n)
		p := pad(b)
		if len(p)%aes.BlockSize != 0 || len(p) <= n {
			t.Fatalf("pad(%d) has %d bytes", n, len(p))
		}
		if u, ok := unpad(p); !ok || len(u) != n {
			t.Fatalf("unpad(pad(%d)) = %d, %v", n, len(u), ok)
		}
	}
	if _, ok := unpad(make([]byte, 16)); ok {
		t.Fatal("a block of zeros has no padding")
	}
}

// tamper is a yubihsm-go connector that can corrupt the next command's MAC.
type tamper struct {
	connector.Connector
	flipMAC bool
}

func (c *tamper) Request(cmd *commands.CommandMessage) ([]byte, error) {
	if c.flipMAC && cmd.MAC != nil {
		cmd.MAC = append([]byte(nil), cmd.MAC...)
		cmd.MAC[0] ^= 1
		c.flipMAC = false
	}
	return c.Connector.Request(cmd)
}

func start(t *testing.T) (*Device, *Connector) {
	t.Helper()
	dev := New()
	dev.PutAuthKey(1, "password", 0, 0)
	c, err := Start(dev, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return dev, c
}

func open(t *testing.T, c *Connector, password string) (*securechannel.SecureChannel, *tamper, error) {
	t.Helper()
	conn := &tamper{Connector: connector.NewHTTPConnector(c.Addr())}
	ch, err := securechannel.NewSecureChannel(conn, 1, password)
	if err != nil {
		t.Fatal(err)
	}
	return ch, conn, ch.Authenticate()
}

// An independent client (yubihsm-go's SCP03) talks to the emulator: echo, generate, list, sign
// on every Tezos curve with verification, and close.
func TestInteropWithYubihsmGo(t *testing.T) {
	dev, c := start(t)
	ch, _, err := open(t, c, "password")
	if err != nil {
		t.Fatal(err)
	}
	send := func(cmd *commands.CommandMessage, err error) commands.Response {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		r, err := ch.SendEncryptedCommand(cmd)
		if err != nil {
			t.Fatalf("command 0x%02x: %v", cmd.CommandType, err)
		}
		return r
	}
	if r := send(commands.CreateEchoCommand([]byte("ping"))).(*commands.EchoResponse); string(r.Data) != "ping" {
		t.Fatalf("echo: %q", r.Data)
	}
	algs := []commands.Algorithm{commands.AlgorithmED25519, commands.AlgorithmSecp256k1, commands.AlgorithmP256}
	dev.SetHighS(HighSAlways)
	digest := make([]byte, 32)
	digest[0] = 7
	for i, alg := range algs {
		id := uint16(0x10 + i)
		caps := commands.CapabilityAsymmetricSignEcdsa
		if alg == commands.AlgorithmED25519 {
			caps = commands.CapabilityAsymmetricSignEddsa
		}
		send(commands.CreateGenerateAsymmetricKeyCommand(id, []byte("k"), 1, caps, alg))
		pub := send(commands.CreateGetPubKeyCommand(id)).(*commands.GetPubKeyResponse)
		if pub.Algorithm != alg {
			t.Fatalf("key 0x%x: algorithm %d", id, pub.Algorithm)
		}
		if alg == commands.AlgorithmED25519 {
			sig := send(commands.CreateSignDataEddsaCommand(id, digest)).(*commands.SignDataEddsaResponse)
			if !ed25519.Verify(pub.KeyData, digest, sig.Signature) {
				t.Fatal("Ed25519 signature does not verify")
			}
			continue
		}
		der := send(commands.CreateSignDataEcdsaCommand(id, digest)).(*commands.SignDataEcdsaResponse).Signature
		var rs struct{ R, S *big.Int }
		if _, err := asn1.Unmarshal(der, &rs); err != nil {
			t.Fatal(err)
		}
		if alg == commands.AlgorithmP256 {
			if rs.S.Cmp(new(big.Int).Rsh(elliptic.P256().Params().N, 1)) <= 0 {
				t.Fatal("HighSAlways returned a low s")
			}
			p256, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append([]byte{4}, pub.KeyData...))
			if err != nil {
				t.Fatal(err)
			}
			if !ecdsa.Verify(p256, digest, rs.R, rs.S) {
				t.Fatal("P-256 signature does not verify")
			}
			continue
		}
		var r, s secp256k1.ModNScalar
		r.SetByteSlice(rs.R.Bytes())
		s.SetByteSlice(rs.S.Bytes())
		pk, err := secp256k1.ParsePubKey(append([]byte{4}, pub.KeyData...))
		if err != nil {
			t.Fatal(err)
		}
		if !s.IsOverHalfOrder() {
			t.Fatal("HighSAlways returned a low s")
		}
		s.Negate() // decred verifies either form; check the low one too
		if !secpecdsa.NewSignature(&r, &s).Verify(digest, pk) {
			t.Fatal("secp256k1 signature does not verify")
		}
	}
	list := send(commands.CreateListObjectsCommand(commands.NewObjectTypeOption(commands.ObjectTypeAsymmetricKey))).(*commands.ListObjectsResponse)
	if len(list.Objects) != 3 || list.Objects[0].ObjectID != 0x10 {
		t.Fatalf("list: %+v", list.Objects)
	}
	lbl, _ := commands.NewLabelOption([]byte("k"))
	if l := send(commands.CreateListObjectsCommand(lbl)).(*commands.ListObjectsResponse); len(l.Objects) != 3 {
		t.Fatalf("list by label: %+v", l.Objects)
	}
	if dev.Stats().HighSSignatures != 2 {
		t.Fatalf("stats: %+v", dev.Stats())
	}
	if err := ch.Close(); err != nil {
		t.Fatal(err)
	}
	if n := dev.OpenSessions(); n != 0 {
		t.Fatalf("%d sessions left after close", n)
	}
}

func deviceError(err error) commands.ErrorCode {
	var e *commands.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0xee
}

// A wrong password is caught by the host (the card cryptogram differs); a host that goes on
// anyway is refused by the device, which checks the host cryptogram and the MAC.
func TestWrongPassword(t *testing.T) {
	dev, c := start(t)
	if _, _, err := open(t, c, "wrong"); !errors.Is(err, securechannel.ErrAuthCryptogram) {
		t.Fatalf("wrong password: %v", err)
	}
	// Authenticate Session with a made-up cryptogram on a created session.
	conn := connector.NewHTTPConnector(c.Addr())
	raw, err := conn.Request(&commands.CommandMessage{CommandType: commands.CommandTypeCreateSession, Data: append([]byte{0, 1}, make([]byte, 8)...)})
	if err != nil {
		t.Fatal(err)
	}
	sid := raw[3]
	raw, err = conn.Request(&commands.CommandMessage{CommandType: commands.CommandTypeAuthenticateSession, SessionID: &sid, Data: make([]byte, 8), MAC: make([]byte, 8)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := commands.ParseResponse(raw); deviceError(err) != commands.ErrorCodeAuthFail {
		t.Fatalf("bad host cryptogram: %v", err)
	}
	if st := dev.Stats(); st.AuthFailures != 1 || st.SessionsAuthenticated != 0 {
		t.Fatalf("stats: %+v", st)
	}
	// An unknown authentication key.
	raw, _ = conn.Request(&commands.CommandMessage{CommandType: commands.CommandTypeCreateSession, Data: append([]byte{0, 9}, make([]byte, 8)...)})
	if _, err := commands.ParseResponse(raw); deviceError(err) != commands.ErrorCodeObjectNotFound {
		t.Fatalf("unknown authentication key: %v", err)
	}
}

// A corrupted MAC ends the session; so does the inactivity timeout.
func TestMACAndSessionLoss(t *testing.T) {
	dev, c := start(t)
	ch, conn, err := open(t, c, "password")
	if err != nil {
		t.Fatal(err)
	}
	echo, _ := commands.CreateEchoCommand([]byte("x"))
	conn.flipMAC = true
	if _, err := ch.SendEncryptedCommand(echo); deviceError(err) != commands.ErrorCodeAuthFail {
		t.Fatalf("corrupted MAC: %v", err)
	}
	if dev.Stats().MACFailures != 1 || dev.OpenSessions() != 0 {
		t.Fatalf("session kept after a bad MAC: %+v", dev.Stats())
	}
	ch, _, err = open(t, c, "password")
	if err != nil {
		t.Fatal(err)
	}
	dev.ExpireSessions()
	if _, err := ch.SendEncryptedCommand(echo); deviceError(err) != commands.ErrorCodeInvalidSession {
		t.Fatalf("expired session: %v", err)
	}
}

func TestSessionsFull(t *testing.T) {
	_, c := start(t)
	for i := 0; i < maxSessions; i++ {
		if _, _, err := open(t, c, "password"); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := open(t, c, "password"); deviceError(err) != commands.ErrorCodeSessionFull {
		t.Fatalf("17th session: %v", err)
	}
}

// The inactivity timeout frees sessions by itself.
func TestSessionTimeout(t *testing.T) {
	dev, c := start(t)
	dev.SetSessionTimeout(20 * time.Millisecond)
	if _, _, err := open(t, c, "password"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for dev.OpenSessions() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the session did not time out")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
