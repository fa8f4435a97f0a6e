package request

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"

	tz "github.com/ecadlabs/gotez/v2"
	"github.com/ecadlabs/gotez/v2/encoding"
	"github.com/ecadlabs/gotez/v2/protocol/core/expression"

	"github.com/signatory-go/signatory/internal/request/requesttest"
)

// randomExpr builds a random Micheline tree of exactly the given depth: every kind of node and
// leaf (integers of one to a dozen bytes, negative ones, strings, bytes and annotations from empty
// to long), the deepest child at any position, siblings of other depths.
func randomExpr(rng *rand.Rand, depth int) expression.Expression {
	text := func() string { return strings.Repeat("a", []int{0, 1, 2, 7, 300}[rng.IntN(5)]) }
	if depth <= 1 {
		switch rng.IntN(6) {
		case 0:
			return expression.String{String: text()}
		case 1:
			return expression.Prim00(expression.Prim(rng.IntN(100)))
		case 2:
			return &expression.Prim0X{Prim: 3, Annots: "%" + text()}
		case 3:
			n := new(big.Int).SetBytes([]byte(strings.Repeat("\x93", rng.IntN(12))))
			if rng.IntN(2) == 0 {
				n.Neg(n)
			}
			return expression.Int{Int: tz.NewBigInt(n)}
		default:
			return expression.Bytes{Bytes: []byte(text())}
		}
	}
	deep := randomExpr(rng, depth-1)
	other := func() expression.Expression { return randomExpr(rng, 1+rng.IntN(min(depth-1, 3))) }
	// place puts deep at a random position among n children.
	place := func(n int) []expression.Expression {
		out := make([]expression.Expression, n)
		at := rng.IntN(n)
		for i := range out {
			if i == at {
				out[i] = deep
			} else {
				out[i] = other()
			}
		}
		return out
	}
	switch rng.IntN(6) {
	case 0:
		return expression.Seq{Value: place(1 + rng.IntN(4))}
	case 1:
		return &expression.Prim10{Prim: 5, Arg: deep}
	case 2:
		return &expression.Prim1X{Prim: 5, Arg: deep, Annots: ":" + text()}
	case 3:
		return &expression.Prim20{Prim: 7, Args: [2]expression.Expression(place(2))}
	case 4:
		return &expression.Prim2X{Prim: 7, Args: [2]expression.Expression(place(2)), Annots: "@" + text()}
	default:
		annots := ""
		if rng.IntN(2) == 0 {
			annots = "%" + text()
		}
		return &expression.PrimXX{Prim: 9, Args: place(1 + rng.IntN(4)), Annots: annots}
	}
}

// TestMichelineDepthAgainstGotez: expressions encoded by gotez at depths around the limit are
// accepted exactly up to MaxMichelineDepth, alone and inside surrounding bytes.
func TestMichelineDepthAgainstGotez(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, d := range []int{1, 2, 3, 50, MaxMichelineDepth - 1, MaxMichelineDepth, MaxMichelineDepth + 1, MaxMichelineDepth + 40} {
		for range 5 {
			var e expression.Expression = randomExpr(rng, d)
			var w bytes.Buffer
			if err := encoding.Encode(&w, &e); err != nil {
				t.Fatal(err)
			}
			buf := w.Bytes()
			// gotez reads it back whole
			var back expression.Expression
			if rest, err := encoding.Decode(buf, &back); err != nil || len(rest) != 0 {
				t.Fatalf("gotez decode: %v, %d left", err, len(rest))
			}
			wrapped := append(append([]byte{0x03, 0xff, 0x00}, binary.BigEndian.AppendUint32(nil, uint32(len(buf)))...), buf...)
			for _, msg := range [][]byte{buf, wrapped} {
				err := checkMichelineDepth(msg)
				if (err == nil) != (d <= MaxMichelineDepth) {
					t.Fatalf("depth %d (%d bytes): %v", d, len(msg), err)
				}
			}
		}
	}
}

// deepTransaction is requesttest.DeepTransaction as bytes.
func deepTransaction(depth int) []byte {
	b, _ := hex.DecodeString(requesttest.DeepTransaction(depth))
	return b
}

// TestDeepTransactionRefused: a transaction nested past the limit is refused before the
// recursive decoder runs, also at sizes that crashed the process before the check; one at the
// limit decodes.
func TestDeepTransactionRefused(t *testing.T) {
	t.Parallel()
	if _, err := Decode(deepTransaction(MaxMichelineDepth-1), VersionLatest); err != nil {
		t.Fatalf("depth %d: %v", MaxMichelineDepth-1, err)
	}
	for _, d := range []int{MaxMichelineDepth + 1, 16 << 10, 4 << 20} {
		_, err := Decode(deepTransaction(d), VersionLatest)
		if err == nil || !strings.Contains(err.Error(), "nesting deeper") {
			t.Fatalf("depth %d: %v", d, err)
		}
	}
}

// TestComplexityBudget: the children visits are bounded: a sequence of 1000 leaves needs exactly
// 1000 visits (no other offset of the message starts a sequence); with one fewer the message is
// refused as too complex, with exactly enough it passes and the sequence is read whole. (The real
// budget, 16 visits per byte, is far above what any operation needs.)
func TestComplexityBudget(t *testing.T) {
	t.Parallel()
	msg := []byte{0x02}
	msg = binary.BigEndian.AppendUint32(msg, 2000)
	for range 1000 {
		msg = append(msg, 0x03, 0x0b)
	}
	if _, _, err := scanMicheline(msg, 999, MaxMichelineDepth); err == nil || !strings.Contains(err.Error(), "too complex") {
		t.Fatalf("budget 999: %v", err)
	}
	end, depth, err := scanMicheline(msg, 1000, MaxMichelineDepth)
	if err != nil {
		t.Fatalf("budget 1000: %v", err)
	}
	if int(end[0]) != len(msg) || depth[0] != 2 {
		t.Fatalf("budget 1000: the sequence read as ending at %d with depth %d", end[0], depth[0])
	}
	if err := checkMichelineDepth(msg); err != nil {
		t.Fatal(err)
	}
}

// refNode reads the Micheline node at offset j of msg the plain recursive way, as octez's binary
// decoder does (a length-prefixed part is decoded from its own slice, and must be used up
// exactly): the offset after it and its nesting, or ok=false when no node can be read there. It
// is the reference scanMicheline's tables are compared with.
func refNode(msg []byte, j int) (end, depth int, ok bool) {
	n := len(msg)
	if j >= n {
		return 0, 0, false
	}
	// sized: the offset after the length-prefixed part whose length is at `at`.
	sized := func(at int) (int, bool) {
		if n-at < 4 {
			return 0, false
		}
		l := uint64(binary.BigEndian.Uint32(msg[at:]))
		if uint64(n-at-4) < l {
			return 0, false
		}
		return at + 4 + int(l), true
	}
	// list reads nodes from `from` in msg[:to] until they use it up.
	list := func(from, to int) (int, bool) {
		d := 0
		for from < to {
			e, cd, ok := refNode(msg[:to], from)
			if !ok {
				return 0, false
			}
			d, from = max(d, cd), e
		}
		return d, true
	}
	switch msg[j] {
	case 0x00:
		k := j + 1
		for k < n && msg[k]&0x80 != 0 {
			k++
		}
		if k >= n {
			return 0, 0, false
		}
		return k + 1, 1, true
	case 0x01, 0x0a:
		e, ok := sized(j + 1)
		return e, 1, ok
	case 0x02:
		to, ok := sized(j + 1)
		if !ok {
			return 0, 0, false
		}
		d, ok := list(j+5, to)
		return to, d + 1, ok
	case 0x03:
		return j + 2, 1, j+2 <= n
	case 0x04:
		e, ok := sized(j + 2)
		return e, 1, ok
	case 0x05, 0x06, 0x07, 0x08:
		e, d, ok := refNode(msg, j+2)
		if !ok {
			return 0, 0, false
		}
		if msg[j] >= 0x07 {
			var d2 int
			if e, d2, ok = refNode(msg, e); !ok {
				return 0, 0, false
			}
			d = max(d, d2)
		}
		if msg[j] == 0x06 || msg[j] == 0x08 {
			if e, ok = sized(e); !ok {
				return 0, 0, false
			}
		}
		return e, d + 1, true
	case 0x09:
		to, ok := sized(j + 2)
		if !ok {
			return 0, 0, false
		}
		d, ok := list(j+6, to)
		if !ok {
			return 0, 0, false
		}
		e, ok := sized(to)
		return e, d + 1, ok
	}
	return 0, 0, false
}

// checkScanAgainstReference compares scanMicheline's reading of every offset of msg with refNode's,
// and its verdict at every depth limit up to the deepest node with the deepest node's depth.
func checkScanAgainstReference(t *testing.T, msg []byte) {
	t.Helper()
	end, depth, err := scanMicheline(msg, 1<<30, 1<<30)
	if err != nil {
		t.Fatalf("%x: %v", msg, err)
	}
	deepest := 0
	for j := range msg {
		e, d, ok := refNode(msg, j)
		if !ok {
			e, d = 0, 0
		}
		if int(end[j]) != e || int(depth[j]) != d {
			t.Fatalf("%x at %d: scanned (end %d, depth %d), the decoder reads (end %d, depth %d)", msg, j, end[j], depth[j], e, d)
		}
		deepest = max(deepest, d)
	}
	for limit := max(deepest-2, 0); limit <= deepest; limit++ {
		_, _, err := scanMicheline(msg, 1<<30, limit)
		if (err != nil) != (deepest > limit) {
			t.Fatalf("%x: deepest node %d, limit %d: %v", msg, deepest, limit, err)
		}
	}
}

// randomMicheline: a random message, weighted to the tags and small lengths, so
// that nodes ending exactly at the end of the message, one byte short and one byte long are all
// frequent.
func randomMicheline(rng *rand.Rand) []byte {
	var b []byte
	for range 1 + rng.IntN(24) {
		switch rng.IntN(4) {
		case 0:
			b = append(b, byte(rng.IntN(11)))
		case 1:
			b = binary.BigEndian.AppendUint32(b, uint32(rng.IntN(10)))
		case 2:
			b = append(b, 0x80|byte(rng.IntN(128)))
		default:
			b = append(b, byte(rng.IntN(256)))
		}
	}
	return b
}

// TestMichelineScanAgainstReference: at every offset of gotez-encoded expressions of every kind
// of node (whole, cut at every length, each byte changed), and of random messages made of tags
// and small lengths, the pre-scan reads exactly the node the recursive decoder reads, and
// refuses exactly when the deepest is past the limit.
func TestMichelineScanAgainstReference(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	for range 300 {
		var e expression.Expression = randomExpr(rng, 1+rng.IntN(5))
		var w bytes.Buffer
		if err := encoding.Encode(&w, &e); err != nil {
			t.Fatal(err)
		}
		buf := w.Bytes()
		if len(buf) > 2000 {
			continue
		}
		for cut := range len(buf) + 1 {
			checkScanAgainstReference(t, buf[:cut])
		}
		for range 20 {
			b := bytes.Clone(buf)
			b[rng.IntN(len(b))] = byte(rng.IntN(12))
			checkScanAgainstReference(t, b)
		}
	}
	for range 50000 {
		checkScanAgainstReference(t, randomMicheline(rng))
	}
}

func FuzzMichelineDepth(f *testing.F) {
	f.Add(deepTransaction(3))
	f.Add([]byte{0x02, 0, 0, 0, 2, 0x03, 0x0b})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<16 {
			return
		}
		if len(b) <= 1024 {
			// small enough for the recursive reference at every offset
			checkScanAgainstReference(t, b)
		}
		if err := checkMichelineDepth(b); err != nil {
			return
		}
		// Accepted: gotez may decode an expression at offset 0 without going deeper.
		var e expression.Expression
		if _, err := encoding.Decode(b, &e); err == nil && exprDepth(e) > MaxMichelineDepth {
			t.Fatalf("accepted an expression of depth %d", exprDepth(e))
		}
	})
}

func exprDepth(e expression.Expression) int {
	d := 0
	switch v := e.(type) {
	case expression.Seq:
		for _, c := range v.Value {
			d = max(d, exprDepth(c))
		}
	case *expression.Prim10:
		d = exprDepth(v.Arg)
	case *expression.Prim1X:
		d = exprDepth(v.Arg)
	case *expression.Prim20:
		d = max(exprDepth(v.Args[0]), exprDepth(v.Args[1]))
	case *expression.Prim2X:
		d = max(exprDepth(v.Args[0]), exprDepth(v.Args[1]))
	case *expression.PrimXX:
		for _, c := range v.Args {
			d = max(d, exprDepth(c))
		}
	}
	return d + 1
}
