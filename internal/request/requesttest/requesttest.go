// Package requesttest builds Tezos payloads to sign for tests (consensus operations of every tag,
// blocks, generic operations, deep Micheline), in the live protocol's encodings, in hex.
package requesttest

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/ecadlabs/gotez/v2/b58"
	"github.com/signatory-go/signatory/internal/tezos"
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
		panic(fmt.Sprintf("requesttest.Consensus: magic %#x, chain %q", magic, chain))
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

// Consensus tags ConsensusTag builds.
const (
	TagPreattestation     = 20
	TagAttestation        = 21
	TagAttestationWithDAL = 23
	TagBLSPreattestation  = 40
	TagBLSAttestation     = 41
)

// ConsensusTag returns, in hex, a consensus operation to sign with any tag of the live protocol:
// 20 (preattestation) and 40 (BLS-mode preattestation) under magic 0x12; 21 (attestation),
// 23 (attestation with DAL) and 41 (BLS-mode attestation) under magic 0x13. Tags 20, 21 and 23
// carry slot 7; tag 23 ends with a DAL bitfield of 5. variant is the first byte of the branch.
func ConsensusTag(tag byte, chain string, level, round int32, variant byte) string {
	c, err := hex.DecodeString(chain)
	if err != nil || len(c) != 4 {
		panic(fmt.Sprintf("requesttest.ConsensusTag: chain %q", chain))
	}
	var magic byte
	switch tag {
	case TagPreattestation, TagBLSPreattestation:
		magic = MagicPreattestation
	case TagAttestation, TagAttestationWithDAL, TagBLSAttestation:
		magic = MagicAttestation
	default:
		panic(fmt.Sprintf("requesttest.ConsensusTag: tag %d", tag))
	}
	b := append([]byte{magic}, c...)
	branch := make([]byte, 32)
	branch[0] = variant
	b = append(append(b, branch...), tag)
	if tag != TagBLSPreattestation && tag != TagBLSAttestation {
		b = append(b, 0, 7)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(level))
	b = binary.BigEndian.AppendUint32(b, uint32(round))
	b = append(b, make([]byte, 32)...)
	if tag == TagAttestationWithDAL {
		b = append(b, 5)
	}
	return hex.EncodeToString(b)
}

// Block returns, in hex, a block header to sign (magic 0x11) at level and round (the round is the
// last element of the Tenderbake fitness, as bakers send it). variant is the first byte of the
// predecessor, so two variants at one level and round are different blocks.
func Block(chain string, level, round int32, variant byte) string {
	c, err := hex.DecodeString(chain)
	if err != nil || len(c) != 4 {
		panic(fmt.Sprintf("requesttest.Block: chain %q", chain))
	}
	u32 := binary.BigEndian.AppendUint32
	b := append([]byte{0x11}, c...)
	b = u32(b, uint32(level))
	b = append(b, 0x18) // proto
	pred := make([]byte, 32)
	pred[0] = variant
	b = append(b, pred...)
	b = binary.BigEndian.AppendUint64(b, 0x69a8c3a3) // timestamp
	b = append(b, 4)                                 // validation passes
	b = append(b, make([]byte, 32)...)               // operations hash
	// fitness: version 02, level, no locked round, predecessor round, round
	fit := u32(nil, 1)
	fit = append(fit, 2)
	fit = u32(u32(fit, 4), uint32(level))
	fit = u32(fit, 0)
	fit = u32(u32(fit, 4), 0xffffffff)
	fit = u32(u32(fit, 4), uint32(round))
	b = append(u32(b, uint32(len(fit))), fit...)
	b = append(b, make([]byte, 32)...) // context
	b = append(b, make([]byte, 32)...) // payload hash
	b = u32(b, 0)                      // payload round
	b = append(b, make([]byte, 8)...)  // proof-of-work nonce
	b = append(b, 0, 0)                // no seed nonce hash; per-block votes
	return hex.EncodeToString(b)
}

// DeepTransaction returns, in hex, a generic operation: one transaction whose parameter is a
// Micheline prim with one argument, nested depth times (2 bytes a level).
func DeepTransaction(depth int) string {
	b := []byte{0x03}
	b = append(b, make([]byte, 32)...) // branch
	b = append(b, 0x6c, 0x00)          // transaction, tz1 source
	b = append(b, make([]byte, 20)...)
	b = append(b, 0x01, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00) // fee, counter, gas, storage, amount; tz1 destination
	b = append(b, make([]byte, 20)...)
	b = append(b, 0xff, 0x00) // parameters: default entrypoint
	m := make([]byte, 0, 2*depth+2)
	for range depth {
		m = append(m, 0x05, 0x09)
	}
	m = append(m, 0x03, 0x0b)
	b = binary.BigEndian.AppendUint32(b, uint32(len(m)))
	return hex.EncodeToString(append(b, m...))
}

// Op is one manager operation of a generic request built by Operation.
type Op struct {
	Kind    string // "transaction" or "delegation"
	Counter uint64
	Fee     uint64 // mutez
	Storage uint64 // storage limit, bytes
	Amount  uint64 // mutez (transaction)
	Dest    string // transaction destination: tz1…tz4 or KT1…
	Entry   string // a named entrypoint called with Unit (transaction); "" for none
	// EmptyName writes parameters with the empty entrypoint name (the protocol reads it as
	// default) when Entry is "".
	EmptyName bool
	Delegate  string // delegation: the new delegate, "" to withdraw
}

// Operation returns, in hex, a generic request (magic 0x03, zero branch) of ops from the tz1 zero
// address, in protocol 024's encodings (gotez decodes it; the tests of spending limits use it).
func Operation(ops ...Op) string {
	b := append([]byte{0x03}, make([]byte, 32)...)
	for _, c := range ops {
		switch c.Kind {
		case "transaction":
			b = append(b, 108)
		case "delegation":
			b = append(b, 110)
		default:
			panic("requesttest.Operation: kind " + c.Kind)
		}
		b = append(b, 0)
		b = append(b, make([]byte, 20)...)
		b = zarith(b, c.Fee)
		b = zarith(b, c.Counter)
		b = zarith(b, 10000) // gas limit
		b = zarith(b, c.Storage)
		switch c.Kind {
		case "transaction":
			b = zarith(b, c.Amount)
			if strings.HasPrefix(c.Dest, "KT1") {
				kt, err := b58.ParseContractHash([]byte(c.Dest))
				if err != nil {
					panic(err)
				}
				b = append(append(append(b, 1), kt[:]...), 0)
			} else {
				b = append(append(b, 0), implicit(c.Dest)...)
			}
			if c.Entry == "" && !c.EmptyName {
				b = append(b, 0)
			} else {
				b = append(b, 0xff, 0xff, byte(len(c.Entry)))
				b = append(b, c.Entry...)
				b = binary.BigEndian.AppendUint32(b, 2)
				b = append(b, 0x03, 0x0b) // Unit
			}
		case "delegation":
			if c.Delegate == "" {
				b = append(b, 0)
			} else {
				b = append(append(b, 0xff), implicit(c.Delegate)...)
			}
		}
	}
	return hex.EncodeToString(b)
}

// implicit is an implicit address's encoding: its tag (tz1 0 … tz4 3) and 20-byte hash.
func implicit(addr string) []byte {
	pkh, err := tezos.ParsePublicKeyHash(addr)
	if err != nil {
		panic(err)
	}
	return append([]byte{addr[2] - '1'}, pkh.PublicKeyHash()...)
}

// zarith appends n as a Tezos natural (7 bits a byte, low first).
func zarith(b []byte, n uint64) []byte {
	for n >= 0x80 {
		b = append(b, byte(n)|0x80)
		n >>= 7
	}
	return append(b, byte(n))
}
