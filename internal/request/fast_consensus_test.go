package request

import (
	"crypto/rand"
	"encoding/binary"
	"reflect"
	"testing"

	tz "github.com/ecadlabs/gotez/v2"

	"github.com/signatory-go/signatory/internal/tezos"
)

// consensusMsg is a (pre)attestation in the shape fastConsensus reads.
func consensusMsg(magic, tag byte, slot uint16, level, round int32) []byte {
	b := make([]byte, consensusLen)
	b[0] = magic
	copy(b[1:5], []byte{0x7a, 0x06, 0xa7, 0x70})
	b[5] = 0x11 // branch
	b[37] = tag
	binary.BigEndian.PutUint16(b[38:], slot)
	binary.BigEndian.PutUint32(b[40:], uint32(level))
	binary.BigEndian.PutUint32(b[44:], uint32(round))
	b[48] = 0x22 // payload hash
	return b
}

// checkFastConsensus fails t when fastConsensus answers for msg and gotez's reading (decodeLatest)
// is not the same request.
func checkFastConsensus(t *testing.T, msg []byte) (answered bool) {
	t.Helper()
	fast, ok := fastConsensus(msg)
	if !ok {
		return false
	}
	slow, err := decodeLatest(msg, false)
	if err != nil {
		t.Fatalf("%x: the fast path accepted %+v, gotez refuses: %v", msg, fast, err)
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("%x: the fast path reads %+v, gotez %+v", msg, fast, slow)
	}
	return true
}

func consensusSeeds() [][]byte {
	out := [][]byte{
		consensusMsg(MagicPreattestation, 20, 0, 1, 0),
		consensusMsg(MagicAttestation, 21, 65535, 0x7fffffff, 0x7fffffff),
		consensusMsg(MagicAttestation, 21, 7, -1, -5), // negative level and round: gotez reads int32s
		consensusMsg(MagicPreattestation, 21, 1, 2, 3),
		consensusMsg(MagicAttestation, 20, 1, 2, 3),
		consensusMsg(MagicAttestation, 23, 1, 2, 3),
		consensusMsg(MagicAttestation, 41, 1, 2, 3),
		consensusMsg(MagicPreattestation, 40, 1, 2, 3),
		consensusMsg(MagicBlock, 20, 1, 2, 3),
	}
	long := append(consensusMsg(MagicAttestation, 21, 1, 2, 3), 0)
	short := consensusMsg(MagicAttestation, 21, 1, 2, 3)[:consensusLen-1]
	return append(out, long, short)
}

// TestFastConsensus: the plain preattestation and attestation are read by the fast path, as
// gotez reads them; every other shape near them is left to gotez.
func TestFastConsensus(t *testing.T) {
	t.Parallel()
	for i, msg := range consensusSeeds() {
		answered := checkFastConsensus(t, msg)
		if want := i < 3; answered != want {
			t.Fatalf("seed %d (%x): fast path answered %v, want %v", i, msg[:1], answered, want)
		}
	}
	for range 2000 {
		msg := make([]byte, consensusLen)
		rand.Read(msg)
		msg[0], msg[37] = MagicAttestation, 21
		if !checkFastConsensus(t, msg) {
			t.Fatalf("%x: declined", msg)
		}
	}
	req, err := Decode(consensusMsg(MagicAttestation, 21, 3, 9, 1), VersionLatest)
	if err != nil || req.Kind != Attestation || req.Level != 9 || req.Round != 1 || req.Slot != 3 || req.ChainID() != "NetXdQprcVkpaWU" {
		t.Fatalf("%+v %v", req, err)
	}
}

// FuzzFastConsensus: whenever fastConsensus answers, gotez reads the same request.
func FuzzFastConsensus(f *testing.F) {
	for _, s := range consensusSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		checkFastConsensus(t, msg)
	})
}

// TestChainIDString: the chain id's base58 is gotez's, for random ids.
func TestChainIDString(t *testing.T) {
	t.Parallel()
	for range 2000 {
		var id tz.ChainID
		rand.Read(id[:])
		if got, want := tezos.ChainIDString((*[4]byte)(&id)), id.String(); got != want {
			t.Fatalf("%x: %s, gotez %s", id, got, want)
		}
	}
}
