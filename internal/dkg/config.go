package dkg

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net"
	"net/url"
	"slices"

	"github.com/ecadlabs/gotez/v2/crypt"
	"gopkg.in/yaml.v3"

	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/yamlstrict"
)

// MaxMembers is the most members a ceremony may have (a share's index is 1 … 255).
const MaxMembers = 255

// Ceremony is the configuration of one key generation: every member holds the same one.
type Ceremony struct {
	// Name tells ceremonies apart in logs and in the transcript.
	Name string `yaml:"name" json:"name"`
	// Threshold is how many members' shares sign for the group key: more than half of the
	// members unless UnsafeThreshold.
	Threshold       int      `yaml:"threshold" json:"threshold"`
	UnsafeThreshold bool     `yaml:"unsafe_threshold,omitempty" json:"unsafe_threshold,omitempty"`
	Members         []Member `yaml:"members" json:"members"`
}

// Member is one member of a ceremony.
type Member struct {
	// Index is the member's share index (1 … 255): its share is the group polynomial at x = Index.
	Index int `yaml:"index" json:"index"`
	// Identity is the member's long-term identity key (BLpk…): it signs what the member sends
	// and decrypts what it receives. See Identity.
	Identity string `yaml:"identity" json:"identity"`
	// Address is the host:port the member's ceremony listener serves on.
	Address string `yaml:"address" json:"address"`
	// URL is where the member's signer serves its share afterwards, for the coordinator's
	// threshold vault config (optional).
	URL string `yaml:"url,omitempty" json:"url,omitempty"`

	identity *crypt.BLSPublicKey
}

// ParseCeremony reads a ceremony config (YAML, unknown keys refused) and checks it.
func ParseCeremony(data []byte) (*Ceremony, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("ceremony config: %w", err)
	}
	c := &Ceremony{}
	if err := yamlstrict.Decode(&doc, c); err != nil {
		return nil, fmt.Errorf("ceremony config: %w", err)
	}
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("ceremony config: %w", err)
	}
	return c, nil
}

func (c *Ceremony) check() error {
	n := len(c.Members)
	if n < 2 || n > MaxMembers {
		return fmt.Errorf("%d members: a ceremony has 2 to %d", n, MaxMembers)
	}
	if c.Threshold < 1 || c.Threshold > n {
		return fmt.Errorf("threshold %d: between 1 and the %d members", c.Threshold, n)
	}
	if 2*c.Threshold <= n && !c.UnsafeThreshold {
		return fmt.Errorf("threshold %d is not more than half of the %d members: two coordinators could each gather %d members for conflicting payloads; use %d, or unsafe_threshold: true", c.Threshold, n, c.Threshold, n/2+1)
	}
	seen := map[string]int{}
	for i := range c.Members {
		m := &c.Members[i]
		if m.Index < 1 || m.Index > MaxMembers {
			return fmt.Errorf("member index %d: 1 to %d", m.Index, MaxMembers)
		}
		pk, err := tezos.ParseBLSPublicKey(m.Identity)
		if err != nil {
			return fmt.Errorf("member %d: identity: %w", m.Index, err)
		}
		m.identity = pk
		if _, _, err := net.SplitHostPort(m.Address); err != nil {
			return fmt.Errorf("member %d: address %q: host:port", m.Index, m.Address)
		}
		if m.URL != "" {
			if u, err := url.Parse(m.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return fmt.Errorf("member %d: url %q: an http or https URL", m.Index, m.URL)
			}
		}
		for what, key := range map[string]string{"index": fmt.Sprint(m.Index), "identity": m.Identity, "address": m.Address} {
			if other, dup := seen[what+"\x00"+key]; dup {
				return fmt.Errorf("members %d and %d have the same %s", other, m.Index, what)
			}
			seen[what+"\x00"+key] = m.Index
		}
	}
	slices.SortFunc(c.Members, func(a, b Member) int { return a.Index - b.Index })
	return nil
}

// member returns the member of that index.
func (c *Ceremony) member(index int) (*Member, bool) {
	for i := range c.Members {
		if c.Members[i].Index == index {
			return &c.Members[i], true
		}
	}
	return nil, false
}

// Hash is the ceremony's digest: every message of the ceremony is bound to it, so a member with
// a different config (another member list, threshold or name) takes part in none of it.
func (c *Ceremony) Hash() [32]byte {
	var b bytes.Buffer
	b.WriteString("signatory-dkg-ceremony-v1\x00")
	field := func(s string) {
		b.Write(binary.BigEndian.AppendUint32(nil, uint32(len(s))))
		b.WriteString(s)
	}
	field(c.Name)
	field(fmt.Sprint(c.Threshold))
	for _, m := range c.Members {
		field(fmt.Sprint(m.Index))
		field(m.Identity)
		field(m.Address)
		field(m.URL)
	}
	return sha256.Sum256(b.Bytes())
}
