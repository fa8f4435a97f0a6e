package etcd

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/signatory-go/signatory/internal/yamlstrict"
)

// Driver is the name of this backend in the config's watermark.driver.
const Driver = "etcd"

// Defaults of the optional settings.
const (
	DefaultPrefix      = "/signatory/watermark/"
	DefaultDialTimeout = 5 * time.Second
	DefaultTimeout     = 5 * time.Second
)

// Config is the watermark.config section of driver "etcd":
//
//	endpoints: [http://10.0.0.1:2379, http://10.0.0.2:2379]   # required
//	prefix: /signatory/watermark/      # optional; keys are <prefix><chain>/<pkh>/<class>, and <prefix>spending/<pkh>
//	username: signatory                # optional; or username_env
//	username_env: ETCD_USERNAME        # optional
//	password_env: ETCD_PASSWORD        # optional (required with a user name)
//	dial_timeout: 5s                   # optional; bound on the first contact at start
//	timeout: 5s                        # optional; bound on one check-and-advance
//	tls: {ca_file: …, cert_file: …, key_file: …}   # optional; for https:// endpoints
type Config struct {
	Endpoints   yamlstrict.StringList `yaml:"endpoints"`
	Prefix      string                `yaml:"prefix"`
	Username    string                `yaml:"username"`
	UsernameEnv string                `yaml:"username_env"`
	PasswordEnv string                `yaml:"password_env"`
	DialTimeout yamlstrict.Duration   `yaml:"dial_timeout"`
	Timeout     yamlstrict.Duration   `yaml:"timeout"`
	TLS         *TLSConfig            `yaml:"tls"`
}

// TLSConfig names the files for TLS to etcd. ca_file alone verifies the server; cert_file and
// key_file add a client certificate.
type TLSConfig struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// ParseConfig decodes a watermark.config node and fills in the defaults. Unknown keys are an
// error, so that a misspelt setting is not silently ignored.
func ParseConfig(node *yaml.Node) (Config, error) {
	var c Config
	if err := yamlstrict.Decode(node, &c); err != nil {
		return c, fmt.Errorf("watermark.config: %w", err)
	}
	if len(c.Endpoints) == 0 {
		return c, yamlstrict.Invalidf("watermark.config.endpoints is required for driver %s (e.g. [http://127.0.0.1:2379])", Driver)
	}
	for i, e := range c.Endpoints {
		c.Endpoints[i] = os.ExpandEnv(e)
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if !strings.HasSuffix(c.Prefix, "/") {
		c.Prefix += "/"
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = yamlstrict.Duration(DefaultDialTimeout)
	}
	if c.Timeout <= 0 {
		c.Timeout = yamlstrict.Duration(DefaultTimeout)
	}
	return c, nil
}

// credentials returns the user name and password: username or $username_env, and $password_env.
func (c Config) credentials() (user, password string, err error) {
	user = c.Username
	if c.UsernameEnv != "" {
		v, ok := os.LookupEnv(c.UsernameEnv)
		if !ok {
			return "", "", fmt.Errorf("watermark.config.username_env: environment variable %s is not set", c.UsernameEnv)
		}
		user = v
	}
	if c.PasswordEnv != "" {
		v, ok := os.LookupEnv(c.PasswordEnv)
		if !ok {
			return "", "", fmt.Errorf("watermark.config.password_env: environment variable %s is not set", c.PasswordEnv)
		}
		password = v
	}
	if user == "" && password != "" {
		return "", "", errors.New("watermark.config: a password is set but no user name (username or username_env)")
	}
	return user, password, nil
}

// tlsConfig builds the client TLS configuration, or nil when none is configured.
func (c Config) tlsConfig() (*tls.Config, error) {
	if c.TLS == nil {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.TLS.CAFile != "" {
		pem, err := os.ReadFile(os.ExpandEnv(c.TLS.CAFile))
		if err != nil {
			return nil, fmt.Errorf("watermark.config.tls.ca_file: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("watermark.config.tls.ca_file %s: no PEM certificate found", c.TLS.CAFile)
		}
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return nil, errors.New("watermark.config.tls: cert_file and key_file go together")
	}
	if c.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(os.ExpandEnv(c.TLS.CertFile), os.ExpandEnv(c.TLS.KeyFile))
		if err != nil {
			return nil, fmt.Errorf("watermark.config.tls: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
