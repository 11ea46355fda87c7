// Package dsh is the session every dsh package works in: the platform client,
// the current tenant and the context of the call being run (Ctrl-C cancels
// it), plus printing. The shell sets it up when it starts; scripts read it
// (dsh.Tenant(), dsh.Client()) and use dsh.Check to stop on an error.
//
// The session is process-wide: one shell per process.
package dsh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/discovery-platform/discovery/client"
)

var (
	mu     sync.RWMutex
	cli    *client.Client
	tenant           = "default"
	out    io.Writer = os.Stdout
	errOut io.Writer = os.Stderr
	// call is the context of the evaluation being run; nil between
	// evaluations, when Context answers with a background context.
	call context.Context
)

// ErrNoSession is returned by every dsh package when no shell set up the
// session, e.g. when a script is run with `go run` instead of `dsh run`.
var ErrNoSession = errors.New("dsh: no platform session: run this with dsh (dsh run script.go)")

// Use sets the client and tenant every dsh package calls with (the shell
// calls it when it starts).
func Use(c *client.Client, tenantName string) {
	mu.Lock()
	defer mu.Unlock()
	cli = c
	if tenantName != "" {
		tenant = tenantName
	}
}

// SetOutput sets where Print and the dsh packages write (the shell's
// output and error streams).
func SetOutput(stdout, stderr io.Writer) {
	mu.Lock()
	defer mu.Unlock()
	out, errOut = stdout, stderr
}

// Output and ErrOutput are where printing goes.
func Output() io.Writer {
	mu.RLock()
	defer mu.RUnlock()
	return out
}

// ErrOutput is where errors and warnings go.
func ErrOutput() io.Writer {
	mu.RLock()
	defer mu.RUnlock()
	return errOut
}

// WithContext makes ctx the context of every call until the returned func is
// called (the shell wraps each evaluation, so Ctrl-C cancels the call in
// flight, including those of goroutines the evaluation started).
func WithContext(ctx context.Context) (restore func()) {
	mu.Lock()
	call = ctx
	mu.Unlock()
	return func() {
		mu.Lock()
		call = nil
		mu.Unlock()
	}
}

// Context is the context of the running evaluation, to pass to client
// methods: dsh.Client().ListApps(dsh.Context(), dsh.Tenant()).
func Context() context.Context {
	mu.RLock()
	defer mu.RUnlock()
	if call != nil {
		return call
	}
	return context.Background()
}

// Client is the platform client (nil without a session).
func Client() *client.Client {
	mu.RLock()
	defer mu.RUnlock()
	return cli
}

// Connected returns the client, or ErrNoSession.
func Connected() (*client.Client, error) {
	if c := Client(); c != nil {
		return c, nil
	}
	return nil, ErrNoSession
}

// Tenant is the tenant apps, deploy, events and logs work in.
func Tenant() string {
	mu.RLock()
	defer mu.RUnlock()
	return tenant
}

// SetTenant switches the session to another tenant (tenants.Use checks that
// it exists first).
func SetTenant(name string) {
	mu.Lock()
	defer mu.Unlock()
	tenant = name
}

// WhoAmI says who the session's token belongs to, and its role in the
// session's tenant.
func WhoAmI() (client.Identity, error) {
	c, err := Connected()
	if err != nil {
		return client.Identity{}, err
	}
	return c.WhoAmI(Context(), Tenant())
}

// URL is the platform's API URL.
func URL() string {
	if c := Client(); c != nil {
		return c.URL()
	}
	return ""
}

// Stop is the panic value of Check: the shell prints its error and goes on
// (a script stops with exit status 1).
type Stop struct{ Err error }

func (s Stop) Error() string { return s.Err.Error() }

func (s Stop) Unwrap() error { return s.Err }

// Check stops the running expression or script when err is not nil, printing
// the error as the shell prints any error. It keeps scripts short:
//
//	rev, err := deploy.Rollout("hello", "./bin/hello")
//	dsh.Check(err)
func Check(err error) {
	if err != nil {
		panic(Stop{err})
	}
}

// Recovered reports a panic r that ended a goroutine started by interpreted
// code (the shell inserts `defer func() { dsh.Recovered(recover()) }()` at
// the top of each `go func() {...}()`, so the panic does not end dsh).
func Recovered(r any) {
	if r == nil {
		return
	}
	if s, ok := r.(Stop); ok {
		fmt.Fprintln(ErrOutput(), FormatError(s.Err))
		return
	}
	fmt.Fprintf(ErrOutput(), "panic in goroutine (recovered by dsh): %v\n", r)
}
