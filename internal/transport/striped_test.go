package transport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ringo-ml/ringo/internal/pki"
)

// TestStripedPipes stripes a byte stream over three pipes with writes and
// reads of every size, across block boundaries and in parallel, and gets
// the bytes back in order; a block lands on the pipe its offset names.
func TestStripedPipes(t *testing.T) {
	const k = 3
	var ws, rs []Stream
	var raw []*pipeStream
	for range k {
		a, b := newPipePair(1 << 20)
		ws, rs, raw = append(ws, a), append(rs, b), append(raw, b)
	}
	w, r := newStriped(ws), newStriped(rs)
	defer w.stop()
	defer r.stop()
	rng := rand.New(rand.NewPCG(3, 4))
	data := make([]byte, 9*StripeBytes+777)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	done := make(chan error, 1)
	go func() {
		rng := rand.New(rand.NewPCG(5, 6))
		for off := 0; off < len(data); {
			n := min(len(data)-off, []int{1, 100, StripeBytes - 1, StripeBytes, 3*StripeBytes + 5}[rng.IntN(5)])
			if _, err := w.Write(data[off : off+n]); err != nil {
				done <- err
				return
			}
			off += n
		}
		done <- nil
	}()
	got := make([]byte, len(data))
	for off := 0; off < len(got); {
		n := min(len(got)-off, 1+rng.IntN(2*StripeBytes))
		k, err := io.ReadFull(r, got[off:off+n])
		if err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		off += k
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("bytes differ")
	}
	// Deadlines reach every channel.
	_ = r.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	for _, p := range raw {
		if _, err := p.Read(make([]byte, 1)); !isTimeout(err) {
			t.Fatalf("a channel read past the stripe's deadline: %v", err)
		}
	}
}

// TestQUICChannels links two ranks that offer different numbers of
// channels: the link takes the fewer, and tensors-sized writes in both
// directions at once arrive whole and in order; small frames too.
func TestQUICChannels(t *testing.T) {
	for _, tc := range []struct {
		offer [2]int
		want  int
	}{{[2]int{4, 3}, 3}, {[2]int{1, 4}, 1}, {[2]int{2, 0}, 1}, {[2]int{4, 4}, 4}} {
		ca, err := pki.New("g", 0) // a CA writes each rank's files once
		if err != nil {
			t.Fatal(err)
		}
		defer ca.Close()
		m, _ := quicPairChannels(t, ca, tc.offer)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		links, errs := linkPair(ctx, m)
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("offers %v: %v", tc.offer, errs)
		}
		for r := range 2 {
			if got := links[r].Channels(); got != tc.want {
				t.Errorf("offers %v: rank %d's link has %d channels, want %d", tc.offer, r, got, tc.want)
			}
		}
		rng := rand.New(rand.NewPCG(7, 8))
		msgs := [][]byte{make([]byte, 2<<20+3), []byte("a small frame"), make([]byte, 3*StripeBytes+1)}
		for _, b := range msgs {
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
		}
		errc := make(chan error, 4)
		for r := range 2 {
			go func() { // write every message
				for _, b := range msgs {
					if _, err := links[r].Data.Write(b); err != nil {
						errc <- err
						return
					}
				}
				errc <- nil
			}()
			go func() { // read them back
				for _, b := range msgs {
					got := make([]byte, len(b))
					if _, err := io.ReadFull(links[r].Data, got); err != nil {
						errc <- err
						return
					}
					if !bytes.Equal(got, b) {
						errc <- errors.New("bytes differ")
						return
					}
				}
				errc <- nil
			}()
		}
		for range 4 {
			if err := <-errc; err != nil {
				t.Fatalf("offers %v: %v", tc.offer, err)
			}
		}
		// Interrupt reaches every channel: a blocked read fails at once.
		go func() {
			time.Sleep(20 * time.Millisecond)
			links[1].Interrupt()
		}()
		if _, err := links[1].Data.Read(make([]byte, 1)); err == nil {
			t.Fatalf("offers %v: read after Interrupt succeeded", tc.offer)
		}
		cancel()
		m[0].Close(0)
		m[1].Close(0)
	}
}
