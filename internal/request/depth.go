package request

import "encoding/binary"

// MaxMichelineDepth is the deepest Micheline nesting a generic operation may carry. The decoder
// recurses once per level, with about 4 KiB of stack each: a 32 KiB operation nested to the
// end would take 64 MiB of stack and a tenth of a second. Real contracts and parameters stay far
// below this.
const MaxMichelineDepth = 512

// checkMichelineDepth refuses msg when some Micheline expression it may contain is nested deeper
// than MaxMichelineDepth, before the recursive decoder sees it. It does not know where the
// expressions of an operation start, so it considers every offset: node(j) is the Micheline node
// that would start at offset j, computed right to left from the nodes after it (a node's
// children start after it), in time linear in len(msg) plus the children visited by sequences.
// That last part is bounded by a budget: a message that exhausts it is refused as too complex
// (no legitimate operation comes near it).
func checkMichelineDepth(msg []byte) error {
	_, _, err := scanMicheline(msg, 16*len(msg)+1024, MaxMichelineDepth)
	return err
}

// scanMicheline is checkMichelineDepth with the budget of children visits and the deepest
// nesting allowed given. It returns, for every offset j of msg, end[j]: the offset after the node
// that starts at j, or 0 when no node starts there; and depth[j]: that node's nesting (a leaf is
// 1). A node starts at j exactly when the recursive decoder would read one there from msg.
func scanMicheline(msg []byte, budget, maxDepth int) (end, depth []int32, err error) {
	n := len(msg)
	// end and depth have two entries past the message, and zend one, each 0: "no node" (or no
	// number) starts there, so reading one or two bytes past a node needs no bounds test.
	end = make([]int32, n+2)
	depth = make([]int32, n+2)
	// zend[j] is the end of a zarith number whose bytes start at j (0: it does not end in msg).
	zend := make([]int32, n+1)
	// sized reads a 4-byte length at j and returns the offset after that many bytes, if they fit.
	sized := func(j int) (int, bool) {
		if j+4 > n {
			return 0, false
		}
		l := int(binary.BigEndian.Uint32(msg[j:]))
		if l > n-(j+4) {
			return 0, false
		}
		return j + 4 + l, true
	}
	// children walks the consecutive nodes from `from` and returns their greatest depth, or
	// ok=false when they do not end exactly at `to`.
	children := func(from, to int) (d int32, ok bool) {
		c := from
		for c < to {
			budget--
			if budget < 0 || end[c] == 0 {
				return 0, false
			}
			d = max(d, depth[c])
			c = int(end[c])
		}
		return d, c == to
	}
	// annotated returns the offset after the annotations at e, or 0.
	annotated := func(e int) int {
		if a, ok := sized(e); ok {
			return a
		}
		return 0
	}
	for j := n - 1; j >= 0; j-- {
		if msg[j]&0x80 != 0 {
			zend[j] = zend[j+1]
		} else {
			zend[j] = int32(j + 1)
		}
		var e, d int
		switch msg[j] {
		case 0x00: // int
			if z := zend[j+1]; z != 0 {
				e, d = int(z), 1
			}
		case 0x01, 0x0a: // string, bytes
			if a, ok := sized(j + 1); ok {
				e, d = a, 1
			}
		case 0x02: // sequence
			if to, ok := sized(j + 1); ok {
				if cd, ok := children(j+5, to); ok {
					e, d = to, int(cd)+1
				}
			}
		case 0x03: // prim, no args, no annots
			if j+2 <= n {
				e, d = j+2, 1
			}
		case 0x04: // prim, no args, annots
			if a, ok := sized(j + 2); ok {
				e, d = a, 1
			}
		case 0x05, 0x06: // prim, one arg (annots)
			if c := j + 2; end[c] != 0 {
				e, d = int(end[c]), int(depth[c])+1
				if msg[j] == 0x06 {
					e = annotated(e)
				}
			}
		case 0x07, 0x08: // prim, two args (annots)
			if c := j + 2; end[c] != 0 {
				if c2 := int(end[c]); end[c2] != 0 {
					e, d = int(end[c2]), int(max(depth[c], depth[c2]))+1
					if msg[j] == 0x08 {
						e = annotated(e)
					}
				}
			}
		case 0x09: // prim, n args, annots
			if to, ok := sized(j + 2); ok {
				if cd, ok := children(j+6, to); ok {
					e, d = annotated(to), int(cd)+1
				}
			}
		}
		if budget < 0 {
			return nil, nil, badRequest("generic operation is too complex to decode")
		}
		if e > 0 {
			if d > maxDepth {
				return nil, nil, badRequest("Micheline nesting deeper than %d levels", maxDepth)
			}
			end[j], depth[j] = int32(e), int32(d)
		}
	}
	return end[:n], depth[:n], nil
}
