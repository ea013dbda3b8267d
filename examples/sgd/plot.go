package main

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// writePlot draws three panels side by side into file (SVG or PNG by its
// extension): the training loss after each epoch for every worker count,
// the measured speedup with the ideal line and Amdahl's curve for the
// fitted serial fraction, and each count's step time split into compute
// and communication.
func writePlot(file string, cfg *config, sc *scaling) error {
	loss, err := lossPlot(cfg, sc)
	if err != nil {
		return err
	}
	speed, err := speedupPlot(sc)
	if err != nil {
		return err
	}
	split, err := splitPlot(sc)
	if err != nil {
		return err
	}
	return savePanels(file, 5*vg.Inch, loss, speed, split)
}

// savePanels draws the plots side by side, each w wide, into file (SVG or
// PNG by its extension).
func savePanels(file string, w vg.Length, panels ...*plot.Plot) error {
	width, h := w*vg.Length(len(panels)), 4.5*vg.Inch
	var c vg.CanvasWriterTo
	if strings.ToLower(filepath.Ext(file)) == ".png" {
		c = vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(width, h), vgimg.UseDPI(96))}
	} else {
		c = vgsvg.New(width, h)
	}
	dc := draw.New(c)
	tiles := draw.Tiles{Rows: 1, Cols: len(panels), PadX: vg.Inch / 3, PadTop: vg.Inch / 8, PadBottom: vg.Inch / 8, PadLeft: vg.Inch / 8, PadRight: vg.Inch / 8}
	canvases := plot.Align([][]*plot.Plot{panels}, tiles, dc)
	for i, p := range panels {
		p.Draw(canvases[0][i])
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(f); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// lossPlot: loss after each epoch, one line per worker count.
func lossPlot(cfg *config, sc *scaling) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("training loss (%s, %s, batch %d)", cfg.model, cfg.mode, cfg.batch)
	p.X.Label.Text = "epoch"
	p.Y.Label.Text = "mean cross-entropy"
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	for i, r := range sc.Runs {
		var pts plotter.XYs
		for _, e := range r.Epochs {
			if e.Loss > 0 {
				pts = append(pts, plotter.XY{X: float64(e.Epoch), Y: e.Loss})
			}
		}
		if len(pts) == 0 {
			continue
		}
		l, s, err := plotter.NewLinePoints(pts)
		if err != nil {
			return nil, err
		}
		l.Color, s.Color = plotutil.Color(i), plotutil.Color(i)
		s.Shape = plotutil.Shape(i)
		s.Radius = vg.Points(3 + float64(len(sc.Runs)-i))
		p.Add(l, s)
		p.Legend.Add(workersLabel(r.Workers), l, s)
	}
	return p, nil
}

func workersLabel(n int) string {
	if n == 1 {
		return "1 worker"
	}
	return fmt.Sprintf("%d workers", n)
}

// speedupPlot: measured speedup against workers, the ideal, and Amdahl.
func speedupPlot(sc *scaling) (*plot.Plot, error) {
	p := newSpeedupPlot("speedup (same global batch)")
	var pts plotter.XYs
	maxN := 1
	for _, r := range sc.Runs {
		if r.Speedup > 0 {
			pts = append(pts, plotter.XY{X: float64(r.Workers), Y: r.Speedup})
			maxN = max(maxN, r.Workers)
		}
	}
	if sc.SerialFraction >= 0 {
		s := sc.SerialFraction
		am := plotter.NewFunction(func(x float64) float64 { return amdahl(s, x) })
		am.Color = plotutil.Color(1)
		am.Width = vg.Points(1.5)
		p.Add(am)
		p.Legend.Add(fmt.Sprintf("Amdahl, serial fraction %.2f", s), am)
	}
	if len(pts) > 0 {
		l, s, err := plotter.NewLinePoints(pts)
		if err != nil {
			return nil, err
		}
		l.Color, s.Color = plotutil.Color(0), plotutil.Color(0)
		s.Shape = plotutil.Shape(0)
		p.Add(l, s)
		p.Legend.Add("measured", l, s)
	}
	p.X.Min, p.X.Max = 0.5, float64(maxN)+0.5
	p.Y.Min, p.Y.Max = 0, float64(maxN)+0.5
	return p, nil
}

// newSpeedupPlot is an empty speedup panel with the ideal line.
func newSpeedupPlot(title string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "workers"
	p.Y.Label.Text = "speedup"
	p.Add(plotter.NewGrid())
	p.Legend.Top, p.Legend.Left = true, true
	ideal := plotter.NewFunction(func(x float64) float64 { return x })
	ideal.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	ideal.Color = color.Gray{Y: 120}
	p.Add(ideal)
	p.Legend.Add("ideal", ideal)
	return p
}

// splitPlot: step time per worker count, compute under communication.
func splitPlot(sc *scaling) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "time per step"
	p.Y.Label.Text = "ms (mean over workers)"
	p.Legend.Top, p.Legend.Left = true, true
	var comp, comm plotter.Values
	var names []string
	top := 0.0
	for _, r := range sc.Runs {
		if len(r.Epochs) == 0 {
			continue
		}
		top = max(top, r.ComputeMs+r.CommMs)
		comp, comm = append(comp, r.ComputeMs), append(comm, r.CommMs)
		names = append(names, workersLabel(r.Workers))
	}
	if len(comp) == 0 {
		return p, nil
	}
	wbar := vg.Points(28)
	cb, err := plotter.NewBarChart(comp, wbar)
	if err != nil {
		return nil, err
	}
	cb.Color = plotutil.Color(0)
	cb.LineStyle.Width = 0
	mb, err := plotter.NewBarChart(comm, wbar)
	if err != nil {
		return nil, err
	}
	mb.Color = plotutil.Color(2)
	mb.LineStyle.Width = 0
	mb.StackOn(cb)
	p.Add(cb, mb)
	p.Legend.Add("compute (gradients, update)", cb)
	p.Legend.Add("communication (waiting)", mb)
	p.NominalX(names...)
	p.Y.Min, p.Y.Max = 0, 1.3*top // room for the legend
	return p, nil
}
