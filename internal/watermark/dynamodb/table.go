package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// ensureTable creates the table when it does not exist (hash key idx, range key request, both
// strings, on-demand capacity) and waits up to wait for it to be active. An existing table must
// have that key schema.
func (s *Store) ensureTable(ctx context.Context, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	in := &ddb.DescribeTableInput{TableName: aws.String(s.table)}
	out, err := s.client.DescribeTable(ctx, in)
	var nf *types.ResourceNotFoundException
	switch {
	case errors.As(err, &nf):
		_, err = s.client.CreateTable(ctx, &ddb.CreateTableInput{
			TableName: aws.String(s.table),
			AttributeDefinitions: []types.AttributeDefinition{
				{AttributeName: aws.String(attrIdx), AttributeType: types.ScalarAttributeTypeS},
				{AttributeName: aws.String(attrRequest), AttributeType: types.ScalarAttributeTypeS},
			},
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String(attrIdx), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String(attrRequest), KeyType: types.KeyTypeRange},
			},
			BillingMode: types.BillingModePayPerRequest,
		})
		var inUse *types.ResourceInUseException
		switch {
		case errors.As(err, &inUse):
			s.log.Info("dynamodb watermark: table was created by another process", "table", s.table)
		case err != nil:
			return fmt.Errorf("CreateTable: %w", err)
		default:
			s.log.Info("dynamodb watermark: table created", "table", s.table)
		}
	case err != nil:
		return fmt.Errorf("DescribeTable: %w", err)
	default:
		if err := checkSchema(out.Table); err != nil {
			return err
		}
		if out.Table.TableStatus == types.TableStatusActive {
			return nil
		}
	}
	w := ddb.NewTableExistsWaiter(s.client, func(o *ddb.TableExistsWaiterOptions) {
		o.MinDelay, o.MaxDelay = 100*time.Millisecond, 5*time.Second
	})
	out, err = w.WaitForOutput(ctx, in, wait)
	if err != nil {
		return fmt.Errorf("waiting for the table to be active: %w", err)
	}
	return checkSchema(out.Table)
}

func checkSchema(t *types.TableDescription) error {
	var hash, rng string
	for _, k := range t.KeySchema {
		switch k.KeyType {
		case types.KeyTypeHash:
			hash = aws.ToString(k.AttributeName)
		case types.KeyTypeRange:
			rng = aws.ToString(k.AttributeName)
		}
	}
	if hash != attrIdx || rng != attrRequest {
		return fmt.Errorf("the table's key is (%q, %q); a watermark table has hash key %q and range key %q",
			hash, rng, attrIdx, attrRequest)
	}
	return nil
}
