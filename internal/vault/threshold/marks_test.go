package threshold_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/blsthreshold"
	"github.com/signatory-go/signatory/internal/metrics"
	"github.com/signatory-go/signatory/internal/policy"
	"github.com/signatory-go/signatory/internal/request"
	"github.com/signatory-go/signatory/internal/server"
	"github.com/signatory-go/signatory/internal/signer"
	"github.com/signatory-go/signatory/internal/tezos"
	"github.com/signatory-go/signatory/internal/vault"
	vaultmem "github.com/signatory-go/signatory/internal/vault/mem"
	"github.com/signatory-go/signatory/internal/vault/threshold"
	"github.com/signatory-go/signatory/internal/watermark"
	wmmem "github.com/signatory-go/signatory/internal/watermark/mem"
)

const marksChain = "NetXdQprcVkpaWU"

// marksMember runs a member signer holding shares (each with share_of the group) over a mem
// store holding marks ("<share index> <class> <level> <round>", by index into shares), and
// returns its URL and the address of a key it also holds that is no share.
func marksMember(t *testing.T, group crypt.PublicKey, shares []*crypt.BLSPrivateKey, marks map[int][][3]any) (string, string) {
	t.Helper()
	store := wmmem.NewStore()
	pols := map[string]*policy.Policy{}
	var keys []crypt.PrivateKey
	for i, sh := range shares {
		pkh := sh.Public().Hash().String()
		pols[pkh] = &policy.Policy{PKH: pkh, Requests: []request.Kind{request.Attestation}, ShareOf: group.String()}
		keys = append(keys, sh)
		for _, m := range marks[i] {
			k := watermark.Key{Chain: marksChain, PKH: pkh, Class: watermark.Class(m[0].(string))}
			if _, err := store.Advance(t.Context(), k, watermark.Mark{Level: int32(m[1].(int)), Round: int32(m[2].(int))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	other, err := tezos.GenerateKey(tezos.BLS) // a key that is no share: it answers no marks
	if err != nil {
		t.Fatal(err)
	}
	pols[other.Public().Hash().String()] = &policy.Policy{PKH: other.Public().Hash().String(), Requests: []request.Kind{request.Attestation}}
	keys = append(keys, other)
	s, err := signer.New(t.Context(), signer.Config{
		Vaults: []vault.Vault{vaultmem.NewFromKeys("member", keys...)}, Store: store, Policies: pols,
		Observer: metrics.New("t"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(server.New(server.Config{}, s, metrics.New("t"), slog.New(slog.NewTextHandler(io.Discard, nil))).Handler())
	t.Cleanup(srv.Close)
	return srv.URL, other.Public().Hash().String()
}

// TestMarks: every other member's signed statement is read and checked; a member with two shares
// of the group (old and new, after a resharing) states the higher marks of both; a member that
// lowers its marks without signing them, replays an earlier answer, or answers with another
// member's statement is not believed.
func TestMarks(t *testing.T) {
	priv, err := tezos.GenerateKey(tezos.BLS)
	if err != nil {
		t.Fatal(err)
	}
	group := priv.Public()
	split, err := blsthreshold.Split(priv.(*crypt.BLSPrivateKey), 3, 5, nil)
	if err != nil {
		t.Fatal(err)
	}
	oldShare, err := tezos.GenerateKey(tezos.BLS)
	if err != nil {
		t.Fatal(err)
	}
	// Member 1: its share at attestation 10, an old share of the group at attestation 12 round 1.
	url1, _ := marksMember(t, group, []*crypt.BLSPrivateKey{split[0].Key, oldShare.(*crypt.BLSPrivateKey)},
		map[int][][3]any{0: {{"attestation", 10, 0}, {"block", 9, 0}}, 1: {{"attestation", 12, 1}}})
	// Member 2: attestation 7 round 2, block 11.
	url2, _ := marksMember(t, group, []*crypt.BLSPrivateKey{split[1].Key}, map[int][][3]any{0: {{"attestation", 7, 2}, {"block", 11, 0}}})
	// Member 3: no marks at all.
	url3, _ := marksMember(t, group, []*crypt.BLSPrivateKey{split[2].Key}, nil)
	urls := []string{url1, url2, url3}
	// Members 4 and 5 sit behind a forger, in front of a signer holding their shares (and
	// member 1's).
	forgedURL, _ := marksMember(t, group, []*crypt.BLSPrivateKey{split[3].Key, split[4].Key, split[0].Key},
		map[int][][3]any{0: {{"attestation", 20, 0}}, 1: {{"attestation", 20, 0}}})
	var mu sync.Mutex
	var replay []byte
	forger := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target := forgedURL + r.URL.RequestURI()
		if strings.Contains(r.URL.Path, split[4].Key.Public().Hash().String()) {
			// Member 5 answers with member 1's statement (a share it also holds here).
			target = strings.Replace(target, split[4].Key.Public().Hash().String(), split[0].Key.Public().Hash().String(), 1)
		}
		resp, err := http.Get(target)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var m blsthreshold.Marks
		if json.Unmarshal(body, &m) == nil && m.Key == split[3].Key.Public().Hash().String() {
			mu.Lock()
			if replay == nil {
				// Member 4, first time: its level lowered, its signature kept.
				replay = body
				m.Marks["attestation"].Level = 1
				body, _ = json.Marshal(&m)
			} else {
				body = replay // then: the first answer again, for another nonce
			}
			mu.Unlock()
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(body)
	}))
	t.Cleanup(forger.Close)
	urls = append(urls, forger.URL, forger.URL)

	var cfg threshold.Config
	cfg.PublicKey, cfg.Threshold = group.String(), 3
	for i, s := range split {
		cfg.Members = append(cfg.Members, threshold.Member{Index: s.Index, URL: urls[i], Key: s.Key.Public().Hash().String()})
	}
	v, err := threshold.Open("group", cfg, vault.Env{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()

	for round, wantFour := range []string{"does not verify", "nonce"} {
		got := v.Marks(t.Context(), split[2].Key.Public().Hash().String(), marksChain)
		if len(got) != 4 || got[0].Index != 1 || got[1].Index != 2 || got[2].Index != 4 || got[3].Index != 5 {
			t.Fatalf("asked %+v; want members 1, 2, 4 and 5 (3 is the one asking)", got)
		}
		want := []string{
			"block level 9 round 0, preattestation none, attestation level 12 round 1",
			"block level 11 round 0, preattestation none, attestation level 7 round 2",
		}
		for i, w := range want {
			if got[i].Err != nil {
				t.Fatalf("member %d: %v", got[i].Index, got[i].Err)
			}
			if s := marksString(got[i].Marks); s != w {
				t.Errorf("member %d states %s; want %s", got[i].Index, s, w)
			}
		}
		if got[2].Err == nil || !strings.Contains(got[2].Err.Error(), wantFour) {
			t.Errorf("round %d: member 4's forged answer: %v; want %q", round, got[2].Err, wantFour)
		}
		if got[3].Err == nil || !strings.Contains(got[3].Err.Error(), "the answer is for "+split[0].Key.Public().Hash().String()) {
			t.Errorf("member 5 answering with member 1's statement: %v", got[3].Err)
		}
	}
	if got := v.Marks(t.Context(), "", marksChain); got[2].Err != nil || marksString(got[2].Marks) != "block none, preattestation none, attestation none" {
		t.Errorf("member 3, asked too: %+v", got[2])
	}
	if th, n := v.Size(); th != 3 || n != 5 {
		t.Errorf("Size: %d of %d", th, n)
	}
}

func marksString(m *blsthreshold.Marks) string {
	var parts []string
	for _, c := range blsthreshold.MarksClasses {
		if l := m.Marks[c]; l != nil {
			parts = append(parts, fmt.Sprintf("%s level %d round %d", c, l.Level, l.Round))
		} else {
			parts = append(parts, c+" none")
		}
	}
	return strings.Join(parts, ", ")
}

// TestMarksRefused: a key that is not a share, a missing or short nonce and a bad chain are
// refused, and a statement is never made for them.
func TestMarksRefused(t *testing.T) {
	priv, err := tezos.GenerateKey(tezos.BLS)
	if err != nil {
		t.Fatal(err)
	}
	share, err := tezos.GenerateKey(tezos.BLS)
	if err != nil {
		t.Fatal(err)
	}
	url, notShare := marksMember(t, priv.Public(), []*crypt.BLSPrivateKey{share.(*crypt.BLSPrivateKey)}, nil)
	pkh := share.Public().Hash().String()
	nonce := strings.Repeat("ab", blsthreshold.MarksNonceSize)
	for _, c := range []struct {
		path   string
		status int
		msg    string
	}{
		{"/threshold/marks/" + pkh + "?chain=" + marksChain + "&nonce=" + nonce, 200, `"signature":"BLsig`},
		{"/threshold/marks/" + priv.Public().Hash().String() + "?chain=" + marksChain + "&nonce=" + nonce, 403, "not listed"},
		{"/threshold/marks/" + notShare + "?chain=" + marksChain + "&nonce=" + nonce, 403, "not a threshold share"},
		{"/threshold/marks/" + pkh + "?chain=" + marksChain, 400, "nonce"},
		{"/threshold/marks/" + pkh + "?chain=" + marksChain + "&nonce=" + nonce[2:], 400, "nonce"},
		{"/threshold/marks/" + pkh + "?chain=NetXdQ&nonce=" + nonce, 400, "chain"},
	} {
		resp, err := http.Get(url + c.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status || !strings.Contains(string(body), c.msg) {
			t.Errorf("GET %s: %d %s; want %d %q", c.path, resp.StatusCode, body, c.status, c.msg)
		}
	}
}
