// Package request decodes the bytes a baker asks to sign into a Request: its kind, chain,
// level, round and operation kinds. It does no I/O and never panics on hostile input.
package request

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"

	tz "github.com/ecadlabs/gotez/v2"
	"github.com/ecadlabs/gotez/v2/encoding"
	"github.com/ecadlabs/gotez/v2/protocol/core"
	"github.com/ecadlabs/gotez/v2/protocol/latest"
	p022 "github.com/ecadlabs/gotez/v2/protocol/proto_022_PsRiotum"
	p024 "github.com/ecadlabs/gotez/v2/protocol/proto_024_PtTALLiN"
	"golang.org/x/crypto/blake2b"

	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/tezos"
)

// Kind is a request kind as named in the allow map of a policy.
type Kind string

const (
	Generic            Kind = "generic"
	Pack               Kind = "pack"
	Block              Kind = "block"
	Preattestation     Kind = "preattestation"
	Attestation        Kind = "attestation"
	AttestationWithDAL Kind = "attestation_with_dal"
)

// Kinds lists every valid request kind, sorted.
var Kinds = []Kind{Attestation, AttestationWithDAL, Block, Generic, Pack, Preattestation}

// Magic bytes (the Tezos signing watermark, first byte of a message).
const (
	MagicLegacyBlock       = 0x01
	MagicLegacyEndorsement = 0x02
	MagicGeneric           = 0x03
	MagicAuthentication    = 0x04
	MagicPack              = 0x05
	MagicBlock             = 0x11
	MagicPreattestation    = 0x12
	MagicAttestation       = 0x13
)

// Version is the signing version from the `version` query parameter.
type Version int

// VersionLatest is the default signing version (tezos.VersionLatest).
const VersionLatest Version = 3

// Request is a decoded sign request.
type Request struct {
	Kind   Kind
	Digest [32]byte // blake2b-256 of the whole message, magic byte included
	// Chain, Level and Round are set for block and consensus requests (Watermarked() is true).
	Chain *tz.ChainID
	Level int32
	Round int32
	// Tag is the consensus operation tag (20, 21, 23, 40, 41); 0 for other kinds.
	Tag uint8
	// Slot is the consensus slot for tags 20, 21 and 23; -1 otherwise.
	Slot int32
	// Ops lists the operation kind of each content of a generic request, in order: the kind name,
	// the pseudo kind for stake-like transactions, or "ballot:<vote>".
	Ops []string
	// Contents are a generic request's contents as spending limits see them, when decoded with
	// DecodeFull.
	Contents []Content
}

// Watermarked reports whether the request is subject to the high watermark.
func (r *Request) Watermarked() bool { return r.Chain != nil }

// ChainID returns the base58 chain id, or "" when the request has none.
func (r *Request) ChainID() string {
	if r.Chain == nil {
		return ""
	}
	return tezos.ChainIDString((*[4]byte)(r.Chain))
}

// OpCounts returns the number of operations of each kind (for generic requests), or {kind: 1}.
func (r *Request) OpCounts() map[string]int {
	m := map[string]int{}
	if r.Kind != Generic {
		m[string(r.Kind)] = 1
		return m
	}
	for _, op := range r.Ops {
		m[op]++
	}
	return m
}

func badRequest(format string, args ...any) error {
	return &fault.Error{Kind: fault.BadRequest, Msg: fmt.Sprintf(format, args...)}
}

// ErrEmpty is returned for an empty message.
var ErrEmpty = badRequest("empty message: nothing to sign")

// Decode decodes msg with the encodings of the given signing version.
// Every error is a *fault.Error of kind BadRequest with a message safe to show a client.
func Decode(msg []byte, version Version) (*Request, error) { return decode(msg, version, false) }

// DecodeFull is Decode for a key with spending limits: a generic request is decoded fully, once,
// and its Contents are filled in.
func DecodeFull(msg []byte, version Version) (*Request, error) { return decode(msg, version, true) }

func decode(msg []byte, version Version, full bool) (req *Request, err error) {
	if len(msg) == 0 {
		return nil, ErrEmpty
	}
	defer func() {
		// The encoding library panics on a few malformed inputs; never let that reach the server.
		if p := recover(); p != nil {
			req, err = nil, badRequest("malformed %s payload", magicName(msg[0]))
		}
	}()
	switch msg[0] {
	case MagicLegacyBlock:
		return nil, badRequest("legacy (Emmy) block magic byte 0x01 is not supported; Tenderbake blocks use 0x11")
	case MagicLegacyEndorsement:
		return nil, badRequest("legacy (Emmy) endorsement magic byte 0x02 is not supported; Tenderbake attestations use 0x13")
	case MagicAuthentication:
		return nil, badRequest("magic byte 0x04 is the remote-signer authentication prefix, not a signable message")
	case MagicPack:
		if len(msg) < 2 {
			return nil, badRequest("packed data (0x05) is empty")
		}
		return &Request{Kind: Pack, Digest: blake2b.Sum256(msg), Slot: -1}, nil
	case MagicGeneric, MagicBlock, MagicPreattestation, MagicAttestation:
	default:
		return nil, badRequest("unknown magic byte 0x%02x", msg[0])
	}
	if msg[0] == MagicGeneric {
		// Only generic operations carry Micheline, which the decoder reads recursively.
		if err := checkMichelineDepth(msg); err != nil {
			return nil, err
		}
	}
	if msg[0] == MagicGeneric && version != 1 && !full {
		if ops, ok := fastGeneric(msg); ok {
			return &Request{Kind: Generic, Slot: -1, Ops: ops, Digest: blake2b.Sum256(msg)}, nil
		}
	}
	if version == 1 {
		// Version 1 clients use protocol 022 encodings; tz4 bakers also send 023+ BLS-mode
		// consensus tags (40, 41) with it, so fall back to the latest encodings.
		if req, err = decode022(msg, full); err != nil {
			req, err = decodeLatest(msg, full)
		} else if msg[0] == MagicGeneric {
			err = sameAsLatest(msg, req)
		}
	} else if fast, ok := fastConsensus(msg); ok {
		req = fast
	} else {
		req, err = decodeLatest(msg, full)
	}
	if err != nil {
		return nil, err
	}
	req.Digest = blake2b.Sum256(msg)
	return req, nil
}

// sameAsLatest refuses a generic operation that protocol 022's encodings read as req and the live
// protocol's read otherwise: a form the live encoding reads but not canonically (022's reveal
// followed by 0x11 … is the live protocol's reveal with a proof), or other operations. A
// payload the live encoding cannot read at all is 022's alone and keeps its 022 reading.
func sameAsLatest(msg []byte, req *Request) error {
	latest, err := decodeLatest(msg, false)
	switch {
	case errors.Is(err, errNotCanonical) || err == nil && !slices.Equal(latest.Ops, req.Ops):
		return badRequest("generic operation read differently by protocol 022's encoding (signing version 1) and the live protocol's: sign it with version 2 or 3")
	}
	return nil
}

func magicName(b byte) string {
	switch b {
	case MagicGeneric:
		return "generic operation"
	case MagicBlock:
		return "block"
	case MagicPreattestation:
		return "preattestation"
	case MagicAttestation:
		return "attestation"
	case MagicPack:
		return "packed data"
	}
	return fmt.Sprintf("0x%02x", b)
}

func decodeError(magic byte, err error) error {
	var be encoding.ErrBuffer
	if errors.As(err, &be) || errors.Is(err, encoding.ErrBuffer{}) {
		return badRequest("truncated %s payload: %v", magicName(magic), err)
	}
	return badRequest("invalid %s payload: %v", magicName(magic), err)
}

func decodeLatest(msg []byte, full bool) (*Request, error) {
	var sr latest.SignRequest
	rest, err := encoding.Decode(msg, &sr)
	if err != nil {
		return nil, decodeError(msg[0], err)
	}
	switch r := sr.(type) {
	case *latest.GenericOperationSignRequest:
		if len(rest) != 0 || !canonical(msg, &sr) {
			return nil, errNotCanonical
		}
		return generic(r.Contents, full)
	case *latest.BlockSignRequest:
		return block(msg[0], r.Chain, r.BlockHeader.Level, r.BlockHeader.Fitness, rest)
	case *latest.PreattestationSignRequest:
		return consensus(msg[0], r.Chain, r.Operation, rest)
	case *latest.AttestationSignRequest:
		return consensus(msg[0], r.Chain, r.Operation, rest)
	}
	return nil, badRequest("unsupported %s payload", magicName(msg[0]))
}

func decode022(msg []byte, full bool) (*Request, error) {
	var sr p022.SignRequest
	rest, err := encoding.Decode(msg, &sr)
	if err != nil {
		return nil, decodeError(msg[0], err)
	}
	switch r := sr.(type) {
	case *p022.GenericOperationSignRequest:
		if len(rest) != 0 || !canonical(msg, &sr) {
			return nil, errNotCanonical
		}
		return generic(r.Contents, full)
	case *p022.BlockSignRequest:
		return block(msg[0], r.Chain, r.BlockHeader.Level, r.BlockHeader.Fitness, rest)
	case *p022.PreattestationSignRequest:
		return consensus(msg[0], r.Chain, r.Operation, rest)
	case *p022.AttestationSignRequest:
		return consensus(msg[0], r.Chain, r.Operation, rest)
	}
	return nil, badRequest("unsupported %s payload", magicName(msg[0]))
}

func trailing(magic byte, rest []byte) error {
	if len(rest) != 0 {
		return badRequest("%d unexpected trailing bytes after the %s payload", len(rest), magicName(magic))
	}
	return nil
}

func block(magic byte, chain *tz.ChainID, level int32, fitness tz.Bytes, rest []byte) (*Request, error) {
	if err := trailing(magic, rest); err != nil {
		return nil, err
	}
	round, err := FitnessRound(fitness)
	if err != nil {
		return nil, err
	}
	return &Request{Kind: Block, Chain: chain, Level: level, Round: round, Slot: -1}, nil
}

// FitnessRound returns the block round: the last 4 bytes of a Tenderbake fitness
// (not the payload round).
func FitnessRound(fitness []byte) (int32, error) {
	// version [len 1][0x02], level [len 4][4], locked round [len 0|4], predecessor round [len 4][4], round [len 4][4]
	if len(fitness) < 33 {
		return 0, badRequest("block fitness is %d bytes; a Tenderbake fitness has at least 33", len(fitness))
	}
	return int32(binary.BigEndian.Uint32(fitness[len(fitness)-4:])), nil
}

// consensusFields is what every consensus operation of proto 022–024 carries.
type consensusOp interface {
	core.OperationContents
}

func consensus(magic byte, chain *tz.ChainID, op consensusOp, rest []byte) (*Request, error) {
	if err := trailing(magic, rest); err != nil {
		return nil, err
	}
	req := &Request{Chain: chain, Slot: -1}
	switch o := op.(type) {
	case *latest.Preattestation: // same type in 022
		req.Kind, req.Tag, req.Level, req.Round, req.Slot = Preattestation, 20, o.Level, o.Round, int32(o.Slot)
	case *p024.BLSModePreattestation:
		req.Kind, req.Tag, req.Level, req.Round = Preattestation, 40, o.Level, o.Round
	case *latest.Attestation:
		req.Kind, req.Tag, req.Level, req.Round, req.Slot = Attestation, 21, o.Level, o.Round, int32(o.Slot)
	case *latest.AttestationWithDAL:
		req.Kind, req.Tag, req.Level, req.Round, req.Slot = AttestationWithDAL, 23, o.Level, o.Round, int32(o.Slot)
	case *p024.BLSModeAttestation:
		req.Kind, req.Tag, req.Level, req.Round = Attestation, 41, o.Level, o.Round
	case *p022.Preattestation:
		req.Kind, req.Tag, req.Level, req.Round, req.Slot = Preattestation, 20, o.Level, o.Round, int32(o.Slot)
	case *p022.Attestation:
		req.Kind, req.Tag, req.Level, req.Round, req.Slot = Attestation, 21, o.Level, o.Round, int32(o.Slot)
	case *p022.AttestationWithDAL:
		req.Kind, req.Tag, req.Level, req.Round, req.Slot = AttestationWithDAL, 23, o.Level, o.Round, int32(o.Slot)
	default:
		return nil, badRequest("unsupported consensus operation %q", op.OperationKind())
	}
	return req, nil
}

// ballot is implemented by ballot operations of every protocol.
type ballot interface {
	BallotKind() core.BallotKind
}

func generic[T core.OperationContents](contents []T, full bool) (*Request, error) {
	if len(contents) == 0 {
		return nil, badRequest("generic operation has no contents")
	}
	req := &Request{Kind: Generic, Slot: -1, Ops: make([]string, 0, len(contents))}
	for i, c := range contents {
		kind, entrypoint, err := opKind(c)
		if err != nil {
			return nil, badRequest("generic operation content %d: %v", i, err)
		}
		req.Ops = append(req.Ops, kind)
		if full {
			req.Contents = append(req.Contents, contentOf(c, kind, entrypoint))
		}
	}
	return req, nil
}

// opKind is the kind a policy sees for one operation, as the protocol applies it: "ballot:<vote>"
// for a ballot; for a transaction to an implicit account, the entrypoint decides (the protocol's
// apply.ml dispatches on it: default is a transfer, stake, unstake, finalize_unstake and
// set_delegate_parameters are those operations, whoever the source; any other fails), so the
// pseudo kind whatever the entrypoint's encoding; a transaction to a contract is a transaction
// (a contract may name an entrypoint "stake"); otherwise the operation kind. entrypoint is a
// transaction's canonical entrypoint (Entrypoint), "" for other kinds.
func opKind(op core.OperationContents) (kind, entrypoint string, err error) {
	if o, ok := op.(ballot); ok {
		if o.BallotKind() > core.BallotPass { // vote_repr.ml: 0 yay, 1 nay, 2 pass, nothing else
			return "", "", fmt.Errorf("ballot value %d: the protocol knows 0 (yay), 1 (nay) and 2 (pass)", o.BallotKind())
		}
		return "ballot:" + o.BallotKind().String(), "", nil
	}
	if err := checkSizes(op); err != nil {
		return "", "", err
	}
	tx, ok := op.(core.Transaction)
	if !ok {
		return op.OperationKind(), "", nil
	}
	entrypoint = "default"
	if p, ok := tx.GetParameters().CheckUnwrap(); ok {
		if entrypoint, err = Entrypoint(p.GetEntrypoint()); err != nil {
			return "", "", err
		}
	}
	if _, implicit := tx.GetDestination().(core.ImplicitContract); implicit && IsPseudoOp(entrypoint) {
		return entrypoint, entrypoint, nil
	}
	return op.OperationKind(), entrypoint, nil
}

// Sizes of a manager operation's numbers as the protocol reads them (operation_repr.ml): fee,
// counter, gas_limit and storage_limit are `check_size 10` naturals, and a fee, a transaction's
// amount and an origination's balance are tez (tez_repr.ml: `check_size 10` and an int64). In
// minimal zarith, 10 bytes hold up to 70 bits and 9 bytes exactly the naturals below 2^63.
const (
	maxNumberBytes = 10
	maxTezBytes    = 9
)

// checkSizes refuses a manager operation with a number the protocol cannot read.
func checkSizes(op core.OperationContents) error {
	m, ok := op.(core.ManagerOperation)
	if !ok {
		return nil
	}
	check := func(what string, n tz.BigUint, maxBytes int) error {
		if len(n) > maxBytes {
			return fmt.Errorf("%s of %d bytes: the protocol reads at most %d", what, len(n), maxBytes)
		}
		return nil
	}
	for _, c := range []struct {
		what string
		n    tz.BigUint
		max  int
	}{{"fee", m.GetFee(), maxTezBytes}, {"counter", m.GetCounter(), maxNumberBytes},
		{"gas limit", m.GetGasLimit(), maxNumberBytes}, {"storage limit", m.GetStorageLimit(), maxNumberBytes}} {
		if err := check(c.what, c.n, c.max); err != nil {
			return err
		}
	}
	if tx, ok := op.(core.Transaction); ok {
		return check("amount", tx.GetAmount(), maxTezBytes)
	}
	if op.OperationKind() == "origination" {
		if b, ok := field[tz.BigUint](op, "Balance"); ok {
			return check("balance", b, maxTezBytes)
		}
	}
	return nil
}

// MaxEntrypointLen is the longest entrypoint name the protocol reads (Entrypoint_repr: a named
// entrypoint is a Bounded.string of 31 bytes).
const MaxEntrypointLen = 31

// Entrypoint is the protocol's entrypoint for a name as a transaction's parameters carry it,
// whether as a short tag or as a name (Entrypoint_repr.smart_encoding reads the named case with
// of_string_lax): the empty name is "default", every other name of 1 to 31 bytes is itself (so
// the name "stake" is the entrypoint stake, tag 6, and "default" is tag 0); a longer name is
// refused, as the protocol refuses it.
func Entrypoint(name string) (string, error) {
	switch {
	case name == "":
		return "default", nil
	case len(name) > MaxEntrypointLen:
		return "", fmt.Errorf("entrypoint name of %d bytes: the protocol reads at most %d", len(name), MaxEntrypointLen)
	}
	return name, nil
}

// IsPseudoOp reports whether entrypoint is one the protocol applies as an operation of its own
// on an implicit account (stake, unstake, finalize_unstake, set_delegate_parameters).
func IsPseudoOp(entrypoint string) bool { return slices.Contains(PseudoOps, entrypoint) }

// PseudoOps lists the pseudo operation kinds a policy may allow.
var PseudoOps = latest.ListPseudoOperations()

// GenericOps lists the generic operation kinds of the latest protocol.
var GenericOps = latest.ListGenericOperations()

// consensusOps are operation kinds that are request kinds, not generic contents.
var consensusOps = []string{"attestation", "attestation_with_dal", "preattestation"}

// ValidOpKind reports whether name may appear in a policy's allow.generic list.
func ValidOpKind(name string) bool {
	if slices.Contains(consensusOps, name) {
		return false
	}
	switch name {
	case "ballot:yay", "ballot:nay", "ballot:pass":
		return true
	}
	return slices.Contains(GenericOps, name) || slices.Contains(PseudoOps, name)
}

// AllOpKinds returns every generic and pseudo operation kind, sorted.
func AllOpKinds() []string {
	var out []string
	for _, k := range append(append([]string{}, GenericOps...), PseudoOps...) {
		if !slices.Contains(consensusOps, k) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// ValidKind reports whether k is a request kind.
func ValidKind(k string) bool { return slices.Contains(Kinds, Kind(k)) }
