// Package pki makes the short-lived certificate authority of a local group:
// a CA generated at start, one certificate per rank, written as files of
// mode 0600 in a private (0700) temporary directory that Close removes. The
// CA's private key never touches the disk.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// CA is an ephemeral certificate authority.
type CA struct {
	// Dir is the private directory holding the PEM files.
	Dir string
	// CertFile is the CA certificate's PEM file.
	CertFile string

	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// RankName is the TLS name of rank r in a local group.
func RankName(r int) string { return fmt.Sprintf("rank-%d.ringo.local", r) }

// New creates a CA named after group, valid for validity (a day when zero).
func New(group string, validity time.Duration) (*CA, error) {
	if validity <= 0 {
		validity = 24 * time.Hour
	}
	dir, err := os.MkdirTemp("", "ringo-ca-")
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pki: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pki: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "ringo CA for " + group},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pki: %w", err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &CA{Dir: dir, CertFile: filepath.Join(dir, "ca.pem"), cert: cert, key: key}
	if err := writePEM(ca.CertFile, "CERTIFICATE", der); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return ca, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

func writePEM(path, typ string, der []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	err = pem.Encode(f, &pem.Block{Type: typ, Bytes: der})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pki: writing %s: %w", path, err)
	}
	return nil
}

// Issue makes a certificate for name, usable by both ends of a connection,
// and writes it and its key to name.pem and name.key in Dir.
func (ca *CA) Issue(name string) (certFile, keyFile string, err error) {
	der, key, err := ca.issue(name)
	if err != nil {
		return "", "", err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", fmt.Errorf("pki: %w", err)
	}
	certFile = filepath.Join(ca.Dir, name+".pem")
	keyFile = filepath.Join(ca.Dir, name+".key")
	if err := writePEM(certFile, "CERTIFICATE", der); err != nil {
		return "", "", err
	}
	if err := writePEM(keyFile, "EC PRIVATE KEY", kder); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

// Certificate makes a certificate for name, held in memory only (no files;
// a name may be issued any number of times: tests of impostors).
func (ca *CA) Certificate(name string) (tls.Certificate, error) {
	der, key, err := ca.issue(name)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

func (ca *CA) issue(name string) ([]byte, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     ca.cert.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: %w", err)
	}
	return der, key, nil
}

// TLSConfig issues a certificate for name and returns the configuration a
// rank uses: its certificate and the CA as root.
func (ca *CA) TLSConfig(name string) (*tls.Config, error) {
	certFile, keyFile, err := ca.Issue(name)
	if err != nil {
		return nil, err
	}
	return LoadTLS(certFile, keyFile, ca.CertFile)
}

// LoadTLS reads a rank's certificate, key and CA from PEM files.
func LoadTLS(certFile, keyFile, caFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("pki: loading %s: %w", certFile, err)
	}
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, errors.New("pki: no certificate in " + caFile)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS13}, nil
}

// Close removes the CA's directory and every file in it.
func (ca *CA) Close() error { return os.RemoveAll(ca.Dir) }

// Ephemeral makes a self-signed certificate for name, valid for validity (a
// day when zero), held in memory only. Peers accept it by its fingerprint,
// the SHA-256 of its DER bytes, which the agreed view carries: the cluster
// key that protects the gossip that published the fingerprint is then the
// root of trust.
func Ephemeral(name string, validity time.Duration) (tls.Certificate, [32]byte, error) {
	if validity <= 0 {
		validity = 24 * time.Hour
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, [32]byte{}, fmt.Errorf("pki: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name},
		DNSNames:              []string{name},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, [32]byte{}, fmt.Errorf("pki: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, [32]byte{}, fmt.Errorf("pki: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, sha256.Sum256(der), nil
}
