package dkg

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestCeremonyConfig: a ceremony config with a mistake is refused with a message naming it, and
// a member of both groups of a resharing must keep its identity and address.
func TestCeremonyConfig(t *testing.T) {
	t.Parallel()
	ids := make([]string, 4)
	for i := range ids {
		k, err := NewIdentityKey()
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = k.Public().String()
	}
	member := func(i int, extra string) string {
		return fmt.Sprintf("  - {index: %d, identity: %s, address: 127.0.0.1:%d%s}\n", i, ids[i-1], 7800+i, extra)
	}
	three := member(1, "") + member(2, "") + member(3, "")
	good := "name: x\nthreshold: 2\nmembers:\n" + three
	if _, err := ParseCeremony([]byte(good)); err != nil {
		t.Fatal(err)
	}
	// A previous group whose share keys are a real 2-of-3 sharing: made by a ceremony.
	g := newGroup(t, 3, 2)
	r := anyOutcome(t, g.run(t, time.Minute, nil))
	prev := fmt.Sprintf("previous:\n  public_key: %s\n  threshold: 2\n  members:\n", r.Group)
	for _, m := range r.Members {
		prev += fmt.Sprintf("    - {index: %d, identity: %s, address: 127.0.0.1:%d, share: %s}\n", m.Index, ids[m.Index-1], 7800+m.Index, m.SharePublic)
	}
	if _, err := ParseCeremony([]byte(good + prev)); err != nil {
		t.Fatalf("a resharing: %v", err)
	}
	for _, c := range []struct{ src, want string }{
		{good + "extra: 1\n", "extra"},
		{"name: x\nthreshold: 1\nmembers:\n" + member(1, ""), "1 members: a ceremony has 2 to 255"},
		{"name: x\nthreshold: 1\nmembers:\n" + three, "not more than half"},
		{"name: x\nthreshold: 4\nmembers:\n" + three, "threshold 4: between 1 and the 3 members"},
		{"name: x\nthreshold: 2\nmembers:\n" + member(1, "") + member(2, "") + strings.Replace(member(3, ""), ids[2], "BLpk1nope", 1), "member 3: identity"},
		{"name: x\nthreshold: 2\nmembers:\n" + member(1, "") + member(2, "") + strings.Replace(member(3, ""), "127.0.0.1:7803", "nowhere", 1), `member 3: address "nowhere"`},
		{"name: x\nthreshold: 2\nmembers:\n" + member(1, "") + member(2, "") + strings.Replace(member(3, ""), ids[2], ids[1], 1), "members 2 and 3 have the same identity"},
		{"name: x\nthreshold: 2\nmembers:\n" + member(1, "") + member(2, "") + strings.Replace(member(3, ""), "7803", "7802", 1), "members 2 and 3 have the same address"},
		{"name: x\nthreshold: 2\nmembers:\n" + member(1, "") + member(2, "") + strings.Replace(member(3, ""), "index: 3", "index: 2", 1), "have the same index"},
		{"name: x\nthreshold: 2\nmembers:\n" + member(1, "") + member(2, "") + strings.Replace(member(3, ""), "index: 3", "index: 256", 1), "member index 256"},
		{"name: x\nthreshold: 2\nmembers:\n" + member(1, "") + member(2, "") + member(3, ", url: ftp://x"), `url "ftp://x"`},
		{good + strings.Replace(prev, "threshold: 2", "threshold: 1", 1), "not a 1-of-3 sharing"},
		{good + strings.Replace(prev, "threshold: 2", "threshold: 4", 1), "threshold 4: between 1 and the 3 members"},
		{good + strings.Replace(prev, "127.0.0.1:7801", "127.0.0.1:7901", 1), "share an identity or an address but not both"},
	} {
		if _, err := ParseCeremony([]byte(c.src)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.src, err, c.want)
		}
	}
}

func anyOutcome(t *testing.T, out map[int]outcome) *Result {
	t.Helper()
	for i, o := range out {
		if o.err != nil {
			t.Fatalf("member %d: %v", i, o.err)
		}
		return o.res
	}
	t.Fatal("no outcome")
	return nil
}
