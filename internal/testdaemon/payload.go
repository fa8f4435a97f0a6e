package testdaemon

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// Magic bytes of the consensus operations Consensus builds.
const (
	MagicPreattestation = 0x12 // tag 20
	MagicAttestation    = 0x13 // tag 21
)

// Consensus returns, in hex, a preattestation (magic 0x12, tag 20) or an attestation (magic 0x13,
// tag 21) to sign: magic ‖ chain ‖ branch ‖ tag ‖ slot 7 ‖ level ‖ round ‖ zero payload hash.
// chain is the chain ID in hex (4 bytes, e.g. "b3d79f99" for NetXo5iVw1vBoxM). variant is the
// first byte of the branch, so two variants at one level and round are different payloads.
func Consensus(magic byte, chain string, level, round int32, variant byte) string {
	c, err := hex.DecodeString(chain)
	if err != nil || len(c) != 4 || (magic != MagicPreattestation && magic != MagicAttestation) {
		panic(fmt.Sprintf("testdaemon.Consensus: magic %#x, chain %q", magic, chain))
	}
	b := append([]byte{magic}, c...)
	branch := make([]byte, 32)
	branch[0] = variant
	b = append(b, branch...)
	b = append(b, magic+2, 0, 7) // 0x12 → tag 20, 0x13 → tag 21; slot 7
	b = binary.BigEndian.AppendUint32(b, uint32(level))
	b = binary.BigEndian.AppendUint32(b, uint32(round))
	return hex.EncodeToString(append(b, make([]byte, 32)...))
}

// Attestation is Consensus for a tag-21 attestation.
func Attestation(chain string, level, round int32, variant byte) string {
	return Consensus(MagicAttestation, chain, level, round, variant)
}

// Preattestation is Consensus for a tag-20 preattestation.
func Preattestation(chain string, level, round int32, variant byte) string {
	return Consensus(MagicPreattestation, chain, level, round, variant)
}
