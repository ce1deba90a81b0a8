package fault_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// cliWords are how a command line takes settings: a flag (--pgdata), or an
// environment variable walship's CLI reads (WALSHIP_REPO, PGDATA) or passes
// to libpq as its --pg* flags do.
var cliWords = regexp.MustCompile(`(^|[^\w-])--[a-z][a-z0-9-]*|\b(WALSHIP_[A-Z0-9_]+|PGDATA|PGHOST|PGPORT|PGUSER)\b`)

// envFuncs read the environment: the names they are given are no message.
// Every other call's string arguments may be, or may become, one: errors,
// formatted text, log lines, and hints handed to a helper that words them.
var envFuncs = map[string]bool{"os.Getenv": true, "os.LookupEnv": true}

// libraryRoots are the folders that are not a program, a test harness or a
// benchmark: everything but cmd/, e2e/ and bench/.
func libraryDirs(t *testing.T, root string) []string {
	t.Helper()
	skip := map[string]bool{"cmd": true, "e2e": true, "bench": true, "hack": true, "scripts": true, "config": true, "testdata": true}
	var dirs []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != root && (skip[d.Name()] || strings.HasPrefix(d.Name(), ".")) {
			return filepath.SkipDir
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dirs
}

// TestLibraryMessagesNameNoCLIFlags walks the library packages and fails on
// every message (error, formatted text, log line) that tells the reader
// which flag or environment variable to set: only cmd/ knows how a setting
// is given, and the same packages run in the operator and the instance
// manager, which have neither.
func TestLibraryMessagesNameNoCLIFlags(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("no go.mod at %s: %v", root, err)
	}
	var bad []string
	seen := map[string]bool{}
	files := 0
	for _, dir := range libraryDirs(t, root) {
		fset := token.NewFileSet()
		pkgs, err := parser.ParseDir(fset, dir, func(fi fs.FileInfo) bool {
			return !strings.HasSuffix(fi.Name(), "_test.go")
		}, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, pkg := range pkgs {
			consts := stringDecls(pkg)
			for _, f := range pkg.Files {
				files++
				ast.Inspect(f, func(n ast.Node) bool {
					call, ok := n.(*ast.CallExpr)
					if !ok || envFuncs[callee(call.Fun)] {
						return true
					}
					for _, arg := range call.Args {
						for _, s := range texts(arg, consts) {
							if cliWords.MatchString(s) {
								rel, _ := filepath.Rel(root, fset.Position(call.Pos()).Filename)
								if at := rel + ":" + strconv.Itoa(fset.Position(call.Pos()).Line) + ": " + s; !seen[at] {
									seen[at] = true
									bad = append(bad, at)
								}
							}
						}
					}
					return true
				})
			}
		}
	}
	if files < 50 {
		t.Fatalf("read only %d library files under %s: the walk missed them", files, root)
	}
	for _, b := range bad {
		t.Errorf("names a CLI flag or variable: %s", b)
	}
	if len(bad) > 0 {
		t.Errorf("%d library messages name CLI flags or variables: say it in the domain's words (a fault.Setting), and let cmd/ add the flag", len(bad))
	}
}

// callee is "pkg.Func" for a package-qualified call, the method name for
// another selector, the name for a plain call.
func callee(fun ast.Expr) string {
	switch f := fun.(type) {
	case *ast.Ident:
		return f.Name
	case *ast.SelectorExpr:
		if x, ok := f.X.(*ast.Ident); ok && (x.Name == "errors" || x.Name == "fmt" || x.Name == "fault" || x.Name == "os") {
			return x.Name + "." + f.Sel.Name
		}
		return f.Sel.Name
	}
	return ""
}

// stringDecls are the package's string constants, by name: messages kept
// in one place and used by name. (A variable's value is a call, checked
// where it is declared.)
func stringDecls(pkg *ast.Package) map[string][]string {
	out := map[string][]string{}
	for _, f := range pkg.Files {
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if i < len(vs.Values) {
						out[name.Name] = texts(vs.Values[i], nil)
					}
				}
			}
		}
	}
	return out
}

// texts are the string literals in e, and the values of the package's
// string constants e names.
func texts(e ast.Expr, consts map[string][]string) []string {
	var out []string
	ast.Inspect(e, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.BasicLit:
			if n.Kind == token.STRING {
				if s, err := strconv.Unquote(n.Value); err == nil {
					out = append(out, s)
				}
			}
		case *ast.Ident:
			out = append(out, consts[n.Name]...)
		case *ast.CallExpr:
			return !envFuncs[callee(n.Fun)]
		}
		return true
	})
	return out
}
