// Command mutant applies one mutant to a Go source file, for scripts/mutation.sh: the operator
// mutants gremlins reports (so that a mutant its own-package run leaves alive can be run again
// against the tests of the packages that use it), and statement removal, which gremlins cannot
// do. Usage:
//
//	go run ./tools/mutant list <file.go>                    statement-removal mutants: "line col what"
//	go run ./tools/mutant apply <file.go> <TYPE> <line> <col>
//
// TYPE is one of gremlins' mutant types (ARITHMETIC_BASE, CONDITIONALS_BOUNDARY, …) or
// STATEMENT_REMOVAL. apply rewrites the file in place and prints the change; the caller restores it.
package main

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/scanner"
	"go/token"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// operators: for each operator mutant type, the token it changes and what it becomes (gremlins
// v0.6.0's mutators).
var operators = map[string]map[string]string{
	"ARITHMETIC_BASE":         {"+": "-", "-": "+", "*": "/", "/": "*", "%": "*"},
	"CONDITIONALS_BOUNDARY":   {"<": "<=", "<=": "<", ">": ">=", ">=": ">"},
	"CONDITIONALS_NEGATION":   {"==": "!=", "!=": "==", "<": ">=", "<=": ">", ">": "<=", ">=": "<"},
	"INCREMENT_DECREMENT":     {"++": "--", "--": "++"},
	"INVERT_NEGATIVES":        {"-": "+"},
	"INVERT_LOGICAL":          {"&&": "||", "||": "&&"},
	"INVERT_LOOPCTRL":         {"continue": "break", "break": "continue"},
	"INVERT_ASSIGNMENTS":      {"+=": "-=", "-=": "+=", "*=": "/=", "/=": "*=", "%=": "*="},
	"INVERT_BITWISE":          {"&": "|", "|": "&", "^": "&", "&^": "&", "<<": ">>", ">>": "<<"},
	"INVERT_BWASSIGN":         {"&=": "|=", "|=": "&=", "^=": "&=", "&^=": "&=", "<<=": ">>=", ">>=": "<<="},
	"REMOVE_SELF_ASSIGNMENTS": {"+=": "=", "-=": "=", "*=": "=", "/=": "=", "%=": "=", "&=": "=", "|=": "=", "^=": "=", "<<=": "=", ">>=": "=", "&^=": "="},
}

// noise: calls whose removal changes only what is logged or measured, not what is signed.
var noise = regexp.MustCompile(`(?i)(^|\.)(log|slog|logger|metrics?|debug|info|warn|error)\b|\.(Observe|Inc|Add|Set|WithLabelValues)\(`)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mutant:", err)
		os.Exit(2)
	}
}

func run(args []string) error {
	switch {
	case len(args) == 2 && args[0] == "list":
		src, file, fset, err := parse(args[1])
		if err != nil {
			return err
		}
		for _, m := range removals(src, file, fset) {
			fmt.Printf("%d %d %s\n", m.line, m.col, m.what)
		}
		return nil
	case len(args) == 5 && args[0] == "apply":
		line, err1 := strconv.Atoi(args[3])
		col, err2 := strconv.Atoi(args[4])
		if err1 != nil || err2 != nil {
			return fmt.Errorf("line and column must be numbers")
		}
		return apply(args[1], args[2], line, col)
	}
	return fmt.Errorf("usage: mutant list <file.go> | mutant apply <file.go> <TYPE> <line> <col>")
}

func parse(name string) ([]byte, *ast.File, *token.FileSet, error) {
	src, err := os.ReadFile(name)
	if err != nil {
		return nil, nil, nil, err
	}
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
	return src, file, fset, err
}

// removal is one statement-removal mutant: the bytes [from, to) of the file are replaced by
// nothing.
type removal struct {
	line, col int
	from, to  int
	what      string
}

// removals lists the statements whose removal is a mutant: a guard (an if whose body ends in a
// return, break or continue) loses its body, keeping its condition's side effects; a call made
// for its effect and a plain assignment (not a declaration) are removed. Calls that only log or
// count are left out.
func removals(src []byte, file *ast.File, fset *token.FileSet) []removal {
	var out []removal
	off := func(p token.Pos) int { return fset.Position(p).Offset }
	add := func(s ast.Stmt, from, to int, what string) {
		p := fset.Position(s.Pos())
		out = append(out, removal{p.Line, p.Column, from, to, what})
	}
	//lint:ignore S1021 visit calls itself: it must be declared first
	var visit func(list []ast.Stmt)
	visit = func(list []ast.Stmt) {
		for _, s := range list {
			switch s := s.(type) {
			case *ast.IfStmt:
				if n := len(s.Body.List); n > 0 {
					switch s.Body.List[n-1].(type) {
					case *ast.ReturnStmt, *ast.BranchStmt:
						add(s, off(s.Body.Lbrace)+1, off(s.Body.Rbrace), "guard")
					}
				}
			case *ast.ExprStmt:
				if _, ok := s.X.(*ast.CallExpr); ok {
					text := string(src[off(s.Pos()):off(s.End())])
					if !noise.MatchString(text) {
						add(s, off(s.Pos()), off(s.End()), "call")
					}
				}
			case *ast.AssignStmt:
				if s.Tok != token.DEFINE {
					add(s, off(s.Pos()), off(s.End()), "assignment")
				}
			}
		}
	}
	ast.Inspect(file, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.BlockStmt:
			visit(n.List)
		case *ast.CaseClause:
			visit(n.Body)
		case *ast.CommClause:
			visit(n.Body)
		}
		return true
	})
	return out
}

func apply(name, kind string, line, col int) error {
	src, file, fset, err := parse(name)
	if err != nil {
		return err
	}
	var out []byte
	var desc string
	if kind == "STATEMENT_REMOVAL" {
		for _, m := range removals(src, file, fset) {
			if m.line == line && m.col == col {
				out = append(append(bytes.Clone(src[:m.from]), "/* removed */"...), src[m.to:]...)
				desc = fmt.Sprintf("%s removed: %s", m.what, firstLine(src[m.from:m.to]))
				break
			}
		}
	} else {
		table, ok := operators[kind]
		if !ok {
			return fmt.Errorf("unknown mutant type %q", kind)
		}
		var s scanner.Scanner
		f := token.NewFileSet().AddFile(name, -1, len(src))
		s.Init(f, src, nil, 0)
		for {
			pos, tok, lit := s.Scan()
			if tok == token.EOF {
				break
			}
			p := f.Position(pos)
			if p.Line != line || p.Column != col {
				continue
			}
			text := tok.String()
			if lit != "" && tok.IsKeyword() {
				text = lit
			}
			to, ok := table[text]
			if !ok {
				return fmt.Errorf("%s:%d:%d: %q is not a %s site", name, line, col, text, kind)
			}
			o := p.Offset
			out = append(append(bytes.Clone(src[:o]), to...), src[o+len(text):]...)
			desc = fmt.Sprintf("%s → %s", text, to)
			break
		}
	}
	if out == nil {
		return fmt.Errorf("%s:%d:%d: no %s mutant there", name, line, col, kind)
	}
	if err := os.WriteFile(name, out, 0o644); err != nil {
		return err
	}
	fmt.Printf("%s:%d:%d %s %s\n", name, line, col, kind, desc)
	return nil
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(s)
}
