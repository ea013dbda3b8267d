package main

import (
	"fmt"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// writePlot draws busbw against size on a log2 size axis, to file: SVG or
// PNG by its extension. Rows of size 0 have no place on a log axis.
func writePlot(file string, h *header, rows []rowResult) error {
	// One line per algorithm that -algo compare asked for, else one.
	var names []string
	lines := map[string]plotter.XYs{}
	for _, r := range rows {
		if r.Size > 0 && !math.IsInf(r.BusBW, 0) && !math.IsNaN(r.BusBW) {
			if _, ok := lines[r.Requested]; !ok {
				names = append(names, r.Requested)
			}
			lines[r.Requested] = append(lines[r.Requested], plotter.XY{X: float64(r.Size), Y: r.BusBW})
		}
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("ringo %s, %d ranks, %s", h.Op, h.Ranks, h.Transport)
	p.X.Label.Text = "size (bytes)"
	p.Y.Label.Text = "busbw (GB/s, 1e9 bytes/s)"
	p.Y.Min = 0
	p.Add(plotter.NewGrid())
	lo, hi := math.Inf(1), math.Inf(-1)
	for i, name := range names {
		pts := lines[name]
		line, points, err := plotter.NewLinePoints(pts)
		if err != nil {
			return err
		}
		line.Color = plotutil.Color(i)
		points.Color = plotutil.Color(i)
		points.Shape = plotutil.Shape(i)
		p.Add(line, points)
		if name != "" {
			p.Legend.Add(name, line, points)
		}
		lo, hi = min(lo, pts[0].X), max(hi, pts[len(pts)-1].X)
	}
	if len(names) > 0 {
		// Half a power of two of margin on each side, so that a single
		// size still spans an axis.
		p.X.Min, p.X.Max = lo/math.Sqrt2, hi*math.Sqrt2
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.TickerFunc(pow2Ticks)
		p.Legend.Top, p.Legend.Left = true, true
		if p.Y.Max <= 0 {
			p.Y.Max = 1
		}
	}
	return p.Save(8*vg.Inch, 5*vg.Inch, file)
}

// pow2Ticks marks the powers of two in [lo, hi], labelled with binary
// suffixes (1K = 1024), at most about ten labels.
func pow2Ticks(lo, hi float64) []plot.Tick {
	a, b := int(math.Ceil(math.Log2(lo))), int(math.Floor(math.Log2(hi)))
	step := max(1, (b-a+10)/10)
	var ticks []plot.Tick
	for e := a; e <= b; e++ {
		t := plot.Tick{Value: math.Ldexp(1, e)}
		if (e-a)%step == 0 {
			t.Label = formatSize(int64(t.Value))
		}
		ticks = append(ticks, t)
	}
	return ticks
}
