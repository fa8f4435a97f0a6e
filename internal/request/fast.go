package request

import (
	"bytes"
	"encoding/binary"
	"sync"
)

// The generic operation a payout service or a wallet sends most is a batch of plain transactions.
// gotez decodes it through reflection (7.9 µs for one transaction on the project's machine);
// fastGeneric reads exactly that shape by hand, in a fraction of the time, and declines anything
// else, which gotez then decodes as before. gotez stays the oracle: FuzzFastGeneric asserts that
// whenever fastGeneric answers, gotez accepts the same bytes and finds the same operation kinds.
//
// The shape read (protocol 024 encodings, gotez's rules):
//
//	0x03 ‖ branch (32 bytes) ‖ one or more contents, each:
//	  108 (transaction) ‖ source (key hash: tag 0–4 ‖ 20 bytes) ‖ fee ‖ counter ‖ gas_limit ‖
//	  storage_limit ‖ amount (each a zarith natural: bytes with the high bit set, then one
//	  without, 1024 bytes at most) ‖ destination (0 ‖ key hash, or 1 ‖ 20 bytes ‖ padding byte) ‖
//	  parameters: absent at the very end, 0x00 for none, or any other byte then an entrypoint tag
//	  other than 255 (named) and a value that is exactly Unit (length 2: 0x03 0x0b)

const (
	tagTransaction = 108
	maxZarith      = 1024 // gotez's bound on a zarith number's length
)

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
	src := b[1:]
	if b, ok = keyHash(b[1:]); !ok {
		return nil, "", false
	}
	src = src[:21]
	self := false // the destination is the source: only then is an entrypoint a pseudo operation
	for range 5 { // fee, counter, gas_limit, storage_limit, amount
		if b, ok = zarith(b); !ok {
			return nil, "", false
		}
	}
	if len(b) < 1 {
		return nil, "", false
	}
	switch b[0] {
	case 0:
		dst := b[1:]
		if b, ok = keyHash(b[1:]); !ok {
			return nil, "", false
		}
		self = bytes.Equal(dst[:21], src)
	case 1:
		if len(b) < 1+20+1 {
			return nil, "", false
		}
		b = b[1+20+1:]
	default:
		return nil, "", false
	}
	if len(b) == 0 { // gotez reads a missing option at the very end as none
		return b, "transaction", true
	}
	if b[0] == 0 {
		return b[1:], "transaction", true
	}
	b = b[1:]
	if len(b) < 1+4+2 || b[0] == 255 {
		return nil, "", false
	}
	tag := b[0]
	if binary.BigEndian.Uint32(b[1:]) != 2 || b[5] != 0x03 || b[6] != 0x0b {
		return nil, "", false
	}
	if kind, ok = entrypointKind(tag); ok && !self {
		kind = "transaction" // stake, unstake, … to another account are plain transactions
	}
	return b[7:], kind, ok
}

func keyHash(b []byte) ([]byte, bool) {
	if len(b) < 21 || b[0] > 4 {
		return nil, false
	}
	return b[21:], true
}

func zarith(b []byte) ([]byte, bool) {
	limit := min(len(b), maxZarith)
	for i := 0; i < limit; i++ {
		if b[i]&0x80 == 0 {
			return b[i+1:], true
		}
	}
	return nil, false
}

var entrypoints struct {
	once  sync.Once
	kinds [255]string // "" when gotez does not know the tag
}

// entrypointKind is the operation kind of a transaction to entrypoint tag with a Unit value, as
// gotez and OpKind decide it: learnt once by decoding such a transaction with gotez for every tag,
// so the two decoders cannot disagree on it.
func entrypointKind(tag byte) (string, bool) {
	entrypoints.once.Do(func() {
		for t := range 255 {
			if req, err := decodeLatest(unitTransaction(byte(t)), false); err == nil && len(req.Ops) == 1 {
				entrypoints.kinds[t] = req.Ops[0]
			}
		}
	})
	k := entrypoints.kinds[tag]
	return k, k != ""
}

// unitTransaction is a generic operation with one transaction to entrypoint tag with Unit.
func unitTransaction(tag byte) []byte {
	msg := make([]byte, 0, 80)
	msg = append(msg, MagicGeneric)
	msg = append(msg, make([]byte, 32)...)            // branch
	msg = append(msg, tagTransaction, 0)              // transaction, tz1 source
	msg = append(msg, make([]byte, 20)...)            //
	msg = append(msg, 1, 1, 1, 1, 0)                  // fee, counter, gas, storage, amount
	msg = append(msg, 0, 0)                           // destination: tz1
	msg = append(msg, make([]byte, 20)...)            //
	msg = append(msg, 0xff, tag, 0, 0, 0, 2, 3, 0x0b) // parameters: tag, Unit
	return msg
}
