// Package loadtest drives any octez remote signer over HTTP with prebuilt requests and reports
// throughput and latency percentiles. It is the engine of cmd/signatory-bench.
package loadtest

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// Workload names.
const (
	Generic   = "generic"   // the same transaction over and over: no watermark
	Consensus = "consensus" // preattestation then attestation at rising levels, one stream per (key, chain)
	Mixed     = "mixed"     // half the streams generic, half consensus
)

// genericTx is a reference transaction (vectors C11), signed as is.
const genericTx = "03573a2d2d49a3b9634d1605c3aa48ebdd5d21a5885ad17aa44c2b1d0dbcbcac686c004b415314d2b56b0481a3ae8c992ce8bb8dba0369d086039ecb2dc35000c0843d000076b2f1ea1cf6753888ac5488693977446652d79e00"

// stream produces request bodies for one worker. Bodies are prebuilt templates; a consensus
// stream patches the level's 8 hex digits in place, so building a request costs no allocation.
type stream struct {
	pkh       string
	path      string
	consensus bool
	bodies    [2][]byte // generic: [0] only; consensus: preattestation, attestation
	levelOff  int       // offset of the level's hex digits in each consensus body
	level     uint32
	next      int // 0 preattestation, 1 attestation
}

// consensusBody returns the JSON body `"<hex>"` of a tag-20 preattestation (magic 0x12) or tag-21
// attestation (0x13) for chain, with level 0, and the offset of the level's hex digits.
func consensusBody(magic byte, chain [4]byte, branchSeed string) ([]byte, int) {
	b := []byte{magic}
	b = append(b, chain[:]...)
	branch := sha256.Sum256([]byte(branchSeed))
	b = append(b, branch[:]...)
	tag := byte(20)
	if magic == 0x13 {
		tag = 21
	}
	b = append(b, tag, 0, 1) // tag, slot 1
	levelAt := len(b)        // level int32, round int32
	b = binary.BigEndian.AppendUint32(b, 0)
	b = binary.BigEndian.AppendUint32(b, 0)
	ph := sha256.Sum256([]byte("payload" + branchSeed))
	b = append(b, ph[:]...)
	return []byte(`"` + hex.EncodeToString(b) + `"`), 1 + 2*levelAt
}

// chainFor returns the chain id of stream i. Every run gets fresh chain ids from runID, so its
// watermarks start empty; streams 0..keys-1 share one chain (one key each, like a baker's keys),
// and further streams of the same key get a chain of their own, so streams never conflict.
func chainFor(runID uint32, i, keys int) [4]byte {
	var c [4]byte
	binary.BigEndian.PutUint32(c[:], runID*1024+uint32(i/keys))
	return c
}

func newStreams(workload string, pkhs []string, n int, startLevel, runID uint32) ([]*stream, error) {
	if len(pkhs) == 0 {
		return nil, fmt.Errorf("no keys given")
	}
	out := make([]*stream, n)
	for i := range out {
		pkh := pkhs[i%len(pkhs)]
		s := &stream{pkh: pkh, path: "/keys/" + pkh, level: startLevel}
		switch workload {
		case Generic:
		case Consensus:
			s.consensus = true
		case Mixed:
			s.consensus = i%2 == 1
		default:
			return nil, fmt.Errorf("unknown workload %q (generic, consensus, mixed)", workload)
		}
		if s.consensus {
			chain := chainFor(runID, i, len(pkhs))
			seed := fmt.Sprintf("%s/%d", pkh, i)
			s.bodies[0], s.levelOff = consensusBody(0x12, chain, seed)
			s.bodies[1], _ = consensusBody(0x13, chain, seed)
		} else {
			s.bodies[0] = []byte(`"` + genericTx + `"`)
		}
		out[i] = s
	}
	return out, nil
}

const hexDigits = "0123456789abcdef"

// body returns the next request body. For consensus streams the returned slice is reused.
func (s *stream) body() []byte {
	if !s.consensus {
		return s.bodies[0]
	}
	b := s.bodies[s.next]
	if s.next == 0 {
		s.level++
	}
	for i := 0; i < 8; i++ {
		b[s.levelOff+i] = hexDigits[(s.level>>(28-4*uint(i)))&0xf]
	}
	s.next ^= 1
	return b
}

// kind names the request kind of the body last returned, for reports.
func (s *stream) kind() string {
	if !s.consensus {
		return "generic"
	}
	if s.next == 1 {
		return "preattestation"
	}
	return "attestation"
}
