package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/ecadlabs/gotez/v2/b58"

	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/watermark"
)

// Attribute names. "round" is written through a placeholder in expressions.
const (
	attrIdx       = "idx"
	attrRequest   = "request"
	attrLevel     = "lvl"
	attrRound     = "round"
	attrDigest    = "digest"
	attrSignature = "signature"
)

// requestDAL is the reference's request kind of DAL attestations (tag 23), kept in an item of its
// own; here it is part of the attestation class's mark (see the package comment).
const requestDAL = "attestation_with_dal"

// casAttempts bounds the compare-and-swap rounds of one Advance (read, decide, conditional write)
// when other writers keep changing the item between the read and the write.
const casAttempts = 5

// slot is what one read found for a key: the class's own item and, for the attestation class, the
// reference's attestation_with_dal item. raw is the own item as read, for a compare-and-swap.
type slot struct {
	mark, dal     watermark.Mark
	ok, dalOK     bool
	raw           map[string]types.AttributeValue
	attestation   bool  // the slot of an attestation key: dal was read too
	dalUnreadable error // the attestation_with_dal item exists but cannot be parsed
}

// Advance implements watermark.Store. For blocks and preattestations the first call is a
// PutItem conditioned on a strictly higher (level, round), the common case; when its condition
// fails the item is read (consistently) and watermark.Decide applied. For attestations both the
// attestation and the attestation_with_dal items are read first, since the request must be
// allowed over both. A Write that is not strictly higher (a signature recorded for identical
// bytes) is a PutItem conditioned on the item being exactly as read, retried a few times. After
// an attestation is recorded (or found identical) the attestation_with_dal item is raised to it
// before the record is returned.
func (s *Store) Advance(ctx context.Context, k watermark.Key, req watermark.Mark) (watermark.Mark, error) {
	if err := k.Check(); err != nil {
		return watermark.Mark{}, err
	}
	if err := ctx.Err(); err != nil {
		return watermark.Mark{}, fault.Wrap(fault.Unavailable, err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return watermark.Mark{}, watermark.ErrClosed
	}
	octx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()

	if k.Class != watermark.Attestation {
		err := s.putHigher(octx, k, string(k.Class), req)
		switch {
		case err == nil:
			return req, nil
		case !isCondFailed(err):
			return watermark.Mark{}, s.fail(ctx, "PutItem", err)
		}
	}
	for range casAttempts {
		sl, err := s.read(octx, k)
		if err != nil {
			return watermark.Mark{}, s.fail(ctx, "read", err)
		}
		if sl.dalUnreadable != nil {
			// The item that may block this attestation cannot be read: refuse rather than guess.
			return watermark.Mark{}, s.fail(ctx, "read", sl.dalUnreadable)
		}
		o, rerr := decide(k, sl, req)
		switch o {
		case watermark.Refuse:
			return watermark.Mark{}, rerr
		case watermark.Identical:
			if err := s.raiseDAL(octx, k, sl, sl.mark); err != nil {
				return watermark.Mark{}, s.fail(ctx, "PutItem "+requestDAL, err)
			}
			return sl.mark, nil
		}
		if !sl.ok || higher(req, sl.mark) {
			err = s.putHigher(octx, k, string(k.Class), req)
		} else {
			err = s.putExact(octx, k, req, sl.raw)
		}
		switch {
		case isCondFailed(err):
			continue // changed since the read: read again
		case err != nil:
			return watermark.Mark{}, s.fail(ctx, "PutItem", err)
		}
		if err := s.raiseDAL(octx, k, sl, req); err != nil {
			s.log.Warn("dynamodb watermark: attestation recorded but the attestation_with_dal item was not raised; "+
				"its signature is withheld", "table", s.table, "key", k.Chain+"/"+k.PKH, "level", req.Level, "round", req.Round, "err", err)
			return watermark.Mark{}, s.fail(ctx, "PutItem "+requestDAL, err)
		}
		return req, nil
	}
	if err := ctx.Err(); err != nil {
		return watermark.Mark{}, fault.Wrap(fault.Unavailable, err)
	}
	return watermark.Mark{}, &fault.Error{Kind: fault.Internal,
		Msg: fmt.Sprintf("dynamodb watermark: table %s: item %s/%s/%s kept changing during %d attempts", s.table, k.Chain, k.PKH, k.Class, casAttempts)}
}

// decide is watermark.Decide over both items of an attestation: the request must be allowed over
// the attestation item and over the attestation_with_dal item (so the higher of the two decides,
// and at a tie both must agree); the outcome is the attestation item's, the one written.
func decide(k watermark.Key, sl slot, req watermark.Mark) (watermark.Outcome, error) {
	o, err := watermark.Decide(k, sl.mark, sl.ok, req)
	if o == watermark.Refuse || !sl.dalOK {
		return o, err
	}
	if od, derr := watermark.Decide(k, sl.dal, true, req); od == watermark.Refuse {
		var c *watermark.Conflict
		if errors.As(derr, &c) {
			derr = watermark.Refused(c.Stored, "the attestation_with_dal item (DAL attestations, as the reference keeps them) blocks it: "+c.Reason)
		}
		return od, derr
	}
	return o, nil
}

// fold is the attestation class's record: the higher of the two items; at a tie the attestation
// item, whose signature is withheld if the attestation_with_dal item would refuse it (other bytes
// at that level and round, written by the reference after a crash left ours unreleased).
func fold(k watermark.Key, sl slot) (watermark.Mark, bool) {
	switch {
	case !sl.dalOK:
		return sl.mark, sl.ok
	case !sl.ok || higher(sl.dal, sl.mark):
		return sl.dal, true
	case higher(sl.mark, sl.dal):
		return sl.mark, true
	}
	m := sl.mark
	if o, _ := watermark.Decide(k, sl.dal, true, m); o == watermark.Refuse {
		m.Signature = ""
	}
	return m, true
}

// higher reports whether a's (level, round) is strictly above b's.
func higher(a, b watermark.Mark) bool {
	return a.Level > b.Level || (a.Level == b.Level && a.Round > b.Round)
}

// Load implements watermark.Store with a consistent read. For attestations it returns the fold of
// both items and, before it hands out a stored signature, raises the attestation_with_dal item
// to its mark if a crash left it lower.
func (s *Store) Load(ctx context.Context, k watermark.Key) (watermark.Mark, bool, error) {
	if err := k.Check(); err != nil {
		return watermark.Mark{}, false, err
	}
	if err := ctx.Err(); err != nil {
		return watermark.Mark{}, false, fault.Wrap(fault.Unavailable, err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return watermark.Mark{}, false, watermark.ErrClosed
	}
	octx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	sl, err := s.read(octx, k)
	if err == nil {
		err = sl.dalUnreadable
	}
	if err != nil {
		return watermark.Mark{}, false, s.fail(ctx, "read", err)
	}
	m, ok := fold(k, sl)
	if ok && m.Signature != "" {
		if err := s.raiseDAL(octx, k, sl, m); err != nil {
			return watermark.Mark{}, false, s.fail(ctx, "PutItem "+requestDAL, err)
		}
	}
	return m, ok, nil
}

func itemKey(k watermark.Key, request string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		attrIdx:     &types.AttributeValueMemberS{Value: k.Chain + "/" + k.PKH},
		attrRequest: &types.AttributeValueMemberS{Value: request},
	}
}

// item is the item of m under request, in the reference's shape plus the signature attribute:
// the digest is what the reference's item struct (a *tz.BlockPayloadHash) becomes through the AWS
// SDK's attributevalue.MarshalMap, 32 bytes of Binary, or NULL when there is none, so that the
// reference, started again on the table, reads every item this store wrote.
func item(k watermark.Key, request string, m watermark.Mark) map[string]types.AttributeValue {
	it := itemKey(k, request)
	it[attrLevel] = num(m.Level)
	it[attrRound] = num(m.Round)
	if m.HasDigest {
		it[attrDigest] = &types.AttributeValueMemberB{Value: slices.Clone(m.Digest[:])}
	} else {
		it[attrDigest] = &types.AttributeValueMemberNULL{Value: true}
	}
	if m.Signature != "" {
		it[attrSignature] = &types.AttributeValueMemberS{Value: m.Signature}
	}
	return it
}

// putHigher writes m under request if there is no item or m's (level, round) is strictly higher.
// An item without a round (as parseMark reads it: round 0) is lower than m at its level when m's
// round is above 0.
func (s *Store) putHigher(ctx context.Context, k watermark.Key, request string, m watermark.Mark) error {
	cond := "attribute_not_exists(#i) OR #l < :l OR (#l = :l AND #r < :r)"
	if m.Round > 0 {
		cond = "attribute_not_exists(#i) OR #l < :l OR (#l = :l AND (attribute_not_exists(#r) OR #r < :r))"
	}
	_, err := s.client.PutItem(ctx, &ddb.PutItemInput{
		TableName:                 aws.String(s.table),
		Item:                      item(k, request, m),
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeNames:  map[string]string{"#i": attrIdx, "#l": attrLevel, "#r": attrRound},
		ExpressionAttributeValues: map[string]types.AttributeValue{":l": num(m.Level), ":r": num(m.Round)},
	})
	return err
}

// putExact writes m over the class's item if the item still is exactly read: the same level,
// round, digest and signature, each present or absent as it was.
func (s *Store) putExact(ctx context.Context, k watermark.Key, m watermark.Mark, read map[string]types.AttributeValue) error {
	cond := []string{"attribute_exists(#i)"}
	names := map[string]string{"#i": attrIdx}
	values := map[string]types.AttributeValue{}
	for i, a := range []string{attrLevel, attrRound, attrDigest, attrSignature} {
		n := "#a" + strconv.Itoa(i)
		names[n] = a
		if v, ok := read[a]; ok {
			if _, null := v.(*types.AttributeValueMemberNULL); null { // NULL is compared by type
				cond = append(cond, "attribute_type("+n+", :null)")
				values[":null"] = &types.AttributeValueMemberS{Value: "NULL"}
				continue
			}
			cond = append(cond, n+" = :v"+strconv.Itoa(i))
			values[":v"+strconv.Itoa(i)] = v
		} else {
			cond = append(cond, "attribute_not_exists("+n+")")
		}
	}
	in := &ddb.PutItemInput{
		TableName:                aws.String(s.table),
		Item:                     item(k, string(k.Class), m),
		ConditionExpression:      aws.String(strings.Join(cond, " AND ")),
		ExpressionAttributeNames: names,
	}
	if len(values) > 0 {
		in.ExpressionAttributeValues = values
	}
	_, err := s.client.PutItem(ctx, in)
	return err
}

// raiseDAL makes the attestation_with_dal item at least as high as m, the attestation record about
// to be returned, so that the reference started again on this table refuses a DAL attestation at
// its level. Nothing is written when the item read in sl is already as high; a failed condition
// means another writer raised it meanwhile. Other classes have nothing to raise.
func (s *Store) raiseDAL(ctx context.Context, k watermark.Key, sl slot, m watermark.Mark) error {
	if !sl.attestation || (sl.dalOK && !higher(m, sl.dal)) {
		return nil
	}
	if err := s.putHigher(ctx, k, requestDAL, m); err != nil && !isCondFailed(err) {
		return err
	}
	return nil
}

func isCondFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

// read reads k's item consistently; for attestations, one Query reads the attestation and the
// attestation_with_dal items together.
func (s *Store) read(ctx context.Context, k watermark.Key) (slot, error) {
	var sl slot
	if k.Class != watermark.Attestation {
		out, err := s.client.GetItem(ctx, &ddb.GetItemInput{
			TableName: aws.String(s.table), Key: itemKey(k, string(k.Class)), ConsistentRead: aws.Bool(true),
		})
		if err != nil {
			return sl, err
		}
		if out.Item != nil {
			if sl.mark, err = parseMark(out.Item); err != nil {
				return sl, err
			}
			sl.ok, sl.raw = true, out.Item
		}
		return sl, nil
	}
	sl.attestation = true
	out, err := s.client.Query(ctx, &ddb.QueryInput{
		TableName:                 aws.String(s.table),
		ConsistentRead:            aws.Bool(true),
		KeyConditionExpression:    aws.String("#i = :i AND begins_with(#q, :q)"),
		ExpressionAttributeNames:  map[string]string{"#i": attrIdx, "#q": attrRequest},
		ExpressionAttributeValues: map[string]types.AttributeValue{":i": &types.AttributeValueMemberS{Value: k.Chain + "/" + k.PKH}, ":q": &types.AttributeValueMemberS{Value: string(watermark.Attestation)}},
	})
	if err != nil {
		return sl, err
	}
	for _, it := range out.Items {
		switch str(it, attrRequest) {
		case string(watermark.Attestation):
			if sl.mark, err = parseMark(it); err != nil {
				return sl, err
			}
			sl.ok, sl.raw = true, it
		case requestDAL:
			if sl.dal, err = parseMark(it); err != nil {
				sl.dalUnreadable = err
				continue
			}
			sl.dalOK = true
		}
	}
	return sl, nil
}

func str(it map[string]types.AttributeValue, name string) string {
	if v, ok := it[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

// parseMark reads the mark of an item: lvl (required), round (0 when absent), digest and
// signature (both optional). The digest is read in every form it has been written in: Binary of
// 32 bytes (the reference's, and this store's since), NULL or absent (none), or a string vh…
// (earlier versions of this store).
func parseMark(it map[string]types.AttributeValue) (watermark.Mark, error) {
	var m watermark.Mark
	name := str(it, attrIdx) + "/" + str(it, attrRequest)
	for attr, dst := range map[string]*int32{attrLevel: &m.Level, attrRound: &m.Round} {
		n, ok := it[attr].(*types.AttributeValueMemberN)
		if !ok {
			if attr == attrRound && it[attr] == nil {
				continue // the reader accepts marks without a round, as the file store does
			}
			return m, fmt.Errorf("item %s: %s is not a number", name, attr)
		}
		v, err := strconv.ParseInt(n.Value, 10, 32)
		if err != nil {
			return m, fmt.Errorf("item %s: %s: %w", name, attr, err)
		}
		*dst = int32(v)
	}
	switch d := it[attrDigest].(type) {
	case nil, *types.AttributeValueMemberNULL:
	case *types.AttributeValueMemberB:
		if len(d.Value) != len(m.Digest) {
			return m, fmt.Errorf("item %s: digest of %d bytes, not %d", name, len(d.Value), len(m.Digest))
		}
		m.Digest, m.HasDigest = [32]byte(d.Value), true
	case *types.AttributeValueMemberS:
		h, err := b58.ParseBlockPayloadHash([]byte(d.Value))
		if err != nil {
			return m, fmt.Errorf("item %s: digest: %w", name, err)
		}
		m.Digest, m.HasDigest = *h, true
	default:
		return m, fmt.Errorf("item %s: digest is %T, neither bytes nor a string", name, d)
	}
	if v, ok := it[attrSignature]; ok {
		sig, isStr := v.(*types.AttributeValueMemberS)
		if !isStr {
			return m, fmt.Errorf("item %s: signature is not a string", name)
		}
		m.Signature = sig.Value
	}
	return m, nil
}

// List implements watermark.Store with a consistent Scan. A key's attestation and
// attestation_with_dal items are folded into one attestation entry (as Load does); spending lists
// are skipped. An item that cannot be read fails the whole List, naming the item: an export or
// `watermark show` that skipped it would drop a mark.
func (s *Store) List(ctx context.Context) ([]watermark.Entry, error) {
	slots := map[watermark.Key]*slot{}
	legacy := map[watermark.Key]watermark.Mark{}
	err := s.scan(ctx, &ddb.ScanInput{TableName: aws.String(s.table), ConsistentRead: aws.Bool(true)},
		func(it map[string]types.AttributeValue) error {
			if isSpendItem(it) {
				return nil // a spending list (spend.go), not a mark
			}
			k, dal, m, err := parseItem(it)
			if err != nil {
				return err
			}
			if old, isLegacy := legacyRequests[str(it, attrRequest)]; isLegacy && old == k.Class {
				if l, seen := legacy[k]; !seen || higher(m, l) {
					legacy[k] = m
				}
				return nil
			}
			sl := slots[k]
			if sl == nil {
				sl = &slot{}
				slots[k] = sl
			}
			if dal {
				sl.dal, sl.dalOK = m, true
			} else {
				sl.mark, sl.ok = m, true
			}
			return nil
		})
	if err != nil {
		return nil, err
	}
	out := make([]watermark.Entry, 0, len(slots)+len(legacy))
	for k, sl := range slots {
		m, ok := fold(k, *sl)
		if l, isLegacy := legacy[k]; isLegacy && (!ok || higher(l, m)) {
			m, ok = l, true
		}
		delete(legacy, k)
		if ok {
			out = append(out, watermark.Entry{Key: k, Mark: m})
		}
	}
	for k, l := range legacy {
		out = append(out, watermark.Entry{Key: k, Mark: l})
	}
	slices.SortFunc(out, func(a, b watermark.Entry) int { return watermark.Compare(a.Key, b.Key) })
	return out, nil
}

// scan runs a consistent Scan of in, each page bounded by the store's timeout, and calls each on
// every item; an error of each stops it and is returned as a store error.
func (s *Store) scan(ctx context.Context, in *ddb.ScanInput, each func(map[string]types.AttributeValue) error) error {
	if err := ctx.Err(); err != nil {
		return fault.Wrap(fault.Unavailable, err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return watermark.ErrClosed
	}
	p := ddb.NewScanPaginator(s.client, in)
	for p.HasMorePages() {
		octx, cancel := context.WithTimeout(ctx, s.timeout)
		page, err := p.NextPage(octx)
		cancel()
		if err != nil {
			return s.fail(ctx, "Scan", err)
		}
		for _, it := range page.Items {
			if err := each(it); err != nil {
				return s.fail(ctx, "Scan", err)
			}
		}
	}
	return nil
}

// legacyRequests are the request kinds older releases of the reference wrote for consensus
// operations before they were renamed: their items are marks of today's classes.
var legacyRequests = map[string]watermark.Class{"endorsement": watermark.Attestation, "preendorsement": watermark.Preattestation}

// parseItem reads a scanned item: its key (an attestation_with_dal item has the attestation
// class's key, and dal set; a legacy item, today's class's key) and mark.
func parseItem(it map[string]types.AttributeValue) (k watermark.Key, dal bool, m watermark.Mark, err error) {
	idx, request := str(it, attrIdx), str(it, attrRequest)
	chain, pkh, ok := strings.Cut(idx, "/")
	if request == requestDAL {
		request, dal = string(watermark.Attestation), true
	}
	if c, isLegacy := legacyRequests[request]; isLegacy {
		request = string(c)
	}
	k = watermark.Key{Chain: chain, PKH: pkh, Class: watermark.Class(request)}
	if !ok || k.Check() != nil {
		return k, dal, m, fmt.Errorf("item %q/%q is not a watermark this store can read", idx, str(it, attrRequest))
	}
	m, err = parseMark(it)
	return k, dal, m, err
}

// fail maps an SDK error: the caller's context ending is Unavailable; anything else (our timeout
// included) is Internal. Both refuse the request.
func (s *Store) fail(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return &fault.Error{Kind: fault.Unavailable, Msg: "dynamodb watermark: " + cerr.Error(), Err: cerr}
	}
	return &fault.Error{Kind: fault.Internal, Msg: fmt.Sprintf("dynamodb watermark: table %s: %s: %v", s.table, op, err), Err: err}
}

func num(v int32) *types.AttributeValueMemberN {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(int64(v), 10)}
}
