package interchange

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/signatory-go/signatory/internal/durable"
	"github.com/signatory-go/signatory/internal/watermark"
	wmfile "github.com/signatory-go/signatory/internal/watermark/file"
)

// File is one file of a multi-file export: its path relative to the output directory (slash
// separated) and its content.
type File struct {
	Name string
	Data []byte
}

// octezClasses are the classes of octez-signer's files, in the order the files are written.
var octezClasses = [...]watermark.Class{watermark.Block, watermark.Preattestation, watermark.Attestation}

// OctezName returns the name of octez-signer's high-watermark file of class c.
func OctezName(c watermark.Class) string { return string(c) + "_high_watermarks" }

// octezHash is the hash written for a mark without a digest: 32 zero bytes, which no signed
// message hashes to. parseOctez reads it back as "no digest".
var octezHash = strings.Repeat("00", 32)

// octezOut is one mark as written to an octez-signer file (see parseOctez for the format).
type octezOut struct {
	Level     int32  `json:"level"`
	Round     int32  `json:"round"`
	Hash      string `json:"hash"`
	Signature string `json:"signature,omitempty"`
}

// OctezFiles returns octez-signer's three high-watermark files (block, preattestation,
// attestation: <class>_high_watermarks), each {chain: {pkh: {level, round, hash, signature}}} with
// every chain in it, and {} for a class without marks. round is always written; hash is the hex
// of the mark's digest (blake2b-256 of the whole signed bytes, as octez hashes them), and
// signature the signature released for it, omitted when the store has none.
//
// A mark without a digest is written with a hash of 32 zero bytes and no signature. octez-signer
// compares hashes only for a mark that has a signature (to return it for identical bytes); for a
// mark without one it refuses everything at or below its (level, round), whatever the hash. So
// such a mark protects exactly what it protects here, and reading the file back (parseOctez)
// gives the mark without a digest again.
func OctezFiles(entries []watermark.Entry) ([]File, error) {
	byClass := map[watermark.Class]map[string]map[string]octezOut{}
	for _, c := range octezClasses {
		byClass[c] = map[string]map[string]octezOut{}
	}
	for _, e := range entries {
		if err := checkEntry(e); err != nil {
			return nil, err
		}
		chains := byClass[e.Class]
		if chains[e.Chain] == nil {
			chains[e.Chain] = map[string]octezOut{}
		}
		if _, dup := chains[e.Chain][e.PKH]; dup {
			return nil, fmt.Errorf("%s/%s/%s: two marks", e.Chain, e.PKH, e.Class)
		}
		m := octezOut{Level: e.Level, Round: e.Round, Hash: octezHash}
		if e.HasDigest {
			m.Hash = hex.EncodeToString(e.Digest[:])
			m.Signature = e.Signature
		}
		chains[e.Chain][e.PKH] = m
	}
	files := make([]File, 0, len(octezClasses))
	for _, c := range octezClasses {
		data, err := json.MarshalIndent(byClass[c], "", "  ")
		if err != nil {
			return nil, err
		}
		files = append(files, File{Name: OctezName(c), Data: append(data, '\n')})
	}
	return files, nil
}

// ReferenceFiles returns the reference signer's watermark_v2/<chain id>.json files, one per chain,
// sorted by chain: {pkh: {class: {level, round, hash, signature}}}, exactly as the file store
// writes them (wmfile.EncodeChainFile): hash is the base58 ("vh…") digest or null, signature is
// kept when the mark has a digest, and the attestation mark is written under
// attestation_with_dal too, so that the reference refuses DAL attestations at those levels.
func ReferenceFiles(entries []watermark.Entry) ([]File, error) {
	byChain := map[string][]watermark.Entry{}
	for _, e := range entries {
		if err := checkEntry(e); err != nil {
			return nil, err
		}
		byChain[e.Chain] = append(byChain[e.Chain], e)
	}
	var files []File
	for _, chain := range sortedKeys(byChain) {
		data, err := wmfile.EncodeChainFile(byChain[chain])
		if err != nil {
			return nil, fmt.Errorf("chain %s: %w", chain, err)
		}
		files = append(files, File{Name: "watermark_v2/" + chain + ".json", Data: data})
	}
	return files, nil
}

// checkEntry validates what goes into a file or a file name.
func checkEntry(e watermark.Entry) error {
	if err := checkChainPKH(e.Chain, e.PKH); err != nil {
		return err
	}
	if !e.Class.Valid() {
		return fmt.Errorf("%s/%s: class %q is not block, preattestation or attestation", e.Chain, e.PKH, e.Class)
	}
	return nil
}

// ErrExists is returned by WriteFiles when a file to write exists and force is false.
var ErrExists = errors.New("file exists")

// WriteFiles writes files under dir (created, mode 0700, when missing), each durably (temp file
// with mode 0600, fsync, rename, directory fsync: durable.WriteFile). Unless force, it first
// checks that none of them exists and writes nothing if one does (the error names them and
// matches ErrExists); with force, existing files are replaced.
func WriteFiles(dir string, files []File, force bool) error {
	paths := make([]string, len(files))
	var exist []string
	for i, f := range files {
		paths[i] = filepath.Join(dir, filepath.FromSlash(f.Name))
		if force {
			continue
		}
		switch _, err := os.Lstat(paths[i]); {
		case err == nil:
			exist = append(exist, paths[i])
		case !errors.Is(err, fs.ErrNotExist):
			return err
		}
	}
	if len(exist) > 0 {
		return fmt.Errorf("%w: %s (give --force to replace)", ErrExists, strings.Join(exist, ", "))
	}
	var dirs []string
	for _, p := range paths {
		if d := filepath.Dir(p); !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	for i, f := range files {
		if err := durable.WriteBytes(paths[i], ".export-", f.Data); err != nil {
			return fmt.Errorf("%s: %w", paths[i], err)
		}
	}
	return nil
}
