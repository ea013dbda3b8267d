package pki

import (
	"crypto/sha256"
	"crypto/x509"
	"os"
	"testing"
)

func TestCAFiles(t *testing.T) {
	ca, err := New("g", 0)
	if err != nil {
		t.Fatal(err)
	}
	dir := ca.Dir
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %v, %v", st.Mode(), err)
	}
	cert, key, err := ca.Issue(RankName(3))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{ca.CertFile, cert, key} {
		st, err := os.Stat(f)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s mode %v, %v", f, st.Mode(), err)
		}
	}
	tc, err := LoadTLS(cert, key, ca.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(tc.Certificates[0].Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: tc.RootCAs, DNSName: RankName(3), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatal(err)
	}
	if err := ca.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("dir left behind: %v", err)
	}
}

func TestEphemeral(t *testing.T) {
	c, fp, err := Ephemeral("w1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(c.Certificate[0]) != fp {
		t.Fatal("fingerprint does not match the certificate")
	}
	if err := c.Leaf.VerifyHostname("w1"); err != nil {
		t.Fatal(err)
	}
}
