package request

import (
	"bytes"
	"reflect"

	tz "github.com/ecadlabs/gotez/v2"
	"github.com/ecadlabs/gotez/v2/encoding"
	"github.com/ecadlabs/gotez/v2/protocol/core"
)

// errNotCanonical refuses a generic operation that gotez reads in a form the protocol's decoder
// (data-encoding, binary_reader.ml) refuses or that has a second spelling: a number with a
// trailing zero byte (Trailing_zero), an optional field whose presence byte is missing at the very
// end (gotez reads it as absent), a presence byte other than 0x00 and 0xff (data-encoding reads any
// non-zero byte as present), a signed number written -0, a contract's padding byte other than 0
// (octez skips it): we refuse the last three, so that every operation we sign has one encoding and
// every decoder reads it alike.
var errNotCanonical = badRequest("invalid generic operation payload: not in the protocol's canonical encoding (a number with a trailing zero byte or -0, a missing optional field, a presence byte other than 0x00 or 0xff, a contract's padding byte other than 0, …)")

// canonical reports whether msg is the one encoding of v, the value gotez decoded from it: gotez
// writes v back as exactly msg (which catches every presence byte) and every number in v is
// minimal (gotez keeps a number's bytes as read, so writing back cannot catch those).
func canonical(msg []byte, v any) bool {
	var buf bytes.Buffer
	buf.Grow(len(msg))
	if encoding.Encode(&buf, v) != nil || !bytes.Equal(buf.Bytes(), msg) {
		return false
	}
	return minimalNumbers(reflect.ValueOf(v))
}

var (
	bigUintType    = reflect.TypeOf(tz.BigUint(nil))
	bigIntType     = reflect.TypeOf(tz.BigInt(nil))
	originatedType = reflect.TypeOf(core.OriginatedContract{})
)

// minimalNumbers reports whether no zarith number in v ends with a zero byte after its first,
// no signed one is -0 (0x40, which octez reads as 0), and no contract address has a padding byte
// other than 0 (octez skips it): each of those is a second spelling of the same operation.
func minimalNumbers(v reflect.Value) bool {
	if v.Kind() == reflect.Struct && v.Type() == originatedType && v.FieldByName("Padding").Uint() != 0 {
		return false
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		return v.IsNil() || minimalNumbers(v.Elem())
	case reflect.Struct:
		for i := range v.NumField() {
			if !minimalNumbers(v.Field(i)) {
				return false
			}
		}
	case reflect.Slice:
		if t := v.Type(); t == bigUintType || t == bigIntType {
			n := v.Len()
			if t == bigIntType && n == 1 && v.Index(0).Uint() == 0x40 {
				return false
			}
			return n <= 1 || v.Index(n-1).Uint() != 0
		}
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return true // bytes, hashes
		}
		fallthrough
	case reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return true
		}
		for i := range v.Len() {
			if !minimalNumbers(v.Index(i)) {
				return false
			}
		}
	}
	return true
}
