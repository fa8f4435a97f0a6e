package postgres

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/signatory-go/signatory/internal/config"
)

// Driver is the name of this backend in the config's watermark.driver.
const Driver = "postgres"

// Defaults of the optional settings.
const (
	DefaultTable          = "watermarks"
	DefaultTimeout        = 5 * time.Second
	DefaultConnectTimeout = 10 * time.Second
)

// Config is the watermark.config section of driver "postgres":
//
//	dsn: postgres://signatory@db1:5432/signatory?sslmode=verify-full   # required
//	password_env: SIGNATORY_PG_PASSWORD   # optional; else the DSN's password or $PGPASSWORD
//	table: watermarks                     # optional; [schema.]name
//	max_conns: 8                          # optional; pool size (default: pgx's, max(4, CPUs))
//	timeout: 5s                           # optional; bound on one check-and-advance
//	connect_timeout: 10s                  # optional; bound on connecting and migrating at start
type Config struct {
	DSN            string          `yaml:"dsn"`
	PasswordEnv    string          `yaml:"password_env"`
	Table          string          `yaml:"table"`
	MaxConns       int32           `yaml:"max_conns"`
	Timeout        config.Duration `yaml:"timeout"`
	ConnectTimeout config.Duration `yaml:"connect_timeout"`
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,47}$`)

// ParseConfig decodes a watermark.config node and fills in the defaults. Unknown keys are an
// error, so that a misspelt setting is not silently ignored.
func ParseConfig(node *yaml.Node) (Config, error) {
	var c Config
	if node != nil && node.Kind != 0 && node.Tag != "!!null" {
		if err := checkKeys(node, "dsn", "password_env", "table", "max_conns", "timeout", "connect_timeout"); err != nil {
			return c, err
		}
		if err := node.Decode(&c); err != nil {
			return c, fmt.Errorf("watermark.config: %w", err)
		}
	}
	c.DSN = os.ExpandEnv(c.DSN)
	if c.DSN == "" {
		return c, fmt.Errorf("watermark.config.dsn is required for driver %s (e.g. postgres://signatory@127.0.0.1:5432/signatory)", Driver)
	}
	if c.Table == "" {
		c.Table = DefaultTable
	}
	for _, part := range strings.Split(c.Table, ".") {
		if !identRE.MatchString(part) || len(strings.Split(c.Table, ".")) > 2 {
			return c, fmt.Errorf("watermark.config.table %q: want [schema.]name of letters, digits and _", c.Table)
		}
	}
	if c.MaxConns < 0 {
		return c, fmt.Errorf("watermark.config.max_conns %d is negative", c.MaxConns)
	}
	if c.Timeout <= 0 {
		c.Timeout = config.Duration(DefaultTimeout)
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = config.Duration(DefaultConnectTimeout)
	}
	return c, nil
}

// checkKeys returns an error naming the line of the first key of mapping n not in known.
func checkKeys(n *yaml.Node, known ...string) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: watermark.config must be a mapping", n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		ok := false
		for _, name := range known {
			ok = ok || k.Value == name
		}
		if !ok {
			return fmt.Errorf("line %d: unknown key %q in watermark.config for driver %s (known: %s)",
				k.Line, k.Value, Driver, strings.Join(known, ", "))
		}
	}
	return nil
}
