package cloudkmstest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"hash/crc32"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault/remote"
	"github.com/signatory-go/signatory/internal/vault/remote/remotetest"
)

// GCP is a fake of Cloud KMS's KeyManagementService (google.cloud.kms.v1) serving ListCryptoKeys,
// ListCryptoKeyVersions, GetPublicKey and AsymmetricSign. When Token is set, every call needs the
// metadata "authorization: Bearer <Token>" or fails with UNAUTHENTICATED, as Cloud KMS does.
type GCP struct {
	kmspb.UnimplementedKeyManagementServiceServer
	remotetest.Faults
	Token string

	mu    sync.Mutex
	rings map[string][]string // key ring → crypto key names in creation order
	keys  map[string]*gcpKey
}

type gcpKey struct {
	purpose  kmspb.CryptoKey_CryptoKeyPurpose
	versions []*gcpVersion
}

type gcpVersion struct {
	name  string
	state kmspb.CryptoKeyVersion_CryptoKeyVersionState
	alg   kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm
	key   *remotetest.Key // nil for algorithms the fake cannot sign with
}

// New returns a fake that requires token (none when empty).
func New(token string) *GCP {
	return &GCP{Token: token, rings: map[string][]string{}, keys: map[string]*gcpKey{}}
}

// KeyRing creates (if needed) and returns the name projects/p/locations/l/keyRings/r.
func (g *GCP) KeyRing(project, location, ring string) string {
	name := fmt.Sprintf("projects/%s/locations/%s/keyRings/%s", project, location, ring)
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.rings[name]; !ok {
		g.rings[name] = nil
	}
	return name
}

// AddKey creates crypto key id in ring with one version per state, all of algorithm alg, and
// returns the versions' keys (nil entries for algorithms other than EC_SIGN_P256_SHA256,
// EC_SIGN_SECP256K1_SHA256 and EC_SIGN_ED25519).
func (g *GCP) AddKey(ring, id string, purpose kmspb.CryptoKey_CryptoKeyPurpose, alg kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm, states ...kmspb.CryptoKeyVersion_CryptoKeyVersionState) []*remotetest.Key {
	g.mu.Lock()
	defer g.mu.Unlock()
	name := ring + "/cryptoKeys/" + id
	k := &gcpKey{purpose: purpose}
	var out []*remotetest.Key
	for i, st := range states {
		v := &gcpVersion{name: fmt.Sprintf("%s/cryptoKeyVersions/%d", name, i+1), state: st, alg: alg}
		switch alg {
		case kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256:
			v.key = remotetest.NewKey(tezos.P256)
		case kmspb.CryptoKeyVersion_EC_SIGN_SECP256K1_SHA256:
			v.key = remotetest.NewKey(tezos.Secp256k1)
		case kmspb.CryptoKeyVersion_EC_SIGN_ED25519:
			v.key = remotetest.NewKey(tezos.Ed25519)
		}
		k.versions = append(k.versions, v)
		out = append(out, v.key)
	}
	g.keys[name] = k
	g.rings[ring] = append(g.rings[ring], name)
	return out
}

// Start serves the fake on a loopback port, over TLS with cert when it is not nil, else in
// plaintext. It returns the host:port and a function that stops the server.
func (g *GCP) Start(cert *remotetest.Cert) (addr string, stop func()) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	opts := []grpc.ServerOption{grpc.UnaryInterceptor(g.authenticate)}
	if cert != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert.TLS}})))
	}
	srv := grpc.NewServer(opts...)
	kmspb.RegisterKeyManagementServiceServer(srv, g)
	go func() { _ = srv.Serve(lis) }()
	return lis.Addr().String(), srv.Stop
}

func (g *GCP) authenticate(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	g.Record(info.FullMethod[strings.LastIndexByte(info.FullMethod, '/')+1:])
	if g.Token == "" {
		return h(ctx, req)
	}
	md, _ := metadata.FromIncomingContext(ctx)
	auth := md.Get("authorization")
	if len(auth) != 1 || auth[0] != "Bearer "+g.Token {
		return nil, status.Error(codes.Unauthenticated, "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.")
	}
	return h(ctx, req)
}

// routed checks the x-goog-request-params routing header that Cloud KMS clients send.
func routed(ctx context.Context, field, value string) error {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, p := range md.Get("x-goog-request-params") {
		for _, kv := range strings.Split(p, "&") {
			if kv == field+"="+url.QueryEscape(value) {
				return nil
			}
		}
	}
	return status.Errorf(codes.InvalidArgument, "missing or wrong x-goog-request-params routing header for %s=%s", field, value)
}

func page(size int32, token string, n int) (start, end int, next string, err error) {
	if size <= 0 {
		size = 2 // small default pages exercise the client's paging
	}
	if token != "" {
		if start, err = strconv.Atoi(token); err != nil || start < 0 || start > n {
			return 0, 0, "", status.Error(codes.InvalidArgument, "invalid page_token")
		}
	}
	end = min(start+int(size), n)
	if end < n {
		next = strconv.Itoa(end)
	}
	return start, end, next, nil
}

// ListCryptoKeys implements kmspb.KeyManagementServiceServer.
func (g *GCP) ListCryptoKeys(ctx context.Context, req *kmspb.ListCryptoKeysRequest) (*kmspb.ListCryptoKeysResponse, error) {
	if err := routed(ctx, "parent", req.Parent); err != nil {
		return nil, err
	}
	if req.Filter != "" || req.OrderBy != "" {
		return nil, status.Error(codes.InvalidArgument, "the fake does not implement filter or order_by")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	names, ok := g.rings[req.Parent]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "KeyRing %s not found.", req.Parent)
	}
	start, end, next, err := page(req.PageSize, req.PageToken, len(names))
	if err != nil {
		return nil, err
	}
	resp := &kmspb.ListCryptoKeysResponse{NextPageToken: next, TotalSize: int32(len(names))}
	for _, n := range names[start:end] {
		k := g.keys[n]
		ck := &kmspb.CryptoKey{Name: n, Purpose: k.purpose}
		if len(k.versions) > 0 {
			ck.VersionTemplate = &kmspb.CryptoKeyVersionTemplate{Algorithm: k.versions[0].alg, ProtectionLevel: kmspb.ProtectionLevel_HSM}
		}
		resp.CryptoKeys = append(resp.CryptoKeys, ck)
	}
	return resp, nil
}

// ListCryptoKeyVersions implements kmspb.KeyManagementServiceServer.
func (g *GCP) ListCryptoKeyVersions(ctx context.Context, req *kmspb.ListCryptoKeyVersionsRequest) (*kmspb.ListCryptoKeyVersionsResponse, error) {
	if err := routed(ctx, "parent", req.Parent); err != nil {
		return nil, err
	}
	if req.Filter != "" || req.OrderBy != "" {
		return nil, status.Error(codes.InvalidArgument, "the fake does not implement filter or order_by")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	k, ok := g.keys[req.Parent]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "CryptoKey %s not found.", req.Parent)
	}
	start, end, next, err := page(req.PageSize, req.PageToken, len(k.versions))
	if err != nil {
		return nil, err
	}
	resp := &kmspb.ListCryptoKeyVersionsResponse{NextPageToken: next, TotalSize: int32(len(k.versions))}
	for _, v := range k.versions[start:end] {
		resp.CryptoKeyVersions = append(resp.CryptoKeyVersions, &kmspb.CryptoKeyVersion{
			Name: v.name, State: v.state, Algorithm: v.alg, ProtectionLevel: kmspb.ProtectionLevel_HSM,
		})
	}
	return resp, nil
}

// version finds an ENABLED version of an ASYMMETRIC_SIGN key.
func (g *GCP) version(name string) (*gcpVersion, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	keyName, _, ok := strings.Cut(name, "/cryptoKeyVersions/")
	k := g.keys[keyName]
	if !ok || k == nil {
		return nil, status.Errorf(codes.NotFound, "CryptoKeyVersion %s not found.", name)
	}
	for _, v := range k.versions {
		if v.name != name {
			continue
		}
		if k.purpose != kmspb.CryptoKey_ASYMMETRIC_SIGN {
			return nil, status.Errorf(codes.FailedPrecondition, "CryptoKey %s has purpose %s, not ASYMMETRIC_SIGN.", keyName, k.purpose)
		}
		if v.state != kmspb.CryptoKeyVersion_ENABLED {
			return nil, status.Errorf(codes.FailedPrecondition, "CryptoKeyVersion %s is not enabled, current state is: %s.", name, v.state)
		}
		if v.key == nil {
			return nil, status.Errorf(codes.Unimplemented, "the fake cannot use algorithm %s", v.alg)
		}
		return v, nil
	}
	return nil, status.Errorf(codes.NotFound, "CryptoKeyVersion %s not found.", name)
}

func crc32c(b []byte) int64 { return int64(crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))) }

// GetPublicKey implements kmspb.KeyManagementServiceServer.
func (g *GCP) GetPublicKey(ctx context.Context, req *kmspb.GetPublicKeyRequest) (*kmspb.PublicKey, error) {
	if err := routed(ctx, "name", req.Name); err != nil {
		return nil, err
	}
	if req.PublicKeyFormat != kmspb.PublicKey_PUBLIC_KEY_FORMAT_UNSPECIFIED && req.PublicKeyFormat != kmspb.PublicKey_PEM {
		return nil, status.Error(codes.InvalidArgument, "the fake only serves PEM public keys")
	}
	v, err := g.version(req.Name)
	if err != nil {
		return nil, err
	}
	var der []byte
	if v.key.Curve == tezos.Ed25519 {
		der, err = x509.MarshalPKIXPublicKey(v.key.Ed25519Public()) // RFC 8410
	} else {
		der, err = remote.MarshalSPKI(v.key.ECDSAPublic())
	}
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	p := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	return &kmspb.PublicKey{Pem: p, PemCrc32C: wrapperspb.Int64(crc32c([]byte(p))), Algorithm: v.alg,
		Name: v.name, ProtectionLevel: kmspb.ProtectionLevel_HSM}, nil
}

// AsymmetricSign implements kmspb.KeyManagementServiceServer.
func (g *GCP) AsymmetricSign(ctx context.Context, req *kmspb.AsymmetricSignRequest) (*kmspb.AsymmetricSignResponse, error) {
	if err := routed(ctx, "name", req.Name); err != nil {
		return nil, err
	}
	if g.SignFault(ctx.Done()) {
		return nil, status.Error(codes.ResourceExhausted, "Quota exceeded for quota metric 'Asymmetric cryptographic requests' and limit 'Asymmetric cryptographic requests per minute'.")
	}
	if ctx.Err() != nil {
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	v, err := g.version(req.Name)
	if err != nil {
		return nil, err
	}
	if v.alg == kmspb.CryptoKeyVersion_EC_SIGN_ED25519 {
		return g.signEd25519(req, v)
	}
	if len(req.Data) != 0 || req.DataCrc32C != nil {
		return nil, status.Errorf(codes.InvalidArgument, "Algorithm %s requires a digest, not data.", v.alg)
	}
	digest := req.GetDigest().GetSha256()
	if len(digest) != 32 || req.GetDigest().GetSha384() != nil || req.GetDigest().GetSha512() != nil {
		return nil, status.Errorf(codes.InvalidArgument, "Algorithm %s requires a 32-byte SHA-256 digest.", v.alg)
	}
	verified := false
	if req.DigestCrc32C != nil {
		if req.DigestCrc32C.Value != crc32c(digest) {
			return nil, status.Error(codes.InvalidArgument, "The checksum in field digest_crc32c did not match the data in field digest.")
		}
		verified = true
	}
	r, s := v.key.SignECDSA(digest)
	der, err := remote.MarshalDER(r, s)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &kmspb.AsymmetricSignResponse{Signature: der, SignatureCrc32C: wrapperspb.Int64(crc32c(der)),
		VerifiedDigestCrc32C: verified, Name: v.name, ProtectionLevel: kmspb.ProtectionLevel_HSM}, nil
}

// signEd25519 signs req.Data with pure Ed25519, as Cloud KMS does for EC_SIGN_ED25519: the
// message goes in data; a digest is refused.
func (g *GCP) signEd25519(req *kmspb.AsymmetricSignRequest, v *gcpVersion) (*kmspb.AsymmetricSignResponse, error) {
	if req.Digest != nil || req.DigestCrc32C != nil {
		return nil, status.Errorf(codes.InvalidArgument, "Algorithm %s requires data, not a digest.", v.alg)
	}
	if len(req.Data) == 0 {
		return nil, status.Errorf(codes.InvalidArgument, "Algorithm %s requires data to sign.", v.alg)
	}
	verified := false
	if req.DataCrc32C != nil {
		if req.DataCrc32C.Value != crc32c(req.Data) {
			return nil, status.Error(codes.InvalidArgument, "The checksum in field data_crc32c did not match the data in field data.")
		}
		verified = true
	}
	sig := v.key.SignRaw(req.Data)
	return &kmspb.AsymmetricSignResponse{Signature: sig, SignatureCrc32C: wrapperspb.Int64(crc32c(sig)),
		VerifiedDataCrc32C: verified, Name: v.name, ProtectionLevel: kmspb.ProtectionLevel_HSM}, nil
}

// Keys returns the key of every version the fake can sign with, by version name.
func (g *GCP) Keys() map[string]*remotetest.Key {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[string]*remotetest.Key{}
	for _, k := range g.keys {
		for _, v := range k.versions {
			if v.key != nil {
				out[v.name] = v.key
			}
		}
	}
	return out
}

// SetState changes the state of a crypto key version (e.g. to DISABLED or DESTROYED).
func (g *GCP) SetState(version string, st kmspb.CryptoKeyVersion_CryptoKeyVersionState) {
	g.mu.Lock()
	defer g.mu.Unlock()
	keyName, _, _ := strings.Cut(version, "/cryptoKeyVersions/")
	if k := g.keys[keyName]; k != nil {
		for _, v := range k.versions {
			if v.name == version {
				v.state = st
			}
		}
	}
}
