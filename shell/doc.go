// Package shell is the REPL engine behind dsh: a yaegi interpreter with the
// platform's packages preloaded (apps, deploy, endpoint, events, logs,
// leases, images, tenants, tokens, dsh, client, and context, errors, fmt, os,
// strings, time),
// the line accumulator that decides when an input is complete, completion,
// and printing (lists as tables, one line per object, errors as the API's
// message). The dsh-facing packages live in shell/lib; their symbol tables
// in shell/symbols are generated from them (go generate ./shell/...).
//
// # The Go dsh speaks
//
// yaegi v0.16 interprets Go at about the 1.22 level, minus: range over an int
// or a function, the min, max and clear builtins, and the 1.22 loop variable
// (each iteration shares one variable, as before Go 1.22: copy it, v := v,
// before capturing it in a closure or goroutine). Generics are weak; the
// preloaded API has none. The standard library is the Go 1.22 one.
//
// # What the shell adds
//
//   - A call prints all its results; an error result, when not nil, prints as
//     "error: <the API's message> (<code>)" (yaegi alone keeps only the first
//     value of a call).
//   - A panic (a runtime error, dsh.Check) is reported and the shell goes on.
//     In a goroutine started with `go func() {...}()` it is recovered too (the
//     shell inserts a deferred recover); in other goroutines interpreted code
//     runs (an http.Handler, a callback called by a library), a panic ends
//     the process, as in Go.
//   - Interrupt (Ctrl-C) cancels the running evaluation: the context every
//     preloaded function calls the platform with, and interpreted loops.
//   - Importing a preloaded package again is allowed; scripts may leave those
//     imports out.
//
// It is not a sandbox: interpreted code runs with the operator's rights (os,
// os/exec, net/http are there). dsh runs on the operator's machine, never
// inside the platform.
package shell
