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

	"github.com/signatory-go/signatory/internal/testdaemon"
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

// deepTransaction is testdaemon.DeepTransaction as bytes.
func deepTransaction(depth int) []byte {
	b, _ := hex.DecodeString(testdaemon.DeepTransaction(depth))
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

// TestComplexityBudget: the children visits are bounded: a sequence of 1000 leaves needs 1000
// visits; with fewer the message is refused as too complex, with enough it passes. (The real
// budget, 16 visits per byte, is far above what any operation needs.)
func TestComplexityBudget(t *testing.T) {
	t.Parallel()
	msg := []byte{0x02}
	msg = binary.BigEndian.AppendUint32(msg, 2000)
	for range 1000 {
		msg = append(msg, 0x03, 0x0b)
	}
	if err := scanMicheline(msg, 500); err == nil || !strings.Contains(err.Error(), "too complex") {
		t.Fatalf("budget 500: %v", err)
	}
	if err := scanMicheline(msg, 1100); err != nil {
		t.Fatalf("budget 1100: %v", err)
	}
	if err := checkMichelineDepth(msg); err != nil {
		t.Fatal(err)
	}
}

func FuzzMichelineDepth(f *testing.F) {
	f.Add(deepTransaction(3))
	f.Add([]byte{0x02, 0, 0, 0, 2, 0x03, 0x0b})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<16 {
			return
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
