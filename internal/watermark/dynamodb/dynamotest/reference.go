package dynamotest

import tz "github.com/ecadlabs/gotez/v2"

// ReferenceItem is the reference implementation's DynamoDB item (AWSWatermark in its
// pkg/signatory/watermark/aws.go). Tests make the reference's items by marshalling it with the
// AWS SDK's attributevalue.MarshalMap, as the reference writes them (the digest Binary, NULL when
// absent), and read items back as the reference does, with attributevalue.UnmarshalMap.
type ReferenceItem struct {
	Idx     string               `dynamodbav:"idx"`
	Request string               `dynamodbav:"request"`
	Level   int32                `dynamodbav:"lvl"`
	Round   int32                `dynamodbav:"round"`
	Digest  *tz.BlockPayloadHash `dynamodbav:"digest"`
}
