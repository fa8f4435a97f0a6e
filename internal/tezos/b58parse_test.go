package tezos

import (
	"crypto/rand"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	tz "github.com/ecadlabs/gotez/v2"
	"github.com/ecadlabs/gotez/v2/b58"
	"github.com/ecadlabs/gotez/v2/b58/base58"
	"github.com/ecadlabs/gotez/v2/b58/prefix"
	"github.com/ecadlabs/gotez/v2/crypt"

	tv "github.com/signatory-go/signatory/internal/testvectors"
)

// encodeTZ is gotez's encoding of pre ‖ payload: what the derivation is checked against.
func encodeTZ(t testing.TB, pre *prefix.Prefix, payload []byte) string {
	t.Helper()
	s, err := base58.EncodeTZ(pre, payload)
	if err != nil {
		t.Fatal(err)
	}
	return string(s)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// TestB58KindsDerivation: every encoding of every kind we parse, by gotez's encoder, has one of
// the derived lengths and starts with the derived text; so do the derivation's bounds themselves
// (prefix ‖ 00…00 and prefix ‖ ff…ff). Every kind happens to have a single length, and the
// exported constants agree with the derived lengths.
func TestB58KindsDerivation(t *testing.T) {
	t.Parallel()
	wantText := map[*prefix.Prefix]string{
		&prefix.Ed25519PublicKeyHash: "tz1", &prefix.Secp256k1PublicKeyHash: "tz2", &prefix.P256PublicKeyHash: "tz3",
		&prefix.BLS12_381PublicKeyHash: "tz4", &prefix.MLDSA44PublicKeyHash: "tz5", &prefix.ContractHash: "KT1",
		&prefix.Ed25519PublicKey: "edpk", &prefix.Secp256k1PublicKey: "sppk", &prefix.P256PublicKey: "p2pk",
		&prefix.BLS12_381PublicKey: "BLpk", &prefix.MLDSA44PublicKey: "mdpk", &prefix.GenericSignature: "sig",
		&prefix.Ed25519Signature: "edsig", &prefix.Secp256k1Signature: "spsig1", &prefix.P256Signature: "p2sig",
		&prefix.BLS12_381Signature: "BLsig", &prefix.MLDSA44Signature: "mdsig", &prefix.ChainID: "Net",
	}
	// base58Head against gotez's encoder, on numbers of every size up to 300 bytes and near
	// powers of 58.
	for n := 1; n <= 300; n++ {
		b := randomBytes(n)
		b[0] |= 1
		x := new(big.Int).SetBytes(b)
		p := new(big.Int).Exp(big.NewInt(58), big.NewInt(int64(n)), nil)
		for _, x := range []*big.Int{x, p, new(big.Int).Sub(p, big.NewInt(1))} {
			want := string(base58.Encode(x.Bytes()))
			if d, head := base58Head(x, 12); d != len(want) || head != want[:min(12, len(want))] {
				t.Fatalf("%x: %d digits %q, gotez %d %q", x, d, head, len(want), want[:min(12, len(want))])
			}
		}
	}
	seen := 0
	for _, set := range b58Sets {
		for _, k := range set.kinds {
			seen++
			if k.text != wantText[k.pre] || k.min != k.max {
				t.Errorf("%v: text %q, lengths %d–%d; want text %q and one length", k.pre.Prefix, k.text, k.min, k.max, wantText[k.pre])
			}
			check := func(what, s string) {
				t.Helper()
				if len(s) < k.min || len(s) > k.max || !strings.HasPrefix(s, k.text) {
					t.Fatalf("%s %s: %d characters %q…, derived %d–%d characters %q…", k.text, what, len(s), s[:min(8, len(s))], k.min, k.max, k.text)
				}
			}
			rest := k.pre.Len + 4
			check("lower bound", string(base58.Encode(append(slices.Clone(k.pre.Prefix), make([]byte, rest)...))))
			check("upper bound", string(base58.Encode(append(slices.Clone(k.pre.Prefix), slices.Repeat([]byte{0xff}, rest)...))))
			check("zero payload", encodeTZ(t, k.pre, make([]byte, k.pre.Len)))
			check("ff payload", encodeTZ(t, k.pre, slices.Repeat([]byte{0xff}, k.pre.Len)))
			n := 64
			if k.pre.Len > 100 {
				n = 4 // gotez's encoder is quadratic
			}
			for range n {
				check("random payload", encodeTZ(t, k.pre, randomBytes(k.pre.Len)))
			}
		}
	}
	if seen != len(wantText) {
		t.Errorf("%d kinds, want %d", seen, len(wantText))
	}
	if !slices.Equal(pkhSet.lengths, []int{PKHLength}) || !slices.Equal(contractSet.lengths, []int{PKHLength}) {
		t.Errorf("key hash lengths %v, contract %v; PKHLength %d", pkhSet.lengths, contractSet.lengths, PKHLength)
	}
	if got := publicKeySet.lengths[len(publicKeySet.lengths)-1]; got != MLDSA44PublicKeyLength {
		t.Errorf("longest public key %d, MLDSA44PublicKeyLength %d", got, MLDSA44PublicKeyLength)
	}
	if maxTZLength != MLDSA44SignatureLength || signatureSet.lengths[len(signatureSet.lengths)-1] != maxTZLength {
		t.Errorf("overall cap %d, MLDSA44SignatureLength %d", maxTZLength, MLDSA44SignatureLength)
	}
	// Every non-tz5 value is under MaxBase58Length, as its comment says.
	for _, set := range b58Sets {
		for _, k := range set.kinds {
			if k.pre.Len < 1000 && k.max > MaxBase58Length {
				t.Errorf("%s: %d characters > MaxBase58Length", k.text, k.max)
			}
		}
	}
}

// The parsers as they were: gotez's b58 parsers and its crypt conversions, with our messages
// around them. What ours must match.
func gotezPKH(s string) (tz.PublicKeyHash, error) {
	pkh, err := b58.ParsePublicKeyHash([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("invalid public key hash %q: %s", s, scrub(err))
	}
	return pkh, nil
}

func gotezPublicKey(s string) (crypt.PublicKey, error) {
	raw, err := b58.ParsePublicKey([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("invalid public key %s: %s", quoteKey(s), scrub(err))
	}
	if md, ok := raw.(*tz.MLDSA44PublicKey); ok {
		return NewMLDSA44PublicKey(md[:])
	}
	pub, err := crypt.NewPublicKey(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid public key %q: %s", s, scrub(err))
	}
	return pub, nil
}

func gotezSignature(s string) (crypt.Signature, error) {
	raw, err := b58.ParseSignature([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("invalid signature: %s", scrub(err))
	}
	sig, err := crypt.NewSignature(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid signature: %s", scrub(err))
	}
	return sig, nil
}

func gotezChainID(s string) (*tz.ChainID, error) {
	id, err := b58.ParseChainID([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("invalid chain id %q: %s", s, scrub(err))
	}
	return id, nil
}

func gotezContract(s string) (*tz.ContractHash, error) { return b58.ParseContractHash([]byte(s)) }

type parser struct {
	name  string
	set   *b58Set
	ours  func(string) (any, error)
	gotez func(string) (any, error)
}

func wrap[T any](f func(string) (T, error)) func(string) (any, error) {
	return func(s string) (any, error) {
		v, err := f(s)
		if err != nil {
			return nil, err
		}
		return v, nil
	}
}

var parsers = []parser{
	{"key hash", pkhSet, wrap(ParsePublicKeyHash), wrap(gotezPKH)},
	{"contract", contractSet, func(s string) (any, error) {
		if ValidContractAddress(s) {
			return true, nil
		}
		return nil, fmt.Errorf("not a contract")
	}, func(s string) (any, error) {
		if _, err := gotezContract(s); err != nil {
			return nil, fmt.Errorf("not a contract")
		}
		return true, nil
	}},
	{"public key", publicKeySet, wrap(ParsePublicKey), wrap(gotezPublicKey)},
	{"signature", signatureSet, wrap(ParseSignature), wrap(gotezSignature)},
	{"chain id", chainIDSet, wrap(ParseChainID), wrap(gotezChainID)},
}

// compareWithGotez parses s with every parser, ours and gotez's: both accept or both refuse;
// what both accept is equal; and where ours decoded s (its length and start fit a kind), the
// error is the same. Text ours refuses undecoded (no accepted kind has its length, for how it
// starts) gotez refuses too, after decoding, with its own message: only acceptance is compared.
// It returns how many parsers accepted s.
func compareWithGotez(t testing.TB, s string) int {
	t.Helper()
	accepted := 0
	for _, p := range parsers {
		got, err := p.ours(s)
		want, gerr := p.gotez(s)
		switch {
		case (err == nil) != (gerr == nil):
			t.Fatalf("%s %s: ours %v, gotez %v", p.name, quoteShort(s), err, gerr)
		case err == nil:
			accepted++
			if !reflect.DeepEqual(got, want) || fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("%s %s: ours %T %v, gotez %T %v", p.name, quoteShort(s), got, got, want, want)
			}
		default:
			if why := p.set.admit(s); why.ok() && err.Error() != gerr.Error() {
				t.Fatalf("%s %s: ours %q, gotez %q", p.name, quoteShort(s), err, gerr)
			}
		}
	}
	return accepted
}

// validValues are values of every kind we parse: real keys and signatures of every curve, and
// random payloads where any bytes are valid.
func validValues(t testing.TB, n int) []string {
	var out []string
	for _, pre := range []*prefix.Prefix{&prefix.Ed25519PublicKeyHash, &prefix.Secp256k1PublicKeyHash,
		&prefix.P256PublicKeyHash, &prefix.BLS12_381PublicKeyHash, &prefix.MLDSA44PublicKeyHash, &prefix.ContractHash,
		&prefix.ChainID, &prefix.GenericSignature, &prefix.Ed25519Signature, &prefix.Secp256k1Signature,
		&prefix.P256Signature, &prefix.Ed25519PublicKey} {
		for range n {
			out = append(out, encodeTZ(t, pre, randomBytes(pre.Len)))
		}
	}
	out = append(out, tv.K1PK, tv.K1PKH, tv.K5PK, tv.K5PKH, tv.K6PK, tv.K6PKH, tv.K7PK, tv.K7PKH, "NetXdQprcVkpaWU")
	for _, c := range Curves {
		for i := range n {
			priv, err := GenerateKey(c)
			if err != nil {
				t.Fatal(err)
			}
			sig, err := priv.Sign([]byte("\x04\x01payload"))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, priv.Public().String(), priv.Public().Hash().String(), sig.String())
			if c == MLDSA44 && i > 0 {
				break // long to make and to parse with gotez
			}
		}
	}
	return out
}

// TestParseMatchesGotez: every kind's valid values parse as gotez parses them, by the parser of
// their kind only; one character shorter or longer, they are refused undecoded; spoiled at full
// length (checksum, a character outside the alphabet), they are refused with gotez's message.
func TestParseMatchesGotez(t *testing.T) {
	t.Parallel()
	kinds := map[string]bool{}
	for _, s := range validValues(t, 8) {
		if compareWithGotez(t, s) != 1 {
			t.Fatalf("%s: accepted by %d parsers, want 1", quoteShort(s), compareWithGotez(t, s))
		}
		kinds[s[:3]] = true
		last := s[len(s)-1]
		other := byte('z')
		if last == 'z' {
			other = 'y'
		}
		for _, bad := range []string{s[:len(s)-1], s + "1", s + string(other), s[:len(s)-1] + string(other),
			s[:len(s)-1] + "0", s[:len(s)/2] + "l" + s[len(s)/2+1:]} {
			if compareWithGotez(t, bad) != 0 {
				t.Fatalf("%s: accepted", quoteShort(bad))
			}
		}
		for _, p := range parsers {
			for _, bad := range []string{s[:len(s)-1], s + "1"} {
				if why := p.set.admit(bad); why.ok() {
					t.Fatalf("%s: %s admitted for decoding", p.name, quoteShort(bad))
				}
			}
		}
	}
	if len(kinds) < 17 {
		t.Errorf("only %d kinds seen", len(kinds))
	}
	// The tz5 case of the issue: one character short of an mdsig, refused as such.
	priv, _ := GenerateKey(MLDSA44)
	sig, _ := priv.Sign([]byte("x"))
	s := sig.String()
	if _, err := ParseSignature(s[:len(s)-1]); err == nil || err.Error() != "invalid signature: a signature starting mdsig is 3316 characters, not 3315" {
		t.Errorf("short mdsig: %v", err)
	}
	if _, err := ParseSignature(s + "z"); err == nil || !strings.Contains(err.Error(), "3317 characters is too long") {
		t.Errorf("long mdsig: %v", err)
	}
	// Another kind's value at a length its parser accepts: gotez's words.
	if _, err := ParsePublicKeyHash("KT1PWx2mnDueood7fEmfbBDKx1D9BAnnXitn"); err == nil ||
		err.Error() != `invalid public key hash "KT1PWx2mnDueood7fEmfbBDKx1D9BAnnXitn": unknown public key prefix` {
		t.Errorf("KT1 as key hash: %v", err)
	}
	for _, s := range []string{"", "1", "tz1", "sig", "Net", "edsig", strings.Repeat("1", 36), strings.Repeat("z", 99),
		"tz1" + strings.Repeat("z", maxTZLength), "mdsig" + strings.Repeat("1", maxTZLength-5)} {
		compareWithGotez(t, s)
	}
}

// TestParseRefusalMessages: what text refused undecoded is told.
func TestParseRefusalMessages(t *testing.T) {
	t.Parallel()
	errText := func(_ any, err error) string {
		if err == nil {
			return "<nil>"
		}
		return err.Error()
	}
	// The quoting is %q's.
	rng := mrand.New(mrand.NewPCG(1, 2))
	for range 2000 {
		b := make([]byte, rng.IntN(50))
		for i := range b {
			b[i] = byte(rng.IntN(256))
			if rng.IntN(2) == 0 {
				b[i] = byte(' ' + rng.IntN(96))
			}
		}
		for _, s := range []string{string(b), "", `"`, `\`, "\x7f", "é", "\xc3"} {
			if got, want := string(appendQuote(nil, s)), fmt.Sprintf("%q", s); got != want {
				t.Fatalf("%x: %s, %%q %s", s, got, want)
			}
		}
	}
	long := strings.Repeat("z", 60<<10)
	for _, c := range []struct{ got, want string }{
		{errText(ParsePublicKeyHash("")), `invalid public key hash "": a key hash is 36 characters, not 0`},
		{errText(ParsePublicKeyHash("tz1nope")), `invalid public key hash "tz1nope": a key hash starting tz1 is 36 characters, not 7`},
		{errText(ParsePublicKeyHash("tz1" + long)), `invalid public key hash "tz1zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"… (61443 characters): ` +
			`61443 characters is too long (a key hash is 36 characters)`},
		{errText(ParsePublicKeyHash(strings.Repeat("z", 36))), `invalid public key hash "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz": unknown public key prefix`},
		{errText(ParseSignature("edsig" + strings.Repeat("z", 145))), `invalid signature: 150 characters is too long (a signature starting edsig is 99 characters)`},
		{errText(ParseSignature("mdsig" + strings.Repeat("z", 137))), `invalid signature: a signature starting mdsig is 3316 characters, not 142`},
		{errText(ParseSignature(strings.Repeat("z", 97))), `invalid signature: a signature is 96, 98, 99, 142 or 3316 characters, not 97`},
		{errText(ParseSignature(strings.Repeat("z", 99))), `invalid signature: unknown signature prefix`},
		{errText(ParseSignature(long)), `invalid signature: 61440 characters is too long (a signature is 96, 98, 99, 142 or 3316 characters)`},
		{errText(ParsePublicKey("BLpk")), `invalid public key "BLpk": a public key starting BLpk is 76 characters, not 4`},
		{errText(ParseChainID("NetXdQprcVkpaW")), `invalid chain id "NetXdQprcVkpaW": a chain id starting Net is 15 characters, not 14`},
		{errText(ParseChainID("NetXdQprcVkpaWV")), `invalid chain id "NetXdQprcVkpaWV": base58Check decoding error: invalid checksum`},
	} {
		if c.got != c.want {
			t.Errorf("got  %s\nwant %s", c.got, c.want)
		}
	}
}

// TestDecodeTZAnyMatchesGotez: our decoding path gives gotez's base58.DecodeTZ's prefix, payload
// and error on values of every prefix gotez knows, of the right and wrong payload lengths,
// spoiled, and on random text.
func TestDecodeTZAnyMatchesGotez(t *testing.T) {
	t.Parallel()
	rng := mrand.New(mrand.NewPCG(3, 5))
	check := func(s string) {
		t.Helper()
		p, payload, why := decodeTZAny(s)
		gp, gpayload, gerr := base58.DecodeTZ([]byte(s))
		want := ""
		if gerr != nil {
			want = scrub(gerr)
		}
		if p != gp || !slices.Equal(payload, gpayload) || why != want {
			t.Fatalf("%s: ours %v %x %q, gotez %v %x %v", quoteShort(s), p, payload, why, gp, gpayload, gerr)
		}
	}
	for _, p := range prefix.List {
		if p.Len > 1000 {
			continue // tz5 values: covered by TestParseMatchesGotez
		}
		for _, n := range []int{p.Len, p.Len - 1, p.Len + 1, 0} {
			s := string(base58.EncodeCheck(append(slices.Clone(p.Prefix), randomBytes(n)...)))
			check(s)
			check(s[:len(s)-1])
			check(s[1:])
			b := []byte(s)
			b[rng.IntN(len(b))] = b58Alphabet[rng.IntN(58)]
			check(string(b))
		}
	}
	for range 2000 {
		b := make([]byte, rng.IntN(120))
		for i := range b {
			if rng.IntN(50) == 0 {
				b[i] = byte(rng.Uint32())
			} else {
				b[i] = b58Alphabet[rng.IntN(58)]
			}
		}
		check(string(b))
	}
	for _, s := range []string{"", "1", "11111", "z", "0", "\xc3", "2g", "1112g"} {
		check(s)
	}
}

// FuzzParseMatchesGotez: on any text, our parsers accept exactly what gotez's accept, with equal
// results, and, where ours decoded the text, fail with gotez's message. Ours refuse more text
// before decoding only where its length cannot be valid for how it starts (gotez refuses it
// after decoding); long text is handed to gotez only when ours decoded it, gotez's decoder being
// quadratic.
func FuzzParseMatchesGotez(f *testing.F) {
	for _, s := range validValues(f, 1) {
		f.Add(s)
		f.Add(s[:len(s)-1])
		f.Add(s + "1")
	}
	for _, s := range []string{"", "tz1", "sig", "NetXdQprcVkpaWU", "0OIl", "KT1PWx2mnDueood7fEmfbBDKx1D9BAnnXitn"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		admitted := false
		for _, p := range parsers {
			if why := p.set.admit(s); why.ok() {
				admitted = true
			}
		}
		if admitted || len(s) <= 400 {
			compareWithGotez(t, s)
			return
		}
		for _, p := range parsers {
			if _, err := p.ours(s); err == nil {
				t.Fatalf("%s: %s accepted", p.name, quoteShort(s))
			}
		}
	})
}

// BenchmarkParseWorst: for each kind of base58 value a client controls (the /keys/<pkh> path,
// a BLpk in bls_pk, an ?authentication= signature of each kind), the cost of a valid value
// (kind/valid) and of the most expensive of a set of bad ones of the same kind (kind/worst): one
// character shorter or longer, a wrong checksum or a character outside the alphabet at full
// length, a value of the right checksum but bad content, text at the overall cap and past it.
// The worst is picked by timing every candidate first; their costs are logged.
func BenchmarkParseWorst(b *testing.B) {
	edPriv, _ := GenerateKey(Ed25519)
	edSig, _ := edPriv.Sign([]byte("\x04\x01bench"))
	mdPriv, _ := GenerateKey(MLDSA44)
	mdSig, _ := mdPriv.Sign([]byte("\x04\x01bench"))
	generic := encodeTZ(b, &prefix.GenericSignature, randomBytes(64))
	badPoint := slices.Repeat([]byte{0xff}, 48) // not an x coordinate of BLS12-381's G1
	pkh := func(s string) error { _, err := ParsePublicKeyHash(s); return err }
	pk := func(s string) error { _, err := ParsePublicKey(s); return err }
	sig := func(s string) error { _, err := ParseSignature(s); return err }
	for _, c := range []struct {
		kind, valid string
		parse       func(string) error
		extra       map[string]string
	}{
		{"pkh", tv.K1PKH, pkh, nil},
		{"BLpk", tv.K7PK, pk, map[string]string{"bad point": encodeTZ(b, &prefix.BLS12_381PublicKey, badPoint)}},
		{"mdsig", mdSig.String(), sig, nil},
		{"edsig", edSig.String(), sig, nil},
		{"sig", generic, sig, map[string]string{"BLsig length": "sig" + strings.Repeat("z", 139)}},
	} {
		v := c.valid
		if err := c.parse(v); err != nil {
			b.Fatalf("%s: %v", c.kind, err)
		}
		flip := byte('z')
		if v[len(v)-1] == 'z' {
			flip = 'y'
		}
		head := v[:min(5, len(v))]
		cands := map[string]string{
			"one shorter":    v[:len(v)-1],
			"one longer":     v + "z",
			"wrong checksum": v[:len(v)-1] + string(flip),
			"bad character":  v[:len(v)-1] + "0",
			"all z":          head + strings.Repeat("z", len(v)-len(head)),
			"at the cap":     head + strings.Repeat("z", maxTZLength-len(head)),
			"past the cap":   head + strings.Repeat("z", maxTZLength+1-len(head)),
			"64 KiB":         head + strings.Repeat("z", 64<<10),
		}
		for name, s := range c.extra {
			cands[name] = s
		}
		names := make([]string, 0, len(cands))
		for name, s := range cands {
			if c.parse(s) == nil {
				b.Fatalf("%s %s: accepted", c.kind, name)
			}
			names = append(names, name)
		}
		slices.Sort(names)
		// Each candidate's cost is the least of 15 rounds of at least 0.2 ms, the rounds going
		// through the candidates in turn: the machine may be busy, and by turns the load weighs
		// alike on all of them.
		cost := map[string]time.Duration{}
		for range 15 {
			for _, name := range names {
				n, start := 0, time.Now()
				for ; n < 3 || time.Since(start) < 200*time.Microsecond; n++ {
					_ = c.parse(cands[name])
				}
				if d := time.Since(start) / time.Duration(n); cost[name] == 0 || d < cost[name] {
					cost[name] = d
				}
			}
		}
		worst := names[0]
		var costs []string
		for _, name := range names {
			costs = append(costs, fmt.Sprintf("%s %v", name, cost[name]))
			if cost[name] > cost[worst] {
				worst = name
			}
		}
		b.Logf("%s: valid %d characters; bad candidates: %s; worst: %s", c.kind, len(v), strings.Join(costs, ", "), worst)
		b.Run(c.kind+"/valid", func(b *testing.B) {
			for b.Loop() {
				if err := c.parse(v); err != nil {
					b.Fatal(err)
				}
			}
		})
		w := cands[worst]
		b.Run(c.kind+"/worst", func(b *testing.B) {
			for b.Loop() {
				if c.parse(w) == nil {
					b.Fatal("accepted")
				}
			}
		})
	}
}
