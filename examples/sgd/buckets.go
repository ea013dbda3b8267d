package main

import (
	"fmt"
	"strings"
)

// bucket is a run of consecutive tensors whose gradients travel in one
// collective call: the range [Lo, Hi) of the flat gradient vector. Small
// tensors are fused into one bucket (Horovod's tensor fusion, PyTorch
// DDP's gradient buckets); a tensor larger than the cap gets a bucket of
// its own. Last is the index of the bucket's last tensor: once
// backpropagation has produced it, the bucket can go.
type bucket struct {
	Lo, Hi int
	Last   int
	Names  []string
}

// planBuckets groups tensors (in layout order) into buckets of at most
// capBytes of float64 each, never splitting a tensor.
func planBuckets(tensors []tensor, capBytes int) []bucket {
	var out []bucket
	for i, t := range tensors {
		n := len(out)
		if n > 0 && (out[n-1].Hi-out[n-1].Lo+t.N)*8 <= capBytes {
			out[n-1].Hi += t.N
			out[n-1].Last = i
			out[n-1].Names = append(out[n-1].Names, t.Name)
			continue
		}
		out = append(out, bucket{Lo: t.Off, Hi: t.Off + t.N, Last: i, Names: []string{t.Name}})
	}
	return out
}

// describeBuckets is e.g. "[W2 b2 b1] 10.1 KiB, [W1] 256.0 KiB".
func describeBuckets(bs []bucket) string {
	parts := make([]string, len(bs))
	for i, b := range bs {
		parts[i] = fmt.Sprintf("[%s] %s", strings.Join(b.Names, " "), formatBytes(int64(b.Hi-b.Lo)*8))
	}
	return strings.Join(parts, ", ")
}

// formatBytes writes n bytes with a binary unit.
func formatBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
