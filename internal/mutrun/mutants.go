package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"sort"
)

// Mutant is one deliberate bug: the bytes [Off, Off+len(Old)) of File
// replaced by New. The operators are gremlins' default set (v0.6.0), so the
// numbers stay comparable with a gremlins run, with one difference: gremlins
// makes two identical mutants of every '-' (INVERT_NEGATIVES and
// ARITHMETIC_BASE both turn it into '+'); here a binary '-' is one
// ARITHMETIC_BASE mutant and a unary '-' one INVERT_NEGATIVES mutant.
type Mutant struct {
	// ID numbers the mutant in the order mutants are listed, which is
	// what MUTRUN_ACTIVE switches on.
	ID int `json:"id"`
	// File, Line and Col say where the mutated token is (File relative
	// to the package); Off is its byte offset in File.
	File string `json:"file"`
	Line int    `json:"line"`
	Col  int    `json:"col"`
	Off  int    `json:"-"`
	// Kind is the gremlins operator name, such as CONDITIONALS_BOUNDARY.
	Kind string `json:"kind"`
	// Old is the token as written and New what replaces it ("" drops it).
	Old string `json:"old"`
	New string `json:"new"`
	// Status is the outcome: KILLED, LIVED, TIMED OUT, NOT VIABLE or
	// NOT COVERED.
	Status string `json:"status"`
	// Killer is the first test that failed on the mutant, when one did.
	Killer string `json:"killer,omitempty"`
	// Seconds is how long the mutant took to build and test.
	Seconds float64 `json:"seconds"`
}

// Kinds of mutation, named as gremlins names them.
const (
	kindBoundary  = "CONDITIONALS_BOUNDARY"
	kindNegation  = "CONDITIONALS_NEGATION"
	kindArith     = "ARITHMETIC_BASE"
	kindIncDec    = "INCREMENT_DECREMENT"
	kindNegatives = "INVERT_NEGATIVES"
)

var boundary = map[token.Token]token.Token{
	token.LSS: token.LEQ, token.LEQ: token.LSS,
	token.GTR: token.GEQ, token.GEQ: token.GTR,
}

var negation = map[token.Token]token.Token{
	token.EQL: token.NEQ, token.NEQ: token.EQL,
	token.LSS: token.GEQ, token.GEQ: token.LSS,
	token.GTR: token.LEQ, token.LEQ: token.GTR,
}

var arith = map[token.Token]token.Token{
	token.ADD: token.SUB, token.SUB: token.ADD,
	token.MUL: token.QUO, token.QUO: token.MUL,
	token.REM: token.MUL,
}

var incdec = map[token.Token]token.Token{token.INC: token.DEC, token.DEC: token.INC}

// findMutants lists the mutants of one Go source file, in source order.
// name is the file's name as reported; src its contents.
func findMutants(name string, src []byte) ([]Mutant, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	var out []Mutant
	add := func(pos token.Pos, kind string, old, new string) {
		p := fset.Position(pos)
		out = append(out, Mutant{File: name, Line: p.Line, Col: p.Column, Off: p.Offset, Kind: kind, Old: old, New: new})
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.BinaryExpr:
			if to, ok := boundary[n.Op]; ok {
				add(n.OpPos, kindBoundary, n.Op.String(), to.String())
			}
			if to, ok := negation[n.Op]; ok {
				add(n.OpPos, kindNegation, n.Op.String(), to.String())
			}
			if to, ok := arith[n.Op]; ok {
				add(n.OpPos, kindArith, n.Op.String(), to.String())
			}
		case *ast.IncDecStmt:
			add(n.TokPos, kindIncDec, n.Tok.String(), incdec[n.Tok].String())
		case *ast.UnaryExpr:
			if n.Op == token.SUB {
				add(n.OpPos, kindNegatives, "-", "")
			}
		}
		return true
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Off < out[j].Off })
	return out, nil
}

// apply returns src with the mutant's change made.
func (m Mutant) apply(src []byte) ([]byte, error) {
	end := m.Off + len(m.Old)
	if m.Off < 0 || end > len(src) || string(src[m.Off:end]) != m.Old {
		return nil, fmt.Errorf("%s:%d:%d: expected %q at offset %d", m.File, m.Line, m.Col, m.Old, m.Off)
	}
	out := make([]byte, 0, len(src)+len(m.New))
	out = append(out, src[:m.Off]...)
	out = append(out, m.New...)
	return append(out, src[end:]...), nil
}

// String names the mutant as a report line does: where, which operator,
// and the change.
func (m Mutant) String() string {
	if m.New == "" {
		return fmt.Sprintf("%s:%d:%d %s (drop %q)", m.File, m.Line, m.Col, m.Kind, m.Old)
	}
	return fmt.Sprintf("%s:%d:%d %s (%s -> %s)", m.File, m.Line, m.Col, m.Kind, m.Old, m.New)
}
