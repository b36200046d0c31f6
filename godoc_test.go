package discovery_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"unicode"
)

// TestEveryExportedNameDocumented holds the module to its rule that every
// exported name has a doc comment: a reader of pkg.go.dev (or of go doc)
// meets a field like Peer.Sources with no word on what it means
// otherwise, and a review only notices by chance. It parses every package
// of this module (not tools/ or other nested modules, not testdata, not
// _test files) and names each exported type, function, method, constant,
// variable, struct field and interface method that has neither a doc
// comment nor a line comment. A name in a group (const ( ... ), var
// ( ... )) counts as documented by the group's comment, as go doc shows
// it; a struct field or interface method does not borrow its type's.
//
// Package main (the command and the chat) is included: its exported
// names are few, and its readers are the people who carry the code on.
func TestEveryExportedNameDocumented(t *testing.T) {
	var missing []string
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if path != "." {
			if name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
				return filepath.SkipDir
			}
			// A directory with a go.mod of its own is another module
			// (tools/plots).
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir
			}
		}
		pkgs, err := parseDir(fset, path)
		if err != nil {
			return err
		}
		for _, files := range pkgs {
			for _, f := range files {
				missing = append(missing, undocumented(fset, f)...)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("no doc comment: %s", m)
	}
}

// parseDir parses the non-test Go files of dir, by package name.
func parseDir(fset *token.FileSet, dir string) (map[string][]*ast.File, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	pkgs := make(map[string][]*ast.File)
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, n), nil, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		pkgs[f.Name.Name] = append(pkgs[f.Name.Name], f)
	}
	return pkgs, nil
}

// undocumented lists the exported names of f without a comment, each as
// "file:line: pkg.Name" (pkg.Type.Field, pkg.Type.Method).
func undocumented(fset *token.FileSet, f *ast.File) []string {
	var out []string
	pkg := f.Name.Name
	report := func(pos token.Pos, name string) {
		p := fset.Position(pos)
		out = append(out, fmt.Sprintf("%s:%d: %s.%s", p.Filename, p.Line, pkg, name))
	}
	for _, decl := range f.Decls {
		switch d := decl.(type) {
		case *ast.FuncDecl:
			if !d.Name.IsExported() {
				continue
			}
			name := d.Name.Name
			if d.Recv != nil {
				recv := recvType(d.Recv)
				if !ast.IsExported(recv) {
					continue // not in the API: go doc never shows it
				}
				name = recv + "." + name
			}
			if !hasText(d.Doc) {
				report(d.Pos(), name)
			}
		case *ast.GenDecl:
			for _, spec := range d.Specs {
				switch s := spec.(type) {
				case *ast.TypeSpec:
					if !s.Name.IsExported() {
						continue
					}
					// A lone type's comment sits on the GenDecl; in a
					// group it sits on the spec.
					if !hasText(s.Doc) && !hasText(s.Comment) && (d.Lparen.IsValid() || !hasText(d.Doc)) {
						report(s.Pos(), s.Name.Name)
					}
					out = append(out, members(fset, pkg, s)...)
				case *ast.ValueSpec:
					for _, n := range s.Names {
						if n.IsExported() && !hasText(s.Doc) && !hasText(s.Comment) && !hasText(d.Doc) {
							report(n.Pos(), n.Name)
						}
					}
				}
			}
		}
	}
	return out
}

// members lists the exported fields of struct type s and the methods of
// interface type s that have no comment. Embedded fields are documented
// by their type. A field without a comment of its own is documented by
// the comment of the field right above it (no blank line between) when
// that comment names it, as in "Width and Height are the image's size":
// go doc shows them together.
func members(fset *token.FileSet, pkg string, s *ast.TypeSpec) []string {
	var list *ast.FieldList
	switch tt := s.Type.(type) {
	case *ast.StructType:
		list = tt.Fields
	case *ast.InterfaceType:
		list = tt.Methods
	default:
		return nil
	}
	var out []string
	lastDoc, lastLine := "", -1
	for _, fld := range list.List {
		line := fset.Position(fld.Pos()).Line
		if hasText(fld.Doc) || hasText(fld.Comment) {
			lastDoc, lastLine = fld.Doc.Text()+fld.Comment.Text(), fset.Position(fld.End()).Line
			continue
		}
		above := lastLine >= 0 && line == lastLine+1
		for _, n := range fld.Names {
			if n.IsExported() && !(above && namesWord(lastDoc, n.Name)) {
				p := fset.Position(n.Pos())
				out = append(out, fmt.Sprintf("%s:%d: %s.%s.%s", p.Filename, p.Line, pkg, s.Name.Name, n.Name))
			}
		}
		if !above {
			lastDoc = ""
		}
		lastLine = fset.Position(fld.End()).Line
	}
	return out
}

// namesWord reports whether text has word as a whole word.
func namesWord(text, word string) bool {
	for _, w := range strings.FieldsFunc(text, func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '_'
	}) {
		if w == word {
			return true
		}
	}
	return false
}

// recvType is the name of a method's receiver type, without pointer or
// type parameters.
func recvType(recv *ast.FieldList) string {
	if recv == nil || len(recv.List) == 0 {
		return ""
	}
	e := recv.List[0].Type
	for {
		switch x := e.(type) {
		case *ast.StarExpr:
			e = x.X
		case *ast.IndexExpr:
			e = x.X
		case *ast.IndexListExpr:
			e = x.X
		case *ast.Ident:
			return x.Name
		default:
			return ""
		}
	}
}

func hasText(g *ast.CommentGroup) bool { return g != nil && strings.TrimSpace(g.Text()) != "" }
