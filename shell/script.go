package shell

import (
	"context"
	"errors"
	"go/scanner"
	"path/filepath"
	"testing/fstest"
)

// Run runs a script: a Go file of package main whose main function is
// called, as `dsh run script.go` does. The preloaded packages may be used
// without importing them (they are imported for the script), or imported by
// their path so that the file also type-checks with the go tool. A
// goroutine's panic is reported, not fatal. The returned error has been
// printed (errors.Is(err, ErrReported)).
func Run(ctx context.Context, opts Options, filename string, src []byte) error {
	name := filepath.Base(filename)
	code, guarded := guardGoroutines(string(src))
	code, perr := addImports(name, code, guarded)
	// The interpreter reads the prepared source from memory, under the
	// script's own name, so that errors point into the file as written.
	files := fstest.MapFS{name: &fstest.MapFile{Data: []byte(code), Mode: 0o644}}
	s, err := newShell(opts, files)
	if err != nil {
		return err
	}
	if perr != nil {
		var list scanner.ErrorList
		if errors.As(perr, &list) {
			return s.fail(list, 0)
		}
		return s.report(perr)
	}
	ctx, done := s.begin(ctx)
	defer done()
	if _, err := s.in.EvalPathWithContext(ctx, name); err != nil {
		return s.fail(err, 0)
	}
	return nil
}
