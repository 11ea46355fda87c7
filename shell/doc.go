// Package shell will hold the REPL engine behind dsh: the yaegi interpreter with
// the platform's client packages preloaded, completion and printing.
package shell
