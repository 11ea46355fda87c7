package shell

import (
	"go/scanner"
	"go/token"
	"strings"
)

// Incomplete reports whether src needs more lines before it can be
// evaluated: a bracket, brace or parenthesis is still open, a raw string or
// block comment is not closed, or the last token is an operator, a comma or a
// dot that something must follow. Brackets are counted outside strings and
// comments (the Go scanner finds those), so `fmt.Println("{")` is complete.
// An extra closing bracket is complete: the evaluator reports the error.
func Incomplete(src string) bool {
	if strings.TrimSpace(src) == "" {
		return false
	}
	fset := token.NewFileSet()
	file := fset.AddFile("", fset.Base(), len(src))
	open := false
	var s scanner.Scanner
	s.Init(file, []byte(src), func(_ token.Position, msg string) {
		// An unterminated raw string or block comment runs to the end of the
		// input; an unterminated "string" cannot span lines, so it is an error.
		if strings.Contains(msg, "raw string literal not terminated") || strings.Contains(msg, "comment not terminated") {
			open = true
		}
	}, scanner.ScanComments)
	depth := 0
	last := token.ILLEGAL
	for {
		_, tok, lit := s.Scan()
		if tok == token.EOF {
			break
		}
		switch {
		case tok == token.COMMENT:
			continue
		case tok == token.SEMICOLON && lit == "\n":
			continue // inserted at a line end, not typed
		case tok == token.LPAREN || tok == token.LBRACK || tok == token.LBRACE:
			depth++
		case tok == token.RPAREN || tok == token.RBRACK || tok == token.RBRACE:
			depth--
		}
		last = tok
	}
	if open || depth > 0 {
		return true
	}
	return continues(last)
}

// continues reports whether a line ending in tok cannot end a statement.
func continues(tok token.Token) bool {
	switch tok {
	case token.COMMA, token.PERIOD, token.COLON,
		token.ADD, token.SUB, token.MUL, token.QUO, token.REM,
		token.AND, token.OR, token.XOR, token.SHL, token.SHR, token.AND_NOT,
		token.LAND, token.LOR, token.ARROW, token.NOT,
		token.EQL, token.NEQ, token.LSS, token.LEQ, token.GTR, token.GEQ,
		token.ASSIGN, token.DEFINE,
		token.ADD_ASSIGN, token.SUB_ASSIGN, token.MUL_ASSIGN, token.QUO_ASSIGN, token.REM_ASSIGN,
		token.AND_ASSIGN, token.OR_ASSIGN, token.XOR_ASSIGN, token.SHL_ASSIGN, token.SHR_ASSIGN, token.AND_NOT_ASSIGN:
		return true
	}
	return false
}
