// Package yamlstrict decodes YAML config nodes strictly: a key that no field of the target
// struct names (a typo, or a setting this version does not have) is an error that names the key,
// its line and the keys that are known, instead of a silently ignored setting. It is a leaf:
// drivers and the policy use it without importing the config package.
package yamlstrict

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Error is a config error found while decoding: an unknown key, or a value of the wrong type.
// Start-up stops on it: unlike an unreachable service, it will not fix itself.
type Error struct{ Err error }

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// IsConfigError reports whether err comes from decoding a config (an *Error in its chain).
func IsConfigError(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

// Decode decodes node into out (a pointer), refusing unknown keys of every struct it contains
// (nested structs, pointers to structs, inline structs, and the values of maps and lists of
// structs). A nil or null node leaves out unchanged.
func Decode(node *yaml.Node, out any) error {
	if node != nil && node.Kind == yaml.DocumentNode && len(node.Content) == 1 {
		node = node.Content[0]
	}
	if node == nil || node.Kind == 0 || node.Tag == "!!null" {
		return nil
	}
	t := reflect.TypeOf(out)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() == reflect.Struct && node.Kind != yaml.MappingNode && node.Kind != yaml.AliasNode {
		return &Error{fmt.Errorf("line %d: expected a mapping of settings", node.Line)}
	}
	if err := Check(node, reflect.TypeOf(out)); err != nil {
		return &Error{err}
	}
	if err := node.Decode(out); err != nil {
		return &Error{err}
	}
	return nil
}

// Check reports the first key of node that type t does not know. A field of type yaml.Node is
// not looked into: its owner decodes it later (the `tezos:` policies, a driver's `config:`).
func Check(node *yaml.Node, t reflect.Type) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nodeType {
		return nil
	}
	if node.Kind == yaml.AliasNode && node.Alias != nil {
		node = node.Alias
	}
	switch {
	case t.Kind() == reflect.Struct && node.Kind == yaml.MappingNode:
		if reflect.PointerTo(t).Implements(unmarshalerType) || t.Implements(unmarshalerType) {
			return nil // the type decodes itself
		}
		fields := map[string]reflect.Type{}
		collect(t, fields)
		for i := 0; i+1 < len(node.Content); i += 2 {
			k, v := node.Content[i], node.Content[i+1]
			if k.Value == "<<" { // merge key
				continue
			}
			ft, ok := fields[k.Value]
			if !ok {
				known := make([]string, 0, len(fields))
				for n := range fields {
					known = append(known, n)
				}
				sort.Strings(known)
				return fmt.Errorf("line %d: unknown config key %q (known keys: %s)", k.Line, k.Value, strings.Join(known, ", "))
			}
			if err := Check(v, ft); err != nil {
				return err
			}
		}
	case t.Kind() == reflect.Map && node.Kind == yaml.MappingNode:
		for i := 1; i < len(node.Content); i += 2 {
			if err := Check(node.Content[i], t.Elem()); err != nil {
				return err
			}
		}
	case (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) && node.Kind == yaml.SequenceNode:
		for _, v := range node.Content {
			if err := Check(v, t.Elem()); err != nil {
				return err
			}
		}
	}
	return nil
}

var (
	unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
	nodeType        = reflect.TypeOf(yaml.Node{})
)

// collect adds the yaml names of t's fields, descending into inline structs.
func collect(t reflect.Type, fields map[string]reflect.Type) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				collect(ft, fields)
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name) // yaml.v3's default
		}
		fields[name] = f.Type
	}
}

// Invalid marks err, a driver's own check of its decoded config (a required field missing, two
// settings that exclude each other), as a config error, so that it stops start-up like an
// unknown key. nil stays nil.
func Invalid(err error) error {
	if err == nil || IsConfigError(err) {
		return err
	}
	return &Error{err}
}

// Invalidf is Invalid(fmt.Errorf(format, args...)).
func Invalidf(format string, args ...any) error { return &Error{fmt.Errorf(format, args...)} }
