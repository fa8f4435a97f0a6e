package daemon

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type certPair struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
	kpem []byte
}

func makeCert(t *testing.T, cn string, parent *certPair, server bool) *certPair {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	signer, signerKey := tmpl, key
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign
	} else {
		signer, signerKey = parent.cert, parent.key
		if server {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		} else {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	kder, _ := x509.MarshalECPrivateKey(key)
	return &certPair{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		kpem: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})}
}

// TestMutualTLS serves the signing port over TLS with required client certificates: a client
// with a certificate from the configured CA is served; one without, or with another CA's, is not.
func TestMutualTLS(t *testing.T) {
	ca := makeCert(t, "test CA", nil, false)
	srvCert := makeCert(t, "signatory", ca, true)
	client := makeCert(t, "baker", ca, false)
	otherCA := makeCert(t, "other CA", nil, false)
	stranger := makeCert(t, "stranger", otherCA, false)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	extra := "  tls:\n    cert_file: " + write("srv.crt", srvCert.pem) + "\n    key_file: " + write("srv.key", srvCert.kpem) +
		"\n    client_ca_file: " + write("ca.crt", ca.pem) + "\n"
	ks, js, tz := keys(t, 1)
	d := newDaemonWith(t, js, tz, extra)
	d.Serve()
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	get := func(cert *certPair) (int, error) {
		tc := &tls.Config{RootCAs: roots}
		if cert != nil {
			tc.Certificates = []tls.Certificate{{Certificate: [][]byte{cert.cert.Raw}, PrivateKey: cert.key}}
		}
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
		resp, err := c.Post("https://"+d.Addr+"/keys/"+ks[0].pkh, "application/json", strings.NewReader(`"`+attestation(chainA, 5, 0, 0)+`"`))
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	if status, err := get(client); err != nil || status != 200 {
		t.Fatalf("client with a certificate: %d %v", status, err)
	}
	if _, err := get(nil); err == nil {
		t.Fatal("client without a certificate was served")
	}
	if _, err := get(stranger); err == nil {
		t.Fatal("client with another CA's certificate was served")
	}
	// Plain HTTP on the TLS port gets no signature.
	if status, _ := d.Sign(ks[0].pkh, attestation(chainA, 6, 0, 0)); status == 200 {
		t.Fatal("plain HTTP served on the TLS port")
	}
}

// TestLoudWarningWithoutAuthentication: a signing port beyond loopback with no authentication
// logs a warning at start; a loopback one does not.
func TestLoudWarningWithoutAuthentication(t *testing.T) {
	ks, js, tz := keys(t, 1)
	_ = ks
	d := newDaemon(t, js, tz)
	d.Serve()
	if strings.Contains(d.Logs(), "SECURITY WARNING") {
		t.Fatal("warning on a loopback listener")
	}
	d.Kill()
	// Rewrite the config to listen on all interfaces (port still free, loopback reachable).
	cfg, _ := os.ReadFile(d.Config)
	open := strings.Replace(string(cfg), "address: "+d.Addr, "address: 0.0.0.0:"+strings.Split(d.Addr, ":")[1], 1)
	if err := os.WriteFile(d.Config, []byte(open), 0o600); err != nil {
		t.Fatal(err)
	}
	d.Serve()
	if !d.WaitLog("SECURITY WARNING") {
		t.Fatalf("no warning for 0.0.0.0 without authentication:\n%s", d.Logs())
	}
}
