package request

import (
	"math/big"
	"reflect"

	tz "github.com/ecadlabs/gotez/v2"
	"github.com/ecadlabs/gotez/v2/protocol/core"
)

// Content is what a spending policy sees of one operation of a generic request.
type Content struct {
	Kind string // as a policy names it (opKind): transaction, stake, unstake, delegation, …
	// Source is the manager operation's source ("" for other contents).
	Source string
	// Fee is the content's fee in mutez (nil for contents that are not manager operations).
	Fee *big.Int
	// GasLimit is the manager operation's gas limit (nil when not a manager operation).
	GasLimit *big.Int
	// StorageLimit is the most bytes of storage the content may burn (nil when not a manager
	// operation).
	StorageLimit *big.Int
	// Amount is the mutez the content moves out of the account: a transaction's amount
	// (stake, unstake and other pseudo operations included) or an origination's balance; nil
	// for other kinds.
	Amount *big.Int
	// Destination is a transaction's destination (tz1…tz4 or KT1…; "" for other kinds).
	Destination string
	// Entrypoint is a transaction's entrypoint as the protocol reads it (Entrypoint): "default"
	// when it carries no parameters or an empty name; a name equal to a short tag's is that
	// entrypoint.
	Entrypoint string
	// Delegate is a delegation's new delegate ("" when the delegation withdraws it), or an
	// origination's delegate for the new contract ("" when none).
	Delegate string
}

// Contents decodes a generic operation (magic 0x03) fully and returns its contents for a spending
// policy (DecodeFull's Contents).
func Contents(msg []byte, version Version) ([]Content, error) {
	if len(msg) == 0 || msg[0] != MagicGeneric {
		return nil, badRequest("spending limits apply to generic operations only")
	}
	req, err := DecodeFull(msg, version)
	if err != nil {
		return nil, err
	}
	return req.Contents, nil
}

type withAmount interface {
	GetAmount() tz.BigUint
	GetDestination() core.Address
	GetParameters() tz.Option[core.Parameters]
}

// contentOf is what a spending policy sees of c, whose kind and entrypoint opKind gave.
func contentOf(c core.OperationContents, kind, entrypoint string) Content {
	ct := Content{Kind: kind}
	if m, ok := c.(core.ManagerOperation); ok {
		ct.Fee = m.GetFee().Int()
		ct.GasLimit = m.GetGasLimit().Int()
		ct.StorageLimit = m.GetStorageLimit().Int()
		ct.Source = string(m.GetSource().ToBase58())
	}
	if o, ok := c.(withAmount); ok {
		ct.Amount = o.GetAmount().Int()
		ct.Destination = string(o.GetDestination().ToBase58())
		ct.Entrypoint = entrypoint
		return ct
	}
	switch c.OperationKind() {
	case "origination", "delegation":
		if b, ok := field[tz.BigUint](c, "Balance"); ok { // an origination's
			ct.Amount = b.Int()
		}
		if d, ok := field[tz.Option[tz.PublicKeyHash]](c, "Delegate"); ok {
			if pkh, ok := d.CheckUnwrap(); ok {
				ct.Delegate = string(pkh.ToBase58())
			}
		}
	}
	return ct
}

// field returns op's exported field name when it has type T (the protocols' structs differ, the
// field names do not).
func field[T any](op any, name string) (T, bool) {
	var zero T
	v := reflect.ValueOf(op)
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		v = v.Elem() // nil: the zero Value, which is no struct
	}
	if v.Kind() != reflect.Struct {
		return zero, false
	}
	f := v.FieldByName(name)
	if !f.IsValid() || !f.CanInterface() {
		return zero, false
	}
	t, ok := f.Interface().(T)
	return t, ok
}
