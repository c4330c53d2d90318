package main

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// series is one implementation's medians along the in-flight axis.
type series struct {
	label string
	conc  []int
	rps   []float64
	p50   []float64
	p99   []float64
}

// seriesOf gathers, per transport, one series per implementation label in
// the order they first appear.
func seriesOf(runs []Run) (transports []string, byTransport map[string][]*series) {
	groups := groupRuns(runs)
	byTransport = map[string][]*series{}
	for _, g := range groups {
		if !slices.Contains(transports, g.transport) {
			transports = append(transports, g.transport)
		}
		var s *series
		for _, x := range byTransport[g.transport] {
			if x.label == g.label {
				s = x
			}
		}
		if s == nil {
			s = &series{label: g.label}
			byTransport[g.transport] = append(byTransport[g.transport], s)
		}
		s.conc = append(s.conc, g.conc)
		s.rps = append(s.rps, g.median("requests_per_sec"))
		s.p50 = append(s.p50, g.median("p50_us"))
		s.p99 = append(s.p99, g.median("p99_us"))
	}
	return transports, byTransport
}

// palette gives each implementation a stable colour: agentwire blue and
// green, the baseline red, the floor grey.
func palette(label string, i int) color.Color {
	switch {
	case label == "baseline" || label == "baseline-json":
		return color.RGBA{R: 200, G: 40, B: 40, A: 255}
	case len(label) >= 5 && label[:5] == "floor":
		return color.RGBA{R: 110, G: 110, B: 110, A: 255}
	case label == "agentwire-msgpack":
		return color.RGBA{R: 20, G: 130, B: 60, A: 255}
	}
	others := []color.Color{
		color.RGBA{R: 30, G: 90, B: 200, A: 255},
		color.RGBA{R: 150, G: 60, B: 180, A: 255},
		color.RGBA{R: 220, G: 140, B: 20, A: 255},
	}
	return others[i%len(others)]
}

// SVG draws runs as one row per transport: requests/s against requests in
// flight on the left, p50 (solid) and p99 (dashed) latency on the right,
// every implementation a line (agentwire, the baseline, the floor).
func SVG(runs []Run, w io.Writer) error { return drawTo(runs, w, false) }

// PNG is SVG as a PNG image.
func PNG(runs []Run, w io.Writer) error { return drawTo(runs, w, true) }

func drawTo(runs []Run, w io.Writer, png bool) error {
	if len(runs) == 0 {
		return fmt.Errorf("no runs")
	}
	transports, byT := seriesOf(runs)
	rows := len(transports)
	const cellW, cellH = 6 * vg.Inch, 3.6 * vg.Inch
	var canvas vg.CanvasWriterTo
	if png {
		canvas = vgimg.PngCanvas{Canvas: vgimg.New(2*cellW, vg.Length(rows)*cellH)}
	} else {
		canvas = vgsvg.New(2*cellW, vg.Length(rows)*cellH)
	}
	dc := draw.New(canvas)
	tiles := draw.Tiles{Rows: rows, Cols: 2, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	plots := make([][]*plot.Plot, rows)
	for r, tr := range transports {
		thr, lat := plot.New(), plot.New()
		thr.Title.Text = tr + ": requests/s"
		lat.Title.Text = tr + ": latency (p50 solid, p99 dashed)"
		for _, p := range []*plot.Plot{thr, lat} {
			p.X.Label.Text = "requests in flight"
			p.X.Scale = plot.LogScale{}
			p.X.Tick.Marker = plot.LogTicks{Prec: -1}
			p.Legend.Top = true
			p.Legend.Left = true
		}
		thr.Y.Label.Text = "requests/s"
		thr.Y.Tick.Marker = thousands{}
		lat.Y.Label.Text = "µs"
		lat.Y.Scale = plot.LogScale{}
		lat.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		for i, s := range byT[tr] {
			col := palette(s.label, i)
			if err := addLine(thr, s.label, s.conc, s.rps, col, false, true); err != nil {
				return err
			}
			if err := addLine(lat, s.label, s.conc, s.p50, col, false, true); err != nil {
				return err
			}
			if err := addLine(lat, "", s.conc, s.p99, col, true, false); err != nil {
				return err
			}
		}
		plots[r] = []*plot.Plot{thr, lat}
	}
	canvases := plot.Align(plots, tiles, dc)
	for r := range plots {
		for c := range plots[r] {
			plots[r][c].Draw(canvases[r][c])
		}
	}
	_, err := canvas.WriteTo(w)
	return err
}

// addLine adds one line with points; values that are unknown or not
// positive (log axes) are left out.
func addLine(p *plot.Plot, label string, conc []int, ys []float64, col color.Color, dashed, legend bool) error {
	var xy plotter.XYs
	for i := range conc {
		if y := ys[i]; !math.IsNaN(y) && y > 0 && conc[i] > 0 {
			xy = append(xy, plotter.XY{X: float64(conc[i]), Y: y})
		}
	}
	if len(xy) == 0 {
		return nil
	}
	slices.SortFunc(xy, func(a, b plotter.XY) int { return int(a.X - b.X) })
	l, pts, err := plotter.NewLinePoints(xy)
	if err != nil {
		return err
	}
	l.Color, pts.Color = col, col
	l.Width = vg.Points(1.5)
	if dashed {
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		pts.Shape = draw.CrossGlyph{}
	}
	p.Add(l, pts)
	if legend && label != "" {
		p.Legend.Add(label, l, pts)
	}
	return nil
}

// thousands labels the default ticks in thousands ("150k").
type thousands struct{}

func (thousands) Ticks(lo, hi float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = fmt.Sprintf("%gk", ts[i].Value/1000)
		}
	}
	return ts
}
