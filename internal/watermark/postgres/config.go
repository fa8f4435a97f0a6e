package postgres

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/signatory-go/signatory/internal/yamlstrict"
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
	DSN            string              `yaml:"dsn"`
	PasswordEnv    string              `yaml:"password_env"`
	Table          string              `yaml:"table"`
	MaxConns       int32               `yaml:"max_conns"`
	Timeout        yamlstrict.Duration `yaml:"timeout"`
	ConnectTimeout yamlstrict.Duration `yaml:"connect_timeout"`
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,47}$`)

// ParseConfig decodes a watermark.config node and fills in the defaults. Unknown keys are an
// error, so that a misspelt setting is not silently ignored.
func ParseConfig(node *yaml.Node) (Config, error) {
	var c Config
	if err := yamlstrict.Decode(node, &c); err != nil {
		return c, fmt.Errorf("watermark.config: %w", err)
	}
	c.DSN = os.ExpandEnv(c.DSN)
	if c.DSN == "" {
		return c, yamlstrict.Invalidf("watermark.config.dsn is required for driver %s (e.g. postgres://signatory@127.0.0.1:5432/signatory)", Driver)
	}
	if c.Table == "" {
		c.Table = DefaultTable
	}
	for _, part := range strings.Split(c.Table, ".") {
		if !identRE.MatchString(part) || len(strings.Split(c.Table, ".")) > 2 {
			return c, yamlstrict.Invalidf("watermark.config.table %q: want [schema.]name of letters, digits and _", c.Table)
		}
	}
	if c.MaxConns < 0 {
		return c, yamlstrict.Invalidf("watermark.config.max_conns %d is negative", c.MaxConns)
	}
	if c.Timeout <= 0 {
		c.Timeout = yamlstrict.Duration(DefaultTimeout)
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = yamlstrict.Duration(DefaultConnectTimeout)
	}
	return c, nil
}
