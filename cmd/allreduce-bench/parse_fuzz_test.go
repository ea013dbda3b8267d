package main

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
)

// FuzzParseSize: sizes from the command line parse to a non-negative count
// that formats and parses back to itself, or to an error naming the input.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"0", "8", "1K", "32M", "2G", " 7k ", "-1", "K", "", "9223372036854775807",
		"8589934592G", "1.5M", "0x10"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseSize(s)
		if err != nil {
			if !strings.Contains(err.Error(), strconv.Quote(s)) {
				t.Fatalf("error %q does not name the input %q", err, s)
			}
			return
		}
		if n < 0 {
			t.Fatalf("%q parsed to %d", s, n)
		}
		back, err := parseSize(formatSize(n))
		if err != nil || back != n {
			t.Fatalf("%q -> %d -> %q -> %d, %v", s, n, formatSize(n), back, err)
		}
	})
}

// FuzzReadGroup: the launcher's group line never makes a worker panic.
func FuzzReadGroup(f *testing.F) {
	f.Add([]byte(`{"members":[{"addr":"127.0.0.1:1","name":"rank-0.ringo.local"}]}` + "\n"))
	f.Add([]byte(`{"members":null}` + "\n"))
	f.Add([]byte(`{"members":[{"addr":1}]}` + "\n"))
	f.Add([]byte("\n"))
	f.Add([]byte(`{"members":[`))
	f.Fuzz(func(t *testing.T, line []byte) {
		g, err := readGroup(context.Background(), bytes.NewReader(line))
		if err == nil && g == nil {
			t.Fatal("no group and no error")
		}
	})
}
