// Package pemutil reads PEM files of certificates: the CA files of the
// server's TLS (client certificates), of trusted issuers and of the OTLP
// exporter.
package pemutil

import (
	"crypto/x509"
	"fmt"
	"os"
)

// LoadCAs reads the PEM file at path into a certificate pool. It fails when
// the file cannot be read or holds no CERTIFICATE block that parses.
func LoadCAs(path string) (*x509.CertPool, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(raw) {
		return nil, fmt.Errorf("%s holds no PEM CERTIFICATE", path)
	}
	return pool, nil
}
