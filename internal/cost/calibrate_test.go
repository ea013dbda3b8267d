package cost

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ringo-ml/ringo/internal/engine"
)

// recorder is a Runner that runs nothing and records the calls: what a
// rank's calibration asks of its communicator, with no sockets.
type recorder struct {
	calls  []string
	agreed []int // lengths of AgreeMax's vectors
}

func (r *recorder) Barrier(_ context.Context, path int, s engine.Schedule) error {
	r.calls = append(r.calls, fmt.Sprintf("barrier %d %s", path, s))
	return nil
}

func (r *recorder) SendRecv(_ context.Context, path int, dst, _ []float32) error {
	r.calls = append(r.calls, fmt.Sprintf("sendrecv %d %d", path, len(dst)))
	return nil
}

func (r *recorder) AllReduce(_ context.Context, path int, s engine.Schedule, buf []float32) error {
	r.calls = append(r.calls, fmt.Sprintf("allreduce %d %s %d", path, s, len(buf)))
	return nil
}

func (r *recorder) AgreeMax(_ context.Context, vals []float64) error {
	r.agreed = append(r.agreed, len(vals))
	return nil
}

// Every rank makes the same calls in the same order (a calibration is a
// collective call), every candidate is timed at the three sizes, and a
// budget the probes' model exceeds skips the timed runs.
func TestCalibratePlan(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		name   string
		plan   Plan
		timed  int // AllReduce calls
		agreed []int
	}{
		// 2 paths x 3 schedules: one warm-up each, then 8 rounds of a
		// block of 4 at Small and 4 rounds at Bulk and at Top.
		{"two paths", Plan{World: 4, Paths: 2, Chunk: 512 << 10, Scheds: []int{0, 1, 2}, Budget: time.Hour}, 6 * (1 + 8*Block + 4 + 4), []int{6, 18}},
		{"ring only", Plan{World: 4, Paths: 1, Chunk: 512 << 10, Scheds: []int{0}, Budget: time.Hour}, 1 + 8*Block + 4 + 4, []int{3, 3}},
		{"over budget", Plan{World: 4, Paths: 2, Chunk: 512 << 10, Scheds: []int{0, 1, 2}, Budget: 0}, 0, []int{6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.plan.Log = log
			a, b := &recorder{}, &recorder{}
			ma, err := Calibrate(context.Background(), a, tc.plan)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Calibrate(context.Background(), b, tc.plan); err != nil {
				t.Fatal(err)
			}
			if len(ma) != tc.plan.Paths {
				t.Fatalf("%d models for %d paths", len(ma), tc.plan.Paths)
			}
			if fmt.Sprint(a.calls) != fmt.Sprint(b.calls) {
				t.Fatal("two ranks made different calls")
			}
			n := 0
			for _, c := range a.calls {
				if strings.HasPrefix(c, "allreduce ") {
					n++
				}
			}
			if n != tc.timed {
				t.Errorf("%d AllReduce runs, want %d", n, tc.timed)
			}
			if fmt.Sprint(a.agreed) != fmt.Sprint(tc.agreed) {
				t.Errorf("agreed on vectors of %v values, want %v", a.agreed, tc.agreed)
			}
			for _, m := range ma {
				if m.Alpha <= 0 || m.Beta <= 0 {
					t.Errorf("model %+v: the probes left no alpha or beta", m)
				}
			}
		})
	}
}
