package cloud

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/signatory-go/signatory/internal/awsconf"
	"github.com/signatory-go/signatory/internal/testdaemon"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/watermark/dynamodb/dynamotest"
)

// TestDynamoDBReferenceMigration is the regression test of a reproduced double attestation: the
// reference implementation writes DAL attestations (tag 23) under request = attestation_with_dal,
// which this store did not read, so on a table reused from the reference it attested again at a
// level the reference had attested with DAL. Through the real binary: the reference's item blocks
// our attestations at and below its mark, and after we attest the item is raised, so that the
// reference, started again on the table (a rollback), finds every level we attested.
func TestDynamoDBReferenceMigration(t *testing.T) {
	t.Parallel()
	dyn := dynamotest.Start(t)
	priv, err := tezos.GenerateKey(tezos.Secp256k1)
	if err != nil {
		t.Fatal(err)
	}
	pkh := priv.Public().Hash().String()
	cfg, err := awsconf.Load(context.Background(), dynamotest.Region, dynamotest.AccessKey, dynamotest.SecretKey, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	client := ddb.NewFromConfig(cfg, func(o *ddb.Options) { o.BaseEndpoint = aws.String(dyn.Endpoint) })
	ctx := context.Background()
	// The table as the reference creates it, and the item it writes after a DAL attestation at
	// level 40 round 1.
	if _, err := client.CreateTable(ctx, &ddb.CreateTableInput{TableName: aws.String("watermark"),
		KeySchema: []ddbtypes.KeySchemaElement{{AttributeName: aws.String("idx"), KeyType: ddbtypes.KeyTypeHash},
			{AttributeName: aws.String("request"), KeyType: ddbtypes.KeyTypeRange}},
		AttributeDefinitions: []ddbtypes.AttributeDefinition{{AttributeName: aws.String("idx"), AttributeType: ddbtypes.ScalarAttributeTypeS},
			{AttributeName: aws.String("request"), AttributeType: ddbtypes.ScalarAttributeTypeS}},
		ProvisionedThroughput: &ddbtypes.ProvisionedThroughput{ReadCapacityUnits: aws.Int64(5), WriteCapacityUnits: aws.Int64(5)},
	}); err != nil {
		t.Fatal(err)
	}
	if err := ddb.NewTableExistsWaiter(client, func(o *ddb.TableExistsWaiterOptions) { o.MinDelay = 50 * time.Millisecond; o.MaxDelay = time.Second }).Wait(ctx, &ddb.DescribeTableInput{TableName: aws.String("watermark")}, time.Minute); err != nil {
		t.Fatal(err)
	}
	idx := "NetXo5iVw1vBoxM/" + pkh
	if _, err := client.PutItem(ctx, &ddb.PutItemInput{TableName: aws.String("watermark"), Item: map[string]ddbtypes.AttributeValue{
		"idx": &ddbtypes.AttributeValueMemberS{Value: idx}, "request": &ddbtypes.AttributeValueMemberS{Value: "attestation_with_dal"},
		"lvl": &ddbtypes.AttributeValueMemberN{Value: "40"}, "round": &ddbtypes.AttributeValueMemberN{Value: "1"},
		"digest": &ddbtypes.AttributeValueMemberS{Value: "vh2UEcdXfsAWcTP1omYSp1q54H5S2x3zqfr2YqAcZ2Neyjauix1K"},
	}}); err != nil {
		t.Fatal(err)
	}

	d := testdaemon.New(t)
	d.StartTimeout = time.Minute
	d.FailureLogLines = -1
	keyFile := filepath.Join(d.Dir, "secret_keys.json")
	js, _ := json.Marshal([]map[string]string{{"name": "k", "value": "unencrypted:" + string(priv.ToBase58())}})
	if err := os.WriteFile(keyFile, js, 0o600); err != nil {
		t.Fatal(err)
	}
	d.WriteConfig(testdaemon.FileVault(keyFile) + fmt.Sprintf(`watermark:
  driver: dynamodb
  config:
    table: watermark
    region: %s
    access_key_id: %s
    secret_access_key: %s
    endpoint: %s
tezos:
  %s:
    allow:
      attestation:
      attestation_with_dal:
`, dynamotest.Region, dynamotest.AccessKey, dynamotest.SecretKey, dyn.Endpoint, pkh))
	d.Serve()
	for _, p := range []string{
		testdaemon.ConsensusTag(testdaemon.TagAttestation, awsChain, 40, 1, 0),
		testdaemon.ConsensusTag(testdaemon.TagAttestationWithDAL, awsChain, 40, 0, 0),
		testdaemon.ConsensusTag(testdaemon.TagBLSAttestation, awsChain, 39, 3, 0),
	} {
		if status, msg := d.Sign(pkh, p); status != 409 {
			t.Fatalf("attestation at or below the reference's DAL item: %d %s", status, msg)
		}
	}
	p := testdaemon.ConsensusTag(testdaemon.TagAttestation, awsChain, 41, 0, 0)
	status, sig := d.Sign(pkh, p)
	if status != 200 {
		t.Fatalf("above the mark: %d %s", status, sig)
	}
	if status, again := d.Sign(pkh, p); status != 200 || again != sig {
		t.Fatalf("identical request: %d %s, want %s", status, again, sig)
	}
	// What the reference reads after a rollback.
	for _, req := range []string{"attestation", "attestation_with_dal"} {
		out, err := client.GetItem(ctx, &ddb.GetItemInput{TableName: aws.String("watermark"), ConsistentRead: aws.Bool(true),
			Key: map[string]ddbtypes.AttributeValue{"idx": &ddbtypes.AttributeValueMemberS{Value: idx}, "request": &ddbtypes.AttributeValueMemberS{Value: req}}})
		if err != nil {
			t.Fatal(err)
		}
		lvl, _ := out.Item["lvl"].(*ddbtypes.AttributeValueMemberN)
		if lvl == nil {
			t.Fatalf("%s item: %v", req, out.Item)
		}
		if n, _ := strconv.Atoi(lvl.Value); n < 41 {
			t.Fatalf("%s item at level %d after we attested at 41: a rollback could attest again", req, n)
		}
	}
}
