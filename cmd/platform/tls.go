package main

import (
	"crypto/tls"
	"net"
)

// secure wraps a listener in TLS when --tls-cert is set. The listener is a
// plain TCP socket, perhaps inherited from the previous process on an
// upgrade (tableflip hands over file descriptors, not TLS state), so every
// process wraps its sockets itself with the certificate it loaded.
func (m *Main) secure(ln net.Listener) net.Listener {
	if m.certs == nil {
		return ln
	}
	return tls.NewListener(ln, m.certs.ServerConfig())
}

// scheme is the scheme of the URLs this instance hands out by default.
func (m *Main) scheme() string {
	if m.certs != nil {
		return "https"
	}
	return "http"
}
