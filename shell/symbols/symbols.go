// Package symbols holds the yaegi symbol tables of the packages dsh preloads:
// the REST client and the dsh-facing packages under shell/lib. They are
// generated from the packages themselves (`go generate ./shell/...`), so they
// cannot drift from them; never edit the generated files by hand.
package symbols

import "reflect"

//go:generate go run github.com/traefik/yaegi/cmd/yaegi extract github.com/discovery-platform/discovery/client github.com/discovery-platform/discovery/shell/lib/dsh github.com/discovery-platform/discovery/shell/lib/apps github.com/discovery-platform/discovery/shell/lib/deploy github.com/discovery-platform/discovery/shell/lib/endpoint github.com/discovery-platform/discovery/shell/lib/tenants github.com/discovery-platform/discovery/shell/lib/tokens github.com/discovery-platform/discovery/shell/lib/events github.com/discovery-platform/discovery/shell/lib/logs github.com/discovery-platform/discovery/shell/lib/images github.com/discovery-platform/discovery/shell/lib/leases

// Symbols maps "<import path>/<package name>" to the package's exported
// symbols, as interp.Interpreter.Use wants them.
var Symbols = map[string]map[string]reflect.Value{}
