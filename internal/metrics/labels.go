package metrics

import (
	"strconv"
	"sync"
)

// Label bounds. Some label values come from what a client sends (chain ids, rounds, client
// addresses): each is kept to a fixed set so that no client can grow the number of series.
const (
	// MaxChainLabels distinct chain ids get their own chain_id label; later ones are "other".
	MaxChainLabels = 8
	// MaxClientLabels distinct client addresses get their own client_ip label; later ones are "other".
	MaxClientLabels = 32
	// MaxRoundLabel is the highest round with its own round label; higher rounds are "<n>+".
	MaxRoundLabel = 9
)

// Other is the label value of everything beyond a bound.
const Other = "other"

// LabelSet admits the first max distinct values of a label and maps the rest to Other.
type LabelSet struct {
	mu   sync.Mutex
	max  int
	seen map[string]struct{}
}

// NewLabelSet returns a set that admits max values.
func NewLabelSet(max int) *LabelSet { return &LabelSet{max: max, seen: map[string]struct{}{}} }

// Value returns v when it is admitted (seen before, or while there is room), else Other.
func (s *LabelSet) Value(v string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.seen[v]; ok {
		return v
	}
	if len(s.seen) >= s.max {
		return Other
	}
	s.seen[v] = struct{}{}
	return v
}

// Chain returns the chain_id label of a chain id.
func (m *Metrics) Chain(id string) string { return m.chains.Value(id) }

// Client returns the client_ip label of a client address.
func (m *Metrics) Client(ip string) string { return m.clients.Value(ip) }

// Round returns the round label: the round, or "10+" above MaxRoundLabel.
func Round(r int32) string {
	if r > MaxRoundLabel || r < 0 {
		return strconv.Itoa(MaxRoundLabel+1) + "+"
	}
	return strconv.Itoa(int(r))
}
