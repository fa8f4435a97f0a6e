// Package awskmstest runs local-kms, an AWS KMS emulator, for tests: it finds the binary on PATH
// or installs the pinned version with `go install`, and starts it on a free port in a temp folder.
package awskmstest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/signatory-go/signatory/internal/testdaemon"
)

// Module is the pinned local-kms version: the one whose P-256 and secp256k1 keys, SPKI public
// keys and signatures the tests were written against.
const Module = "github.com/nsmithuk/local-kms@v0.0.0-20260228092603-2a5e92d09ab6"

// Region and Account are what the emulator is started with; any credentials are accepted.
const (
	Region    = "us-east-1"
	Account   = "111122223333"
	AccessKey = "AKIDLOCALKMS"
	SecretKey = "local-kms-secret"
)

// Binary returns the path of local-kms: from PATH, or installed once per machine into a folder
// under the temp dir (go install into a private GOBIN, then an atomic rename).
var Binary = testdaemon.Installed("local-kms", install)

func install() (string, error) {
	if p, err := exec.LookPath("local-kms"); err == nil {
		return p, nil
	}
	cache := filepath.Join(os.TempDir(), "signatory-test-bin", "local-kms-2a5e92d09ab6")
	target := filepath.Join(cache, "local-kms")
	if _, err := os.Stat(target); err == nil {
		return target, nil
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	gobin, err := os.MkdirTemp(cache, "gobin-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(gobin)
	cmd := exec.Command("go", "install", Module)
	cmd.Dir = gobin
	cmd.Env = append(os.Environ(), "GOBIN="+gobin, "GOWORK=off", "GOFLAGS=-mod=mod")
	if _, err := testdaemon.RunTool(cmd); err != nil {
		return "", err
	}
	if err := os.Rename(filepath.Join(gobin, "local-kms"), target); err != nil {
		return "", err
	}
	return target, nil
}

// Server is a running local-kms; Stop, Restart (on the same port, with the same keys), Pause
// and Resume come from testdaemon.Service.
type Server struct {
	*testdaemon.Service
	Endpoint string // http://127.0.0.1:port
}

// Start runs local-kms on a free port with its data in a temp folder; it is killed at cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, dataDir := Binary(t), t.TempDir()
	svc := testdaemon.StartService(t, testdaemon.ServiceSpec{Name: "local-kms", Command: func(ports []string) *exec.Cmd {
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(), "PORT="+ports[0], "KMS_DATA_PATH="+dataDir, "KMS_REGION="+Region, "KMS_ACCOUNT_ID="+Account)
		return cmd
	}})
	return &Server{Service: svc, Endpoint: "http://" + svc.Addr}
}

// Client returns an SDK client for the emulator.
func (s *Server) Client() *kms.Client {
	return kms.New(kms.Options{
		Region:       Region,
		BaseEndpoint: aws.String(s.Endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, ""),
	})
}

// CreateKey creates a key with usage and spec and returns its id and ARN.
func (s *Server) CreateKey(t testing.TB, usage types.KeyUsageType, spec types.KeySpec) (id, arn string) {
	t.Helper()
	out, err := s.Client().CreateKey(context.Background(), &kms.CreateKeyInput{KeyUsage: usage, KeySpec: spec})
	if err != nil {
		t.Fatalf("CreateKey %s %s: %v", usage, spec, err)
	}
	return *out.KeyMetadata.KeyId, *out.KeyMetadata.Arn
}

// CreateAlias points alias ("alias/…") at key.
func (s *Server) CreateAlias(t testing.TB, alias, key string) {
	t.Helper()
	_, err := s.Client().CreateAlias(context.Background(), &kms.CreateAliasInput{AliasName: aws.String(alias), TargetKeyId: aws.String(key)})
	if err != nil {
		t.Fatalf("CreateAlias %s: %v", alias, err)
	}
}
