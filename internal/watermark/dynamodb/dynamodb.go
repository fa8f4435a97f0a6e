// Package dynamodb is the watermark store kept in an AWS DynamoDB table (driver "dynamodb", or
// "aws" as in the reference): one item per (chain, key, class), advanced by a conditional write.
package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/signatory-go/signatory/internal/awsconf"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	tz "github.com/ecadlabs/gotez/v2"
	"github.com/ecadlabs/gotez/v2/b58"
	"gopkg.in/yaml.v3"

	"github.com/signatory-go/signatory/internal/config"
	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/watermark"
)

// Driver is the driver name in the config; "aws" (the reference's name) is accepted too.
const Driver = "dynamodb"

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
	Timeout config.Duration `yaml:"timeout"`
	// MaxRetries is the number of retries of throttled or transient failures (default 3).
	MaxRetries *int `yaml:"max_retries"`
	// CreateTimeout bounds the wait for a new table to become active at start (default 5 min).
	CreateTimeout config.Duration `yaml:"create_timeout"`
}

// api is the part of the DynamoDB client the store uses.
type api interface {
	ddb.DescribeTableAPIClient
	ddb.ScanAPIClient
	CreateTable(ctx context.Context, in *ddb.CreateTableInput, opt ...func(*ddb.Options)) (*ddb.CreateTableOutput, error)
	PutItem(ctx context.Context, in *ddb.PutItemInput, opt ...func(*ddb.Options)) (*ddb.PutItemOutput, error)
}

// Store is a DynamoDB watermark.Store. Each Advance is one conditional PutItem, so any number
// of signer processes may share a table: DynamoDB serialises the writes to one item.
type Store struct {
	table   string
	client  api
	timeout time.Duration
	log     *slog.Logger
	mu      sync.RWMutex // held for reading by operations in flight; Close takes it for writing
	closed  bool
}

var _ watermark.Store = (*Store)(nil)

// New opens the store described by node (the watermarkDrivers constructor).
func New(_ *config.Config, node *yaml.Node, log *slog.Logger) (watermark.Store, error) {
	var cfg Config
	if node != nil && !node.IsZero() {
		if err := node.Decode(&cfg); err != nil {
			return nil, fmt.Errorf("dynamodb watermark: %w", err)
		}
	}
	s, err := Open(context.Background(), cfg, log)
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

var errClosed = fault.New(fault.Unavailable, "watermark store is closed")

// Attribute names. "round" is written through a placeholder in expressions.
const (
	attrIdx     = "idx"
	attrRequest = "request"
	attrLevel   = "lvl"
	attrRound   = "round"
	attrDigest  = "digest"
)

// Advance implements watermark.Store with one conditional PutItem: the write happens iff there is
// no item, or (level, round) is strictly higher, or the stored digest equals req's (watermark.Allowed).
func (s *Store) Advance(ctx context.Context, k watermark.Key, req watermark.Mark) error {
	if err := k.Check(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fault.Wrap(fault.Unavailable, err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return errClosed
	}
	item := map[string]types.AttributeValue{
		attrIdx:     &types.AttributeValueMemberS{Value: k.Chain + "/" + k.PKH},
		attrRequest: &types.AttributeValueMemberS{Value: string(k.Class)},
		attrLevel:   num(req.Level),
		attrRound:   num(req.Round),
	}
	cond := "attribute_not_exists(#i) OR #l < :l OR (#l = :l AND #r < :r)"
	names := map[string]string{"#i": attrIdx, "#l": attrLevel, "#r": attrRound}
	values := map[string]types.AttributeValue{":l": num(req.Level), ":r": num(req.Round)}
	if req.HasDigest {
		d := &types.AttributeValueMemberS{Value: tz.BlockPayloadHash(req.Digest).String()}
		item[attrDigest] = d
		cond += " OR #d = :d"
		names["#d"] = attrDigest
		values[":d"] = d
	}
	octx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	_, err := s.client.PutItem(octx, &ddb.PutItemInput{
		TableName:                 aws.String(s.table),
		Item:                      item,
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	})
	var ccf *types.ConditionalCheckFailedException
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ccf):
		return watermark.ErrConflict
	default:
		return s.fail(ctx, "PutItem", err)
	}
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

// List implements watermark.Store with a consistent Scan. Items that this store did not write
// (e.g. the reference's attestation_with_dal items) are skipped with a warning.
func (s *Store) List(ctx context.Context) ([]watermark.Entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, fault.Wrap(fault.Unavailable, err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, errClosed
	}
	var out []watermark.Entry
	p := ddb.NewScanPaginator(s.client, &ddb.ScanInput{TableName: aws.String(s.table), ConsistentRead: aws.Bool(true)})
	for p.HasMorePages() {
		octx, cancel := context.WithTimeout(ctx, s.timeout)
		page, err := p.NextPage(octx)
		cancel()
		if err != nil {
			return nil, s.fail(ctx, "Scan", err)
		}
		for _, it := range page.Items {
			e, err := parseItem(it)
			if err != nil {
				s.log.Warn("dynamodb watermark: item skipped", "table", s.table, "err", err)
				continue
			}
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b watermark.Entry) int { return watermark.Compare(a.Key, b.Key) })
	return out, nil
}

func parseItem(it map[string]types.AttributeValue) (watermark.Entry, error) {
	str := func(name string) string {
		if v, ok := it[name].(*types.AttributeValueMemberS); ok {
			return v.Value
		}
		return ""
	}
	var e watermark.Entry
	idx := str(attrIdx)
	chain, pkh, ok := strings.Cut(idx, "/")
	e.Key = watermark.Key{Chain: chain, PKH: pkh, Class: watermark.Class(str(attrRequest))}
	if !ok || e.Key.Check() != nil {
		return e, fmt.Errorf("item %q/%q is not a watermark of this store", idx, str(attrRequest))
	}
	for name, dst := range map[string]*int32{attrLevel: &e.Level, attrRound: &e.Round} {
		n, ok := it[name].(*types.AttributeValueMemberN)
		if !ok {
			if name == attrRound && it[name] == nil {
				continue // the reader accepts marks without a round, as the file store does
			}
			return e, fmt.Errorf("item %s/%s: %s is not a number", idx, e.Class, name)
		}
		v, err := strconv.ParseInt(n.Value, 10, 32)
		if err != nil {
			return e, fmt.Errorf("item %s/%s: %s: %v", idx, e.Class, name, err)
		}
		*dst = int32(v)
	}
	if d := str(attrDigest); d != "" {
		h, err := b58.ParseBlockPayloadHash([]byte(d))
		if err != nil {
			return e, fmt.Errorf("item %s/%s: digest: %v", idx, e.Class, err)
		}
		e.Digest, e.HasDigest = *h, true
	}
	return e, nil
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
		return errClosed
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
