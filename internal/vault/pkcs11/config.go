package pkcs11

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/ecadlabs/gotez/v2/crypt"
	"gopkg.in/yaml.v3"

	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
	"github.com/signatory-go/signatory/internal/yamlstrict"
)

// Environment variables read when the config leaves the matching key out (as in the reference).
const (
	EnvLibraryPath = "PKCS11_PATH"
	EnvSlot        = "PKCS11_SLOT"
	EnvPIN         = "PKCS11_PIN"
)

const (
	defaultSessions = 4
	maxSessions     = 64
)

// Config is the vault's config section.
type Config struct {
	// LibraryPath is the PKCS#11 module (.so); $VARS are expanded. Default: $PKCS11_PATH.
	LibraryPath string `yaml:"library_path"`
	// Slot is the slot ID. Default: $PKCS11_SLOT, else the slot holding TokenLabel, else the
	// first slot with an initialised token.
	Slot *uint `yaml:"slot"`
	// TokenLabel selects the token by its label; it is looked up again after a re-initialisation,
	// so it survives slot renumbering.
	TokenLabel string `yaml:"token_label"`
	// PIN is the user PIN. PINEnv and PINFile name an environment variable or a file holding it
	// instead; with none of the three, $PKCS11_PIN is used.
	PIN     string `yaml:"pin"`
	PINEnv  string `yaml:"pin_env"`
	PINFile string `yaml:"pin_file"`
	// Sessions is the size of the session pool (default 4, at most 64).
	Sessions int `yaml:"sessions"`
	// Keys lists the keys to use. When empty, every private key that has a public key (a public
	// key object or a CKA_EC_POINT) on a supported curve is used.
	Keys []KeyConfig `yaml:"keys"`
	// PublicKeysSearchOptions says how a private key's public key object is found (reference schema).
	PublicKeysSearchOptions *SearchOptions `yaml:"public_keys_search_options"`
}

// KeyConfig locates one key by CKA_LABEL and/or CKA_ID (hex). The reference's form
// {private: {label, id}, public: {label, id}, public_value: <base58>} is accepted as well.
type KeyConfig struct {
	Label string `yaml:"label"`
	ID    string `yaml:"id"`
	// Private locates the private key (reference schema; same as Label and ID).
	Private *Locator `yaml:"private"`
	// Public locates the public key object when its label or ID differ from the private key's.
	Public *Locator `yaml:"public"`
	// PublicValue is the base58 public key (edpk/sppk/p2pk), for tokens without a public key object.
	PublicValue string `yaml:"public_value"`
	// ExtendedPrivate reads CKA_EC_POINT from the private key object (AWS CloudHSM).
	ExtendedPrivate bool `yaml:"extended_private"`
}

// Locator is a CKA_LABEL and a hex CKA_ID; either may be empty.
type Locator struct {
	Label string `yaml:"label"`
	ID    string `yaml:"id"`
}

// SearchOptions controls how a public key object is matched to a private key.
type SearchOptions struct {
	MatchLabel      bool `yaml:"match_label"`
	MatchID         bool `yaml:"match_id"`
	ExtendedPrivate bool `yaml:"extended_private"`
}

// selector is a parsed key locator.
type selector struct {
	label string
	id    []byte
}

func (s selector) String() string {
	switch {
	case s.label != "" && len(s.id) > 0:
		return fmt.Sprintf("label %q id %s", s.label, hex.EncodeToString(s.id))
	case s.label != "":
		return fmt.Sprintf("label %q", s.label)
	case len(s.id) > 0:
		return "id " + hex.EncodeToString(s.id)
	default:
		return "no label and no id"
	}
}

// keySpec is a parsed KeyConfig.
type keySpec struct {
	priv        selector
	pub         selector
	publicValue crypt.PublicKey
	extended    bool
}

// settings is a validated Config with every fallback applied.
type settings struct {
	library  string
	slot     *uint
	label    string
	pin      string
	sessions int
	keys     []keySpec
	search   SearchOptions
}

// DecodeConfig decodes the vault's YAML config section.
func DecodeConfig(node *yaml.Node) (Config, error) {
	var cfg Config
	err := yamlstrict.Decode(node, &cfg)
	return cfg, err
}

func (c Config) settings() (*settings, error) {
	s := &settings{library: os.ExpandEnv(c.LibraryPath), slot: c.Slot, label: c.TokenLabel, sessions: c.Sessions}
	if s.library == "" {
		s.library = os.Getenv(EnvLibraryPath)
	}
	if s.library == "" {
		return nil, yamlstrict.Invalidf("library_path is required (the PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so), or set %s", EnvLibraryPath)
	}
	if s.slot == nil {
		if v := os.Getenv(EnvSlot); v != "" {
			n, err := strconv.ParseUint(v, 0, 0)
			if err != nil {
				return nil, yamlstrict.Invalidf("%s=%q is not a slot number", EnvSlot, v)
			}
			u := uint(n)
			s.slot = &u
		}
	}
	switch {
	case s.sessions == 0:
		s.sessions = defaultSessions
	case s.sessions < 0 || s.sessions > maxSessions:
		return nil, yamlstrict.Invalidf("sessions must be between 1 and %d", maxSessions)
	}
	pin, err := c.pin()
	if err != nil {
		return nil, err
	}
	s.pin = pin
	s.search = SearchOptions{MatchLabel: true, MatchID: true, ExtendedPrivate: true}
	if c.PublicKeysSearchOptions != nil {
		s.search = *c.PublicKeysSearchOptions
	}
	for i, k := range c.Keys {
		spec, err := k.spec()
		if err != nil {
			return nil, yamlstrict.Invalidf("keys[%d]: %w", i, err)
		}
		s.keys = append(s.keys, spec)
	}
	return s, nil
}

// pin returns the PIN from pin, pin_env, pin_file or $PKCS11_PIN, in that order.
func (c Config) pin() (string, error) {
	pin, err := vault.Secret("pin", c.PIN, c.PINEnv, c.PINFile, EnvPIN)
	var none vault.ErrNoSecret
	if errors.As(err, &none) {
		return "", fmt.Errorf("no user PIN: set pin, pin_env or pin_file, or %s", EnvPIN)
	}
	return pin, err
}

func (k KeyConfig) spec() (keySpec, error) {
	var out keySpec
	loc := Locator{Label: k.Label, ID: k.ID}
	if k.Private != nil {
		if loc != (Locator{}) {
			return out, errors.New("give either label/id or private, not both")
		}
		loc = *k.Private
	}
	var err error
	if out.priv, err = loc.selector(); err != nil {
		return out, err
	}
	if out.priv.label == "" && len(out.priv.id) == 0 {
		return out, errors.New("a key needs a label or an id")
	}
	out.pub = out.priv
	if k.Public != nil {
		if out.pub, err = k.Public.selector(); err != nil {
			return out, fmt.Errorf("public: %w", err)
		}
	}
	if k.PublicValue != "" {
		if out.publicValue, err = tezos.ParsePublicKey(k.PublicValue); err != nil {
			return out, fmt.Errorf("public_value: %w", err)
		}
		if c := tezos.CurveOf(out.publicValue); c == tezos.BLS || c == "" {
			return out, fmt.Errorf("public_value: %s keys cannot live on a PKCS#11 token", c)
		}
	}
	out.extended = k.ExtendedPrivate
	return out, nil
}

func (l Locator) selector() (selector, error) {
	s := selector{label: l.Label}
	if l.ID != "" {
		id, err := hex.DecodeString(l.ID)
		if err != nil {
			return s, fmt.Errorf("id %q is not hex", l.ID)
		}
		s.id = id
	}
	return s, nil
}
