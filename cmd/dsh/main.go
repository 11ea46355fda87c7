// Command dsh is the Discovery shell: an interactive Go REPL with the
// platform's APIs preloaded. It is a placeholder until the dsh issue lands;
// until then use the REST API (see README).
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "dsh: not built yet; use the REST API at http://localhost:4000/api/v1 (see README)")
	os.Exit(2)
}
