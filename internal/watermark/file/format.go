package file

import (
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"maps"
	"math"
	"slices"

	"github.com/ecadlabs/gotez/v2/b58"

	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/watermark"
)

// classes are the stored classes in slot order.
var classes = [...]watermark.Class{watermark.Block, watermark.Preattestation, watermark.Attestation}

// attestationWithDAL is the reference's separate class name, folded into attestation on read.
const attestationWithDAL = "attestation_with_dal"

func classIndex(c watermark.Class) int {
	switch c {
	case watermark.Block:
		return 0
	case watermark.Preattestation:
		return 1
	case watermark.Attestation:
		return 2
	}
	return -1
}

// slot is one stored mark with its base58 hash cached for encoding ("" when there is no digest).
type slot struct {
	mark watermark.Mark
	hash string
	ok   bool
}

func newSlot(m watermark.Mark) slot {
	s := slot{mark: m, ok: true}
	if m.HasDigest {
		s.hash = tezos.PayloadHashString(&m.Digest)
	}
	return s
}

// keyMarks are one key's marks, by class.
type keyMarks = [len(classes)]slot

// shards is the number of parts a state's marks are split into by key hash: a batch copies only
// the parts it changes, so that its cost does not grow with the keys on its chain (one map of
// 10,000 keys, copied whole, took 2.7 ms and 3.4 MB per batch; see BenchmarkAdvanceManyKeys).
const shards = 64

// state is one chain's watermarks. A published state is never modified: a batch clones it and
// sets its changes into the clone.
type state struct {
	// marks are pkh → slots, in shards by shardOf(pkh). A clone shares every shard with its
	// original; set copies a shard the first time it changes it (own). The slots a map points to
	// are never modified.
	marks [shards]map[string]*keyMarks
	own   [shards]bool
	// extra holds entries under class names we do not use (e.g. the reference's legacy
	// "endorsement"), per pkh, kept verbatim so that a rewrite never drops them. Never modified.
	extra map[string]map[string]json.RawMessage
}

func emptyState() *state { return &state{} }

// clone returns a copy of s that shares its shards until it changes them.
func (s *state) clone() *state { return &state{marks: s.marks, extra: s.extra} }

// seal marks s as published (read without a lock, shared by its clones): it owns no shard any
// more, so that a set on it, which the store never makes, would copy a shard rather than change
// one that readers and clones hold.
func (s *state) seal() *state {
	s.own = [shards]bool{}
	return s
}

// shardOf is FNV-1a of pkh, reduced to a shard.
func shardOf(pkh string) int {
	h := uint32(2166136261)
	for i := 0; i < len(pkh); i++ {
		h = (h ^ uint32(pkh[i])) * 16777619
	}
	return int(h % shards)
}

// of returns pkh's slots (all empty when it has none).
func (s *state) of(pkh string) keyMarks {
	if v := s.marks[shardOf(pkh)][pkh]; v != nil {
		return *v
	}
	return keyMarks{}
}

// has reports whether s holds pkh.
func (s *state) has(pkh string) bool {
	_, ok := s.marks[shardOf(pkh)][pkh]
	return ok
}

// set makes v pkh's slots. s must not be published.
func (s *state) set(pkh string, v keyMarks) {
	i := shardOf(pkh)
	if !s.own[i] {
		m := make(map[string]*keyMarks, len(s.marks[i])+1)
		maps.Copy(m, s.marks[i])
		s.marks[i] = m
		s.own[i] = true
	}
	s.marks[i][pkh] = &v
}

// all yields every key's slots, in no particular order.
func (s *state) all() iter.Seq2[string, keyMarks] {
	return func(yield func(string, keyMarks) bool) {
		for _, m := range s.marks {
			for pkh, v := range m {
				if !yield(pkh, *v) {
					return
				}
			}
		}
	}
}

// fileMark is one mark as the reference writes it, plus the signature released for it. The
// reference's reader ignores fields it does not know, so it still reads our files.
type fileMark struct {
	Level     int32   `json:"level"`
	Round     int32   `json:"round"`
	Hash      *string `json:"hash"`
	Signature string  `json:"signature,omitempty"`
}

// encode serialises s in the reference format: {pkh: {class: {level, round, hash, signature}}},
// 4-space indent. The attestation mark is written under "attestation" and, without its signature,
// under the reference's "attestation_with_dal" too: the reference keeps a separate watermark for
// DAL attestations, and after a rollback it must find every level we attested.
func encode(s *state) ([]byte, error) {
	out := encodeMap(s)
	return json.MarshalIndent(out, "", "    ")
}

// encodeCompact is encode without indentation, for journal records.
func encodeCompact(s *state) ([]byte, error) { return json.Marshal(encodeMap(s)) }

func encodeMap(s *state) map[string]map[string]any {
	out := map[string]map[string]any{}
	for pkh, ex := range s.extra {
		m := map[string]any{}
		for name, raw := range ex {
			m[name] = raw
		}
		out[pkh] = m
	}
	for pkh, slots := range s.all() {
		m := out[pkh]
		if m == nil {
			m = map[string]any{}
			out[pkh] = m
		}
		for i, sl := range slots {
			if !sl.ok {
				continue
			}
			fm := &fileMark{Level: sl.mark.Level, Round: sl.mark.Round, Signature: sl.mark.Signature}
			if sl.mark.HasDigest {
				fm.Hash = &sl.hash
			}
			m[string(classes[i])] = fm
			if classes[i] == watermark.Attestation {
				dal := *fm
				dal.Signature = ""
				m[attestationWithDAL] = &dal
			}
		}
	}
	return out
}

// partial returns the slots of s named by touched, as a state of their own.
func partial(s *state, touched map[slotKey]bool) *state {
	p := emptyState()
	for k := range touched {
		slots := p.of(k.pkh)
		slots[k.class] = s.of(k.pkh)[k.class]
		p.set(k.pkh, slots)
	}
	return p
}

// decode parses a chain file. It accepts what the reference writes, with round and hash optional
// (hash may be null), folds attestation_with_dal into attestation (the higher mark wins) and keeps
// unknown class names verbatim. Anything else that does not parse is an error: the caller must
// not guess a watermark.
func decode(data []byte) (*state, error) {
	var raw map[string]map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	if raw == nil {
		return nil, errors.New("top level is not a JSON object")
	}
	st := emptyState()
	for pkh, byClass := range raw {
		if _, err := b58.ParsePublicKeyHash([]byte(pkh)); err != nil {
			return nil, fmt.Errorf("key %q: %w", pkh, err)
		}
		if byClass == nil {
			return nil, fmt.Errorf("key %s: null instead of an object", pkh)
		}
		var slots keyMarks
		// In name order, so that the reading never depends on the map's order: "attestation" is
		// read before "attestation_with_dal".
		for _, name := range slices.Sorted(maps.Keys(byClass)) {
			msg := byClass[name]
			i := classIndex(watermark.Class(name))
			if name == attestationWithDAL {
				i = classIndex(watermark.Attestation)
			}
			if i < 0 {
				if st.extra == nil {
					st.extra = map[string]map[string]json.RawMessage{}
				}
				if st.extra[pkh] == nil {
					st.extra[pkh] = map[string]json.RawMessage{}
				}
				st.extra[pkh][name] = msg
				continue
			}
			m, err := decodeMark(msg)
			if err != nil {
				return nil, fmt.Errorf("key %s, %s: %w", pkh, name, err)
			}
			// Two names land in the attestation slot: "attestation", read first, and then
			// "attestation_with_dal", which replaces it only when higher (on a tie the
			// attestation's own mark and signature stay).
			if old := slots[i]; old.ok && !higher(m, old.mark) {
				continue
			}
			slots[i] = newSlot(m)
		}
		st.set(pkh, slots)
	}
	return st, nil
}

// higher reports whether a is above b: a higher level, or the same level and a higher round.
func higher(a, b watermark.Mark) bool {
	return a.Level > b.Level || a.Level == b.Level && a.Round > b.Round
}

func sameLevelRound(a, b watermark.Mark) bool { return a.Level == b.Level && a.Round == b.Round }

func decodeMark(msg json.RawMessage) (watermark.Mark, error) {
	var in struct {
		Level     *int64  `json:"level"`
		Round     *int64  `json:"round"`
		Hash      *string `json:"hash"`
		Signature *string `json:"signature"`
	}
	if err := json.Unmarshal(msg, &in); err != nil { // null leaves in empty: "level is missing"
		return watermark.Mark{}, err
	}
	if in.Level == nil {
		return watermark.Mark{}, errors.New("level is missing")
	}
	var m watermark.Mark
	if *in.Level < math.MinInt32 || *in.Level > math.MaxInt32 {
		return m, fmt.Errorf("level %d out of range", *in.Level)
	}
	m.Level = int32(*in.Level)
	if in.Round != nil {
		if *in.Round < math.MinInt32 || *in.Round > math.MaxInt32 {
			return m, fmt.Errorf("round %d out of range", *in.Round)
		}
		m.Round = int32(*in.Round)
	}
	if in.Hash != nil {
		h, err := b58.ParseBlockPayloadHash([]byte(*in.Hash))
		if err != nil {
			return m, fmt.Errorf("hash %q: %w", *in.Hash, err)
		}
		m.Digest, m.HasDigest = *h, true
	}
	if in.Signature != nil {
		if *in.Signature == "" || !m.HasDigest {
			return m, errors.New("a signature needs a hash and must not be empty")
		}
		m.Signature = *in.Signature
	}
	return m, nil
}

// ParseChainFile parses one watermark_v2/<chain>.json file with the reader the store uses at start
// (round and hash optional, attestation_with_dal folded into attestation, other class names
// skipped) and returns its marks, keyed with chain, in no particular order. It is for importers.
func ParseChainFile(chain string, data []byte) ([]watermark.Entry, error) {
	st, err := decode(data)
	if err != nil {
		return nil, err
	}
	var out []watermark.Entry
	for pkh, slots := range st.all() {
		for i, sl := range slots {
			if sl.ok {
				out = append(out, watermark.Entry{Key: watermark.Key{Chain: chain, PKH: pkh, Class: classes[i]}, Mark: sl.mark})
			}
		}
	}
	return out, nil
}

// EncodeChainFile returns the watermark_v2/<chain>.json file that the store writes for these
// marks, all of one chain (the caller names the file): the reference's layout, 4-space indent,
// with the signature and the attestation_with_dal copy described at encode. A mark's signature is
// dropped when it has no digest (the reader refuses a signature without a hash). It is for
// exporters; it fails on an invalid pkh or class, or on two marks for one pkh and class.
func EncodeChainFile(entries []watermark.Entry) ([]byte, error) {
	st := emptyState()
	for _, e := range entries {
		if _, err := b58.ParsePublicKeyHash([]byte(e.PKH)); err != nil {
			return nil, fmt.Errorf("key %q: %w", e.PKH, err)
		}
		i := classIndex(e.Class)
		if i < 0 {
			return nil, fmt.Errorf("key %s: class %q", e.PKH, e.Class)
		}
		slots := st.of(e.PKH)
		if slots[i].ok {
			return nil, fmt.Errorf("key %s: two %s marks", e.PKH, e.Class)
		}
		m := e.Mark
		if !m.HasDigest {
			m.Signature = ""
		}
		slots[i] = newSlot(m)
		st.set(e.PKH, slots)
	}
	return encode(st)
}
