// Package testca is a certificate authority made up inside a test (or a
// bench program): a self-signed root and leaf certificates for 127.0.0.1, so
// TLS is tested with real handshakes and verification, without files from
// outside the run. Everything it makes is valid for an hour.
package testca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"testing"
	"time"
)

// CA is a root certificate and its key.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

// New makes a root valid for an hour.
func New(t testing.TB) *CA {
	t.Helper()
	ca, err := Make()
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// Make is New for code outside a test.
func Make() (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "discovery test CA"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{cert: cert, key: key, pool: pool}, nil
}

// Pool trusts this CA only.
func (ca *CA) Pool() *x509.CertPool { return ca.pool }

// ClientConfig is a client TLS configuration that trusts this CA only.
func (ca *CA) ClientConfig() *tls.Config {
	return &tls.Config{RootCAs: ca.pool, MinVersion: tls.VersionTLS12}
}

// Issue signs a server certificate for 127.0.0.1 and localhost with the given
// common name and serial, and returns it and its key as PEM.
func (ca *CA) Issue(t testing.TB, cn string, serial int64) (certPEM, keyPEM []byte) {
	t.Helper()
	certPEM, keyPEM, err := ca.IssuePEM(cn, serial)
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM
}

// IssuePEM is Issue for code outside a test.
func (ca *CA) IssuePEM(cn string, serial int64) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), nil
}

// Write issues a certificate and writes it to certFile and keyFile the way a
// renewal tool does: each file replaced whole by a rename, so a reader never
// sees half a file.
func (ca *CA) Write(t testing.TB, certFile, keyFile, cn string, serial int64) {
	t.Helper()
	if err := ca.WriteFiles(certFile, keyFile, cn, serial); err != nil {
		t.Fatal(err)
	}
}

// WriteFiles is Write for code outside a test.
func (ca *CA) WriteFiles(certFile, keyFile, cn string, serial int64) error {
	c, k, err := ca.IssuePEM(cn, serial)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		path string
		b    []byte
	}{{keyFile, k}, {certFile, c}} {
		tmp := f.path + ".tmp"
		if err := os.WriteFile(tmp, f.b, 0o600); err != nil {
			return err
		}
		if err := os.Rename(tmp, f.path); err != nil {
			return err
		}
	}
	return nil
}
