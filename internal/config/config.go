// Package config reads the signer's YAML config in the reference implementation's schema (see
// examples/signatory.yaml), applies defaults, and validates it with errors that name the place and the problem.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/signatory-go/signatory/internal/jwtauth"
	"github.com/signatory-go/signatory/internal/policy"
	"github.com/signatory-go/signatory/internal/sched"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/yamlstrict"
)

// Defaults.
const (
	DefaultAddress        = ":6732"
	DefaultUtilityAddress = ":9583"
	DefaultBaseDir        = "/var/lib/signatory"
	DefaultMaxBodyBytes   = 64 << 10
	// MaxMaxBodyBytes is the largest server.max_body_bytes accepted.
	MaxMaxBodyBytes     = 1 << 20
	DefaultReadTimeout  = 10 * time.Second
	DefaultWriteTimeout = 30 * time.Second
	DefaultIdleTimeout  = 120 * time.Second
)

// Config is the whole file.
type Config struct {
	BaseDir    string                    `yaml:"base_dir"`
	Server     Server                    `yaml:"server"`
	Vaults     map[string]*Backend       `yaml:"vaults"`
	Watermark  Backend                   `yaml:"watermark"`
	PolicyHook *PolicyHook               `yaml:"policy_hook"`
	Audit      *Audit                    `yaml:"audit"`
	Tezos      yaml.Node                 `yaml:"tezos"`
	Policies   map[string]*policy.Policy `yaml:"-"`
	// KeyOrder lists the keys of `tezos:` in file order.
	KeyOrder []string `yaml:"-"`
	// Warnings are deprecations and ignored settings found while loading.
	Warnings []string `yaml:"-"`
}

// Server is the `server:` section. Fields after JWT are this project's additions.
type Server struct {
	Address        string        `yaml:"address"`
	UtilityAddress string        `yaml:"utility_address"`
	AuthorizedKeys StringList    `yaml:"authorized_keys"`
	JWT            yaml.Node     `yaml:"jwt"`
	JWTAuth        *jwtauth.Auth `yaml:"-"`
	TLS            *TLS          `yaml:"tls"`
	MaxBodyBytes   int64         `yaml:"max_body_bytes"`
	// MaxGenericInFlight bounds the requests other than blocks and consensus operations signed
	// at once (default: every CPU); none starts while a block or consensus request is in flight,
	// and those running pause at their next step until it is answered; up to 64 more wait, the
	// rest get 503.
	MaxGenericInFlight int `yaml:"max_generic_in_flight"`
	// AllowListKnownKeys serves GET /known_keys (octez-signer's --allow-list-known-keys).
	AllowListKnownKeys bool     `yaml:"allow_list_known_keys"`
	ReadTimeout        Duration `yaml:"read_timeout"`
	WriteTimeout       Duration `yaml:"write_timeout"`
	IdleTimeout        Duration `yaml:"idle_timeout"`
	// SocketAddress (host:port, e.g. 127.0.0.1:7732) and UnixSocket (a path) serve octez-signer's
	// socket protocol, as `octez-signer launch socket signer` and `launch local signer` do; off
	// when empty (docs/protocol.md).
	SocketAddress string `yaml:"socket_address"`
	UnixSocket    string `yaml:"unix_socket"`
	// ReloadTokenFile holds the bearer token POST /reload on the utility port requires; when
	// empty, POST /reload is off (SIGHUP still reloads). docs/operations.md.
	ReloadTokenFile string `yaml:"reload_token_file"`
}

// PolicyHook is the remote policy hook (see docs/configuration.md, "Remote policy hook"). Timeout is this project's addition.
type PolicyHook struct {
	Address        string     `yaml:"address"`
	AuthorizedKeys StringList `yaml:"authorized_keys"`
	Timeout        Duration   `yaml:"timeout"`
}

// Audit enables the hash-chained journal of signatures and refusals (an addition of this project).
type Audit struct {
	File      string `yaml:"file"`
	MaxSizeMB int64  `yaml:"max_size_mb"` // rotate past this size; 0 never rotates
}

// TLS enables HTTPS on the signing port; ClientCAFile additionally requires client certificates.
type TLS struct {
	CertFile     string `yaml:"cert_file"`
	KeyFile      string `yaml:"key_file"`
	ClientCAFile string `yaml:"client_ca_file"`
}

// Backend is a vault or watermark entry: a driver and its driver-specific config.
type Backend struct {
	Driver string    `yaml:"driver"`
	Config yaml.Node `yaml:"config"`
}

// StringList accepts a scalar or a (nested) list of strings.
type StringList = yamlstrict.StringList

// Duration is a time.Duration written as "10s" or as a number of seconds.
type Duration = yamlstrict.Duration

// Load reads and validates the config file. baseDir, when not empty, overrides base_dir.
func Load(path, baseDir string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read config file: %w", err)
	}
	c, err := Parse(data, baseDir)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse parses and validates config data. Every key must be one this signer knows: a typo
// anywhere (`servr:`, `server.tls.cert_fle`) stops start-up with the key and its line, instead
// of a default silently taking the place of the setting. Every key of the reference
// implementation's schema outside `tezos:` and the drivers' `config:` (base_dir; server's
// address, utility_address, authorized_keys and jwt; vaults' and watermark's driver and config;
// policy_hook's address and authorized_keys) is one this signer uses; the reference's `vault:`
// under a key, which it ignores too, is accepted with a warning by the policy.
func Parse(data []byte, baseDir string) (*Config, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	// A second document (after `---`) would be ignored: refused like any other setting that
	// would not apply.
	for {
		var more yaml.Node
		if err := dec.Decode(&more); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, err
		}
		if len(more.Content) > 0 && more.Content[0].Tag != "!!null" {
			return nil, &yamlstrict.Error{Err: fmt.Errorf("line %d: a second YAML document: the config is one document", more.Line)}
		}
	}
	c := &Config{}
	if err := yamlstrict.Decode(&doc, c); err != nil {
		return nil, err
	}
	if baseDir != "" {
		c.BaseDir = baseDir
	}
	if err := c.finish(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config) finish() error {
	if c.BaseDir == "" {
		c.BaseDir = DefaultBaseDir
	}
	if c.BaseDir = os.ExpandEnv(c.BaseDir); c.BaseDir == "" {
		return errors.New("base_dir is empty after expanding environment variables")
	}
	s := &c.Server
	if s.Address == "" {
		s.Address = DefaultAddress
	}
	if s.UtilityAddress == "" {
		s.UtilityAddress = DefaultUtilityAddress
	}
	for name, addr := range map[string]string{"server.address": s.Address, "server.utility_address": s.UtilityAddress} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("%s: %q is not host:port: %w", name, addr, err)
		}
	}
	if s.MaxBodyBytes <= 0 {
		s.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if s.MaxBodyBytes > MaxMaxBodyBytes {
		return fmt.Errorf("server.max_body_bytes: %d is above the limit of %d (1 MiB): a request body is a hex string, "+
			"and no Tezos operation is larger than 32 KiB", s.MaxBodyBytes, MaxMaxBodyBytes)
	}
	if s.SocketAddress != "" {
		if _, _, err := net.SplitHostPort(s.SocketAddress); err != nil {
			return fmt.Errorf("server.socket_address: %q is not host:port: %w", s.SocketAddress, err)
		}
	}
	s.UnixSocket = os.ExpandEnv(s.UnixSocket)
	if s.UnixSocket != "" && !filepath.IsAbs(s.UnixSocket) {
		return fmt.Errorf("server.unix_socket: %q is not an absolute path", s.UnixSocket)
	}
	if s.SocketAddress != "" || s.UnixSocket != "" {
		// The socket protocol has no JWT and no TLS: a signer that relies on either to keep
		// strangers out would serve them on its sockets.
		if s.JWT.Kind != 0 && s.JWT.Tag != "!!null" {
			return errors.New("server.socket_address and server.unix_socket: the socket transports have no JWT, which server.jwt requires of every client; authenticate with server.authorized_keys instead")
		}
		if s.TLS != nil && s.TLS.ClientCAFile != "" && len(s.AuthorizedKeys) == 0 {
			return errors.New("server.socket_address and server.unix_socket: server.tls.client_ca_file protects only the HTTP port; set server.authorized_keys, which the sockets check too")
		}
	}
	if s.MaxGenericInFlight < 0 {
		return fmt.Errorf("server.max_generic_in_flight: %d is negative", s.MaxGenericInFlight)
	}
	if s.ReadTimeout <= 0 {
		s.ReadTimeout = Duration(DefaultReadTimeout)
	}
	if s.WriteTimeout <= 0 {
		s.WriteTimeout = Duration(DefaultWriteTimeout)
	}
	if s.IdleTimeout <= 0 {
		s.IdleTimeout = Duration(DefaultIdleTimeout)
	}
	if s.JWT.Kind != 0 && s.JWT.Tag != "!!null" {
		if len(s.AuthorizedKeys) > 0 {
			return errors.New("server: cannot use both JWT and static authorized keys")
		}
		var j struct {
			Users map[string]*jwtauth.User `yaml:"users"`
		}
		if err := yamlstrict.Decode(&s.JWT, &j); err != nil {
			return fmt.Errorf("server.jwt: %w", err)
		}
		if len(j.Users) == 0 {
			return fmt.Errorf("line %d: server.jwt: no users", s.JWT.Line)
		}
		auth, err := jwtauth.New(j.Users)
		if err != nil {
			return err
		}
		s.JWTAuth = auth
	}
	if s.TLS != nil && (s.TLS.CertFile == "" || s.TLS.KeyFile == "") {
		return errors.New("server.tls: cert_file and key_file are both required")
	}
	for _, k := range s.AuthorizedKeys {
		if _, err := tezos.ParsePublicKey(k); err != nil {
			return fmt.Errorf("server.authorized_keys: %w", err)
		}
	}
	if h := c.PolicyHook; h != nil {
		u, err := url.Parse(h.Address)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("policy_hook.address: %q is not an http(s) URL", h.Address)
		}
		for _, k := range h.AuthorizedKeys {
			if _, err := tezos.ParsePublicKey(k); err != nil {
				return fmt.Errorf("policy_hook.authorized_keys: %w", err)
			}
		}
		if h.Timeout <= 0 {
			h.Timeout = Duration(2 * time.Second)
		}
	}
	if c.Audit != nil {
		if c.Audit.File == "" {
			return errors.New("audit: file is required")
		}
		c.Audit.File = os.ExpandEnv(c.Audit.File)
	}
	for name, v := range c.Vaults {
		if v == nil || v.Driver == "" {
			return fmt.Errorf("vaults.%s: driver is required", name)
		}
	}
	if c.Watermark.Driver == "" {
		c.Watermark.Driver = "file"
	}
	return c.parsePolicies()
}

func (c *Config) parsePolicies() error {
	c.Policies = map[string]*policy.Policy{}
	n := &c.Tezos
	if n.Kind == 0 || n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: tezos: expected a map of key hashes to policies", n.Line)
	}
	type entry struct {
		name     string
		node     *yaml.Node
		p        *policy.Policy
		warnings []string
		err      error
	}
	var entries []entry
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		pkh, err := tezos.ParsePublicKeyHash(k.Value)
		if err != nil {
			return fmt.Errorf("line %d: tezos: %w", k.Line, err)
		}
		name := pkh.String()
		if _, dup := c.Policies[name]; dup {
			return fmt.Errorf("line %d: tezos: key %s is listed twice", k.Line, name)
		}
		c.Policies[name] = nil
		entries = append(entries, entry{name: name, node: v})
	}
	// The policies are independent: parsed on every core (10,000 keys start in a fraction of a
	// second), then taken in file order, the first error in that order reported.
	sched.Each(len(entries), func(i int) {
		e := &entries[i]
		e.p, e.warnings, e.err = policy.Parse(e.name, e.node)
	})
	for _, e := range entries {
		if e.err != nil {
			return fmt.Errorf("line %d: tezos.%s: %w", e.node.Line, e.name, e.err)
		}
		for _, w := range e.warnings {
			c.Warnings = append(c.Warnings, fmt.Sprintf("tezos.%s: %s", e.name, w))
		}
		c.Policies[e.name] = e.p
		c.KeyOrder = append(c.KeyOrder, e.name)
	}
	return nil
}
