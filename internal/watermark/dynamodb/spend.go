package dynamodb

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/spending"
	"github.com/signatory-go/signatory/internal/watermark"
)

// The spending lists (spending.Store) are items of the same table: hash key idx
// "spending#<pkh>" (a mark's idx is "<chain>/<pkh>", and a chain id has no '#'), range key request
// "spending", spends (the list as spending.Encode writes it, a string) and ver (a number
// raised by every write). A list is changed by a PutItem conditioned on ver being the one read
// (on the item being absent for the first write), so that signers sharing the table apply their
// spends one after another. The reference reads its items by key and never meets these.
const (
	spendIdxPrefix = "spending#"
	spendRequest   = "spending"
	attrSpends     = "spends"
	attrVersion    = "ver"
)

// spendAttempts bounds the read-call-write rounds of one UpdateSpends. Each lost round means
// another signer's change of the same list was stored in between; under the store's timeout the
// bound is not reached in practice even with tens of requests for one key at once.
const spendAttempts = 100

func spendKey(pkh string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		attrIdx:     &types.AttributeValueMemberS{Value: spendIdxPrefix + pkh},
		attrRequest: &types.AttributeValueMemberS{Value: spendRequest},
	}
}

var _ spending.Store = (*Store)(nil)

// UpdateSpends implements spending.Store: a consistent read of pkh's item, f, and a PutItem
// of f's result conditioned on the item being absent or at the version read; a failed condition
// reads again and calls f again over the list that won. f's error is returned as it is, nothing
// written.
func (s *Store) UpdateSpends(ctx context.Context, pkh string, f func([]spending.Spend) ([]spending.Spend, error)) error {
	if pkh == "" {
		return fault.New(fault.Internal, "spending list of an empty key")
	}
	if err := ctx.Err(); err != nil {
		return fault.Wrap(fault.Unavailable, err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return watermark.ErrClosed
	}
	octx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	for range spendAttempts {
		out, err := s.client.GetItem(octx, &ddb.GetItemInput{
			TableName: aws.String(s.table), Key: spendKey(pkh), ConsistentRead: aws.Bool(true),
		})
		if err != nil {
			return s.fail(ctx, "GetItem "+spendIdxPrefix+pkh, err)
		}
		old, ver, err := parseSpends(out.Item)
		if err != nil {
			return s.fail(ctx, "read "+spendIdxPrefix+pkh, err)
		}
		next, err := f(old)
		if err != nil {
			return err
		}
		it := spendKey(pkh)
		it[attrSpends] = &types.AttributeValueMemberS{Value: string(spending.Encode(next))}
		it[attrVersion] = &types.AttributeValueMemberN{Value: strconv.FormatInt(ver+1, 10)}
		in := &ddb.PutItemInput{TableName: aws.String(s.table), Item: it}
		if out.Item == nil {
			in.ConditionExpression = aws.String("attribute_not_exists(#i)")
			in.ExpressionAttributeNames = map[string]string{"#i": attrIdx}
		} else {
			in.ConditionExpression = aws.String("#v = :v")
			in.ExpressionAttributeNames = map[string]string{"#v": attrVersion}
			in.ExpressionAttributeValues = map[string]types.AttributeValue{":v": out.Item[attrVersion]}
		}
		_, err = s.client.PutItem(octx, in)
		switch {
		case err == nil:
			return nil
		case !isCondFailed(err):
			return s.fail(ctx, "PutItem "+spendIdxPrefix+pkh, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return fault.Wrap(fault.Unavailable, err)
	}
	return &fault.Error{Kind: fault.Internal,
		Msg: fmt.Sprintf("dynamodb watermark: table %s: item %s%s kept changing during %d attempts", s.table, spendIdxPrefix, pkh, spendAttempts)}
}

// parseSpends reads a spending item: its list and version; no item is an empty list at version 0.
func parseSpends(it map[string]types.AttributeValue) ([]spending.Spend, int64, error) {
	if it == nil {
		return nil, 0, nil
	}
	name := str(it, attrIdx)
	v, ok := it[attrVersion].(*types.AttributeValueMemberN)
	if !ok {
		return nil, 0, fault.New(fault.Internal, fmt.Sprintf("item %s: %s is not a number", name, attrVersion))
	}
	ver, err := strconv.ParseInt(v.Value, 10, 64)
	if err != nil {
		return nil, 0, fault.New(fault.Internal, fmt.Sprintf("item %s: %s: %v", name, attrVersion, err))
	}
	raw, ok := it[attrSpends].(*types.AttributeValueMemberS)
	if !ok {
		return nil, 0, fault.New(fault.Internal, fmt.Sprintf("item %s: %s is not a string", name, attrSpends))
	}
	l, err := spending.Decode([]byte(raw.Value))
	if err != nil {
		return nil, 0, fmt.Errorf("item %s: %w", name, err)
	}
	return l, ver, nil
}

// isSpendItem reports whether a scanned item is a spending list (List skips them).
func isSpendItem(it map[string]types.AttributeValue) bool {
	return strings.HasPrefix(str(it, attrIdx), spendIdxPrefix) && str(it, attrRequest) == spendRequest
}

// ListSpends implements spending.Store with a consistent Scan of the spending items.
func (s *Store) ListSpends(ctx context.Context) (map[string][]spending.Spend, error) {
	out := map[string][]spending.Spend{}
	err := s.scan(ctx, &ddb.ScanInput{
		TableName:                 aws.String(s.table),
		ConsistentRead:            aws.Bool(true),
		FilterExpression:          aws.String("begins_with(#i, :p) AND #q = :q"),
		ExpressionAttributeNames:  map[string]string{"#i": attrIdx, "#q": attrRequest},
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": &types.AttributeValueMemberS{Value: spendIdxPrefix}, ":q": &types.AttributeValueMemberS{Value: spendRequest}},
	}, func(it map[string]types.AttributeValue) error {
		if !isSpendItem(it) {
			return nil
		}
		l, _, err := parseSpends(it)
		if err != nil {
			return err
		}
		if len(l) > 0 {
			out[strings.TrimPrefix(str(it, attrIdx), spendIdxPrefix)] = l
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
