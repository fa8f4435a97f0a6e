// Package dynamodb is the watermark store kept in an AWS DynamoDB table (driver "dynamodb", or
// "aws" as in the reference): one item per (chain, key, class), advanced by conditional writes.
//
// # Items
//
// The reference's layout, so that a reference table can be reused and handed back: hash key idx
// ("<chain>/<pkh>"), range key request ("block", "preattestation", "attestation" or
// "attestation_with_dal"), lvl and round (numbers), digest (blake2b-256 of the signed bytes, 32
// bytes of Binary as the reference's item struct becomes through the AWS SDK, NULL for a mark
// without one; a string vh… as earlier versions of this store wrote is read too), plus
// signature: the base58 signature released for
// the mark, absent when none is stored (items of the reference, of an import, or of a version of
// this store that kept no signatures). The reference ignores the attribute.
//
// The spending lists of keys with a spending policy are items of the same table, idx
// "spending#<pkh>" and request "spending" (see spend.go), which List skips.
//
// # Advance
//
// A block or preattestation is one PutItem conditioned on a strictly higher (level, round). When
// the condition fails the item is read consistently (GetItem) and watermark.Decide applied:
// Identical returns the stored record, Refuse the conflict; Write (a signature recorded for
// identical bytes of a tz1/tz4 key over an item without one, or the item changed meanwhile) is a
// PutItem conditioned on the item being exactly as read (level, round, digest, signature, each
// present or absent), and the read-decide-write is repeated a bounded number of times.
//
// # Attestations and the reference's attestation_with_dal items
//
// The reference keeps DAL attestations (tag 23) in an attestation_with_dal item of their own; here
// both kinds are one class, and that item is part of its mark, for the two directions of a
// migration:
//
//   - Reading a reference table: an attestation must be allowed over the attestation item and
//     over the attestation_with_dal item (the higher of the two decides; at a tie both must
//     agree), else the reference's DAL attestation at that level would be followed by ours.
//     Advance therefore reads both items first (one consistent Query), then writes the attestation
//     item as above. Load and List fold the two (the higher mark; at a tie the attestation item,
//     without its signature if the other item holds other bytes at that level and round).
//   - Rollback to the reference: whenever an attestation record is returned (written or
//     identical), the attestation_with_dal item has first been raised to at least its mark by a
//     PutItem conditioned on that item being lower or absent, so that the reference, started
//     again on the table, refuses a DAL attestation at any level this store attested.
//
// DynamoDB's TransactWriteItems would make the two writes one, but dynalite, the emulator every
// test runs against, does not implement it (UnknownOperationException), so the store makes the
// attestation item the commit and raises the other item after it. A crash (or a failed write)
// between the two leaves the attestation item ahead of the attestation_with_dal item. That is a
// concern for a rollback only: no signature for that mark has been released (Advance returns
// only after the raise, and fails, withholding the signature, if the raise fails); any later
// Advance or Load of that key that returns the stored record raises the item first; and should
// the reference be started meanwhile and sign a DAL attestation at that level, the tie rule
// above refuses to release the stored signature afterwards. The reference and this store must
// not serve one key at the same time: the reference's DAL attestations check only the
// attestation_with_dal item, which this store raises after its commit.
package dynamodb

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/signatory-go/signatory/internal/awsconf"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"gopkg.in/yaml.v3"

	"github.com/signatory-go/signatory/internal/backend"
	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/spending"
	"github.com/signatory-go/signatory/internal/watermark"
	"github.com/signatory-go/signatory/internal/yamlstrict"
)

// Driver is the driver name in the config; DriverAlias (the reference's name) is accepted too.
const (
	Driver      = "dynamodb"
	DriverAlias = "aws"
)

// Defaults of the optional settings.
const (
	DefaultTable         = "watermark"
	DefaultTimeout       = 5 * time.Second
	DefaultMaxRetries    = 3
	DefaultCreateTimeout = 5 * time.Minute
)

// Config is the `watermark.config` section. The reference's keys (table, region and the three
// credential keys) keep their names; the others are additions. $VARS are expanded in strings.
// Without access_key_id the SDK's default credential chain is used.
type Config struct {
	Table           string `yaml:"table"`
	Region          string `yaml:"region"`
	AccessKeyID     string `yaml:"access_key_id"`
	SecretAccessKey string `yaml:"secret_access_key"`
	SessionToken    string `yaml:"session_token"`
	// Endpoint overrides the DynamoDB endpoint (an emulator, a VPC endpoint).
	Endpoint string `yaml:"endpoint"`
	// Timeout bounds one Advance, retries included (default 5 s).
	Timeout yamlstrict.Duration `yaml:"timeout"`
	// MaxRetries is the number of retries of throttled or transient failures (default 3).
	MaxRetries *int `yaml:"max_retries"`
	// CreateTimeout bounds the wait for a new table to become active at start (default 5 min).
	CreateTimeout yamlstrict.Duration `yaml:"create_timeout"`
}

// api is the part of the DynamoDB client the store uses.
type api interface {
	ddb.DescribeTableAPIClient
	ddb.ScanAPIClient
	CreateTable(ctx context.Context, in *ddb.CreateTableInput, opt ...func(*ddb.Options)) (*ddb.CreateTableOutput, error)
	PutItem(ctx context.Context, in *ddb.PutItemInput, opt ...func(*ddb.Options)) (*ddb.PutItemOutput, error)
	GetItem(ctx context.Context, in *ddb.GetItemInput, opt ...func(*ddb.Options)) (*ddb.GetItemOutput, error)
	Query(ctx context.Context, in *ddb.QueryInput, opt ...func(*ddb.Options)) (*ddb.QueryOutput, error)
}

// Store is a DynamoDB watermark.Store. Every change of an item is a conditional PutItem, so any
// number of signer processes may share a table: DynamoDB serialises the writes to one item.
type Store struct {
	table   string
	client  api
	timeout time.Duration
	log     *slog.Logger
	mu      sync.RWMutex // held for reading by operations in flight; Close takes it for writing
	closed  bool
}

var (
	_ watermark.Store = (*Store)(nil)
	_ spending.Store  = (*Store)(nil)
)

// New opens the store described by node.
func New(ctx context.Context, _ string, node *yaml.Node, env backend.Env) (watermark.Store, error) {
	var cfg Config
	if err := yamlstrict.Decode(node, &cfg); err != nil {
		return nil, fmt.Errorf("watermark.config: %w", err)
	}
	s, err := Open(ctx, cfg, env.Logger)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Open connects and creates the table if it is missing, waiting until it is active.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.Default()
	}
	retries := DefaultMaxRetries
	if cfg.MaxRetries != nil {
		retries = max(*cfg.MaxRetries, 0)
	}
	awsCfg, err := awsconf.Load(ctx, cfg.Region, cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken, retries)
	if err != nil {
		return nil, fmt.Errorf("dynamodb watermark: %w", err)
	}
	endpoint := os.ExpandEnv(cfg.Endpoint)
	client := ddb.NewFromConfig(awsCfg, func(o *ddb.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	})
	s := &Store{table: os.ExpandEnv(cfg.Table), client: client, timeout: time.Duration(cfg.Timeout), log: log}
	if s.table == "" {
		s.table = DefaultTable
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	wait := time.Duration(cfg.CreateTimeout)
	if wait <= 0 {
		wait = DefaultCreateTimeout
	}
	if err := s.ensureTable(ctx, wait); err != nil {
		return nil, fmt.Errorf("dynamodb watermark: table %s: %w", s.table, err)
	}
	return s, nil
}

// Name implements watermark.Store.
func (s *Store) Name() string { return Driver }

// Table returns the table's name.
func (s *Store) Table() string { return s.table }

// Health implements watermark.Store: the table must be describable and active.
func (s *Store) Health(ctx context.Context) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return watermark.ErrClosed
	}
	octx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	out, err := s.client.DescribeTable(octx, &ddb.DescribeTableInput{TableName: aws.String(s.table)})
	if err != nil {
		return s.fail(ctx, "DescribeTable", err)
	}
	if st := out.Table.TableStatus; st != types.TableStatusActive && st != types.TableStatusUpdating {
		return fault.New(fault.Unavailable, fmt.Sprintf("dynamodb watermark: table %s is %s", s.table, st))
	}
	return nil
}

// Close implements watermark.Store: calls in flight finish, later ones fail as Unavailable.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
