// Package endpoint is dsh's get-endpoint: where a player of an app would be
// sent now, as a game client asks for it.
package endpoint

import (
	"github.com/discovery-platform/discovery/client"
	"github.com/discovery-platform/discovery/shell/lib/dsh"
)

// Get asks get-endpoint for app in tenant ("" for the session's tenant). It
// reserves a place on the chosen replica for ExpiresIn seconds, as a real
// client's call does.
func Get(tenant, app string) (client.Endpoint, error) {
	c, err := dsh.Connected()
	if err != nil {
		return client.Endpoint{}, err
	}
	if tenant == "" {
		tenant = dsh.Tenant()
	}
	return c.GetEndpoint(dsh.Context(), tenant, app)
}
