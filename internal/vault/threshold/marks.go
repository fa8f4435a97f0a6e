package threshold

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/url"
	"sync"

	"github.com/signatory-go/signatory/internal/blsthreshold"
)

// MemberMarks is one member's answer to a request for its marks: its verified statement, or why
// there is none.
type MemberMarks struct {
	Index int
	Key   string
	Marks *blsthreshold.Marks // nil when Err is set
	Err   error
}

// Size returns the group's threshold and number of members.
func (v *Vault) Size() (t, n int) { return v.t, len(v.members) }

// Group returns the group key.
func (v *Vault) Group() string { return v.group.String() }

// Marks asks every member but the one holding the share self (a tz4 address; "" asks them all)
// for its signed statement of its highest marks on chain (GET /threshold/marks/<share>), each
// with a fresh nonce, all at once, and checks each answer (blsthreshold.Marks.Verify). It returns one
// MemberMarks per member asked, in index order. It sends no authentication: members answer this
// request without it, and the statements are signed by the shares themselves.
func (v *Vault) Marks(ctx context.Context, self, chain string) []MemberMarks {
	var asked []*member
	for _, m := range v.members {
		if m.pkh != self {
			asked = append(asked, m)
		}
	}
	out := make([]MemberMarks, len(asked))
	var wg sync.WaitGroup
	for i, m := range asked {
		out[i] = MemberMarks{Index: m.index, Key: m.pkh}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i].Marks, out[i].Err = v.memberMarks(ctx, m, chain)
		}()
	}
	wg.Wait()
	return out
}

func (v *Vault) memberMarks(ctx context.Context, m *member, chain string) (*blsthreshold.Marks, error) {
	nonce := make([]byte, blsthreshold.MarksNonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	q := url.Values{"chain": {chain}, "nonce": {fmt.Sprintf("%x", nonce)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.url+"/threshold/marks/"+m.pkh+"?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	var body blsthreshold.Marks
	if status, msg, err := v.do(req, &body); err != nil {
		return nil, fmt.Errorf("member %d: %w", m.index, err)
	} else if status != http.StatusOK {
		return nil, fmt.Errorf("member %d: GET /threshold/marks/%s: %d %s", m.index, m.pkh, status, msg)
	}
	if err := body.Verify(m.pkh, v.group.String(), chain, nonce); err != nil {
		return nil, fmt.Errorf("member %d: %w", m.index, err)
	}
	return &body, nil
}
