package dkg

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"

	"github.com/drand/kyber"
	"github.com/drand/kyber/share"
	"github.com/ecadlabs/gotez/v2/crypt"
	"gopkg.in/yaml.v3"

	"github.com/signatory-go/signatory/internal/blsthreshold"
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
	// Previous makes the ceremony a resharing: the members of the previous group deal their
	// shares again to Members, keeping the group key (see Previous).
	Previous *Previous `yaml:"previous,omitempty" json:"previous,omitempty"`

	oldCommits []kyber.Point // the previous group's public polynomial, for a resharing
}

// Previous is the group a resharing starts from: its key, threshold and members with their
// share public keys (as the ceremony that made them printed). A member may be in both groups
// (same identity and address): it keeps its place and gets a new share. A member only in the
// previous group deals and leaves; one only in the new group receives.
type Previous struct {
	PublicKey string           `yaml:"public_key" json:"public_key"`
	Threshold int              `yaml:"threshold" json:"threshold"`
	Members   []PreviousMember `yaml:"members" json:"members"`

	group *crypt.BLSPublicKey
}

// PreviousMember is a member of the previous group.
type PreviousMember struct {
	Index    int    `yaml:"index" json:"index"`
	Identity string `yaml:"identity" json:"identity"`
	Address  string `yaml:"address" json:"address"`
	// Share is the public key of the member's share (BLpk…).
	Share string `yaml:"share" json:"share"`

	identity *crypt.BLSPublicKey
	share    *crypt.BLSPublicKey
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
		var err error
		if m.identity, err = checkMember(seen, m.Index, m.Identity, m.Address); err != nil {
			return err
		}
		if m.URL != "" {
			if u, err := url.Parse(m.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return fmt.Errorf("member %d: url %q: an http or https URL", m.Index, m.URL)
			}
		}
	}
	slices.SortFunc(c.Members, func(a, b Member) int { return a.Index - b.Index })
	if c.Previous != nil {
		if err := c.checkPrevious(); err != nil {
			return fmt.Errorf("previous: %w", err)
		}
	}
	return nil
}

func (c *Ceremony) checkPrevious() error {
	p := c.Previous
	n := len(p.Members)
	if n < 1 || n > MaxMembers {
		return fmt.Errorf("%d members: 1 to %d", n, MaxMembers)
	}
	if p.Threshold < 1 || p.Threshold > n {
		return fmt.Errorf("threshold %d: between 1 and the %d members", p.Threshold, n)
	}
	group, err := tezos.ParseBLSPublicKey(p.PublicKey)
	if err != nil {
		return fmt.Errorf("public_key: %w", err)
	}
	p.group = group
	shares := map[int]*crypt.BLSPublicKey{}
	seen := map[string]int{}
	for i := range p.Members {
		m := &p.Members[i]
		if m.identity, err = checkMember(seen, m.Index, m.Identity, m.Address); err != nil {
			return err
		}
		if m.share, err = tezos.ParseBLSPublicKey(m.Share); err != nil {
			return fmt.Errorf("member %d: share: %w", m.Index, err)
		}
		// A member of both groups is one participant: one identity, one address.
		for _, nm := range c.Members {
			if (nm.Identity == m.Identity) != (nm.Address == m.Address) {
				return fmt.Errorf("member %d of the previous group and member %d share an identity or an address but not both", m.Index, nm.Index)
			}
		}
		shares[m.Index] = m.share
	}
	slices.SortFunc(p.Members, func(a, b PreviousMember) int { return a.Index - b.Index })
	if err := blsthreshold.CheckShares(group, shares, p.Threshold); err != nil {
		return fmt.Errorf("the share keys are not a %d-of-%d sharing of %s: %w", p.Threshold, n, p.PublicKey, err)
	}
	// The previous group's public polynomial, from t share keys (any t: they all agree, as
	// CheckShares found).
	var pubShares []*share.PubShare
	for _, m := range p.Members[:p.Threshold] {
		pt, err := pointOfKey(m.share)
		if err != nil {
			return err
		}
		pubShares = append(pubShares, &share.PubShare{I: m.Index - 1, V: pt})
	}
	poly, err := share.RecoverPubPoly(g1, pubShares, p.Threshold, MaxMembers+1)
	if err != nil {
		return err
	}
	_, commits := poly.Info()
	gp, err := pointOfKey(group)
	if err != nil {
		return err
	}
	if len(commits) != p.Threshold || !commits[0].Equal(gp) {
		return errors.New("the share keys do not interpolate to the group key")
	}
	for _, m := range p.Members {
		pt, _ := pointOfKey(m.share)
		if !poly.Eval(m.Index - 1).V.Equal(pt) {
			return fmt.Errorf("member %d's share key is not on the group's polynomial", m.Index)
		}
	}
	c.oldCommits = commits
	return nil
}

// checkMember checks one member of a group: its index, identity and address, none the same as
// another member's of that group (seen, which it fills).
func checkMember(seen map[string]int, index int, identity, address string) (*crypt.BLSPublicKey, error) {
	if index < 1 || index > MaxMembers {
		return nil, fmt.Errorf("member index %d: 1 to %d", index, MaxMembers)
	}
	pk, err := tezos.ParseBLSPublicKey(identity)
	if err != nil {
		return nil, fmt.Errorf("member %d: identity: %w", index, err)
	}
	if _, _, err := net.SplitHostPort(address); err != nil {
		return nil, fmt.Errorf("member %d: address %q: host:port", index, address)
	}
	for what, key := range map[string]string{"index": fmt.Sprint(index), "identity": identity, "address": address} {
		if other, dup := seen[what+"\x00"+key]; dup {
			return nil, fmt.Errorf("members %d and %d have the same %s", other, index, what)
		}
		seen[what+"\x00"+key] = index
	}
	return pk, nil
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
	if p := c.Previous; p != nil {
		field("previous")
		field(p.PublicKey)
		field(fmt.Sprint(p.Threshold))
		for _, m := range p.Members {
			field(fmt.Sprint(m.Index))
			field(m.Identity)
			field(m.Address)
			field(m.Share)
		}
	}
	return sha256.Sum256(b.Bytes())
}
