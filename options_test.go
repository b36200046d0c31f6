package discovery_test

import (
	"go/ast"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// pendingRenames are the options that break docs/options.md's rules and
// are still to be renamed, by "package.Name" (none today). The test
// tolerates them, and fails once one of them is gone, so that its entry
// goes too.
var pendingRenames = map[string]string{}

// principalOptions are the option types whose options start with With
// (rule P1); perCallOptions those whose options carry no prefix (P3).
// Every other <Noun>Option type's options start with <Noun> (P2).
var (
	principalOptions = []string{"Option", "ClientOption", "KeyOption"}
	perCallOptions   = []string{"ResolveOption"}
	// nounOf is the prefix of a P2 type whose noun is not its name
	// less "Option".
	nounOf = map[string]string{"ConnectorOption": "Connect"}
)

// TestOptionNames checks every functional option of the module (an
// exported function returning a type named ...Option) against the rules
// of docs/options.md that a machine can check: the prefix by option type
// (P1-P3), the word for each kind of duration (D1-D7), Interval not
// Period, no negative names (B2), rate limits and budgets in rate.Limit
// (L1, L2), loggers and clocks of one type (O1, O2). Whether two
// packages call one setting by one name needs a reader: docs/options.md.
func TestOptionNames(t *testing.T) {
	fset := token.NewFileSet()
	seen := make(map[string]bool)
	var bad []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		if path != "." {
			if n := d.Name(); n == "testdata" || strings.HasPrefix(n, ".") || strings.HasPrefix(n, "_") {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir
			}
		}
		pkgs, err := parseDir(fset, path)
		if err != nil {
			return err
		}
		for pkg, files := range pkgs {
			for _, f := range files {
				for _, decl := range f.Decls {
					fn, ok := decl.(*ast.FuncDecl)
					if !ok || fn.Recv != nil || !fn.Name.IsExported() {
						continue
					}
					typ := optionResult(fn)
					if typ == "" {
						continue
					}
					key := pkg + "." + fn.Name.Name
					seen[key] = true
					if _, pending := pendingRenames[key]; pending {
						continue
					}
					for _, why := range optionRuleBreaks(fn, typ) {
						bad = append(bad, key+" ("+typ+"): "+why)
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(bad)
	for _, b := range bad {
		t.Error(b)
	}
	for key := range pendingRenames {
		if !seen[key] {
			t.Errorf("pendingRenames lists %s, which is no option of the module any more: delete the entry (and its row in docs/options.md)", key)
		}
	}
}

// optionResult is the name of the option type fn returns, or "" when fn
// is not an option constructor.
func optionResult(fn *ast.FuncDecl) string {
	res := fn.Type.Results
	if res == nil || len(res.List) != 1 || len(res.List[0].Names) > 1 {
		return ""
	}
	id, ok := res.List[0].Type.(*ast.Ident)
	if !ok || !strings.HasSuffix(id.Name, "Option") {
		return ""
	}
	return id.Name
}

// optionRuleBreaks says which of docs/options.md's rules the option fn, of
// type typ, breaks.
func optionRuleBreaks(fn *ast.FuncDecl, typ string) []string {
	name := fn.Name.Name
	var out []string
	switch {
	case slices.Contains(principalOptions, typ):
		if !startsWord(name, "With") {
			out = append(out, "P1: a principal option starts with With")
		}
	case slices.Contains(perCallOptions, typ):
		if startsWord(name, "With") {
			out = append(out, "P3: a per-call option has no With")
		}
	default:
		noun, ok := nounOf[typ]
		if !ok {
			noun = strings.TrimSuffix(typ, "Option")
		}
		if !startsWord(name, noun) {
			out = append(out, "P2: a "+typ+" starts with "+noun)
		}
	}
	for _, neg := range []string{"Without", "No", "Disable"} {
		if strings.Contains(name, neg) && startsWordAnywhere(name, neg) {
			out = append(out, "B2: no negative names ("+neg+"); take a bool")
		}
	}
	if strings.Contains(name, "Period") || strings.HasSuffix(name, "Every") {
		out = append(out, "D2: a period is an Interval")
	}
	if words := camelWords(name); (slices.Contains(words, "Limit") || slices.Contains(words, "Limits")) && !strings.Contains(name, "RateLimit") {
		out = append(out, "L1/L2: a token bucket is a RateLimit (others refused) or a Budget (we wait)")
	}
	params := paramTypes(fn)
	if (strings.HasSuffix(name, "RateLimit") || strings.HasSuffix(name, "Budget")) && !slices.Contains(params, "rate.Limit") {
		out = append(out, "L1/L2: rates are rate.Limit")
	}
	if strings.HasSuffix(name, "Clock") && !slices.Equal(params, []string{"clockwork.Clock"}) {
		out = append(out, "O2: a clock is a clockwork.Clock")
	}
	if strings.HasSuffix(name, "Logger") && !slices.Equal(params, []string{"*slog.Logger"}) {
		out = append(out, "O1: a logger is a *slog.Logger")
	}
	if slices.Equal(params, []string{"time.Duration"}) {
		ok := false
		for _, w := range []string{"Timeout", "Interval", "Delay", "Wait", "TTL", "Grace", "Linger", "StaleAfter", "FutureMargin", "ClockSkew"} {
			ok = ok || strings.HasSuffix(name, w)
		}
		if !ok {
			out = append(out, "D1-D6: a duration's name ends in its kind (Timeout, Interval, Delay, Wait, TTL, Grace, Linger, StaleAfter, FutureMargin, ClockSkew)")
		}
	}
	return out
}

// startsWord reports whether name starts with the word w (followed by an
// upper-case letter, a digit or nothing).
func startsWord(name, w string) bool {
	if !strings.HasPrefix(name, w) {
		return false
	}
	rest := name[len(w):]
	return rest == "" || unicode.IsUpper(rune(rest[0])) || unicode.IsDigit(rune(rest[0]))
}

// startsWordAnywhere reports whether w occurs in name as a word of its
// camel case (NoX, WithoutX; not Notify).
func startsWordAnywhere(name, w string) bool {
	for i := strings.Index(name, w); i >= 0; {
		if (i == 0 || unicode.IsLower(rune(name[i-1]))) && startsWord(name[i:], w) {
			return true
		}
		j := strings.Index(name[i+1:], w)
		if j < 0 {
			return false
		}
		i += 1 + j
	}
	return false
}

// camelWords splits a camel-case name into its words (acronyms such as
// TTL or DHT count as one word with the word after them, which no rule
// here looks at).
func camelWords(name string) []string {
	var out []string
	start := 0
	for i := 1; i < len(name); i++ {
		if unicode.IsUpper(rune(name[i])) && unicode.IsLower(rune(name[i-1])) {
			out = append(out, name[start:i])
			start = i
		}
	}
	return append(out, name[start:])
}

// paramTypes is the source text of each parameter's type, one per
// parameter.
func paramTypes(fn *ast.FuncDecl) []string {
	var out []string
	for _, p := range fn.Type.Params.List {
		s := exprString(p.Type)
		n := max(len(p.Names), 1)
		for range n {
			out = append(out, s)
		}
	}
	return out
}

func exprString(e ast.Expr) string {
	switch x := e.(type) {
	case *ast.Ident:
		return x.Name
	case *ast.SelectorExpr:
		return exprString(x.X) + "." + x.Sel.Name
	case *ast.StarExpr:
		return "*" + exprString(x.X)
	case *ast.Ellipsis:
		return "..." + exprString(x.Elt)
	case *ast.ArrayType:
		return "[]" + exprString(x.Elt)
	}
	return "?"
}
