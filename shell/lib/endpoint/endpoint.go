// Package endpoint is dsh's get-endpoint: where a player of an app would be
// sent now, as a game client asks for it.
package endpoint

import (
	"github.com/discovery-platform/discovery/client"
	"github.com/discovery-platform/discovery/shell/lib/dsh"
)

// Get asks get-endpoint for app in tenant ("" for the session's tenant). It
// reserves a place on the chosen replica for ExpiresIn seconds, as a real
// client's call does (deploy.Sessions counts it as a reservation until a
// socket uses it or it expires). A game client dials its Socket.
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

// ForTicket asks get-endpoint with a handoff's ticket: the replica the
// player was handed off to, its Socket carrying the ticket. A ticket used,
// expired or unknown is an error (gone).
func ForTicket(tenant, app, ticket string) (client.Endpoint, error) {
	c, err := dsh.Connected()
	if err != nil {
		return client.Endpoint{}, err
	}
	if tenant == "" {
		tenant = dsh.Tenant()
	}
	return c.GetEndpointForTicket(dsh.Context(), tenant, app, ticket)
}
