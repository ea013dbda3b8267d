package rendezvous

import "testing"

func TestLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:7946": true, "127.1.2.3:0": true, "[::1]:80": true, "localhost:1": true,
		"10.0.0.1:7946": false, "0.0.0.0:7946": false, "[::]:1": false, "example.com:1": false,
		"127.0.0.1": false, "": false,
	} {
		if got := Loopback(addr); got != want {
			t.Errorf("Loopback(%q) = %v, want %v", addr, got, want)
		}
	}
}
