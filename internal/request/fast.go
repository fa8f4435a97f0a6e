package request

import (
	"encoding/binary"

	tz "github.com/ecadlabs/gotez/v2"
)

// The generic operation a payout service or a wallet sends most is a batch of plain transactions.
// gotez decodes it through reflection (7.9 µs for one transaction on the project's machine);
// fastGeneric reads exactly that shape by hand, in a fraction of the time, and declines anything
// else, which gotez then decodes as before. gotez stays the oracle: FuzzFastGeneric asserts that
// whenever fastGeneric answers, gotez accepts the same bytes and finds the same operation kinds.
//
// The shape read (protocol 024 encodings, in their canonical form only: what gotez decodes and
// writes back as the same bytes, see errNotCanonical):
//
//	0x03 ‖ branch (32 bytes) ‖ one or more contents, each:
//	  108 (transaction) ‖ source (key hash: tag 0–4 ‖ 20 bytes) ‖ fee ‖ counter ‖ gas_limit ‖
//	  storage_limit ‖ amount (each a zarith natural: bytes with the high bit set, then one
//	  without, the last non-zero unless it is the only one; fee and amount 9 bytes at most,
//	  the others 10, see checkSizes) ‖ destination (0 ‖ key hash, or 1 ‖ 20 bytes ‖ padding
//	  byte 0) ‖ parameters: 0x00 for none, or 0xff, a
//	  short entrypoint tag (0–9; a named entrypoint, 255, is gotez's) and a value that is
//	  exactly Unit (length 2: 0x03 0x0b)
const tagTransaction = 108

// fastGeneric decodes msg (magic byte included) when it has the shape above.
func fastGeneric(msg []byte) (ops []string, ok bool) {
	if len(msg) < 1+32+1 || msg[0] != MagicGeneric {
		return nil, false
	}
	b := msg[1+32:]
	for len(b) > 0 {
		var kind string
		if b, kind, ok = fastTransaction(b); !ok {
			return nil, false
		}
		ops = append(ops, kind)
	}
	return ops, true
}

// fastTransaction reads one transaction at the start of b.
func fastTransaction(b []byte) (rest []byte, kind string, ok bool) {
	if len(b) < 1 || b[0] != tagTransaction {
		return nil, "", false
	}
	if b, ok = keyHash(b[1:]); !ok {
		return nil, "", false
	}
	// fee, counter, gas_limit, storage_limit, amount, each within the bytes the protocol reads
	for _, size := range [5]int{maxTezBytes, maxNumberBytes, maxNumberBytes, maxNumberBytes, maxTezBytes} {
		if b, ok = zarith(b, size); !ok {
			return nil, "", false
		}
	}
	if len(b) < 1 {
		return nil, "", false
	}
	implicit := false
	switch b[0] {
	case 0:
		implicit = true
		if b, ok = keyHash(b[1:]); !ok {
			return nil, "", false
		}
	case 1:
		if len(b) < 1+20+1 || b[1+20] != 0 { // a contract hash and its padding byte, 0
			return nil, "", false
		}
		b = b[1+20+1:]
	default:
		return nil, "", false
	}
	if len(b) == 0 { // the parameters' presence byte is missing: not canonical
		return nil, "", false
	}
	if b[0] == 0 {
		return b[1:], "transaction", true
	}
	if b[0] != 0xff {
		return nil, "", false
	}
	b = b[1:]
	if len(b) < 1+4+2 || int(b[0]) >= len(shortEntrypoints) {
		return nil, "", false
	}
	if binary.BigEndian.Uint32(b[1:]) != 2 || b[5] != 0x03 || b[6] != 0x0b {
		return nil, "", false
	}
	kind = "transaction"
	if ep := shortEntrypoints[b[0]]; implicit && IsPseudoOp(ep) {
		kind = ep // the protocol applies these on an implicit account (opKind)
	}
	return b[7:], kind, true
}

// shortEntrypoints are the entrypoints of the short tags 0–9 (Entrypoint_repr.smart_encoding).
var shortEntrypoints = [...]string{"default", "root", "do", "set_delegate", "remove_delegate",
	"deposit", "stake", "unstake", "finalize_unstake", "set_delegate_parameters"}

func keyHash(b []byte) ([]byte, bool) {
	if len(b) < 21 || b[0] > 4 {
		return nil, false
	}
	return b[21:], true
}

func zarith(b []byte, size int) ([]byte, bool) {
	limit := min(len(b), size)
	for i := 0; i < limit; i++ {
		if b[i]&0x80 == 0 {
			if i > 0 && b[i] == 0 { // a trailing zero byte: data-encoding refuses it
				return nil, false
			}
			return b[i+1:], true
		}
	}
	return nil, false
}

// A baker's most frequent requests are its preattestations and attestations, which gotez also
// decodes through reflection (44 allocations each). fastConsensus reads the two plain forms by
// hand, in the live protocol's encoding (what decodeLatest reads), and declines anything else
// (attestations with DAL content, BLS-mode tags, protocol 022's version 1), which gotez then
// decodes as before. FuzzFastConsensus asserts that whenever it answers, decodeLatest gives the
// same request.
//
//	0x12 (preattestation) or 0x13 (attestation) ‖ chain id (4 bytes) ‖ branch (32 bytes) ‖
//	tag: 20 after 0x12, 21 after 0x13 ‖ slot (uint16) ‖ level (int32) ‖ round (int32) ‖
//	block payload hash (32 bytes); nothing after it
const consensusLen = 1 + 4 + 32 + 1 + 2 + 4 + 4 + 32

// fastConsensus decodes msg (magic byte included) when it has the shape above.
func fastConsensus(msg []byte) (*Request, bool) {
	if len(msg) != consensusLen {
		return nil, false
	}
	req := &Request{}
	switch {
	case msg[0] == MagicPreattestation && msg[37] == 20:
		req.Kind = Preattestation
	case msg[0] == MagicAttestation && msg[37] == 21:
		req.Kind = Attestation
	default:
		return nil, false
	}
	var chain tz.ChainID
	copy(chain[:], msg[1:5])
	req.Chain = &chain
	req.Tag = msg[37]
	req.Slot = int32(binary.BigEndian.Uint16(msg[38:]))
	req.Level = int32(binary.BigEndian.Uint32(msg[40:]))
	req.Round = int32(binary.BigEndian.Uint32(msg[44:]))
	return req, true
}
