// Package awsconf builds the AWS SDK configuration shared by the awskms vault and the dynamodb
// watermark store: region, static or default-chain credentials, and a bounded retryer.
package awsconf

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// Load loads the SDK config for region (else AWS_REGION or the profile's), with static
// credentials when accessKeyID is set and otherwise the default chain, and a retryer that
// retries throttled and transient failures maxRetries times with exponential backoff (the
// operation's context deadline bounds the whole). No client-side retry quota applies.
func Load(ctx context.Context, region, accessKeyID, secret, token string, maxRetries int) (aws.Config, error) {
	region, accessKeyID = os.ExpandEnv(region), os.ExpandEnv(accessKeyID)
	secret, token = os.ExpandEnv(secret), os.ExpandEnv(token)
	opts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = maxRetries + 1
				o.MaxBackoff = 2 * time.Second
				o.RateLimiter = ratelimit.None
			})
		}),
	}
	if region != "" {
		opts = append(opts, awsconfig.WithRegion(region))
	}
	switch {
	case accessKeyID != "" && secret != "":
		opts = append(opts, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(accessKeyID, secret, token)))
	case accessKeyID != "" || secret != "":
		return aws.Config{}, errors.New("access_key_id and secret_access_key must be given together")
	}
	c, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("cannot load the AWS configuration: %w", err)
	}
	if c.Region == "" {
		return aws.Config{}, errors.New("region is not set (config region, AWS_REGION or the profile's region)")
	}
	return c, nil
}
