// Package interchange moves watermarks between stores and signers: it writes and reads signatory's
// JSON export, writes and reads the reference signer's watermark_v2/<chain>.json files and
// octez-signer's <kind>_high_watermarks files (write.go, read.go), and imports marks into a store,
// only ever raising a watermark.
//
// The export format (version 1) is one JSON object:
//
//	{"version": 1, "watermarks": [
//	  {"chain_id": "NetXdQprcVkpaWU", "pkh": "tz1…", "class": "block", "level": 34, "round": 4, "digest": "vh2Qmr…"},
//	  {"chain_id": "NetXdQprcVkpaWU", "pkh": "tz1…", "class": "attestation", "level": 34, "round": 4, "digest": null}]}
//
// class is block, preattestation or attestation; digest is the base58 ("vh…") blake2b-256 of the
// last signed bytes, or null when the mark has none; signature, when present, is the signature
// released for those bytes. Entries are sorted by chain, pkh and class.
package interchange

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"

	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/watermark"
)

// Version is the version of the export format this package writes.
const Version = 1

// Document is the export format.
type Document struct {
	Version    int      `json:"version"`
	Watermarks []Record `json:"watermarks"`
}

// Record is one watermark in a Document.
type Record struct {
	Chain  string  `json:"chain_id"`
	PKH    string  `json:"pkh"`
	Class  string  `json:"class"`
	Level  int32   `json:"level"`
	Round  int32   `json:"round"`
	Digest *string `json:"digest"`
	// Signature is the signature released for the mark, when the store kept it.
	Signature string `json:"signature,omitempty"`
}

// FromEntries converts store entries to a Document, sorted as Store.List sorts.
func FromEntries(es []watermark.Entry) *Document {
	es = slices.Clone(es)
	slices.SortStableFunc(es, func(a, b watermark.Entry) int { return watermark.Compare(a.Key, b.Key) })
	d := &Document{Version: Version, Watermarks: make([]Record, 0, len(es))}
	for _, e := range es {
		r := Record{Chain: e.Chain, PKH: e.PKH, Class: string(e.Class), Level: e.Level, Round: e.Round, Signature: e.Signature}
		if e.HasDigest {
			h := tezos.PayloadHashString(&e.Digest)
			r.Digest = &h
		}
		d.Watermarks = append(d.Watermarks, r)
	}
	return d
}

// Export reads every watermark of s.
func Export(ctx context.Context, s watermark.Store) (*Document, error) {
	es, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	return FromEntries(es), nil
}

// Write writes d as indented JSON followed by a newline.
func Write(w io.Writer, d *Document) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(d)
}

// Outcome is what an import did with one mark.
type Outcome string

const (
	// Raised: the store had no mark for the key, or a lower one; it now holds the imported mark.
	Raised Outcome = "raised"
	// Kept: the store already held this mark, or one the rule does not let the import replace
	// (at least as high); the store is unchanged.
	Kept Outcome = "kept"
)

// Item is the outcome for one imported mark. Stored is the store's mark before the import, when
// there was one (as read at the start of the import, or after earlier items of the same key).
type Item struct {
	watermark.Key
	Imported  watermark.Mark
	Stored    watermark.Mark
	HasStored bool
	Outcome   Outcome
}

// Report lists the outcome of every imported mark, in the order they were applied.
type Report struct {
	Items []Item
}

// Count returns how many items had outcome o.
func (r *Report) Count(o Outcome) int {
	n := 0
	for _, it := range r.Items {
		if it.Outcome == o {
			n++
		}
	}
	return n
}

// Import records entries in s through Store.Advance, so that the one rule decides: a mark is
// raised only if it is strictly higher than the stored one (or there is none), and a refusal
// (watermark.ErrConflict) means the store already holds at least as much, so its mark is kept.
// Marks of one key are applied from lowest to highest. With dryRun nothing is written: the
// outcomes are computed with watermark.Decide from the marks read at the start.
//
// A store error stops the import; the report then holds the items applied before it.
func Import(ctx context.Context, s watermark.Store, entries []watermark.Entry, dryRun bool) (*Report, error) {
	for _, e := range entries {
		if err := e.Key.Check(); err != nil {
			return nil, err
		}
	}
	existing, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	cur := make(map[watermark.Key]watermark.Mark, len(existing))
	for _, e := range existing {
		cur[e.Key] = e.Mark
	}
	entries = slices.Clone(entries)
	slices.SortStableFunc(entries, func(a, b watermark.Entry) int {
		return cmp.Or(watermark.Compare(a.Key, b.Key), cmp.Compare(a.Level, b.Level), cmp.Compare(a.Round, b.Round))
	})
	rep := &Report{}
	for _, e := range entries {
		old, ok := cur[e.Key]
		it := Item{Key: e.Key, Imported: e.Mark, Stored: old, HasStored: ok, Outcome: Kept}
		switch {
		case ok && old == e.Mark:
			// Already recorded: nothing to raise.
		case dryRun:
			if o, _ := watermark.Decide(e.Key, old, ok, e.Mark); o == watermark.Write {
				it.Outcome = Raised
				cur[e.Key] = e.Mark
			}
		default:
			rec, err := s.Advance(ctx, e.Key, e.Mark)
			switch {
			case err == nil && rec == e.Mark:
				it.Outcome = Raised
				cur[e.Key] = rec
			case err == nil:
				// The store kept its record for the same bytes (with its signature): unchanged.
				cur[e.Key] = rec
			case watermark.IsConflict(err):
			default:
				return rep, fmt.Errorf("importing %s/%s/%s: %w", e.Chain, e.PKH, e.Class, err)
			}
		}
		rep.Items = append(rep.Items, it)
	}
	return rep, nil
}
