//go:build ignore

// gen_openapi writes openapi.json from the route table: `go generate ./api/`
// runs it (see the go:generate line in server.go).
package main

import (
	"fmt"
	"os"

	"github.com/discovery-platform/discovery/api/internal/openapigen"
)

func main() {
	doc, err := openapigen.Generate()
	if err != nil {
		fmt.Fprintln(os.Stderr, "openapigen:", err)
		os.Exit(1)
	}
	if err := os.WriteFile("openapi.json", doc, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "openapigen:", err)
		os.Exit(1)
	}
}
