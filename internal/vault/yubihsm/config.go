package yubihsm

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/signatory-go/signatory/internal/vault"
	"github.com/signatory-go/signatory/internal/yamlstrict"
)

// Environment variables read when the config leaves the matching key out (as in the reference).
const (
	EnvAddress          = "YUBIHSM_CONNECT_ADDRESS"
	EnvPassword         = "YUBIHSM_PASSWORD"
	EnvAuthKeyID        = "YUBIHSM_AUTH_KEY_ID"
	EnvKeyImportDomains = "YUBIHSM_KEY_IMPORT_DOMAINS"
)

const (
	defaultSessions = 2
	maxSessions     = 16 // the device has 16 sessions for all its clients
	defaultDomains  = 1
	labelLen        = 40
)

// Config is the vault's config section.
type Config struct {
	// Address is yubihsm-connector's host:port (http is assumed), or an http:// or https:// URL.
	// Default: $YUBIHSM_CONNECT_ADDRESS.
	Address string `yaml:"address"`
	// Password is the authentication key's password. PasswordEnv and PasswordFile name an
	// environment variable or a file holding it instead; with none of the three, $YUBIHSM_PASSWORD.
	Password     string `yaml:"password"`
	PasswordEnv  string `yaml:"password_env"`
	PasswordFile string `yaml:"password_file"`
	// AuthKeyID is the object ID of the authentication key (1 is the factory key). Default:
	// $YUBIHSM_AUTH_KEY_ID.
	AuthKeyID uint16 `yaml:"auth_key_id"`
	// KeyImportDomains is the domain bit mask given to imported and generated keys (default 1,
	// or $YUBIHSM_KEY_IMPORT_DOMAINS).
	KeyImportDomains uint16 `yaml:"key_import_domains"`
	// Sessions is how many authenticated sessions the vault keeps (default 2, at most 16).
	Sessions int `yaml:"sessions"`
	// Keys lists the keys to use, by object ID and/or label. When empty, every asymmetric key on a
	// Tezos curve that the authentication key can see is used.
	Keys []KeyConfig `yaml:"keys"`
}

// KeyConfig selects one asymmetric key object.
type KeyConfig struct {
	ID    *uint16 `yaml:"id"`
	Label string  `yaml:"label"`
}

func (k KeyConfig) String() string {
	switch {
	case k.ID != nil && k.Label != "":
		return fmt.Sprintf("id 0x%04x label %q", *k.ID, k.Label)
	case k.ID != nil:
		return fmt.Sprintf("id 0x%04x", *k.ID)
	}
	return fmt.Sprintf("label %q", k.Label)
}

// settings is a validated Config with every fallback applied.
type settings struct {
	url       string // scheme://host:port of the connector
	address   string // as configured, for names and messages
	password  string
	authKeyID uint16
	domains   uint16
	sessions  int
	keys      []KeyConfig
}

// DecodeConfig decodes the vault's YAML config section.
func DecodeConfig(node *yaml.Node) (Config, error) {
	var cfg Config
	err := yamlstrict.Decode(node, &cfg)
	return cfg, err
}

func (c Config) settings() (*settings, error) {
	s := &settings{address: c.Address, authKeyID: c.AuthKeyID, domains: c.KeyImportDomains, sessions: c.Sessions, keys: c.Keys}
	if s.address == "" {
		s.address = os.Getenv(EnvAddress)
	}
	if s.address == "" {
		return nil, yamlstrict.Invalidf("address is required (yubihsm-connector's host:port, e.g. 127.0.0.1:12345), or set %s", EnvAddress)
	}
	var err error
	if s.url, err = connectorURL(s.address); err != nil {
		return nil, yamlstrict.Invalid(err)
	}
	if s.authKeyID == 0 {
		v := os.Getenv(EnvAuthKeyID)
		if v == "" {
			return nil, yamlstrict.Invalidf("auth_key_id is required (the authentication key's object ID, 1 for the factory key), or set %s", EnvAuthKeyID)
		}
		n, err := strconv.ParseUint(v, 0, 16)
		if err != nil || n == 0 {
			return nil, yamlstrict.Invalidf("%s=%q is not an object ID (1–65534, decimal or 0x hex)", EnvAuthKeyID, v)
		}
		s.authKeyID = uint16(n)
	}
	if s.domains == 0 {
		if v := os.Getenv(EnvKeyImportDomains); v != "" {
			n, err := strconv.ParseUint(v, 0, 16)
			if err != nil {
				return nil, yamlstrict.Invalidf("%s=%q is not a domain bit mask (1–65535)", EnvKeyImportDomains, v)
			}
			s.domains = uint16(n)
		}
	}
	if s.domains == 0 {
		s.domains = defaultDomains
	}
	switch {
	case s.sessions == 0:
		s.sessions = defaultSessions
	case s.sessions < 0 || s.sessions > maxSessions:
		return nil, yamlstrict.Invalidf("sessions must be between 1 and %d (the device has %d for all its clients)", maxSessions, maxSessions)
	}
	for i, k := range s.keys {
		if k.ID == nil && k.Label == "" {
			return nil, yamlstrict.Invalidf("keys[%d]: a key needs an id or a label", i)
		}
		if len(k.Label) > labelLen {
			return nil, yamlstrict.Invalidf("keys[%d]: label %q is longer than %d bytes", i, k.Label, labelLen)
		}
	}
	if s.password, err = c.password(); err != nil {
		return nil, err
	}
	return s, nil
}

// password returns the password from password, password_env, password_file or $YUBIHSM_PASSWORD.
func (c Config) password() (string, error) {
	pw, err := vault.Secret("password", c.Password, c.PasswordEnv, c.PasswordFile, EnvPassword)
	if err == nil && pw == "" {
		err = errors.New("the password is empty")
	}
	return pw, err
}

// connectorURL turns host:port or a URL into the connector's base URL.
func connectorURL(addr string) (string, error) {
	raw := addr
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil {
		return "", fmt.Errorf("address %q is not a host:port or an http(s) URL of yubihsm-connector", addr)
	}
	switch strings.TrimSuffix(u.Path, "/") {
	case "", "/connector", "/connector/api":
	default:
		return "", fmt.Errorf("address %q: the connector's API is at /connector/api; give host:port", addr)
	}
	return u.Scheme + "://" + u.Host, nil
}
