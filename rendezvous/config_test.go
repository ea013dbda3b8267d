package rendezvous

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeyFromEnv(t *testing.T) {
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(KeyEnv, key+"\n")
	got, err := KeyFromEnv()
	if err != nil || base64.StdEncoding.EncodeToString(got) != key {
		t.Fatalf("valid key: %v", err)
	}
	t.Setenv(KeyEnv, "")
	if got, err := KeyFromEnv(); got != nil || err != nil {
		t.Fatalf("empty: %v %v", got, err)
	}
	os.Unsetenv(KeyEnv)
	if got, err := KeyFromEnv(); got != nil || err != nil {
		t.Fatalf("unset: %v %v", got, err)
	}
	for _, bad := range []string{"not base64 !!", base64.StdEncoding.EncodeToString(make([]byte, 16)), strings.Repeat("A", 400)} {
		t.Setenv(KeyEnv, bad)
		_, err := KeyFromEnv()
		if err == nil || !strings.Contains(err.Error(), KeyEnv) {
			t.Fatalf("%q: error %v does not name %s", bad, err, KeyEnv)
		}
		if len(bad) > 4 && strings.Contains(err.Error(), bad) {
			t.Fatalf("error echoes the secret: %v", err)
		}
	}
}

func TestLoadKeyFile(t *testing.T) {
	dir := t.TempDir()
	key, _ := NewKey()
	path := filepath.Join(dir, "key")
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := LoadKeyFile(path)
	if err != nil || len(got) != KeySize {
		t.Fatalf("0600 key: %v", err)
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := LoadKeyFile(path)
		if err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Fatalf("mode %o: %v", mode, err)
		}
	}
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("short"), 0o600)
	if _, err := LoadKeyFile(bad); err == nil {
		t.Fatal("accepted a malformed key file")
	}
	if _, err := LoadKeyFile(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("accepted a missing file")
	}
}

func TestConfigValidation(t *testing.T) {
	key := make([]byte, 32)
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no group", Config{World: 2}, "Group is required"},
		{"long group", Config{Group: strings.Repeat("g", 65), World: 2}, "limit is 64"},
		{"no size", Config{Group: "g"}, "World"},
		{"min>max", Config{Group: "g", Min: 3, Max: 2}, "Min 3 > Max 2"},
		{"rank", Config{Group: "g", World: 2, Rank: 2}, "out of range"},
		{"short key", Config{Group: "g", World: 2, Key: make([]byte, 16)}, "head -c 32 /dev/urandom | base64"},
		{"cert", Config{Group: "g", World: 2, Meta: Meta{CertSHA256: []byte{1}}}, "want 32"},
		{"hostname bind", Config{Group: "g", World: 2, Bind: "example.com:0", Key: key}, "IP address"},
		{"no key public", Config{Group: "g", World: 2, Bind: "10.0.0.5:7946"}, "no cluster key: refusing to bind 10.0.0.5:7946; set RINGO_CLUSTER_KEY to the output of `head -c 32 /dev/urandom | base64`"},
		{"no key any", Config{Group: "g", World: 2, Bind: "0.0.0.0:0"}, "or bind 127.0.0.1"},
		{"no key empty host", Config{Group: "g", World: 2, Bind: ":7946"}, "RINGO_CLUSTER_KEY"},
	} {
		_, err := Start(context.Background(), tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
}
