package main

import (
	"math"
	"math/rand/v2"
)

// imageSide is the side of a digit image in pixels; inputs have
// imageSide² features.
const imageSide = 16

// classes is the number of labels: the digits 0 to 9.
const classes = 10

// glyphs are the ten digits drawn on a 5×7 grid, one string per row.
var glyphs = [classes][7]string{
	{".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."},
	{"..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."},
	{".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"},
	{"#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."},
	{"...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."},
	{"#####", "#....", "####.", "....#", "....#", "#...#", ".###."},
	{"..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."},
	{"#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."},
	{".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."},
	{".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."},
}

// dataset is a labelled set of examples: row i of X (Dim features) has
// label Y[i].
type dataset struct {
	X   []float64
	Y   []int
	Dim int
}

func (d *dataset) Len() int { return len(d.Y) }

// row returns example i's features.
func (d *dataset) row(i int) []float64 { return d.X[i*d.Dim : (i+1)*d.Dim] }

// gather copies the examples idx into x and y (x has len(idx)·Dim
// elements).
func (d *dataset) gather(idx []int, x []float64, y []int) {
	for k, i := range idx {
		copy(x[k*d.Dim:(k+1)*d.Dim], d.row(i))
		y[k] = d.Y[i]
	}
}

// slice returns examples [lo, hi) without copying.
func (d *dataset) slice(lo, hi int) ([]float64, []int) {
	return d.X[lo*d.Dim : hi*d.Dim], d.Y[lo:hi]
}

// synthDigits generates n handwritten-looking digits, deterministically
// from seed and stream (use different streams for the training and test
// sets): each is a glyph under a random affine transform (scale, rotation,
// shear, shift), with a random stroke weight and ink, pixel noise and
// blotches. Labels cycle through the classes in a shuffled order, so the
// classes are balanced.
func synthDigits(n int, seed, stream uint64) *dataset {
	rng := rand.New(rand.NewPCG(seed, stream))
	d := &dataset{X: make([]float64, n*imageSide*imageSide), Y: make([]int, n), Dim: imageSide * imageSide}
	for i := range n {
		label := rng.IntN(classes)
		d.Y[i] = label
		renderDigit(d.row(i), label, rng)
	}
	return d
}

// renderDigit draws digit label into px (imageSide² pixels, row-major).
func renderDigit(px []float64, label int, rng *rand.Rand) {
	g := &glyphs[label]
	// Glyph coordinates: x in [0, 5), y in [0, 7), cell (c, r) lit when
	// g[r][c] is '#'. The image centre maps to the glyph centre.
	scale := 1.75 + 0.35*rng.Float64()    // pixels per glyph cell
	angle := (rng.Float64()*2 - 1) * 0.22 // radians, about ±13°
	shear := (rng.Float64()*2 - 1) * 0.25 // italic slant
	dx, dy := rng.Float64()*3-1.5, rng.Float64()*3-1.5
	weight := 0.45 + 0.3*rng.Float64() // stroke half-width, in cells
	ink := 0.7 + 0.3*rng.Float64()
	noise := 0.12 + 0.1*rng.Float64()
	sin, cos := math.Sincos(angle)
	c := float64(imageSide) / 2
	for yi := range imageSide {
		for xi := range imageSide {
			// Pixel centre relative to the image centre, undo the shift,
			// the rotation, the shear and the scale.
			x, y := float64(xi)+0.5-c-dx, float64(yi)+0.5-c-dy
			x, y = cos*x+sin*y, -sin*x+cos*y
			x -= shear * y
			gx, gy := x/scale+2.5, y/scale+3.5
			v := ink * strokeCoverage(g, gx, gy, weight)
			v += noise * rng.NormFloat64()
			px[yi*imageSide+xi] = v
		}
	}
	// A few blotches: ink where there should be none.
	for range rng.IntN(3) {
		px[rng.IntN(len(px))] += 0.5 + 0.5*rng.Float64()
	}
}

// strokeCoverage is how much ink the glyph puts at (gx, gy): 1 within
// weight cells (Chebyshev distance) of a lit cell's centre, falling off
// linearly over half a cell beyond.
func strokeCoverage(g *[7]string, gx, gy, weight float64) float64 {
	best := 0.0
	for r := max(0, int(gy)-2); r <= min(6, int(gy)+2); r++ {
		for col := max(0, int(gx)-2); col <= min(4, int(gx)+2); col++ {
			if g[r][col] != '#' {
				continue
			}
			dist := math.Max(math.Abs(gx-float64(col)-0.5), math.Abs(gy-float64(r)-0.5))
			v := 1 - (dist-weight)/0.5
			best = math.Max(best, math.Min(1, v))
		}
	}
	return best
}
