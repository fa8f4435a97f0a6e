package interchange

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/ecadlabs/gotez/v2/b58"

	"github.com/signatory-go/signatory/internal/watermark"
	wmfile "github.com/signatory-go/signatory/internal/watermark/file"
)

// Format names a file format that Read understands.
type Format string

const (
	// Auto tells the format from the file name and content.
	Auto Format = ""
	// Signatory is this package's export format (see the package comment).
	Signatory Format = "signatory"
	// Reference is the reference signer's watermark_v2/<chain>.json: {pkh: {class: {level, round, hash}}}
	// (see docs/watermarks.md). The chain comes from the file name, or from Options.Chain.
	Reference Format = "reference"
	// Octez is octez-signer's <base_dir>/<kind>_high_watermarks file; see parseOctez.
	Octez Format = "octez"
	// ReferenceV1 and ReferenceV0 are the reference signer's older watermark_v1/<chain>.json and
	// watermark/<chain>.json files; see legacy.go. They are never guessed: give the format.
	ReferenceV1 Format = "reference-v1"
	ReferenceV0 Format = "reference-v0"
)

// Options steer Read when the file name does not tell everything.
type Options struct {
	Format Format          // Auto by default
	Chain  string          // the chain of a Reference file whose name is not <chain>.json
	Class  watermark.Class // the class of an Octez file whose name is not <kind>_high_watermarks
}

// Source is what was read from one file.
type Source struct {
	Path    string
	Format  Format
	Entries []watermark.Entry
}

var octezName = regexp.MustCompile(`^(block|preattestation|attestation|preendorsement|endorsement)_high_watermarks?$`)

// Read reads path. A directory is searched (not recursively) for *_high_watermarks files and for
// *.json files, which are taken from its watermark_v2 subdirectory when it has one, so that a
// signatory or reference base_dir, its watermark_v2 directory and an octez-signer base_dir can
// all be given as they are.
func Read(path string, o Options) ([]Source, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		src, err := readFile(path, o)
		if err != nil {
			return nil, err
		}
		return []Source{src}, nil
	}
	// In a base_dir (it has watermark_v2) other *.json files are not watermarks: read only
	// watermark_v2/*.json there, and *_high_watermarks files in any case.
	v2 := filepath.Join(path, "watermark_v2")
	_, err = os.Stat(v2)
	baseDir := err == nil
	var files []string
	for _, dir := range []string{path, v2} {
		if dir == v2 && !baseDir {
			continue
		}
		des, err := os.ReadDir(dir)
		if err != nil {
			return nil, err
		}
		for _, de := range des {
			isJSON := strings.HasSuffix(de.Name(), ".json") && (dir == v2 || !baseDir)
			if de.Type().IsRegular() && (isJSON || octezName.MatchString(de.Name())) {
				files = append(files, filepath.Join(dir, de.Name()))
			}
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: no watermark files (*.json, watermark_v2/*.json or *_high_watermarks)", path)
	}
	var out []Source
	for _, f := range files {
		src, err := readFile(f, o)
		if err != nil {
			return nil, err
		}
		out = append(out, src)
	}
	return out, nil
}

func readFile(path string, o Options) (Source, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Source{}, err
	}
	es, f, err := Parse(filepath.Base(path), data, o)
	if err != nil {
		return Source{}, fmt.Errorf("%s: %w", path, err)
	}
	return Source{Path: path, Format: f, Entries: es}, nil
}

// Parse parses one file's content; name is its base name, used to tell the format, the chain of a
// Reference file and the class of an Octez file. It returns the marks and the format found.
func Parse(name string, data []byte, o Options) ([]watermark.Entry, Format, error) {
	f := o.Format
	if f == Auto {
		f = detect(name, data)
	}
	var es []watermark.Entry
	var err error
	switch f {
	case Signatory:
		es, err = parseSignatory(data)
	case Reference, ReferenceV1, ReferenceV0:
		chain := o.Chain
		if chain == "" {
			chain = strings.TrimSuffix(name, ".json")
		}
		if _, cerr := b58.ParseChainID([]byte(chain)); cerr != nil {
			return nil, f, fmt.Errorf("reference watermark file: the file name must be <chain id>.json, or give the chain (%q: %v)", chain, cerr)
		}
		switch f {
		case ReferenceV1:
			es, err = parseReferenceV1(chain, data)
		case ReferenceV0:
			es, err = parseReferenceV0(chain, data)
		default:
			es, err = wmfile.ParseChainFile(chain, data)
		}
	case Octez:
		class := o.Class
		if class == "" {
			if m := octezName.FindStringSubmatch(name); m != nil {
				class, _ = watermark.ClassOf(strings.Replace(m[1], "endorsement", "attestation", 1))
			}
		}
		if !class.Valid() {
			return nil, f, errors.New("octez-signer file: the file name must be <kind>_high_watermarks, or give the class")
		}
		es, err = parseOctez(class, data)
	default:
		return nil, f, fmt.Errorf("cannot tell the format (want a signatory export, a reference <chain>.json or an octez <kind>_high_watermarks file); give it explicitly")
	}
	if err != nil {
		return nil, f, err
	}
	slices.SortStableFunc(es, func(a, b watermark.Entry) int { return watermark.Compare(a.Key, b.Key) })
	return es, f, nil
}

func detect(name string, data []byte) Format {
	if octezName.MatchString(name) {
		return Octez
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(data, &top) == nil {
		if _, ok := top["watermarks"]; ok {
			return Signatory
		}
	}
	if _, err := b58.ParseChainID([]byte(strings.TrimSuffix(name, ".json"))); err == nil {
		return Reference
	}
	return Auto
}

func parseSignatory(data []byte) ([]watermark.Entry, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var d Document
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("signatory export: %w", err)
	}
	if d.Version != Version {
		return nil, fmt.Errorf("signatory export: version %d, want %d", d.Version, Version)
	}
	out := make([]watermark.Entry, 0, len(d.Watermarks))
	for i, r := range d.Watermarks {
		e, err := r.entry()
		if err != nil {
			return nil, fmt.Errorf("signatory export: watermark %d: %w", i, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// entry validates r and converts it.
func (r Record) entry() (watermark.Entry, error) {
	e := watermark.Entry{Key: watermark.Key{Chain: r.Chain, PKH: r.PKH}, Mark: watermark.Mark{Level: r.Level, Round: r.Round}}
	if err := checkChainPKH(r.Chain, r.PKH); err != nil {
		return e, err
	}
	c, ok := watermark.ClassOf(r.Class)
	if !ok {
		return e, fmt.Errorf("class %q is not block, preattestation or attestation", r.Class)
	}
	e.Class = c
	if r.Digest != nil {
		h, err := b58.ParseBlockPayloadHash([]byte(*r.Digest))
		if err != nil {
			return e, fmt.Errorf("digest %q: %w", *r.Digest, err)
		}
		e.Digest, e.HasDigest = *h, true
	}
	if r.Signature != "" {
		if !e.HasDigest {
			return e, errors.New("a signature needs a digest")
		}
		if _, err := b58.ParseSignature([]byte(r.Signature)); err != nil {
			return e, fmt.Errorf("signature: %w", err)
		}
		e.Signature = r.Signature
	}
	return e, nil
}

func checkChainPKH(chain, pkh string) error {
	if _, err := b58.ParseChainID([]byte(chain)); err != nil {
		return fmt.Errorf("chain_id %q: %w", chain, err)
	}
	if _, err := b58.ParsePublicKeyHash([]byte(pkh)); err != nil {
		return fmt.Errorf("pkh %q: %w", pkh, err)
	}
	return nil
}

// octezMark is one entry of an octez-signer high-watermark file.
type octezMark struct {
	Level     *int64  `json:"level"`
	Round     *int64  `json:"round"`
	Hash      *string `json:"hash"`
	Signature *string `json:"signature"`
}

// parseOctez reads octez-signer's high-watermark file for one class. Format, from
// tezos/tezos-mirror src/bin_signer/handler.ml (module High_watermark): the file of kind K is the
// wallet alias file "K_high_watermark", stored by src/lib_client_base_unix/client_context_unix.ml
// (unix_wallet#filename) as <base_dir>/K_high_watermarks; K is block, preattestation or
// attestation (preendorsement or endorsement before protocol Oxford). Its JSON is
//
//	{"<chain id b58>": {"<pkh b58>": {"level": int32, "round": int32 (optional),
//	                                   "hash": "<hex of blake2b-256 of the signed bytes>",
//	                                   "signature": "<b58 signature>" (optional)}}}
//
// (Data_encoding assoc objects; the hash is raw bytes, so hex). octez hashes the whole signed
// message, magic byte included, as signatory does, so the hash is imported as the mark's digest.
// A mark without a round (written before Tenderbake) covers its whole level: it is imported at the
// highest round, so that nothing at that level is signed again. octez keeps the signature it
// released; it is imported with a round-carrying mark, so that identical bytes get it back. A hash
// of 32 zero bytes is what OctezFiles writes for a mark without a digest (no message hashes to
// it): it is read as no digest, and a signature next to it is dropped.
func parseOctez(class watermark.Class, data []byte) ([]watermark.Entry, error) {
	var all map[string]map[string]*octezMark
	if err := json.Unmarshal(data, &all); err != nil {
		return nil, fmt.Errorf("octez-signer file: %w", err)
	}
	if all == nil {
		return nil, errors.New("octez-signer file: top level is not a JSON object")
	}
	var out []watermark.Entry
	for chain, marks := range all {
		for pkh, m := range marks {
			if err := checkChainPKH(chain, pkh); err != nil {
				return nil, fmt.Errorf("octez-signer file: %w", err)
			}
			if m == nil || m.Level == nil || m.Hash == nil {
				return nil, fmt.Errorf("octez-signer file: %s/%s: level and hash are required", chain, pkh)
			}
			e := watermark.Entry{Key: watermark.Key{Chain: chain, PKH: pkh, Class: class}}
			if *m.Level < 0 || *m.Level > math.MaxInt32 {
				return nil, fmt.Errorf("octez-signer file: %s/%s: level %d out of range", chain, pkh, *m.Level)
			}
			e.Level = int32(*m.Level)
			e.Round = math.MaxInt32
			if m.Round != nil {
				if *m.Round < 0 || *m.Round > math.MaxInt32 {
					return nil, fmt.Errorf("octez-signer file: %s/%s: round %d out of range", chain, pkh, *m.Round)
				}
				e.Round = int32(*m.Round)
			}
			h, err := hex.DecodeString(*m.Hash)
			if err != nil || len(h) != 32 {
				return nil, fmt.Errorf("octez-signer file: %s/%s: hash %q is not 32 bytes of hex", chain, pkh, *m.Hash)
			}
			if [32]byte(h) == ([32]byte{}) {
				// OctezFiles' placeholder for a mark without a digest: it has no signature.
				out = append(out, e)
				continue
			}
			e.Digest, e.HasDigest = [32]byte(h), true
			if m.Signature != nil && m.Round != nil {
				if _, err := b58.ParseSignature([]byte(*m.Signature)); err != nil {
					return nil, fmt.Errorf("octez-signer file: %s/%s: signature: %w", chain, pkh, err)
				}
				e.Signature = *m.Signature
			}
			out = append(out, e)
		}
	}
	return out, nil
}
