// Command hello is a dsh script that declares the hello app and what it runs:
// code as the source of truth. Run it as often as you like; a run that finds
// the platform already as declared changes nothing and says "unchanged".
//
//	make build && ./bin/dsh run examples/dsh/hello.go
//
// HELLO_BIN names the program to run (default: bin/hello, which make build
// makes). Edit GREETING and run it again: it deploys a new revision, and the
// old one drains. The imports are optional under dsh (it preloads these
// packages) but keep the file a Go program the go tool type-checks; run with
// `go run` it stops with "no platform session".
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/discovery-platform/discovery/shell/lib/apps"
	"github.com/discovery-platform/discovery/shell/lib/deploy"
	"github.com/discovery-platform/discovery/shell/lib/dsh"
)

func main() {
	bin := os.Getenv("HELLO_BIN")
	if bin == "" {
		bin, _ = filepath.Abs("bin/hello")
	}

	// The app: two replicas, health-checked over HTTP.
	app, err := apps.Ensure(apps.Spec{Name: "hello", HealthPath: "/healthz", Replicas: 2, ReconnectGrace: 30 * time.Second})
	dsh.Check(err)
	fmt.Println(app)

	// What it runs. Ensure deploys only when this differs from the current
	// revision's command, image or env.
	rev, err := deploy.Ensure("hello", deploy.Spec{
		Command: []string{bin},
		Env:     map[string]string{"GREETING": "v1"},
	})
	dsh.Check(err)
	fmt.Println(rev)

	// Until it serves (at once when unchanged and already active).
	active, err := deploy.Wait("hello", rev.Revision.ID, "active", time.Minute)
	dsh.Check(err)
	fmt.Println(active)
}
