package shell

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/scanner"
	"go/token"
	"sort"
	"strconv"
	"strings"
)

// guardName is the name the shell imports package dsh under for the code it
// inserts, out of the way of the user's names.
const guardName = "__dsh"

// guardGoroutines inserts `defer func() { __dsh.Recovered(recover()) }();` at
// the top of the body of every `go func(...) {...}(...)` in src, so that a
// panic in a goroutine the user started is reported instead of ending dsh (a
// panic nobody recovers ends a Go process, and yaegi runs interpreted
// goroutines as real ones). The insertion stays on the line of the brace, so
// positions in error messages do not move. It reports whether it changed src.
func guardGoroutines(src string) (string, bool) {
	type tk struct {
		tok token.Token
		off int
	}
	fset := token.NewFileSet()
	file := fset.AddFile("", fset.Base(), len(src))
	var s scanner.Scanner
	s.Init(file, []byte(src), nil, 0)
	var toks []tk
	for {
		pos, tok, _ := s.Scan()
		if tok == token.EOF {
			break
		}
		toks = append(toks, tk{tok, file.Offset(pos)})
	}
	var at []int // offsets just after each body's opening brace
	for i := 0; i+2 < len(toks); i++ {
		if toks[i].tok != token.GO || toks[i+1].tok != token.FUNC || toks[i+2].tok != token.LPAREN {
			continue
		}
		// Skip the parameters and any results: the body's brace is the first
		// one outside parentheses.
		depth := 0
		for j := i + 2; j < len(toks); j++ {
			switch toks[j].tok {
			case token.LPAREN:
				depth++
			case token.RPAREN:
				depth--
			case token.LBRACE:
				if depth == 0 {
					at = append(at, toks[j].off+1)
					j = len(toks)
				}
			}
		}
	}
	if len(at) == 0 {
		return src, false
	}
	guard := " defer func() { " + guardName + ".Recovered(recover()) }();"
	var b strings.Builder
	prev := 0
	for _, off := range at {
		b.WriteString(src[prev:off])
		b.WriteString(guard)
		prev = off
	}
	b.WriteString(src[prev:])
	return b.String(), true
}

// addImports prepares a script: it imports each preloaded package the file
// uses without importing it (scripts may leave those imports out, as the
// REPL does) and the guard package when guarded is set. The imports go on
// the package clause's line, so line numbers stay those of the file.
func addImports(filename, src string, guarded bool) (string, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, filename, src, parser.ParseComments)
	if err != nil {
		return "", err
	}
	have := map[string]bool{}
	for _, im := range f.Imports {
		path, _ := strconv.Unquote(im.Path.Value)
		name := path[strings.LastIndex(path, "/")+1:]
		if im.Name != nil {
			name = im.Name.Name
		}
		have[name] = true
	}
	want := map[string]string{}
	for _, id := range f.Unresolved {
		if p, ok := autoImports[id.Name]; ok && !have[id.Name] {
			want[id.Name] = p
		}
	}
	if guarded {
		want[guardName] = platformPath("shell/lib/dsh")
	}
	if len(want) == 0 {
		return src, nil
	}
	var b strings.Builder
	b.WriteString("; import (")
	b.WriteString(importSpecs(want))
	b.WriteString(")")
	end := fset.Position(f.Name.End()).Offset
	return src[:end] + b.String() + src[end:], nil
}

// importsOnly parses REPL input made only of import declarations and returns
// its (name, path) pairs; ok is false for any other input.
func importsOnly(src string) (specs [][2]string, ok bool) {
	f, err := parser.ParseFile(token.NewFileSet(), "", "package p;"+src, 0)
	if err != nil || len(f.Decls) == 0 {
		return nil, false
	}
	for _, d := range f.Decls {
		if g, isGen := d.(*ast.GenDecl); !isGen || g.Tok != token.IMPORT {
			return nil, false
		}
	}
	for _, im := range f.Imports {
		path, _ := strconv.Unquote(im.Path.Value)
		name := ""
		if im.Name != nil {
			name = im.Name.Name
		}
		specs = append(specs, [2]string{name, path})
	}
	return specs, true
}

// importSpecs writes `name "path"; ` for each entry, sorted by name, so the
// generated import block is the same on every run.
func importSpecs(pkgs map[string]string) string {
	names := make([]string, 0, len(pkgs))
	for n := range pkgs {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s %q; ", n, pkgs[n])
	}
	return b.String()
}
