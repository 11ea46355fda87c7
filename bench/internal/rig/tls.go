package rig

import (
	"crypto/tls"
	"path/filepath"

	"github.com/discovery-platform/discovery/internal/testkit/testca"
)

// WriteTLSCert writes a certificate for 127.0.0.1, from a CA made up for the
// run (valid for an hour), and its key to dir (tls.crt, tls.key), for
// --tls-cert/--tls-key, and returns a client configuration that trusts it.
func WriteTLSCert(dir string) (certFile, keyFile string, client *tls.Config, err error) {
	ca, err := testca.Make()
	if err != nil {
		return "", "", nil, err
	}
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := ca.WriteFiles(certFile, keyFile, "discovery bench", 1); err != nil {
		return "", "", nil, err
	}
	return certFile, keyFile, ca.ClientConfig(), nil
}
