package cloud

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	tz "github.com/ecadlabs/gotez/v2"

	"github.com/signatory-go/signatory/internal/awsconf"
	"github.com/signatory-go/signatory/internal/request/requesttest"
	"github.com/signatory-go/signatory/internal/testdaemon"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/watermark/dynamodb/dynamotest"
	"github.com/signatory-go/signatory/internal/watermark/postgres/postgrestest"
)

// TestDynamoDBReferenceMigration is the regression test of two reproduced double signatures on a
// table the reference wrote: its DAL attestations (tag 23) under request = attestation_with_dal,
// which this store did not read; and its digests, Binary values that this store could not read, so
// that `watermark export` left those marks out and a signer on the imported store baked again at
// the reference's level. Through the real binary: the reference's items (its struct, marshalled by
// the AWS SDK) block our requests at and below their marks; after we sign, the items are raised
// and the reference's own decoding reads them (a rollback); `watermark export` carries every mark,
// and a signer on PostgreSQL after `watermark import` still refuses at and below them.
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
	digest := tz.BlockPayloadHash{0xd1, 0x9e}
	for _, r := range []dynamotest.ReferenceItem{
		{Idx: idx, Request: "attestation_with_dal", Level: 40, Round: 1, Digest: &digest},
		{Idx: idx, Request: "block", Level: 100, Round: 0, Digest: &digest},
	} {
		it, err := attributevalue.MarshalMap(&r)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := it["digest"].(*ddbtypes.AttributeValueMemberB); !ok {
			t.Fatalf("the SDK wrote the digest as %T", it["digest"])
		}
		if _, err := client.PutItem(ctx, &ddb.PutItemInput{TableName: aws.String("watermark"), Item: it}); err != nil {
			t.Fatal(err)
		}
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
      block:
      attestation:
      attestation_with_dal:
`, dynamotest.Region, dynamotest.AccessKey, dynamotest.SecretKey, dyn.Endpoint, pkh))
	d.Serve()
	for _, level := range []int32{99, 100} {
		if status, msg := d.Sign(pkh, requesttest.Block(awsChain, level, 0, 0)); status != 409 {
			t.Fatalf("a block at level %d, the reference's mark 100: %d %s", level, status, msg)
		}
	}
	for _, p := range []string{
		requesttest.ConsensusTag(requesttest.TagAttestation, awsChain, 40, 1, 0),
		requesttest.ConsensusTag(requesttest.TagAttestationWithDAL, awsChain, 40, 0, 0),
		requesttest.ConsensusTag(requesttest.TagBLSAttestation, awsChain, 39, 3, 0),
	} {
		if status, msg := d.Sign(pkh, p); status != 409 {
			t.Fatalf("attestation at or below the reference's DAL item: %d %s", status, msg)
		}
	}
	p := requesttest.ConsensusTag(requesttest.TagAttestation, awsChain, 41, 0, 0)
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
		var r dynamotest.ReferenceItem
		if err := attributevalue.UnmarshalMap(out.Item, &r); err != nil || r.Level < 41 || r.Digest == nil {
			t.Fatalf("the reference reads our %s item as %+v: %v", req, r, err)
		}
	}

	// `watermark show` and `watermark export` carry every mark; a signer on PostgreSQL after
	// `watermark import` still refuses at and below them.
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(testdaemon.Binary(t), "watermark", "show", "-c", d.Config).CombinedOutput(); err != nil ||
		!strings.Contains(string(out), "100") || !strings.Contains(string(out), "41") {
		t.Fatalf("watermark show: %v\n%s", err, out)
	}
	export := filepath.Join(d.Dir, "export.json")
	if out, err := exec.Command(testdaemon.Binary(t), "watermark", "export", "-c", d.Config, "-o", export).CombinedOutput(); err != nil {
		t.Fatalf("watermark export: %v\n%s", err, out)
	}
	pg := postgrestest.Start(t)
	p2 := testdaemon.New(t)
	p2.Name = "postgres"
	p2.StartTimeout = time.Minute
	p2.WriteConfig(testdaemon.FileVault(keyFile) + fmt.Sprintf("watermark:\n  driver: postgres\n  config:\n    dsn: %s\n    table: migrated\n", pg.DSN) +
		"tezos:\n  " + pkh + ":\n    allow:\n      block:\n      attestation:\n")
	if out, err := exec.Command(testdaemon.Binary(t), "watermark", "import", export, "-c", p2.Config).CombinedOutput(); err != nil {
		t.Fatalf("watermark import: %v\n%s", err, out)
	}
	p2.Serve()
	for _, c := range []struct {
		payload string
		status  int
	}{
		{requesttest.Block(awsChain, 100, 0, 1), 409},
		{requesttest.ConsensusTag(requesttest.TagAttestation, awsChain, 41, 0, 1), 409},
		{requesttest.Block(awsChain, 101, 0, 1), 200},
	} {
		if status, msg := p2.Sign(pkh, c.payload); status != c.status {
			t.Fatalf("after the import into PostgreSQL: %d %s, want %d", status, msg, c.status)
		}
	}
}
