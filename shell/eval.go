package shell

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/scanner"
	"go/token"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"github.com/traefik/yaegi/interp"

	"github.com/discovery-platform/discovery/shell/lib/dsh"
)

// Eval evaluates one complete input (see Incomplete): statements,
// declarations, imports or an expression. An expression's value is printed;
// a call's values are all printed (yaegi alone keeps only the first), its
// error, when not nil, as "error: <message> (<code>)". Anything that goes
// wrong (syntax, types, a panic, the platform) is printed and returned,
// wrapped so that errors.Is(err, ErrReported) holds; the shell stays usable.
func (s *Shell) Eval(ctx context.Context, src string) error {
	src = strings.TrimSpace(src)
	if src == "" {
		return nil
	}
	if specs, ok := importsOnly(src); ok {
		return s.importNew(ctx, specs)
	}
	src, _ = guardGoroutines(src)
	src = asStatements(src)
	ctx, done := s.begin(ctx)
	defer done()

	expr, isExpr := parseExpr(src)
	if isExpr {
		fun, quiet, ok := callee(src, expr)
		// Just the expression: a trailing comment would swallow what the
		// shell wraps around it.
		src = src[expr.Pos()-1 : expr.End()-1]
		if ok {
			fv, err := s.in.EvalWithContext(ctx, fun)
			if err == nil && fv.IsValid() && fv.Kind() == reflect.Func {
				return s.call(ctx, src, fv.Type(), quiet)
			}
		}
	}
	v, err := s.in.EvalWithContext(ctx, src)
	if err != nil {
		return s.fail(err, shift(src))
	}
	if isExpr {
		s.show(v)
	}
	return nil
}

// call evaluates a call and prints every value it returns.
func (s *Shell) call(ctx context.Context, src string, ft reflect.Type, quiet bool) error {
	if ft.NumOut() == 0 {
		if _, err := s.in.EvalWithContext(ctx, src); err != nil {
			return s.fail(err, shift(src))
		}
		return nil
	}
	wrapped := resultsName + "(" + src + ")"
	v, err := s.in.EvalWithContext(ctx, wrapped)
	if err != nil {
		return s.fail(err, shift(wrapped)+len(resultsName)+1)
	}
	vals, _ := v.Interface().([]interface{})
	n := len(vals)
	if n > 0 && ft.Out(ft.NumOut()-1) == errorType {
		n--
		if e, _ := vals[n].(error); e != nil {
			return s.report(e)
		}
	}
	if quiet {
		return nil
	}
	for _, x := range vals[:n] {
		s.print(x)
	}
	return nil
}

var errorType = reflect.TypeOf((*error)(nil)).Elem()

// show prints the value of an expression.
func (s *Shell) show(v reflect.Value) {
	if !v.IsValid() || !v.CanInterface() {
		return
	}
	if v.Kind() == reflect.Func {
		fmt.Fprintln(s.out, v.Type())
		return
	}
	s.print(v.Interface())
}

func (s *Shell) print(x any) {
	if x == nil {
		fmt.Fprintln(s.out, "<nil>")
		return
	}
	if e, ok := x.(error); ok {
		fmt.Fprintln(s.out, dsh.FormatError(e))
		return
	}
	if text := dsh.Sprint(x); text != "" {
		fmt.Fprintln(s.out, text)
	}
}

// parseExpr reports whether src is a single expression.
func parseExpr(src string) (ast.Expr, bool) {
	e, err := parser.ParseExpr(src)
	return e, err == nil
}

// callee returns the function a call expression calls, when naming it has no
// side effect (f, pkg.F, x.Method), so it can be evaluated alone to learn how
// many values the call returns. quiet is set for printing functions (fmt,
// log), whose byte counts nobody wants to see.
func callee(src string, e ast.Expr) (fun string, quiet, ok bool) {
	c, isCall := e.(*ast.CallExpr)
	if !isCall {
		return "", false, false
	}
	root := c.Fun
	for {
		sel, isSel := root.(*ast.SelectorExpr)
		if !isSel {
			break
		}
		root = sel.X
	}
	id, isIdent := root.(*ast.Ident)
	if !isIdent {
		return "", false, false
	}
	// ParseExpr positions start at 1.
	fun = src[c.Fun.Pos()-1 : c.Fun.End()-1]
	quiet = (id.Name == "fmt" || id.Name == "log") && fun != id.Name
	return fun, quiet, true
}

// asStatements makes yaegi read `var x T; x.F = 1` as statements: it takes
// input that starts with var, const or type for declarations only, and
// refuses the statements that follow. A leading ";" makes it a statement
// list (still evaluated in the REPL's global scope).
func asStatements(src string) string {
	switch firstToken(src) {
	case token.VAR, token.CONST, token.TYPE:
	default:
		return src
	}
	fset := token.NewFileSet()
	if _, err := parser.ParseFile(fset, "", "package p;"+src, 0); err == nil {
		return src
	}
	if _, err := parser.ParseFile(fset, "", "package p; func _() {"+src+"\n}", 0); err != nil {
		return src
	}
	return ";" + src
}

func firstToken(src string) token.Token {
	var s scanner.Scanner
	fset := token.NewFileSet()
	s.Init(fset.AddFile("", fset.Base(), len(src)), []byte(src), nil, 0)
	_, tok, _ := s.Scan()
	return tok
}

// shift is how many columns yaegi's wrapping adds to the first line of src:
// statements go into "package main; func main() {", declarations after
// "package main;".
func shift(src string) int {
	switch firstToken(src) {
	case token.PACKAGE:
		return 0
	case token.CONST, token.FUNC, token.IMPORT, token.TYPE, token.VAR:
		return len("package main;")
	case token.SEMICOLON:
		if strings.HasPrefix(src, ";") {
			return len("package main; func main() {;") // see asStatements
		}
	}
	return len("package main; func main() {")
}

// fail prints err as the shell shows errors and returns it reported.
func (s *Shell) fail(err error, shift int) error {
	var list scanner.ErrorList
	var p interp.Panic
	switch {
	case errors.As(err, &list) && len(list) > 0:
		msg := "syntax error: " + fixPos(list[0].Error(), shift)
		if len(list) > 1 {
			msg += fmt.Sprintf(" (and %d more)", len(list)-1)
		}
		fmt.Fprintln(s.errOut, msg)
		return reported{err}
	case errors.As(err, &p):
		if stop, ok := p.Value.(dsh.Stop); ok {
			return s.report(stop.Err)
		}
		if e, ok := p.Value.(error); ok && errors.Is(e, context.Canceled) {
			return s.report(e)
		}
		fmt.Fprintf(s.errOut, "panic: %v\n", p.Value)
		return reported{err}
	case errors.Is(err, context.Canceled):
		return s.report(err)
	}
	fmt.Fprintln(s.errOut, "error: "+fixPos(err.Error(), shift))
	return reported{err}
}

var posPrefix = regexp.MustCompile(`^(?:(\S*\.go):)?(\d+):(\d+): `)

// fixPos takes yaegi's wrapping out of a leading "L:C: " (REPL input is
// parsed as one file: "_.go"), so that positions are those of what was
// typed; a script's file name is kept.
func fixPos(msg string, shift int) string {
	m := posPrefix.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	line, _ := strconv.Atoi(m[2])
	col, _ := strconv.Atoi(m[3])
	if line == 1 {
		col = max(col-shift, 1)
	}
	file := ""
	if m[1] != "" && m[1] != interp.DefaultSourceName {
		file = m[1] + ":"
	}
	return fmt.Sprintf("%s%d:%d: %s", file, line, col, msg[len(m[0]):])
}

// importNew evaluates the imports the REPL does not have yet (importing a
// preloaded package again is not an error).
func (s *Shell) importNew(ctx context.Context, specs [][2]string) error {
	var keep []string
	added := map[string]string{}
	for _, sp := range specs {
		name, path := sp[0], sp[1]
		if name == "" {
			name = path[strings.LastIndex(path, "/")+1:]
		}
		if s.imported[name] == path {
			continue
		}
		added[name] = path
		keep = append(keep, fmt.Sprintf("%s %q", name, path))
	}
	if len(keep) == 0 {
		return nil
	}
	src := "import (" + strings.Join(keep, "; ") + ")"
	ctx, done := s.begin(ctx)
	defer done()
	if _, err := s.in.EvalWithContext(ctx, src); err != nil {
		return s.fail(err, shift(src))
	}
	for n, p := range added {
		s.imported[n] = p
	}
	return nil
}
