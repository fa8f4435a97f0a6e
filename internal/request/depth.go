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
func checkMichelineDepth(msg []byte) error { return scanMicheline(msg, 16*len(msg)+1024) }

// scanMicheline is checkMichelineDepth with the budget of children visits given.
func scanMicheline(msg []byte, budget int) error {
	n := len(msg)
	if n < 2 {
		return nil
	}
	// end[j] is the offset after the node at j, or 0 when no node starts there; depth[j] its
	// nesting (a leaf is 1). zend[j] is the end of a zarith number whose bytes start at j.
	end := make([]int32, n+1)
	depth := make([]int32, n+1)
	zend := make([]int32, n+1)
	u32 := func(j int) (int, bool) {
		if j+4 > n {
			return 0, false
		}
		return int(binary.BigEndian.Uint32(msg[j:])), true
	}
	// children walks the consecutive nodes in [from, to) and returns their greatest depth, or
	// ok=false when they do not tile the range exactly.
	children := func(from, to int) (d int32, ok bool) {
		for c := from; c < to; {
			budget--
			if budget < 0 || end[c] == 0 {
				return 0, false
			}
			d = max(d, depth[c])
			c = int(end[c])
		}
		return d, true
	}
	for j := n - 1; j >= 0; j-- {
		if msg[j]&0x80 != 0 && j+1 < n {
			zend[j] = zend[j+1]
		} else {
			zend[j] = int32(j + 1)
		}
		if msg[j]&0x80 != 0 && j+1 >= n {
			zend[j] = 0
		}
		var e, d int
		switch msg[j] {
		case 0x00: // int
			if j+1 < n && zend[j+1] != 0 {
				e, d = int(zend[j+1]), 1
			}
		case 0x01, 0x0a: // string, bytes
			if l, ok := u32(j + 1); ok && l <= n-(j+5) {
				e, d = j+5+l, 1
			}
		case 0x02: // sequence
			if l, ok := u32(j + 1); ok && l <= n-(j+5) {
				if cd, ok := children(j+5, j+5+l); ok {
					e, d = j+5+l, int(cd)+1
				}
			}
		case 0x03: // prim, no args, no annots
			if j+2 <= n {
				e, d = j+2, 1
			}
		case 0x04: // prim, no args, annots
			if l, ok := u32(j + 2); ok && l <= n-(j+6) {
				e, d = j+6+l, 1
			}
		case 0x05, 0x06: // prim, one arg (annots)
			if c := j + 2; c < n && end[c] != 0 {
				e, d = int(end[c]), int(depth[c])+1
				if msg[j] == 0x06 {
					if l, ok := u32(e); ok && l <= n-(e+4) {
						e += 4 + l
					} else {
						e = 0
					}
				}
			}
		case 0x07, 0x08: // prim, two args (annots)
			if c := j + 2; c < n && end[c] != 0 {
				if c2 := int(end[c]); c2 < n && end[c2] != 0 {
					e, d = int(end[c2]), int(max(depth[c], depth[c2]))+1
					if msg[j] == 0x08 {
						if l, ok := u32(e); ok && l <= n-(e+4) {
							e += 4 + l
						} else {
							e = 0
						}
					}
				}
			}
		case 0x09: // prim, n args, annots
			if l, ok := u32(j + 2); ok && l <= n-(j+6) {
				if cd, ok := children(j+6, j+6+l); ok {
					if al, ok := u32(j + 6 + l); ok && al <= n-(j+10+l) {
						e, d = j+10+l+al, int(cd)+1
					}
				}
			}
		}
		if budget < 0 {
			return badRequest("generic operation is too complex to decode")
		}
		if e > 0 {
			if d > MaxMichelineDepth {
				return badRequest("Micheline nesting deeper than %d levels", MaxMichelineDepth)
			}
			end[j], depth[j] = int32(e), int32(d)
		}
	}
	return nil
}
