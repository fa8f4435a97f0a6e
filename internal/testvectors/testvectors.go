// Package testvectors loads the reference implementation's known answers (testdata/vectors:
// payloads, keys, signatures and watermark scenarios taken from its test suite), and octez's
// fixed tz5 key (testdata/octez), for use in tests.
package testvectors

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// Keys from the reference implementation's test suite (testdata/vectors).
const (
	K1SK  = "edsk4FTF78Qf1m2rykGpHqostAiq5gYW4YZEoGUSWBTJr2njsDHSnd"
	K1PK  = "edpkv45regue1bWtuHnCgLU8xWKLwa9qRqv4gimgJKro4LSc3C5VjV"
	K1PKH = "tz1LggX2HUdvJ1tF4Fvv8fjsrzLeW4Jr9t2Q"
	K2SK  = "edsk3REH79xaoCkNizrDo8cY4WYwEkrFLTAdjb1pjcP9yQora4qE3Y"
	K2PK  = "edpkuFt8yrNyseDKXvMsQ12NTEoqJEnkPQaCp4Kw5WPCEJHr5YV48m"
	K2PKH = "tz1WGcYos3hL7GXYXjKrMnSFdkT7FyXnFBvf"
	K3SK  = "edsk3ZAm9nqEo7qNugo2wcmxWnbDe7oUUmHt5UJYDdqwucsaHTAsVQ"
	K3PK  = "edpkujLb5ZCZ2gprnRzE9aVHKZfx9A8EtWu2xxkwYSjBUJbesJ9rWE"
	K3PKH = "tz1PhHHZRSEqFViUYYJeT5YJ9uzvgQgdNWXW"
	K4SK  = "edsk3QoqBuvdamxouPhin7swCvkQNgq4jP5KZPbwWNnwdZpSpJiEbq"
	K4PK  = "edpkvGfYw3LyB1UcCahKQk4rF2tvbMUk8GFiTuMjL75uGXrpvKXhjn"
	K4PKH = "tz1VSUr8wwNhLAzempoch5d6hLRiTh8Cjcjb"
	K5SK  = "spsk1XYsTqUsd7LaLs9a8qpmCvLVJeLEZEXkeAZS5dwcKgUZhv3cYw"
	K5PK  = "sppk7cvVVMRRtYTdriTB6KQqpXZt9TUwSTcpMWq4FwpvG2eVZ56UuHP"
	K5PKH = "tz2QPsZoZse4eeahhg5DdfnBDB4VbU1PwgxN"
	K6SK  = "p2sk2rUMnnnFPQCB7DBozkCZrFhiZ87ddrpAHbRcww7dwU2WHYUbci"
	K6PK  = "p2pk65pxFqFj1N66zRRQtdbEJWHMH5hRv4WsRkaGWQJtZ5bv8nVx6Dg"
	K6PKH = "tz3ZbCsUveF3Q6WUNkThT1wyJyhPunanaAXK"
	K7SK  = "BLsk1XMDG3iepYGj15mBWc7dYjrkpVVM4VH3y5DyBCN9iAGrELwRbY"
	K7PK  = "BLpk1nRV5SBB2QCxsiem5Neoywcizr3mkdp167HL1iKFgFvzPhKo4RSy7J8JBh2BgGgVYjNsRGwU"
	K7PKH = "tz4XXtsYav3fZz2FSDa7hcx4F8sh8SaDWNME"
	K8SK  = "BLsk2ae63m4ooimmTy1B5wjriwPMtCLdiyNpetFiQMBovRm6ks6rSW"
	K8PK  = "BLpk1tgcJazH5SPmTkvXdUXYKxmQZKJXZEcuf6DeaH8SHDDD2BiAmeeHN8T57Rhqd1iUUJCweCxQ"
	K8PKH = "tz4JtjLv1AvUdnvXkG9mBBmLgcwVBV2FoPBK"
)

// Derived mirrors testdata/vectors/derived.json.
type Derived struct {
	Constructed     map[string]string `json:"constructed"`
	UnitSigs        map[string]string `json:"unit_sigs"`
	Pack            string            `json:"pack"`
	W               map[string]string `json:"W"`
	WHash           map[string]string `json:"W_hash"`
	BakerSigs       map[string]string `json:"baker_sigs"`
	DerivedPayloads map[string]string `json:"derived_payloads"`
	DerivedHash     map[string]string `json:"derived_hash"`
	Auth            struct {
		AuthBytes string `json:"authbytes"`
		Sig       string `json:"sig"`
		Msg       string `json:"msg"`
	} `json:"auth"`
	AuthPop struct {
		AuthBytes string `json:"authbytes"`
		Sig       string `json:"sig"`
	} `json:"auth_pop"`
	ECDSA map[string]string `json:"ecdsa"`
	BLS   struct {
		PK   string `json:"pk"`
		PKH  string `json:"pkh"`
		PoP  string `json:"pop"`
		Sigs []struct {
			Msg string `json:"msg"`
			V2  string `json:"v2_pop_scheme"`
			V1  string `json:"v1_aug_scheme"`
		} `json:"sigs"`
	} `json:"bls_tz4alias"`
	BLSPoPKey struct {
		PK  string `json:"pk"`
		PKH string `json:"pkh"`
		PoP string `json:"pop"`
	} `json:"bls_popkey"`
}

func dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "vectors")
}

func load(name string, v any) {
	b, err := os.ReadFile(filepath.Join(dir(), name))
	if err != nil {
		panic(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		panic(err)
	}
}

// LoadDerived returns derived.json.
func LoadDerived() *Derived {
	var d Derived
	load("derived.json", &d)
	return &d
}

// LoadPolicyHex returns policy_hex.json: payload hex by policy case name.
func LoadPolicyHex() map[string]string {
	var m map[string]string
	load("policy_hex.json", &m)
	return m
}

// WithProofAbsent is a policy case whose last content is an update_consensus_key written before
// protocol 022 gave it an optional proof field, with the byte that says the proof is absent
// appended: octez since 022 (operation_repr.ml, `opt "proof"`) cannot read it without that byte,
// and neither do we.
func WithProofAbsent(h string) string { return h + "00" }

// OctezTz5PKH is the address of OctezTz5's key.
const OctezTz5PKH = "tz5gNJ1oD2zGxq9bgHHezToUr8WWA7DBXPFA"

// OctezTz5 returns the fixed tz5 (ML-DSA-44) secret key hard-coded in octez
// (testdata/octez/mldsa44_hardcoded_sk.txt) and its public key
// (testdata/octez/mldsa44_hardcoded_pk.txt, derived from it outside this module), as base58 text.
func OctezTz5() (sk, pk string) {
	return octezLine("mldsa44_hardcoded_sk.txt"), octezLine("mldsa44_hardcoded_pk.txt")
}

// octezLine returns the one line of testdata/octez/name that is not a # comment.
func octezLine(name string) string {
	b, err := os.ReadFile(filepath.Join(dir(), "..", "octez", name))
	if err != nil {
		panic(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			return line
		}
	}
	panic(name + " holds no value")
}

// Hex decodes s or panics.
func Hex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}
