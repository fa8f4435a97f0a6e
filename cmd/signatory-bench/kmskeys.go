package main

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/spf13/cobra"
)

// newKMSKeys creates signing keys in an AWS KMS endpoint (an emulator such as local-kms, for the
// burst benchmark of the awskms vault): P-256 and secp256k1 in turn.
func newKMSKeys() *cobra.Command {
	var n int
	var endpoint, region, accessKey, secretKey string
	cmd := &cobra.Command{
		Use:   "kms-keys",
		Short: "Create n signing keys (P-256 and secp256k1 in turn) in an AWS KMS endpoint, for the burst benchmark",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			client := kms.New(kms.Options{Region: region, BaseEndpoint: aws.String(endpoint),
				Credentials: credentials.NewStaticCredentialsProvider(accessKey, secretKey, "")})
			specs := []types.KeySpec{types.KeySpecEccNistP256, types.KeySpecEccSecgP256k1}
			for i := range n {
				out, err := client.CreateKey(context.Background(), &kms.CreateKeyInput{
					KeyUsage: types.KeyUsageTypeSignVerify, KeySpec: specs[i%len(specs)]})
				if err != nil {
					return fmt.Errorf("CreateKey %d: %w", i, err)
				}
				fmt.Fprintln(cmd.OutOrStdout(), *out.KeyMetadata.Arn)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVarP(&n, "keys", "n", 256, "number of keys")
	f.StringVar(&endpoint, "endpoint", "http://127.0.0.1:8080", "KMS endpoint")
	f.StringVar(&region, "region", "us-east-1", "region")
	f.StringVar(&accessKey, "access-key-id", "AKIDLOCALKMS", "access key id")
	f.StringVar(&secretKey, "secret-access-key", "local-kms-secret", "secret access key")
	return cmd
}
